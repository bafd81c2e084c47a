/*
 * CPU reference kernels of the reduce family.
 *
 * One pass over the input in row-major order, each element adding into its
 * output cell (the output index follows the input index with stride 0 along
 * reduced axes). Floating-point inputs accumulate in double; integer and bool
 * inputs are summed, multiplied and compared exactly in 64 bits (wrapping like
 * numpy), except Mean/L2/LogSum/LogSumExp, which go through double and are
 * truncated on store like numpy's astype. Empty reductions give the identity
 * of the op (0, 1, -inf for Max, +inf for Min, the type's limits for integers).
 *
 * infer() has already checked the axes, dtypes and shapes this code uses.
 */
#include "cpu_ops_util.h"
#include "../ir/ops_reduce.h"
#include "../ir/ops_util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool is_unsigned_dt(kiln_dtype dt)
{
    return dt == KILN_DT_UINT8 || dt == KILN_DT_UINT16 || dt == KILN_DT_UINT32 || dt == KILN_DT_UINT64 ||
           dt == KILN_DT_BOOL;
}

/* Range of an integer dtype, as the identities of Max and Min. */
static void int_limits(kiln_dtype dt, int64_t *lo, uint64_t *hi)
{
    switch (dt) {
    case KILN_DT_INT8: *lo = INT8_MIN; *hi = INT8_MAX; return;
    case KILN_DT_INT16: *lo = INT16_MIN; *hi = INT16_MAX; return;
    case KILN_DT_INT32: *lo = INT32_MIN; *hi = INT32_MAX; return;
    case KILN_DT_INT64: *lo = INT64_MIN; *hi = INT64_MAX; return;
    case KILN_DT_UINT8: *lo = 0; *hi = UINT8_MAX; return;
    case KILN_DT_UINT16: *lo = 0; *hi = UINT16_MAX; return;
    case KILN_DT_UINT32: *lo = 0; *hi = UINT32_MAX; return;
    case KILN_DT_UINT64: *lo = 0; *hi = UINT64_MAX; return;
    default: *lo = 0; *hi = 1; return; /* bool */
    }
}

static uint64_t get_bits(const kiln_value *v, int64_t i)
{
    if (v->dtype == KILN_DT_UINT64) return ((const uint64_t *)v->data)[i];
    return (uint64_t)kiln__value_get_i64(v, i);
}

static kiln_status check_in(const kiln_node *node, const kiln_value *x, const kiln_value *y, kiln_err *err)
{
    if (!x || !y || !y->data || x->shape.rank < 0 || x->shape.rank > KILN_MAX_DIMS)
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): bad input/output", node->name, node->op_type);
    int64_t n = kiln__value_numel(x);
    size_t es = kiln_dtype_size(x->dtype), os = kiln_dtype_size(y->dtype);
    if (es == 0 || os == 0 || x->nbytes < (size_t)n * es || y->nbytes < (size_t)kiln__value_numel(y) * os)
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): buffer sizes do not match shapes", node->name,
                          node->op_type);
    return KILN_OK;
}

/* Walks the input in row-major order, keeping the matching output offset. */
typedef struct out_iter {
    int r;
    int64_t dim[KILN_MAX_DIMS], ostride[KILN_MAX_DIMS], idx[KILN_MAX_DIMS];
    int64_t o;
} out_iter;

static void iter_init(out_iter *it, const kiln_shape *s, const bool *mask)
{
    memset(it, 0, sizeof *it);
    it->r = s->rank;
    int64_t st = 1;
    for (int i = s->rank - 1; i >= 0; i--) {
        it->dim[i] = s->d[i].add;
        it->ostride[i] = mask[i] ? 0 : st;
        if (!mask[i]) st *= it->dim[i];
    }
}

static inline void iter_next(out_iter *it)
{
    for (int d = it->r - 1; d >= 0; d--) {
        it->o += it->ostride[d];
        if (++it->idx[d] < it->dim[d]) return;
        it->o -= it->ostride[d] * it->dim[d];
        it->idx[d] = 0;
    }
}

