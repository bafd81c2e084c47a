/*
 * GPU ops of the conv family: Conv, ConvTranspose and kiln's FusedConv,
 *     y = act(conv(X, W) + B) * out_scale + z_scale * Z
 * (or, with act_after_residual, act((conv(X, W) + B) * out_scale + z_scale * Z)).
 *
 * Forward convolutions (Conv, FusedConv) go through cuDNN's backend API
 * (cuda_conv_graph.c): engine configurations from cuDNN's heuristics, the
 * epilogue fused into the cuDNN graph where cuDNN's runtime fusion accepts it,
 * else our epilogue kernel (k_conv.cu) after the plain convolution. Tactics
 * are stable engine codes, documented in cuda_conv_graph.c. When the backend
 * API offers nothing for a shape, or a launch inside a CUDA graph capture
 * finds no cached plan, or a pointer is not 16-byte aligned, the legacy API
 * (cudnnConvolutionForward with cuDNN's first-ranked algorithm) runs instead.
 *
 * KILN_CONV_LEGACY=1 in the environment puts every convolution on the legacy
 * API (for A/B comparisons); KILN_CONV_NOFUSE=1 keeps the backend API but
 * never fuses the epilogue into the cuDNN graph. Any failure of the backend API at run time (no
 * graph, no engine, no plan, an execute error) falls back to the legacy API
 * for that launch; it never fails the build or the run.
 *
 * ConvTranspose stays on the legacy API (backward-data). Its tactics are
 * cuDNN algorithms: the usable ones (heuristic status success, workspace <=
 * 256 MiB) sorted by algorithm id, so the index means the same algorithm at
 * other input sizes whenever that algorithm is still usable; when it is not
 * (or its workspace no longer fits), launch falls back to cuDNN's
 * first-ranked usable choice.
 *
 * 1-D convolutions run as 2-D with H = 1; 3-D ones through the same N-d
 * descriptors. cuDNN needs its tensors packed in one format (NCHW or NHWC) and
 * symmetric pads, so whatever does not fit is first copied into the workspace:
 * an input with unequal begin/end pads is padded explicitly, a tensor in the
 * other layout is reordered, and a ConvTranspose whose crop cuDNN cannot
 * express is computed into a temporary that the epilogue crops.
 */
#include "cuda_backend.h"
#include "gpu.h"
#include "cuda_conv_graph.h"
#include "../ir/ops_conv.h"
#include <cudnn.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Launchers in k_conv.cu. */
int kiln__cuda_conv_epilogue(const kiln_cuda_tensor *y, const kiln_cuda_tensor *src, const int64_t *src_off,
                             const kiln_cuda_tensor *bias, const kiln_cuda_tensor *slope, const kiln_cuda_tensor *z,
                             int act, int after, float alpha, float beta, float out_scale, float z_scale,
                             void *stream);
int kiln__cuda_conv_pack(const kiln_cuda_tensor *dst, const kiln_cuda_tensor *src, const int64_t *off, void *stream);

/* Activation codes, shared with k_conv.cu (keep in sync). */
enum { ACT_NONE = 0, ACT_RELU, ACT_LEAKY, ACT_PRELU, ACT_SIGMOID, ACT_TANH, ACT_CLIP };
enum { KIND_CONV, KIND_CONVT, KIND_FUSED };
enum { AUTO_PAD_NOTSET, AUTO_PAD_SAME_UPPER, AUTO_PAD_SAME_LOWER, AUTO_PAD_VALID };
enum { FMT_NCHW = 0, FMT_NHWC = 1 };

#define MAX_SP 3 /* spatial dims */
#define MAX_ND 5 /* cuDNN tensor rank */
#define WS_LIMIT ((size_t)256 << 20)
#define WS_ALIGN ((size_t)256)
#define ATTR_LIMIT ((int64_t)1 << 30)
#define MAX_ALGOS 16
#define CACHE_SLOTS 4

typedef struct conv_attrs {
    int kind;
    int auto_pad;
    int64_t group;
    int n_strides, n_dil, n_pads, n_outpad; /* entry counts, -1 when absent */
    bool has_outshape;
    int64_t strides[MAX_SP], dil[MAX_SP], pads[2 * MAX_SP], outpad[MAX_SP];
    int act;
    bool after; /* act_after_residual */
    float alpha, beta, out_scale, z_scale;
} conv_attrs;

/* What selects a cached algorithm list: everything the cuDNN descriptors hold. */
typedef struct conv_key {
    int kind, nd, fmt, dt, strict;
    int x[MAX_ND], y[MAX_ND], w[MAX_ND];
    int pad[MAX_SP], stride[MAX_SP], dil[MAX_SP];
    int group;
} conv_key;

typedef struct algo_entry {
    int algo;  /* cudnnConvolutionFwdAlgo_t or cudnnConvolutionBwdDataAlgo_t */
    int math;  /* cudnnMathType_t */
    int rank;  /* position in cuDNN's ranking */
    size_t ws;
} algo_entry;

typedef struct algo_list {
    bool used;
    conv_key key;
    int n, best; /* best: index of cuDNN's first-ranked entry */
    algo_entry a[MAX_ALGOS];
} algo_list;

typedef struct conv_state {
    conv_attrs a;
    kiln_dtype dt;
    /* Prepared constants (ptr NULL when the input is not constant). W keeps
     * ONNX dim order with the strides of its format (w_fmt); a constant X or
     * residual Z (rare: the runtime uploads no constant of an op that has
     * prepare) is kept row-major. */
    kiln_cuda_tensor w, b, s, x, z;
    kiln_cuda_tensor s1; /* 1 - slope, for the PRelu of the fused cuDNN graph */
    int w_fmt;
    bool shared; /* constants are the engine's (prepare_packed): never freed here */
    /* Descriptors and the algorithm cache are shared by every context that
     * runs this engine, so each use holds the mutex. */
    pthread_mutex_t mu;
    bool mu_ok;
    cudnnTensorDescriptor_t xd, yd, bd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    cudnnActivationDescriptor_t ad;
    algo_list cache[CACHE_SLOTS];
    unsigned next_slot;
    /* The backend-API spec this node is being timed at: set by tactic_count
     * (only the builder and the op test call it), kept while workspace() is
     * asked for tactics 0, 1, 2, ... in turn (their timing loop), ended by any
     * other sequence (the runtime asks for its chosen tactic), so that at run
     * time an unknown code always falls back instead of failing. */
    bool timed;
    int timing_next;
    kiln_cg_spec timed_spec;
} conv_state;

/* One launch's geometry: cuDNN-side tensors and the copies they need. */
typedef struct conv_plan {
    int nd, ns, fmt;
    kiln_dtype dt;
    bool strict;
    int64_t m;
    int pad[MAX_SP], stride[MAX_SP], dil[MAX_SP];
    kiln_cuda_tensor x, y, w;    /* the node's tensors as rank nd */
    kiln_cuda_tensor xc, yc, wc; /* what cuDNN reads/writes, packed in fmt */
    bool xpack, wpack, ytemp;
    int64_t xoff[MAX_ND], yoff[MAX_ND];
    size_t xbytes, wbytes, ybytes;
    bool has_b, has_s, has_z;
    kiln_cuda_tensor b, s, z;
    bool empty;
    conv_key key;
} conv_plan;

/* ------------------------------------------------------------------------ */
/* Attributes                                                                */

static int act_code(const char *s)
{
    if (!s || !s[0]) return ACT_NONE;
    if (!strcmp(s, "Relu")) return ACT_RELU;
    if (!strcmp(s, "LeakyRelu")) return ACT_LEAKY;
    if (!strcmp(s, "PRelu")) return ACT_PRELU;
    if (!strcmp(s, "Sigmoid")) return ACT_SIGMOID;
    if (!strcmp(s, "Tanh")) return ACT_TANH;
    if (!strcmp(s, "Clip")) return ACT_CLIP;
    return -1;
}

static kiln_status read_ints(const kiln_node *node, const char *name, int maxn, int64_t lo, int64_t *dst, int *n,
                             kiln_err *err)
{
    const int64_t *v;
    int64_t cnt = kiln__attr_ints(node, name, &v);
    *n = -1;
    if (cnt <= 0) return KILN_OK;
    if (cnt > maxn)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): attribute '%s' has %lld entries, at most %d supported",
                          node->name, node->op_type, name, (long long)cnt, maxn);
    for (int64_t i = 0; i < cnt; i++) {
        if (v[i] < lo || v[i] > ATTR_LIMIT)
            return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): attribute '%s'[%lld] = %lld is out of range",
                              node->name, node->op_type, name, (long long)i, (long long)v[i]);
        dst[i] = v[i];
    }
    *n = (int)cnt;
    return KILN_OK;
}

