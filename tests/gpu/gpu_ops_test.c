/*
 * GPU op test: every node of ONNX's node tests (and any model given) that has
 * a GPU op runs on the GPU and on the CPU reference with the same inputs, and
 * the results are compared — in fp32 and fp16, row-major and NHWC layouts.
 * Like ggml's test-backend-ops: the CPU is the oracle.
 *
 *   kiln_gpu_ops_test --dir DIR... [--filter S] [--precision fp32|tf32|fp16] [--layout nchw|nhwc]
 *                     [--random] [--conv-cases] [--conv-bench [--bench-filter S]] [-v]
 *
 * --conv-cases adds hand-made Conv / FusedConv nodes with random data (odd
 * sizes, groups, dilation, stride 2, 1x1, every epilogue, residual with the
 * activation before or after it) to whatever --dir gives. --conv-bench prints,
 * for a few representative layers (ResNet-50, RRDBNet, Real-ESRGAN), the time
 * of every conv tactic (no CPU check). A tactic that launch reports as
 * unsupported (not a candidate at this shape) is skipped, not failed.
 *
 * Prints SKIPPED and exits 0 when no GPU is present (CTest maps that to "skipped").
 */
#include "cpu/cpu.h"
#include "cuda/gpu.h"
#ifdef KILN_HAVE_CUDA
#include "cuda/cuda_conv_graph.h"
static const char *cg_diag(void) { return kiln__cg_diag(); }
#else
static const char *cg_diag(void) { return ""; }
#endif
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int verbose, fp16, tf32, nhwc, randomize;
static const char *prec_name(void);
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
        if (s == KILN_ERR_UNSUPPORTED && tac > 0) {
            /* not a candidate at this shape (e.g. a conv engine code the heuristics did not offer) */
            s = KILN_OK;
            err.msg[0] = 0;
            kiln__gpu_free(ws);
            ws = NULL;
            continue;
        }
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
            double atol = flt ? (fp16 ? 2e-3 * (maxref > 1 ? maxref : 1) : (tf32 ? 2e-3 : 1e-5) * (maxref > 1 ? maxref : 1)) : 0;
            double rtol = flt ? (fp16 || tf32 ? 1e-2 : 1e-4) : 0;
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
        printf("FAIL  %s: node '%s' (%s) %s %s: %s\n", case_name, nd->name, nd->op_type, prec_name(),
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

static const char *prec_name(void) { return fp16 ? "fp16" : tf32 ? "tf32" : "fp32"; }

/* ---- hand-made conv cases ------------------------------------------------ */

static int conv_cases, conv_bench;
static const char *bench_filter; /* --bench-filter: only bench cases whose name contains it */

typedef struct conv_case {
    const char *name;
    int64_t n, c, h, w, m, k, stride, pad, dil, group;
    const char *act; /* NULL: plain Conv; "" FusedConv without activation */
    float alpha, beta;
    int bias, z, after;
    float out_scale, z_scale;
} conv_case;

/* A one-node network: X [n,c,h,w] (and Z) inputs, W, B, S constants with random values. */
static kiln_network *conv_net(const conv_case *cc, bool random_consts)
{
    kiln_network *net = NULL;
    if (kiln_network_create(&net)) return NULL;
    kiln_network_set_opset(net, 17);
    int64_t k = cc->k;
    int64_t oh = (cc->h + 2 * cc->pad - cc->dil * (k - 1) - 1) / cc->stride + 1;
    int64_t ow = (cc->w + 2 * cc->pad - cc->dil * (k - 1) - 1) / cc->stride + 1;
    int64_t xd[4] = {cc->n, cc->c, cc->h, cc->w}, wd[4] = {cc->m, cc->c / cc->group, k, k}, bd[1] = {cc->m};
    int64_t sd[3] = {cc->m, 1, 1}, zd[4] = {cc->n, cc->m, oh, ow};
    kiln_network_add_input(net, "x", KILN_DT_FLOAT, 4, xd, NULL);
    int64_t nw = wd[0] * wd[1] * wd[2] * wd[3];
    float *buf = malloc(sizeof(float) * (size_t)(nw + cc->m + 1));
    float scale = 1.0f / sqrtf((float)(wd[1] * k * k));
    for (int64_t i = 0; i < nw; i++) buf[i] = random_consts ? frand() * scale : 0.01f;
    kiln_network_add_constant(net, "w", KILN_DT_FLOAT, 4, wd, buf, sizeof(float) * (size_t)nw);
    for (int64_t i = 0; i < cc->m; i++) buf[i] = random_consts ? frand() * 0.5f : 0.1f;
    if (cc->bias) kiln_network_add_constant(net, "b", KILN_DT_FLOAT, 1, bd, buf, sizeof(float) * (size_t)cc->m);
    bool prelu = cc->act && !strcmp(cc->act, "PRelu");
    for (int64_t i = 0; i < cc->m; i++) buf[i] = 0.05f + 0.3f * (frand() + 1.0f);
    if (prelu) kiln_network_add_constant(net, "s", KILN_DT_FLOAT, 3, sd, buf, sizeof(float) * (size_t)cc->m);
    free(buf);
    if (cc->z) kiln_network_add_input(net, "z", KILN_DT_FLOAT, 4, zd, NULL);
    int64_t ks[2] = {k, k}, st[2] = {cc->stride, cc->stride}, dl[2] = {cc->dil, cc->dil};
    int64_t pads[4] = {cc->pad, cc->pad, cc->pad, cc->pad};
    kiln_attr_value at[16];
    int na = 0;
    at[na++] = (kiln_attr_value){.name = "kernel_shape", .type = KILN_ATTR_INTS, .ints = ks, .n = 2};
    at[na++] = (kiln_attr_value){.name = "strides", .type = KILN_ATTR_INTS, .ints = st, .n = 2};
    at[na++] = (kiln_attr_value){.name = "dilations", .type = KILN_ATTR_INTS, .ints = dl, .n = 2};
    at[na++] = (kiln_attr_value){.name = "pads", .type = KILN_ATTR_INTS, .ints = pads, .n = 4};
    at[na++] = (kiln_attr_value){.name = "group", .type = KILN_ATTR_INT, .i = cc->group};
    const char *ins[5] = {"x", "w", cc->bias ? "b" : "", prelu ? "s" : "", cc->z ? "z" : ""};
    int n_in = cc->z ? 5 : prelu ? 4 : cc->bias ? 3 : 2;
    const char *out = "y";
    kiln_status s;
    if (!cc->act) {
        s = kiln_network_add_node(net, "conv", "Conv", "", n_in < 3 ? n_in : 3, ins, 1, &out, na, at);
    } else {
        at[na++] = (kiln_attr_value){.name = "activation", .type = KILN_ATTR_STRING, .s = cc->act, .s_len = strlen(cc->act)};
        if (!strcmp(cc->act, "LeakyRelu") || !strcmp(cc->act, "Clip"))
            at[na++] = (kiln_attr_value){.name = "act_alpha", .type = KILN_ATTR_FLOAT, .f = cc->alpha};
        if (!strcmp(cc->act, "Clip")) at[na++] = (kiln_attr_value){.name = "act_beta", .type = KILN_ATTR_FLOAT, .f = cc->beta};
        at[na++] = (kiln_attr_value){.name = "out_scale", .type = KILN_ATTR_FLOAT, .f = cc->out_scale};
        at[na++] = (kiln_attr_value){.name = "z_scale", .type = KILN_ATTR_FLOAT, .f = cc->z_scale};
        if (cc->after) at[na++] = (kiln_attr_value){.name = "act_after_residual", .type = KILN_ATTR_INT, .i = 1};
        s = kiln_network_add_node(net, "fconv", "FusedConv", "kiln", n_in, ins, 1, &out, na, at);
    }
    if (s) {
        printf("FAIL  conv case %s: cannot build the node: %s\n", cc->name, kiln_network_last_error(net));
        n_fail++;
        kiln_network_free(net);
        return NULL;
    }
    return net;
}

static const conv_case cases[] = {
    /* name, n, c, h, w, m, k, stride, pad, dil, group, act, alpha, beta, bias, z, after, out_scale, z_scale */
    {"plain_3x3_odd", 1, 5, 13, 11, 7, 3, 1, 1, 1, 1, NULL, 0, 0, 1, 0, 0, 1, 1},
    {"relu_3x3", 1, 8, 13, 11, 16, 3, 1, 1, 1, 1, "Relu", 0, 0, 1, 0, 0, 1, 1},
    {"first_layer_c3", 1, 3, 15, 17, 16, 3, 1, 1, 1, 1, "Relu", 0, 0, 1, 0, 0, 1, 1},
    {"resnet_1x1_add_relu", 2, 16, 7, 9, 32, 1, 1, 0, 1, 1, "Relu", 0, 0, 1, 1, 1, 1, 1},
    {"resnet_1x1_s2", 1, 16, 14, 13, 32, 1, 2, 0, 1, 1, "", 0, 0, 1, 0, 0, 1, 1},
    {"stem_7x7_s2", 1, 3, 31, 29, 16, 7, 2, 3, 1, 1, "Relu", 0, 0, 1, 0, 0, 1, 1},
    {"rrdb_leaky", 1, 24, 11, 19, 8, 3, 1, 1, 1, 1, "LeakyRelu", 0.2f, 0, 1, 0, 0, 1, 1},
    {"rrdb_residual_scale", 1, 16, 9, 14, 16, 3, 1, 1, 1, 1, "", 0, 0, 1, 1, 0, 0.2f, 1},
    {"leaky_scale_z", 2, 8, 17, 9, 8, 3, 2, 1, 1, 1, "LeakyRelu", 0.2f, 0, 1, 1, 0, 0.2f, 0.5f},
    {"prelu_dilated", 1, 8, 10, 12, 8, 3, 1, 2, 2, 1, "PRelu", 0, 0, 1, 0, 0, 1, 1},
    {"prelu_64", 1, 64, 12, 20, 64, 3, 1, 1, 1, 1, "PRelu", 0, 0, 1, 0, 0, 1, 1},
    {"sigmoid_groups", 1, 12, 9, 9, 6, 3, 1, 1, 1, 3, "Sigmoid", 0, 0, 1, 0, 0, 1, 1},
    {"depthwise", 1, 16, 11, 10, 16, 3, 1, 1, 1, 16, "Relu", 0, 0, 1, 0, 0, 1, 1},
    {"tanh_nobias_odd", 1, 4, 7, 5, 3, 3, 1, 1, 1, 1, "Tanh", 0, 0, 0, 0, 0, 1, 1},
    {"clip_relu6", 1, 8, 11, 13, 8, 3, 1, 1, 1, 1, "Clip", 0.0f, 6.0f, 1, 0, 0, 1, 1},
    {"clip_after_z", 1, 8, 6, 7, 8, 3, 1, 1, 1, 1, "Clip", -0.5f, 0.5f, 1, 1, 1, 1, 1},
    {"z_only", 1, 8, 6, 6, 8, 3, 1, 1, 1, 1, "", 0, 0, 0, 1, 0, 1, 0.5f},
    {"k5_s2_after", 1, 16, 23, 19, 32, 5, 2, 2, 1, 1, "LeakyRelu", 0.1f, 0, 1, 1, 1, 1, 1},
    {"scale_only", 1, 8, 9, 9, 8, 3, 1, 1, 1, 1, "", 0, 0, 1, 0, 0, 0.5f, 1},
};

/* Random X / Z values for a case's inputs (fp16-rounded in fp16 runs), CPU reference, GPU compare. */
static void run_conv_cases(void)
{
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const conv_case *cc = &cases[ci];
        kiln_network *net = conv_net(cc, true);
        if (!net) continue;
        const kiln_node *nd = &net->nodes[0];
        const kiln_value *in[5] = {0};
        kiln_value owned[5];
        bool is_const[5] = {0};
        memset(owned, 0, sizeof owned);
        kiln_err err = {{0}};
        bool ok = true;
        for (int j = 0; j < nd->n_in; j++) {
            int t = nd->in[j];
            if (t < 0) continue;
            if (net->tensors[t].kind == KILN_TENSOR_CONSTANT) {
                owned[j] = net->tensors[t].v;
                owned[j].data = malloc(owned[j].nbytes + 1);
                memcpy(owned[j].data, net->tensors[t].v.data, owned[j].nbytes);
                is_const[j] = true;
            } else {
                owned[j] = net->tensors[t].v;
                int64_t nel = kiln__value_numel(&owned[j]);
                owned[j].nbytes = (size_t)nel * sizeof(float);
                owned[j].data = malloc(owned[j].nbytes + 1);
                for (int64_t q = 0; q < nel; q++) ((float *)owned[j].data)[q] = frand();
            }
            round_to_fp16(&owned[j]);
            in[j] = &owned[j];
        }
        kiln_value out[1];
        memset(out, 0, sizeof out);
        if (kiln__cpu_run_node(nd, in, out, &err)) {
            printf("FAIL  conv case %s: CPU reference: %s\n", cc->name, err.msg);
            n_fail++;
            ok = false;
        }
        char name[96];
        snprintf(name, sizeof name, "conv_case_%s", cc->name);
        if (ok) test_node(name, net, nd, in, out, is_const);
        if (verbose && cg_diag()[0]) printf("      last cuDNN refusal: %s\n", cg_diag());
        free(out[0].data);
        for (int j = 0; j < 5; j++) free(owned[j].data);
        kiln_network_free(net);
    }
}

