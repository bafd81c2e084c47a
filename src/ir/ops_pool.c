/*
 * Op schemas of the pool family: MaxPool, AveragePool, GlobalAveragePool,
 * GlobalMaxPool. Output sizes keep symbolic H/W where the arithmetic allows.
 */
#include "ops_pool.h"
#include <string.h>

/* Kernel sizes, strides, dilations and pads above this only come from corrupt files. */
#define ATTR_LIMIT ((int64_t)1 << 30)

static kiln_status read_flag(const kiln_node *node, const char *name, bool *dst, kiln_err *err)
{
    kiln_status s = kiln__attr_expect(node, name, KILN_ATTR_INT, err);
    if (s) return s;
    int64_t v = kiln__attr_int(node, name, 0);
    if (v != 0 && v != 1)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): attribute '%s' must be 0 or 1, got %lld", node->name,
                          node->op_type, name, (long long)v);
    *dst = v != 0;
    return KILN_OK;
}

static kiln_status pool_parse(const kiln_node *node, void *pp, kiln_err *err)
{
    kiln_pool_params *p = pp;
    kiln_status s;
    if ((s = kiln__ops_read_auto_pad(node, &p->auto_pad, err))) return s;
    const int msp = KILN_MAX_SPATIAL;
    if ((s = kiln__ops_read_window_ints(node, "kernel_shape", msp, 1, ATTR_LIMIT, p->kernel, &p->nsp, err))) return s;
    if (p->nsp < 1)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): attribute 'kernel_shape' is required", node->name,
                          node->op_type);
    if ((s = kiln__ops_read_window_ints(node, "strides", msp, 1, ATTR_LIMIT, p->strides, &p->n_strides, err))) return s;
    if ((s = kiln__ops_read_window_ints(node, "dilations", msp, 1, ATTR_LIMIT, p->dil, &p->n_dil, err))) return s;
    if ((s = kiln__ops_read_window_ints(node, "pads", 2 * msp, 0, ATTR_LIMIT, p->pads, &p->n_pads, err))) return s;
    if ((s = read_flag(node, "ceil_mode", &p->ceil_mode, err))) return s;
    if ((s = read_flag(node, "count_include_pad", &p->count_include_pad, err))) return s;
    if ((s = read_flag(node, "storage_order", &p->storage_order, err))) return s;
    const char *names[3] = {"strides", "dilations", "pads"};
    int counts[3] = {p->n_strides, p->n_dil, p->n_pads}, want[3] = {p->nsp, p->nsp, 2 * p->nsp};
    for (int i = 0; i < 3; i++)
        if (counts[i] >= 0 && counts[i] != want[i])
            return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): attribute '%s' has %d entries, expected %d",
                              node->name, node->op_type, names[i], counts[i], want[i]);
    if (p->auto_pad != KILN_AUTO_PAD_NOTSET) p->n_pads = -1;
    return KILN_OK;
}

/* Output size of one spatial dim; ceil_mode drops a last window that would start in the end padding. */
static kiln_status pool_out_dim(const kiln_node *node, const kiln_pool_params *p, int i, kiln_dim in, kiln_dim *out,
                                kiln_err *err)
{
    int64_t k = p->kernel[i], s = p->n_strides > 0 ? p->strides[i] : 1, d = p->n_dil > 0 ? p->dil[i] : 1;
    int64_t pb = p->n_pads > 0 ? p->pads[i] : 0, pe = p->n_pads > 0 ? p->pads[i + p->nsp] : 0;
    bool same = p->auto_pad == KILN_AUTO_PAD_SAME_UPPER || p->auto_pad == KILN_AUTO_PAD_SAME_LOWER;
    return kiln__ops_window_out_dim(node, i, in, k, s, d, pb, pe, same, p->ceil_mode, out, err);
}

static bool pool_dtype_ok(const kiln_node *node, kiln_dtype dt)
{
    if (dt == KILN_DT_UNDEFINED || dt == KILN_DT_FLOAT || dt == KILN_DT_DOUBLE || dt == KILN_DT_FLOAT16 ||
        dt == KILN_DT_BFLOAT16)
        return true;
    /* MaxPool (opset 12+) also takes 8-bit integers. */
    return !strcmp(node->op_type, "MaxPool") && (dt == KILN_DT_INT8 || dt == KILN_DT_UINT8);
}

static kiln_status pool_infer(const kiln_node *node, const void *pp, const kiln_value *const *in, kiln_value *out,
                              kiln_err *err)
{
    const kiln_pool_params *p = pp;
    const kiln_value *x = in[0];
    kiln_status s;
    if (!pool_dtype_ok(node, x->dtype))
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): type %s is not supported", node->name, node->op_type,
                          kiln_dtype_name(x->dtype));
    if (x->shape.rank >= 0 && x->shape.rank != p->nsp + 2)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): X has %d dims, kernel_shape has %d entries (expected %d dims)",
                          node->name, node->op_type, x->shape.rank, p->nsp, p->nsp + 2);
    if (x->shape.rank >= 0 && (s = kiln__ops_size_guard(node, &x->shape, "X", err))) return s;
    kiln_shape os;
    memset(&os, 0, sizeof os);
    os.rank = p->nsp + 2;
    for (int i = 0; i < os.rank; i++) os.d[i] = x->shape.rank >= 0 ? x->shape.d[i] : kiln__dim_unknown();
    for (int i = 0; i < p->nsp; i++)
        if ((s = pool_out_dim(node, p, i, os.d[i + 2], &os.d[i + 2], err))) return s;
    if ((s = kiln__ops_size_guard(node, &os, "output", err))) return s;
    kiln__value_set_type(&out[0], x->dtype, &os);
    if (node->n_out > 1) kiln__value_set_type(&out[1], KILN_DT_INT64, &os);
    return KILN_OK;
}

static kiln_status global_pool_infer(const kiln_node *node, const void *pp, const kiln_value *const *in,
                                     kiln_value *out, kiln_err *err)
{
    const kiln_value *x = in[0];
    if (!pool_dtype_ok(node, x->dtype))
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): type %s is not supported", node->name, node->op_type,
                          kiln_dtype_name(x->dtype));
    kiln_status s = x->shape.rank >= 0 ? kiln__ops_size_guard(node, &x->shape, "X", err) : KILN_OK;
    if (s) return s;
    kiln_shape os = x->shape;
    if (os.rank >= 0 && os.rank < 3)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): X has %d dims, expected at least 3 (N, C, spatial...)",
                          node->name, node->op_type, os.rank);
    for (int i = 2; i < os.rank; i++) os.d[i] = kiln__dim_const(1);
    kiln__value_set_type(&out[0], x->dtype, &os);
    return KILN_OK;
}

const kiln_op_schema kiln__ops_pool[] = {
    {"MaxPool", "", 1, 1, 1, 1, 2, sizeof(kiln_pool_params), pool_parse, pool_infer},
    {"AveragePool", "", 1, 1, 1, 1, 1, sizeof(kiln_pool_params), pool_parse, pool_infer},
    {"GlobalAveragePool", "", 1, 1, 1, 1, 1, 0, NULL, global_pool_infer},
    {"GlobalMaxPool", "", 1, 1, 1, 1, 1, 0, NULL, global_pool_infer},
    {0},
};
