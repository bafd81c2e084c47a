/*
 * CPU reference kernels of the activation family.
 *
 * Pointwise activations are written once per formula and instantiated for
 * float and double through <tgmath.h>, so float32/float16/bfloat16 compute in
 * float and double in double. Integer inputs (Relu, PRelu, Clip, Shrink) are
 * computed exactly in their own type. Softmax, LogSoftmax and Hardmax work on
 * rows along an axis, accumulating in double.
 *
 * Settings come from the parsed kiln_act_params (defaults and opset rules
 * applied by the schema); infer() checked dtypes and shapes before any kernel
 * runs.
 */
#include "cpu.h"
#include "../ir/ops_activation.h"
#include "../ir/ops_util.h"
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

static kiln_status check_io(const kiln_node *node, const kiln_value *x, const kiln_value *y, kiln_err *err)
{
    if (!x || !y || !y->data || x->dtype != y->dtype)
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): input/output mismatch", node->name, node->op_type);
    int64_t n = kiln__value_numel(x);
    size_t es = kiln_dtype_size(x->dtype);
    if (es == 0 || kiln__value_numel(y) != n || x->nbytes < (size_t)n * es || y->nbytes < (size_t)n * es)
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): buffer sizes do not match shapes", node->name,
                          node->op_type);
    return KILN_OK;
}

/* ---- pointwise formulas, each instantiated for float and double ---- */

#define ACT(name, body)                                                    \
    static float name##_f(float x, const kiln_act_params *a)                     \
    {                                                                      \
        typedef float T;                                                   \
        (void)sizeof(T);                                                   \
        body                                                               \
    }                                                                      \
    static double name##_d(double x, const kiln_act_params *a)                   \
    {                                                                      \
        typedef double T;                                                  \
        (void)sizeof(T);                                                   \
        body                                                               \
    }

ACT(relu, (void)a; return x > 0 ? x : (T)0;)
ACT(leaky_relu, return x >= 0 ? x : (T)a->alpha * x;)
ACT(sigmoid, (void)a;
    /* Both branches keep exp()'s argument <= 0, so nothing overflows. */
    if (x >= 0) return (T)1 / ((T)1 + exp(-x));
    T e = exp(x);
    return e / ((T)1 + e);)
ACT(tanh_act, (void)a; return tanh(x);)
ACT(elu, return x >= 0 ? x : (T)a->alpha * expm1(x);)
ACT(selu, return x > 0 ? (T)a->gamma * x : (T)a->gamma * ((T)a->alpha * exp(x) - (T)a->alpha);)
ACT(celu, T al = (T)a->alpha; T v = al * expm1(x / al); return (x > 0 ? x : (T)0) + (v < 0 ? v : (T)0);)
ACT(hard_sigmoid, T v = (T)a->alpha * x + (T)a->beta; return v < 0 ? (T)0 : v > 1 ? (T)1 : v;)
ACT(hard_swish, (void)a; T v = x / (T)6 + (T)0.5; return x * (v < 0 ? (T)0 : v > 1 ? (T)1 : v);)
ACT(softplus, (void)a;
    /* log(1 + e^x) without overflow for large x. */
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));)
ACT(softsign, (void)a; return x / ((T)1 + fabs(x));)
ACT(gelu, if (a->gelu_tanh) {
    const T k = (T)0.79788456080286535587989211986876; /* sqrt(2/pi) */
    return (T)0.5 * x * ((T)1 + tanh(k * (x + (T)0.044715 * x * x * x)));
} return (T)0.5 * x * ((T)1 + erf(x * (T)0.70710678118654752440084436210485));)
ACT(mish, (void)a; T sp = x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); return x * tanh(sp);)
ACT(thresholded_relu, return x > (T)a->alpha ? x : (T)0;)
ACT(shrink, if (x < -(T)a->lambd) return x + (T)a->bias;
    if (x > (T)a->lambd) return x - (T)a->bias;
    return (T)0;)

typedef float (*fn_f)(float, const kiln_act_params *);
typedef double (*fn_d)(double, const kiln_act_params *);