/* Window attributes from the schema's parsed params (FusedConv's begin with Conv's). */
static kiln_status attrs_from_params(const kiln_node *node, const kiln_conv_params *cp, conv_attrs *a, kiln_err *err)
{
    switch (cp->auto_pad) {
    case KILN_AUTO_PAD_SAME_UPPER: a->auto_pad = AUTO_PAD_SAME_UPPER; break;
    case KILN_AUTO_PAD_SAME_LOWER: a->auto_pad = AUTO_PAD_SAME_LOWER; break;
    case KILN_AUTO_PAD_VALID: a->auto_pad = AUTO_PAD_VALID; break;
    default: a->auto_pad = AUTO_PAD_NOTSET; break;
    }
    a->group = cp->group;
    if (cp->n_strides > MAX_SP || cp->n_dil > MAX_SP || cp->n_pads > 2 * MAX_SP || cp->n_outpad > MAX_SP ||
        a->group < 1 || a->group > INT_MAX)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): more than %d spatial dims or group %lld",
                          node->name, node->op_type, MAX_SP, (long long)a->group);
    a->n_strides = cp->n_strides;
    a->n_dil = cp->n_dil;
    a->n_pads = a->auto_pad == AUTO_PAD_NOTSET ? cp->n_pads : -1;
    a->n_outpad = a->kind == KIND_CONVT ? cp->n_outpad : -1;
    a->has_outshape = a->kind == KIND_CONVT && cp->n_outshape > 0;
    for (int i = 0; i < cp->n_strides; i++) a->strides[i] = cp->strides[i];
    for (int i = 0; i < cp->n_dil; i++) a->dil[i] = cp->dil[i];
    for (int i = 0; i < cp->n_pads; i++) a->pads[i] = cp->pads[i];
    for (int i = 0; i < cp->n_outpad; i++) a->outpad[i] = cp->outpad[i];
    return KILN_OK;
}

/* Window attributes read from the node's attributes (no parsed params). */
static kiln_status attrs_from_node(const kiln_node *node, conv_attrs *a, kiln_err *err)
{
    kiln_status s;
    const char *ap = kiln__attr_string(node, "auto_pad", "NOTSET");
    if (!ap || !ap[0] || !strcmp(ap, "NOTSET")) a->auto_pad = AUTO_PAD_NOTSET;
    else if (!strcmp(ap, "SAME_UPPER")) a->auto_pad = AUTO_PAD_SAME_UPPER;
    else if (!strcmp(ap, "SAME_LOWER")) a->auto_pad = AUTO_PAD_SAME_LOWER;
    else if (!strcmp(ap, "VALID")) a->auto_pad = AUTO_PAD_VALID;
    else
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): auto_pad '%s' is not supported", node->name,
                          node->op_type, ap);
    a->group = kiln__attr_int(node, "group", 1);
    if (a->group < 1 || a->group > INT_MAX)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): group %lld is out of range", node->name,
                          node->op_type, (long long)a->group);
    if ((s = read_ints(node, "strides", MAX_SP, 1, a->strides, &a->n_strides, err))) return s;
    if ((s = read_ints(node, "dilations", MAX_SP, 1, a->dil, &a->n_dil, err))) return s;
    if ((s = read_ints(node, "pads", 2 * MAX_SP, 0, a->pads, &a->n_pads, err))) return s;
    if (a->auto_pad != AUTO_PAD_NOTSET) a->n_pads = -1;
    a->n_outpad = -1;
    if (a->kind == KIND_CONVT) {
        const int64_t *os;
        if ((s = read_ints(node, "output_padding", MAX_SP, 0, a->outpad, &a->n_outpad, err))) return s;
        a->has_outshape = kiln__attr_ints(node, "output_shape", &os) > 0;
    }
    return KILN_OK;
}

static kiln_status attrs_read(const kiln_node *node, conv_attrs *a, kiln_err *err)
{
    memset(a, 0, sizeof *a);
    if (!strcmp(node->op_type, "ConvTranspose")) a->kind = KIND_CONVT;
    else if (!strcmp(node->op_type, "FusedConv")) a->kind = KIND_FUSED;
    else a->kind = KIND_CONV;
    kiln_status s = node->params ? attrs_from_params(node, node->params, a, err) : attrs_from_node(node, a, err);
    if (s) return s;
    a->act = ACT_NONE;
    a->out_scale = 1.0f;
    a->z_scale = 1.0f;
    /* FusedConv's epilogue comes from its attributes (its params struct is private to ops_fused.c). */
    if (a->kind == KIND_FUSED) {
        const char *act = kiln__attr_string(node, "activation", "");
        a->act = act_code(act);
        if (a->act < 0)
            return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (FusedConv): activation '%s' is not supported",
                              node->name, act ? act : "");
        float da = a->act == ACT_LEAKY ? 0.01f : a->act == ACT_CLIP ? -INFINITY : 0.0f;
        float db = a->act == ACT_CLIP ? INFINITY : 0.0f;
        a->alpha = kiln__attr_float(node, "act_alpha", da);
        a->beta = kiln__attr_float(node, "act_beta", db);
        a->out_scale = kiln__attr_float(node, "out_scale", 1.0f);
        a->z_scale = kiln__attr_float(node, "z_scale", 1.0f);
        a->after = kiln__attr_int(node, "act_after_residual", 0) != 0;
    }
    return KILN_OK;
}

/* Entry i of an attribute of exactly n entries, else def (as the CPU kernels read them). */
static int64_t attr_at(const int64_t *v, int cnt, int n, int i, int64_t def) { return cnt == n ? v[i] : def; }

/* ------------------------------------------------------------------------ */
/* Layout helpers                                                            */

static void packed_strides(const int64_t *dims, int r, int fmt, int64_t *st)
{
    if (fmt == FMT_NCHW || r < 3) {
        st[r - 1] = 1;
        for (int d = r - 2; d >= 0; d--) st[d] = st[d + 1] * dims[d + 1];
        return;
    }
    st[1] = 1;
    st[r - 1] = dims[1];
    for (int d = r - 2; d >= 2; d--) st[d] = st[d + 1] * dims[d + 1];
    st[0] = st[2] * dims[2];
}

/* Whether t is densely packed in fmt (dims of size 1 may have any stride). */
static bool is_packed(const kiln_cuda_tensor *t, int fmt)
{
    int64_t st[KILN_MAX_DIMS];
    packed_strides(t->dims, t->rank, fmt, st);
    for (int d = 0; d < t->rank; d++)
        if (t->dims[d] > 1 && t->strides[d] != st[d]) return false;
    return true;
}

/* t as rank nd: a rank-3 (1-D conv) tensor gets H = 1 inserted before its last dim. */
static void view_nd(const kiln_cuda_tensor *t, int nd, kiln_cuda_tensor *v)
{
    *v = *t;
    if (t->rank == 3 && nd == 4) {
        v->rank = 4;
        v->dims[3] = t->dims[2];
        v->strides[3] = t->strides[2];
        v->dims[2] = 1;
        v->strides[2] = t->dims[2] * t->strides[2];
    }
}

static int64_t numel_of(const kiln_cuda_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->rank; d++) n *= t->dims[d];
    return n;
}

static size_t align_up(size_t v) { return (v + WS_ALIGN - 1) / WS_ALIGN * WS_ALIGN; }

static cudnnDataType_t cudnn_dt(kiln_dtype dt) { return dt == KILN_DT_FLOAT16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT; }

static kiln_status cudnn_fail(const kiln_node *node, const char *what, cudnnStatus_t st, kiln_err *err)
{
    return kiln__fail(err, KILN_ERR_BACKEND, "node '%s' (%s): %s: %s", node->name, node->op_type, what,
                      cudnnGetErrorString(st));
}

/* ------------------------------------------------------------------------ */
/* State                                                                     */

