/*
 * GPU op test: every node of ONNX's node tests (and any model given) that has
 * a GPU op runs on the GPU and on the CPU reference with the same inputs, and
 * the results are compared — in fp32 and fp16, row-major and NHWC layouts.
 * Like ggml's test-backend-ops: the CPU is the oracle.
 *
 *   kiln_gpu_ops_test --dir DIR... [--filter S] [--precision fp32|fp16] [--layout nchw|nhwc]
 *                     [--random] [-v]
 *
 * Prints SKIPPED and exits 0 when no GPU is present (CTest maps that to "skipped").
 */
#include "cpu/cpu.h"
#include "cuda/gpu.h"
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int verbose, fp16, nhwc, randomize;
static int n_pass, n_fail, n_skip;
static kiln_cuda_exec ex;
static void *stream;
static uint32_t rng = 0x12345678u;

static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return (float)(rng & 0xffffff) / (float)0x800000 - 1.0f;
}

static bool is_float(kiln_dtype dt) { return dt == KILN_DT_FLOAT || dt == KILN_DT_FLOAT16; }

/* In fp16 runs the GPU sees float values rounded to fp16: give the CPU oracle the same values. */
static void round_to_fp16(kiln_value *v)
{
    if (!fp16 || v->dtype != KILN_DT_FLOAT || !v->data) return;
    int64_t n = kiln__value_numel(v);
    for (int64_t k = 0; k < n; k++) ((float *)v->data)[k] = kiln__f16_to_f32(kiln__f32_to_f16(((float *)v->data)[k]));
}

/* Device dtype for a host value under the test precision. */
static kiln_dtype dev_dtype(kiln_dtype dt) { return (dt == KILN_DT_FLOAT && fp16) ? KILN_DT_FLOAT16 : dt; }

static bool cur_row_major; /* the op under test takes row-major only */

static kiln_cuda_tensor describe(const kiln_value *v, kiln_dtype dt)
{
    kiln_cuda_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.rank = v->shape.rank;
    for (int i = 0; i < t.rank; i++) t.dims[i] = v->shape.d[i].add;
    kiln__cuda_strides(&t, nhwc && !cur_row_major && is_float(dt) ? KILN_LAYOUT_NHWC : KILN_LAYOUT_ROW_MAJOR);
    return t;
}

static size_t span_elems(const kiln_cuda_tensor *t)
{
    size_t n = 1;
    for (int i = 0; i < t->rank; i++) {
        if (t->dims[i] == 0) return 0;
        n += (size_t)((t->dims[i] - 1) * t->strides[i]);
    }
    return n;
}

/* Host value (row-major) -> device tensor with t's dtype and strides. */
static kiln_status upload(const kiln_value *v, kiln_cuda_tensor *t, kiln_err *err)
{
    size_t es = kiln_dtype_size(t->dtype), n = span_elems(t);
    int64_t numel = kiln__value_numel(v);
    uint8_t *buf = calloc(n + 1, es);
    if (!buf) return KILN_ERR_OUT_OF_MEMORY;
    int64_t idx[KILN_MAX_DIMS] = {0};
    for (int64_t k = 0; k < numel; k++) {
        int64_t off = 0;
        for (int i = 0; i < t->rank; i++) off += idx[i] * t->strides[i];
        if (t->dtype == KILN_DT_FLOAT16 && v->dtype == KILN_DT_FLOAT)
            ((uint16_t *)buf)[off] = kiln__f32_to_f16(((const float *)v->data)[k]);
        else
            memcpy(buf + (size_t)off * es, (const uint8_t *)v->data + (size_t)k * es, es);
        for (int i = t->rank - 1; i >= 0; i--) {
            if (++idx[i] < t->dims[i]) break;
            idx[i] = 0;
        }
    }
    kiln_status s = kiln__gpu_malloc(&t->ptr, (n + 1) * es, err);
    if (!s) s = kiln__gpu_memcpy_h2d(t->ptr, buf, n * es, stream, err);
    if (!s) s = kiln__gpu_sync(stream, err);
    free(buf);
    return s;
}

