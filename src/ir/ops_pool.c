/*
 * Op schemas of the pool family: MaxPool, AveragePool, GlobalAveragePool,
 * GlobalMaxPool. Output sizes keep symbolic H/W where the arithmetic allows.
 */
#include "ir.h"
#include <string.h>

#define MAX_SPATIAL (KILN_MAX_DIMS - 2)
/* Kernel sizes, strides, dilations and pads above this only come from corrupt files. */
#define ATTR_LIMIT ((int64_t)1 << 30)

enum { AUTO_PAD_NOTSET, AUTO_PAD_SAME_UPPER, AUTO_PAD_SAME_LOWER, AUTO_PAD_VALID };

typedef struct pool_params {
    int auto_pad;
    bool ceil_mode;
    int nsp; /* entries of kernel_shape */
    int n_strides, n_dil, n_pads;
    int64_t kernel[MAX_SPATIAL];
    int64_t strides[MAX_SPATIAL];
    int64_t dil[MAX_SPATIAL];
    int64_t pads[2 * MAX_SPATIAL];
} pool_params;

static kiln_status read_ints(const kiln_node *node, const char *name, int maxn, int64_t lo, int64_t hi,
                             int64_t *dst, int *n, kiln_err *err)
{
    *n = -1;
    kiln_status s = kiln__attr_expect(node, name, KILN_ATTR_INTS, err);
    if (s) return s;
    const int64_t *v;
    int64_t cnt = kiln__attr_ints(node, name, &v);
    if (cnt <= 0) return KILN_OK;
    if (cnt > maxn)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): attribute '%s' has %lld entries, at most %d supported",
                          node->name, node->op_type, name, (long long)cnt, maxn);
    for (int64_t i = 0; i < cnt; i++) {
        if (v[i] < lo || v[i] > hi)
            return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): attribute '%s'[%lld] = %lld is out of range [%lld, %lld]",
                              node->name, node->op_type, name, (long long)i, (long long)v[i], (long long)lo, (long long)hi);
        dst[i] = v[i];
    }
    *n = (int)cnt;
    return KILN_OK;
}

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
    pool_params *p = pp;
    kiln_status s;
    bool dummy;
    if ((s = kiln__attr_expect(node, "auto_pad", KILN_ATTR_STRING, err))) return s;
    const char *ap = kiln__attr_string(node, "auto_pad", "NOTSET");
    if (!ap || !ap[0] || !strcmp(ap, "NOTSET")) p->auto_pad = AUTO_PAD_NOTSET;
    else if (!strcmp(ap, "SAME_UPPER")) p->auto_pad = AUTO_PAD_SAME_UPPER;
    else if (!strcmp(ap, "SAME_LOWER")) p->auto_pad = AUTO_PAD_SAME_LOWER;
    else if (!strcmp(ap, "VALID")) p->auto_pad = AUTO_PAD_VALID;
    else
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): auto_pad '%s' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID",
                          node->name, node->op_type, ap);
    if ((s = read_ints(node, "kernel_shape", MAX_SPATIAL, 1, ATTR_LIMIT, p->kernel, &p->nsp, err))) return s;
    if (p->nsp < 1)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): attribute 'kernel_shape' is required", node->name,
                          node->op_type);
    if ((s = read_ints(node, "strides", MAX_SPATIAL, 1, ATTR_LIMIT, p->strides, &p->n_strides, err))) return s;
    if ((s = read_ints(node, "dilations", MAX_SPATIAL, 1, ATTR_LIMIT, p->dil, &p->n_dil, err))) return s;
    if ((s = read_ints(node, "pads", 2 * MAX_SPATIAL, 0, ATTR_LIMIT, p->pads, &p->n_pads, err))) return s;
    if ((s = read_flag(node, "ceil_mode", &p->ceil_mode, err))) return s;
    if ((s = read_flag(node, "count_include_pad", &dummy, err))) return s;
    if ((s = read_flag(node, "storage_order", &dummy, err))) return s;
    const char *names[3] = {"strides", "dilations", "pads"};
    int counts[3] = {p->n_strides, p->n_dil, p->n_pads}, want[3] = {p->nsp, p->nsp, 2 * p->nsp};
    for (int i = 0; i < 3; i++)
        if (counts[i] >= 0 && counts[i] != want[i])
            return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): attribute '%s' has %d entries, expected %d",
                              node->name, node->op_type, names[i], counts[i], want[i]);
    if (p->auto_pad != AUTO_PAD_NOTSET) p->n_pads = -1;
    return KILN_OK;
}

