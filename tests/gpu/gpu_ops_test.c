/*
 * GPU op test: every node of ONNX's node tests (and any model given) that has
 * a GPU op runs on the GPU and on the CPU reference with the same inputs, and
 * the results are compared — in fp32 and fp16, row-major and NHWC layouts.
 * Like ggml's test-backend-ops: the CPU is the oracle.
 *
 *   kiln_gpu_ops_test --dir DIR... [--filter S] [--precision fp32|tf32|fp16] [--layout nchw|nhwc]
 *                     [--random] [--conv-cases] [--move-cases] [--memk-cases] [--conv-bench [--bench-filter S]] [-v]
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
    /* few input or output channels (SR nets' first and last convs) */
    {"small_in_c3_prelu", 2, 3, 21, 18, 64, 3, 1, 1, 1, 1, "PRelu", 0, 0, 1, 0, 0, 1, 1},
    {"small_in_c1_k5_s2", 1, 1, 13, 9, 12, 5, 2, 2, 1, 1, "LeakyRelu", 0.1f, 0, 1, 0, 0, 1, 1},
    {"small_out_m3_z", 1, 64, 37, 29, 3, 3, 1, 1, 1, 1, "", 0, 0, 1, 1, 0, 1, 1},
    {"small_out_m1_s2_dil", 1, 20, 19, 23, 1, 3, 2, 2, 2, 1, "Sigmoid", 0, 0, 1, 0, 0, 1, 1},
    {"small_out_m4_clip_after", 1, 40, 15, 33, 4, 3, 1, 1, 1, 1, "Clip", -0.3f, 0.4f, 1, 1, 1, 0.5f, 1},
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

/* ==== BEGIN movement cases (helper "mov") ====================================
 * --move-cases: hand-made single-node cases of the movement ops with random
 * inputs, sized to reach the fast paths of k_movement.cu (channel Concat/Split
 * rows with odd and unaligned channel counts, more inputs than one launch
 * takes, 4-D NHWC <-> 5-D layout changes through tiles with partial edges,
 * Gather of a frame, DepthToSpace CRD vectors and scalars) and the general
 * path next to them. Compared with the CPU reference by test_node.
 */
static int move_cases;

typedef struct mv_in {
    int rank;        /* data input (float) when >= 0 ... */
    int64_t d[6];
    int n_const;     /* ... or, when rank < 0, an int64 constant of n_const values (0: scalar) */
    int64_t c[8];
} mv_in;

#define MV_X(r, ...) {.rank = r, .d = {__VA_ARGS__}}
#define MV_C(n, ...) {.rank = -1, .n_const = n, .c = {__VA_ARGS__}}
#define MV_SCALAR(v) {.rank = -2, .n_const = 1, .c = {v}}

typedef struct mv_case {
    const char *name, *op;
    int n_in, n_out;
    mv_in in[12];
    const char *attr;  /* NULL, "axis", "blocksize", "perm" */
    int64_t a[6];      /* attribute value(s): axis, or blocksize + crd flag, or perm */
    int n_a;
} mv_case;

