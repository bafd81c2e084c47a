/*
 * Flags shared by the GPU commands (build, exec, compare): trtexec's shape syntax
 * ("input:1x3x64x64", several inputs comma-separated, names optionally in single
 * quotes), the builder flags, their checks against the model before any GPU work,
 * the build itself, and --loadInputs.
 */
#include "cli.h"
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_flag_value(int argc, char **argv, int *i, const char *name, const char **value)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n)) return 0;
    if (a[n] == '=') {
        if (!a[n + 1]) {
            cli_error("%s: empty value (%s=VALUE)", name, name);
            return -1;
        }
        *value = a + n + 1;
        return 1;
    }
    if (a[n]) return 0;
    if (*i + 1 >= argc) {
        cli_error("%s needs a value (%s=VALUE)", name, name);
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

int cli_flag_bool(const char *arg, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n)) return 0;
    if (!arg[n]) return 1;
    if (arg[n] == '=') {
        cli_error("%s takes no value ('%s')", name, arg);
        return -1;
    }
    return 0;
}

int cli_parse_int(const char *flag, const char *s, long long lo, long long hi, long long *out)
{
    errno = 0;
    char *end = NULL;
    long long v = (*s >= '0' && *s <= '9') || *s == '-' ? strtoll(s, &end, 10) : 0;
    if (!end || end == s || *end || errno || v < lo || v > hi) {
        cli_error("%s: '%s' is not an integer from %lld to %lld", flag, s, lo, hi);
        return 1;
    }
    *out = v;
    return 0;
}

int cli_parse_double(const char *flag, const char *s, double *out)
{
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v) || v < 0) {
        cli_error("%s: '%s' is not a non-negative number", flag, s);
        return 1;
    }
    *out = v;
    return 0;
}

int cli_split_entry(const char *flag, const char *entry, bool last_colon, char *name, size_t name_len, const char **value)
{
    const char *colon;
    size_t nl;
    const char *nm = entry;
    if (entry[0] == '\'') {
        /* a quoted name may hold ':' and ',' (TensorFlow exports name inputs "x:0") */
        const char *q = strchr(entry + 1, '\'');
        if (!q || q[1] != ':') {
            cli_error("%s: '%s': expected 'NAME':VALUE (the closing quote must be followed by ':')", flag, entry);
            return 1;
        }
        nm = entry + 1;
        nl = (size_t)(q - nm);
        colon = q + 1;
    } else {
        colon = last_colon ? strrchr(entry, ':') : strchr(entry, ':');
        if (!colon) {
            cli_error("%s: '%s': expected NAME:VALUE", flag, entry);
            return 1;
        }
        nl = (size_t)(colon - entry);
    }
    if (nl == 0) {
        cli_error("%s: '%s': the input name is empty", flag, entry);
        return 1;
    }
    if (nl >= name_len) {
        cli_error("%s: '%s': the name is longer than %zu characters", flag, entry, name_len - 1);
        return 1;
    }
    if (!colon[1]) {
        cli_error("%s: '%s': no value after ':'", flag, entry);
        return 1;
    }
    memcpy(name, nm, nl);
    name[nl] = 0;
    *value = colon + 1;
    return 0;
}

/* Splits spec at commas outside single quotes; calls fn per entry. */
static int for_each_entry(const char *flag, const char *spec, int (*fn)(const char *flag, const char *entry, void *arg), void *arg)
{
    size_t len = strlen(spec);
    char *buf = malloc(len + 1);
    if (!buf) return cli_error("out of memory");
    memcpy(buf, spec, len + 1);
    int rc = 0;
    char *start = buf;
    bool quoted = false;
    for (char *c = buf;; c++) {
        if (*c == '\'') quoted = !quoted;
        if ((*c == ',' && !quoted) || !*c) {
            bool last = !*c;
            *c = 0;
            if (!*start) {
                rc = cli_error("%s: '%s': empty entry", flag, spec);
                break;
            }
            if ((rc = fn(flag, start, arg))) break;
            if (last) break;
            start = c + 1;
        }
    }
    free(buf);
    return rc;
}