/* Applies f to every element of a floating-point tensor. */
static void map_float(const kiln_value *x, kiln_value *y, fn_f f, fn_d d, const kiln_act_params *a)
{
    int64_t n = kiln__value_numel(x);
    switch (x->dtype) {
    case KILN_DT_FLOAT: {
        const float *px = x->data;
        float *py = y->data;
        for (int64_t i = 0; i < n; i++) py[i] = f(px[i], a);
        break;
    }
    case KILN_DT_DOUBLE: {
        const double *px = x->data;
        double *py = y->data;
        for (int64_t i = 0; i < n; i++) py[i] = d(px[i], a);
        break;
    }
    case KILN_DT_FLOAT16: {
        const uint16_t *px = x->data;
        uint16_t *py = y->data;
        for (int64_t i = 0; i < n; i++) py[i] = kiln__f32_to_f16(f(kiln__f16_to_f32(px[i]), a));
        break;
    }
    case KILN_DT_BFLOAT16: {
        const uint16_t *px = x->data;
        uint16_t *py = y->data;
        for (int64_t i = 0; i < n; i++) py[i] = kiln__f32_to_bf16(f(kiln__bf16_to_f32(px[i]), a));
        break;
    }
    default: break;
    }
}

static kiln_status run_pointwise(const kiln_node *node, const kiln_act_params *a, const kiln_value *const *in,
                                 kiln_value *out, fn_f f, fn_d d, kiln_err *err)
{
    kiln_status s = check_io(node, in[0], &out[0], err);
    if (s) return s;
    if (!kiln__dtype_is_float(in[0]->dtype))
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): input type %s is not supported", node->name,
                          node->op_type, kiln_dtype_name(in[0]->dtype));
    map_float(in[0], &out[0], f, d, a);
    return KILN_OK;
}

