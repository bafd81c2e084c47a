/*
 * kiln compare: runs the GPU engine and the CPU reference (or stored reference
 * outputs) on the same inputs and reports the error per output, with Polygraphy's
 * pass/fail semantics: an output fails when, for the chosen statistic, the absolute
 * error exceeds atol AND the relative error exceeds rtol (elemwise: any element).
 * --mark-all compares every intermediate tensor to find the first that diverges.
 */
#include "cli.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef enum err_stat { STAT_ELEMWISE, STAT_MEAN, STAT_MEDIAN, STAT_MAX } err_stat;
static const char *const stat_names[] = {"elemwise", "mean", "median", "max"};

typedef struct tol_entry {
    char name[256];
    double atol, rtol;
    int stat;           /* err_stat, -1 when not given */
    bool has_atol, has_rtol;
} tol_entry;

typedef struct tolerances {
    double atol, rtol;
    err_stat stat;
    tol_entry *e;
    int n;
} tolerances;

static tol_entry *tol_slot(tolerances *t, const char *name)
{
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->e[i].name, name)) return &t->e[i];
    tol_entry *ne = realloc(t->e, sizeof *ne * (size_t)(t->n + 1));
    if (!ne) return NULL;
    t->e = ne;
    memset(&ne[t->n], 0, sizeof ne[t->n]);
    snprintf(ne[t->n].name, sizeof ne[t->n].name, "%s", name);
    ne[t->n].stat = -1;
    return &ne[t->n++];
}

static int parse_stat(const char *flag, const char *s, err_stat *out)
{
    for (int k = 0; k < 4; k++)
        if (!strcmp(s, stat_names[k])) {
            *out = (err_stat)k;
            return 0;
        }
    return cli_error("%s: unknown statistic '%s' (mean, median, max or elemwise)", flag, s);
}

/* "--atol=1e-5", "--atol=out:1e-3,1e-5", "--check-error-stat=median,out:max" (which: 0 atol, 1 rtol, 2 stat) */
static int parse_tol(tolerances *t, const char *flag, const char *spec, int which)
{
    size_t len = strlen(spec);
    char *buf = malloc(len + 1);
    if (!buf) return cli_error("out of memory");
    memcpy(buf, spec, len + 1);
    int rc = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        char name[256];
        const char *val = tok;
        bool named = strchr(tok, ':') != NULL;
        if (named && cli_split_entry(flag, tok, true, name, sizeof name, &val)) {
            rc = 1;
            break;
        }
        double d = 0;
        err_stat st = STAT_ELEMWISE;
        if (which == 2 ? parse_stat(flag, val, &st) : cli_parse_double(flag, val, &d)) {
            rc = 1;
            break;
        }
        if (!named) {
            if (which == 0) t->atol = d;
            else if (which == 1) t->rtol = d;
            else t->stat = st;
            continue;
        }
        tol_entry *e = tol_slot(t, name);
        if (!e) {
            rc = cli_error("out of memory");
            break;
        }
        if (which == 0) e->atol = d, e->has_atol = true;
        else if (which == 1) e->rtol = d, e->has_rtol = true;
        else e->stat = (int)st;
    }
    if (!rc && len && (spec[len - 1] == ',' || spec[0] == ',' || strstr(spec, ",,"))) rc = cli_error("%s: '%s': empty entry", flag, spec);
    free(buf);
    return rc;
}

static void tol_for(const tolerances *t, const char *name, double *atol, double *rtol, err_stat *st)
{
    *atol = t->atol;
    *rtol = t->rtol;
    *st = t->stat;
    for (int i = 0; i < t->n; i++) {
        if (strcmp(t->e[i].name, name)) continue;
        if (t->e[i].has_atol) *atol = t->e[i].atol;
        if (t->e[i].has_rtol) *rtol = t->e[i].rtol;
        if (t->e[i].stat >= 0) *st = (err_stat)t->e[i].stat;
    }
}

