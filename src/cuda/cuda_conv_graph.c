/*
 * Forward convolution through cuDNN's backend ("graph") API (cudnn_graph.h,
 * plain C): an operation graph per convolution, engine configurations from
 * cuDNN's heuristics (modes A and FALLBACK), execution plans built once per
 * (handle, shape, engine) and cached, and cudnnBackendExecute with a variant
 * pack at launch.
 *
 * Two operation graphs per spec (see cuda_conv_graph.h):
 *   variant 0: CONVOLUTION_FORWARD X, W -> Y; the caller runs its own
 *              epilogue kernel (k_conv.cu) afterwards;
 *   variant 1: the convolution and its epilogue as pointwise ops (runtime
 *              fusion): + B (broadcast [1,C,1,1]), the activation (RELU_FWD;
 *              LeakyRelu as RELU_FWD with a lower slope; Clip as RELU_FWD with
 *              bounds; SIGMOID_FWD; TANH_FWD; PRelu as (1-S)*relu(v) + S*v),
 *              the residual as ADD with alpha1 = out_scale, alpha2 = z_scale,
 *              the activation last when `after`. Built only when the epilogue
 *              is expressible; cuDNN refusing it (finalize or no engine)
 *              simply leaves variant 0.
 * Engines are filtered by their numerical notes: never reduced-precision
 * reduction, down-converted inputs or non-deterministic ones; no tensor-core
 * engine for strict fp32 (tensor cores on fp32 data mean TF32).
 *
 * Tactic encoding (stored in engine files, reused at other shapes and after
 * reload, so it names an engine, not a position in a list):
 *     tactic 0                  the default: the first usable configuration
 *                               of the heuristics (fused variant first);
 *     tactic 1 + 2*g + v        engine with CUDNN_ATTR_ENGINE_GLOBAL_INDEX g
 *                               (0 <= g < 512) in variant v (0 plain, 1 fused),
 *                               with the knob choices the heuristics give at
 *                               the shape it runs at.
 * tactic_count is 1 + the largest code offered at the shape; while a node is
 * being timed (its conv state saw tactic_count at that shape and then
 * workspace() for tactics 0, 1, 2, ... in turn, see cuda_ops_conv.c) codes in
 * between that are not offered, or whose plan cannot be built or executed,
 * are "not a candidate" (launch fails with KILN_ERR_UNSUPPORTED, the builder
 * and the op test skip them). Everywhere else (run time, other shapes from
 * dynamic H/W, after reload) such a code falls back to the default, and when
 * the backend API has nothing usable at all, to the legacy API.
 *
 * Cache: one process-wide table of entries keyed by (cudnn handle, CUDA
 * device, spec), so identical convolutions of an engine share graphs and plans
 * (runtime-compiled kernels are compiled once per handle); least recently
 * used entries are evicted. A plan runs only with the handle it was built
 * with. (An entry of a destroyed handle is never used again unless a new
 * handle gets the same address, and then a live handle of the same device
 * stands where the old one was.) Plans are built by
 * `workspace`/`tactic_count` calls (kiln__cg_resolve / kiln__cg_tactic_count),
 * which the runtime makes before it captures; a launch inside a capture only
 * executes cached plans (kiln__cg_run with build false). One mutex guards the
 * table and every execute (an execute only enqueues).
 */
#include "cuda_conv_graph.h"
#include <cudnn.h>
#include <float.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 256
#define MAX_CFG 20
#define MAX_FUSED 5
#define MAX_PLAIN 8
#define MAX_KEEP 96
#define MAX_GIDX 512
#define WS_LIMIT ((size_t)256 << 20)

enum { UID_X = 1, UID_W, UID_Y, UID_B, UID_S, UID_S1, UID_Z, UID_VIRT = 100 };

typedef struct cg_cfg {
    int code, variant;
    bool tc; /* tensor-core engine */
    int64_t gidx;
    cudnnBackendDescriptor_t cfg, plan;
    int plan_state; /* 0 not tried, 1 built, -1 failed */
    size_t ws;
} cg_cfg;

typedef struct cg_entry {
    void *handle; /* graphs and plans are built with it and executed with it */
    int device;
    kiln_cg_spec sp;
    unsigned stamp;
    cudnnBackendDescriptor_t keep[MAX_KEEP]; /* tensors, ops, graphs */
    int n_keep;
    int n;
    cg_cfg c[MAX_CFG];
} cg_entry;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_diag[512]; /* the latest refusal, for kiln__cg_diag */
static cg_entry *g_slot[SLOTS];
static unsigned g_clock;