/* Floating-point path, also used for integer Mean/L2/LogSum/LogSumExp. */
static kiln_status reduce_double(const kiln_node *node, kiln_reduce_op op, const kiln_value *x, const bool *mask,
                                 int64_t count, kiln_value *y, kiln_err *err)
{
    int64_t n = kiln__value_numel(x), on = kiln__value_numel(y);
    double *acc = kiln__malloc((size_t)on * sizeof *acc);
    double *mx = op == KILN_REDUCE_LOG_SUM_EXP ? kiln__malloc((size_t)on * sizeof *mx) : NULL;
    if (!acc || (op == KILN_REDUCE_LOG_SUM_EXP && !mx)) {
        free(acc);
        free(mx);
        return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s' (%s): out of memory", node->name, node->op_type);
    }
    double init = op == KILN_REDUCE_MAX    ? -INFINITY
                  : op == KILN_REDUCE_MIN  ? INFINITY
                  : op == KILN_REDUCE_PROD ? 1.0
                                           : 0.0;
    for (int64_t o = 0; o < on; o++) acc[o] = init;
    out_iter it;
    if (n == 0) goto finish;
    if (op == KILN_REDUCE_LOG_SUM_EXP) {
        /* First pass: the max of each cell, so exp() cannot overflow. */
        for (int64_t o = 0; o < on; o++) mx[o] = -INFINITY;
        iter_init(&it, &x->shape, mask);
        for (int64_t i = 0; i < n; i++, iter_next(&it)) {
            double v = kiln__cpu_load_f64(x, i);
            if (v > mx[it.o] || isnan(v)) mx[it.o] = isnan(mx[it.o]) ? mx[it.o] : v;
        }
    }
    iter_init(&it, &x->shape, mask);
    for (int64_t i = 0; i < n; i++, iter_next(&it)) {
        double v = kiln__cpu_load_f64(x, i), *a = &acc[it.o];
        switch (op) {
        case KILN_REDUCE_SUM: case KILN_REDUCE_MEAN: case KILN_REDUCE_LOG_SUM: *a += v; break;
        case KILN_REDUCE_MAX: if (!isnan(*a) && (isnan(v) || v > *a)) *a = v; break;
        case KILN_REDUCE_MIN: if (!isnan(*a) && (isnan(v) || v < *a)) *a = v; break;
        case KILN_REDUCE_PROD: *a *= v; break;
        case KILN_REDUCE_L1: *a += fabs(v); break;
        case KILN_REDUCE_L2: case KILN_REDUCE_SUM_SQUARE: *a += v * v; break;
        case KILN_REDUCE_LOG_SUM_EXP: {
            double m = mx[it.o];
            *a += exp(v - (isfinite(m) ? m : 0.0));
            break;
        }
        default: break; /* ArgMax/ArgMin run elsewhere */
        }
    }
finish:
    for (int64_t o = 0; o < on; o++) {
        double v = acc[o];
        switch (op) {
        case KILN_REDUCE_MEAN: v = v / (double)count; break;
        case KILN_REDUCE_L2: v = sqrt(v); break;
        case KILN_REDUCE_LOG_SUM: v = log(v); break;
        case KILN_REDUCE_LOG_SUM_EXP: v = isfinite(mx[o]) ? log(v) + mx[o] : mx[o]; break;
        default: break;
        }
        kiln__cpu_store_f64(y, o, v);
    }
    free(acc);
    free(mx);
    return KILN_OK;
}

/* Exact integer path for Sum/Prod/Max/Min/L1/SumSquare (and bool Max/Min). */
static kiln_status reduce_int(const kiln_node *node, kiln_reduce_op op, const kiln_value *x, const bool *mask,
                              kiln_value *y, kiln_err *err)
{
    int64_t n = kiln__value_numel(x), on = kiln__value_numel(y);
    bool uns = is_unsigned_dt(x->dtype);
    int64_t lo;
    uint64_t hi;
    int_limits(x->dtype, &lo, &hi);
    uint64_t *acc = kiln__malloc((size_t)on * sizeof *acc);
    if (!acc) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s' (%s): out of memory", node->name, node->op_type);
    uint64_t init = op == KILN_REDUCE_MAX    ? (uint64_t)lo
                    : op == KILN_REDUCE_MIN  ? hi
                    : op == KILN_REDUCE_PROD ? 1
                                             : 0;
    for (int64_t o = 0; o < on; o++) acc[o] = init;
    out_iter it;
    if (n > 0) iter_init(&it, &x->shape, mask);
    for (int64_t i = 0; i < n; i++, iter_next(&it)) {
        uint64_t v = get_bits(x, i), *a = &acc[it.o];
        /* Unsigned arithmetic wraps modulo 2^64, which is two's complement for the signed types too. */
        switch (op) {
        case KILN_REDUCE_SUM: *a += v; break;
        case KILN_REDUCE_PROD: *a *= v; break;
        case KILN_REDUCE_SUM_SQUARE: *a += v * v; break;
        case KILN_REDUCE_L1: *a += (!uns && (int64_t)v < 0) ? (uint64_t)0 - v : v; break;
        case KILN_REDUCE_MAX: if (uns ? v > *a : (int64_t)v > (int64_t)*a) *a = v; break;
        case KILN_REDUCE_MIN: if (uns ? v < *a : (int64_t)v < (int64_t)*a) *a = v; break;
        default: break;
        }
    }
    for (int64_t o = 0; o < on; o++) kiln__value_set_i64(y, o, (int64_t)acc[o]);
    free(acc);
    return KILN_OK;
}

