/*
 * GPU ops of the reduce family (Reduce*, ArgMax, ArgMin) and Softmax /
 * LogSoftmax. Everything runs through the reduction engine of k_reduce.cu;
 * Softmax takes each row's (max, sum) from it into the workspace and applies
 * them with the elementwise pass of k_norm.cu. Axes follow the CPU reference
 * (src/cpu/cpu_reduce.c, cpu_activation.c) through the schemas' own rules
 * (kiln__reduce_axes; Softmax's 2-D coercion before opset 13).
 */
#include "cuda_backend.h"
#include "../ir/ops_activation.h"
#include "../ir/ops_reduce.h"
#include "k_norm.h"
#include "k_reduce.h"
#include <string.h>

/* The reduce ops' codes are the schema's kiln_reduce_op values. */
_Static_assert(KR_SUM == (int)KILN_REDUCE_SUM && KR_SUM_SQUARE == (int)KILN_REDUCE_SUM_SQUARE &&
                   KR_ARGMAX == (int)KILN_REDUCE_ARGMAX && KR_ARGMIN == (int)KILN_REDUCE_ARGMIN,
               "k_reduce.cu op codes follow kiln_reduce_op");

#define WS_ALIGN 256
static size_t align_up(size_t v) { return (v + WS_ALIGN - 1) / WS_ALIGN * WS_ALIGN; }

static bool is_float(kiln_dtype t) { return t == KILN_DT_FLOAT || t == KILN_DT_FLOAT16; }
static bool is_int(kiln_dtype t) { return t == KILN_DT_INT32 || t == KILN_DT_INT64; }
static bool has_input(const kiln_node *node, int i) { return i < node->n_in && node->in[i] >= 0; }

static kiln_status fail_internal(const kiln_cuda_launch *l, const char *what, kiln_err *err)
{
    return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): %s", l->node->name, l->node->op_type, what);
}

static kiln_status finish(const kiln_cuda_launch *l, int rc, kiln_err *err)
{
    return kiln__cuda_check(rc, l->node, "reduction kernel", err);
}

static bool known_on_host(const kiln_value *v) { return v && (v->data || v->symval_n > 0); }

/* ---- Reduce* ---- */

static bool int_op_ok(kiln_reduce_op op)
{
    return op == KILN_REDUCE_SUM || op == KILN_REDUCE_MAX || op == KILN_REDUCE_MIN || op == KILN_REDUCE_PROD ||
           op == KILN_REDUCE_L1 || op == KILN_REDUCE_SUM_SQUARE;
}

static bool supports_reduce(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    const kiln_reduce_params *p = node->params;
    if (!p || !in[0] || out[0].dtype != in[0]->dtype) return false;
    kiln_dtype dt = in[0]->dtype;
    if (!is_float(dt) && !(is_int(dt) && int_op_ok(p->op))) return false;
    if (in[0]->shape.rank > KILN_MAX_DIMS) return false;
    if (p->axes_from_input && node->n_in > 1 && in[1] && !known_on_host(in[1])) return false;
    return true;
}

/* The reduced axes of input 0 as a bit mask (axes from the attribute or the host input). */
static kiln_status reduce_mask(const kiln_cuda_launch *l, uint32_t *mask, kiln_err *err)
{
    const kiln_node *node = l->node;
    const kiln_reduce_params *p = l->params;
    if (!p) return fail_internal(l, "attributes not parsed", err);
    if (p->axes_from_input && has_input(node, 1) && !l->host[1])
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): axes must be known on the host for the GPU kernel",
                          node->name, node->op_type);
    int r = l->in[0].rank;
    if (r < 0 || r > KILN_MAX_DIMS) return fail_internal(l, "input rank out of range", err);
    bool m[KILN_MAX_DIMS], known;
    int hint;
    kiln_status s = kiln__reduce_axes(node, p, l->host, r, m, &known, &hint, err);
    if (s) return s;
    if (!known) return fail_internal(l, "axes not known", err);
    *mask = 0;
    for (int i = 0; i < r; i++)
        if (m[i]) *mask |= 1u << i;
    return KILN_OK;
}