/* --- statistics ----------------------------------------------------------------------- */

typedef struct cmp_result {
    bool shape_ok;
    int64_t n, n_over;             /* elements; elements with abs > atol and rel > rtol */
    double abs_mean, abs_median, abs_max;
    double rel_mean, rel_median, rel_max;
    double sum_rel;                /* sum|a-b| / sum|b| */
    bool has_psnr;
    double psnr, peak;
    int64_t nan_a, inf_a, nan_b, inf_b, nonfinite_mismatch;
    int64_t worst;                 /* index of the largest absolute error */
    double worst_a, worst_b;
    bool pass;
} cmp_result;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_of(double *v, int64_t n)
{
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static bool same_nonfinite(double a, double b)
{
    return (isnan(a) && isnan(b)) || (isinf(a) && isinf(b) && (a > 0) == (b > 0));
}

/* a: engine, b: reference. 0, or 1 when out of memory (printed). */
static int compare_tensors(const kiln_host_tensor *a, const kiln_host_tensor *b, double atol, double rtol, err_stat st, cmp_result *r)
{
    memset(r, 0, sizeof *r);
    r->worst = -1;
    r->shape_ok = a->rank == b->rank;
    for (int d = 0; r->shape_ok && d < a->rank; d++) r->shape_ok = a->dims[d] == b->dims[d];
    if (!r->shape_ok) return 0;
    int64_t n = kiln_host_tensor_numel(a);
    r->n = n;
    double *absv = malloc(sizeof(double) * (size_t)(n + 1)), *relv = malloc(sizeof(double) * (size_t)(n + 1));
    if (!absv || !relv) {
        free(absv);
        free(relv);
        return cli_error("out of memory");
    }
    int64_t m = 0;
    double sum_abs = 0, sum_rel = 0, sum_ref = 0, sse = 0, peak = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = cli_elem_f64(a, i), y = cli_elem_f64(b, i);
        r->nan_a += isnan(x);
        r->inf_a += isinf(x);
        r->nan_b += isnan(y);
        r->inf_b += isinf(y);
        if (!isfinite(x) || !isfinite(y)) {
            if (!same_nonfinite(x, y)) {
                /* the first NaN/Inf mismatch is the element worth showing */
                if (!r->nonfinite_mismatch) r->worst = i, r->worst_a = x, r->worst_b = y;
                r->nonfinite_mismatch++;
                r->n_over++;
            }
            continue;
        }
        double ad = fabs(x - y), rd = ad == 0 ? 0 : fabs(y) > 0 ? ad / fabs(y) : INFINITY;
        if (ad > atol && rd > rtol) r->n_over++;
        if (!r->nonfinite_mismatch && (r->worst < 0 || ad > r->abs_max)) r->worst = i, r->worst_a = x, r->worst_b = y;
        r->abs_max = ad > r->abs_max ? ad : r->abs_max;
        r->rel_max = rd > r->rel_max ? rd : r->rel_max;
        sum_abs += ad;
        sum_rel += rd;
        sum_ref += fabs(y);
        sse += ad * ad;
        peak = fabs(y) > peak ? fabs(y) : peak;
        absv[m] = ad;
        relv[m++] = rd;
    }
    if (m) {
        r->abs_mean = sum_abs / (double)m;
        r->rel_mean = sum_rel / (double)m;
        r->abs_median = median_of(absv, m);
        r->rel_median = median_of(relv, m);
        r->sum_rel = sum_ref > 0 ? sum_abs / sum_ref : sum_abs > 0 ? INFINITY : 0;
    }
    free(absv);
    free(relv);
    /* PSNR for images: 4-D with 1 or 3 channels, peak = max|reference| */
    if (a->rank == 4 && (a->dims[1] == 1 || a->dims[1] == 3) && m) {
        r->has_psnr = true;
        r->peak = peak;
        double mse = sse / (double)m;
        r->psnr = mse > 0 ? 10 * log10(peak * peak / mse) : INFINITY;
    }
    double sa, sr;
    switch (st) {
    case STAT_MEAN: sa = r->abs_mean, sr = r->rel_mean; break;
    case STAT_MEDIAN: sa = r->abs_median, sr = r->rel_median; break;
    case STAT_MAX: sa = r->abs_max, sr = r->rel_max; break;
    default: sa = sr = 0; break;
    }
    if (st == STAT_ELEMWISE) r->pass = r->n_over == 0;
    else r->pass = r->nonfinite_mismatch == 0 && !(sa > atol && sr > rtol);
    return 0;
}