static const mv_case mv_cases[] = {
    {"concat_c_64_64", "Concat", 2, 1, {MV_X(4, 1, 64, 9, 11), MV_X(4, 1, 64, 9, 11)}, "axis", {1}, 1},
    {"concat_c_odd_unaligned", "Concat", 3, 1, {MV_X(4, 2, 3, 7, 5), MV_X(4, 2, 13, 7, 5), MV_X(4, 2, 8, 7, 5)}, "axis", {1}, 1},
    {"concat_c_72_8_neg_axis", "Concat", 2, 1, {MV_X(4, 1, 72, 5, 13), MV_X(4, 1, 8, 5, 13)}, "axis", {-3}, 1},
    {"concat_c_10_inputs", "Concat", 10, 1,
     {MV_X(4, 1, 8, 5, 3), MV_X(4, 1, 16, 5, 3), MV_X(4, 1, 8, 5, 3), MV_X(4, 1, 8, 5, 3), MV_X(4, 1, 24, 5, 3),
      MV_X(4, 1, 8, 5, 3), MV_X(4, 1, 8, 5, 3), MV_X(4, 1, 16, 5, 3), MV_X(4, 1, 8, 5, 3), MV_X(4, 1, 5, 5, 3)},
     "axis", {1}, 1},
    {"concat_n", "Concat", 2, 1, {MV_X(4, 2, 6, 5, 7), MV_X(4, 3, 6, 5, 7)}, "axis", {0}, 1},
    {"concat_h", "Concat", 2, 1, {MV_X(4, 1, 5, 4, 7), MV_X(4, 1, 5, 3, 7)}, "axis", {2}, 1},
    {"concat_w_odd", "Concat", 2, 1, {MV_X(4, 2, 9, 3, 5), MV_X(4, 2, 9, 3, 4)}, "axis", {3}, 1},
    {"concat_5d_frames", "Concat", 3, 1, {MV_X(5, 1, 2, 8, 5, 7), MV_X(5, 1, 1, 8, 5, 7), MV_X(5, 1, 2, 8, 5, 7)}, "axis", {1}, 1},
    {"split_c_3x8", "Split", 2, 3, {MV_X(4, 1, 24, 7, 9), MV_C(3, 8, 8, 8)}, "axis", {1}, 1},
    {"split_c_odd", "Split", 2, 3, {MV_X(4, 2, 21, 5, 3), MV_C(3, 5, 9, 7)}, "axis", {1}, 1},
    {"split_c_72x3", "Split", 2, 3, {MV_X(4, 1, 216, 6, 7), MV_C(3, 72, 72, 72)}, "axis", {1}, 1},
    {"split_w", "Split", 2, 2, {MV_X(4, 1, 4, 6, 10), MV_C(2, 3, 7)}, "axis", {3}, 1},
    {"split_n", "Split", 2, 2, {MV_X(4, 3, 4, 6, 5), MV_C(2, 1, 2)}, "axis", {0}, 1},
    {"reshape_4d_to_5d", "Reshape", 2, 1, {MV_X(4, 5, 16, 9, 11), MV_C(5, 1, 5, 16, 9, 11)}, NULL, {0}, 0},
    {"reshape_4d_to_5d_tiles", "Reshape", 2, 1, {MV_X(4, 3, 70, 13, 11), MV_C(5, 1, 3, 70, 13, 11)}, NULL, {0}, 0},
    {"reshape_5d_to_4d_tiles", "Reshape", 2, 1, {MV_X(5, 1, 3, 72, 11, 13), MV_C(4, 3, 72, 11, 13)}, NULL, {0}, 0},
    {"reshape_5d_to_4d_merge", "Reshape", 2, 1, {MV_X(5, 1, 3, 20, 9, 7), MV_C(4, 1, 60, 9, 7)}, NULL, {0}, 0},
    {"reshape_4d_to_5d_c3", "Reshape", 2, 1, {MV_X(4, 5, 3, 8, 9), MV_C(5, 1, 5, 3, 8, 9)}, NULL, {0}, 0},
    {"reshape_4d_split_c", "Reshape", 2, 1, {MV_X(4, 1, 6, 10, 12), MV_C(4, 2, 3, 10, 12)}, NULL, {0}, 0},
    {"reshape_4d_no_nesting", "Reshape", 2, 1, {MV_X(4, 1, 6, 4, 1), MV_C(4, 1, 4, 6, 1)}, NULL, {0}, 0},
    {"reshape_flat", "Reshape", 2, 1, {MV_X(4, 2, 13, 5, 7), MV_C(2, 2, -1)}, NULL, {0}, 0},
    {"unsqueeze_4d_to_5d", "Unsqueeze", 2, 1, {MV_X(4, 1, 70, 13, 17), MV_C(1, 1)}, NULL, {0}, 0},
    {"squeeze_5d_to_4d", "Squeeze", 2, 1, {MV_X(5, 1, 1, 33, 9, 10), MV_C(1, 1)}, NULL, {0}, 0},
    {"flatten_4d", "Flatten", 1, 1, {MV_X(4, 2, 17, 9, 5)}, "axis", {1}, 1},
    {"gather_frame_5d", "Gather", 2, 1, {MV_X(5, 1, 5, 20, 9, 13), MV_SCALAR(2)}, "axis", {1}, 1},
    {"gather_frame_5d_neg", "Gather", 2, 1, {MV_X(5, 1, 5, 64, 11, 9), MV_SCALAR(-1)}, "axis", {1}, 1},
    {"gather_frames_5d_list", "Gather", 2, 1, {MV_X(5, 1, 5, 20, 9, 13), MV_C(3, 3, 0, 2)}, "axis", {1}, 1},
    {"gather_channel", "Gather", 2, 1, {MV_X(4, 2, 9, 5, 7), MV_SCALAR(4)}, "axis", {1}, 1},
    {"d2s_crd_b2_vec", "DepthToSpace", 1, 1, {MV_X(4, 1, 32, 7, 9)}, "blocksize", {2, 1}, 2},
    {"d2s_crd_b2_c64", "DepthToSpace", 1, 1, {MV_X(4, 1, 256, 5, 6)}, "blocksize", {2, 1}, 2},
    {"d2s_crd_b2_odd", "DepthToSpace", 1, 1, {MV_X(4, 2, 12, 5, 3)}, "blocksize", {2, 1}, 2},
    {"d2s_crd_b3_odd", "DepthToSpace", 1, 1, {MV_X(4, 1, 45, 4, 5)}, "blocksize", {3, 1}, 2},
    {"d2s_crd_b4_vec", "DepthToSpace", 1, 1, {MV_X(4, 1, 256, 3, 5)}, "blocksize", {4, 1}, 2},
    {"d2s_crd_b5_general", "DepthToSpace", 1, 1, {MV_X(4, 1, 50, 2, 3)}, "blocksize", {5, 1}, 2},
    {"d2s_dcr_b2", "DepthToSpace", 1, 1, {MV_X(4, 1, 32, 7, 9)}, "blocksize", {2, 0}, 2},
    {"d2s_dcr_b3_odd", "DepthToSpace", 1, 1, {MV_X(4, 2, 27, 3, 4)}, "blocksize", {3, 0}, 2},
    {"transpose_to_nhwc", "Transpose", 1, 1, {MV_X(4, 2, 19, 13, 17)}, "perm", {0, 2, 3, 1}, 4},
    {"transpose_to_nchw", "Transpose", 1, 1, {MV_X(4, 2, 70, 9, 10)}, "perm", {0, 3, 1, 2}, 4},
    {"transpose_nc", "Transpose", 1, 1, {MV_X(4, 3, 20, 9, 11)}, "perm", {1, 0, 2, 3}, 4},
    {"transpose_hw", "Transpose", 1, 1, {MV_X(4, 1, 8, 67, 66)}, "perm", {0, 1, 3, 2}, 4},
    {"expand_c", "Expand", 2, 1, {MV_X(4, 1, 1, 9, 13), MV_C(4, 1, 24, 9, 13)}, NULL, {0}, 0},
    {"expand_5d_frames", "Expand", 2, 1, {MV_X(5, 1, 5, 1, 9, 13), MV_C(5, 1, 5, 12, 9, 13)}, NULL, {0}, 0},
    {"slice_c_unaligned", "Slice", 4, 1, {MV_X(4, 1, 20, 7, 9), MV_C(1, 3), MV_C(1, 17), MV_C(1, 1)}, NULL, {0}, 0},
    {"slice_n_block", "Slice", 4, 1, {MV_X(4, 4, 9, 7, 5), MV_C(1, 1), MV_C(1, 3), MV_C(1, 0)}, NULL, {0}, 0},
};

