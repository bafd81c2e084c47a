/*
 * Op schemas of the activation family: pointwise activations (Relu, LeakyRelu,
 * PRelu, Sigmoid, Tanh, Clip, Elu, Selu, Celu, HardSigmoid, HardSwish,
 * Softplus, Softsign, Gelu, Mish, ThresholdedRelu, Shrink) and the
 * normalizing ones along an axis (Softmax, LogSoftmax, Hardmax).
 *
 * parse_attrs checks the attributes and fills kiln_act_params with each op's
 * defaults and opset rules; the kernels read only the params.
 */
#include "ops_activation.h"
#include <float.h>
#include <math.h>
#include <string.h>

#define BIT(t) (1u << (t))
#define T_FLOATS (BIT(KILN_DT_FLOAT) | BIT(KILN_DT_FLOAT16) | BIT(KILN_DT_BFLOAT16) | BIT(KILN_DT_DOUBLE))
#define T_SINTS (BIT(KILN_DT_INT8) | BIT(KILN_DT_INT16) | BIT(KILN_DT_INT32) | BIT(KILN_DT_INT64))
#define T_UINTS (BIT(KILN_DT_UINT8) | BIT(KILN_DT_UINT16) | BIT(KILN_DT_UINT32) | BIT(KILN_DT_UINT64))
#define T_NUM (T_FLOATS | T_SINTS | T_UINTS)

typedef struct act_desc {
    const char *name;
    uint32_t types;           /* dtypes accepted for X */
    const char *float_attrs;  /* space-separated FLOAT attributes it takes */
    float alpha_def, beta_def;
} act_desc;

static const act_desc descs[] = {
    {"Relu", T_FLOATS | T_SINTS, "", 0, 0},
    {"LeakyRelu", T_FLOATS, "alpha", 0.01f, 0},
    {"PRelu", T_FLOATS | T_SINTS | T_UINTS, "", 0, 0},
    {"Sigmoid", T_FLOATS, "", 0, 0},
    {"Tanh", T_FLOATS, "", 0, 0},
    {"Clip", T_NUM, "min max", 0, 0},
    {"Elu", T_FLOATS, "alpha", 1.0f, 0},
    {"Selu", T_FLOATS, "alpha gamma", 1.67326319217681884765625f, 0},
    {"Celu", T_FLOATS, "alpha", 1.0f, 0},
    {"HardSigmoid", T_FLOATS, "alpha beta", 0.2f, 0.5f},
    {"HardSwish", T_FLOATS, "", 0, 0},
    {"Softplus", T_FLOATS, "", 0, 0},
    {"Softsign", T_FLOATS, "", 0, 0},
    {"Gelu", T_FLOATS, "", 0, 0},
    {"Mish", T_FLOATS, "", 0, 0},
    {"ThresholdedRelu", T_FLOATS, "alpha", 1.0f, 0},
    {"Shrink", T_NUM, "bias lambd", 0, 0},
    {"Softmax", T_FLOATS, "", 0, 0},
    {"LogSoftmax", T_FLOATS, "", 0, 0},
    {"Hardmax", T_FLOATS, "", 0, 0},
};

static const act_desc *find_desc(const char *op)
{
    for (size_t i = 0; i < sizeof descs / sizeof descs[0]; i++)
        if (!strcmp(descs[i].name, op)) return &descs[i];
    return NULL;
}

static bool is_axis_op(const char *op)
{
    return !strcmp(op, "Softmax") || !strcmp(op, "LogSoftmax") || !strcmp(op, "Hardmax");
}

