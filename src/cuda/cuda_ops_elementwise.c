/*
 * GPU ops of the elementwise family (arithmetic with broadcasting, unary math,
 * activations, comparisons, logic, Where, Cast, Identity) and the fp32/fp16
 * conversion the runtime uses at precision boundaries.
 *
 * Everything runs through one launcher in k_elementwise.cu that broadcasts up
 * to three strided inputs to a strided output. This file picks the op code,
 * reads attributes (with the CPU reference's defaults and opset rules),
 * builds views for the pre-opset-7 broadcasting forms and folds variadic ops
 * pairwise through the output.
 */
#include "cuda_backend.h"
#include "gpu.h"
#include <float.h>
#include <math.h>
#include <string.h>

/* Keep in step with k_elementwise.cu. */
enum kew_op {
    KEW_ADD, KEW_SUB, KEW_MUL, KEW_DIV, KEW_POW, KEW_MAX, KEW_MIN, KEW_ADD_DIV,
    KEW_EQUAL, KEW_LESS, KEW_GREATER, KEW_AND, KEW_OR, KEW_PRELU, KEW_WHERE, KEW_CAST,
    KEW_SQRT, KEW_EXP, KEW_LOG, KEW_ABS, KEW_NEG, KEW_RECIP, KEW_FLOOR, KEW_CEIL, KEW_ROUND, KEW_ERF,
    KEW_SIGMOID, KEW_TANH, KEW_RELU, KEW_LEAKY_RELU, KEW_CLIP, KEW_ELU, KEW_SELU, KEW_HARD_SIGMOID,
    KEW_HARD_SWISH, KEW_SOFTPLUS, KEW_GELU, KEW_GELU_TANH, KEW_MISH, KEW_NOT
};
enum { KEW_E_UNSUPPORTED = -1, KEW_E_SHAPE = -2, KEW_E_ARG = -3 };
typedef struct kew_params {
    float f[4];         /* alpha, beta / gamma; Clip lo, hi; Mean's divisor */
    int64_t i[2];       /* integer Clip lo, hi */
    const void *dev[2]; /* Clip min/max as device scalars when not known on the host */
} kew_params;

int kiln__k_elementwise(int op, const kiln_cuda_tensor *out, int nin, const kiln_cuda_tensor *in,
                        const kew_params *prm, void *stream);

/* ---- dtype predicates for `supports` ---- */

static bool is_float(kiln_dtype t) { return t == KILN_DT_FLOAT || t == KILN_DT_FLOAT16; }
static bool is_int(kiln_dtype t) { return t == KILN_DT_INT32 || t == KILN_DT_INT64; }
static bool is_cast_type(kiln_dtype t)
{
    return is_float(t) || is_int(t) || t == KILN_DT_BOOL || t == KILN_DT_DOUBLE;
}
static bool is_sized(kiln_dtype t)
{
    size_t s = kiln_dtype_size(t);
    return t != KILN_DT_STRING && (s == 1 || s == 2 || s == 4 || s == 8);
}

/* Every present input has dtype dt. */
static bool inputs_are(const kiln_node *node, const kiln_value *const *in, int first, kiln_dtype dt)
{
    for (int i = first; i < node->n_in; i++)
        if (!in[i] || in[i]->dtype != dt) return false;
    return true;
}

static bool sup_float_unary(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    return node->n_in == 1 && in[0] && is_float(in[0]->dtype) && out[0].dtype == in[0]->dtype;
}

/* Abs, Neg, Relu: also signed integers. */
static bool sup_signed_unary(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    return node->n_in == 1 && in[0] && (is_float(in[0]->dtype) || is_int(in[0]->dtype)) &&
           out[0].dtype == in[0]->dtype;
}

/* Add, Sub, Mul, Div, Max, Min, Sum. */
static bool sup_arith(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    if (node->n_in < 1 || !in[0]) return false;
    kiln_dtype dt = in[0]->dtype;
    return (is_float(dt) || is_int(dt)) && inputs_are(node, in, 0, dt) && out[0].dtype == dt;
}

static bool sup_mean(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    return sup_arith(node, in, out) && is_float(in[0]->dtype);
}