static void index_text(const kiln_host_tensor *t, int64_t i, char *buf, size_t len)
{
    int64_t idx[KILN_MAX_DIMS];
    for (int d = t->rank - 1; d >= 0; d--) {
        idx[d] = t->dims[d] ? i % t->dims[d] : 0;
        i = t->dims[d] ? i / t->dims[d] : 0;
    }
    size_t pos = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < t->rank && pos < len; d++) pos += (size_t)snprintf(buf + pos, len - pos, "%s%lld", d ? "," : "", (long long)idx[d]);
    if (pos < len) snprintf(buf + pos, len - pos, "]");
}

static void print_result(const kiln_host_tensor *a, const kiln_host_tensor *b, const cmp_result *r, double atol, double rtol, err_stat st,
                         const char *ref_what)
{
    char da[256], db[256];
    cli_format_dims(a->rank, a->dims, da, sizeof da);
    cli_format_dims(b->rank, b->dims, db, sizeof db);
    printf("[I] Output '%s' %s %s: engine vs %s\n", a->name, kiln_dtype_name(a->dtype), da, ref_what);
    if (!r->shape_ok) {
        printf("[E]     FAILED: shapes differ: engine %s, reference %s\n", da, db);
        return;
    }
    printf("[I]     absolute error: mean = %.4g, median = %.4g, max = %.4g\n", r->abs_mean, r->abs_median, r->abs_max);
    printf("[I]     relative error: mean = %.4g, median = %.4g, max = %.4g\n", r->rel_mean, r->rel_median, r->rel_max);
    printf("[I]     mean relative error sum|a-b|/sum|b|: %.4g\n", r->sum_rel);
    if (r->has_psnr) printf("[I]     PSNR: %.2f dB (peak max|ref| = %.4g)\n", r->psnr, r->peak);
    printf("[I]     NaN/Inf: engine %lld/%lld, reference %lld/%lld\n", (long long)r->nan_a, (long long)r->inf_a, (long long)r->nan_b,
           (long long)r->inf_b);
    if (r->worst >= 0 && (r->abs_max > 0 || r->nonfinite_mismatch)) {
        char idx[256];
        index_text(a, r->worst, idx, sizeof idx);
        printf("[I]     largest error at %s: engine %.9g, reference %.9g\n", idx, r->worst_a, r->worst_b);
    }
    if (st == STAT_ELEMWISE)
        printf("[%c]     %s: %lld of %lld elements have abs error > atol %g and rel error > rtol %g%s\n", r->pass ? 'I' : 'E',
               r->pass ? "PASSED" : "FAILED", (long long)r->n_over, (long long)r->n, atol, rtol,
               r->nonfinite_mismatch ? " (NaN/Inf where the other is not)" : "");
    else {
        double sa = st == STAT_MEAN ? r->abs_mean : st == STAT_MEDIAN ? r->abs_median : r->abs_max;
        double sr = st == STAT_MEAN ? r->rel_mean : st == STAT_MEDIAN ? r->rel_median : r->rel_max;
        printf("[%c]     %s: %s abs error %.4g %s atol %g, %s rel error %.4g %s rtol %g%s\n", r->pass ? 'I' : 'E', r->pass ? "PASSED" : "FAILED",
               stat_names[st], sa, sa > atol ? ">" : "<=", atol, stat_names[st], sr, sr > rtol ? ">" : "<=", rtol,
               r->nonfinite_mismatch ? "; NaN/Inf where the other is not" : "");
    }
}