static void state_fini(conv_state *st)
{
    if (st->xd) cudnnDestroyTensorDescriptor(st->xd);
    if (st->yd) cudnnDestroyTensorDescriptor(st->yd);
    if (st->bd) cudnnDestroyTensorDescriptor(st->bd);
    if (st->wd) cudnnDestroyFilterDescriptor(st->wd);
    if (st->cd) cudnnDestroyConvolutionDescriptor(st->cd);
    if (st->ad) cudnnDestroyActivationDescriptor(st->ad);
    if (!st->shared) {
        if (st->w.ptr) kiln__gpu_free(st->w.ptr);
        if (st->b.ptr) kiln__gpu_free(st->b.ptr);
        if (st->s.ptr) kiln__gpu_free(st->s.ptr);
        if (st->x.ptr) kiln__gpu_free(st->x.ptr);
        if (st->z.ptr) kiln__gpu_free(st->z.ptr);
        if (st->s1.ptr) kiln__gpu_free(st->s1.ptr);
    }
    if (st->mu_ok) pthread_mutex_destroy(&st->mu);
    memset(st, 0, sizeof *st);
}

static kiln_status state_init(const kiln_node *node, conv_state *st, kiln_err *err)
{
    memset(st, 0, sizeof *st);
    kiln_status s = attrs_read(node, &st->a, err);
    if (s) return s;
    if (pthread_mutex_init(&st->mu, NULL) != 0)
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): cannot create a mutex", node->name, node->op_type);
    st->mu_ok = true;
    cudnnStatus_t cs;
    if ((cs = cudnnCreateTensorDescriptor(&st->xd)) || (cs = cudnnCreateTensorDescriptor(&st->yd)) ||
        (cs = cudnnCreateTensorDescriptor(&st->bd)) || (cs = cudnnCreateFilterDescriptor(&st->wd)) ||
        (cs = cudnnCreateConvolutionDescriptor(&st->cd)) || (cs = cudnnCreateActivationDescriptor(&st->ad))) {
        s = cudnn_fail(node, "creating descriptors", cs, err);
        state_fini(st);
        return s;
    }
    return KILN_OK;
}

/* Copies a host value into device memory as dt, in the layout given by the
 * strides of fmt over its own dims (ONNX order). */
static kiln_status upload(const kiln_node *node, const kiln_value *v, kiln_dtype dt, int fmt, kiln_cuda_tensor *out,
                          kiln_err *err)
{
    memset(out, 0, sizeof *out);
    int r = v->shape.rank;
    if (r < 1 || r > KILN_MAX_DIMS || !kiln__shape_is_const(&v->shape))
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): constant input has rank %d", node->name,
                          node->op_type, r);
    out->dtype = dt;
    out->rank = r;
    for (int d = 0; d < r; d++) out->dims[d] = v->shape.d[d].add;
    packed_strides(out->dims, r, fmt, out->strides);
    int64_t n = kiln__value_numel(v);
    size_t es = kiln_dtype_size(dt), bytes;
    if (n <= 0) return KILN_OK;
    if (kiln__mul_overflow((size_t)n, es, &bytes))
        return kiln__fail(err, KILN_ERR_LIMIT, "node '%s' (%s): constant of %lld elements is too large", node->name,
                          node->op_type, (long long)n);
    uint8_t *h = kiln__malloc(bytes);
    if (!h) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s' (%s): out of host memory", node->name, node->op_type);
    int64_t idx[KILN_MAX_DIMS] = {0}, off = 0;
    for (int64_t i = 0; i < n; i++) {
        float f = (float)kiln__value_get_f64(v, i);
        if (dt == KILN_DT_FLOAT16) {
            uint16_t hv = kiln__f32_to_f16(f);
            memcpy(h + off * 2, &hv, 2);
        } else {
            memcpy(h + off * 4, &f, 4);
        }
        /* Advance the row-major coordinate and the destination offset together. */
        for (int d = r - 1; d >= 0; d--) {
            off += out->strides[d];
            if (++idx[d] < out->dims[d]) break;
            off -= out->strides[d] * out->dims[d];
            idx[d] = 0;
        }
    }
    kiln_status s = kiln__gpu_malloc(&out->ptr, bytes, err);
    if (!s) s = kiln__gpu_memcpy_h2d(out->ptr, h, bytes, NULL, err);
    /* The host buffer is freed right after: wait for the copy. */
    if (!s) s = kiln__gpu_sync(NULL, err);
    free(h);
    if (s && out->ptr) {
        kiln__gpu_free(out->ptr);
        out->ptr = NULL;
    }
    return s;
}

/* 1 - v of a constant, as dt, flat. */
static kiln_status upload_one_minus(const kiln_node *node, const kiln_value *v, kiln_dtype dt, kiln_cuda_tensor *out,
                                    kiln_err *err)
{
    memset(out, 0, sizeof *out);
    int64_t n = kiln__value_numel(v);
    if (n <= 0 || n > ((int64_t)1 << 24)) return KILN_OK;
    size_t es = kiln_dtype_size(dt), bytes = (size_t)n * es;
    uint8_t *h = kiln__malloc(bytes);
    if (!h) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s' (%s): out of host memory", node->name, node->op_type);
    for (int64_t i = 0; i < n; i++) {
        float f = 1.0f - (float)kiln__value_get_f64(v, i);
        if (dt == KILN_DT_FLOAT16) {
            uint16_t hv = kiln__f32_to_f16(f);
            memcpy(h + i * 2, &hv, 2);
        } else {
            memcpy(h + i * 4, &f, 4);
        }
    }
    kiln_status s = kiln__gpu_malloc(&out->ptr, bytes, err);
    if (!s) s = kiln__gpu_memcpy_h2d(out->ptr, h, bytes, NULL, err);
    if (!s) s = kiln__gpu_sync(NULL, err);
    free(h);
    if (s && out->ptr) {
        kiln__gpu_free(out->ptr);
        out->ptr = NULL;
    }
    return s;
}

static void conv_release(void *state)
{
    conv_state *st = state;
    if (!st) return;
    state_fini(st);
    free(st);
}

/* A fresh state for a node computing in dt (FLOAT or FLOAT16), constants not yet set. */
static kiln_status state_new(const kiln_node *node, kiln_dtype dt, conv_state **out, kiln_err *err)
{
    *out = NULL;
    if (dt != KILN_DT_FLOAT && dt != KILN_DT_FLOAT16)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): compute type %s is not supported on the GPU",
                          node->name, node->op_type, kiln_dtype_name(dt));
    conv_state *st = kiln__calloc(1, sizeof *st);
    if (!st) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s' (%s): out of memory", node->name, node->op_type);
    kiln_status s = state_init(node, st, err);
    if (s) {
        free(st);
        return s;
    }
    st->dt = dt;
    *out = st;
    return KILN_OK;
}

/* A per-channel (or single) vector: flat, stride 1 (0 for one value). */
static kiln_cuda_tensor flat_vector(const kiln_cuda_tensor *t)
{
    int64_t n = numel_of(t);
    return (kiln_cuda_tensor){.ptr = t->ptr, .dtype = t->dtype, .rank = 1, .dims = {n}, .strides = {n == 1 ? 0 : 1}};
}

static kiln_status conv_prepare(const kiln_node *node, const void *params, const kiln_value *const *host, kiln_dtype dt,
                                kiln_layout layout, void **state, kiln_err *err)
{
    *state = NULL;
    conv_state *st;
    kiln_status s = state_new(node, dt, &st, err);
    if (s) return s;
    const kiln_value *w = node->n_in > 1 ? host[1] : NULL;
    const kiln_value *b = node->n_in > 2 ? host[2] : NULL;
    const kiln_value *sl = st->a.kind == KIND_FUSED && node->n_in > 3 ? host[3] : NULL;
    const kiln_value *x = host[0], *z = st->a.kind == KIND_FUSED && node->n_in > 4 ? host[4] : NULL;
    if (w && w->data) {
        st->w_fmt = layout == KILN_LAYOUT_NHWC && w->shape.rank == 4 ? FMT_NHWC : FMT_NCHW;
        s = upload(node, w, dt, st->w_fmt, &st->w, err);
    }
    if (!s && b && b->data) s = upload(node, b, dt, FMT_NCHW, &st->b, err);
    if (!s && x && x->data) s = upload(node, x, dt, FMT_NCHW, &st->x, err);
    if (!s && z && z->data) s = upload(node, z, dt, FMT_NCHW, &st->z, err);
    if (!s && sl && sl->data) {
        s = upload(node, sl, dt, FMT_NCHW, &st->s, err);
        if (!s) {
            /* The slope is per channel (or one for all): flatten to a vector; 1 - s alike. */
            st->s = flat_vector(&st->s);
            s = upload_one_minus(node, sl, dt, &st->s1, err);
            if (!s) {
                void *p1 = st->s1.ptr;
                st->s1 = st->s;
                st->s1.ptr = p1;
            }
        }
    }
    if (s) {
        conv_release(st);
        return s;
    }
    *state = st;
    return KILN_OK;
}