static bool sup_pow(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    return node->n_in == 2 && in[0] && in[1] && is_float(in[0]->dtype) &&
           (is_float(in[1]->dtype) || is_int(in[1]->dtype)) && out[0].dtype == in[0]->dtype;
}

static bool sup_compare(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    if (node->n_in != 2 || !in[0]) return false;
    kiln_dtype dt = in[0]->dtype;
    return (is_float(dt) || is_int(dt) || dt == KILN_DT_BOOL) && inputs_are(node, in, 0, dt) &&
           out[0].dtype == KILN_DT_BOOL;
}

static bool sup_logic(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    return node->n_in >= 1 && inputs_are(node, in, 0, KILN_DT_BOOL) && out[0].dtype == KILN_DT_BOOL;
}

static bool sup_where(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    return node->n_in == 3 && in[0] && in[0]->dtype == KILN_DT_BOOL && in[1] && is_sized(in[1]->dtype) &&
           inputs_are(node, in, 1, in[1]->dtype) && out[0].dtype == in[1]->dtype;
}

static bool sup_cast(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    if (node->n_in != 1 || !in[0]) return false;
    if (in[0]->dtype == out[0].dtype) return is_sized(in[0]->dtype);
    return is_cast_type(in[0]->dtype) && is_cast_type(out[0].dtype);
}

static bool sup_identity(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    return node->n_in == 1 && in[0] && is_sized(in[0]->dtype) && out[0].dtype == in[0]->dtype;
}

static bool sup_prelu(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    return node->n_in == 2 && in[0] && is_float(in[0]->dtype) && inputs_are(node, in, 0, in[0]->dtype) &&
           out[0].dtype == in[0]->dtype;
}

static bool sup_clip(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    if (node->n_in < 1 || node->n_in > 3 || !in[0]) return false;
    kiln_dtype dt = in[0]->dtype;
    if (!(is_float(dt) || is_int(dt)) || out[0].dtype != dt) return false;
    for (int i = 1; i < node->n_in; i++)
        if (in[i] && in[i]->dtype != dt) return false;
    return true;
}

/* ---- launching ---- */

static kiln_status finish(const kiln_cuda_launch *l, int rc, kiln_err *err)
{
    const kiln_node *n = l->node;
    if (rc == 0) return KILN_OK;
    if (rc == KEW_E_UNSUPPORTED) {
        const char *a = kiln_dtype_name(l->in[0].dtype), *o = kiln_dtype_name(l->out[0].dtype);
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): no GPU kernel for these types (input %s, output %s)",
                          n->name, n->op_type, a ? a : "?", o ? o : "?");
    }
    if (rc == KEW_E_SHAPE)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): input shapes do not broadcast to the output shape",
                          n->name, n->op_type);
    if (rc == KEW_E_ARG)
        return kiln__fail(err, KILN_ERR_INVALID_ARG,
                          "node '%s' (%s): bad tensor (rank over %d, negative dim or stride, or no buffer)", n->name,
                          n->op_type, KILN_MAX_DIMS);
    return kiln__cuda_check(rc, n, "elementwise kernel", err);
}

static kiln_status run(const kiln_cuda_launch *l, int op, int nin, const kiln_cuda_tensor *in, const kew_params *p,
                       kiln_err *err)
{
    return finish(l, kiln__k_elementwise(op, &l->out[0], nin, in, p, l->ex->stream), err);
}

static kiln_status need_inputs(const kiln_cuda_launch *l, int lo, int hi, kiln_err *err)
{
    const kiln_node *n = l->node;
    if (n->n_in < lo || n->n_in > hi || n->n_out < 1)
        return kiln__fail(err, KILN_ERR_GRAPH, "node '%s' (%s): takes %d to %d inputs, has %d", n->name, n->op_type, lo,
                          hi, n->n_in);
    return KILN_OK;
}

/*
 * Before opset 7, broadcast=1 lined B's dims up with A's starting at `axis`
 * (default: trailing). The view gives B A's rank with size-1 axes around it,
 * after which the ordinary rule applies (mirrors the CPU reference).
 */