static kiln_status run_reduce(const kiln_node *node, const void *params, const kiln_value *const *in,
                              kiln_value *out, kiln_err *err)
{
    const kiln_reduce_params *p = params;
    kiln_reduce_op op = p->op;
    const kiln_value *x = in[0];
    kiln_value *y = &out[0];
    kiln_status s = check_in(node, x, y, err);
    if (s) return s;
    if (x->dtype != y->dtype)
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): output type differs from input", node->name,
                          node->op_type);
    bool mask[KILN_MAX_DIMS], known;
    int r = x->shape.rank, n_axes;
    if ((s = kiln__reduce_axes(node, p, in, r, mask, &known, &n_axes, err))) return s;
    if (!known)
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): axes has no data", node->name, node->op_type);
    /* Products checked: an empty input may have other dims whose product overflows. */
    int64_t count = 1, expect = 1;
    bool ovf = false;
    for (int i = 0; i < r; i++)
        ovf |= __builtin_mul_overflow(mask[i] ? count : expect, x->shape.d[i].add, mask[i] ? &count : &expect);
    if (ovf || expect != kiln__value_numel(y))
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): output size does not match the axes", node->name,
                          node->op_type);
    if (kiln__dtype_is_float(x->dtype) || op == KILN_REDUCE_MEAN || op == KILN_REDUCE_L2 ||
        op == KILN_REDUCE_LOG_SUM || op == KILN_REDUCE_LOG_SUM_EXP)
        return reduce_double(node, op, x, mask, count, y, err);
    return reduce_int(node, op, x, mask, y, err);
}

/* ---- ArgMax / ArgMin ---- */

static kiln_status run_arg(const kiln_node *node, const void *params, const kiln_value *const *in,
                           kiln_value *out, kiln_err *err)
{
    const kiln_reduce_params *p = params;
    bool is_max = p->op == KILN_REDUCE_ARGMAX;
    const kiln_value *x = in[0];
    kiln_value *y = &out[0];
    kiln_status s = check_in(node, x, y, err);
    if (s) return s;
    int r = x->shape.rank;
    int64_t axis = p->axis;
    if (axis < 0) axis += r;
    if (axis < 0 || axis >= r || y->dtype != KILN_DT_INT64)
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): axis out of range", node->name, node->op_type);
    bool last = p->select_last_index;
    if (kiln__value_numel(x) == 0) return KILN_OK; /* infer() refused an empty axis: nothing to write */
    int64_t outer = 1, n = x->shape.d[axis].add, inner = 1;
    for (int i = 0; i < r; i++) {
        if (i < axis) outer *= x->shape.d[i].add;
        else if (i > axis) inner *= x->shape.d[i].add;
    }
    if (n <= 0 || kiln__value_numel(y) != outer * inner)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): the reduced axis is empty", node->name, node->op_type);
    int64_t *py = y->data;
    bool fl = kiln__dtype_is_float(x->dtype), uns = is_unsigned_dt(x->dtype);
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * n * inner + i, best = 0;
            if (fl) {
                /* NaN wins, as in numpy; ties go to the first or last index as asked. */
                double b = kiln__cpu_load_f64(x, base);
                for (int64_t j = 1; j < n; j++) {
                    double v = kiln__cpu_load_f64(x, base + j * inner);
                    bool better = isnan(b) ? (last && isnan(v))
                                           : isnan(v) || (is_max ? v > b : v < b) || (last && v == b);
                    if (better) {
                        b = v;
                        best = j;
                    }
                }
            } else {
                uint64_t b = get_bits(x, base);
                for (int64_t j = 1; j < n; j++) {
                    uint64_t v = get_bits(x, base + j * inner);
                    bool gt = uns ? v > b : (int64_t)v > (int64_t)b, lt = uns ? v < b : (int64_t)v < (int64_t)b;
                    if ((is_max ? gt : lt) || (last && v == b)) {
                        b = v;
                        best = j;
                    }
                }
            }
            py[o * inner + i] = best;
        }
    }
    return KILN_OK;
}

const kiln_cpu_kernel kiln__cpu_reduce[] = {
    /* The parsed params say which reduction. */
    {"ReduceSum", "", run_reduce},
    {"ReduceMean", "", run_reduce},
    {"ReduceMax", "", run_reduce},
    {"ReduceMin", "", run_reduce},
    {"ReduceProd", "", run_reduce},
    {"ReduceL1", "", run_reduce},
    {"ReduceL2", "", run_reduce},
    {"ReduceLogSum", "", run_reduce},
    {"ReduceLogSumExp", "", run_reduce},
    {"ReduceSumSquare", "", run_reduce},
    {"ArgMax", "", run_arg},
    {"ArgMin", "", run_arg},
    {0},
};