/* --- reference outputs ------------------------------------------------------------------ */

static int load_ref_outputs(const char *dir, const kiln_network *net, kiln_host_tensor *ref)
{
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return cli_error("--loadRefOutputs: '%s' is not a directory", dir);
    for (int o = 0; o < kiln_network_output_count(net); o++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/output_%d.pb", dir, o);
        if (stat(path, &st) != 0) snprintf(path, sizeof path, "%s/output_%d.npy", dir, o);
        if (stat(path, &st) != 0)
            return cli_error("--loadRefOutputs: '%s' has no output_%d.pb or output_%d.npy (for output '%s')", dir, o, o,
                             kiln_network_output_name(net, o));
        if (cli_read_tensor(path, &ref[o])) return cli_error("--loadRefOutputs: '%s': %s", path, kiln_last_error());
        snprintf(ref[o].name, sizeof ref[o].name, "%s", kiln_network_output_name(net, o));
    }
    return 0;
}

/* Engine inputs as host tensors (shallow: they point into the run's buffers). */
static int run_inputs(const cli_engine_run *run, kiln_host_tensor *in)
{
    int n = 0;
    for (int i = 0; i < run->n && n < CLI_MAX_IO; i++)
        if (run->b[i].is_input) in[n++] = run->b[i].host;
    return n;
}

/* Position of the named output among the engine's outputs, -1 if absent. */
static int output_ordinal(const cli_engine_run *run, const char *name)
{
    int k = 0;
    for (int i = 0; i < run->n; i++) {
        if (run->b[i].is_input) continue;
        if (!strcmp(run->b[i].name, name)) return k;
        k++;
    }
    return -1;
}

static void release_all(kiln_host_tensor *t, int n)
{
    for (int i = 0; t && i < n; i++) kiln_host_tensor_release(&t[i]);
}

/* Builds the network again with every intermediate tensor marked, runs it on the same inputs on
 * both backends, and reports the first tensor (in topological order) over tolerance. */
