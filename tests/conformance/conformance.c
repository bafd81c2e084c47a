/*
 * Conformance runner: runs ONNX's own test cases (model.onnx + test_data_set_*)
 * on every backend present and prints the support matrix.
 *
 *   kiln_conformance [--dir DIR]... [--filter SUBSTR] [-v] [--known FILE] [--matrix FILE]
 *                    [--backend cpu|cuda]
 *
 * With --backend cuda each case is built into a GPU engine (fp32, TF32 off, the
 * case's input shapes) and run there; exit 77 (skipped) without a GPU.
 *
 * A case is PASS, FAIL (a supported op computed a wrong result or errored),
 * UNSUPPORTED (an op, type or mode kiln does not implement: listed, never
 * counted as passed) or XFAIL (a failure listed in --known with its reason).
 * Exit status is non-zero when any case FAILs.
 */
#include "kiln.h"
#include "cuda/gpu.h"
#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* The op list of the core issue: cases made only of these are "in scope". */
static const char *const scope_ops[] = {
    "Conv", "ConvTranspose", "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Clip", "Elu", "Selu",
    "HardSigmoid", "HardSwish", "Softplus", "Erf", "Gelu", "Mish", "Add", "Sub", "Mul", "Div", "Pow",
    "Sqrt", "Exp", "Log", "Abs", "Neg", "Reciprocal", "Floor", "Ceil", "Round", "Max", "Min", "Sum",
    "Mean", "Where", "Equal", "Less", "Greater", "Not", "And", "Or", "Concat", "Split", "Slice",
    "Gather", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Expand", "Tile", "Shape",
    "Size", "ConstantOfShape", "Constant", "Identity", "Cast", "Range", "DepthToSpace",
    "SpaceToDepth", "Resize", "Upsample", "Pad", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "Gemm", "MatMul",
    "Softmax", "LogSoftmax", "BatchNormalization", "InstanceNormalization", "LayerNormalization",
    "DeformConv", "GridSample", NULL};

/* Per-case tolerance where ONNX's default (rtol 1e-3, atol 1e-7) is too tight, with the reason. */
typedef struct tol_override {
    const char *name_prefix;
    double rtol, atol;
    const char *why;
} tol_override;

static const tol_override tol_overrides[] = {
    /* float16 results carry ~1e-3 relative rounding of their own */
    {"test_cast_FLOAT_to_FLOAT16", 1e-3, 1e-3, "float16 rounding of tiny values"},
    {NULL, 0, 0, NULL},
};

typedef enum { R_PASS, R_FAIL, R_UNSUP, R_XFAIL } result;
static const char *const result_name[] = {"PASS", "FAIL", "UNSUPPORTED", "XFAIL"};

typedef struct op_row {
    char op[64];
    int n[4];
} op_row;

static op_row rows[512];
static int n_rows;
static int verbose;
static int use_cuda;
static char known[1024][128];
static int n_known;

static op_row *row_for(const char *op)
{
    for (int i = 0; i < n_rows; i++)
        if (!strcmp(rows[i].op, op)) return &rows[i];
    if (n_rows == 512) return &rows[511];
    snprintf(rows[n_rows].op, sizeof rows[n_rows].op, "%s", op);
    return &rows[n_rows++];
}

static bool in_scope(const char *op)
{
    for (int i = 0; scope_ops[i]; i++)
        if (!strcmp(scope_ops[i], op)) return true;
    return false;
}

static bool is_known(const char *name)
{
    for (int i = 0; i < n_known; i++)
        if (!strcmp(known[i], name)) return true;
    return false;
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static double elem(const kiln_host_tensor *t, int64_t i)
{
    const void *p = t->data;
    switch (t->dtype) {
    case KILN_DT_FLOAT: return ((const float *)p)[i];
    case KILN_DT_DOUBLE: return ((const double *)p)[i];
    case KILN_DT_UINT8: case KILN_DT_BOOL: return ((const uint8_t *)p)[i];
    case KILN_DT_INT8: return ((const int8_t *)p)[i];
    case KILN_DT_UINT16: return ((const uint16_t *)p)[i];
    case KILN_DT_INT16: return ((const int16_t *)p)[i];
    case KILN_DT_INT32: return ((const int32_t *)p)[i];
    case KILN_DT_INT64: return (double)((const int64_t *)p)[i];
    case KILN_DT_UINT32: return ((const uint32_t *)p)[i];
    case KILN_DT_UINT64: return (double)((const uint64_t *)p)[i];
    case KILN_DT_FLOAT16: {
        uint16_t h = ((const uint16_t *)p)[i];
        int e = (h >> 10) & 31, m = h & 1023;
        double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);
        return (h & 0x8000) ? -v : v;
    }
    case KILN_DT_BFLOAT16: {
        uint32_t b = (uint32_t)((const uint16_t *)p)[i] << 16;
        float f;
        memcpy(&f, &b, 4);
        return f;
    }
    default: return NAN;
    }
}