const cli_shape *cli_shape_find(const cli_shape_list *list, const char *name)
{
    for (int i = 0; i < list->n; i++)
        if (!strcmp(list->v[i].name, name)) return &list->v[i];
    return NULL;
}

void cli_format_dims(int rank, const int64_t *dims, char *buf, size_t len)
{
    size_t pos = 0;
    buf[0] = 0;
    for (int d = 0; d < rank && pos < len; d++)
        pos += (size_t)snprintf(buf + pos, len - pos, "%s%lld", d ? "x" : "", (long long)dims[d]);
    if (rank == 0) snprintf(buf, len, "(scalar)");
}

/* The largest dimension a shape flag may give; keeps later size products far from overflow. */
#define MAX_DIM (1LL << 31)

static int add_shape(const char *flag, const char *entry, void *arg)
{
    cli_shape_list *list = arg;
    cli_shape sh;
    memset(&sh, 0, sizeof sh);
    const char *v;
    if (cli_split_entry(flag, entry, true, sh.name, sizeof sh.name, &v)) return 1;
    const char *p = v;
    while (*p) {
        if (sh.rank == KILN_MAX_DIMS) return cli_error("%s: '%s': more than %d dimensions", flag, entry, KILN_MAX_DIMS);
        if (*p < '0' || *p > '9') return cli_error("%s: '%s': dimensions are positive integers separated by 'x' (e.g. %s:1x3x64x64)", flag, entry, sh.name);
        long long d = 0;
        while (*p >= '0' && *p <= '9') {
            d = d * 10 + (*p - '0');
            if (d > MAX_DIM) return cli_error("%s: '%s': dimension larger than %lld", flag, entry, MAX_DIM);
            p++;
        }
        if (d == 0) return cli_error("%s: '%s': dimension 0 is not supported (dimensions must be >= 1)", flag, entry);
        sh.dims[sh.rank++] = d;
        if (*p == 'x') {
            p++;
            if (!*p) return cli_error("%s: '%s': trailing 'x'", flag, entry);
        } else if (*p) {
            return cli_error("%s: '%s': unexpected '%c' (dimensions are separated by 'x', e.g. %s:1x3x64x64)", flag, entry, *p, sh.name);
        }
    }
    if (cli_shape_find(list, sh.name)) return cli_error("%s: input '%s' is given twice", flag, sh.name);
    if (list->n == CLI_MAX_IO) return cli_error("%s: more than %d inputs", flag, CLI_MAX_IO);
    list->v[list->n++] = sh;
    return 0;
}

int cli_parse_shapes(const char *flag, const char *spec, cli_shape_list *list)
{
    return for_each_entry(flag, spec, add_shape, list);
}

static int parse_precision(const char *flag, const char *s, kiln_precision *p)
{
    if (!strcmp(s, "fp32")) *p = KILN_PREC_FP32;
    else if (!strcmp(s, "tf32")) *p = KILN_PREC_TF32;
    else if (!strcmp(s, "fp16")) *p = KILN_PREC_FP16;
    else return cli_error("%s: unknown precision '%s' (fp32, tf32 or fp16)", flag, s);
    return 0;
}

static int add_pin(const char *flag, const char *entry, void *arg)
{
    cli_build_opts *o = arg;
    cli_layer_precision pin;
    const char *v;
    if (cli_split_entry(flag, entry, true, pin.name, sizeof pin.name, &v) || parse_precision(flag, v, &pin.p)) return 1;
    if (!strcmp(pin.name, "*")) return cli_error("%s: the '*' wildcard is not supported; use --fp16/--noTF32 for every layer", flag);
    for (int i = 0; i < o->n_pins; i++)
        if (!strcmp(o->pins[i].name, pin.name)) return cli_error("%s: layer '%s' is given twice", flag, pin.name);
    cli_layer_precision *np = realloc(o->pins, sizeof *np * (size_t)(o->n_pins + 1));
    if (!np) return cli_error("out of memory");
    o->pins = np;
    o->pins[o->n_pins++] = pin;
    return 0;
}

