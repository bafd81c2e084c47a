/*
 * CPU reference kernels of the shape family. Shapes were validated by the
 * schemas' infer(); data moves by element size so every dtype works.
 */
#include "cpu_ops_util.h"
#include "../ir/ops_shape.h"
#include <string.h>

/* Shape, Identity, Reshape, Flatten, Squeeze, Unsqueeze: same bytes, new view. */
static kiln_status run_copy(const kiln_node *node, const void *params, const kiln_value *const *in,
                            kiln_value *out, kiln_err *err)
{
    size_t es;
    kiln_status st = kiln__cpu_elem_size(node, in[0]->dtype, &es, err);
    if (st) return st;
    size_t n = in[0]->nbytes < out[0].nbytes ? in[0]->nbytes : out[0].nbytes;
    if (in[0]->nbytes != out[0].nbytes)
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): %zu bytes in, %zu out",
                          node->name, node->op_type, in[0]->nbytes, out[0].nbytes);
    if (n) memcpy(out[0].data, in[0]->data, n);
    return KILN_OK;
}

static kiln_status run_shape(const kiln_node *node, const void *params, const kiln_value *const *in,
                             kiln_value *out, kiln_err *err)
{
    int b, e;
    kiln__shape_op_range(params, in[0]->shape.rank, &b, &e);
    int64_t *o = out[0].data;
    if (kiln__value_numel(&out[0]) != e - b)
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (Shape): output size", node->name);
    for (int i = b; i < e; i++) o[i - b] = in[0]->shape.d[i].add;
    return KILN_OK;
}

static kiln_status run_size(const kiln_node *node, const void *params, const kiln_value *const *in,
                            kiln_value *out, kiln_err *err)
{
    *(int64_t *)out[0].data = kiln__value_numel(in[0]);
    return KILN_OK;
}

static void fill_bytes(void *dst, int64_t n, const void *elem, size_t es)
{
    char *d = dst;
    for (int64_t i = 0; i < n; i++) memcpy(d + (size_t)i * es, elem, es);
}

static kiln_status run_constant_of_shape(const kiln_node *node, const void *params,
                                         const kiln_value *const *in, kiln_value *out,
                                         kiln_err *err)
{
    const kiln_constant_of_shape_params *p = params;
    if (!p->has_value) return KILN_OK; /* default fill is 0.0f: already zeroed */
    size_t es;
    kiln_status st = kiln__cpu_elem_size(node, out[0].dtype, &es, err);
    if (st) return st;
    int64_t n = kiln__value_numel(&out[0]);
    if (n) fill_bytes(out[0].data, n, p->value, es);
    return KILN_OK;
}

static kiln_status run_constant(const kiln_node *node, const void *params,
                                const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    const kiln_attr *a = &node->attrs[0];
    int64_t n = kiln__value_numel(&out[0]);
    switch (a->type) {
    case KILN_ATTR_TENSOR: {
        size_t nb = a->t->nbytes < out[0].nbytes ? a->t->nbytes : out[0].nbytes;
        if (nb) memcpy(out[0].data, a->t->data, nb);
        break;
    }
    case KILN_ATTR_FLOAT: *(float *)out[0].data = a->f; break;
    case KILN_ATTR_INT: *(int64_t *)out[0].data = a->i; break;
    case KILN_ATTR_FLOATS:
        if (n) memcpy(out[0].data, a->floats, sizeof(float) * (size_t)n);
        break;
    case KILN_ATTR_INTS:
        if (n) memcpy(out[0].data, a->ints, sizeof(int64_t) * (size_t)n);
        break;
    default:
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (Constant): unsupported value",
                          node->name);
    }
    return KILN_OK;
}