#define POINTWISE_KERNEL(kname, fname)                                                                 \
    static kiln_status kname(const kiln_node *node, const void *params, const kiln_value *const *in,   \
                             kiln_value *out, kiln_err *err)                                           \
    {                                                                                                  \
        return run_pointwise(node, params, in, out, fname##_f, fname##_d, err);                        \
    }

POINTWISE_KERNEL(run_leaky_relu, leaky_relu)
POINTWISE_KERNEL(run_sigmoid, sigmoid)
POINTWISE_KERNEL(run_tanh, tanh_act)
POINTWISE_KERNEL(run_elu, elu)
POINTWISE_KERNEL(run_selu, selu)
POINTWISE_KERNEL(run_celu, celu)
POINTWISE_KERNEL(run_hard_sigmoid, hard_sigmoid)
POINTWISE_KERNEL(run_hard_swish, hard_swish)
POINTWISE_KERNEL(run_softplus, softplus)
POINTWISE_KERNEL(run_softsign, softsign)
POINTWISE_KERNEL(run_gelu, gelu)
POINTWISE_KERNEL(run_mish, mish)
POINTWISE_KERNEL(run_thresholded_relu, thresholded_relu)

/* ---- integer helpers: exact per-dtype loops ---- */

/* Signed integer storage types, as int64 for computation. */
static bool int_class(kiln_dtype dt, bool *is_signed)
{
    switch (dt) {
    case KILN_DT_INT8: case KILN_DT_INT16: case KILN_DT_INT32: case KILN_DT_INT64: *is_signed = true; return true;
    case KILN_DT_UINT8: case KILN_DT_UINT16: case KILN_DT_UINT32: case KILN_DT_UINT64: *is_signed = false; return true;
    default: return false;
    }
}

static uint64_t get_u64(const kiln_value *v, int64_t i)
{
    if (v->dtype == KILN_DT_UINT64) return ((const uint64_t *)v->data)[i];
    return (uint64_t)kiln__value_get_i64(v, i);
}

static kiln_status run_relu(const kiln_node *node, const void *params, const kiln_value *const *in, kiln_value *out,
                            kiln_err *err)
{
    kiln_status s = check_io(node, in[0], &out[0], err);
    if (s) return s;
    bool sg;
    if (int_class(in[0]->dtype, &sg)) {
        int64_t n = kiln__value_numel(in[0]);
        for (int64_t i = 0; i < n; i++) {
            int64_t v = kiln__value_get_i64(in[0], i);
            kiln__value_set_i64(&out[0], i, (sg && v < 0) ? 0 : v);
        }
        return KILN_OK;
    }
    return run_pointwise(node, params, in, out, relu_f, relu_d, err);
}

static kiln_status run_shrink(const kiln_node *node, const void *params, const kiln_value *const *in,
                              kiln_value *out, kiln_err *err)
{
    kiln_status s = check_io(node, in[0], &out[0], err);
    if (s) return s;
    const kiln_act_params *a = params;
    bool sg;
    if (int_class(in[0]->dtype, &sg)) {
        /* Integer Shrink: compare and shift in double, store back with the dtype's truncation. */
        int64_t n = kiln__value_numel(in[0]);
        for (int64_t i = 0; i < n; i++) {
            double v = sg ? (double)kiln__value_get_i64(in[0], i) : (double)get_u64(in[0], i);
            double r = shrink_d(v, a);
            if (sg || r >= 0) kiln__value_set_f64(&out[0], i, r);
            else kiln__value_set_i64(&out[0], i, (int64_t)r); /* wraps like numpy's cast */
        }
        return KILN_OK;
    }
    return run_pointwise(node, a, in, out, shrink_f, shrink_d, err);
}

/* ---- Clip ---- */

#define CLIP_INT(ctype, lo_def, hi_def)                                                         \
    do {                                                                                        \
        const ctype *px = in[0]->data;                                                          \
        ctype *py = out[0].data;                                                                \
        ctype lo = (in_lo && in_lo->data) ? *(const ctype *)in_lo->data : (lo_def);             \
        ctype hi = (in_hi && in_hi->data) ? *(const ctype *)in_hi->data : (hi_def);             \
        for (int64_t i = 0; i < n; i++) {                                                       \
            ctype v = px[i];                                                                    \
            if (v < lo) v = lo;                                                                 \
            if (v > hi) v = hi;                                                                 \
            py[i] = v;                                                                          \
        }                                                                                       \
    } while (0)

static kiln_status run_clip(const kiln_node *node, const void *params, const kiln_value *const *in, kiln_value *out,
                            kiln_err *err)
{
    kiln_status s = check_io(node, in[0], &out[0], err);
    if (s) return s;
    const kiln_value *in_lo = node->n_in > 1 ? in[1] : NULL, *in_hi = node->n_in > 2 ? in[2] : NULL;
    for (int i = 1; i < node->n_in && i < 3; i++)
        if (in[i] && (in[i]->dtype != in[0]->dtype || kiln__value_numel(in[i]) != 1 || !in[i]->data ||
                      in[i]->nbytes < kiln_dtype_size(in[i]->dtype)))
            return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (Clip): bound %d is not a scalar of the input's type",
                              node->name, i);
    int64_t n = kiln__value_numel(in[0]);
    switch (in[0]->dtype) {
    case KILN_DT_INT8: CLIP_INT(int8_t, INT8_MIN, INT8_MAX); return KILN_OK;
    case KILN_DT_INT16: CLIP_INT(int16_t, INT16_MIN, INT16_MAX); return KILN_OK;
    case KILN_DT_INT32: CLIP_INT(int32_t, INT32_MIN, INT32_MAX); return KILN_OK;
    case KILN_DT_INT64: CLIP_INT(int64_t, INT64_MIN, INT64_MAX); return KILN_OK;
    case KILN_DT_UINT8: CLIP_INT(uint8_t, 0, UINT8_MAX); return KILN_OK;
    case KILN_DT_UINT16: CLIP_INT(uint16_t, 0, UINT16_MAX); return KILN_OK;
    case KILN_DT_UINT32: CLIP_INT(uint32_t, 0, UINT32_MAX); return KILN_OK;
    case KILN_DT_UINT64: CLIP_INT(uint64_t, 0, UINT64_MAX); return KILN_OK;
    default: break;
    }
    if (!kiln__dtype_is_float(in[0]->dtype))
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (Clip): input type %s is not supported", node->name,
                          kiln_dtype_name(in[0]->dtype));
    /* Before opset 11 the bounds are attributes, with the float range as default. */
    const kiln_act_params *p = params;
    double lo = -INFINITY, hi = INFINITY;
    if (p->clip_attrs) {
        lo = p->clip_min;
        hi = p->clip_max;
    } else {
        if (in_lo) lo = kiln__value_get_f64(in_lo, 0);
        if (in_hi) hi = kiln__value_get_f64(in_hi, 0);
    }
    if (in[0]->dtype == KILN_DT_FLOAT) {
        const float *px = in[0]->data;
        float *py = out[0].data;
        float flo = (float)lo, fhi = (float)hi;
        for (int64_t i = 0; i < n; i++) {
            float v = px[i];
            /* Comparisons rather than fmin/fmax so that NaN passes through. */
            if (v < flo) v = flo;
            if (v > fhi) v = fhi;
            py[i] = v;
        }
        return KILN_OK;
    }
    for (int64_t i = 0; i < n; i++) {
        double v = kiln__value_get_f64(in[0], i);
        if (v < lo) v = lo;
        if (v > hi) v = hi;
        kiln__value_set_f64(&out[0], i, v);
    }
    return KILN_OK;
}