/* ------------------------------------------------------------------------ */
/* Descriptor helpers (each returns NULL / false on any cuDNN error)          */

static cudnnBackendDescriptor_t make(cudnnBackendDescriptorType_t t)
{
    cudnnBackendDescriptor_t d = NULL;
    return cudnnBackendCreateDescriptor(t, &d) == CUDNN_STATUS_SUCCESS ? d : NULL;
}

/* Records why cuDNN refused something (status and cuDNN's own last message). */
static void diag(const char *what, int id, cudnnStatus_t st)
{
    char last[320] = "";
    cudnnGetLastErrorString(last, sizeof last);
    snprintf(g_diag, sizeof g_diag, "%s %d: %s; %s", what, id, cudnnGetErrorString(st), last);
}

static bool set(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t a, cudnnBackendAttributeType_t t, int64_t n,
                const void *v)
{
    cudnnStatus_t st = cudnnBackendSetAttribute(d, a, t, n, v);
    if (st) diag("set attribute", (int)a, st);
    return st == CUDNN_STATUS_SUCCESS;
}

/* cudnnBackendFinalize, recording a refusal (what: a short name for it). */
static bool fin(cudnnBackendDescriptor_t d, const char *what)
{
    cudnnStatus_t st = cudnnBackendFinalize(d);
    if (st) diag(what, 0, st);
    return st == CUDNN_STATUS_SUCCESS;
}

static bool set_desc(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t a, cudnnBackendDescriptor_t v)
{
    return set(d, a, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &v);
}

static bool keep(cg_entry *e, cudnnBackendDescriptor_t d)
{
    if (!d) return false;
    if (e->n_keep >= MAX_KEEP) {
        cudnnBackendDestroyDescriptor(d);
        return false;
    }
    e->keep[e->n_keep++] = d;
    return true;
}

static void entry_free(cg_entry *e)
{
    if (!e) return;
    for (int i = 0; i < e->n; i++) {
        if (e->c[i].plan) cudnnBackendDestroyDescriptor(e->c[i].plan);
        if (e->c[i].cfg) cudnnBackendDestroyDescriptor(e->c[i].cfg);
    }
    for (int i = e->n_keep - 1; i >= 0; i--) cudnnBackendDestroyDescriptor(e->keep[i]);
    free(e);
}

static cudnnDataType_t data_type(int dt) { return dt == KILN_DT_FLOAT16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT; }