/* One node over random float inputs (fp16-rounded in fp16 runs) and int64 constants, GPU vs CPU. */
static void run_move_case(const mv_case *mc, const char *filter)
{
    char name[96];
    snprintf(name, sizeof name, "move_case_%s", mc->name);
    if (filter && !strstr(name, filter)) return;
    kiln_network *net = NULL;
    if (kiln_network_create(&net)) return;
    kiln_network_set_opset(net, 17);
    char names[12][8];
    const char *ins[12], *outs[3] = {"y0", "y1", "y2"};
    kiln_status s = KILN_OK;
    for (int j = 0; j < mc->n_in && !s; j++) {
        const mv_in *v = &mc->in[j];
        snprintf(names[j], sizeof names[j], "i%d", j);
        ins[j] = names[j];
        int64_t cd[1] = {v->n_const};
        if (v->rank >= 0) s = kiln_network_add_input(net, names[j], KILN_DT_FLOAT, v->rank, v->d, NULL);
        else s = kiln_network_add_constant(net, names[j], KILN_DT_INT64, v->rank == -2 ? 0 : 1, cd, v->c,
                                           sizeof(int64_t) * (size_t)v->n_const);
    }
    kiln_attr_value at[2];
    int na = 0;
    if (mc->attr && !strcmp(mc->attr, "perm"))
        at[na++] = (kiln_attr_value){.name = "perm", .type = KILN_ATTR_INTS, .ints = mc->a, .n = mc->n_a};
    else if (mc->attr && !strcmp(mc->attr, "blocksize")) {
        at[na++] = (kiln_attr_value){.name = "blocksize", .type = KILN_ATTR_INT, .i = mc->a[0]};
        at[na++] = (kiln_attr_value){.name = "mode", .type = KILN_ATTR_STRING, .s = mc->a[1] ? "CRD" : "DCR", .s_len = 3};
    } else if (mc->attr)
        at[na++] = (kiln_attr_value){.name = mc->attr, .type = KILN_ATTR_INT, .i = mc->a[0]};
    if (!s) s = kiln_network_add_node(net, "mv", mc->op, "", mc->n_in, ins, mc->n_out, outs, na, at);
    if (s) {
        printf("FAIL  %s: cannot build the node: %s\n", name, kiln_network_last_error(net));
        n_fail++;
        kiln_network_free(net);
        return;
    }
    const kiln_node *nd = &net->nodes[0];
    const kiln_value *in[12] = {0};
    kiln_value owned[12];
    bool is_const[12] = {0};
    memset(owned, 0, sizeof owned);
    kiln_err err = {{0}};
    for (int j = 0; j < nd->n_in; j++) {
        int t = nd->in[j];
        owned[j] = net->tensors[t].v;
        int64_t nel = kiln__value_numel(&owned[j]);
        if (net->tensors[t].kind == KILN_TENSOR_CONSTANT) {
            owned[j].data = malloc(owned[j].nbytes + 1);
            memcpy(owned[j].data, net->tensors[t].v.data, owned[j].nbytes);
            is_const[j] = true;
        } else {
            owned[j].nbytes = (size_t)nel * sizeof(float);
            owned[j].data = malloc(owned[j].nbytes + 1);
            for (int64_t q = 0; q < nel; q++) ((float *)owned[j].data)[q] = frand();
        }
        round_to_fp16(&owned[j]);
        in[j] = &owned[j];
    }
    kiln_value out[3];
    memset(out, 0, sizeof out);
    if (kiln__cpu_run_node(nd, in, out, &err)) {
        printf("FAIL  %s: CPU reference: %s\n", name, err.msg);
        n_fail++;
    } else {
        test_node(name, net, nd, in, out, is_const);
    }
    for (int j = 0; j < 3; j++) free(out[j].data);
    for (int j = 0; j < 12; j++) free(owned[j].data);
    kiln_network_free(net);
}

