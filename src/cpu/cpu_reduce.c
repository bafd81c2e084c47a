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
#include "cpu.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum red_op {
    R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_L1, R_L2, R_LOGSUM, R_LOGSUMEXP, R_SUMSQ
} red_op;

/* Opset from which the op takes axes as an input (mirrors the schema table). */
static int axes_input_since(const char *op) { return !strcmp(op, "ReduceSum") ? 13 : 18; }

static bool is_float_dt(kiln_dtype dt)
{
    return dt == KILN_DT_FLOAT || dt == KILN_DT_FLOAT16 || dt == KILN_DT_BFLOAT16 || dt == KILN_DT_DOUBLE;
}

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

/* The reduced axes; the schema's infer() validated them (range, duplicates). */
static kiln_status reduced_axes(const kiln_node *node, const kiln_value *const *in, int r, bool mask[KILN_MAX_DIMS],
                                kiln_err *err)
{
    memset(mask, 0, sizeof(bool) * KILN_MAX_DIMS);
    int since = axes_input_since(node->op_type);
    int64_t n = 0;
    const int64_t *attr_axes = NULL;
    const kiln_value *ax = NULL;
    if (node->opset < since) {
        n = kiln__attr_ints(node, "axes", &attr_axes);
        if (n < 0) n = 0;
    } else if (node->n_in > 1 && in[1]) {
        ax = in[1];
        n = kiln__value_numel(ax);
        if (!ax->data || ax->nbytes < (size_t)n * kiln_dtype_size(ax->dtype))
            return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): axes has no data", node->name, node->op_type);
    }
    if (n == 0) {
        bool noop = node->opset >= since && kiln__attr_int(node, "noop_with_empty_axes", 0);
        for (int i = 0; i < r; i++) mask[i] = !noop;
        return KILN_OK;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t a = attr_axes ? attr_axes[i] : kiln__value_get_i64(ax, i);
        if (a < 0) a += r;
        if (a < 0 || a >= r)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): axis out of range", node->name, node->op_type);
        mask[a] = true;
    }
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

static double load_f(const kiln_value *x, int64_t i)
{
    if (x->dtype == KILN_DT_FLOAT) return ((const float *)x->data)[i];
    return kiln__value_get_f64(x, i);
}

/* Floating-point path, also used for integer Mean/L2/LogSum/LogSumExp. */
static kiln_status reduce_double(const kiln_node *node, red_op op, const kiln_value *x, const bool *mask,
                                 int64_t count, kiln_value *y, kiln_err *err)
{
    int64_t n = kiln__value_numel(x), on = kiln__value_numel(y);
    double *acc = kiln__malloc((size_t)on * sizeof *acc);
    double *mx = op == R_LOGSUMEXP ? kiln__malloc((size_t)on * sizeof *mx) : NULL;
    if (!acc || (op == R_LOGSUMEXP && !mx)) {
        free(acc);
        free(mx);
        return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s' (%s): out of memory", node->name, node->op_type);
    }
    double init = op == R_MAX ? -INFINITY : op == R_MIN ? INFINITY : op == R_PROD ? 1.0 : 0.0;
    for (int64_t o = 0; o < on; o++) acc[o] = init;
    out_iter it;
    if (n == 0) goto finish;
    if (op == R_LOGSUMEXP) {
        /* First pass: the max of each cell, so exp() cannot overflow. */
        for (int64_t o = 0; o < on; o++) mx[o] = -INFINITY;
        iter_init(&it, &x->shape, mask);
        for (int64_t i = 0; i < n; i++, iter_next(&it)) {
            double v = load_f(x, i);
            if (v > mx[it.o] || isnan(v)) mx[it.o] = isnan(mx[it.o]) ? mx[it.o] : v;
        }
    }
    iter_init(&it, &x->shape, mask);
    for (int64_t i = 0; i < n; i++, iter_next(&it)) {
        double v = load_f(x, i), *a = &acc[it.o];
        switch (op) {
        case R_SUM: case R_MEAN: case R_LOGSUM: *a += v; break;
        case R_MAX: if (!isnan(*a) && (isnan(v) || v > *a)) *a = v; break;
        case R_MIN: if (!isnan(*a) && (isnan(v) || v < *a)) *a = v; break;
        case R_PROD: *a *= v; break;
        case R_L1: *a += fabs(v); break;
        case R_L2: case R_SUMSQ: *a += v * v; break;
        case R_LOGSUMEXP: {
            double m = mx[it.o];
            *a += exp(v - (isfinite(m) ? m : 0.0));
            break;
        }
        }
    }
finish:
    for (int64_t o = 0; o < on; o++) {
        double v = acc[o];
        switch (op) {
        case R_MEAN: v = v / (double)count; break;
        case R_L2: v = sqrt(v); break;
        case R_LOGSUM: v = log(v); break;
        case R_LOGSUMEXP: v = isfinite(mx[o]) ? log(v) + mx[o] : mx[o]; break;
        default: break;
        }
        if (y->dtype == KILN_DT_FLOAT) ((float *)y->data)[o] = (float)v;
        else kiln__value_set_f64(y, o, v);
    }
    free(acc);
    free(mx);
    return KILN_OK;
}

