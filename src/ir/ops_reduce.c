/*
 * Op schemas of the reduce family: ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/
 * LogSumExp/SumSquare and ArgMax/ArgMin.
 *
 * The axes to reduce are an attribute up to one opset and an optional second
 * input from then on (ReduceSum: 13, the others: 18). An empty or omitted axes
 * list means "all axes", or "nothing" with noop_with_empty_axes=1. The
 * kernels take the parsed attributes and kiln__reduce_axes from here;
 * everything they rely on (axis ranges, no duplicates, a non-empty ArgMax
 * axis) is checked here first.
 */
#include "ops_reduce.h"
#include <string.h>

#define BIT(t) (1u << (t))
#define T_FLOATS (BIT(KILN_DT_FLOAT) | BIT(KILN_DT_FLOAT16) | BIT(KILN_DT_BFLOAT16) | BIT(KILN_DT_DOUBLE))
#define T_INTS                                                                                              \
    (BIT(KILN_DT_INT8) | BIT(KILN_DT_INT16) | BIT(KILN_DT_INT32) | BIT(KILN_DT_INT64) | BIT(KILN_DT_UINT8) | \
     BIT(KILN_DT_UINT16) | BIT(KILN_DT_UINT32) | BIT(KILN_DT_UINT64))
#define T_NUM (T_FLOATS | T_INTS)

typedef struct red_desc {
    const char *name;
    int axes_input_since; /* opset from which axes is an input; 0 for Arg* (single `axis` attribute) */
    uint32_t types;
} red_desc;

/* Indexed by kiln_reduce_op. */
static const red_desc descs[] = {
    [KILN_REDUCE_SUM] = {"ReduceSum", 13, T_NUM},
    [KILN_REDUCE_MEAN] = {"ReduceMean", 18, T_NUM},
    [KILN_REDUCE_MAX] = {"ReduceMax", 18, T_NUM | BIT(KILN_DT_BOOL)},
    [KILN_REDUCE_MIN] = {"ReduceMin", 18, T_NUM | BIT(KILN_DT_BOOL)},
    [KILN_REDUCE_PROD] = {"ReduceProd", 18, T_NUM},
    [KILN_REDUCE_L1] = {"ReduceL1", 18, T_NUM},
    [KILN_REDUCE_L2] = {"ReduceL2", 18, T_NUM},
    [KILN_REDUCE_LOG_SUM] = {"ReduceLogSum", 18, T_NUM},
    [KILN_REDUCE_LOG_SUM_EXP] = {"ReduceLogSumExp", 18, T_NUM},
    [KILN_REDUCE_SUM_SQUARE] = {"ReduceSumSquare", 18, T_NUM},
    [KILN_REDUCE_ARGMAX] = {"ArgMax", 0, T_NUM},
    [KILN_REDUCE_ARGMIN] = {"ArgMin", 0, T_NUM},
};

static const red_desc *find_desc(const char *op)
{
    for (size_t i = 0; i < sizeof descs / sizeof descs[0]; i++)
        if (!strcmp(descs[i].name, op)) return &descs[i];
    return NULL;
}

static kiln_status check_flag(const kiln_node *node, const char *name, kiln_err *err)
{
    kiln_status s = kiln__attr_expect(node, name, KILN_ATTR_INT, err);
    if (s) return s;
    int64_t v = kiln__attr_int(node, name, 0);
    if (v != 0 && v != 1)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): %s must be 0 or 1, got %lld", node->name,
                          node->op_type, name, (long long)v);
    return KILN_OK;
}