/* A finalized tensor descriptor, kept by the entry. */
static cudnnBackendDescriptor_t tensor(cg_entry *e, int64_t uid, cudnnDataType_t t, int nd, const int64_t *dims,
                                       const int64_t *strides, bool virt)
{
    cudnnBackendDescriptor_t d = make(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    if (!d) return NULL;
    int64_t align = 16;
    bool ok = set(d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &t) &&
              set(d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, nd, dims) &&
              set(d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, nd, strides) &&
              set(d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid) &&
              set(d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align) &&
              set(d, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt) &&
              fin(d, "tensor finalize");
    if (!ok) {
        cudnnBackendDestroyDescriptor(d);
        return NULL;
    }
    return keep(e, d) ? d : NULL;
}

/* A per-channel vector [1, C, 1, ...] laid out like y. */
static cudnnBackendDescriptor_t channel_tensor(cg_entry *e, int64_t uid, const kiln_cg_spec *sp)
{
    int64_t dims[KILN_CG_MAX_ND], st[KILN_CG_MAX_ND], c = sp->y[1];
    bool nhwc = sp->ys[1] == 1 && c > 1;
    for (int d = 0; d < sp->nd; d++) {
        dims[d] = d == 1 ? c : 1;
        st[d] = d == 1 ? 1 : nhwc ? c : (d == 0 ? c : 1);
    }
    return tensor(e, uid, data_type(sp->dt), sp->nd, dims, st, false);
}

/* One pointwise op: y = mode(alpha1 * x, alpha2 * b). */
typedef struct pw_args {
    cudnnPointwiseMode_t mode;
    cudnnBackendDescriptor_t x, b, y;
    float alpha1, alpha2;
    bool clip;          /* RELU_FWD bounds */
    double lower, upper, slope;
} pw_args;

static cudnnBackendDescriptor_t pointwise(cg_entry *e, const pw_args *a)
{
    cudnnBackendDescriptor_t pw = make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    if (!pw) return NULL;
    cudnnDataType_t prec = CUDNN_DATA_FLOAT;
    bool ok = set(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &a->mode) &&
              set(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec);
    if (ok && a->mode == CUDNN_POINTWISE_RELU_FWD) {
        /* all three set, as doubles, the upper bound no larger than float's range (fp32 math) */
        double lower = a->clip ? a->lower : 0.0, upper = a->clip ? a->upper : (double)FLT_MAX;
        ok = set(pw, CUDNN_ATTR_POINTWISE_RELU_LOWER_CLIP, CUDNN_TYPE_DOUBLE, 1, &lower) &&
             set(pw, CUDNN_ATTR_POINTWISE_RELU_UPPER_CLIP, CUDNN_TYPE_DOUBLE, 1, &upper) &&
             set(pw, CUDNN_ATTR_POINTWISE_RELU_LOWER_CLIP_SLOPE, CUDNN_TYPE_DOUBLE, 1, &a->slope);
    }
    ok = ok && fin(pw, "pointwise finalize");
    if (!ok || !keep(e, pw)) {
        if (!ok) cudnnBackendDestroyDescriptor(pw);
        return NULL;
    }
    cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    if (!op) return NULL;
    ok = set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw) &&
         set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, a->x) &&
         (!a->b || set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, a->b)) &&
         set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, a->y) &&
         (a->alpha1 == 1.0f || set(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &a->alpha1)) &&
         (!a->b || a->alpha2 == 1.0f || set(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &a->alpha2)) &&
         fin(op, "pointwise op finalize");
    if (!ok) {
        cudnnBackendDestroyDescriptor(op);
        return NULL;
    }
    return keep(e, op) ? op : NULL;
}

/* ------------------------------------------------------------------------ */
/* Operation graphs                                                          */

/* The epilogue as a list of pointwise steps before it is emitted, so the last
 * step can write Y. xref: REF_CUR the running value, REF_CONV the
 * convolution's output, k >= 0 step k's result. The second operand: the tensor
 * buid when > 0, else bref (REF_NONE or a step). */
enum { REF_CUR = -1, REF_CONV = -2, REF_NONE = -3 };
typedef struct step {
    pw_args a;
    int xref, bref;
    int64_t buid;
} step;

static step step_of(cudnnPointwiseMode_t mode)
{
    step z;
    memset(&z, 0, sizeof z);
    z.a.mode = mode;
    z.a.alpha1 = z.a.alpha2 = 1.0f;
    z.xref = REF_CUR;
    z.bref = REF_NONE;
    return z;
}

/* Appends the steps of the activation; returns the new count, -1 when not expressible. */
static int act_steps(const kiln_cg_spec *sp, step *s, int n)
{
    switch (sp->act) {
    case KILN_CG_ACT_NONE: return n;
    case KILN_CG_ACT_RELU: s[n] = step_of(CUDNN_POINTWISE_RELU_FWD); return n + 1;
    case KILN_CG_ACT_LEAKY:
        s[n] = step_of(CUDNN_POINTWISE_RELU_FWD);
        s[n].a.slope = sp->alpha; /* 0: plain ReLU */
        return n + 1;
    case KILN_CG_ACT_SIGMOID: s[n] = step_of(CUDNN_POINTWISE_SIGMOID_FWD); return n + 1;
    case KILN_CG_ACT_TANH: s[n] = step_of(CUDNN_POINTWISE_TANH_FWD); return n + 1;
    case KILN_CG_ACT_CLIP:
        /* finite bounds only: RELU_FWD's clip arithmetic with infinities is not defined */
        if (!(sp->alpha >= -FLT_MAX && sp->alpha <= FLT_MAX && sp->beta >= -FLT_MAX && sp->beta <= FLT_MAX) ||
            sp->alpha > sp->beta)
            return -1;
        s[n] = step_of(CUDNN_POINTWISE_RELU_FWD);
        s[n].a.clip = true;
        s[n].a.lower = sp->alpha;
        s[n].a.upper = sp->beta;
        return n + 1;
    case KILN_CG_ACT_PRELU: {
        /* v -> r = relu(v); m = v - r (= min(v, 0)); y = r + m * S. Positive v comes out
         * exactly v; the older (1 - S) * r + S * v scaled it by (1 - S) + S with both
         * rounded to the engine's type, a per-channel gain error in every layer (fp16:
         * realesr-general-x4v3's error 4.9e-4 from that alone, emulated on the CPU). */
        int before = n > 0 ? n - 1 : REF_CONV;
        s[n] = step_of(CUDNN_POINTWISE_RELU_FWD);
        s[n + 1] = step_of(CUDNN_POINTWISE_SUB);
        s[n + 1].xref = before;
        s[n + 1].bref = n;
        s[n + 2] = step_of(CUDNN_POINTWISE_MUL);
        s[n + 2].buid = UID_S;
        s[n + 3] = step_of(CUDNN_POINTWISE_ADD);
        s[n + 3].bref = n;
        return n + 4;
    }
    default: return -1;
    }
}