static kiln_status legacy_view(const kiln_node *node, const kiln_cuda_tensor *a, const kiln_cuda_tensor *b,
                               kiln_cuda_tensor *v, kiln_err *err)
{
    *v = *b;
    if (node->opset >= 7 || !kiln__attr_int(node, "broadcast", 0)) return KILN_OK;
    int64_t axis = kiln__node_attr(node, "axis") ? kiln__attr_int(node, "axis", 0) : a->rank - b->rank;
    if (axis < 0) axis += a->rank;
    if (axis < 0 || axis + b->rank > a->rank)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): legacy broadcast axis does not fit B (rank %d) into A (rank %d)",
                          node->name, node->op_type, b->rank, a->rank);
    v->rank = a->rank;
    for (int i = 0; i < a->rank; i++) {
        bool inside = i >= axis && i < axis + b->rank;
        v->dims[i] = inside ? b->dims[i - axis] : 1;
        v->strides[i] = inside ? b->strides[i - axis] : 0;
    }
    return KILN_OK;
}

static kiln_status launch_binary(const kiln_cuda_launch *l, int op, kiln_err *err)
{
    kiln_status s = need_inputs(l, 2, 2, err);
    if (s) return s;
    kiln_cuda_tensor in[2] = {l->in[0], l->in[1]};
    if ((s = legacy_view(l->node, &l->in[0], &l->in[1], &in[1], err))) return s;
    kew_params p;
    memset(&p, 0, sizeof p);
    return run(l, op, 2, in, &p, err);
}

#define BINARY_LAUNCH(fn, op)                                                                  \
    static kiln_status fn(const kiln_cuda_launch *l, kiln_err *err) { return launch_binary(l, op, err); }

BINARY_LAUNCH(launch_add, KEW_ADD)
BINARY_LAUNCH(launch_sub, KEW_SUB)
BINARY_LAUNCH(launch_mul, KEW_MUL)
BINARY_LAUNCH(launch_div, KEW_DIV)
BINARY_LAUNCH(launch_pow, KEW_POW)
BINARY_LAUNCH(launch_equal, KEW_EQUAL)
BINARY_LAUNCH(launch_less, KEW_LESS)
BINARY_LAUNCH(launch_greater, KEW_GREATER)
BINARY_LAUNCH(launch_and, KEW_AND)
BINARY_LAUNCH(launch_or, KEW_OR)

static bool same_buffer(const kiln_cuda_tensor *a, const kiln_cuda_tensor *b) { return a->ptr && a->ptr == b->ptr; }

/*
 * Max/Min/Sum/Mean fold pairwise into the output: out = in[a] op in[b], then
 * out = out op in[k] for the rest (the CPU reference's order, so fp16 rounds
 * the same way). Mean divides in the last step. Reading and writing the output
 * in one pass is safe because every element is read and written by one
 * thread. If the runtime placed the output on an input's buffer, that input
 * goes first so it is read before being overwritten.
 */
static kiln_status launch_variadic(const kiln_cuda_launch *l, int op, bool mean, kiln_err *err)
{
    kiln_status s = need_inputs(l, 1, 1 << 20, err);
    if (s) return s;
    const int nin = l->node->n_in;
    const kiln_cuda_tensor *out = &l->out[0];
    kew_params p;
    memset(&p, 0, sizeof p);
    if (nin == 1) return run(l, KEW_CAST, 1, &l->in[0], &p, err);
    int al[2] = {0, 0}, na = 0;
    for (int i = 0; i < nin; i++) {
        if (!same_buffer(&l->in[i], out)) continue;
        if (na == 2)
            return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): output shares its buffer with 3 inputs",
                              l->node->name, l->node->op_type);
        al[na++] = i;
    }
    int first = na > 0 ? al[0] : 0;
    int second = na > 1 ? al[1] : first == 0 ? 1 : 0;
    p.f[0] = (float)nin;
    int steps = nin - 1, done = 0;
    kiln_cuda_tensor pair[2] = {l->in[first], l->in[second]};
    if ((s = run(l, mean && ++done == steps ? KEW_ADD_DIV : op, 2, pair, &p, err))) return s;
    for (int i = 0; i < nin; i++) {
        if (i == first || i == second) continue;
        pair[0] = *out;
        pair[1] = l->in[i];
        if ((s = run(l, mean && ++done == steps ? KEW_ADD_DIV : op, 2, pair, &p, err))) return s;
    }
    return KILN_OK;
}

