/*
 * Helpers shared by the op schema families; see ops_util.h.
 */
#include "ops_util.h"
#include <string.h>

#define FAIL(st, ...) return kiln__fail(err, st, __VA_ARGS__)

void kiln__ops_clear_symval(const kiln_node *node, kiln_value *out)
{
    for (int i = 0; i < node->n_out; i++) out[i].symval_n = 0;
}

static bool is_int_dtype(kiln_dtype dt)
{
    return dt == KILN_DT_INT64 || dt == KILN_DT_INT32 || dt == KILN_DT_UNDEFINED;
}

void kiln__ops_set_symval(kiln_value *out, const kiln_dim *d, int n)
{
    if (n <= 0 || n > KILN_SYMVAL_MAX) {
        out->symval_n = 0;
        return;
    }
    memcpy(out->symval, d, sizeof(kiln_dim) * (size_t)n);
    out->symval_n = n;
}

kiln_status kiln__ops_read_ints(const kiln_node *node, const kiln_value *v, const char *what,
                                kiln_dim *out, int max, int *n, bool *known, kiln_err *err)
{
    *known = false;
    *n = 0;
    if (!v) return KILN_OK;
    if (!is_int_dtype(v->dtype))
        FAIL(KILN_ERR_DTYPE, "node '%s' (%s): %s must be int64, got %s", node->name, node->op_type,
             what, kiln_dtype_name(v->dtype));
    if (v->shape.rank > 1)
        FAIL(KILN_ERR_SHAPE, "node '%s' (%s): %s must be 1-D, got rank %d", node->name,
             node->op_type, what, v->shape.rank);
    int64_t numel = kiln__shape_numel(&v->shape);
    if (numel > max)
        FAIL(KILN_ERR_LIMIT, "node '%s' (%s): %s has %lld entries, at most %d supported",
             node->name, node->op_type, what, (long long)numel, max);
    if (v->data && numel >= 0) {
        for (int64_t i = 0; i < numel; i++) out[i] = kiln__dim_const(kiln__value_get_i64(v, i));
        *n = (int)numel;
        *known = true;
    } else if (v->symval_n > 0 && v->symval_n <= max && (numel < 0 || numel == v->symval_n)) {
        memcpy(out, v->symval, sizeof(kiln_dim) * (size_t)v->symval_n);
        *n = v->symval_n;
        *known = true;
    } else if (numel == 0) {
        *known = true;
    }
    return KILN_OK;
}

int64_t kiln__ops_const_len(const kiln_value *v)
{
    if (!v || v->shape.rank != 1 || !kiln__dim_is_const(v->shape.d[0])) return -1;
    return v->shape.d[0].add;
}

/* Bounds on the coefficients of a symbolic dim that the dim arithmetic below keeps exact. */
#define SYM_COEF_MAX ((int64_t)1 << 40)
#define SYM_FACTOR_MAX ((int64_t)1 << 20)

static bool sym_small(kiln_dim d)
{
    return d.sym >= 0 && d.mul > -SYM_COEF_MAX && d.mul < SYM_COEF_MAX && d.add > -SYM_COEF_MAX &&
           d.add < SYM_COEF_MAX && d.div < SYM_FACTOR_MAX;
}

kiln_dim kiln__ops_dim_add(kiln_dim d, int64_t c)
{
    if (kiln__dim_is_const(d)) {
        int64_t v;
        return __builtin_add_overflow(d.add, c, &v) ? kiln__dim_unknown() : kiln__dim_const(v);
    }
    if (!sym_small(d) || c <= -SYM_COEF_MAX || c >= SYM_COEF_MAX) return kiln__dim_unknown();
    return kiln__dim_add(d, c);
}

kiln_dim kiln__ops_dim_mul(kiln_dim d, int64_t c)
{
    if (kiln__dim_is_const(d)) {
        int64_t v;
        return __builtin_mul_overflow(d.add, c, &v) ? kiln__dim_unknown() : kiln__dim_const(v);
    }
    if (!sym_small(d) || c < 0 || c >= SYM_FACTOR_MAX) return kiln__dim_unknown();
    return kiln__dim_mul(d, c);
}

kiln_dim kiln__ops_dim_div(kiln_dim d, int64_t c)
{
    if (c <= 0) return kiln__dim_unknown();
    if (kiln__dim_is_const(d)) return kiln__dim_div(d, c);
    if (!sym_small(d) || c >= SYM_FACTOR_MAX) return kiln__dim_unknown();
    return kiln__dim_div(d, c);
}

kiln_status kiln__ops_check_numel(const kiln_node *node, const kiln_shape *s, kiln_err *err)
{
    if (s->rank < 0) return KILN_OK;
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++) {
        if (!kiln__dim_is_const(s->d[i])) continue;
        if (s->d[i].add < 0)
            FAIL(KILN_ERR_SHAPE, "node '%s' (%s): output dim %d is negative (%lld)", node->name,
                 node->op_type, i, (long long)s->d[i].add);
        if (__builtin_mul_overflow(n, s->d[i].add, &n) || n > KILN_OPS_MAX_NUMEL)
            FAIL(KILN_ERR_LIMIT, "node '%s' (%s): output has more than %lld elements", node->name,
                 node->op_type, (long long)KILN_OPS_MAX_NUMEL);
    }
    return KILN_OK;
}