/* Device tensor -> float64 array in row-major order. */
static double *download(const kiln_cuda_tensor *t, int64_t numel, kiln_err *err)
{
    size_t es = kiln_dtype_size(t->dtype), n = span_elems(t);
    uint8_t *buf = calloc(n + 1, es);
    double *out = calloc((size_t)numel + 1, sizeof *out);
    if (!buf || !out || kiln__gpu_memcpy_d2h(buf, t->ptr, n * es, stream, err) || kiln__gpu_sync(stream, err)) {
        free(buf);
        free(out);
        return NULL;
    }
    kiln_value tmp = {.dtype = t->dtype, .data = buf};
    int64_t idx[KILN_MAX_DIMS] = {0};
    for (int64_t k = 0; k < numel; k++) {
        int64_t off = 0;
        for (int i = 0; i < t->rank; i++) off += idx[i] * t->strides[i];
        out[k] = kiln__value_get_f64(&tmp, off);
        for (int i = t->rank - 1; i >= 0; i--) {
            if (++idx[i] < t->dims[i]) break;
            idx[i] = 0;
        }
    }
    free(buf);
    return out;
}

static void test_node(const char *case_name, const kiln_network *net, const kiln_node *nd, const kiln_value *const *in,
                      const kiln_value *ref, bool *input_is_const)
{
    const kiln_cuda_op *op = kiln__cuda_op_find(nd->domain, nd->op_type);
    if (!op) return;
    if (op->supports && !op->supports(nd, in, ref)) {
        n_skip++;
        if (verbose) printf("SKIP  %s: node '%s' (%s): not supported on the GPU for these types\n", case_name, nd->name, nd->op_type);
        return;
    }
    kiln_err err = {{0}};
    cur_row_major = op->row_major;
    kiln_cuda_tensor din[64], dout[64];
    const kiln_value *host[64];
    memset(din, 0, sizeof din);
    memset(dout, 0, sizeof dout);
    void *state = NULL, *ws = NULL;
    kiln_status s = KILN_OK;
    for (int j = 0; j < nd->n_in && !s; j++) {
        host[j] = NULL;
        if (!in[j]) continue;
        /* constants and small integer tensors are known on the host, as the runtime does */
        if (input_is_const[j] || (in[j]->dtype == KILN_DT_INT64 && kiln__value_numel(in[j]) <= 64)) host[j] = in[j];
        din[j] = describe(in[j], dev_dtype(in[j]->dtype));
        s = upload(in[j], &din[j], &err);
    }
    for (int j = 0; j < nd->n_out && !s; j++) {
        if (nd->out[j] < 0) continue;
        dout[j] = describe(&ref[j], dev_dtype(ref[j].dtype));
        size_t bytes = (span_elems(&dout[j]) + 1) * kiln_dtype_size(dout[j].dtype);
        s = kiln__gpu_malloc(&dout[j].ptr, bytes, &err);
        /* poison: every element must be written */
        if (!s) s = kiln__gpu_memset(dout[j].ptr, 0x7f, bytes, stream, &err);
    }
    kiln_dtype compute = fp16 ? KILN_DT_FLOAT16 : KILN_DT_FLOAT;
    if (!s && op->prepare) s = op->prepare(nd, nd->params, host, compute, nhwc ? KILN_LAYOUT_NHWC : KILN_LAYOUT_ROW_MAJOR, &state, &err);
    kiln_cuda_launch l = {.node = nd, .params = nd->params, .in = din, .host = host, .out = dout, .state = state, .tactic = 0, .ex = &ex};
    int n_tactics = (!s && op->tactic_count) ? op->tactic_count(&l) : 1;
    for (int tac = 0; tac < n_tactics && !s; tac++) {
        l.tactic = tac;
        size_t wsb = op->workspace ? op->workspace(&l) : 0;
        if (wsb) {
            s = kiln__gpu_malloc(&ws, wsb, &err);
            ex.workspace = ws;
            ex.workspace_bytes = wsb;
        }
        if (!s) s = op->launch(&l, &err);
        if (!s) s = kiln__gpu_sync(stream, &err);
        for (int j = 0; j < nd->n_out && !s; j++) {
            if (nd->out[j] < 0) continue;
            int64_t numel = kiln__value_numel(&ref[j]);
            double *got = download(&dout[j], numel, &err);
            if (!got) {
                s = KILN_ERR_BACKEND;
                break;
            }
            double maxref = 0;
            for (int64_t k = 0; k < numel; k++) {
                double r = kiln__value_get_f64(&ref[j], k);
                if (isfinite(r) && fabs(r) > maxref) maxref = fabs(r);
            }
            bool flt = is_float(ref[j].dtype) || ref[j].dtype == KILN_DT_DOUBLE;
            double atol = flt ? (fp16 ? 2e-3 * (maxref > 1 ? maxref : 1) : 1e-5 * (maxref > 1 ? maxref : 1)) : 0;
            double rtol = flt ? (fp16 ? 1e-2 : 1e-4) : 0;
            for (int64_t k = 0; k < numel; k++) {
                double r = kiln__value_get_f64(&ref[j], k), g = got[k];
                if (isnan(r) && isnan(g)) continue;
                if (isinf(r) && g == r) continue;
                if (!(fabs(g - r) <= atol + rtol * fabs(r))) {
                    s = kiln__fail(&err, KILN_ERR_INTERNAL, "output %d [%lld]: gpu %.7g, cpu %.7g (tactic %d)", j, (long long)k, g, r, tac);
                    break;
                }
            }
            free(got);
        }
        kiln__gpu_free(ws);
        ws = NULL;
    }
    if (state && op->release) op->release(state);
    for (int j = 0; j < nd->n_in; j++) kiln__gpu_free(din[j].ptr);
    for (int j = 0; j < nd->n_out; j++) kiln__gpu_free(dout[j].ptr);
    if (s == KILN_ERR_UNSUPPORTED) {
        n_skip++;
        if (verbose) printf("SKIP  %s: node '%s' (%s): %s\n", case_name, nd->name, nd->op_type, err.msg);
    } else if (s) {
        n_fail++;
        printf("FAIL  %s: node '%s' (%s) %s %s: %s\n", case_name, nd->name, nd->op_type, fp16 ? "fp16" : "fp32",
               nhwc ? "nhwc" : "nchw", err.msg);
    } else {
        n_pass++;
        if (verbose) printf("PASS  %s: node '%s' (%s)\n", case_name, nd->name, nd->op_type);
    }
    (void)net;
}