static kiln_status launch_max(const kiln_cuda_launch *l, kiln_err *err) { return launch_variadic(l, KEW_MAX, false, err); }
static kiln_status launch_min(const kiln_cuda_launch *l, kiln_err *err) { return launch_variadic(l, KEW_MIN, false, err); }
static kiln_status launch_sum(const kiln_cuda_launch *l, kiln_err *err) { return launch_variadic(l, KEW_ADD, false, err); }
static kiln_status launch_mean(const kiln_cuda_launch *l, kiln_err *err) { return launch_variadic(l, KEW_ADD, true, err); }

static kiln_status launch_unary_p(const kiln_cuda_launch *l, int op, const kew_params *p, kiln_err *err)
{
    kiln_status s = need_inputs(l, 1, 1, err);
    if (s) return s;
    return run(l, op, 1, &l->in[0], p, err);
}

static kiln_status launch_unary(const kiln_cuda_launch *l, int op, kiln_err *err)
{
    kew_params p;
    memset(&p, 0, sizeof p);
    return launch_unary_p(l, op, &p, err);
}

#define UNARY_LAUNCH(fn, op)                                                                   \
    static kiln_status fn(const kiln_cuda_launch *l, kiln_err *err) { return launch_unary(l, op, err); }

UNARY_LAUNCH(launch_sqrt, KEW_SQRT)
UNARY_LAUNCH(launch_exp, KEW_EXP)
UNARY_LAUNCH(launch_log, KEW_LOG)
UNARY_LAUNCH(launch_abs, KEW_ABS)
UNARY_LAUNCH(launch_neg, KEW_NEG)
UNARY_LAUNCH(launch_recip, KEW_RECIP)
UNARY_LAUNCH(launch_floor, KEW_FLOOR)
UNARY_LAUNCH(launch_ceil, KEW_CEIL)
UNARY_LAUNCH(launch_round, KEW_ROUND)
UNARY_LAUNCH(launch_erf, KEW_ERF)
UNARY_LAUNCH(launch_sigmoid, KEW_SIGMOID)
UNARY_LAUNCH(launch_tanh, KEW_TANH)
UNARY_LAUNCH(launch_relu, KEW_RELU)
UNARY_LAUNCH(launch_hard_swish, KEW_HARD_SWISH)
UNARY_LAUNCH(launch_softplus, KEW_SOFTPLUS)
UNARY_LAUNCH(launch_mish, KEW_MISH)
UNARY_LAUNCH(launch_not, KEW_NOT)
UNARY_LAUNCH(launch_cast, KEW_CAST)
UNARY_LAUNCH(launch_identity, KEW_CAST)

/* Activation attributes, with the defaults of the CPU reference (cpu_activation.c). */
static kiln_status launch_act(const kiln_cuda_launch *l, int op, float alpha_def, float beta_def, kiln_err *err)
{
    kew_params p;
    memset(&p, 0, sizeof p);
    p.f[0] = kiln__attr_float(l->node, "alpha", alpha_def);
    p.f[1] = kiln__attr_float(l->node, "beta", beta_def);
    return launch_unary_p(l, op, &p, err);
}

static kiln_status launch_leaky_relu(const kiln_cuda_launch *l, kiln_err *err)
{
    return launch_act(l, KEW_LEAKY_RELU, 0.01f, 0.0f, err);
}

static kiln_status launch_elu(const kiln_cuda_launch *l, kiln_err *err) { return launch_act(l, KEW_ELU, 1.0f, 0.0f, err); }

static kiln_status launch_hard_sigmoid(const kiln_cuda_launch *l, kiln_err *err)
{
    return launch_act(l, KEW_HARD_SIGMOID, 0.2f, 0.5f, err);
}