static void mark_all(const char *model, const cli_build_opts *bo, const cli_engine_run *first, const tolerances *tol)
{
    kiln_network *net = NULL;
    kiln_engine *eng = NULL;
    cli_engine_run run;
    memset(&run, 0, sizeof run);
    kiln_host_tensor in[CLI_MAX_IO], *ref = NULL, got;
    memset(&got, 0, sizeof got);
    int n_in = run_inputs(first, in), n_marked = 0, n_out = 0, n_final = 0;
    char err[2048];
    printf("\n[I] --mark-all: every intermediate tensor marked as an output\n");
    if (kiln_onnx_parse(model, NULL, &net)) {
        printf("[W] --mark-all: %s\n", kiln_last_error());
        goto done;
    }
    n_final = kiln_network_output_count(net);
    if (kiln_network_mark_all_outputs(net, &n_marked)) {
        printf("[W] --mark-all: %s\n", kiln_network_last_error(net));
        goto done;
    }
    if (cli_build_engine(bo, net, NULL, &eng, err, sizeof err)) {
        printf("[W] --mark-all: not supported by the engine (%d tensors marked): %s\n", n_marked, err);
        goto done;
    }
    if (cli_engine_setup(&run, eng, &bo->shapes, in, n_in) || cli_engine_infer(&run)) {
        printf("[W] --mark-all: the engine with every tensor marked did not run (error above)\n");
        goto done;
    }
    n_out = kiln_network_output_count(net);
    ref = calloc((size_t)n_out + 1, sizeof *ref);
    if (!ref || kiln_reference_run(net, n_in, in, n_out, ref)) {
        printf("[W] --mark-all: CPU reference: %s\n", ref ? kiln_network_last_error(net) : "out of memory");
        free(ref);
        ref = NULL;
        goto done;
    }
    int compared = 0, first_bad = -1, over = 0;
    for (int o = n_final; o < n_out; o++) {
        const char *name = kiln_network_output_name(net, o);
        kiln_host_tensor_release(&got);
        int k = output_ordinal(&run, name);
        if (k < 0) {
            printf("[W]   '%s': not an output of the engine\n", name);
            continue;
        }
        if (cli_engine_output(&run, k, &got)) goto done;
        double atol, rtol;
        err_stat st;
        tol_for(tol, name, &atol, &rtol, &st);
        cmp_result r;
        if (compare_tensors(&got, &ref[o], atol, rtol, st, &r)) goto done;
        compared++;
        if (!r.pass) over++;
        if (bo->verbose || (!r.pass && first_bad < 0))
            printf("[%c]   #%d '%s': max abs %.4g, max rel %.4g, mean rel sum|a-b|/sum|b| %.4g, NaN/Inf %lld/%lld%s%s\n",
                   r.pass ? 'I' : 'E', o - n_final, name, r.abs_max, r.rel_max, r.sum_rel, (long long)(r.nan_a),
                   (long long)(r.inf_a), r.shape_ok ? "" : " (shapes differ)", r.pass ? "" : " -- over tolerance");
        if (!r.pass && first_bad < 0) first_bad = o;
    }
    if (first_bad >= 0)
        printf("[E] --mark-all: first tensor over tolerance: '%s' (#%d in topological order); %d of %d intermediate tensors over "
               "tolerance\n",
               kiln_network_output_name(net, first_bad), first_bad - n_final, over, compared);
    else
        printf("[I] --mark-all: all %d intermediate tensors within tolerance\n", compared);
done:
    kiln_host_tensor_release(&got);
    release_all(ref, n_out);
    free(ref);
    cli_engine_release(&run);
    kiln_engine_free(eng);
    kiln_network_free(net);
}

static void compare_usage(void)
{
    printf("usage: kiln compare MODEL [options]\n"
           "  --engine=FILE             compare a saved engine (default: build one from MODEL)\n"
           "  --fp16 | --best | --noTF32, --shapes=, --minShapes=, --optShapes=, --maxShapes=,\n"
           "  --layerPrecisions=, --timingCacheFile=   build flags, as kiln exec\n"
           "  --loadInputs=in:file[,...] or DIR of input_N.pb   (default: random, never zero)\n"
           "  --loadRefOutputs=DIR      reference outputs DIR/output_N.pb or .npy (default: the CPU reference)\n"
           "  --atol=1e-5 | --atol=out:1e-3,...   --rtol=... (default 1e-5 each)\n"
           "  --check-error-stat=elemwise|mean|median|max (or out:stat,...; default elemwise)\n"
           "  --mark-all                compare every intermediate tensor; report the first over tolerance\n"
           "  --verbose\n"
           "An output fails when its error statistic has abs > atol AND rel > rtol (elemwise: any element); exit 1.\n");
}