static void run_case(const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    kiln_network *net = NULL;
    if (kiln_onnx_parse(path, NULL, &net)) return;
    int *order = NULL;
    kiln_err err = {{0}};
    kiln_value *vals = calloc((size_t)net->n_tensors + 1, sizeof *vals);
    bool *owned = calloc((size_t)net->n_tensors + 1, sizeof *owned);
    bool any_gpu = false;
    for (int i = 0; i < net->n_nodes; i++) any_gpu |= kiln__cuda_op_find(net->nodes[i].domain, net->nodes[i].op_type) != NULL;
    if (!any_gpu || kiln__net_toposort(net, &order, &err)) goto done;
    for (int t = 0; t < net->n_tensors; t++)
        if (net->tensors[t].kind == KILN_TENSOR_CONSTANT) {
            vals[t] = net->tensors[t].v;
            round_to_fp16(&vals[t]);
        }
    for (int i = 0; i < net->n_inputs; i++) {
        kiln_host_tensor h;
        snprintf(path, sizeof path, "%s/test_data_set_0/input_%d.pb", dir, i);
        if (kiln_tensor_read_pb(path, &h)) goto done;
        int t = net->inputs[i];
        vals[t].dtype = h.dtype;
        vals[t].shape = kiln__shape_of(h.rank, h.dims);
        vals[t].data = h.data;
        vals[t].nbytes = h.nbytes;
        owned[t] = true;
        if (randomize && h.dtype == KILN_DT_FLOAT)
            for (int64_t k = 0; k < kiln_host_tensor_numel(&h); k++) ((float *)h.data)[k] = frand();
        round_to_fp16(&vals[t]);
    }
    for (int k = 0; k < net->n_nodes; k++) {
        const kiln_node *nd = &net->nodes[order[k]];
        const kiln_value *in[64];
        kiln_value out[64];
        bool is_const[64];
        if (nd->n_in > 64 || nd->n_out > 64) goto done;
        for (int j = 0; j < nd->n_in; j++) {
            in[j] = nd->in[j] >= 0 ? &vals[nd->in[j]] : NULL;
            is_const[j] = nd->in[j] >= 0 && net->tensors[nd->in[j]].kind == KILN_TENSOR_CONSTANT;
        }
        memset(out, 0, sizeof(kiln_value) * (size_t)nd->n_out);
        if (kiln__cpu_run_node(nd, in, out, &err)) {
            for (int j = 0; j < nd->n_out; j++) free(out[j].data);
            goto done;
        }
        /* fp16 inputs that cannot be represented would make the comparison meaningless */
        test_node(name, net, nd, in, out, is_const);
        for (int j = 0; j < nd->n_out; j++) {
            if (nd->out[j] < 0) {
                free(out[j].data);
                continue;
            }
            round_to_fp16(&out[j]);
            vals[nd->out[j]] = out[j];
            owned[nd->out[j]] = true;
        }
    }
done:
    for (int t = 0; t < net->n_tensors; t++)
        if (owned[t]) free(vals[t].data);
    free(vals);
    free(owned);
    free(order);
    kiln_network_free(net);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv)
{
    const char *dirs[16], *filter = NULL;
    int n_dirs = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc && n_dirs < 16) dirs[n_dirs++] = argv[++i];
        else if (!strcmp(argv[i], "--filter") && i + 1 < argc) filter = argv[++i];
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) fp16 = !strcmp(argv[++i], "fp16");
        else if (!strcmp(argv[i], "--layout") && i + 1 < argc) nhwc = !strcmp(argv[++i], "nhwc");
        else if (!strcmp(argv[i], "--random")) randomize = 1;
        else if (!strcmp(argv[i], "-v")) verbose = 1;
        else {
            fprintf(stderr, "usage: kiln_gpu_ops_test --dir DIR... [--filter S] [--precision fp32|fp16] [--layout nchw|nhwc] [--random] [-v]\n");
            return 2;
        }
    }
    kiln_err err = {{0}};
    kiln_gpu_info info;
    if (kiln__gpu_init(&info, &err)) {
        printf("SKIPPED: %s\n", err.msg);
        return 77;
    }
    if (kiln__gpu_stream_create(&stream, &err) || kiln__gpu_exec_create(&ex, stream, &err)) {
        printf("FAIL: %s\n", err.msg);
        return 1;
    }
    ex.precision = fp16 ? KILN_PREC_FP16 : KILN_PREC_FP32;
    printf("device: %s (sm_%d%d), cuDNN %d; precision %s, layout %s%s\n", info.name, info.cc_major, info.cc_minor,
           info.cudnn_version, fp16 ? "fp16" : "fp32", nhwc ? "nhwc" : "nchw", randomize ? ", random inputs" : "");
    for (int d = 0; d < n_dirs; d++) {
        DIR *dh = opendir(dirs[d]);
        if (!dh) continue;
        char **names = NULL;
        int n = 0;
        struct dirent *e;
        while ((e = readdir(dh))) {
            if (strncmp(e->d_name, "test_", 5) || (filter && !strstr(e->d_name, filter))) continue;
            names = realloc(names, sizeof *names * (size_t)(n + 1));
            names[n++] = strdup(e->d_name);
        }
        closedir(dh);
        if (names) qsort(names, (size_t)n, sizeof *names, cmp_str);
        for (int i = 0; i < n; i++) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s/%s", dirs[d], names[i]);
            run_case(dir, names[i]);
            free(names[i]);
        }
        free(names);
    }
    kiln__gpu_exec_destroy(&ex);
    kiln__gpu_stream_destroy(stream);
    printf("gpu ops (%s, %s): %d passed, %d failed, %d skipped\n", fp16 ? "fp16" : "fp32", nhwc ? "nhwc" : "nchw", n_pass, n_fail, n_skip);
    return n_fail ? 1 : 0;
}