static kiln_status launch_selu(const kiln_cuda_launch *l, kiln_err *err)
{
    kew_params p;
    memset(&p, 0, sizeof p);
    p.f[0] = kiln__attr_float(l->node, "alpha", 1.67326319217681884765625f);
    p.f[1] = kiln__attr_float(l->node, "gamma", 1.05070102214813232421875f);
    return launch_unary_p(l, KEW_SELU, &p, err);
}

static kiln_status launch_gelu(const kiln_cuda_launch *l, kiln_err *err)
{
    bool tanh_form = !strcmp(kiln__attr_string(l->node, "approximate", "none"), "tanh");
    return launch_unary(l, tanh_form ? KEW_GELU_TANH : KEW_GELU, err);
}

/*
 * Clip: before opset 11 the bounds are attributes (default: the float range);
 * from 11 on they are optional inputs, read from the host when known there,
 * else by the kernel from device memory (no synchronization).
 */
static kiln_status launch_clip(const kiln_cuda_launch *l, kiln_err *err)
{
    const kiln_node *node = l->node;
    kiln_status s = need_inputs(l, 1, 3, err);
    if (s) return s;
    kiln_dtype dt = l->in[0].dtype;
    kew_params p;
    memset(&p, 0, sizeof p);
    p.f[0] = -INFINITY;
    p.f[1] = INFINITY;
    p.i[0] = dt == KILN_DT_INT32 ? INT32_MIN : INT64_MIN;
    p.i[1] = dt == KILN_DT_INT32 ? INT32_MAX : INT64_MAX;
    if (node->opset < 11) {
        p.f[0] = kiln__attr_float(node, "min", -FLT_MAX);
        p.f[1] = kiln__attr_float(node, "max", FLT_MAX);
        return run(l, KEW_CLIP, 1, &l->in[0], &p, err);
    }
    for (int i = 1; i < node->n_in; i++) {
        const kiln_cuda_tensor *b = &l->in[i];
        const kiln_value *h = l->host ? l->host[i] : NULL;
        if (!b->ptr && !h) continue; /* omitted */
        int64_t n = 1;
        for (int d = 0; d < b->rank; d++) n *= b->dims[d];
        if (b->dtype != dt || n != 1)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Clip): %s must be a scalar of the input's type",
                              node->name, i == 1 ? "min" : "max");
        if (h && h->data && h->nbytes >= kiln_dtype_size(h->dtype)) {
            if (is_float(dt)) p.f[i - 1] = (float)kiln__value_get_f64(h, 0);
            else p.i[i - 1] = kiln__value_get_i64(h, 0);
        } else if (b->ptr) {
            p.dev[i - 1] = b->ptr;
        }
    }
    return run(l, KEW_CLIP, 1, &l->in[0], &p, err);
}

/*
 * PRelu: the slope broadcasts to X (the output has X's shape). Before opset 7
 * a 1-D slope of X's channel count lies along axis 1, as in the CPU reference.
 */
static kiln_status launch_prelu(const kiln_cuda_launch *l, kiln_err *err)
{
    kiln_status s = need_inputs(l, 2, 2, err);
    if (s) return s;
    const kiln_cuda_tensor *x = &l->in[0], *sl = &l->in[1];
    kiln_cuda_tensor in[2] = {*x, *sl};
    if (l->node->opset < 7 && x->rank >= 2 && sl->rank == 1 && sl->dims[0] != 1 && sl->dims[0] == x->dims[1]) {
        kiln_cuda_tensor *v = &in[1];
        v->rank = x->rank;
        for (int i = 0; i < x->rank; i++) {
            v->dims[i] = i == 1 ? sl->dims[0] : 1;
            v->strides[i] = i == 1 ? sl->strides[0] : 0;
        }
    }
    if (in[1].rank > x->rank)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (PRelu): slope has rank %d, X only %d", l->node->name,
                          in[1].rank, x->rank);
    kew_params p;
    memset(&p, 0, sizeof p);
    return run(l, KEW_PRELU, 2, in, &p, err);
}

static kiln_status launch_where(const kiln_cuda_launch *l, kiln_err *err)
{
    kiln_status s = need_inputs(l, 3, 3, err);
    if (s) return s;
    kew_params p;
    memset(&p, 0, sizeof p);
    return run(l, KEW_WHERE, 3, l->in, &p, err);
}