/* ---- PRelu: slope broadcast unidirectionally to X ---- */

static kiln_status run_prelu(const kiln_node *node, const void *params, const kiln_value *const *in,
                             kiln_value *out, kiln_err *err)
{
    kiln_status s = check_io(node, in[0], &out[0], err);
    if (s) return s;
    const kiln_value *x = in[0], *sl = in[1];
    int r = x->shape.rank;
    if (!sl || sl->dtype != x->dtype || sl->shape.rank > r || sl->shape.rank < 0 ||
        sl->nbytes < (size_t)kiln__value_numel(sl) * kiln_dtype_size(sl->dtype))
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (PRelu): bad slope", node->name);
    /* Slope dims aligned to X's: trailing, or along axis 1 for the pre-opset-7 per-channel form. */
    int64_t sdim[KILN_MAX_DIMS];
    for (int i = 0; i < r; i++) sdim[i] = 1;
    if (kiln__prelu_slope_on_channels(params, &x->shape, &sl->shape)) {
        sdim[1] = sl->shape.d[0].add;
    } else {
        int off = r - sl->shape.rank;
        for (int i = 0; i < sl->shape.rank; i++) sdim[off + i] = sl->shape.d[i].add;
    }
    /* Strides into the slope: 0 along broadcast dims. */
    int64_t sstride[KILN_MAX_DIMS], st = 1;
    for (int i = r - 1; i >= 0; i--) {
        int64_t xd = x->shape.d[i].add;
        if (sdim[i] != 1 && sdim[i] != xd)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (PRelu): slope does not broadcast to X", node->name);
        sstride[i] = sdim[i] == 1 ? 0 : st;
        st *= sdim[i];
    }
    int64_t n = kiln__value_numel(x);
    if (n == 0) return KILN_OK;
    int64_t inner = r > 0 ? x->shape.d[r - 1].add : 1, istride = r > 0 ? sstride[r - 1] : 0;
    int64_t idx[KILN_MAX_DIMS] = {0};
    int64_t soff = 0;
    bool sg;
    bool is_int = int_class(x->dtype, &sg);
    for (int64_t base = 0; base < n; base += inner) {
        if (x->dtype == KILN_DT_FLOAT) {
            const float *px = (const float *)x->data + base, *ps = (const float *)sl->data + soff;
            float *py = (float *)out[0].data + base;
            for (int64_t j = 0; j < inner; j++) {
                float v = px[j];
                py[j] = v < 0 ? v * ps[j * istride] : v;
            }
        } else if (is_int) {
            for (int64_t j = 0; j < inner; j++) {
                if (sg) {
                    int64_t v = kiln__value_get_i64(x, base + j);
                    int64_t k = kiln__value_get_i64(sl, soff + j * istride);
                    /* Multiply modulo 2^64 (no signed overflow), truncated on store. */
                    kiln__value_set_i64(&out[0], base + j, v < 0 ? (int64_t)((uint64_t)v * (uint64_t)k) : v);
                } else {
                    kiln__value_set_i64(&out[0], base + j, (int64_t)get_u64(x, base + j));
                }
            }
        } else {
            for (int64_t j = 0; j < inner; j++) {
                double v = kiln__value_get_f64(x, base + j);
                double k = kiln__value_get_f64(sl, soff + j * istride);
                kiln__value_set_f64(&out[0], base + j, v < 0 ? v * k : v);
            }
        }
        /* Advance the index over all dims but the last, keeping the slope offset in step. */
        for (int d = r - 2; d >= 0; d--) {
            idx[d]++;
            soff += sstride[d];
            if (idx[d] < x->shape.d[d].add) break;
            soff -= sstride[d] * idx[d];
            idx[d] = 0;
        }
    }
    return KILN_OK;
}

/* ---- Softmax, LogSoftmax, Hardmax along an axis ---- */

typedef enum row_op { ROW_SOFTMAX, ROW_LOGSOFTMAX, ROW_HARDMAX } row_op;