int cli_build_flag(cli_build_opts *o, int argc, char **argv, int *i)
{
    static const char *const bools[] = {"--fp16", "--noTF32", "--best", "--verbose"};
    int *bool_dst[] = {&o->fp16, &o->no_tf32, &o->best, &o->verbose};
    const char *a = argv[*i];
    for (int k = 0; k < 4; k++) {
        int r = cli_flag_bool(a, bools[k]);
        if (r < 0) return -1;
        if (r) {
            *bool_dst[k] = 1;
            if (k < 3 && !o->first_build_flag) o->first_build_flag = bools[k];
            return 1;
        }
    }
    static const char *const shape_flags[] = {"--shapes", "--minShapes", "--optShapes", "--maxShapes"};
    cli_shape_list *lists[] = {&o->shapes, &o->min, &o->opt, &o->max};
    const char *v = NULL;
    for (int k = 0; k < 4; k++) {
        int r = cli_flag_value(argc, argv, i, shape_flags[k], &v);
        if (r < 0) return -1;
        if (r) {
            if (k > 0 && !o->first_build_flag) o->first_build_flag = shape_flags[k];
            return cli_parse_shapes(shape_flags[k], v, lists[k]) ? -1 : 1;
        }
    }
    int r = cli_flag_value(argc, argv, i, "--layerPrecisions", &v);
    if (r) {
        if (r > 0 && !o->first_build_flag) o->first_build_flag = "--layerPrecisions";
        return r < 0 || for_each_entry("--layerPrecisions", v, add_pin, o) ? -1 : 1;
    }
    r = cli_flag_value(argc, argv, i, "--timingCacheFile", &v);
    if (r) {
        if (r > 0 && !o->first_build_flag) o->first_build_flag = "--timingCacheFile";
        if (r > 0) o->timing_cache = v;
        return r;
    }
    return 0;
}

void cli_build_opts_free(cli_build_opts *o)
{
    free(o->pins);
    o->pins = NULL;
    o->n_pins = 0;
}

/* "'input' float32[1,3,h,w], 'mask' ..." for error messages. */
static void input_list(const kiln_network *net, char *buf, size_t len)
{
    size_t pos = 0;
    buf[0] = 0;
    for (int i = 0; i < kiln_network_input_count(net) && pos < len; i++) {
        char desc[512];
        const char *nm = kiln_network_input_name(net, i);
        if (kiln_network_describe_tensor(net, nm, desc, sizeof desc)) desc[0] = 0;
        pos += (size_t)snprintf(buf + pos, len - pos, "%s'%s' %s", i ? ", " : "", nm, desc);
    }
}

static int model_input(const kiln_network *net, const char *name)
{
    for (int i = 0; i < kiln_network_input_count(net); i++)
        if (!strcmp(kiln_network_input_name(net, i), name)) return i;
    return -1;
}

/* One shape flag entry against the model's declared input. */
static int check_entry(const kiln_network *net, const char *flag, const cli_shape *sh)
{
    char names[4096], given[256];
    int i = model_input(net, sh->name);
    if (i < 0) {
        input_list(net, names, sizeof names);
        return cli_error("%s: '%s' is not an input of the model; inputs: %s", flag, sh->name, names);
    }
    kiln_dtype dt;
    int rank;
    int64_t dims[KILN_MAX_DIMS];
    if (kiln_network_input_shape(net, i, &dt, &rank, dims)) return cli_error("%s: cannot read the shape of input '%s'", flag, sh->name);
    cli_format_dims(sh->rank, sh->dims, given, sizeof given);
    if (rank >= 0 && rank != sh->rank) {
        input_list(net, names, sizeof names);
        return cli_error("%s: '%s:%s' has %d dimensions, the input has %d (%s)", flag, sh->name, given, sh->rank, rank, names);
    }
    for (int d = 0; d < sh->rank && rank >= 0; d++)
        if (dims[d] != KILN_DIM_SYMBOLIC && dims[d] != sh->dims[d]) {
            input_list(net, names, sizeof names);
            return cli_error("%s: '%s:%s': dimension %d is fixed at %lld in the model (%s)", flag, sh->name, given, d,
                             (long long)dims[d], names);
        }
    return 0;
}