/* Engine file v3: the constants come already converted by the builder (W in dt with the
 * strides of w_fmt, the others in dt; the slope's 1 - s as well) and on the device, in the
 * engine's memory, shared by every context: nothing to convert or upload here. The layouts
 * are those prepare would make (see kiln_cuda_op.prepare_packed), except that a constant X
 * or Z of a 4-D NHWC engine comes NHWC (launch reads every operand through its strides). */
static kiln_status conv_prepare_packed(const kiln_node *node, const void *params, const kiln_value *const *host,
                                       const kiln_cuda_tensor *dev, kiln_dtype dt, kiln_layout layout, void **state,
                                       kiln_err *err)
{
    (void)params;
    (void)host;
    *state = NULL;
    conv_state *st;
    kiln_status s = state_new(node, dt, &st, err);
    if (s) return s;
    st->shared = true;
    int n = node->n_in;
    bool fused = st->a.kind == KIND_FUSED;
    for (int i = 0; i < n && i < 5; i++)
        if (dev[i].ptr && dev[i].dtype != dt) {
            s = kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): constant input %d is %s in the engine, the layer computes in %s",
                           node->name, node->op_type, i, kiln_dtype_name(dev[i].dtype), kiln_dtype_name(dt));
            conv_release(st);
            return s;
        }
    /* as prepare: an empty constant is left out (ptr NULL) */
#define GIVEN(i) (n > (i) && dev[i].ptr && numel_of(&dev[i]) > 0)
    if (GIVEN(1)) {
        st->w = dev[1];
        st->w_fmt = layout == KILN_LAYOUT_NHWC && dev[1].rank == 4 ? FMT_NHWC : FMT_NCHW;
    }
    if (GIVEN(2)) st->b = dev[2];
    if (GIVEN(0)) st->x = dev[0];
    if (fused && GIVEN(4)) st->z = dev[4];
    if (fused && GIVEN(3)) {
        st->s = flat_vector(&dev[3]);
        if (dev[n + 3].ptr) st->s1 = flat_vector(&dev[n + 3]);
    }
#undef GIVEN
    *state = st;
    return KILN_OK;
}

/* ------------------------------------------------------------------------ */
/* Planning                                                                  */

static kiln_status check_int(const kiln_node *node, const kiln_cuda_tensor *t, const char *what, kiln_err *err)
{
    int64_t n = 1;
    for (int d = 0; d < t->rank; d++) {
        if (t->dims[d] < 0 || t->dims[d] > INT_MAX)
            return kiln__fail(err, KILN_ERR_LIMIT, "node '%s' (%s): %s dim %d is %lld, cuDNN takes at most %d",
                              node->name, node->op_type, what, d, (long long)t->dims[d], INT_MAX);
        if (t->dims[d] && n > ((int64_t)1 << 50) / t->dims[d])
            return kiln__fail(err, KILN_ERR_LIMIT, "node '%s' (%s): %s is too large", node->name, node->op_type, what);
        n *= t->dims[d];
    }
    return KILN_OK;
}

static int64_t floor_half(int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

/* A per-channel vector (bias or slope) of a device tensor: m entries or one. */
static kiln_status channel_vector(const kiln_node *node, const kiln_cuda_tensor *t, int64_t m, const char *what,
                                  kiln_dtype dt, kiln_cuda_tensor *v, kiln_err *err)
{
    int64_t n = numel_of(t);
    if (t->dtype != dt)
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): %s is %s, X is %s", node->name, node->op_type, what,
                          kiln_dtype_name(t->dtype), kiln_dtype_name(dt));
    if (n != m && n != 1)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): %s has %lld entries, expected %lld or 1", node->name,
                          node->op_type, what, (long long)n, (long long)m);
    memset(v, 0, sizeof *v);
    v->ptr = t->ptr;
    v->dtype = t->dtype;
    v->rank = 1;
    v->dims[0] = n;
    v->strides[0] = 0;
    if (n > 1)
        for (int d = 0; d < t->rank; d++)
            if (t->dims[d] == n) {
                v->strides[0] = t->strides[d];
                break;
            }
    return KILN_OK;
}

/* Picks the cuDNN format: the one the most operands already have. */
static int choose_format(const conv_plan *p, int w_pref)
{
    int score[2];
    for (int f = 0; f < 2; f++)
        score[f] = 2 * is_packed(&p->x, f) + 2 * is_packed(&p->y, f) + is_packed(&p->w, f) + (f == w_pref);
    return score[FMT_NHWC] > score[FMT_NCHW] ? FMT_NHWC : FMT_NCHW;
}

/* Whether optional input i is given (device addresses may not be bound yet when
 * the runtime asks for the workspace, so presence comes from the graph). */
static bool present(const kiln_node *node, int i) { return node->n_in > i && node->in[i] >= 0; }

/* The launch's geometry from dims and strides alone: pointers are not needed
 * (nor checked) here, so tactic_count and workspace work before binding. */
