/*
 * GPU ops of the norm family: BatchNormalization (inference), Instance-,
 * Layer- and GroupNormalization. Each is "statistics per cell, then one
 * elementwise pass": InstanceNorm, LayerNorm and GroupNorm take mean and
 * 1/sqrt(var + eps) of each cell from the reduction engine (k_reduce.cu) into
 * the workspace; BatchNorm's come from its running mean and variance. The
 * pass (k_norm.cu) reads scale and bias through strides, so NHWC activations
 * with 1-D parameters need no copies. GroupNorm sees X as
 * [N, groups, C / groups, spatial...] by splitting the channel stride.
 * Semantics follow src/cpu/cpu_norm.c.
 */
#include "cuda_backend.h"
#include "../ir/ops_norm.h"
#include "k_norm.h"
#include "k_reduce.h"
#include <string.h>

#define WS_ALIGN 256
static size_t align_up(size_t v) { return (v + WS_ALIGN - 1) / WS_ALIGN * WS_ALIGN; }

static bool is_float(kiln_dtype t) { return t == KILN_DT_FLOAT || t == KILN_DT_FLOAT16; }
static bool has_input(const kiln_node *node, int i) { return i < node->n_in && node->in[i] >= 0; }
static bool has_output(const kiln_node *node, int i) { return i < node->n_out && node->out[i] >= 0; }

static kiln_status fail_internal(const kiln_cuda_launch *l, const char *what, kiln_err *err)
{
    return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): %s", l->node->name, l->node->op_type, what);
}

/* Every present input and the output are FLOAT/FLOAT16; at most one output. */
static bool float_io(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    if (!in[0] || !is_float(in[0]->dtype) || out[0].dtype != in[0]->dtype) return false;
    int r = in[0]->shape.rank; /* -1: not known statically */
    if (r >= 0 && (r < 2 || r > KILN_MAX_DIMS)) return false;
    for (int i = 1; i < node->n_in; i++)
        if (has_input(node, i) && (!in[i] || !is_float(in[i]->dtype))) return false;
    for (int i = 1; i < node->n_out; i++)
        if (has_output(node, i)) return false;
    return true;
}

/* A tensor of exactly n elements along one axis: its element stride. */
static bool vec_stride(const kiln_cuda_tensor *t, int64_t n, int64_t *stride)
{
    if (!t->ptr || t->rank < 0) return false;
    int64_t cnt = 1, s = 0;
    for (int i = 0; i < t->rank; i++) {
        cnt *= t->dims[i];
        if (t->dims[i] != 1) s = t->strides[i];
    }
    *stride = s;
    return cnt == n;
}

/* Copies X's dims and strides and Y's strides into the pass arguments (same shapes checked). */
static kiln_status apply_io(const kiln_cuda_launch *l, kn_args *k, kiln_err *err)
{
    const kiln_cuda_tensor *x = &l->in[0], *y = &l->out[0];
    if (x->rank < 2 || x->rank > KILN_MAX_DIMS || y->rank != x->rank || y->dtype != x->dtype || !is_float(x->dtype))
        return fail_internal(l, "input and output types or ranks differ", err);
    memset(k, 0, sizeof *k);
    k->mode = KN_NORM;
    k->dt = x->dtype;
    k->rank = x->rank;
    k->x = x->ptr;
    k->y = y->ptr;
    for (int i = 0; i < x->rank; i++) {
        if (y->dims[i] != x->dims[i]) return fail_internal(l, "input and output shapes differ", err);
        k->dims[i] = x->dims[i];
        k->xstr[i] = x->strides[i];
        k->ystr[i] = y->strides[i];
    }
    return KILN_OK;
}

/* A parameter input of X's compute type, present on the device. */
static kiln_status param_in(const kiln_cuda_launch *l, int i, const char *what, kiln_err *err)
{
    if (!has_input(l->node, i) || !l->in[i].ptr)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): %s is not on the device", l->node->name,
                          l->node->op_type, what);
    if (l->in[i].dtype != l->in[0].dtype)
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): %s is %s, X is %s", l->node->name, l->node->op_type, what,
                          kiln_dtype_name(l->in[i].dtype), kiln_dtype_name(l->in[0].dtype));
    return KILN_OK;
}