static kiln_status red_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_reduce_params *p = params;
    const red_desc *d = find_desc(node->op_type);
    if (!d) return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s': no reduce op '%s'", node->name, node->op_type);
    p->op = (kiln_reduce_op)(d - descs);
    kiln_status s;
    if ((s = check_flag(node, "keepdims", err))) return s;
    p->keepdims = kiln__attr_int(node, "keepdims", 1) != 0;
    if (d->axes_input_since == 0) {
        if ((s = check_flag(node, "select_last_index", err))) return s;
        if ((s = kiln__attr_expect(node, "axis", KILN_ATTR_INT, err))) return s;
        p->axis = kiln__attr_int(node, "axis", 0);
        p->select_last_index = kiln__attr_int(node, "select_last_index", 0) != 0;
        return KILN_OK;
    }
    if ((s = check_flag(node, "noop_with_empty_axes", err))) return s;
    if ((s = kiln__attr_expect(node, "axes", KILN_ATTR_INTS, err))) return s;
    if (node->opset >= d->axes_input_since && kiln__node_attr(node, "axes"))
        return kiln__fail(err, KILN_ERR_INVALID_ARG,
                          "node '%s' (%s): axes is an input from opset %d on, not an attribute (model opset %lld)",
                          node->name, node->op_type, d->axes_input_since, (long long)node->opset);
    if (node->opset < d->axes_input_since && node->n_in > 1)
        return kiln__fail(err, KILN_ERR_GRAPH, "node '%s' (%s): takes 1 input before opset %d, got %d", node->name,
                          node->op_type, d->axes_input_since, node->n_in);
    p->axes_from_input = node->opset >= d->axes_input_since;
    /* Only the input form has noop_with_empty_axes. */
    p->noop_with_empty_axes = p->axes_from_input && kiln__attr_int(node, "noop_with_empty_axes", 0);
    if (!p->axes_from_input) {
        const int64_t *axes;
        p->n_axes = kiln__attr_ints(node, "axes", &axes);
        if (p->n_axes < 0) p->n_axes = 0;
        /* More axes than any rank: kiln__reduce_axes() reports it against the input's rank. */
        for (int64_t i = 0; i < p->n_axes && i < KILN_MAX_DIMS; i++) p->axes[i] = axes[i];
    }
    return KILN_OK;
}

kiln_status kiln__reduce_axes(const kiln_node *node, const kiln_reduce_params *p,
                              const kiln_value *const *in, int r, bool mask[KILN_MAX_DIMS],
                              bool *known, int *n_axes_hint, kiln_err *err)
{
    memset(mask, 0, sizeof(bool) * KILN_MAX_DIMS);
    *known = true;
    *n_axes_hint = -1;
    int64_t n = 0;
    const int64_t *attr_axes = NULL;
    const kiln_value *ax = NULL;
    if (!p->axes_from_input) {
        n = p->n_axes;
        attr_axes = p->axes;
    } else if (node->n_in > 1 && in[1]) {
        ax = in[1];
        if (ax->dtype && ax->dtype != KILN_DT_INT64 && ax->dtype != KILN_DT_INT32)
            return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): axes must be int64, got %s", node->name,
                              node->op_type, kiln_dtype_name(ax->dtype));
        if (ax->shape.rank > 1)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): axes must be 1-D, got rank %d", node->name,
                              node->op_type, ax->shape.rank);
        n = kiln__shape_numel(&ax->shape);
        if (!ax->data || n < 0) {
            *known = false;
            *n_axes_hint = (int)(n >= 0 && n <= KILN_MAX_DIMS ? n : -1);
            return KILN_OK;
        }
        if (ax->nbytes < (size_t)n * kiln_dtype_size(ax->dtype))
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): axes holds %zu bytes for %lld entries", node->name,
                              node->op_type, ax->nbytes, (long long)n);
    }
    if (n == 0) {
        if (!p->noop_with_empty_axes)
            for (int i = 0; i < r; i++) mask[i] = true;
        return KILN_OK;
    }
    if (r < 0) {
        *known = false;
        *n_axes_hint = (int)(n <= KILN_MAX_DIMS ? n : -1);
        return KILN_OK;
    }
    if (n > r)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): %lld axes given for an input of rank %d", node->name,
                          node->op_type, (long long)n, r);
    for (int64_t i = 0; i < n; i++) {
        int64_t a = attr_axes ? attr_axes[i] : kiln__value_get_i64(ax, i);
        int64_t orig = a;
        if (a < 0) a += r;
        if (a < 0 || a >= r)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): axis %lld is out of range for rank %d", node->name,
                              node->op_type, (long long)orig, r);
        if (mask[a])
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): axis %lld is given twice", node->name,
                              node->op_type, (long long)orig);
        mask[a] = true;
    }
    return KILN_OK;
}

static kiln_status check_data(const kiln_node *node, const red_desc *d, const kiln_value *x, kiln_err *err)
{
    if (!x) return kiln__fail(err, KILN_ERR_GRAPH, "node '%s' (%s): input data is missing", node->name, node->op_type);
    if (x->dtype && (x->dtype >= 32 || !(d->types & BIT(x->dtype))))
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): input type %s is not supported", node->name,
                          node->op_type, kiln_dtype_name(x->dtype));
    if (x->shape.rank > KILN_MAX_DIMS)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): rank %d is over the limit", node->name, node->op_type,
                          x->shape.rank);
    return KILN_OK;
}