kiln_status kiln__ops_norm_axis(const kiln_node *node, int64_t axis, int rank, int64_t *out,
                                kiln_err *err)
{
    if (axis < -(int64_t)rank || axis >= rank)
        FAIL(KILN_ERR_SHAPE, "node '%s' (%s): axis %lld out of range for rank %d", node->name,
             node->op_type, (long long)axis, rank);
    *out = axis < 0 ? axis + rank : axis;
    return KILN_OK;
}

kiln_status kiln__ops_size_guard(const kiln_node *node, const kiln_shape *s, const char *what, kiln_err *err)
{
    int64_t prod = 1;
    for (int i = 0; i < s->rank; i++) {
        int64_t v = kiln__dim_is_const(s->d[i]) ? s->d[i].add : 1;
        if (v < 0 || (v > 1 && prod > KILN_OPS_SIZE_LIMIT / v))
            FAIL(KILN_ERR_LIMIT, "node '%s' (%s): %s dims are out of range", node->name, node->op_type, what);
        if (v > 1) prod *= v;
    }
    return KILN_OK;
}

kiln_status kiln__ops_read_auto_pad(const kiln_node *node, kiln_auto_pad *auto_pad, kiln_err *err)
{
    kiln_status s = kiln__attr_expect(node, "auto_pad", KILN_ATTR_STRING, err);
    if (s) return s;
    const char *ap = kiln__attr_string(node, "auto_pad", "NOTSET");
    if (!ap || !ap[0] || !strcmp(ap, "NOTSET")) *auto_pad = KILN_AUTO_PAD_NOTSET;
    else if (!strcmp(ap, "SAME_UPPER")) *auto_pad = KILN_AUTO_PAD_SAME_UPPER;
    else if (!strcmp(ap, "SAME_LOWER")) *auto_pad = KILN_AUTO_PAD_SAME_LOWER;
    else if (!strcmp(ap, "VALID")) *auto_pad = KILN_AUTO_PAD_VALID;
    else
        FAIL(KILN_ERR_INVALID_ARG, "node '%s' (%s): auto_pad '%s' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID",
             node->name, node->op_type, ap);
    return KILN_OK;
}

kiln_status kiln__ops_read_window_ints(const kiln_node *node, const char *name, int maxn, int64_t lo,
                                       int64_t hi, int64_t *dst, int *n, kiln_err *err)
{
    *n = -1;
    kiln_status s = kiln__attr_expect(node, name, KILN_ATTR_INTS, err);
    if (s) return s;
    const int64_t *v;
    int64_t cnt = kiln__attr_ints(node, name, &v);
    if (cnt <= 0) return KILN_OK;
    if (cnt > maxn)
        FAIL(KILN_ERR_INVALID_ARG, "node '%s' (%s): attribute '%s' has %lld entries, at most %d supported",
             node->name, node->op_type, name, (long long)cnt, maxn);
    for (int64_t i = 0; i < cnt; i++) {
        if (v[i] < lo || v[i] > hi)
            FAIL(KILN_ERR_INVALID_ARG, "node '%s' (%s): attribute '%s'[%lld] = %lld is out of range [%lld, %lld]",
                 node->name, node->op_type, name, (long long)i, (long long)v[i], (long long)lo, (long long)hi);
        dst[i] = v[i];
    }
    *n = (int)cnt;
    return KILN_OK;
}

kiln_status kiln__ops_window_out_dim(const kiln_node *node, int i, kiln_dim in, int64_t k, int64_t s, int64_t d,
                                     int64_t pb, int64_t pe, bool same, bool ceil_mode, kiln_dim *out,
                                     kiln_err *err)
{
    int64_t eff = d * (k - 1) + 1;
    if (in.sym == KILN_SYM_UNKNOWN) {
        *out = kiln__dim_unknown();
        return KILN_OK;
    }
    if (same) {
        *out = kiln__dim_div(kiln__dim_add(in, s - 1), s);
    } else if (!ceil_mode) {
        *out = kiln__dim_div(kiln__dim_add(in, pb + pe - eff + s), s);
    } else if (kiln__dim_is_const(in)) {
        int64_t num = in.add + pb + pe - eff, o = num < 0 ? 0 : (num + s - 1) / s + 1;
        if (num >= 0 && (o - 1) * s >= in.add + pb) o--;
        *out = kiln__dim_const(num < 0 ? -1 : o);
    } else {
        /* ceil((in + pb + pe - eff) / s) + 1, minus one when the last window starts at or past in + pb:
         * that never happens when pe + s <= eff and always happens when pe >= eff. */
        *out = kiln__dim_div(kiln__dim_add(in, pb + pe - eff + 2 * s - 1), s);
        if (pe >= eff) *out = kiln__dim_add(*out, -1);
        else if (pe + s > eff) *out = kiln__dim_unknown();
    }
    if (kiln__dim_is_const(in) && kiln__dim_is_const(*out) && out->add < 1)
        FAIL(KILN_ERR_SHAPE,
             "node '%s' (%s): spatial dim %d of size %lld is too small for kernel %lld (dilation %lld, pads %lld+%lld)",
             node->name, node->op_type, i, (long long)in.add, (long long)k, (long long)d, (long long)pb,
             (long long)pe);
    return KILN_OK;
}