static kiln_status need_ws(const kiln_cuda_launch *l, size_t need, kiln_err *err)
{
    if (need && (!l->ex->workspace || l->ex->workspace_bytes < need))
        return kiln__fail(err, KILN_ERR_LIMIT, "node '%s' (%s): needs %zu bytes of workspace, has %zu", l->node->name,
                          l->node->op_type, need, l->ex->workspace_bytes);
    return KILN_OK;
}

/*
 * Mean and 1/sqrt(var + eps) over the masked axes of the view (dims, strides)
 * into the workspace; k->mstr gets each axis' cell stride.
 */
static kiln_status moments(const kiln_cuda_launch *l, int rank, const int64_t *dims, const int64_t *str, uint32_t mask,
                           float eps, kn_args *k, kiln_err *err)
{
    int64_t m = 1;
    for (int i = 0; i < rank; i++)
        if (!((mask >> i) & 1u)) m *= dims[i];
    size_t stats_bytes = align_up((size_t)m * 8);
    kiln_status s = need_ws(l, stats_bytes + kiln__kr_workspace(rank, dims, mask), err);
    if (s) return s;
    kr_args a;
    memset(&a, 0, sizeof a);
    a.op = KR_MOMENTS;
    a.rank = rank;
    a.x = l->in[0].ptr;
    a.xdt = l->in[0].dtype;
    a.y = l->ex->workspace;
    a.ydt = KILN_DT_FLOAT;
    a.mask = mask;
    a.eps = eps;
    a.ws = (uint8_t *)l->ex->workspace + stats_bytes;
    a.ws_bytes = l->ex->workspace_bytes - stats_bytes;
    for (int i = 0; i < rank; i++) {
        a.dims[i] = dims[i];
        a.xstr[i] = str[i];
    }
    if ((s = kiln__cuda_check(kiln__kr_run(&a, l->ex->stream), l->node, "statistics kernel", err))) return s;
    k->stats = l->ex->workspace;
    for (int i = 0; i < rank; i++) k->mstr[i] = a.mstr[i];
    return KILN_OK;
}

static size_t moments_ws(int rank, const int64_t *dims, uint32_t mask)
{
    int64_t m = 1;
    for (int i = 0; i < rank; i++)
        if (!((mask >> i) & 1u)) m *= dims[i];
    return align_up((size_t)m * 8) + kiln__kr_workspace(rank, dims, mask);
}

static kiln_status run_apply(const kiln_cuda_launch *l, const kn_args *k, kiln_err *err)
{
    return kiln__cuda_check(kiln__kn_apply(k, l->ex->stream), l->node, "normalization kernel", err);
}

/* ---- BatchNormalization (inference) ---- */

static bool supports_batchnorm(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    const kiln_norm_params *p = node->params;
    return p && !p->training && p->spatial && node->n_in == 5 && float_io(node, in, out);
}

static size_t batchnorm_workspace(const kiln_cuda_launch *l)
{
    return l->in[0].rank >= 2 ? align_up((size_t)l->in[0].dims[1] * 8) : 0;
}

static kiln_status launch_batchnorm(const kiln_cuda_launch *l, kiln_err *err)
{
    const kiln_norm_params *p = l->params;
    if (!p) return fail_internal(l, "attributes not parsed", err);
    if (p->training || !p->spatial)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (BatchNormalization): only spatial inference runs on the GPU",
                          l->node->name);
    kn_args k;
    kiln_status s = apply_io(l, &k, err);
    if (s) return s;
    static const char *const names[] = {"X", "scale", "B", "input_mean", "input_var"};
    int64_t c = l->in[0].dims[1], st[5] = {0};
    for (int i = 1; i < 5; i++) {
        if ((s = param_in(l, i, names[i], err))) return s;
        if (!vec_stride(&l->in[i], c, &st[i]))
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (BatchNormalization): %s needs %lld values", l->node->name,
                              names[i], (long long)c);
    }
    if ((s = need_ws(l, batchnorm_workspace(l), err))) return s;
    if (c > 0) {
        int rc = kiln__kn_bn_stats(l->ex->workspace, l->in[3].ptr, st[3], l->in[4].ptr, st[4], l->in[0].dtype, c,
                                   p->epsilon, l->ex->stream);
        if ((s = kiln__cuda_check(rc, l->node, "batchnorm statistics kernel", err))) return s;
    }
    k.stats = l->ex->workspace;
    k.mstr[1] = 1;
    k.scale = l->in[1].ptr;
    k.sstr[1] = st[1];
    k.bias = l->in[2].ptr;
    k.bstr[1] = st[2];
    return run_apply(l, &k, err);
}