static kiln_status infer_reduce(const kiln_node *node, const void *params, const kiln_value *const *in,
                                kiln_value *out, kiln_err *err)
{
    const kiln_reduce_params *p = params;
    kiln_status s = check_data(node, &descs[p->op], in[0], err);
    if (s) return s;
    const kiln_value *x = in[0];
    int r = x->shape.rank;
    bool keep = p->keepdims;
    bool mask[KILN_MAX_DIMS], known;
    int n_axes;
    if ((s = kiln__reduce_axes(node, p, in, r, mask, &known, &n_axes, err))) return s;
    kiln_shape o;
    memset(&o, 0, sizeof o);
    if (!known) {
        /* Which axes is not known: with keepdims the rank stays and dims of 1 stay 1. */
        if (keep && r >= 0) {
            o.rank = r;
            for (int i = 0; i < r; i++)
                o.d[i] = (kiln__dim_is_const(x->shape.d[i]) && x->shape.d[i].add == 1) ? x->shape.d[i]
                                                                                        : kiln__dim_unknown();
        } else if (r >= 0 && n_axes > 0 && n_axes <= r) {
            o.rank = r - n_axes;
            for (int i = 0; i < o.rank; i++) o.d[i] = kiln__dim_unknown();
        } else {
            o.rank = -1;
        }
        kiln__value_set_type(&out[0], x->dtype, &o);
        return KILN_OK;
    }
    if (r < 0) {
        o.rank = -1;
    } else {
        for (int i = 0; i < r; i++) {
            if (!mask[i]) o.d[o.rank++] = x->shape.d[i];
            else if (keep) o.d[o.rank++] = kiln__dim_const(1);
        }
    }
    kiln__value_set_type(&out[0], x->dtype, &o);
    return KILN_OK;
}

static kiln_status infer_arg(const kiln_node *node, const void *params, const kiln_value *const *in, kiln_value *out,
                             kiln_err *err)
{
    const kiln_reduce_params *p = params;
    kiln_status s = check_data(node, &descs[p->op], in[0], err);
    if (s) return s;
    const kiln_value *x = in[0];
    int r = x->shape.rank;
    bool keep = p->keepdims;
    int64_t axis = p->axis;
    kiln_shape o;
    memset(&o, 0, sizeof o);
    if (r < 0) {
        o.rank = -1;
        kiln__value_set_type(&out[0], KILN_DT_INT64, &o);
        return KILN_OK;
    }
    if (axis < -r || axis >= r)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): axis %lld is out of range for rank %d", node->name,
                          node->op_type, (long long)axis, r);
    if (axis < 0) axis += r;
    kiln_dim ad = x->shape.d[axis];
    if (kiln__dim_is_const(ad) && ad.add == 0)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): axis %lld has size 0, there is no index to return",
                          node->name, node->op_type, (long long)axis);
    for (int i = 0; i < r; i++) {
        if (i != axis) o.d[o.rank++] = x->shape.d[i];
        else if (keep) o.d[o.rank++] = kiln__dim_const(1);
    }
    kiln__value_set_type(&out[0], KILN_DT_INT64, &o);
    return KILN_OK;
}

#define REDUCE(name)                                                                                    \
    {                                                                                                   \
        .op_type = name, .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 2,            \
        .min_outputs = 1, .max_outputs = 1, .params_size = sizeof(kiln_reduce_params),                  \
        .parse_attrs = red_parse, .infer = infer_reduce                                                 \
    }
#define ARG(name)                                                                                       \
    {                                                                                                   \
        .op_type = name, .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1,            \
        .min_outputs = 1, .max_outputs = 1, .params_size = sizeof(kiln_reduce_params),                  \
        .parse_attrs = red_parse, .infer = infer_arg                                                    \
    }

const kiln_op_schema kiln__ops_reduce[] = {
    REDUCE("ReduceSum"),
    REDUCE("ReduceMean"),
    REDUCE("ReduceMax"),
    REDUCE("ReduceMin"),
    REDUCE("ReduceProd"),
    REDUCE("ReduceL1"),
    REDUCE("ReduceL2"),
    REDUCE("ReduceLogSum"),
    REDUCE("ReduceLogSumExp"),
    REDUCE("ReduceSumSquare"),
    ARG("ArgMax"),
    ARG("ArgMin"),
    {0},
};