static bool input_is_dynamic(const kiln_network *net, int i)
{
    kiln_dtype dt;
    int rank;
    int64_t dims[KILN_MAX_DIMS];
    if (kiln_network_input_shape(net, i, &dt, &rank, dims)) return true;
    if (rank < 0) return true;
    for (int d = 0; d < rank; d++)
        if (dims[d] == KILN_DIM_SYMBOLIC) return true;
    return false;
}

int cli_build_check(cli_build_opts *o, const kiln_network *net, const kiln_host_tensor *inputs, int n_inputs)
{
    cli_shape_list *range[3] = {&o->min, &o->opt, &o->max};
    static const char *const range_flag[3] = {"--minShapes", "--optShapes", "--maxShapes"};
    /* trtexec's rule: only --optShapes (min = max = opt), or all three */
    if ((o->min.n || o->max.n) && !(o->min.n && o->opt.n && o->max.n))
        return cli_error("%s without %s: give only --optShapes, or all of --minShapes, --optShapes and --maxShapes",
                         o->min.n ? "--minShapes" : "--maxShapes", !o->opt.n ? "--optShapes" : !o->min.n ? "--minShapes" : "--maxShapes");
    if (o->opt.n && !o->min.n) {
        o->min = o->opt;
        o->max = o->opt;
    }
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < range[k]->n; j++)
            if (check_entry(net, range_flag[k], &range[k]->v[j])) return 1;
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < range[k]->n; j++) {
            const cli_shape *sh = &range[k]->v[j];
            for (int m = 0; m < 3; m++)
                if (!cli_shape_find(range[m], sh->name))
                    return cli_error("%s has no shape for '%s' (given in %s): the three flags name the same inputs", range_flag[m],
                                     sh->name, range_flag[k]);
        }
    for (int j = 0; j < o->min.n; j++) {
        const cli_shape *mn = &o->min.v[j], *op = cli_shape_find(&o->opt, mn->name), *mx = cli_shape_find(&o->max, mn->name);
        char a[256], b[256], c[256];
        cli_format_dims(mn->rank, mn->dims, a, sizeof a);
        cli_format_dims(op->rank, op->dims, b, sizeof b);
        cli_format_dims(mx->rank, mx->dims, c, sizeof c);
        for (int d = 0; d < mn->rank; d++)
            if (mn->dims[d] > op->dims[d] || op->dims[d] > mx->dims[d])
                return cli_error("'%s': dimension %d needs min <= opt <= max; got --minShapes %s, --optShapes %s, --maxShapes %s",
                                 mn->name, d, a, b, c);
    }
    for (int j = 0; j < o->shapes.n; j++) {
        const cli_shape *sh = &o->shapes.v[j];
        if (check_entry(net, "--shapes", sh)) return 1;
        for (int k = 0; k < n_inputs; k++) {
            if (strcmp(inputs[k].name, sh->name)) continue;
            bool same = inputs[k].rank == sh->rank;
            for (int d = 0; same && d < sh->rank; d++) same = inputs[k].dims[d] == sh->dims[d];
            if (!same) {
                char a[256], b[256];
                cli_format_dims(sh->rank, sh->dims, a, sizeof a);
                cli_format_dims(inputs[k].rank, inputs[k].dims, b, sizeof b);
                return cli_error("input '%s': --shapes gives %s, the --loadInputs file holds %s", sh->name, a, b);
            }
        }
        const cli_shape *mn = cli_shape_find(&o->min, sh->name), *mx = cli_shape_find(&o->max, sh->name);
        if (!mn) continue;
        char a[256], b[256], c[256];
        cli_format_dims(sh->rank, sh->dims, a, sizeof a);
        cli_format_dims(mn->rank, mn->dims, b, sizeof b);
        cli_format_dims(mx->rank, mx->dims, c, sizeof c);
        for (int d = 0; d < sh->rank; d++)
            if (sh->dims[d] < mn->dims[d] || sh->dims[d] > mx->dims[d])
                return cli_error("--shapes: '%s:%s' is outside the range of '%s' (%s to %s), dimension %d", sh->name, a, sh->name, b, c, d);
    }
    /* every dynamic input needs a profile: from the range flags, --shapes, or a loaded tensor */
    for (int i = 0; i < kiln_network_input_count(net); i++) {
        const char *nm = kiln_network_input_name(net, i);
        if (cli_shape_find(&o->min, nm)) continue;
        const cli_shape *sh = cli_shape_find(&o->shapes, nm);
        cli_shape from_file;
        if (!sh && input_is_dynamic(net, i)) {
            for (int k = 0; k < n_inputs && !sh; k++)
                if (!strcmp(inputs[k].name, nm)) {
                    memset(&from_file, 0, sizeof from_file);
                    snprintf(from_file.name, sizeof from_file.name, "%s", nm);
                    from_file.rank = inputs[k].rank;
                    memcpy(from_file.dims, inputs[k].dims, sizeof from_file.dims);
                    if (check_entry(net, "--loadInputs", &from_file)) return 1;
                    sh = &from_file;
                }
            if (!sh) {
                char desc[512];
                if (kiln_network_describe_tensor(net, nm, desc, sizeof desc)) desc[0] = 0;
                return cli_error("input '%s' %s has dynamic dimensions: give its shape with --shapes=%s:... or a range with "
                                 "--minShapes/--optShapes/--maxShapes", nm, desc, nm);
            }
        }
        if (!sh) continue;
        if (o->min.n == CLI_MAX_IO) return cli_error("more than %d inputs", CLI_MAX_IO);
        o->min.v[o->min.n++] = *sh;
        o->opt.v[o->opt.n++] = *sh;
        o->max.v[o->max.n++] = *sh;
    }
    return 0;
}