static void run_move_cases(const char *filter)
{
    for (size_t i = 0; i < sizeof mv_cases / sizeof mv_cases[0]; i++) run_move_case(&mv_cases[i], filter);
}
/* ==== END movement cases (helper "mov") ==================================== */

/* ==== BEGIN memory-bound fast-path cases (helper "memk") ==================== */
/* (helper memk) Resize 2-D fast paths (NHWC vectors of channels, row-major
 * vectors along W) at odd sizes, every coordinate transformation, up and
 * down; elementwise dense paths at odd lengths; the Cast reformats between
 * layouts and float types (tiled transpose), aligned and misaligned. */

static int memk_cases;
static const char *memk_filter; /* --filter also selects these cases by name */
static bool memk_skip(const char *name) { return memk_filter && !strstr(name, memk_filter); }

/* Node 0 of net with random non-constant float inputs: CPU reference, then test_node. */
static void memk_run_net(const char *name, kiln_network *net)
{
    if (memk_skip(name)) return;
    const kiln_node *nd = &net->nodes[0];
    const kiln_value *in[8] = {0};
    kiln_value owned[8];
    bool is_const[8] = {0};
    memset(owned, 0, sizeof owned);
    kiln_err err = {{0}};
    for (int j = 0; j < nd->n_in && j < 8; j++) {
        int t = nd->in[j];
        if (t < 0) continue;
        owned[j] = net->tensors[t].v;
        if (net->tensors[t].kind == KILN_TENSOR_CONSTANT) {
            owned[j].data = malloc(owned[j].nbytes + 1);
            memcpy(owned[j].data, net->tensors[t].v.data, owned[j].nbytes);
            is_const[j] = true;
        } else {
            int64_t nel = kiln__value_numel(&owned[j]);
            owned[j].nbytes = (size_t)nel * sizeof(float);
            owned[j].data = malloc(owned[j].nbytes + 1);
            for (int64_t q = 0; q < nel; q++) ((float *)owned[j].data)[q] = 4.0f * frand();
        }
        round_to_fp16(&owned[j]);
        in[j] = &owned[j];
    }
    kiln_value out[1];
    memset(out, 0, sizeof out);
    if (kiln__cpu_run_node(nd, in, out, &err)) {
        printf("FAIL  %s: CPU reference: %s\n", name, err.msg);
        n_fail++;
    } else {
        test_node(name, net, nd, in, out, is_const);
    }
    free(out[0].data);
    for (int j = 0; j < 8; j++) free(owned[j].data);
}