static kiln_status make_plan(const kiln_cuda_launch *l, const conv_state *st, conv_plan *p, kiln_err *err)
{
    const kiln_node *node = l->node;
    const conv_attrs *a = &st->a;
    kiln_status s;
    memset(p, 0, sizeof *p);
    if (node->n_in < 2 || node->n_out < 1 || node->in[0] < 0 || node->in[1] < 0)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): X and W are required", node->name, node->op_type);
    const kiln_cuda_tensor *X = st->x.ptr ? &st->x : &l->in[0], *W = st->w.ptr ? &st->w : &l->in[1], *Y = &l->out[0];
    kiln_dtype dt = X->dtype;
    if (dt != KILN_DT_FLOAT && dt != KILN_DT_FLOAT16)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): type %s is not supported on the GPU", node->name,
                          node->op_type, kiln_dtype_name(dt));
    if (W->dtype != dt || Y->dtype != dt)
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): X is %s, W %s, Y %s (weights prepared as %s)",
                          node->name, node->op_type, kiln_dtype_name(dt), kiln_dtype_name(W->dtype),
                          kiln_dtype_name(Y->dtype), kiln_dtype_name(st->dt));
    int r = X->rank;
    if (r < 3 || r > 5 || W->rank != r || Y->rank != r)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): ranks X %d, W %d, Y %d (1-D to 3-D supported)",
                          node->name, node->op_type, X->rank, W->rank, Y->rank);
    if ((s = check_int(node, X, "X", err)) || (s = check_int(node, W, "W", err)) || (s = check_int(node, Y, "Y", err)))
        return s;
    int nsp = r - 2;
    p->nd = r == 3 ? 4 : r;
    p->ns = p->nd - 2;
    p->dt = dt;
    p->strict = dt == KILN_DT_FLOAT && (l->ex->precision == KILN_PREC_FP32 || l->strict_fp32);
    view_nd(X, p->nd, &p->x);
    view_nd(W, p->nd, &p->w);
    view_nd(Y, p->nd, &p->y);
    int64_t g = a->group, n = p->x.dims[0], cin = p->x.dims[1], m;
    if (a->kind == KIND_CONVT) {
        m = p->w.dims[1] * g;
        if (p->w.dims[0] != cin || cin % g)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (ConvTranspose): X has %lld channels, W has %lld, group %lld",
                              node->name, (long long)cin, (long long)p->w.dims[0], (long long)g);
    } else {
        m = p->w.dims[0];
        if (p->w.dims[1] * g != cin || m % g)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): X has %lld channels, W is %lldx%lld, group %lld",
                              node->name, node->op_type, (long long)cin, (long long)p->w.dims[0],
                              (long long)p->w.dims[1], (long long)g);
    }
    p->m = m;
    if (p->y.dims[0] != n || p->y.dims[1] != m)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): Y is %lldx%lld..., expected %lldx%lld", node->name,
                          node->op_type, (long long)p->y.dims[0], (long long)p->y.dims[1], (long long)n, (long long)m);
    p->empty = numel_of(&p->y) == 0;
    if (p->empty) return KILN_OK;
    if (numel_of(&p->x) == 0)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): empty input", node->name, node->op_type);

    int w_pref = st->w.ptr ? st->w_fmt : (is_packed(&p->w, FMT_NHWC) && !is_packed(&p->w, FMT_NCHW)) ? FMT_NHWC : FMT_NCHW;
    p->fmt = choose_format(p, w_pref);
    p->xc = p->x;
    p->yc = p->y;
    p->wc = p->w;

    bool pad_x = false, crop_y = false;
    for (int j = 0; j < p->ns; j++) {
        int i = j - (p->ns - nsp); /* ONNX spatial index; < 0 for the inserted H of a 1-D conv */
        int64_t in = p->x.dims[2 + j], out = p->y.dims[2 + j], k = p->w.dims[2 + j];
        int64_t sd = i >= 0 ? attr_at(a->strides, a->n_strides, nsp, i, 1) : 1;
        int64_t dl = i >= 0 ? attr_at(a->dil, a->n_dil, nsp, i, 1) : 1;
        int64_t eff = dl * (k - 1) + 1;
        int64_t pad = 0;
        if (a->kind != KIND_CONVT) {
            int64_t total = (out - 1) * sd + eff - in, pb = 0;
            if (total < 0) total = 0;
            if (i >= 0 && a->auto_pad == AUTO_PAD_NOTSET) pb = attr_at(a->pads, a->n_pads, 2 * nsp, i, 0);
            else if (i >= 0 && a->auto_pad == AUTO_PAD_SAME_UPPER) pb = total / 2;
            else if (i >= 0 && a->auto_pad == AUTO_PAD_SAME_LOWER) pb = total - total / 2;
            if (in + 2 * pb - eff >= 0 && (in + 2 * pb - eff) / sd + 1 == out) {
                pad = pb;
            } else {
                /* cuDNN pads both sides alike: pad the excess explicitly so the padded
                 * length gives exactly `out` windows. */
                int64_t need = (out - 1) * sd + eff - in - pb;
                if (need < 0) need = 0;
                pad = pb < need ? pb : need;
                p->xc.dims[2 + j] = (out - 1) * sd + eff - 2 * pad;
                p->xoff[2 + j] = pb - pad;
                pad_x = true;
            }
        } else {
            int64_t op = i >= 0 ? attr_at(a->outpad, a->n_outpad, nsp, i, 0) : 0;
            int64_t full = sd * (in - 1) + eff, total = full + op - out, pb = 0;
            bool has_pads = a->n_pads == 2 * nsp && a->auto_pad == AUTO_PAD_NOTSET;
            if (i < 0) pb = 0;
            else if (has_pads) pb = a->pads[i];
            else if (a->auto_pad == AUTO_PAD_SAME_UPPER) pb = floor_half(total);
            else if (a->has_outshape || a->auto_pad == AUTO_PAD_SAME_LOWER) pb = total - floor_half(total);
            /* Y[i] = full[i + pb], zero past the end of full (output padding). */
            int64_t pe_full = full - out - pb, r0 = out + 2 * pb - full;
            if (pb >= 0 && r0 >= 0 && r0 <= sd - 1) {
                /* cuDNN writes Y directly: begin crop pb, trailing rows zero. */
                pad = pb;
            } else {
                /* cuDNN crops the same amount at both ends: crop what both ends
                 * allow, and let the epilogue cut the rest. */
                pad = pb < pe_full ? pb : pe_full;
                if (pad < 0) pad = 0;
                if (full - 2 * pad < 1) pad = 0;
                p->yc.dims[2 + j] = full - 2 * pad;
                p->yoff[2 + j] = pb - pad;
                crop_y = true;
            }
        }
        if (pad > INT_MAX || sd > INT_MAX || dl > INT_MAX)
            return kiln__fail(err, KILN_ERR_LIMIT, "node '%s' (%s): pads/strides too large", node->name, node->op_type);
        p->pad[j] = (int)pad;
        p->stride[j] = (int)sd;
        p->dil[j] = (int)dl;
    }
    p->xpack = pad_x || !is_packed(&p->x, p->fmt);
    p->ytemp = crop_y || !is_packed(&p->y, p->fmt);
    p->wpack = !is_packed(&p->w, p->fmt);
    kiln_cuda_tensor *cs[3] = {&p->xc, &p->yc, &p->wc};
    for (int t = 0; t < 3; t++) packed_strides(cs[t]->dims, p->nd, p->fmt, cs[t]->strides);
    if ((s = check_int(node, &p->xc, "padded X", err)) || (s = check_int(node, &p->yc, "Y temporary", err))) return s;
    size_t es = kiln_dtype_size(dt);
    p->xbytes = p->xpack ? (size_t)numel_of(&p->xc) * es : 0;
    p->ybytes = p->ytemp ? (size_t)numel_of(&p->yc) * es : 0;
    p->wbytes = p->wpack ? (size_t)numel_of(&p->wc) * es : 0;

    /* Bias, PReLU slope, residual. */
    const kiln_cuda_tensor *B = st->b.ptr ? &st->b : present(node, 2) ? &l->in[2] : NULL;
    if (B) {
        if ((s = channel_vector(node, B, m, "B", dt, &p->b, err))) return s;
        if (p->b.dims[0] != m)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): B has %lld entries, Y has %lld channels",
                              node->name, node->op_type, (long long)p->b.dims[0], (long long)m);
        p->has_b = true;
    }
    if (a->kind == KIND_FUSED) {
        const kiln_cuda_tensor *S = st->s.ptr ? &st->s : present(node, 3) ? &l->in[3] : NULL;
        if (a->act == ACT_PRELU) {
            if (!S)
                return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (FusedConv): PRelu needs the slope input S",
                                  node->name);
            if ((s = channel_vector(node, S, m, "S", dt, &p->s, err))) return s;
            p->has_s = true;
        }
        const kiln_cuda_tensor *Z = st->z.ptr ? &st->z : present(node, 4) ? &l->in[4] : NULL;
        if (Z) {
            if (Z->dtype != dt || Z->rank != r)
                return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (FusedConv): Z is %s rank %d, Y is %s rank %d",
                                  node->name, kiln_dtype_name(Z->dtype), Z->rank, kiln_dtype_name(dt), r);
            for (int d = 0; d < r; d++)
                if (Z->dims[d] != Y->dims[d])
                    return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (FusedConv): Z dim %d is %lld, Y has %lld",
                                      node->name, d, (long long)Z->dims[d], (long long)Y->dims[d]);
            view_nd(Z, p->nd, &p->z);
            p->has_z = true;
            /* A residual in Y's own buffer would be overwritten by the convolution
             * before the epilogue reads it: convolve into a temporary instead. */
            if (Z->ptr && Z->ptr == Y->ptr && !p->ytemp) {
                p->ytemp = true;
                p->ybytes = (size_t)numel_of(&p->yc) * es;
            }
        }
    }

    conv_key *k = &p->key;
    k->kind = a->kind == KIND_CONVT;
    k->nd = p->nd;
    k->fmt = p->fmt;
    k->dt = dt;
    k->strict = p->strict;
    for (int d = 0; d < p->nd; d++) {
        k->x[d] = (int)p->xc.dims[d];
        k->y[d] = (int)p->yc.dims[d];
        k->w[d] = (int)p->wc.dims[d];
    }
    for (int j = 0; j < p->ns; j++) {
        k->pad[j] = p->pad[j];
        k->stride[j] = p->stride[j];
        k->dil[j] = p->dil[j];
    }
    k->group = (int)g;
    return KILN_OK;
}

static bool needs_epilogue(const conv_state *st, const conv_plan *p)
{
    return p->has_b || p->ytemp || st->a.act != ACT_NONE || st->a.out_scale != 1.0f || p->has_z;
}

/* Whether cudnnConvolutionBiasActivationForward computes exactly this node. */
static bool cba_eligible(const conv_state *st, const conv_plan *p)
{
    const conv_attrs *a = &st->a;
    if (a->kind == KIND_CONVT || !p->has_b || p->ytemp || a->out_scale != 1.0f) return false;
    if (p->b.strides[0] != 1 && p->m > 1) return false;
    if (a->act == ACT_RELU) return !p->has_z || (a->after && is_packed(&p->z, p->fmt));
    if (a->act != ACT_NONE) return false;
    return !p->has_z || is_packed(&p->z, p->fmt);
}

/* ------------------------------------------------------------------------ */
/* Descriptors and algorithms                                                */