static kiln_status act_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_act_params *prm = params;
    const act_desc *d = find_desc(node->op_type);
    if (!d) return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s': no activation op '%s'", node->name, node->op_type);
    kiln_status s;
    /* Each name in float_attrs, checked for type. */
    const char *p = d->float_attrs;
    while (*p) {
        char name[32];
        size_t n = strcspn(p, " ");
        if (n >= sizeof name) n = sizeof name - 1;
        memcpy(name, p, n);
        name[n] = 0;
        p += n;
        while (*p == ' ') p++;
        if ((s = kiln__attr_expect(node, name, KILN_ATTR_FLOAT, err))) return s;
        float v = kiln__attr_float(node, name, 0.0f);
        if (isnan(v))
            return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): attribute '%s' is NaN", node->name,
                              node->op_type, name);
    }
    if (!strcmp(d->name, "Shrink") && kiln__attr_float(node, "lambd", 0.5f) < 0)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (Shrink): lambd must be >= 0, got %g", node->name,
                          (double)kiln__attr_float(node, "lambd", 0.5f));
    if (!strcmp(d->name, "Celu") && kiln__attr_float(node, "alpha", 1.0f) == 0)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (Celu): alpha must not be 0", node->name);
    if (!strcmp(d->name, "Gelu")) {
        if ((s = kiln__attr_expect(node, "approximate", KILN_ATTR_STRING, err))) return s;
        const char *a = kiln__attr_string(node, "approximate", "none");
        if (strcmp(a, "none") && strcmp(a, "tanh"))
            return kiln__fail(err, KILN_ERR_INVALID_ARG,
                              "node '%s' (Gelu): approximate must be \"none\" or \"tanh\", got \"%s\"", node->name, a);
    }
    if (is_axis_op(d->name) && (s = kiln__attr_expect(node, "axis", KILN_ATTR_INT, err))) return s;
    if (!strcmp(d->name, "Clip") && node->opset >= 11 && (kiln__node_attr(node, "min") || kiln__node_attr(node, "max")))
        return kiln__fail(err, KILN_ERR_INVALID_ARG,
                          "node '%s' (Clip): min/max are inputs from opset 11 on, not attributes (model opset %lld)",
                          node->name, (long long)node->opset);
    prm->alpha = kiln__attr_float(node, "alpha", d->alpha_def);
    prm->beta = kiln__attr_float(node, "beta", d->beta_def);
    prm->gamma = kiln__attr_float(node, "gamma", 1.05070102214813232421875f);
    prm->lambd = kiln__attr_float(node, "lambd", 0.5f);
    prm->bias = kiln__attr_float(node, "bias", 0.0f);
    prm->gelu_tanh = !strcmp(kiln__attr_string(node, "approximate", "none"), "tanh");
    prm->axis = kiln__attr_int(node, "axis", node->opset < 13 ? 1 : -1);
    prm->coerce_2d = node->opset < 13;
    prm->clip_attrs = node->opset < 11;
    prm->clip_min = kiln__attr_float(node, "min", -FLT_MAX);
    prm->clip_max = kiln__attr_float(node, "max", FLT_MAX);
    prm->prelu_legacy = node->opset < 7;
    return KILN_OK;
}

static kiln_status check_x(const kiln_node *node, const act_desc *d, const kiln_value *x, kiln_err *err)
{
    if (!x) return kiln__fail(err, KILN_ERR_GRAPH, "node '%s' (%s): input X is missing", node->name, node->op_type);
    kiln_dtype dt = x->dtype;
    if (dt == KILN_DT_UNDEFINED) return KILN_OK; /* not known statically */
    if (dt >= 32 || !(d->types & BIT(dt)))
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): input type %s is not supported", node->name,
                          node->op_type, kiln_dtype_name(dt));
    return KILN_OK;
}

static kiln_status infer_unary(const kiln_node *node, const void *params, const kiln_value *const *in,
                               kiln_value *out, kiln_err *err)
{
    const act_desc *d = find_desc(node->op_type);
    kiln_status s = check_x(node, d, in[0], err);
    if (s) return s;
    kiln__value_set_type(&out[0], in[0]->dtype, &in[0]->shape);
    return KILN_OK;
}

/*
 * Before opset 7 PRelu had no broadcasting rule beyond "a slope of size 1 is
 * shared"; exporters of that time passed one slope per channel as a 1-D
 * tensor. Such a slope is laid along axis 1.
 */
bool kiln__prelu_slope_on_channels(const kiln_act_params *p, const kiln_shape *x, const kiln_shape *sl)
{
    if (!p->prelu_legacy || x->rank < 2 || sl->rank != 1) return false;
    kiln_dim c = x->d[1], k = sl->d[0];
    return kiln__dim_is_const(k) && k.add != 1 && kiln__dim_is_const(c) && c.add == k.add;
}

static kiln_status infer_prelu(const kiln_node *node, const void *params, const kiln_value *const *in,
                               kiln_value *out, kiln_err *err)
{
    const act_desc *d = find_desc(node->op_type);
    kiln_status s = check_x(node, d, in[0], err);
    if (s) return s;
    const kiln_value *x = in[0], *sl = in[1];
    if (!sl) return kiln__fail(err, KILN_ERR_GRAPH, "node '%s' (PRelu): input slope is missing", node->name);
    if (x->dtype && sl->dtype && sl->dtype != x->dtype)
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (PRelu): slope is %s, X is %s", node->name,
                          kiln_dtype_name(sl->dtype), kiln_dtype_name(x->dtype));
    if (x->shape.rank >= 0 && sl->shape.rank >= 0 && !kiln__prelu_slope_on_channels(params, &x->shape, &sl->shape)) {
        if (sl->shape.rank > x->shape.rank)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (PRelu): slope has rank %d, X only %d", node->name,
                              sl->shape.rank, x->shape.rank);
        int off = x->shape.rank - sl->shape.rank;
        for (int i = 0; i < sl->shape.rank; i++) {
            kiln_dim a = sl->shape.d[i], b = x->shape.d[off + i];
            if (!kiln__dim_is_const(a) || a.add == 1) continue;
            if (kiln__dim_is_const(b) && b.add != a.add)
                return kiln__fail(err, KILN_ERR_SHAPE,
                                  "node '%s' (PRelu): slope dim %d is %lld, does not broadcast to X dim %d = %lld",
                                  node->name, i, (long long)a.add, off + i, (long long)b.add);
        }
    }
    kiln__value_set_type(&out[0], x->dtype, &x->shape);
    return KILN_OK;
}