/* Exact integer path for Sum/Prod/Max/Min/L1/SumSquare (and bool Max/Min). */
static kiln_status reduce_int(const kiln_node *node, red_op op, const kiln_value *x, const bool *mask, kiln_value *y,
                              kiln_err *err)
{
    int64_t n = kiln__value_numel(x), on = kiln__value_numel(y);
    bool uns = is_unsigned_dt(x->dtype);
    int64_t lo;
    uint64_t hi;
    int_limits(x->dtype, &lo, &hi);
    uint64_t *acc = kiln__malloc((size_t)on * sizeof *acc);
    if (!acc) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s' (%s): out of memory", node->name, node->op_type);
    uint64_t init = op == R_MAX ? (uint64_t)lo : op == R_MIN ? hi : op == R_PROD ? 1 : 0;
    for (int64_t o = 0; o < on; o++) acc[o] = init;
    out_iter it;
    if (n > 0) iter_init(&it, &x->shape, mask);
    for (int64_t i = 0; i < n; i++, iter_next(&it)) {
        uint64_t v = get_bits(x, i), *a = &acc[it.o];
        /* Unsigned arithmetic wraps modulo 2^64, which is two's complement for the signed types too. */
        switch (op) {
        case R_SUM: *a += v; break;
        case R_PROD: *a *= v; break;
        case R_SUMSQ: *a += v * v; break;
        case R_L1: *a += (!uns && (int64_t)v < 0) ? (uint64_t)0 - v : v; break;
        case R_MAX: if (uns ? v > *a : (int64_t)v > (int64_t)*a) *a = v; break;
        case R_MIN: if (uns ? v < *a : (int64_t)v < (int64_t)*a) *a = v; break;
        default: break;
        }
    }
    for (int64_t o = 0; o < on; o++) kiln__value_set_i64(y, o, (int64_t)acc[o]);
    free(acc);
    return KILN_OK;
}

static kiln_status run_reduce(const kiln_node *node, red_op op, const kiln_value *const *in, kiln_value *out,
                              kiln_err *err)
{
    const kiln_value *x = in[0];
    kiln_value *y = &out[0];
    kiln_status s = check_in(node, x, y, err);
    if (s) return s;
    if (x->dtype != y->dtype)
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): output type differs from input", node->name,
                          node->op_type);
    bool mask[KILN_MAX_DIMS];
    int r = x->shape.rank;
    if ((s = reduced_axes(node, in, r, mask, err))) return s;
    /* Products checked: an empty input may have other dims whose product overflows. */
    int64_t count = 1, expect = 1;
    bool ovf = false;
    for (int i = 0; i < r; i++)
        ovf |= __builtin_mul_overflow(mask[i] ? count : expect, x->shape.d[i].add, mask[i] ? &count : &expect);
    if (ovf || expect != kiln__value_numel(y))
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): output size does not match the axes", node->name,
                          node->op_type);
    if (is_float_dt(x->dtype) || op == R_MEAN || op == R_L2 || op == R_LOGSUM || op == R_LOGSUMEXP)
        return reduce_double(node, op, x, mask, count, y, err);
    return reduce_int(node, op, x, mask, y, err);
}