/* The fused variant's steps; 0 when there is nothing to fuse, -1 when not expressible. */
static int fused_steps(const kiln_cg_spec *sp, step *s)
{
    int n = 0;
    if (sp->has_b) {
        s[n] = step_of(CUDNN_POINTWISE_ADD);
        s[n].buid = UID_B;
        n++;
    }
    if (!sp->after && (n = act_steps(sp, s, n)) < 0) return -1;
    if (sp->has_z) {
        s[n] = step_of(CUDNN_POINTWISE_ADD);
        s[n].a.alpha1 = sp->out_scale;
        s[n].a.alpha2 = sp->z_scale;
        s[n].buid = UID_Z;
        n++;
    } else if (sp->out_scale != 1.0f) {
        return -1;
    }
    if (sp->after && (n = act_steps(sp, s, n)) < 0) return -1;
    return n;
}

static cudnnBackendDescriptor_t build_graph(cg_entry *e, int variant)
{
    const kiln_cg_spec *sp = &e->sp;
    step steps[12];
    int n_steps = 0;
    if (variant == 1) {
        if (!sp->fuse) return NULL;
        n_steps = fused_steps(sp, steps);
        if (n_steps <= 0) return NULL;
    }
    cudnnDataType_t dt = data_type(sp->dt), f32 = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t X = tensor(e, UID_X, dt, sp->nd, sp->x, sp->xs, false);
    cudnnBackendDescriptor_t W = tensor(e, UID_W, dt, sp->nd, sp->w, sp->ws, false);
    cudnnBackendDescriptor_t Y = tensor(e, UID_Y, dt, sp->nd, sp->y, sp->ys, false);
    if (!X || !W || !Y) return NULL;
    cudnnBackendDescriptor_t conv_out = Y;
    if (n_steps) conv_out = tensor(e, UID_VIRT, f32, sp->nd, sp->y, sp->ys, true);
    if (!conv_out) return NULL;

    cudnnBackendDescriptor_t cd = make(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
    if (!keep(e, cd)) return NULL;
    int64_t ns = sp->ns;
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    if (!set(cd, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32) ||
        !set(cd, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode) ||
        !set(cd, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &ns) ||
        !set(cd, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, ns, sp->pad) ||
        !set(cd, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, ns, sp->pad) ||
        !set(cd, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, ns, sp->stride) ||
        !set(cd, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, ns, sp->dil) || !fin(cd, "convolution finalize"))
        return NULL;
    cudnnBackendDescriptor_t ops[16];
    int n_ops = 0;
    cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
    if (!keep(e, op)) return NULL;
    float one = 1.0f, zero = 0.0f;
    if (!set_desc(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, X) ||
        !set_desc(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, W) ||
        !set_desc(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, conv_out) ||
        !set_desc(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, cd) ||
        !set(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &one) ||
        !set(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &zero) ||
        !fin(op, "conv op finalize"))
        return NULL;
    ops[n_ops++] = op;

    /* The epilogue: each step's result is a virtual fp32 tensor, the last one Y. */
    cudnnBackendDescriptor_t result[12], cur = conv_out;
    cudnnBackendDescriptor_t B = NULL, S = NULL, S1 = NULL, Z = NULL;
    for (int k = 0; k < n_steps; k++) {
        const step *st = &steps[k];
        pw_args a = st->a;
        a.x = st->xref == REF_CUR ? cur : st->xref == REF_CONV ? conv_out : result[st->xref];
        a.b = NULL;
        if (st->buid == UID_B) a.b = B ? B : (B = channel_tensor(e, UID_B, sp));
        else if (st->buid == UID_S) a.b = S ? S : (S = channel_tensor(e, UID_S, sp));
        else if (st->buid == UID_S1) a.b = S1 ? S1 : (S1 = channel_tensor(e, UID_S1, sp));
        else if (st->buid == UID_Z) a.b = Z ? Z : (Z = tensor(e, UID_Z, dt, sp->nd, sp->y, sp->zs, false));
        else if (st->bref >= 0) a.b = result[st->bref];
        if (!a.x || ((st->buid || st->bref != REF_NONE) && !a.b)) return NULL;
        a.y = k == n_steps - 1 ? Y : tensor(e, UID_VIRT + 1 + k, f32, sp->nd, sp->y, sp->ys, true);
        if (!a.y) return NULL;
        cudnnBackendDescriptor_t pop = pointwise(e, &a);
        if (!pop) return NULL;
        ops[n_ops++] = pop;
        result[k] = a.y;
        cur = a.y;
    }

    cudnnBackendDescriptor_t g = make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    if (!keep(e, g)) return NULL;
    cudnnHandle_t h = e->handle;
    if (!set(g, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h) ||
        !set(g, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n_ops, ops) ||
        !fin(g, variant ? "fused graph finalize" : "graph finalize"))
        return NULL;
    return g;
}

/* ------------------------------------------------------------------------ */
/* Heuristics                                                                */

/* Engine index and whether its numerical notes are acceptable; *tc: it uses tensor cores. */
static bool engine_ok(cudnnBackendDescriptor_t cfg, const kiln_cg_spec *sp, int64_t *gidx, bool *tc)
{
    *tc = false;
    cudnnBackendDescriptor_t eng = make(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
    if (!eng) return false;
    int64_t n = 0;
    bool ok = cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &eng) ==
                  CUDNN_STATUS_SUCCESS &&
              cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, gidx) ==
                  CUDNN_STATUS_SUCCESS;
    cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT + 4];
    int64_t nn = 0;
    if (ok && cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                       CUDNN_NUMERICAL_NOTE_TYPE_COUNT + 4, &nn, notes) != CUDNN_STATUS_SUCCESS)
        nn = 0;
    for (int64_t i = 0; ok && i < nn && i < CUDNN_NUMERICAL_NOTE_TYPE_COUNT + 4; i++) {
        switch (notes[i]) {
        case CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION:
        case CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS:
        case CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC: ok = false; break;
        case CUDNN_NUMERICAL_NOTE_WINOGRAD:
        case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_4x4:
        case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_6x6:
        case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_13x13: {
            /* KILN_CONV_NO_WINOGRAD=1 (A/B): Winograd's transforms round in the conv's type */
            const char *nw = getenv("KILN_CONV_NO_WINOGRAD");
            if (nw && nw[0] == '1') ok = false;
            break;
        }
        case CUDNN_NUMERICAL_NOTE_TENSOR_CORE:
            *tc = true;
            if (sp->strict) ok = false;
            break;
        default: break;
        }
    }
    cudnnBackendDestroyDescriptor(eng);
    return ok && *gidx >= 0 && *gidx < MAX_GIDX;
}