typedef struct memk_rs {
    int64_t n, c, h, w;
    int64_t oh, ow;   /* sizes when > 0, else scales sh, sw */
    float sh, sw;
    const char *mode, *ctm, *nearest;
    int antialias;
} memk_rs;

static const memk_rs memk_resize_cases[] = {
    /* EDVR / SR shapes, small: x2 bilinear 64 ch, x4 nearest 3 ch, x4 bilinear 3 ch */
    {1, 64, 9, 16, 0, 0, 2, 2, "linear", "pytorch_half_pixel", NULL, 0},
    {1, 64, 9, 16, 0, 0, 2, 2, "linear", "half_pixel", NULL, 0},
    {1, 3, 27, 48, 0, 0, 4, 4, "nearest", "asymmetric", "floor", 0},
    {1, 3, 18, 32, 0, 0, 4, 4, "linear", "half_pixel", NULL, 0},
    {2, 72, 7, 5, 0, 0, 2, 2, "linear", "align_corners", NULL, 0},
    /* odd channels (scalar / 2- / 4-wide items), odd H/W */
    {1, 5, 7, 9, 0, 0, 2, 2, "linear", "half_pixel", NULL, 0},
    {2, 3, 11, 13, 0, 0, 4, 4, "linear", "asymmetric", NULL, 0},
    {1, 12, 5, 7, 0, 0, 2, 4, "linear", "pytorch_half_pixel", NULL, 0},
    {1, 6, 9, 11, 0, 0, 2, 2, "nearest", "half_pixel", "round_prefer_floor", 0},
    {1, 7, 9, 11, 0, 0, 4, 4, "nearest", "half_pixel", "round_prefer_ceil", 0},
    {3, 9, 5, 3, 0, 0, 2, 2, "nearest", "align_corners", "ceil", 0},
    {1, 16, 5, 7, 0, 0, 3, 1.5f, "nearest", "tf_half_pixel_for_nn", "round_prefer_floor", 0},
    {1, 1, 13, 17, 0, 0, 2, 2, "linear", "half_pixel", NULL, 0},
    {1, 1, 13, 17, 0, 0, 4, 4, "nearest", "asymmetric", "floor", 0},
    /* down */
    {1, 8, 17, 23, 0, 0, 0.5f, 0.5f, "linear", "half_pixel", NULL, 0},
    {1, 13, 16, 20, 0, 0, 0.25f, 0.25f, "nearest", "asymmetric", "floor", 0},
    {2, 5, 19, 21, 0, 0, 0.5f, 0.25f, "linear", "align_corners", NULL, 0},
    {1, 8, 17, 23, 0, 0, 0.5f, 0.5f, "linear", "half_pixel", NULL, 1}, /* antialias: generic path */
    /* sizes instead of scales, one axis kept */
    {1, 10, 7, 9, 13, 5, 0, 0, "linear", "half_pixel_symmetric", NULL, 0},
    {1, 24, 7, 9, 7, 20, 0, 0, "linear", "pytorch_half_pixel", NULL, 0},
    {1, 8, 6, 10, 11, 10, 0, 0, "nearest", "half_pixel", "round_prefer_floor", 0},
    /* crop and resize with extrapolation */
    {1, 8, 9, 11, 0, 0, 2, 2, "linear", "tf_crop_and_resize", NULL, 0},
    {1, 5, 9, 11, 0, 0, 2, 2, "nearest", "tf_crop_and_resize", "round_prefer_floor", 0},
    {1, 16, 6, 7, 0, 0, 2, 2, "nearest", "tf_crop_and_resize", "floor", 0},
};