/* ---- InstanceNormalization ---- */

static bool supports_instnorm(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    return node->params && node->n_in == 3 && float_io(node, in, out);
}

static uint32_t spatial_mask(int rank)
{
    uint32_t m = 0;
    for (int i = 2; i < rank; i++) m |= 1u << i;
    return m;
}

static size_t instnorm_workspace(const kiln_cuda_launch *l)
{
    const kiln_cuda_tensor *x = &l->in[0];
    if (x->rank < 2 || x->rank > KILN_MAX_DIMS) return 0;
    return moments_ws(x->rank, x->dims, spatial_mask(x->rank));
}

static kiln_status launch_instnorm(const kiln_cuda_launch *l, kiln_err *err)
{
    const kiln_norm_params *p = l->params;
    if (!p) return fail_internal(l, "attributes not parsed", err);
    kn_args k;
    kiln_status s = apply_io(l, &k, err);
    if (s) return s;
    int64_t c = l->in[0].dims[1], ss = 0, bs = 0;
    if ((s = param_in(l, 1, "scale", err)) || (s = param_in(l, 2, "B", err))) return s;
    if (!vec_stride(&l->in[1], c, &ss) || !vec_stride(&l->in[2], c, &bs))
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (InstanceNormalization): scale and B need %lld values",
                          l->node->name, (long long)c);
    const kiln_cuda_tensor *x = &l->in[0];
    if ((s = moments(l, x->rank, x->dims, x->strides, spatial_mask(x->rank), p->epsilon, &k, err))) return s;
    k.scale = l->in[1].ptr;
    k.sstr[1] = ss;
    k.bias = l->in[2].ptr;
    k.bstr[1] = bs;
    return run_apply(l, &k, err);
}

/* ---- LayerNormalization ---- */

static bool supports_layernorm(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    if (!node->params || !in[0] || in[0]->shape.rank == 0 || in[0]->shape.rank > KILN_MAX_DIMS) return false;
    if (!is_float(in[0]->dtype) || out[0].dtype != in[0]->dtype) return false;
    for (int i = 1; i < node->n_in; i++)
        if (has_input(node, i) && (!in[i] || !is_float(in[i]->dtype))) return false;
    /* Mean and InvStdDev: in a float stash type. */
    for (int i = 1; i < node->n_out && i < 3; i++)
        if (has_output(node, i) && !is_float(out[i].dtype)) return false;
    return node->n_out <= 3;
}

static int layernorm_axis(const kiln_cuda_launch *l)
{
    const kiln_norm_params *p = l->params;
    int r = l->in[0].rank;
    int64_t a = p ? (p->axis < 0 ? p->axis + r : p->axis) : -1;
    return (a < 0 || a >= r) ? -1 : (int)a;
}

static uint32_t tail_mask(int from, int rank)
{
    uint32_t m = 0;
    for (int i = from; i < rank; i++) m |= 1u << i;
    return m;
}

static size_t layernorm_workspace(const kiln_cuda_launch *l)
{
    const kiln_cuda_tensor *x = &l->in[0];
    int axis = layernorm_axis(l);
    if (axis < 0 || x->rank > KILN_MAX_DIMS) return 0;
    return moments_ws(x->rank, x->dims, tail_mask(axis, x->rank));
}