/* Appends the graph's acceptable configurations for one heuristic mode. */
static void add_configs(cg_entry *e, cudnnBackendDescriptor_t g, int variant, cudnnBackendHeurMode_t mode, int cap)
{
    cudnnBackendDescriptor_t heur = make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    if (!heur) return;
    int64_t count = 0;
    if (!set_desc(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, g) ||
        !set(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode) || !fin(heur, "heuristics finalize") ||
        cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, NULL) !=
            CUDNN_STATUS_SUCCESS ||
        count <= 0) {
        cudnnBackendDestroyDescriptor(heur);
        return;
    }
    if (count > 64) count = 64;
    cudnnBackendDescriptor_t cfgs[64];
    int64_t made = 0;
    for (; made < count; made++)
        if (!(cfgs[made] = make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR))) break;
    int64_t got = 0;
    if (cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, made, &got, cfgs) !=
        CUDNN_STATUS_SUCCESS)
        got = 0;
    int have = 0, fma = 0;
    for (int i = 0; i < e->n; i++) {
        have += e->c[i].variant == variant;
        fma += e->c[i].variant == variant && !e->c[i].tc;
    }
    /* TF32 (fp32 data, not strict): keep two FMA engines past the cap, so that
     * tf32 is never slower than strict fp32 where TF32 kernels lose */
    bool tf32 = e->sp.dt == KILN_DT_FLOAT && !e->sp.strict;
    for (int64_t i = 0; i < made; i++) {
        int64_t gidx = -1;
        bool tc = false;
        bool take = i < got && e->n < MAX_CFG && engine_ok(cfgs[i], &e->sp, &gidx, &tc);
        if (take && have >= cap && !(tf32 && !tc && fma < 2)) take = false;
        for (int j = 0; take && j < e->n; j++)
            if (e->c[j].variant == variant && e->c[j].gidx == gidx) take = false;
        if (!take) {
            cudnnBackendDestroyDescriptor(cfgs[i]);
            continue;
        }
        cg_cfg *c = &e->c[e->n++];
        memset(c, 0, sizeof *c);
        c->variant = variant;
        c->gidx = gidx;
        c->code = 1 + 2 * (int)gidx + variant;
        c->cfg = cfgs[i];
        c->tc = tc;
        have++;
        fma += !tc;
    }
    cudnnBackendDestroyDescriptor(heur);
}