/* Compares; on mismatch writes why into msg. */
static bool compare(const kiln_host_tensor *got, const kiln_host_tensor *exp, double rtol, double atol,
                    char *msg, size_t len)
{
    if (got->dtype != exp->dtype) {
        snprintf(msg, len, "output '%s': dtype %s, expected %s", exp->name, kiln_dtype_name(got->dtype), kiln_dtype_name(exp->dtype));
        return false;
    }
    bool same_shape = got->rank == exp->rank;
    for (int i = 0; same_shape && i < got->rank; i++) same_shape = got->dims[i] == exp->dims[i];
    if (!same_shape) {
        char a[200] = "", b[200] = "";
        size_t pa = 0, pb = 0;
        for (int i = 0; i < got->rank; i++) pa += (size_t)snprintf(a + pa, sizeof a - pa, "%s%lld", i ? "," : "", (long long)got->dims[i]);
        for (int i = 0; i < exp->rank; i++) pb += (size_t)snprintf(b + pb, sizeof b - pb, "%s%lld", i ? "," : "", (long long)exp->dims[i]);
        snprintf(msg, len, "output '%s': shape [%s], expected [%s]", exp->name, a, b);
        return false;
    }
    bool exact = !(exp->dtype == KILN_DT_FLOAT || exp->dtype == KILN_DT_DOUBLE || exp->dtype == KILN_DT_FLOAT16 ||
                   exp->dtype == KILN_DT_BFLOAT16);
    int64_t n = kiln_host_tensor_numel(exp);
    if (exact && exp->dtype == KILN_DT_INT64) {
        for (int64_t i = 0; i < n; i++)
            if (((const int64_t *)got->data)[i] != ((const int64_t *)exp->data)[i]) {
                snprintf(msg, len, "output '%s'[%lld]: %lld, expected %lld", exp->name, (long long)i,
                         (long long)((const int64_t *)got->data)[i], (long long)((const int64_t *)exp->data)[i]);
                return false;
            }
        return true;
    }
    for (int64_t i = 0; i < n; i++) {
        double g = elem(got, i), e = elem(exp, i);
        if (isnan(e) && isnan(g)) continue;
        if (isinf(e) && g == e) continue;
        bool ok = exact ? g == e : fabs(g - e) <= atol + rtol * fabs(e);
        if (!ok) {
            snprintf(msg, len, "output '%s'[%lld]: %.9g, expected %.9g (rtol %g, atol %g)", exp->name, (long long)i, g, e, rtol, atol);
            return false;
        }
    }
    return true;
}