static kiln_status set_descs(const kiln_node *node, conv_state *st, const conv_plan *p, kiln_err *err)
{
    int xd[MAX_ND], yd[MAX_ND], wd[MAX_ND];
    for (int d = 0; d < p->nd; d++) {
        xd[d] = (int)p->xc.dims[d];
        yd[d] = (int)p->yc.dims[d];
        wd[d] = (int)p->wc.dims[d];
    }
    cudnnTensorFormat_t f = p->fmt == FMT_NHWC ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    cudnnDataType_t t = cudnn_dt(p->dt);
    cudnnStatus_t cs;
    if ((cs = cudnnSetTensorNdDescriptorEx(st->xd, f, t, p->nd, xd))) return cudnn_fail(node, "X descriptor", cs, err);
    if ((cs = cudnnSetTensorNdDescriptorEx(st->yd, f, t, p->nd, yd))) return cudnn_fail(node, "Y descriptor", cs, err);
    if ((cs = cudnnSetFilterNdDescriptor(st->wd, t, f, p->nd, wd))) return cudnn_fail(node, "W descriptor", cs, err);
    if ((cs = cudnnSetConvolutionNdDescriptor(st->cd, p->ns, p->pad, p->stride, p->dil, CUDNN_CROSS_CORRELATION,
                                              CUDNN_DATA_FLOAT)))
        return cudnn_fail(node, "convolution descriptor", cs, err);
    if ((cs = cudnnSetConvolutionGroupCount(st->cd, (int)st->a.group)))
        return cudnn_fail(node, "group count", cs, err);
    cudnnMathType_t math = p->dt == KILN_DT_FLOAT16 ? CUDNN_TENSOR_OP_MATH : p->strict ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
    if ((cs = cudnnSetConvolutionMathType(st->cd, math))) return cudnn_fail(node, "math type", cs, err);
    return KILN_OK;
}

static int entry_cmp(const void *a, const void *b)
{
    const algo_entry *x = a, *y = b;
    if (x->algo != y->algo) return x->algo < y->algo ? -1 : 1;
    return x->math < y->math ? -1 : x->math > y->math;
}

/* The usable algorithms for the plan (descriptors already set), cached per key. */
static kiln_status get_algos(const kiln_cuda_launch *l, conv_state *st, const conv_plan *p, const algo_list **out,
                             kiln_err *err)
{
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (st->cache[i].used && !memcmp(&st->cache[i].key, &p->key, sizeof p->key)) {
            *out = &st->cache[i];
            return KILN_OK;
        }
    algo_list *al = &st->cache[st->next_slot++ % CACHE_SLOTS];
    memset(al, 0, sizeof *al);
    cudnnHandle_t h = l->ex->cudnn;
    int n = 0;
    struct { int algo, status, math; size_t mem; } res[MAX_ALGOS];
    cudnnStatus_t cs;
    if (st->a.kind == KIND_CONVT) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[MAX_ALGOS];
        cs = cudnnGetConvolutionBackwardDataAlgorithm_v7(h, st->wd, st->xd, st->cd, st->yd, MAX_ALGOS, &n, perf);
        for (int i = 0; !cs && i < n; i++) {
            res[i].algo = perf[i].algo;
            res[i].status = perf[i].status;
            res[i].math = perf[i].mathType;
            res[i].mem = perf[i].memory;
        }
    } else {
        cudnnConvolutionFwdAlgoPerf_t perf[MAX_ALGOS];
        cs = cudnnGetConvolutionForwardAlgorithm_v7(h, st->xd, st->wd, st->cd, st->yd, MAX_ALGOS, &n, perf);
        for (int i = 0; !cs && i < n; i++) {
            res[i].algo = perf[i].algo;
            res[i].status = perf[i].status;
            res[i].math = perf[i].mathType;
            res[i].mem = perf[i].memory;
        }
    }
    if (cs) return cudnn_fail(l->node, "algorithm query", cs, err);
    for (int i = 0; i < n && i < MAX_ALGOS; i++) {
        if (res[i].status != CUDNN_STATUS_SUCCESS || res[i].mem > WS_LIMIT) continue;
        int math = p->strict ? CUDNN_FMA_MATH : res[i].math;
        if (p->strict && (res[i].math == CUDNN_TENSOR_OP_MATH || res[i].math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION))
            continue;
        /* fp32 data never runs with fp16 down-conversion. */
        if (p->dt == KILN_DT_FLOAT && math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
        bool dup = false;
        for (int j = 0; j < al->n; j++)
            if (al->a[j].algo == res[i].algo && al->a[j].math == math) dup = true;
        if (dup) continue;
        algo_entry *e = &al->a[al->n++];
        e->algo = res[i].algo;
        e->math = math;
        e->rank = i;
        e->ws = res[i].mem;
    }
    qsort(al->a, (size_t)al->n, sizeof al->a[0], entry_cmp);
    al->best = 0;
    for (int j = 1; j < al->n; j++)
        if (al->a[j].rank < al->a[al->best].rank) al->best = j;
    al->key = p->key;
    al->used = true;
    *out = al;
    return KILN_OK;
}

/* Index of the forward IMPLICIT_PRECOMP_GEMM entry (what the fused call uses), or -1. */
static int precomp_index(const algo_list *al)
{
    for (int j = 0; j < al->n; j++)
        if (al->a[j].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM) return j;
    return -1;
}

static int tactics_of(const conv_state *st, const conv_plan *p, const algo_list *al)
{
    return al->n + (cba_eligible(st, p) && precomp_index(al) >= 0);
}

/* The state for a launch: the prepared one, or a temporary (no constants
 * uploaded) when the runtime did not call prepare. */
static kiln_status state_get(const kiln_cuda_launch *l, conv_state *tmp, conv_state **st, kiln_err *err)
{
    if (l->state) {
        *st = l->state;
        return KILN_OK;
    }
    kiln_status s = state_init(l->node, tmp, err);
    if (s) return s;
    tmp->dt = l->in[0].dtype;
    *st = tmp;
    return KILN_OK;
}

static void state_put(conv_state *tmp, conv_state *st)
{
    if (st == tmp) state_fini(tmp);
}

/* Plans, sets descriptors and fetches the algorithm list, under st->mu. */
static kiln_status plan_and_algos(const kiln_cuda_launch *l, conv_state *st, conv_plan *p, const algo_list **al,
                                  kiln_err *err)
{
    kiln_status s = make_plan(l, st, p, err);
    if (s || p->empty) return s;
    if ((s = set_descs(l->node, st, p, err))) return s;
    return get_algos(l, st, p, al, err);
}

static size_t packs_bytes(const conv_plan *p)
{
    return align_up(p->xbytes) + align_up(p->wbytes) + align_up(p->ybytes);
}

/* Entry a tactic selects: -1 for the fused cuDNN call. Falls back to cuDNN's
 * ranking when the tactic is out of range or its workspace does not fit. */
static int pick_entry(const conv_state *st, const conv_plan *p, const algo_list *al, int tactic, size_t ws_avail)
{
    if (al->n == 0) return -2;
    int pi = precomp_index(al);
    if (tactic == al->n && cba_eligible(st, p) && pi >= 0 && al->a[pi].ws <= ws_avail) return -1;
    int e = tactic >= 0 && tactic < al->n ? tactic : al->best;
    if (al->a[e].ws <= ws_avail) return e;
    int pick = -2;
    for (int j = 0; j < al->n; j++)
        if (al->a[j].ws <= ws_avail && (pick < 0 || al->a[j].rank < al->a[pick].rank)) pick = j;
    return pick;
}

/* ------------------------------------------------------------------------ */
/* Table callbacks                                                           */

/* The backend-API description of a forward launch (plan made, descriptors not needed). */
static void make_spec(const kiln_cuda_launch *l, const conv_state *st, const conv_plan *p, kiln_cg_spec *sp)
{
    const conv_attrs *a = &st->a;
    memset(sp, 0, sizeof *sp);
    sp->nd = p->nd;
    sp->ns = p->ns;
    sp->dt = p->dt;
    sp->strict = p->strict;
    for (int d = 0; d < p->nd; d++) {
        sp->x[d] = p->xc.dims[d];
        sp->xs[d] = p->xc.strides[d];
        sp->w[d] = p->wc.dims[d];
        sp->ws[d] = p->wc.strides[d];
        sp->y[d] = p->yc.dims[d];
        sp->ys[d] = p->yc.strides[d];
    }
    for (int j = 0; j < p->ns; j++) {
        sp->pad[j] = p->pad[j];
        sp->stride[j] = p->stride[j];
        sp->dil[j] = p->dil[j];
    }
    /* KILN_CONV_NOFUSE=1: plain convolutions only (our epilogue kernel after them) */
    const char *nf = getenv("KILN_CONV_NOFUSE");
    if (!needs_epilogue(st, p) || p->ytemp || (nf && nf[0] == '1')) return;
    /* What the fused graph can take: contiguous per-channel vectors, a
     * residual laid out like Y, a prepared per-channel PRelu slope. */
    bool ok = true;
    if (p->has_b && p->b.strides[0] != 1 && p->m > 1) ok = false;
    if (p->has_z)
        for (int d = 0; d < p->nd; d++)
            if (p->z.dims[d] > 1 && p->z.strides[d] != p->yc.strides[d]) ok = false;
    if (a->act == ACT_PRELU && (!st->s.ptr || !st->s1.ptr || st->s.dims[0] != p->m || st->s1.dims[0] != p->m))
        ok = false;
    /* Scaled residuals stay on our epilogue: the pointwise ALPHA1/ALPHA2 path is
     * not verified on the GPU yet (kiln__cg_spec keeps the fields for it). */
    if (a->out_scale != 1.0f || (p->has_z && a->z_scale != 1.0f)) ok = false;
    if (!ok) return;
    sp->fuse = 1;
    sp->has_b = p->has_b;
    sp->has_z = p->has_z;
    sp->act = a->act;
    sp->after = a->after && a->act != ACT_NONE;
    sp->alpha = a->alpha;
    sp->beta = a->beta;
    sp->out_scale = a->out_scale;
    sp->z_scale = p->has_z ? a->z_scale : 1.0f;
    if (p->has_z)
        for (int d = 0; d < p->nd; d++) sp->zs[d] = p->z.strides[d];
    (void)l;
}