static void memk_resize(void)
{
    for (size_t ci = 0; ci < sizeof memk_resize_cases / sizeof memk_resize_cases[0]; ci++) {
        const memk_rs *rc = &memk_resize_cases[ci];
        kiln_network *net = NULL;
        if (kiln_network_create(&net)) return;
        kiln_network_set_opset(net, 19);
        int64_t xd[4] = {rc->n, rc->c, rc->h, rc->w}, four[1] = {4}, eight[1] = {8};
        kiln_network_add_input(net, "x", KILN_DT_FLOAT, 4, xd, NULL);
        bool crop = !strcmp(rc->ctm, "tf_crop_and_resize");
        float roi[8] = {0, 0, 0.1f, -0.2f, 1, 1, 0.8f, 1.3f};
        if (crop) kiln_network_add_constant(net, "roi", KILN_DT_FLOAT, 1, eight, roi, sizeof roi);
        const char *ins[4] = {"x", crop ? "roi" : "", "", ""};
        int nin;
        if (rc->oh > 0) {
            int64_t sz[4] = {rc->n, rc->c, rc->oh, rc->ow};
            kiln_network_add_constant(net, "sizes", KILN_DT_INT64, 1, four, sz, sizeof sz);
            ins[3] = "sizes";
            nin = 4;
        } else {
            float sc[4] = {1, 1, rc->sh, rc->sw};
            kiln_network_add_constant(net, "scales", KILN_DT_FLOAT, 1, four, sc, sizeof sc);
            ins[2] = "scales";
            nin = 3;
        }
        kiln_attr_value at[6];
        int na = 0;
        at[na++] = (kiln_attr_value){.name = "mode", .type = KILN_ATTR_STRING, .s = rc->mode, .s_len = strlen(rc->mode)};
        at[na++] = (kiln_attr_value){.name = "coordinate_transformation_mode", .type = KILN_ATTR_STRING, .s = rc->ctm,
                                     .s_len = strlen(rc->ctm)};
        if (rc->nearest)
            at[na++] = (kiln_attr_value){.name = "nearest_mode", .type = KILN_ATTR_STRING, .s = rc->nearest,
                                         .s_len = strlen(rc->nearest)};
        if (rc->antialias) at[na++] = (kiln_attr_value){.name = "antialias", .type = KILN_ATTR_INT, .i = 1};
        if (crop) at[na++] = (kiln_attr_value){.name = "extrapolation_value", .type = KILN_ATTR_FLOAT, .f = -1.5f};
        const char *out = "y";
        char name[160];
        snprintf(name, sizeof name, "memk_resize_%s_%s_%lldx%lldx%lldx%lld_%s", rc->mode, rc->ctm, (long long)rc->n,
                 (long long)rc->c, (long long)rc->h, (long long)rc->w, rc->antialias ? "aa" : rc->oh > 0 ? "sizes" : "scales");
        if (kiln_network_add_node(net, "rs", "Resize", "", nin, ins, 1, &out, na, at)) {
            printf("FAIL  %s: cannot build the node: %s\n", name, kiln_network_last_error(net));
            n_fail++;
        } else {
            memk_run_net(name, net);
        }
        kiln_network_free(net);
    }
}

/* Dense elementwise at odd lengths: Sigmoid, Mul by a scalar constant, Add same shape. */
static void memk_elementwise(void)
{
    /* the last: several grid-stride rounds of the two-vector loop */
    static const int64_t shapes[][4] = {{1, 3, 5, 7}, {1, 72, 18, 32}, {2, 5, 3, 1}, {1, 144, 9, 17}, {1, 144, 180, 321}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int64_t *d = shapes[si];
        for (int op = 0; op < 4; op++) {
            kiln_network *net = NULL;
            if (kiln_network_create(&net)) return;
            kiln_network_set_opset(net, 17);
            kiln_network_add_input(net, "a", KILN_DT_FLOAT, 4, d, NULL);
            const char *out = "y", *ins[2] = {"a", "b"};
            const char *type = op == 0 ? "Sigmoid" : op == 1 ? "Mul" : op == 2 ? "Add" : "Mul";
            float sc = 0.37f;
            if (op == 1) kiln_network_add_constant(net, "b", KILN_DT_FLOAT, 0, NULL, &sc, sizeof sc);
            if (op == 2) kiln_network_add_input(net, "b", KILN_DT_FLOAT, 4, d, NULL);
            if (op == 3) { /* scalar first, [1] shaped */
                int64_t one[1] = {1};
                kiln_network_add_constant(net, "b", KILN_DT_FLOAT, 1, one, &sc, sizeof sc);
                ins[0] = "b";
                ins[1] = "a";
            }
            char name[128];
            snprintf(name, sizeof name, "memk_%s%s_%lldx%lldx%lldx%lld", type, op == 3 ? "_scalar_first" : "",
                     (long long)d[0], (long long)d[1], (long long)d[2], (long long)d[3]);
            if (kiln_network_add_node(net, "ew", type, "", op == 0 ? 1 : 2, ins, 1, &out, 0, NULL)) {
                printf("FAIL  %s: cannot build the node: %s\n", name, kiln_network_last_error(net));
                n_fail++;
            } else {
                memk_run_net(name, net);
            }
            kiln_network_free(net);
        }
    }
}

/*
 * Cast as the runtime's reformat: input and output in different layouts
 * and/or float types, optionally one element off 16-byte alignment. The
 * expected output is the input rounded to the output type (exact compare).
 */