static cg_entry *entry_build(void *handle, const kiln_cg_spec *sp)
{
    cg_entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->handle = handle;
    e->sp = *sp;
    /* fused configurations first: the default prefers them */
    for (int v = 1; v >= 0; v--) {
        cudnnBackendDescriptor_t g = build_graph(e, v);
        if (!g) continue;
        add_configs(e, g, v, CUDNN_HEUR_MODE_A, v ? MAX_FUSED : MAX_PLAIN);
        add_configs(e, g, v, CUDNN_HEUR_MODE_FALLBACK, v ? MAX_FUSED : MAX_PLAIN);
    }
    return e;
}

/* The entry for (handle, device, spec): cached, or built when `build`. Under g_mu. */
static cg_entry *entry_get(void *handle, const kiln_cg_spec *sp, bool build)
{
    int free_i = -1, old_i = 0, device = 0;
    if (cudaGetDevice(&device) != cudaSuccess) {
        (void)cudaGetLastError();
        device = -1;
    }
    for (int i = 0; i < SLOTS; i++) {
        cg_entry *e = g_slot[i];
        if (!e) {
            if (free_i < 0) free_i = i;
            continue;
        }
        if (e->handle == handle && e->device == device && !memcmp(&e->sp, sp, sizeof *sp)) {
            e->stamp = ++g_clock;
            return e;
        }
        if (g_slot[old_i] && e->stamp < g_slot[old_i]->stamp) old_i = i;
    }
    if (!build) return NULL;
    cg_entry *e = entry_build(handle, sp);
    if (!e) return NULL;
    e->device = device;
    int i = free_i >= 0 ? free_i : old_i;
    entry_free(g_slot[i]);
    g_slot[i] = e;
    e->stamp = ++g_clock;
    return e;
}