static kiln_status run_rows(const kiln_node *node, const kiln_act_params *p, const kiln_value *const *in,
                            kiln_value *out, row_op op, kiln_err *err)
{
    kiln_status s = check_io(node, in[0], &out[0], err);
    if (s) return s;
    const kiln_value *x = in[0];
    if (!kiln__dtype_is_float(x->dtype))
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): input type %s is not supported", node->name,
                          node->op_type, kiln_dtype_name(x->dtype));
    int r = x->shape.rank;
    int64_t axis = p->axis;
    if (axis < 0) axis += r;
    if (r == 0) axis = 0;
    if (axis < 0 || (r > 0 && axis >= r))
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): axis out of range", node->name, node->op_type);
    /*
     * Rows of n elements, `inner` apart. Before opset 13 the input is seen as
     * 2-D [prod(dims[:axis]), prod(dims[axis:])]; from 13 on only dims[axis]
     * is normalized.
     */
    if (kiln__value_numel(x) == 0) return KILN_OK; /* also keeps the products below from overflowing */
    int64_t outer = 1, n = 1, inner = 1;
    for (int i = 0; i < r; i++) {
        int64_t d = x->shape.d[i].add;
        if (i < axis) outer *= d;
        else if (i == axis || p->coerce_2d) n *= d;
        else inner *= d;
    }
    double *row = kiln__malloc((size_t)n * sizeof *row);
    if (!row) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s' (%s): out of memory", node->name, node->op_type);
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * n * inner + i;
            for (int64_t j = 0; j < n; j++) row[j] = kiln__value_get_f64(x, base + j * inner);
            int64_t amax = 0;
            double mx = row[0];
            for (int64_t j = 1; j < n; j++)
                if (row[j] > mx || (isnan(row[j]) && !isnan(mx))) {
                    mx = row[j];
                    amax = j;
                }
            if (op == ROW_HARDMAX) {
                for (int64_t j = 0; j < n; j++) row[j] = j == amax ? 1.0 : 0.0;
            } else if (isinf(mx) && mx > 0) {
                /* exp(inf - inf) would make every entry NaN; follow the x - max formula per entry. */
                for (int64_t j = 0; j < n; j++) row[j] = NAN;
            } else {
                /* A row of all -inf has no finite max: shifting by 0 keeps exp() at 0 and the result NaN like numpy. */
                double shift = isinf(mx) ? 0.0 : mx, sum = 0;
                for (int64_t j = 0; j < n; j++) sum += exp(row[j] - shift);
                if (op == ROW_SOFTMAX) {
                    for (int64_t j = 0; j < n; j++) row[j] = exp(row[j] - shift) / sum;
                } else {
                    double ls = log(sum);
                    for (int64_t j = 0; j < n; j++) row[j] = row[j] - shift - ls;
                }
            }
            for (int64_t j = 0; j < n; j++) kiln__value_set_f64(&out[0], base + j * inner, row[j]);
        }
    }
    free(row);
    return KILN_OK;
}

static kiln_status run_softmax(const kiln_node *node, const void *params, const kiln_value *const *in,
                               kiln_value *out, kiln_err *err)
{
    return run_rows(node, params, in, out, ROW_SOFTMAX, err);
}

static kiln_status run_log_softmax(const kiln_node *node, const void *params, const kiln_value *const *in,
                                   kiln_value *out, kiln_err *err)
{
    return run_rows(node, params, in, out, ROW_LOGSOFTMAX, err);
}

static kiln_status run_hardmax(const kiln_node *node, const void *params, const kiln_value *const *in,
                               kiln_value *out, kiln_err *err)
{
    return run_rows(node, params, in, out, ROW_HARDMAX, err);
}

const kiln_cpu_kernel kiln__cpu_activation[] = {
    {"Relu", "", run_relu},
    {"LeakyRelu", "", run_leaky_relu},
    {"PRelu", "", run_prelu},
    {"Sigmoid", "", run_sigmoid},
    {"Tanh", "", run_tanh},
    {"Clip", "", run_clip},
    {"Elu", "", run_elu},
    {"Selu", "", run_selu},
    {"Celu", "", run_celu},
    {"HardSigmoid", "", run_hard_sigmoid},
    {"HardSwish", "", run_hard_swish},
    {"Softplus", "", run_softplus},
    {"Softsign", "", run_softsign},
    {"Gelu", "", run_gelu},
    {"Mish", "", run_mish},
    {"ThresholdedRelu", "", run_thresholded_relu},
    {"Shrink", "", run_shrink},
    {"Softmax", "", run_softmax},
    {"LogSoftmax", "", run_log_softmax},
    {"Hardmax", "", run_hardmax},
    {0},
};