static kiln_status run_range(const kiln_node *node, const void *params, const kiln_value *const *in,
                             kiln_value *out, kiln_err *err)
{
    int64_t n = kiln__value_numel(&out[0]);
    if (kiln__range_count(in[0], in[1], in[2]) != n)
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (Range): output size", node->name);
    kiln_dtype dt = out[0].dtype;
    if (dt == KILN_DT_FLOAT || dt == KILN_DT_DOUBLE || dt == KILN_DT_FLOAT16 ||
        dt == KILN_DT_BFLOAT16) {
        double s = kiln__value_get_f64(in[0], 0), d = kiln__value_get_f64(in[2], 0);
        for (int64_t i = 0; i < n; i++) kiln__value_set_f64(&out[0], i, s + (double)i * d);
    } else {
        /* Wrapping unsigned math: every value lies in [start, limit), so the result fits. */
        uint64_t s = (uint64_t)kiln__value_get_i64(in[0], 0);
        uint64_t d = (uint64_t)kiln__value_get_i64(in[2], 0);
        for (int64_t i = 0; i < n; i++)
            kiln__value_set_i64(&out[0], i, (int64_t)(s + (uint64_t)i * d));
    }
    return KILN_OK;
}

static kiln_status run_expand(const kiln_node *node, const void *params,
                              const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    size_t es;
    kiln_status st = kiln__cpu_elem_size(node, out[0].dtype, &es, err);
    if (st) return st;
    const kiln_shape *xs = &in[0]->shape, *os = &out[0].shape;
    int R = os->rank, off = R - xs->rank;
    int64_t dims[KILN_MAX_DIMS], str[KILN_MAX_DIMS], stride = 1;
    if (off < 0)
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (Expand): rank", node->name);
    for (int i = R - 1; i >= 0; i--) {
        dims[i] = os->d[i].add;
        int64_t xd = i >= off ? xs->d[i - off].add : 1;
        if (xd != dims[i] && xd != 1)
            return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (Expand): shape", node->name);
        str[i] = (xd == 1) ? 0 : stride;
        stride *= xd;
    }
    kiln__cpu_strided_copy(out[0].data, in[0]->data, 0, R, dims, str, es);
    return KILN_OK;
}

static kiln_status run_eyelike(const kiln_node *node, const void *params,
                               const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    int64_t rows = out[0].shape.d[0].add, cols = out[0].shape.d[1].add;
    int64_t k = ((const kiln_eyelike_params *)params)->k;
    if (k >= cols || k <= -rows) return KILN_OK; /* bounds k so i + k cannot overflow */
    for (int64_t i = 0; i < rows; i++) {
        int64_t j = i + k;
        if (j >= 0 && j < cols) kiln__value_set_f64(&out[0], i * cols + j, 1.0);
    }
    return KILN_OK;
}

/* Dropout at inference: y = x, mask all true (1 in the mask's type). */
static kiln_status run_dropout(const kiln_node *node, const void *params,
                               const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    const kiln_value *ratio = node->n_in > 1 ? in[1] : NULL;
    const kiln_value *mode = node->n_in > 2 ? in[2] : NULL;
    if (mode && kiln__value_get_i64(mode, 0) != 0) {
        double r = ratio ? kiln__value_get_f64(ratio, 0) : 0.5;
        if (r != 0)
            return kiln__fail(err, KILN_ERR_UNSUPPORTED,
                              "node '%s' (Dropout): training_mode is true with ratio %g; random "
                              "dropout is not supported (inference only)",
                              node->name, r);
    }
    kiln_status st = run_copy(node, params, in, out, err);
    if (st || node->n_out < 2) return st;
    int64_t n = kiln__value_numel(&out[1]);
    for (int64_t i = 0; i < n; i++) kiln__value_set_i64(&out[1], i, 1);
    return KILN_OK;
}

const kiln_cpu_kernel kiln__cpu_shape[] = {
    {"Shape", "", run_shape},
    {"Size", "", run_size},
    {"ConstantOfShape", "", run_constant_of_shape},
    {"Constant", "", run_constant},
    {"Identity", "", run_copy},
    {"Range", "", run_range},
    {"Reshape", "", run_copy},
    {"Flatten", "", run_copy},
    {"Squeeze", "", run_copy},
    {"Unsqueeze", "", run_copy},
    {"Expand", "", run_expand},
    {"EyeLike", "", run_eyelike},
    {"Dropout", "", run_dropout},
    {0},
};