#define REDUCE_KERNEL(fn, op)                                                                      \
    static kiln_status fn(const kiln_node *node, const void *params, const kiln_value *const *in, \
                          kiln_value *out, kiln_err *err)                                          \
    {                                                                                              \
        return run_reduce(node, op, in, out, err);                                                 \
    }

REDUCE_KERNEL(run_sum, R_SUM)
REDUCE_KERNEL(run_mean, R_MEAN)
REDUCE_KERNEL(run_max, R_MAX)
REDUCE_KERNEL(run_min, R_MIN)
REDUCE_KERNEL(run_prod, R_PROD)
REDUCE_KERNEL(run_l1, R_L1)
REDUCE_KERNEL(run_l2, R_L2)
REDUCE_KERNEL(run_log_sum, R_LOGSUM)
REDUCE_KERNEL(run_log_sum_exp, R_LOGSUMEXP)
REDUCE_KERNEL(run_sum_square, R_SUMSQ)

/* ---- ArgMax / ArgMin ---- */

static kiln_status run_arg(const kiln_node *node, bool is_max, const kiln_value *const *in, kiln_value *out,
                           kiln_err *err)
{
    const kiln_value *x = in[0];
    kiln_value *y = &out[0];
    kiln_status s = check_in(node, x, y, err);
    if (s) return s;
    int r = x->shape.rank;
    int64_t axis = kiln__attr_int(node, "axis", 0);
    if (axis < 0) axis += r;
    if (axis < 0 || axis >= r || y->dtype != KILN_DT_INT64)
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): axis out of range", node->name, node->op_type);
    bool last = kiln__attr_int(node, "select_last_index", 0) != 0;
    if (kiln__value_numel(x) == 0) return KILN_OK; /* infer() refused an empty axis: nothing to write */
    int64_t outer = 1, n = x->shape.d[axis].add, inner = 1;
    for (int i = 0; i < r; i++) {
        if (i < axis) outer *= x->shape.d[i].add;
        else if (i > axis) inner *= x->shape.d[i].add;
    }
    if (n <= 0 || kiln__value_numel(y) != outer * inner)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): the reduced axis is empty", node->name, node->op_type);
    int64_t *py = y->data;
    bool fl = is_float_dt(x->dtype), uns = is_unsigned_dt(x->dtype);
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * n * inner + i, best = 0;
            if (fl) {
                /* NaN wins, as in numpy; ties go to the first or last index as asked. */
                double b = load_f(x, base);
                for (int64_t j = 1; j < n; j++) {
                    double v = load_f(x, base + j * inner);
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

static kiln_status run_argmax(const kiln_node *node, const void *params, const kiln_value *const *in,
                              kiln_value *out, kiln_err *err)
{
    return run_arg(node, true, in, out, err);
}

static kiln_status run_argmin(const kiln_node *node, const void *params, const kiln_value *const *in,
                              kiln_value *out, kiln_err *err)
{
    return run_arg(node, false, in, out, err);
}

const kiln_cpu_kernel kiln__cpu_reduce[] = {
    {"ReduceSum", "", run_sum},
    {"ReduceMean", "", run_mean},
    {"ReduceMax", "", run_max},
    {"ReduceMin", "", run_min},
    {"ReduceProd", "", run_prod},
    {"ReduceL1", "", run_l1},
    {"ReduceL2", "", run_l2},
    {"ReduceLogSum", "", run_log_sum},
    {"ReduceLogSumExp", "", run_log_sum_exp},
    {"ReduceSumSquare", "", run_sum_square},
    {"ArgMax", "", run_argmax},
    {"ArgMin", "", run_argmin},
    {0},
};