/* Builds configuration i's plan when not tried yet (and `build`). */
static bool plan_ready(cg_entry *e, int i, bool build)
{
    cg_cfg *c = &e->c[i];
    if (c->plan_state || !build) return c->plan_state == 1;
    c->plan_state = -1;
    cudnnBackendDescriptor_t p = make(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
    if (!p) return false;
    cudnnHandle_t h = e->handle;
    int64_t ws = 0, n = 0;
    if (!set(p, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h) ||
        !set_desc(p, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, c->cfg) || !fin(p, "plan finalize") ||
        cudnnBackendGetAttribute(p, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, &ws) !=
            CUDNN_STATUS_SUCCESS ||
        ws < 0 || (size_t)ws > WS_LIMIT) {
        cudnnBackendDestroyDescriptor(p);
        return false;
    }
    c->plan = p;
    c->ws = (size_t)ws;
    c->plan_state = 1;
    return true;
}

/* Index of the configuration the tactic selects, -1 none usable, -2 not a
 * candidate (only while `timing`: the caller's node is being timed at this spec). */
static int pick(cg_entry *e, int tactic, bool timing, bool build, size_t ws_avail)
{
    if (tactic > 0) {
        for (int i = 0; i < e->n; i++)
            if (e->c[i].code == tactic && plan_ready(e, i, build) && e->c[i].ws <= ws_avail) return i;
        /* not offered here, or no plan: while timing it is no candidate, else the default */
        if (timing) return -2;
    }
    for (int i = 0; i < e->n; i++)
        if (plan_ready(e, i, build) && e->c[i].ws <= ws_avail) return i;
    return -1;
}

static void choice_of(const cg_entry *e, int i, kiln_cg_choice *c)
{
    memset(c, 0, sizeof *c);
    if (i < 0) return;
    c->found = 1;
    c->fused = e->c[i].variant == 1;
    c->code = e->c[i].code;
    c->ws = e->c[i].ws;
    c->gidx = e->c[i].gidx;
}

/* ------------------------------------------------------------------------ */
/* Interface                                                                 */

const char *kiln__cg_diag(void) { return g_diag; }

int kiln__cg_tactic_count(void *cudnn, const kiln_cg_spec *sp)
{
    pthread_mutex_lock(&g_mu);
    cg_entry *e = entry_get(cudnn, sp, true);
    int n = 0;
    if (e) {
        for (int i = 0; i < e->n; i++)
            if (e->c[i].code + 1 > n) n = e->c[i].code + 1;
    }
    pthread_mutex_unlock(&g_mu);
    return n;
}

kiln_status kiln__cg_resolve(void *cudnn, const kiln_cg_spec *sp, int tactic, bool timing, size_t ws_avail,
                             kiln_cg_choice *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_lock(&g_mu);
    cg_entry *e = entry_get(cudnn, sp, true);
    int i = e ? pick(e, tactic, timing, true, ws_avail) : -1;
    if (i >= -1 && e) choice_of(e, i, c);
    pthread_mutex_unlock(&g_mu);
    return i == -2 ? KILN_ERR_UNSUPPORTED : KILN_OK;
}

kiln_status kiln__cg_run(void *cudnn, const kiln_cg_spec *sp, int tactic, bool timing, bool build, void *ws,
                         size_t ws_avail, const kiln_cg_ptrs *p, kiln_cg_choice *c, const kiln_node *node, kiln_err *err)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_lock(&g_mu);
    cg_entry *e = entry_get(cudnn, sp, build);
    int i = e ? pick(e, tactic, timing, build, ws_avail) : -1;
    if (i == -2) {
        pthread_mutex_unlock(&g_mu);
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): tactic %d is not a candidate for this shape",
                          node->name, node->op_type, tactic);
    }
    if (i < 0) {
        pthread_mutex_unlock(&g_mu);
        return KILN_OK;
    }
    choice_of(e, i, c);
    int64_t uids[8];
    void *ptrs[8];
    int n = 0;
    uids[n] = UID_X, ptrs[n++] = (void *)p->x;
    uids[n] = UID_W, ptrs[n++] = (void *)p->w;
    uids[n] = UID_Y, ptrs[n++] = p->y;
    if (c->fused) {
        if (sp->has_b) uids[n] = UID_B, ptrs[n++] = (void *)p->b;
        if (sp->act == KILN_CG_ACT_PRELU) {
            uids[n] = UID_S, ptrs[n++] = (void *)p->slope; /* 1 - S (p->slope1) is no longer read */
        }
        if (sp->has_z) uids[n] = UID_Z, ptrs[n++] = (void *)p->z;
    }
    cudnnStatus_t cs = CUDNN_STATUS_ALLOC_FAILED;
    cudnnBackendDescriptor_t vp = make(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    if (vp) {
        void *wsp = c->ws ? ws : NULL;
        if ((cs = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids)) ||
            (cs = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs)) ||
            (cs = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &wsp)) ||
            (cs = cudnnBackendFinalize(vp))) {
        } else {
            cs = cudnnBackendExecute((cudnnHandle_t)cudnn, e->c[i].plan, vp);
        }
        cudnnBackendDestroyDescriptor(vp);
    }
    if (cs) {
        /* never again: the plan is dropped from the candidates; the caller falls back */
        diag("execute (engine)", (int)c->gidx, cs);
        e->c[i].plan_state = -1;
        memset(c, 0, sizeof *c);
    }
    pthread_mutex_unlock(&g_mu);
    if (cs && timing)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): tactic %d failed to execute: %s", node->name,
                          node->op_type, tactic, cudnnGetErrorString(cs));
    return KILN_OK;
}