/* Builds the case for the GPU at its exact input shapes and runs it once. */
static kiln_status run_on_gpu(kiln_network *net, int n_in, kiln_host_tensor *in, int n_out, kiln_host_tensor *out,
                              char *msg, size_t len)
{
    kiln_builder_config *cfg = NULL;
    kiln_engine *eng = NULL;
    kiln_context *ctx = NULL;
    kiln_err err = {{0}};
    void *stream = NULL;
    void *dev[64] = {0};
    /* Values that decide shapes (Resize scales, Reshape shape, Pad pads, axes...) must be known when
     * the engine is built, as TensorRT requires too: small inputs read at a position other than 0
     * become constants with the case's values. */
    char names[64][256];
    bool as_const[64] = {false};
    if (n_in > 64) return KILN_ERR_LIMIT;
    for (int i = 0; i < n_in; i++) snprintf(names[i], sizeof names[i], "%s", kiln_network_input_name(net, i));
    for (int i = 0; i < n_in; i++) {
        int t = kiln__net_find_tensor(net, names[i]);
        if (kiln_host_tensor_numel(&in[i]) > 64) continue;
        for (int k = 0; k < net->n_nodes && !as_const[i]; k++)
            for (int j = 1; j < net->nodes[k].n_in; j++)
                if (net->nodes[k].in[j] == t) as_const[i] = true;
    }
    for (int i = 0; i < n_in; i++)
        if (as_const[i] && kiln_network_add_constant(net, names[i], in[i].dtype, in[i].rank, in[i].dims, in[i].data, in[i].nbytes)) {
            snprintf(msg, len, "making input '%s' a constant: %s", names[i], kiln_network_last_error(net));
            return KILN_ERR_INTERNAL;
        }
    kiln_status s = kiln_builder_config_create(&cfg);
    if (!s) s = kiln_builder_config_set_precision(cfg, KILN_PREC_FP32);
    for (int i = 0; i < n_in && !s; i++)
        if (!as_const[i]) s = kiln_builder_config_set_shape_range(cfg, names[i], in[i].rank, in[i].dims, in[i].dims, in[i].dims);
    if (!s && (s = kiln_build(net, cfg, &eng))) snprintf(msg, len, "build: %s", kiln_last_error());
    if (!s && (s = kiln_context_create(eng, &ctx))) snprintf(msg, len, "context: %s", kiln_last_error());
    if (!s && n_in + n_out > 64) s = KILN_ERR_LIMIT;
    if (!s) s = kiln__gpu_stream_create(&stream, &err);
    for (int i = 0; i < n_in && !s; i++) {
        const char *name = names[i];
        if (as_const[i]) continue;
        s = kiln_context_set_input_shape(ctx, name, in[i].rank, in[i].dims);
        if (!s) s = kiln__gpu_malloc(&dev[i], in[i].nbytes + 16, &err);
        if (!s) s = kiln__gpu_memcpy_h2d(dev[i], in[i].data, in[i].nbytes, stream, &err);
        if (!s) s = kiln_context_set_tensor_address(ctx, name, dev[i]);
    }
    for (int o = 0; o < n_out && !s; o++) {
        const char *name = kiln_network_output_name(net, o);
        memset(&out[o], 0, sizeof out[o]);
        snprintf(out[o].name, sizeof out[o].name, "%s", name);
        s = kiln_context_get_shape(ctx, name, &out[o].rank, out[o].dims);
        out[o].dtype = kiln_context_get_dtype(ctx, name);
        int64_t numel = kiln_host_tensor_numel(&out[o]);
        out[o].nbytes = (size_t)(numel < 0 ? 0 : numel) * kiln_dtype_size(out[o].dtype);
        out[o].data = malloc(out[o].nbytes + 16);
        if (!s) s = kiln__gpu_malloc(&dev[n_in + o], out[o].nbytes + 16, &err);
        if (!s) s = kiln_context_set_tensor_address(ctx, name, dev[n_in + o]);
    }
    if (!s) s = kiln_context_enqueue(ctx, stream);
    for (int o = 0; o < n_out && !s; o++) s = kiln__gpu_memcpy_d2h(out[o].data, dev[n_in + o], out[o].nbytes, stream, &err);
    if (!s) s = kiln__gpu_sync(stream, &err);
    if (s && !msg[0]) snprintf(msg, len, "run: %s%s", err.msg, ctx ? kiln_context_last_error(ctx) : "");
    for (int i = 0; i < 64; i++) kiln__gpu_free(dev[i]);
    kiln__gpu_stream_destroy(stream);
    kiln_context_free(ctx);
    kiln_engine_free(eng);
    kiln_builder_config_free(cfg);
    return s;
}