/* Whether the node is being timed at this spec (see conv_state.timed). */
static bool timing_at(const conv_state *st, const kiln_cg_spec *sp)
{
    return st->timed && !memcmp(&st->timed_spec, sp, sizeof *sp);
}

/* KILN_CONV_LEGACY=1 in the environment: every convolution on the legacy API
 * (A/B comparisons; tactics are then legacy algorithm indices). */
static bool force_legacy(void)
{
    const char *e = getenv("KILN_CONV_LEGACY");
    return e && e[0] == '1';
}

/* Whether the launch is a forward convolution on the backend API path. */
/* 2-D (and 1-D, run as 2-D) forward convolutions only: 3-D ones stay on the legacy
 * API, where they were checked (a backend-API engine faulted on a misaligned address
 * for test_Conv3d_dilated in fp32 NHWC on the H200). */
static bool is_forward(const conv_state *st, const conv_plan *p)
{
    return st->a.kind != KIND_CONVT && p->nd == 4 && !force_legacy();
}

static int conv_tactic_count(const kiln_cuda_launch *l)
{
    conv_state tmp, *st;
    kiln_err err;
    if (state_get(l, &tmp, &st, &err)) return 1;
    pthread_mutex_lock(&st->mu);
    conv_plan p;
    const algo_list *al = NULL;
    int n = 1;
    if (!make_plan(l, st, &p, &err) && !p.empty) {
        if (is_forward(st, &p)) {
            kiln_cg_spec sp;
            make_spec(l, st, &p, &sp);
            n = kiln__cg_tactic_count(l->ex->cudnn, &sp);
            st->timed = n > 0;
            st->timing_next = 0;
            st->timed_spec = sp;
        } else {
            n = 0;
        }
        /* nothing from the backend API (or ConvTranspose): the legacy algorithms */
        if (n <= 0 && !plan_and_algos(l, st, &p, &al, &err) && al) n = tactics_of(st, &p, al);
    }
    pthread_mutex_unlock(&st->mu);
    state_put(&tmp, st);
    return n > 0 ? n : 1;
}

static size_t conv_workspace(const kiln_cuda_launch *l)
{
    conv_state tmp, *st;
    kiln_err err;
    if (state_get(l, &tmp, &st, &err)) return 0;
    pthread_mutex_lock(&st->mu);
    conv_plan p;
    const algo_list *al = NULL;
    size_t ws = 0;
    if (!plan_and_algos(l, st, &p, &al, &err) && al) {
        size_t legacy = 0, graph = 0;
        int e;
        if (is_forward(st, &p)) {
            /* Builds the plan here, outside any capture. The legacy algorithm
             * (cuDNN's first choice) is what launch falls back to: room for both. */
            kiln_cg_spec sp;
            kiln_cg_choice c;
            make_spec(l, st, &p, &sp);
            if (st->timed) {
                if (l->tactic == st->timing_next) st->timing_next++;
                else st->timed = false;
            }
            kiln_status cs = kiln__cg_resolve(l->ex->cudnn, &sp, l->tactic, timing_at(st, &sp), WS_LIMIT, &c);
            if (cs == KILN_ERR_UNSUPPORTED) {
                /* not a candidate while timing: launch refuses it, no memory for it */
                pthread_mutex_unlock(&st->mu);
                state_put(&tmp, st);
                return 0;
            }
            if (!cs && c.found) graph = c.ws;
            bool legacy_mode = kiln__cg_tactic_count(l->ex->cudnn, &sp) == 0;
            e = pick_entry(st, &p, al, legacy_mode ? l->tactic : -1, WS_LIMIT);
        } else {
            e = pick_entry(st, &p, al, l->tactic, WS_LIMIT);
        }
        if (e == -1) e = precomp_index(al);
        if (e >= 0) legacy = al->a[e].ws;
        ws = packs_bytes(&p) + align_up(legacy > graph ? legacy : graph);
    }
    pthread_mutex_unlock(&st->mu);
    state_put(&tmp, st);
    return ws;
}

static kiln_status run_epilogue(const kiln_cuda_launch *l, const conv_state *st, const conv_plan *p, kiln_err *err)
{
    const conv_attrs *a = &st->a;
    const kiln_cuda_tensor *src = p->ytemp ? &p->yc : &p->y;
    int rc = kiln__cuda_conv_epilogue(&p->y, src, p->yoff, p->has_b ? &p->b : NULL, p->has_s ? &p->s : NULL,
                                      p->has_z ? &p->z : NULL, a->act, a->after, a->alpha, a->beta, a->out_scale,
                                      a->z_scale, l->ex->stream);
    return kiln__cuda_check(rc, l->node, "conv epilogue", err);
}

static kiln_status run_cudnn(const kiln_cuda_launch *l, conv_state *st, const conv_plan *p, const algo_entry *e,
                             bool fused, void *ws, size_t ws_bytes, kiln_err *err)
{
    cudnnHandle_t h = l->ex->cudnn;
    float one = 1.0f, zero = 0.0f;
    cudnnStatus_t cs = cudnnSetConvolutionMathType(st->cd, (cudnnMathType_t)e->math);
    if (cs) return cudnn_fail(l->node, "math type", cs, err);
    if (st->a.kind == KIND_CONVT) {
        cs = cudnnConvolutionBackwardData(h, &one, st->wd, p->wc.ptr, st->xd, p->xc.ptr, st->cd,
                                          (cudnnConvolutionBwdDataAlgo_t)e->algo, ws, ws_bytes, &zero, st->yd,
                                          p->yc.ptr);
        return cs ? cudnn_fail(l->node, "cudnnConvolutionBackwardData", cs, err) : KILN_OK;
    }
    if (fused) {
        int bd[MAX_ND], bs[MAX_ND];
        for (int d = 0; d < p->nd; d++) {
            bd[d] = d == 1 ? (int)p->m : 1;
            bs[d] = d == 0 ? (int)p->m : 1;
        }
        float a2 = p->has_z ? st->a.z_scale : 0.0f;
        const void *z = p->has_z ? p->z.ptr : p->yc.ptr;
        cudnnActivationMode_t am = st->a.act == ACT_RELU ? CUDNN_ACTIVATION_RELU : CUDNN_ACTIVATION_IDENTITY;
        if (!(cs = cudnnSetTensorNdDescriptor(st->bd, cudnn_dt(p->dt), p->nd, bd, bs)) &&
            !(cs = cudnnSetActivationDescriptor(st->ad, am, CUDNN_NOT_PROPAGATE_NAN, 0.0)))
            cs = cudnnConvolutionBiasActivationForward(h, &one, st->xd, p->xc.ptr, st->wd, p->wc.ptr, st->cd,
                                                       CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, ws, ws_bytes,
                                                       &a2, st->yd, z, st->bd, p->b.ptr, st->ad, st->yd, p->yc.ptr);
        return cs ? cudnn_fail(l->node, "cudnnConvolutionBiasActivationForward", cs, err) : KILN_OK;
    }
    cs = cudnnConvolutionForward(h, &one, st->xd, p->xc.ptr, st->wd, p->wc.ptr, st->cd,
                                 (cudnnConvolutionFwdAlgo_t)e->algo, ws, ws_bytes, &zero, st->yd, p->yc.ptr);
    return cs ? cudnn_fail(l->node, "cudnnConvolutionForward", cs, err) : KILN_OK;
}