/* Input dims and strides, and the output stride of each input axis (keepdims or not). */
static kiln_status fill_io(const kiln_cuda_launch *l, uint32_t mask, bool keepdims, kr_args *a, kiln_err *err)
{
    const kiln_cuda_tensor *x = &l->in[0], *y = &l->out[0];
    memset(a, 0, sizeof *a);
    a->rank = x->rank;
    a->x = x->ptr;
    a->xdt = x->dtype;
    a->y = y->ptr;
    a->ydt = y->dtype;
    a->mask = mask;
    a->ws = l->ex->workspace;
    a->ws_bytes = l->ex->workspace_bytes;
    int j = 0;
    for (int i = 0; i < x->rank; i++) {
        bool red = (mask >> i) & 1u;
        a->dims[i] = x->dims[i];
        a->xstr[i] = x->strides[i];
        if (red && !keepdims) continue;
        if (j >= y->rank || y->dims[j] != (red ? 1 : x->dims[i]))
            return fail_internal(l, "output shape does not match the reduced axes", err);
        a->ystr[i] = red ? 0 : y->strides[j];
        j++;
    }
    if (j != y->rank) return fail_internal(l, "output rank does not match the reduced axes", err);
    return KILN_OK;
}

static size_t reduce_workspace(const kiln_cuda_launch *l)
{
    uint32_t mask = 0;
    kiln_err err;
    memset(&err, 0, sizeof err);
    if (reduce_mask(l, &mask, &err)) return 0;
    return kiln__kr_workspace(l->in[0].rank, l->in[0].dims, mask);
}

static kiln_status launch_reduce(const kiln_cuda_launch *l, kiln_err *err)
{
    const kiln_reduce_params *p = l->params;
    uint32_t mask = 0;
    kiln_status s = reduce_mask(l, &mask, err);
    if (s) return s;
    kiln_dtype dt = l->in[0].dtype;
    if (l->out[0].dtype != dt || !(is_float(dt) || (is_int(dt) && int_op_ok(p->op))))
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): type %s not supported on the GPU", l->node->name,
                          l->node->op_type, kiln_dtype_name(dt));
    kr_args a;
    if ((s = fill_io(l, mask, p->keepdims, &a, err))) return s;
    a.op = (int)p->op;
    return finish(l, kiln__kr_run(&a, l->ex->stream), err);
}

/* ---- ArgMax / ArgMin ---- */

static bool supports_arg(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    return node->params && in[0] && (is_float(in[0]->dtype) || is_int(in[0]->dtype)) && out[0].dtype == KILN_DT_INT64 &&
           in[0]->shape.rank <= KILN_MAX_DIMS;
}

static kiln_status arg_mask(const kiln_cuda_launch *l, uint32_t *mask, kiln_err *err)
{
    const kiln_reduce_params *p = l->params;
    if (!p) return fail_internal(l, "attributes not parsed", err);
    int r = l->in[0].rank;
    int64_t axis = p->axis < 0 ? p->axis + r : p->axis;
    if (r < 1 || r > KILN_MAX_DIMS || axis < 0 || axis >= r) return fail_internal(l, "axis out of range", err);
    if (l->in[0].dims[axis] == 0) return fail_internal(l, "the reduced axis is empty", err);
    *mask = 1u << axis;
    return KILN_OK;
}

static size_t arg_workspace(const kiln_cuda_launch *l)
{
    uint32_t mask = 0;
    kiln_err err;
    memset(&err, 0, sizeof err);
    if (arg_mask(l, &mask, &err)) return 0;
    return kiln__kr_workspace(l->in[0].rank, l->in[0].dims, mask);
}

static kiln_status launch_arg(const kiln_cuda_launch *l, kiln_err *err)
{
    const kiln_reduce_params *p = l->params;
    uint32_t mask = 0;
    kiln_status s = arg_mask(l, &mask, err);
    if (s) return s;
    if (l->out[0].dtype != KILN_DT_INT64) return fail_internal(l, "output must be int64", err);
    kr_args a;
    if ((s = fill_io(l, mask, p->keepdims, &a, err))) return s;
    a.op = (int)p->op;
    a.select_last = p->select_last_index;
    return finish(l, kiln__kr_run(&a, l->ex->stream), err);
}

/* ---- Softmax / LogSoftmax ---- */

static bool supports_softmax(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    return node->params && in[0] && is_float(in[0]->dtype) && out[0].dtype == in[0]->dtype &&
           in[0]->shape.rank <= KILN_MAX_DIMS;
}

/* Rows: dims[axis] from opset 13, dims[axis:] flattened before. */
static kiln_status softmax_mask(const kiln_cuda_launch *l, uint32_t *mask, kiln_err *err)
{
    const kiln_act_params *p = l->params;
    if (!p) return fail_internal(l, "attributes not parsed", err);
    int r = l->in[0].rank;
    if (r < 0 || r > KILN_MAX_DIMS) return fail_internal(l, "input rank out of range", err);
    *mask = 0;
    if (r == 0) return KILN_OK;
    int64_t axis = p->axis < 0 ? p->axis + r : p->axis;
    if (axis < 0 || axis >= r) return fail_internal(l, "axis out of range", err);
    for (int i = (int)axis; i < (p->coerce_2d ? r : axis + 1); i++) *mask |= 1u << i;
    return KILN_OK;
}