/* Strides that read parameter t broadcast (right-aligned) to X's dims: 0 along broadcast axes. */
static kiln_status bcast_strides(const kiln_cuda_launch *l, const kiln_cuda_tensor *t, const char *what, int64_t *out,
                                 kiln_err *err)
{
    const kiln_cuda_tensor *x = &l->in[0];
    int r = x->rank, tr = t->rank;
    if (tr < 0 || tr > r)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): %s has %d dims, X has %d", l->node->name, l->node->op_type,
                          what, tr, r);
    for (int i = 0; i < r; i++) {
        int ti = i - (r - tr);
        out[i] = 0;
        if (ti < 0 || t->dims[ti] == 1) continue;
        if (t->dims[ti] != x->dims[i])
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): %s does not broadcast to X", l->node->name,
                              l->node->op_type, what);
        out[i] = t->strides[ti];
    }
    return KILN_OK;
}

static kiln_status launch_layernorm(const kiln_cuda_launch *l, kiln_err *err)
{
    const kiln_norm_params *p = l->params;
    const kiln_cuda_tensor *x = &l->in[0], *y = &l->out[0];
    int axis = layernorm_axis(l);
    if (axis < 0 || x->rank > KILN_MAX_DIMS) return fail_internal(l, "axis out of range", err);
    if (l->node->n_out > 3) return fail_internal(l, "too many outputs", err);
    /* apply_io wants rank >= 2; LayerNorm also takes 1-D X. */
    if (y->rank != x->rank || y->dtype != x->dtype || !is_float(x->dtype))
        return fail_internal(l, "input and output types or ranks differ", err);
    kn_args k;
    memset(&k, 0, sizeof k);
    k.mode = KN_NORM;
    k.dt = x->dtype;
    k.rank = x->rank;
    k.x = x->ptr;
    k.y = y->ptr;
    for (int i = 0; i < x->rank; i++) {
        if (y->dims[i] != x->dims[i]) return fail_internal(l, "input and output shapes differ", err);
        k.dims[i] = x->dims[i];
        k.xstr[i] = x->strides[i];
        k.ystr[i] = y->strides[i];
    }
    kiln_status s = param_in(l, 1, "Scale", err);
    if (s || (s = bcast_strides(l, &l->in[1], "Scale", k.sstr, err))) return s;
    k.scale = l->in[1].ptr;
    if (has_input(l->node, 2)) {
        if ((s = param_in(l, 2, "B", err)) || (s = bcast_strides(l, &l->in[2], "B", k.bstr, err))) return s;
        k.bias = l->in[2].ptr;
    }
    if ((s = moments(l, x->rank, x->dims, x->strides, tail_mask(axis, x->rank), p->epsilon, &k, err))) return s;
    if ((s = run_apply(l, &k, err))) return s;
    /* Mean and InvStdDev: X's dims up to axis, 1 after. */
    const kiln_cuda_tensor *mo = has_output(l->node, 1) ? &l->out[1] : NULL, *io = has_output(l->node, 2) ? &l->out[2] : NULL;
    if (!mo && !io) return KILN_OK;
    int64_t dims[KILN_MAX_DIMS];
    for (int i = 0; i < x->rank; i++) dims[i] = i < axis ? x->dims[i] : 1;
    const kiln_cuda_tensor *outs[2] = {mo, io};
    for (int j = 0; j < 2; j++) {
        const kiln_cuda_tensor *o = outs[j];
        if (!o) continue;
        if (!o->ptr || o->rank != x->rank || !is_float(o->dtype))
            return fail_internal(l, "Mean/InvStdDev output must be a float tensor of X's rank", err);
        for (int i = 0; i < x->rank; i++)
            if (o->dims[i] != dims[i]) return fail_internal(l, "Mean/InvStdDev output shape", err);
    }
    int rc = kiln__kn_export(x->rank, dims, k.mstr, k.stats, mo ? mo->ptr : NULL, mo ? (int)mo->dtype : 0,
                             mo ? mo->strides : NULL, io ? io->ptr : NULL, io ? (int)io->dtype : 0,
                             io ? io->strides : NULL, l->ex->stream);
    return kiln__cuda_check(rc, l->node, "layernorm statistics output", err);
}

/* ---- GroupNormalization ---- */