static kiln_status launch_locked(const kiln_cuda_launch *l, conv_state *st, kiln_err *err)
{
    const kiln_node *node = l->node;
    conv_plan p;
    const algo_list *al = NULL;
    kiln_status s = plan_and_algos(l, st, &p, &al, err);
    if (s || p.empty) return s;
    if (!p.x.ptr || !p.w.ptr || !p.y.ptr || (p.has_b && !p.b.ptr) || (p.has_s && !p.s.ptr) || (p.has_z && !p.z.ptr))
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): an input or output has no device address",
                          node->name, node->op_type);
    /* No plan building inside a CUDA graph capture: cached plans only. */
    bool capturing = false;
    enum cudaStreamCaptureStatus cst = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing((cudaStream_t)l->ex->stream, &cst) != cudaSuccess) {
        (void)cudaGetLastError();
        capturing = true;
    } else {
        capturing = cst != cudaStreamCaptureStatusNone;
    }
    kiln_cg_spec sp;
    bool fwd = is_forward(st, &p);
    if (fwd) {
        make_spec(l, st, &p, &sp);
        kiln_cg_choice c0;
        if (timing_at(st, &sp) && !capturing &&
            kiln__cg_resolve(l->ex->cudnn, &sp, l->tactic, true, WS_LIMIT, &c0) == KILN_ERR_UNSUPPORTED)
            return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): tactic %d is not a candidate for this shape",
                              node->name, node->op_type, l->tactic);
    }
    size_t packs = packs_bytes(&p);
    if (packs > l->ex->workspace_bytes || (packs && !l->ex->workspace))
        return kiln__fail(err, KILN_ERR_LIMIT, "node '%s' (%s): needs %zu bytes of workspace for copies, has %zu",
                          node->name, node->op_type, packs, l->ex->workspace_bytes);
    size_t ws_avail = l->ex->workspace_bytes - packs;

    /* Copies first (fixed offsets), the convolution's workspace after them. */
    uint8_t *base = l->ex->workspace;
    size_t off = 0;
    if (p.xpack) {
        p.xc.ptr = base + off;
        off += align_up(p.xbytes);
        int rc = kiln__cuda_conv_pack(&p.xc, &p.x, p.xoff, l->ex->stream);
        if ((s = kiln__cuda_check(rc, node, "padding X", err))) return s;
    }
    if (p.wpack) {
        p.wc.ptr = base + off;
        off += align_up(p.wbytes);
        int rc = kiln__cuda_conv_pack(&p.wc, &p.w, NULL, l->ex->stream);
        if ((s = kiln__cuda_check(rc, node, "reordering W", err))) return s;
    }
    if (p.ytemp) {
        p.yc.ptr = base + off;
        off += align_up(p.ybytes);
    }

    int legacy_tactic = l->tactic;
    if (fwd) {
        kiln_cg_ptrs ptrs = {.x = p.xc.ptr, .w = p.wc.ptr, .y = p.yc.ptr, .b = p.has_b ? p.b.ptr : NULL,
                             .slope = st->s.ptr, .slope1 = st->s1.ptr, .z = p.has_z ? p.z.ptr : NULL};
        const void *chk[7] = {ptrs.x, ptrs.w, ptrs.y, ptrs.b, ptrs.slope, ptrs.slope1, ptrs.z};
        bool aligned = true;
        for (int k = 0; k < 7; k++)
            if ((uintptr_t)chk[k] % 16) aligned = false;
        if (aligned) {
            kiln_cg_choice c;
            void *cws = base ? base + off : NULL;
            s = kiln__cg_run(l->ex->cudnn, &sp, l->tactic, timing_at(st, &sp), !capturing, cws, ws_avail, &ptrs, &c,
                             node, err);
            if (s) return s;
            if (c.found) return !c.fused && needs_epilogue(st, &p) ? run_epilogue(l, st, &p, err) : KILN_OK;
            legacy_tactic = -1; /* backend codes mean nothing to the legacy list */
            if (!capturing) {
                /* no engine at all from the backend API at this shape: tactic_count
                 * offered the legacy algorithms, so the tactic is a legacy index */
                if (kiln__cg_tactic_count(l->ex->cudnn, &sp) == 0) legacy_tactic = l->tactic;
            }
        } else {
            legacy_tactic = -1;
        }
    }

    int e = pick_entry(st, &p, al, legacy_tactic, ws_avail);
    if (e == -2)
        return kiln__fail(err, al->n ? KILN_ERR_LIMIT : KILN_ERR_UNSUPPORTED,
                          al->n ? "node '%s' (%s): no cuDNN algorithm fits the %zu bytes of workspace left"
                                : "node '%s' (%s): no cuDNN algorithm supports this convolution (%zu bytes of workspace)",
                          node->name, node->op_type, ws_avail);
    bool fused = e == -1;
    if (fused) e = precomp_index(al);

    void *ws = al->a[e].ws ? base + off : NULL;
    size_t ws_bytes = al->a[e].ws;
    if (fused) {
        s = run_cudnn(l, st, &p, &al->a[e], true, ws, ws_bytes, err);
        if (!s) return KILN_OK;
        /* cuDNN may refuse the fused call for this configuration at run time:
         * run the same algorithm and the epilogue instead. */
    }
    if ((s = run_cudnn(l, st, &p, &al->a[e], false, ws, ws_bytes, err))) {
        /* An algorithm the heuristic listed may still be refused: use cuDNN's first choice. */
        int b = al->best;
        if (b == e || al->a[b].ws > ws_avail) return s;
        ws_bytes = al->a[b].ws;
        ws = ws_bytes ? base + off : NULL;
        if ((s = run_cudnn(l, st, &p, &al->a[b], false, ws, ws_bytes, err))) return s;
    }
    return needs_epilogue(st, &p) ? run_epilogue(l, st, &p, err) : KILN_OK;
}

static kiln_status conv_launch(const kiln_cuda_launch *l, kiln_err *err)
{
    conv_state tmp, *st;
    kiln_status s = state_get(l, &tmp, &st, err);
    if (s) return s;
    pthread_mutex_lock(&st->mu);
    s = launch_locked(l, st, err);
    pthread_mutex_unlock(&st->mu);
    state_put(&tmp, st);
    return s;
}

/* Static check: float types, 1-D to 3-D, known activation, int-sized dims. */
static bool conv_supports(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    if (node->n_in < 2 || !in[0] || !in[1]) return false;
    const kiln_value *x = in[0], *w = in[1];
    if (x->dtype != KILN_DT_FLOAT && x->dtype != KILN_DT_FLOAT16) return false;
    if (w->dtype != x->dtype) return false;
    int r = x->shape.rank;
    if (r < 3 || r > 5 || w->shape.rank != r) return false;
    conv_attrs a;
    kiln_err err;
    if (attrs_read(node, &a, &err)) return false;
    const kiln_value *chk[3] = {x, w, out};
    for (int t = 0; t < 3; t++) {
        if (!chk[t] || chk[t]->shape.rank < 0) continue;
        for (int d = 0; d < chk[t]->shape.rank; d++) {
            kiln_dim dm = chk[t]->shape.d[d];
            if (kiln__dim_is_const(dm) && dm.add > INT_MAX) return false;
        }
    }
    for (int i = 2; i < node->n_in; i++)
        if (in[i] && in[i]->dtype != x->dtype) return false;
    if (a.kind == KIND_FUSED && a.act == ACT_PRELU) {
        const kiln_value *sl = node->n_in > 3 ? in[3] : NULL;
        if (!sl) return false;
        int64_t n = kiln__shape_numel(&sl->shape);
        kiln_dim m = w->shape.d[0];
        if (n >= 0 && n != 1 && kiln__dim_is_const(m) && n != m.add) return false;
    }
    return true;
}

const kiln_cuda_op kiln__cuda_ops_conv[] = {
    {.op_type = "Conv", .domain = "", .supports = conv_supports, .prepare = conv_prepare, .prepare_packed = conv_prepare_packed, .release = conv_release,
     .tactic_count = conv_tactic_count, .workspace = conv_workspace, .launch = conv_launch},
    {.op_type = "ConvTranspose", .domain = "", .supports = conv_supports, .prepare = conv_prepare, .prepare_packed = conv_prepare_packed,
     .release = conv_release, .tactic_count = conv_tactic_count, .workspace = conv_workspace, .launch = conv_launch},
    {.op_type = "FusedConv", .domain = "kiln", .supports = conv_supports, .prepare = conv_prepare, .prepare_packed = conv_prepare_packed,
     .release = conv_release, .tactic_count = conv_tactic_count, .workspace = conv_workspace, .launch = conv_launch},
    {0},
};