static int64_t cells(const kiln_cuda_tensor *t, uint32_t mask)
{
    int64_t m = 1;
    for (int i = 0; i < t->rank; i++)
        if (!((mask >> i) & 1u)) m *= t->dims[i];
    return m;
}

static size_t softmax_workspace(const kiln_cuda_launch *l)
{
    uint32_t mask = 0;
    kiln_err err;
    memset(&err, 0, sizeof err);
    if (softmax_mask(l, &mask, &err)) return 0;
    return align_up((size_t)cells(&l->in[0], mask) * 8) + kiln__kr_workspace(l->in[0].rank, l->in[0].dims, mask);
}

static kiln_status launch_softmax(const kiln_cuda_launch *l, kiln_err *err)
{
    const kiln_node *node = l->node;
    uint32_t mask = 0;
    kiln_status s = softmax_mask(l, &mask, err);
    if (s) return s;
    const kiln_cuda_tensor *x = &l->in[0], *y = &l->out[0];
    if (!is_float(x->dtype) || y->dtype != x->dtype || y->rank != x->rank)
        return fail_internal(l, "input and output types or ranks differ", err);
    for (int i = 0; i < x->rank; i++)
        if (y->dims[i] != x->dims[i]) return fail_internal(l, "input and output shapes differ", err);
    size_t stats_bytes = align_up((size_t)cells(x, mask) * 8);
    size_t need = stats_bytes + kiln__kr_workspace(x->rank, x->dims, mask);
    if (!l->ex->workspace || l->ex->workspace_bytes < need)
        return kiln__fail(err, KILN_ERR_LIMIT, "node '%s' (%s): needs %zu bytes of workspace, has %zu", node->name,
                          node->op_type, need, l->ex->workspace_bytes);
    bool log = !strcmp(node->op_type, "LogSoftmax");
    kr_args a;
    memset(&a, 0, sizeof a);
    a.op = log ? KR_LOGSOFTMAX : KR_SOFTMAX;
    a.rank = x->rank;
    a.x = x->ptr;
    a.xdt = x->dtype;
    a.y = l->ex->workspace;
    a.ydt = KILN_DT_FLOAT;
    a.mask = mask;
    a.ws = (uint8_t *)l->ex->workspace + stats_bytes;
    a.ws_bytes = l->ex->workspace_bytes - stats_bytes;
    for (int i = 0; i < x->rank; i++) {
        a.dims[i] = x->dims[i];
        a.xstr[i] = x->strides[i];
    }
    if ((s = finish(l, kiln__kr_run(&a, l->ex->stream), err))) return s;
    kn_args k;
    memset(&k, 0, sizeof k);
    k.mode = log ? KN_LOGSOFTMAX : KN_SOFTMAX;
    k.dt = x->dtype;
    k.rank = x->rank;
    k.x = x->ptr;
    k.y = y->ptr;
    k.stats = l->ex->workspace;
    for (int i = 0; i < x->rank; i++) {
        k.dims[i] = x->dims[i];
        k.xstr[i] = x->strides[i];
        k.ystr[i] = y->strides[i];
        k.mstr[i] = a.mstr[i];
    }
    return kiln__cuda_check(kiln__kn_apply(&k, l->ex->stream), node, "softmax kernel", err);
}

#define OP(name, sup, ws, fn) {.op_type = name, .domain = "", .supports = sup, .workspace = ws, .launch = fn}

const kiln_cuda_op kiln__cuda_ops_reduce[] = {
    OP("ReduceSum", supports_reduce, reduce_workspace, launch_reduce),
    OP("ReduceMean", supports_reduce, reduce_workspace, launch_reduce),
    OP("ReduceMax", supports_reduce, reduce_workspace, launch_reduce),
    OP("ReduceMin", supports_reduce, reduce_workspace, launch_reduce),
    OP("ReduceProd", supports_reduce, reduce_workspace, launch_reduce),
    OP("ReduceL1", supports_reduce, reduce_workspace, launch_reduce),
    OP("ReduceL2", supports_reduce, reduce_workspace, launch_reduce),
    OP("ReduceLogSum", supports_reduce, reduce_workspace, launch_reduce),
    OP("ReduceLogSumExp", supports_reduce, reduce_workspace, launch_reduce),
    OP("ReduceSumSquare", supports_reduce, reduce_workspace, launch_reduce),
    OP("ArgMax", supports_arg, arg_workspace, launch_arg),
    OP("ArgMin", supports_arg, arg_workspace, launch_arg),
    OP("Softmax", supports_softmax, softmax_workspace, launch_softmax),
    OP("LogSoftmax", supports_softmax, softmax_workspace, launch_softmax),
    {0},
};