static result run_case(const char *dir, const char *name, bool *scope_out, char *msg, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    kiln_network *net = NULL;
    kiln_status s = kiln_onnx_parse(path, NULL, &net);
    if (s) {
        snprintf(msg, len, "import: %s", kiln_last_error());
        return s == KILN_ERR_UNSUPPORTED ? R_UNSUP : R_FAIL;
    }
    /* ops of this case, into the matrix */
    bool scope = true;
    char unsup[2048];
    int n_unsup = kiln_network_unsupported_report(net, unsup, sizeof unsup);
    int n_nodes = kiln_network_node_count(net);
    const char *ops[256];
    int n_ops = 0;
    for (int i = 0; i < n_nodes; i++) {
        const char *op = kiln_network_node_op(net, i);
        scope &= in_scope(op);
        bool dup = false;
        for (int j = 0; j < n_ops; j++) dup |= !strcmp(ops[j], op);
        if (!dup && n_ops < 256) ops[n_ops++] = op;
    }
    *scope_out = scope && n_nodes > 0;
    result r = R_PASS;
    if (n_unsup > 0) {
        snprintf(msg, len, "unsupported: %s", unsup);
        char *nl = strchr(msg, '\n');
        if (nl && nl[1] == 0) *nl = 0;
        r = R_UNSUP;
    }
    double rtol = 1e-3, atol = 1e-7;
    for (int i = 0; tol_overrides[i].name_prefix; i++)
        if (!strncmp(name, tol_overrides[i].name_prefix, strlen(tol_overrides[i].name_prefix))) {
            rtol = tol_overrides[i].rtol;
            atol = tol_overrides[i].atol;
        }
    int n_sets = 0;
    for (int set = 0; r == R_PASS; set++) {
        char sdir[4200];
        snprintf(sdir, sizeof sdir, "%s/test_data_set_%d", dir, set);
        if (!is_dir(sdir)) break;
        n_sets++;
        int n_in = kiln_network_input_count(net), n_out = kiln_network_output_count(net);
        kiln_host_tensor *in = calloc((size_t)n_in + 1, sizeof *in);
        kiln_host_tensor *out = calloc((size_t)n_out + 1, sizeof *out);
        kiln_host_tensor *exp = calloc((size_t)n_out + 1, sizeof *exp);
        for (int i = 0; i < n_in && r == R_PASS; i++) {
            snprintf(path, sizeof path, "%s/input_%d.pb", sdir, i);
            if (kiln_tensor_read_pb(path, &in[i])) {
                snprintf(msg, len, "reading %s: %s", path, kiln_last_error());
                r = kiln_last_error()[0] && strstr(kiln_last_error(), "unsupported") ? R_UNSUP : R_FAIL;
            }
            in[i].name[0] = 0; /* by position */
        }
        if (r == R_PASS) {
            if (use_cuda) {
                msg[0] = 0;
                s = run_on_gpu(net, n_in, in, n_out, out, msg, len);
            } else {
                s = kiln_reference_run(net, n_in, in, n_out, out);
                if (s) snprintf(msg, len, "run: %s", kiln_network_last_error(net));
            }
            if (s) r = s == KILN_ERR_UNSUPPORTED ? R_UNSUP : R_FAIL;
        }
        for (int o = 0; o < n_out && r == R_PASS; o++) {
            snprintf(path, sizeof path, "%s/output_%d.pb", sdir, o);
            if (!is_file(path)) continue;
            if (kiln_tensor_read_pb(path, &exp[o])) {
                snprintf(msg, len, "reading %s: %s", path, kiln_last_error());
                r = R_FAIL;
                break;
            }
            snprintf(exp[o].name, sizeof exp[o].name, "%s", kiln_network_output_name(net, o));
            if (!compare(&out[o], &exp[o], rtol, atol, msg, len)) r = R_FAIL;
        }
        for (int i = 0; i < n_in; i++) kiln_host_tensor_release(&in[i]);
        for (int o = 0; o < n_out; o++) {
            kiln_host_tensor_release(&out[o]);
            kiln_host_tensor_release(&exp[o]);
        }
        free(in);
        free(out);
        free(exp);
    }
    if (r == R_PASS && n_sets == 0) {
        snprintf(msg, len, "no test_data_set_0");
        r = R_FAIL;
    }
    if (r == R_FAIL && is_known(name)) r = R_XFAIL;
    for (int i = 0; i < n_ops; i++) row_for(ops[i])->n[r]++;
    kiln_network_free(net);
    return r;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void load_known(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "kiln_conformance: cannot read known-failures file '%s'\n", path);
        exit(2);
    }
    char line[1024];
    while (fgets(line, sizeof line, f) && n_known < 1024) {
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, " \t\n")] = 0;
        snprintf(known[n_known++], sizeof known[0], "%s", line);
    }
    fclose(f);
}