int kiln_cmd_compare(int argc, char **argv)
{
    cli_build_opts bo;
    memset(&bo, 0, sizeof bo);
    tolerances tol = {.atol = 1e-5, .rtol = 1e-5, .stat = STAT_ELEMWISE};
    const char *model = NULL, *engine_path = NULL, *ref_dir = NULL, *v = NULL;
    const char *load_inputs[CLI_MAX_IO];
    int n_load_inputs = 0, mark = 0, rc = 1;
    kiln_network *net = NULL;
    kiln_engine *eng = NULL;
    kiln_host_tensor loaded[CLI_MAX_IO], *ref = NULL, *got = NULL;
    int n_loaded = 0, n_out = 0;
    cli_engine_run run;
    memset(&run, 0, sizeof run);
    memset(loaded, 0, sizeof loaded);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            compare_usage();
            rc = 0;
            goto done;
        }
        if ((r = cli_build_flag(&bo, argc, argv, &i))) {
            if (r < 0) goto done;
            continue;
        }
        if ((r = cli_flag_value(argc, argv, &i, "--engine", &v)) || (r = cli_flag_value(argc, argv, &i, "--loadEngine", &v))) {
            if (r < 0) goto done;
            engine_path = v;
            continue;
        }
        if ((r = cli_flag_value(argc, argv, &i, "--loadRefOutputs", &v))) {
            if (r < 0) goto done;
            ref_dir = v;
            continue;
        }
        if ((r = cli_flag_value(argc, argv, &i, "--loadInputs", &v))) {
            if (r < 0) goto done;
            if (n_load_inputs == CLI_MAX_IO) {
                cli_error("--loadInputs: given more than %d times", CLI_MAX_IO);
                goto done;
            }
            load_inputs[n_load_inputs++] = v;
            continue;
        }
        static const char *const tol_flags[3] = {"--atol", "--rtol", "--check-error-stat"};
        int which = -1;
        for (int k = 0; k < 3 && which < 0; k++) {
            if ((r = cli_flag_value(argc, argv, &i, tol_flags[k], &v))) {
                if (r < 0) goto done;
                which = k;
            }
        }
        if (which >= 0) {
            if (parse_tol(&tol, tol_flags[which], v, which)) goto done;
            continue;
        }
        if ((r = cli_flag_bool(a, "--mark-all"))) {
            if (r < 0) goto done;
            mark = 1;
            continue;
        }
        if ((r = cli_flag_value(argc, argv, &i, "--onnx", &v))) {
            if (r < 0) goto done;
            a = v;
        } else if (a[0] == '-') {
            cli_error("compare: unknown option '%s' (kiln compare --help lists them)", a);
            goto done;
        }
        if (model) {
            cli_error("compare: unexpected argument '%s' (one model only)", a);
            goto done;
        }
        model = a;
    }
    if (!model) {
        cli_error("compare: no model given (usage: kiln compare MODEL [--engine=FILE] [options])");
        goto done;
    }
    if (engine_path && bo.first_build_flag) {
        cli_error("%s has no effect with --engine (the engine was built with its settings)", bo.first_build_flag);
        goto done;
    }
    if (engine_path && mark) {
        cli_error("--mark-all rebuilds the model with every tensor marked: use it without --engine (with the build flags)");
        goto done;
    }
    if (kiln_onnx_parse(model, NULL, &net)) {
        cli_error("%s", kiln_last_error());
        goto done;
    }
    n_out = kiln_network_output_count(net);
    for (int k = 0; k < tol.n; k++) {
        bool found = false;
        for (int o = 0; o < n_out; o++) found |= !strcmp(kiln_network_output_name(net, o), tol.e[k].name);
        if (!found) {
            char names[4096] = "";
            size_t pos = 0;
            for (int o = 0; o < n_out && pos < sizeof names; o++)
                pos += (size_t)snprintf(names + pos, sizeof names - pos, "%s'%s'", o ? ", " : "", kiln_network_output_name(net, o));
            cli_error("tolerance given for '%s', which is not an output; outputs: %s", tol.e[k].name, names);
            goto done;
        }
    }
    int n_in = kiln_network_input_count(net);
    const char *in_names[CLI_MAX_IO];
    if (n_in > CLI_MAX_IO) {
        cli_error("the model has %d inputs; at most %d are supported", n_in, CLI_MAX_IO);
        goto done;
    }
    for (int i = 0; i < n_in; i++) in_names[i] = kiln_network_input_name(net, i);
    for (int k = 0; k < n_load_inputs; k++)
        if (cli_load_inputs(load_inputs[k], in_names, n_in, loaded, &n_loaded)) goto done;
    if (!engine_path && cli_build_check(&bo, net, loaded, n_loaded)) goto done;
    ref = calloc((size_t)n_out + 1, sizeof *ref);
    got = calloc((size_t)n_out + 1, sizeof *got);
    if (!ref || !got) {
        cli_error("out of memory");
        goto done;
    }
    if (ref_dir && load_ref_outputs(ref_dir, net, ref)) goto done;
    if (cli_require_gpu()) goto done;
    if (engine_path) {
        if (kiln_engine_load(engine_path, &eng)) {
            cli_error("--engine: %s", kiln_last_error());
            goto done;
        }
    } else if (cli_build_engine(&bo, net, NULL, &eng, NULL, 0)) {
        goto done;
    }
    if (bo.verbose) {
        char *text = NULL;
        if (!kiln_engine_describe(eng, &text)) printf("%s", text);
        free(text);
    }
    if (cli_engine_setup(&run, eng, &bo.shapes, loaded, n_loaded) || cli_engine_infer(&run)) goto done;
    kiln_host_tensor in[CLI_MAX_IO];
    int n_run_in = run_inputs(&run, in);
    for (int i = 0; i < n_run_in; i++) {
        char d[256];
        cli_format_dims(in[i].rank, in[i].dims, d, sizeof d);
        printf("[I] Input '%s': %s %s (%s)\n", in[i].name, kiln_dtype_name(in[i].dtype), d,
               n_loaded ? "loaded" : "random, never zero");
    }
    if (!ref_dir && kiln_reference_run(net, n_run_in, in, n_out, ref)) {
        cli_error("CPU reference: %s", kiln_network_last_error(net));
        goto done;
    }
    const char *precision = engine_path ? "loaded engine" : bo.fp16 || bo.best ? "fp16" : bo.no_tf32 ? "fp32" : "tf32";
    char ref_what[4200];
    if (ref_dir) snprintf(ref_what, sizeof ref_what, "reference outputs from %s (engine: %s)", ref_dir, precision);
    else snprintf(ref_what, sizeof ref_what, "CPU reference (engine: %s)", precision);
    int failed = 0;
    char failed_names[4096] = "";
    size_t fpos = 0;
    for (int o = 0; o < n_out; o++) {
        const char *name = kiln_network_output_name(net, o);
        int k = output_ordinal(&run, name);
        if (k < 0) {
            printf("[E] Output '%s': not an output of the engine\n", name);
            failed++;
            if (fpos < sizeof failed_names)
                fpos += (size_t)snprintf(failed_names + fpos, sizeof failed_names - fpos, "%s'%s'", fpos ? ", " : "", name);
            continue;
        }
        if (cli_engine_output(&run, k, &got[o])) goto done;
        double atol, rtol;
        err_stat st;
        tol_for(&tol, name, &atol, &rtol, &st);
        cmp_result r;
        if (compare_tensors(&got[o], &ref[o], atol, rtol, st, &r)) goto done;
        print_result(&got[o], &ref[o], &r, atol, rtol, st, ref_what);
        if (!r.pass) {
            failed++;
            if (fpos < sizeof failed_names)
                fpos += (size_t)snprintf(failed_names + fpos, sizeof failed_names - fpos, "%s'%s'", fpos ? ", " : "", name);
        }
    }
    if (mark) mark_all(model, &bo, &run, &tol);
    if (failed) printf("[E] FAILED | %d of %d output(s) over tolerance: %s\n", failed, n_out, failed_names);
    else printf("[I] PASSED | all %d output(s) within tolerance\n", n_out);
    rc = failed ? 1 : 0;
done:
    release_all(ref, n_out);
    release_all(got, n_out);
    free(ref);
    free(got);
    cli_engine_release(&run);
    for (int k = 0; k < n_loaded; k++) kiln_host_tensor_release(&loaded[k]);
    kiln_engine_free(eng);
    kiln_network_free(net);
    cli_build_opts_free(&bo);
    free(tol.e);
    return rc;
}