/* ---- tactic timing table ------------------------------------------------- */

static const conv_case bench_cases[] = {
    {"resnet50 stem 7x7 s2 3->64 224", 1, 3, 224, 224, 64, 7, 2, 3, 1, 1, "Relu", 0, 0, 1, 0, 0, 1, 1},
    {"resnet50 1x1 1024->256 14x14", 1, 1024, 14, 14, 256, 1, 1, 0, 1, 1, "Relu", 0, 0, 1, 0, 0, 1, 1},
    {"resnet50 3x3 256->256 14x14", 1, 256, 14, 14, 256, 3, 1, 1, 1, 1, "Relu", 0, 0, 1, 0, 0, 1, 1},
    {"resnet50 1x1 256->1024 14x14 +z relu", 1, 256, 14, 14, 1024, 1, 1, 0, 1, 1, "Relu", 0, 0, 1, 1, 1, 1, 1},
    {"resnet50 3x3 128->128 s2 56", 1, 128, 56, 56, 128, 3, 2, 1, 1, 1, "Relu", 0, 0, 1, 0, 0, 1, 1},
    {"resnet50 b64 3x3 64->64 56", 64, 64, 56, 56, 64, 3, 1, 1, 1, 1, "Relu", 0, 0, 1, 0, 0, 1, 1},
    {"rrdb 3x3 64->32 180x320 lrelu", 1, 64, 180, 320, 32, 3, 1, 1, 1, 1, "LeakyRelu", 0.2f, 0, 1, 0, 0, 1, 1},
    {"rrdb 3x3 192->64 180x320 *0.2+z", 1, 192, 180, 320, 64, 3, 1, 1, 1, 1, "", 0, 0, 1, 1, 0, 0.2f, 1},
    {"rrdb 3x3 64->64 720x1280 lrelu", 1, 64, 720, 1280, 64, 3, 1, 1, 1, 1, "LeakyRelu", 0.2f, 0, 1, 0, 0, 1, 1},
    {"animev3 3x3 64->64 270x480 prelu", 1, 64, 270, 480, 64, 3, 1, 1, 1, 1, "PRelu", 0, 0, 1, 0, 0, 1, 1},
};