static bool supports_groupnorm(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    return node->params && node->n_in == 3 && float_io(node, in, out);
}

/* X as [N, G, C/G, spatial...]: one axis more, the channel stride split. */
static bool group_view(const kiln_cuda_tensor *t, int64_t g, int64_t *dims, int64_t *str)
{
    if (t->rank < 2 || t->rank + 1 > KR_MAXR || g < 1 || t->dims[1] % g) return false;
    int64_t cg = t->dims[1] / g;
    dims[0] = t->dims[0];
    str[0] = t->strides[0];
    dims[1] = g;
    str[1] = t->strides[1] * cg;
    dims[2] = cg;
    str[2] = t->strides[1];
    for (int i = 2; i < t->rank; i++) {
        dims[i + 1] = t->dims[i];
        str[i + 1] = t->strides[i];
    }
    return true;
}

static size_t groupnorm_workspace(const kiln_cuda_launch *l)
{
    const kiln_norm_params *p = l->params;
    int64_t dims[KR_MAXR], str[KR_MAXR];
    if (!p || !group_view(&l->in[0], p->num_groups, dims, str)) return 0;
    return moments_ws(l->in[0].rank + 1, dims, tail_mask(2, l->in[0].rank + 1));
}

static kiln_status launch_groupnorm(const kiln_cuda_launch *l, kiln_err *err)
{
    const kiln_norm_params *p = l->params;
    if (!p) return fail_internal(l, "attributes not parsed", err);
    kn_args k;
    kiln_status s = apply_io(l, &k, err);
    if (s) return s;
    const kiln_cuda_tensor *x = &l->in[0], *y = &l->out[0];
    int64_t xd[KR_MAXR], xs[KR_MAXR], yd[KR_MAXR], ys[KR_MAXR];
    if (!group_view(x, p->num_groups, xd, xs) || !group_view(y, p->num_groups, yd, ys))
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (GroupNormalization): %lld channels do not split into %lld groups",
                          l->node->name, (long long)x->dims[1], (long long)p->num_groups);
    int64_t g = p->num_groups, cg = x->dims[1] / g, want = p->group_scale ? g : x->dims[1], ss = 0, bs = 0;
    if ((s = param_in(l, 1, "scale", err)) || (s = param_in(l, 2, "bias", err))) return s;
    if (!vec_stride(&l->in[1], want, &ss) || !vec_stride(&l->in[2], want, &bs))
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (GroupNormalization): scale and bias need %lld values",
                          l->node->name, (long long)want);
    int r = x->rank + 1;
    memset(&k, 0, sizeof k);
    k.mode = KN_NORM;
    k.dt = x->dtype;
    k.rank = r;
    k.x = x->ptr;
    k.y = y->ptr;
    for (int i = 0; i < r; i++) {
        k.dims[i] = xd[i];
        k.xstr[i] = xs[i];
        k.ystr[i] = ys[i];
    }
    if ((s = moments(l, r, xd, xs, tail_mask(2, r), p->epsilon, &k, err))) return s;
    /* Channel g * C/G + j: per channel, or per group (opset 18's form). */
    k.scale = l->in[1].ptr;
    k.bias = l->in[2].ptr;
    k.sstr[1] = p->group_scale ? ss : ss * cg;
    k.sstr[2] = p->group_scale ? 0 : ss;
    k.bstr[1] = p->group_scale ? bs : bs * cg;
    k.bstr[2] = p->group_scale ? 0 : bs;
    return run_apply(l, &k, err);
}

#define OP(name, sup, ws, fn) {.op_type = name, .domain = "", .supports = sup, .workspace = ws, .launch = fn}

const kiln_cuda_op kiln__cuda_ops_norm[] = {
    OP("BatchNormalization", supports_batchnorm, batchnorm_workspace, launch_batchnorm),
    OP("InstanceNormalization", supports_instnorm, instnorm_workspace, launch_instnorm),
    OP("LayerNormalization", supports_layernorm, layernorm_workspace, launch_layernorm),
    OP("GroupNormalization", supports_groupnorm, groupnorm_workspace, launch_groupnorm),
    {0},
};