static void memk_reformat_one(const int64_t *d, int rank, kiln_dtype idt, kiln_dtype odt, kiln_layout il, kiln_layout ol,
                              int misalign)
{
    char name[160];
    snprintf(name, sizeof name, "memk_reformat_%lldx%lldx%lldx%lld%s_%s_%s_to_%s_%s%s", (long long)d[0], (long long)d[1],
             (long long)d[2], rank > 3 ? (long long)d[3] : 0LL, rank > 4 ? "x5d" : "", kiln_dtype_name(idt),
             il == KILN_LAYOUT_NHWC ? "nhwc" : "nchw", kiln_dtype_name(odt), ol == KILN_LAYOUT_NHWC ? "nhwc" : "nchw",
             misalign ? "_misaligned" : "");
    if (memk_skip(name)) return;
    kiln_network *net = NULL;
    if (kiln_network_create(&net)) return;
    kiln_network_set_opset(net, 19);
    kiln_network_add_input(net, "x", idt, rank, d, NULL);
    const char *ins[1] = {"x"}, *out = "y";
    kiln_attr_value at[1] = {{.name = "to", .type = KILN_ATTR_INT, .i = (int64_t)odt}};
    kiln_err err = {{0}};
    kiln_status s = kiln_network_add_node(net, "cast", "Cast", "", 1, ins, 1, &out, 1, at);
    if (s) {
        printf("FAIL  %s: cannot build the node: %s\n", name, kiln_network_last_error(net));
        n_fail++;
        kiln_network_free(net);
        return;
    }
    const kiln_node *nd = &net->nodes[0];
    const kiln_cuda_op *op = kiln__cuda_op_find("", "Cast");
    if (!op) {
        kiln_network_free(net);
        return;
    }
    kiln_value xv;
    memset(&xv, 0, sizeof xv);
    xv.dtype = KILN_DT_FLOAT;
    xv.shape = kiln__shape_of(rank, d);
    int64_t numel = kiln__value_numel(&xv);
    xv.nbytes = (size_t)numel * sizeof(float);
    xv.data = malloc(xv.nbytes + 4);
    double *expect = malloc(sizeof(double) * (size_t)(numel + 1));
    for (int64_t k = 0; k < numel; k++) {
        float v = 8.0f * frand();
        /* fp16 sources hold fp16 values; the fp32 -> fp16 cases keep values fp16 cannot hold exactly */
        if (idt == KILN_DT_FLOAT16) v = kiln__f16_to_f32(kiln__f32_to_f16(v));
        ((float *)xv.data)[k] = v;
        expect[k] = odt == KILN_DT_FLOAT16 ? kiln__f16_to_f32(kiln__f32_to_f16(v)) : v;
    }
    kiln_cuda_tensor ti, to;
    memset(&ti, 0, sizeof ti);
    memset(&to, 0, sizeof to);
    ti.dtype = idt;
    to.dtype = odt;
    ti.rank = to.rank = rank;
    for (int i = 0; i < rank; i++) ti.dims[i] = to.dims[i] = d[i];
    kiln__cuda_strides(&ti, il);
    kiln__cuda_strides(&to, ol);
    void *ibase = NULL, *obase = NULL;
    size_t ies = kiln_dtype_size(idt), oes = kiln_dtype_size(odt);
    /* upload() allocates; for a misaligned tensor copy it one element further into a bigger buffer */
    s = upload(&xv, &ti, &err);
    if (!s && misalign) {
        size_t bytes = span_elems(&ti) * ies;
        s = kiln__gpu_malloc(&ibase, bytes + 64, &err);
        if (!s) {
            uint8_t *h = malloc(bytes + 1);
            s = kiln__gpu_memcpy_d2h(h, ti.ptr, bytes, stream, &err);
            if (!s) s = kiln__gpu_sync(stream, &err);
            if (!s) s = kiln__gpu_memcpy_h2d((uint8_t *)ibase + ies, h, bytes, stream, &err);
            if (!s) s = kiln__gpu_sync(stream, &err);
            free(h);
            kiln__gpu_free(ti.ptr);
            ti.ptr = (uint8_t *)ibase + ies;
        }
    } else {
        ibase = ti.ptr;
    }
    size_t obytes = (span_elems(&to) + 8) * oes;
    if (!s) s = kiln__gpu_malloc(&obase, obytes, &err);
    if (!s) s = kiln__gpu_memset(obase, 0x7f, obytes, stream, &err);
    to.ptr = obase ? (uint8_t *)obase + (misalign ? oes : 0) : NULL;
    const kiln_value *host[1] = {NULL};
    kiln_cuda_launch l = {.node = nd, .params = nd->params, .in = &ti, .host = host, .out = &to, .ex = &ex};
    if (!s) s = op->launch(&l, &err);
    if (!s) s = kiln__gpu_sync(stream, &err);
    double *got = s ? NULL : download(&to, numel, &err);
    if (!s && !got) s = KILN_ERR_BACKEND;
    for (int64_t k = 0; got && k < numel && !s; k++)
        if (got[k] != expect[k])
            s = kiln__fail(&err, KILN_ERR_INTERNAL, "output [%lld]: gpu %.7g, expected %.7g", (long long)k, got[k], expect[k]);
    if (s) {
        n_fail++;
        printf("FAIL  %s: %s\n", name, err.msg);
    } else {
        n_pass++;
        if (verbose) printf("PASS  %s\n", name);
    }
    free(got);
    free(expect);
    free(xv.data);
    kiln__gpu_free(ibase);
    kiln__gpu_free(obase);
    kiln_network_free(net);
}