static bool dim_value(kiln_dim d, int64_t *v)
{
    if (!kiln__dim_is_const(d)) return false;
    *v = d.add;
    return true;
}

/* Output size of one spatial dim; ceil_mode drops a last window that would start in the end padding. */
static kiln_status pool_out_dim(const kiln_node *node, const pool_params *p, int i, kiln_dim in, kiln_dim *out,
                                kiln_err *err)
{
    int64_t k = p->kernel[i], s = p->n_strides > 0 ? p->strides[i] : 1, d = p->n_dil > 0 ? p->dil[i] : 1;
    int64_t pb = p->n_pads > 0 ? p->pads[i] : 0, pe = p->n_pads > 0 ? p->pads[i + p->nsp] : 0;
    int64_t eff = d * (k - 1) + 1, iv;
    if (in.sym == KILN_SYM_UNKNOWN) {
        *out = kiln__dim_unknown();
        return KILN_OK;
    }
    if (p->auto_pad == AUTO_PAD_SAME_UPPER || p->auto_pad == AUTO_PAD_SAME_LOWER) {
        *out = kiln__dim_div(kiln__dim_add(in, s - 1), s);
    } else if (!p->ceil_mode) {
        *out = kiln__dim_div(kiln__dim_add(in, pb + pe - eff + s), s);
    } else if (dim_value(in, &iv)) {
        int64_t num = iv + pb + pe - eff, o = num < 0 ? 0 : (num + s - 1) / s + 1;
        if (num >= 0 && (o - 1) * s >= iv + pb) o--;
        *out = kiln__dim_const(num < 0 ? -1 : o);
    } else {
        /* ceil((in + pb + pe - eff) / s) + 1, minus one when the last window starts at or past in + pb:
         * that never happens when pe + s <= eff and always happens when pe >= eff. */
        *out = kiln__dim_div(kiln__dim_add(in, pb + pe - eff + 2 * s - 1), s);
        if (pe >= eff) *out = kiln__dim_add(*out, -1);
        else if (pe + s > eff) *out = kiln__dim_unknown();
    }
    int64_t ov;
    if (dim_value(in, &iv) && dim_value(*out, &ov) && ov < 1)
        return kiln__fail(err, KILN_ERR_SHAPE,
                          "node '%s' (%s): spatial dim %d of size %lld is too small for kernel %lld (dilation %lld, pads %lld+%lld)",
                          node->name, node->op_type, i, (long long)iv, (long long)k, (long long)d, (long long)pb,
                          (long long)pe);
    return KILN_OK;
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
    const pool_params *p = pp;
    const kiln_value *x = in[0];
    kiln_status s;
    if (!pool_dtype_ok(node, x->dtype))
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): type %s is not supported", node->name, node->op_type,
                          kiln_dtype_name(x->dtype));
    if (x->shape.rank >= 0 && x->shape.rank != p->nsp + 2)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): X has %d dims, kernel_shape has %d entries (expected %d dims)",
                          node->name, node->op_type, x->shape.rank, p->nsp, p->nsp + 2);
    kiln_shape os;
    memset(&os, 0, sizeof os);
    os.rank = p->nsp + 2;
    for (int i = 0; i < os.rank; i++) os.d[i] = x->shape.rank >= 0 ? x->shape.d[i] : kiln__dim_unknown();
    for (int i = 0; i < p->nsp; i++)
        if ((s = pool_out_dim(node, p, i, os.d[i + 2], &os.d[i + 2], err))) return s;
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
    kiln_shape os = x->shape;
    if (os.rank >= 0 && os.rank < 3)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): X has %d dims, expected at least 3 (N, C, spatial...)",
                          node->name, node->op_type, os.rank);
    for (int i = 2; i < os.rank; i++) os.d[i] = kiln__dim_const(1);
    kiln__value_set_type(&out[0], x->dtype, &os);
    return KILN_OK;
}

const kiln_op_schema kiln__ops_pool[] = {
    {"MaxPool", "", 1, 1, 1, 1, 2, sizeof(pool_params), pool_parse, pool_infer},
    {"AveragePool", "", 1, 1, 1, 1, 1, sizeof(pool_params), pool_parse, pool_infer},
    {"GlobalAveragePool", "", 1, 1, 1, 1, 1, 0, NULL, global_pool_infer},
    {"GlobalMaxPool", "", 1, 1, 1, 1, 1, 0, NULL, global_pool_infer},
    {0},
};