static kiln_status infer_clip(const kiln_node *node, const void *params, const kiln_value *const *in,
                              kiln_value *out, kiln_err *err)
{
    const act_desc *d = find_desc(node->op_type);
    kiln_status s = check_x(node, d, in[0], err);
    if (s) return s;
    const kiln_act_params *p = params;
    int n_in = node->n_in < 3 ? node->n_in : 3;
    if (p->clip_attrs && n_in > 1)
        return kiln__fail(err, KILN_ERR_GRAPH, "node '%s' (Clip): takes 1 input before opset 11, got %d", node->name,
                          node->n_in);
    if (p->clip_attrs && in[0]->dtype && !(T_FLOATS & BIT(in[0]->dtype)))
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (Clip): input type %s needs opset 12 or later", node->name,
                          kiln_dtype_name(in[0]->dtype));
    for (int i = 1; i < n_in; i++) {
        const kiln_value *b = in[i];
        const char *what = i == 1 ? "min" : "max";
        if (!b) continue;
        if (in[0]->dtype && b->dtype && b->dtype != in[0]->dtype)
            return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (Clip): %s is %s, input is %s", node->name, what,
                              kiln_dtype_name(b->dtype), kiln_dtype_name(in[0]->dtype));
        int64_t n = kiln__shape_numel(&b->shape);
        if (n >= 0 && n != 1)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Clip): %s must be a scalar, it has %lld elements",
                              node->name, what, (long long)n);
        if (b->data && b->nbytes < kiln_dtype_size(b->dtype))
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Clip): %s holds no data", node->name, what);
    }
    kiln__value_set_type(&out[0], in[0]->dtype, &in[0]->shape);
    return KILN_OK;
}

static kiln_status infer_axis_op(const kiln_node *node, const void *params, const kiln_value *const *in,
                                 kiln_value *out, kiln_err *err)
{
    const act_desc *d = find_desc(node->op_type);
    kiln_status s = check_x(node, d, in[0], err);
    if (s) return s;
    int r = in[0]->shape.rank;
    int64_t axis = ((const kiln_act_params *)params)->axis;
    if (r >= 0 && (axis < -r || axis >= r) && !(r == 0 && (axis == 0 || axis == -1)))
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): axis %lld is out of range for rank %d", node->name,
                          node->op_type, (long long)axis, r);
    kiln__value_set_type(&out[0], in[0]->dtype, &in[0]->shape);
    return KILN_OK;
}

#define UNARY(name)                                                                            \
    {                                                                                          \
        .op_type = name, .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1,   \
        .min_outputs = 1, .max_outputs = 1, .params_size = sizeof(kiln_act_params),            \
        .parse_attrs = act_parse, .infer = infer_unary                                         \
    }
#define WITH_INFER(name, nin_min, nin_max, fn)                                                 \
    {                                                                                          \
        .op_type = name, .domain = "", .since_version = 1, .min_inputs = nin_min,              \
        .max_inputs = nin_max, .min_outputs = 1, .max_outputs = 1,                             \
        .params_size = sizeof(kiln_act_params), .parse_attrs = act_parse, .infer = fn          \
    }

const kiln_op_schema kiln__ops_activation[] = {
    UNARY("Relu"),
    UNARY("LeakyRelu"),
    WITH_INFER("PRelu", 2, 2, infer_prelu),
    UNARY("Sigmoid"),
    UNARY("Tanh"),
    WITH_INFER("Clip", 1, 3, infer_clip),
    UNARY("Elu"),
    UNARY("Selu"),
    UNARY("Celu"),
    UNARY("HardSigmoid"),
    UNARY("HardSwish"),
    UNARY("Softplus"),
    UNARY("Softsign"),
    UNARY("Gelu"),
    UNARY("Mish"),
    UNARY("ThresholdedRelu"),
    UNARY("Shrink"),
    WITH_INFER("Softmax", 1, 1, infer_axis_op),
    WITH_INFER("LogSoftmax", 1, 1, infer_axis_op),
    WITH_INFER("Hardmax", 1, 1, infer_axis_op),
    {0},
};