int main(int argc, char **argv)
{
    const char *dirs[16];
    int n_dirs = 0;
    const char *filter = NULL, *matrix_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc && n_dirs < 16) dirs[n_dirs++] = argv[++i];
        else if (!strcmp(argv[i], "--filter") && i + 1 < argc) filter = argv[++i];
        else if (!strcmp(argv[i], "--known") && i + 1 < argc) load_known(argv[++i]);
        else if (!strcmp(argv[i], "--matrix") && i + 1 < argc) matrix_path = argv[++i];
        else if (!strcmp(argv[i], "-v")) verbose = 1;
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc) {
            const char *b = argv[++i];
            if (!strcmp(b, "cuda")) use_cuda = 1;
            else if (strcmp(b, "cpu")) {
                fprintf(stderr, "kiln_conformance: unknown backend '%s' (cpu, cuda)\n", b);
                return 2;
            }
        }
        else {
            fprintf(stderr, "usage: kiln_conformance [--dir DIR]... [--filter SUBSTR] [--known FILE] [--matrix FILE] [--backend cpu|cuda] [-v]\n");
            return 2;
        }
    }
    const char *why = NULL;
    if (use_cuda && !kiln_cuda_available(&why)) {
        printf("SKIPPED: %s\n", why);
        return 77;
    }
    if (!n_dirs) {
        fprintf(stderr, "kiln_conformance: give at least one --dir\n");
        return 2;
    }
    int totals[4] = {0}, scope_total = 0, scope_pass = 0;
    FILE *mf = matrix_path ? fopen(matrix_path, "w") : NULL;
    for (int d = 0; d < n_dirs; d++) {
        DIR *dh = opendir(dirs[d]);
        if (!dh) {
            fprintf(stderr, "kiln_conformance: cannot open '%s'\n", dirs[d]);
            return 2;
        }
        char **names = NULL;
        int n_names = 0;
        struct dirent *e;
        while ((e = readdir(dh))) {
            if (strncmp(e->d_name, "test_", 5)) continue;
            if (filter && !strstr(e->d_name, filter)) continue;
            names = realloc(names, sizeof *names * (size_t)(n_names + 1));
            names[n_names++] = strdup(e->d_name);
        }
        closedir(dh);
        if (names) qsort(names, (size_t)n_names, sizeof *names, cmp_str);
        for (int i = 0; i < n_names; i++) {
            char dir[4096], msg[2048] = "";
            snprintf(dir, sizeof dir, "%s/%s", dirs[d], names[i]);
            char model[4200];
            snprintf(model, sizeof model, "%s/model.onnx", dir);
            if (!is_file(model)) {
                free(names[i]);
                continue;
            }
            /* in scope: every op of the case is on the core list */
            bool scope = false;
            result r = run_case(dir, names[i], &scope, msg, sizeof msg);
            totals[r]++;
            if (scope) {
                scope_total++;
                scope_pass += r == R_PASS;
            }
            if (verbose || r == R_FAIL)
                printf("%-11s %s%s%s\n", result_name[r], names[i], msg[0] ? "  -- " : "", msg);
            if (mf) fprintf(mf, "%s\t%s\t%s\t%s\n", result_name[r], scope ? "scope" : "-", names[i], msg);
            free(names[i]);
        }
        free(names);
    }
    qsort(rows, (size_t)n_rows, sizeof rows[0], (int (*)(const void *, const void *))strcmp);
    printf("\nSupport matrix (cases by op; a case counts for every op it contains)\n");
    printf("%-28s %6s %6s %6s %6s\n", "op", "pass", "fail", "unsup", "xfail");
    for (int i = 0; i < n_rows; i++)
        printf("%-28s %6d %6d %6d %6d\n", rows[i].op, rows[i].n[R_PASS], rows[i].n[R_FAIL], rows[i].n[R_UNSUP], rows[i].n[R_XFAIL]);
    printf("\ncases: %d passed, %d failed, %d unsupported, %d known failures\n", totals[R_PASS], totals[R_FAIL], totals[R_UNSUP], totals[R_XFAIL]);
    printf("core-issue scope (every op on the core list): %d of %d cases pass\n", scope_pass, scope_total);
    if (mf) fclose(mf);
    return totals[R_FAIL] ? 1 : 0;
}