/* Times every tactic of each bench case (7 runs after a warm-up, median). */
static void run_conv_bench(void)
{
    void *ev0 = NULL, *ev1 = NULL;
    kiln_err err = {{0}};
    if (kiln__gpu_event_create(&ev0, &err) || kiln__gpu_event_create(&ev1, &err)) {
        printf("FAIL  conv bench: %s\n", err.msg);
        n_fail++;
        return;
    }
    const char *leg = getenv("KILN_CONV_LEGACY");
    printf("conv tactics (%s, %s): %s\n", prec_name(), nhwc ? "nhwc" : "nchw",
           leg && leg[0] == '1' ? "KILN_CONV_LEGACY=1: legacy cuDNN algorithms (index)"
                                : "code = 1 + 2*engine + fused (0 = default)");
    for (size_t ci = 0; ci < sizeof bench_cases / sizeof bench_cases[0]; ci++) {
        const conv_case *cc = &bench_cases[ci];
        if (bench_filter && !strstr(cc->name, bench_filter)) continue;
        kiln_network *net = conv_net(cc, false);
        if (!net) continue;
        const kiln_node *nd = &net->nodes[0];
        const kiln_cuda_op *op = kiln__cuda_op_find(nd->domain, nd->op_type);
        kiln_cuda_tensor din[5], dout[1];
        const kiln_value *host[5] = {0};
        memset(din, 0, sizeof din);
        memset(dout, 0, sizeof dout);
        kiln_status s = KILN_OK;
        void *state = NULL, *ws = NULL;
        kiln_value yv;
        memset(&yv, 0, sizeof yv);
        yv.dtype = KILN_DT_FLOAT;
        int64_t k = cc->k;
        int64_t oh = (cc->h + 2 * cc->pad - cc->dil * (k - 1) - 1) / cc->stride + 1;
        int64_t ow = (cc->w + 2 * cc->pad - cc->dil * (k - 1) - 1) / cc->stride + 1;
        int64_t yd[4] = {cc->n, cc->m, oh, ow};
        yv.shape = kiln__shape_of(4, yd);
        for (int j = 0; j < nd->n_in && !s; j++) {
            int t = nd->in[j];
            if (t < 0) continue;
            const kiln_value *v = &net->tensors[t].v;
            if (net->tensors[t].kind == KILN_TENSOR_CONSTANT) host[j] = v;
            din[j] = describe(v, dev_dtype(v->dtype));
            size_t bytes = (span_elems(&din[j]) + 1) * kiln_dtype_size(din[j].dtype);
            s = kiln__gpu_malloc(&din[j].ptr, bytes, &err);
            if (!s) s = kiln__gpu_memset(din[j].ptr, 0x3c, bytes, stream, &err);
        }
        dout[0] = describe(&yv, dev_dtype(KILN_DT_FLOAT));
        if (!s) s = kiln__gpu_malloc(&dout[0].ptr, (span_elems(&dout[0]) + 1) * kiln_dtype_size(dout[0].dtype), &err);
        kiln_dtype compute = fp16 ? KILN_DT_FLOAT16 : KILN_DT_FLOAT;
        if (!s) s = op->prepare(nd, nd->params, host, compute, nhwc ? KILN_LAYOUT_NHWC : KILN_LAYOUT_ROW_MAJOR, &state, &err);
        kiln_cuda_launch l = {.node = nd, .params = nd->params, .in = din, .host = host, .out = dout, .state = state, .ex = &ex};
        int n_tac = s ? 0 : op->tactic_count(&l);
        double gflop = 2.0 * (double)cc->n * (double)cc->m * (double)oh * (double)ow * (double)(cc->c / cc->group) * (double)(k * k) * 1e-9;
        printf("  %-40s %8.2f GFLOP, %d tactic codes\n", cc->name, gflop, n_tac);
        float best = 1e30f;
        int best_t = -1;
        for (int tac = 0; tac < n_tac; tac++) {
            l.tactic = tac;
            size_t wsb = op->workspace(&l);
            kiln_err terr = {{0}};
            if (wsb && kiln__gpu_malloc(&ws, wsb, &terr)) continue;
            ex.workspace = ws;
            ex.workspace_bytes = wsb;
            kiln_status ls = op->launch(&l, &terr);
            if (ls == KILN_ERR_UNSUPPORTED && tac > 0) {
                kiln__gpu_free(ws);
                ws = NULL;
                continue;
            }
            if (!ls) ls = kiln__gpu_sync(stream, &terr);
            float t[7];
            int nt = 0;
            for (int r = 0; r < 7 && !ls; r++) {
                kiln__gpu_event_record(ev0, stream, &terr);
                ls = op->launch(&l, &terr);
                kiln__gpu_event_record(ev1, stream, &terr);
                if (!ls) ls = kiln__gpu_event_elapsed(ev0, ev1, &t[nt], &terr);
                if (!ls) nt++;
            }
            if (ls) {
                printf("    tactic %4d: error: %s\n", tac, terr.msg);
            } else {
                for (int a = 1; a < nt; a++)
                    for (int b = a; b > 0 && t[b] < t[b - 1]; b--) {
                        float x = t[b];
                        t[b] = t[b - 1];
                        t[b - 1] = x;
                    }
                float ms = t[nt / 2];
                if (tac == 0 || (leg && leg[0] == '1'))
                    printf("    tactic %4d %-28s ws %9zu  %9.4f ms  %8.1f TFLOP/s\n", tac, tac ? "(legacy)" : "(default)",
                           wsb, ms, gflop / ms);
                else
                    printf("    tactic %4d (engine %3d%s)%*s ws %9zu  %9.4f ms  %8.1f TFLOP/s\n", tac, (tac - 1) / 2,
                           (tac - 1) % 2 ? ", fused" : ", plain", 10, "", wsb, ms, gflop / ms);
                if (ms < best) {
                    best = ms;
                    best_t = tac;
                }
            }
            kiln__gpu_free(ws);
            ws = NULL;
        }
        if (best_t >= 0) printf("    best: tactic %d, %.4f ms\n", best_t, best);
        if (cg_diag()[0]) printf("    last cuDNN refusal: %s\n", cg_diag());
        if (state) op->release(state);
        for (int j = 0; j < 5; j++) kiln__gpu_free(din[j].ptr);
        kiln__gpu_free(dout[0].ptr);
        if (s) {
            printf("FAIL  conv bench %s: %s\n", cc->name, err.msg);
            n_fail++;
        }
        kiln_network_free(net);
        fflush(stdout);
    }
    kiln__gpu_event_destroy(ev0);
    kiln__gpu_event_destroy(ev1);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv)
{
    const char *dirs[16], *filter = NULL;
    int n_dirs = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc && n_dirs < 16) dirs[n_dirs++] = argv[++i];
        else if (!strcmp(argv[i], "--filter") && i + 1 < argc) filter = argv[++i];
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) {
            i++;
            fp16 = !strcmp(argv[i], "fp16");
            tf32 = !strcmp(argv[i], "tf32");
        }
        else if (!strcmp(argv[i], "--conv-cases")) conv_cases = 1;
        else if (!strcmp(argv[i], "--conv-bench")) conv_bench = 1;
        else if (!strcmp(argv[i], "--bench-filter") && i + 1 < argc) bench_filter = argv[++i];
        else if (!strcmp(argv[i], "--layout") && i + 1 < argc) nhwc = !strcmp(argv[++i], "nhwc");
        else if (!strcmp(argv[i], "--random")) randomize = 1;
        else if (!strcmp(argv[i], "-v")) verbose = 1;
        else {
            fprintf(stderr, "usage: kiln_gpu_ops_test --dir DIR... [--filter S] [--precision fp32|tf32|fp16] [--layout nchw|nhwc] "
                            "[--random] [--conv-cases] [--conv-bench] [-v]\n");
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
    ex.precision = fp16 ? KILN_PREC_FP16 : tf32 ? KILN_PREC_TF32 : KILN_PREC_FP32;
    printf("device: %s (sm_%d%d), cuDNN %d; precision %s, layout %s%s\n", info.name, info.cc_major, info.cc_minor,
           info.cudnn_version, prec_name(), nhwc ? "nhwc" : "nchw", randomize ? ", random inputs" : "");
    if (conv_cases) run_conv_cases();
    if (conv_bench) run_conv_bench();
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
    printf("gpu ops (%s, %s): %d passed, %d failed, %d skipped\n", prec_name(), nhwc ? "nhwc" : "nchw", n_pass, n_fail, n_skip);
    return n_fail ? 1 : 0;
}