#define OP(name, sup, fn) {.op_type = name, .domain = "", .supports = sup, .launch = fn}

const kiln_cuda_op kiln__cuda_ops_elementwise[] = {
    OP("Add", sup_arith, launch_add),
    OP("Sub", sup_arith, launch_sub),
    OP("Mul", sup_arith, launch_mul),
    OP("Div", sup_arith, launch_div),
    OP("Pow", sup_pow, launch_pow),
    OP("Max", sup_arith, launch_max),
    OP("Min", sup_arith, launch_min),
    OP("Sum", sup_arith, launch_sum),
    OP("Mean", sup_mean, launch_mean),
    OP("Sqrt", sup_float_unary, launch_sqrt),
    OP("Exp", sup_float_unary, launch_exp),
    OP("Log", sup_float_unary, launch_log),
    OP("Abs", sup_signed_unary, launch_abs),
    OP("Neg", sup_signed_unary, launch_neg),
    OP("Reciprocal", sup_float_unary, launch_recip),
    OP("Floor", sup_float_unary, launch_floor),
    OP("Ceil", sup_float_unary, launch_ceil),
    OP("Round", sup_float_unary, launch_round),
    OP("Erf", sup_float_unary, launch_erf),
    OP("Sigmoid", sup_float_unary, launch_sigmoid),
    OP("Tanh", sup_float_unary, launch_tanh),
    OP("Relu", sup_signed_unary, launch_relu),
    OP("LeakyRelu", sup_float_unary, launch_leaky_relu),
    OP("PRelu", sup_prelu, launch_prelu),
    OP("Clip", sup_clip, launch_clip),
    OP("Elu", sup_float_unary, launch_elu),
    OP("Selu", sup_float_unary, launch_selu),
    OP("HardSigmoid", sup_float_unary, launch_hard_sigmoid),
    OP("HardSwish", sup_float_unary, launch_hard_swish),
    OP("Softplus", sup_float_unary, launch_softplus),
    OP("Gelu", sup_float_unary, launch_gelu),
    OP("Mish", sup_float_unary, launch_mish),
    OP("Where", sup_where, launch_where),
    OP("Equal", sup_compare, launch_equal),
    OP("Less", sup_compare, launch_less),
    OP("Greater", sup_compare, launch_greater),
    OP("Not", sup_logic, launch_not),
    OP("And", sup_logic, launch_and),
    OP("Or", sup_logic, launch_or),
    OP("Cast", sup_cast, launch_cast),
    OP("Identity", sup_identity, launch_identity),
    {0},
};

kiln_status kiln__gpu_convert(void *dst, kiln_dtype dst_dt, const void *src, kiln_dtype src_dt, int64_t n,
                              void *stream, kiln_err *err)
{
    if (!is_float(dst_dt) || !is_float(src_dt))
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "GPU convert: only float32 <-> float16, got %s -> %s",
                          kiln_dtype_name(src_dt) ? kiln_dtype_name(src_dt) : "?",
                          kiln_dtype_name(dst_dt) ? kiln_dtype_name(dst_dt) : "?");
    if (n < 0 || (n > 0 && (!dst || !src)))
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "GPU convert: bad arguments (%lld elements)", (long long)n);
    if (n == 0) return KILN_OK;
    kiln_cuda_tensor o, i;
    memset(&o, 0, sizeof o);
    memset(&i, 0, sizeof i);
    o.ptr = dst;
    o.dtype = dst_dt;
    o.rank = 1;
    o.dims[0] = n;
    o.strides[0] = 1;
    i = o;
    i.ptr = (void *)src;
    i.dtype = src_dt;
    kew_params p;
    memset(&p, 0, sizeof p);
    int rc = kiln__k_elementwise(KEW_CAST, &o, 1, &i, &p, stream);
    if (rc == 0) return KILN_OK;
    if (rc < 0)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "GPU convert: %lld elements %s -> %s rejected (code %d)",
                          (long long)n, kiln_dtype_name(src_dt), kiln_dtype_name(dst_dt), rc);
    return kiln__cuda_check(rc, NULL, "GPU convert float32 <-> float16", err);
}