static void memk_reformat(void)
{
    /* between layouts, the first four take the tiled transpose (both sides >= 32, batch 1-3, odd
     * sizes), the next four the general kernel (a short side), the last two the transpose again
     * (72 channels, the EDVR size); the first five also one element off alignment */
    static const int64_t shapes[][4] = {{1, 64, 18, 32}, {2, 40, 9, 7},  {3, 33, 5, 13}, {1, 216, 9, 10},
                                        {1, 5, 7, 9},    {2, 3, 17, 33}, {3, 13, 1, 65}, {2, 8, 1, 1},
                                        {1, 72, 11, 13}, {1, 64, 180, 320}};
    const kiln_dtype dts[2] = {KILN_DT_FLOAT, KILN_DT_FLOAT16};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
                for (int lay = 0; lay < 4; lay++) {
                    kiln_layout il = (lay & 1) ? KILN_LAYOUT_NHWC : KILN_LAYOUT_ROW_MAJOR;
                    kiln_layout ol = (lay & 2) ? KILN_LAYOUT_NHWC : KILN_LAYOUT_ROW_MAJOR;
                    memk_reformat_one(shapes[si], 4, dts[a], dts[b], il, ol, 0);
                    if (si < 5) memk_reformat_one(shapes[si], 4, dts[a], dts[b], il, ol, 1);
                }
}

static void run_memk_cases(void)
{
    memk_resize();
    memk_elementwise();
    memk_reformat();
}
/* ==== END memory-bound fast-path cases (helper "memk") ====================== */


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
    {"srvgg first 3x3 3->64 270x480 prelu", 1, 3, 270, 480, 64, 3, 1, 1, 1, 1, "PRelu", 0, 0, 1, 0, 0, 1, 1},
    {"edvr first 3x3 3->64 5x180x320 lrelu", 5, 3, 180, 320, 64, 3, 1, 1, 1, 1, "LeakyRelu", 0.1f, 0, 1, 0, 0, 1, 1},
    {"edvr last 3x3 64->3 720x1280 +z", 1, 64, 720, 1280, 3, 3, 1, 1, 1, 1, "", 0, 0, 1, 1, 0, 1, 1},
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
        else if (!strcmp(argv[i], "--move-cases")) move_cases = 1; /* helper "mov" */
        else if (!strcmp(argv[i], "--memk-cases")) memk_cases = 1; /* helper "memk" */
        else if (!strcmp(argv[i], "--conv-bench")) conv_bench = 1;
        else if (!strcmp(argv[i], "--bench-filter") && i + 1 < argc) bench_filter = argv[++i];
        else if (!strcmp(argv[i], "--layout") && i + 1 < argc) nhwc = !strcmp(argv[++i], "nhwc");
        else if (!strcmp(argv[i], "--random")) randomize = 1;
        else if (!strcmp(argv[i], "-v")) verbose = 1;
        else {
            fprintf(stderr, "usage: kiln_gpu_ops_test --dir DIR... [--filter S] [--precision fp32|tf32|fp16] [--layout nchw|nhwc] "
                            "[--random] [--conv-cases] [--move-cases] [--memk-cases] [--conv-bench] [-v]\n");
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
    if (move_cases) run_move_cases(filter); /* helper "mov" */
    if (memk_cases) { /* helper "memk" */
        memk_filter = filter;
        run_memk_cases();
    }
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