int cli_require_gpu(void)
{
    const char *why = NULL;
    if (kiln_cuda_available(&why)) return 0;
    static const char prefix[] = "no CUDA device: ";
    if (why && !strncmp(why, prefix, sizeof prefix - 1)) why += sizeof prefix - 1;
    return cli_error("no CUDA device: %s", why && *why ? why : "unknown reason");
}

/* Prints the build error, or keeps it in errbuf for a caller that reports it its own way. */
static int build_fail(char *errbuf, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int build_fail(char *errbuf, size_t errlen, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (errbuf && errlen) snprintf(errbuf, errlen, "%s", msg);
    else cli_error("%s", msg);
    return 1;
}

int cli_build_engine(const cli_build_opts *o, const kiln_network *net, const char *save_path, kiln_engine **out, char *errbuf,
                     size_t errlen)
{
    *out = NULL;
    kiln_builder_config *cfg = NULL;
    if (kiln_builder_config_create(&cfg)) return build_fail(errbuf, errlen, "out of memory");
    kiln_precision p = o->fp16 || o->best ? KILN_PREC_FP16 : o->no_tf32 ? KILN_PREC_FP32 : KILN_PREC_TF32;
    int rc = 1;
    if (kiln_builder_config_set_precision(cfg, p)) {
        build_fail(errbuf, errlen, "cannot set the precision");
        goto done;
    }
    for (int i = 0; i < o->n_pins; i++)
        if (kiln_builder_config_set_layer_precision(cfg, o->pins[i].name, o->pins[i].p)) {
            build_fail(errbuf, errlen, "--layerPrecisions: layer '%s': %s", o->pins[i].name, kiln_builder_config_last_error(cfg));
            goto done;
        }
    for (int j = 0; j < o->min.n; j++) {
        const cli_shape *mn = &o->min.v[j], *op = cli_shape_find(&o->opt, mn->name), *mx = cli_shape_find(&o->max, mn->name);
        if (!op || !mx || kiln_builder_config_set_shape_range(cfg, mn->name, mn->rank, mn->dims, op->dims, mx->dims)) {
            build_fail(errbuf, errlen, "shape range for '%s': %s", mn->name, kiln_builder_config_last_error(cfg));
            goto done;
        }
    }
    if (o->timing_cache && kiln_builder_config_set_timing_cache(cfg, o->timing_cache)) {
        build_fail(errbuf, errlen, "--timingCacheFile: %s", kiln_builder_config_last_error(cfg));
        goto done;
    }
    kiln_builder_config_set_verbose(cfg, o->verbose);
    if (kiln_build(net, cfg, out)) {
        build_fail(errbuf, errlen, "build: %s", kiln_last_error());
        goto done;
    }
    fputs(kiln_engine_build_log(*out), stdout);
    if (save_path && kiln_engine_save(*out, save_path)) {
        build_fail(errbuf, errlen, "--saveEngine: %s", kiln_last_error());
        kiln_engine_free(*out);
        *out = NULL;
        goto done;
    }
    rc = 0;
done:
    kiln_builder_config_free(cfg);
    return rc;
}

typedef struct load_ctx {
    const char *const *names;
    int n_names;
    kiln_host_tensor *out;
    int *n_out;
} load_ctx;

static int name_index(const char *const *names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return i;
    return -1;
}

static void names_text(const char *const *names, int n, char *buf, size_t len)
{
    size_t pos = 0;
    buf[0] = 0;
    for (int i = 0; i < n && pos < len; i++) pos += (size_t)snprintf(buf + pos, len - pos, "%s'%s'", i ? ", " : "", names[i]);
}

static int load_one(const char *flag, const char *entry, void *arg)
{
    load_ctx *lc = arg;
    char name[256], list[4096];
    const char *file;
    if (cli_split_entry(flag, entry, false, name, sizeof name, &file)) return 1;
    if (name_index(lc->names, lc->n_names, name) < 0) {
        names_text(lc->names, lc->n_names, list, sizeof list);
        return cli_error("%s: '%s' is not an input; inputs: %s", flag, name, list);
    }
    for (int k = 0; k < *lc->n_out; k++)
        if (!strcmp(lc->out[k].name, name)) return cli_error("%s: input '%s' is given twice", flag, name);
    kiln_host_tensor *t = &lc->out[*lc->n_out];
    if (cli_read_tensor(file, t)) return cli_error("%s: '%s': %s", flag, file, kiln_last_error());
    snprintf(t->name, sizeof t->name, "%s", name);
    (*lc->n_out)++;
    return 0;
}

int cli_load_inputs(const char *spec, const char *const *names, int n_names, kiln_host_tensor *out, int *n_out)
{
    struct stat st;
    if (!strchr(spec, ':') && stat(spec, &st) == 0 && S_ISDIR(st.st_mode)) {
        /* ONNX test-data layout: DIR/input_N.pb (or .npy), N in input order */
        for (int i = 0; i < n_names; i++) {
            char path[4096];
            for (int k = 0; k < *n_out; k++)
                if (!strcmp(out[k].name, names[i])) return cli_error("--loadInputs: input '%s' is given twice", names[i]);
            snprintf(path, sizeof path, "%s/input_%d.pb", spec, i);
            if (stat(path, &st) != 0) snprintf(path, sizeof path, "%s/input_%d.npy", spec, i);
            if (stat(path, &st) != 0)
                return cli_error("--loadInputs: '%s' has no input_%d.pb or input_%d.npy (for input '%s')", spec, i, i, names[i]);
            kiln_host_tensor *t = &out[*n_out];
            if (cli_read_tensor(path, t)) return cli_error("--loadInputs: '%s': %s", path, kiln_last_error());
            snprintf(t->name, sizeof t->name, "%s", names[i]);
            (*n_out)++;
        }
        return 0;
    }
    if (!strchr(spec, ':')) return cli_error("--loadInputs: '%s': expected NAME:FILE[,NAME:FILE...] or a directory of input_N.pb", spec);
    load_ctx lc = {names, n_names, out, n_out};
    return for_each_entry("--loadInputs", spec, load_one, &lc);
}
