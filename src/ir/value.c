/* Element access for any dtype, and host tensor helpers. */
#include "ir.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int64_t kiln__value_numel(const kiln_value *v)
{
    int64_t n = kiln__shape_numel(&v->shape);
    return n < 0 ? 0 : n;
}

void kiln__value_set_type(kiln_value *out, kiln_dtype dt, const kiln_shape *s)
{
    out->dtype = dt;
    out->shape = *s;
}

double kiln__value_get_f64(const kiln_value *v, int64_t i)
{
    const void *p = v->data;
    switch (v->dtype) {
    case KILN_DT_FLOAT: return ((const float *)p)[i];
    case KILN_DT_DOUBLE: return ((const double *)p)[i];
    case KILN_DT_FLOAT16: return kiln__f16_to_f32(((const uint16_t *)p)[i]);
    case KILN_DT_BFLOAT16: return kiln__bf16_to_f32(((const uint16_t *)p)[i]);
    case KILN_DT_UINT8: return ((const uint8_t *)p)[i];
    case KILN_DT_INT8: return ((const int8_t *)p)[i];
    case KILN_DT_UINT16: return ((const uint16_t *)p)[i];
    case KILN_DT_INT16: return ((const int16_t *)p)[i];
    case KILN_DT_INT32: return ((const int32_t *)p)[i];
    case KILN_DT_INT64: return (double)((const int64_t *)p)[i];
    case KILN_DT_UINT32: return ((const uint32_t *)p)[i];
    case KILN_DT_UINT64: return (double)((const uint64_t *)p)[i];
    case KILN_DT_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return 0;
    }
}

static int64_t f64_to_i64(double x)
{
    /* Casting NaN or out-of-range floats to integers is undefined in C: clamp. */
    if (isnan(x)) return 0;
    if (x >= 9.2233720368547758e18) return INT64_MAX;
    if (x <= -9.2233720368547758e18) return INT64_MIN;
    return (int64_t)x;
}

int64_t kiln__value_get_i64(const kiln_value *v, int64_t i)
{
    const void *p = v->data;
    switch (v->dtype) {
    case KILN_DT_INT64: return ((const int64_t *)p)[i];
    case KILN_DT_INT32: return ((const int32_t *)p)[i];
    case KILN_DT_UINT64: return (int64_t)((const uint64_t *)p)[i];
    case KILN_DT_UINT32: return ((const uint32_t *)p)[i];
    case KILN_DT_INT16: return ((const int16_t *)p)[i];
    case KILN_DT_UINT16: return ((const uint16_t *)p)[i];
    case KILN_DT_INT8: return ((const int8_t *)p)[i];
    case KILN_DT_UINT8: return ((const uint8_t *)p)[i];
    case KILN_DT_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return f64_to_i64(kiln__value_get_f64(v, i));
    }
}

void kiln__value_set_f64(kiln_value *v, int64_t i, double x)
{
    void *p = v->data;
    switch (v->dtype) {
    case KILN_DT_FLOAT: ((float *)p)[i] = (float)x; break;
    case KILN_DT_DOUBLE: ((double *)p)[i] = x; break;
    case KILN_DT_FLOAT16: ((uint16_t *)p)[i] = kiln__f32_to_f16((float)x); break;
    case KILN_DT_BFLOAT16: ((uint16_t *)p)[i] = kiln__f32_to_bf16((float)x); break;
    case KILN_DT_BOOL: ((uint8_t *)p)[i] = x != 0; break;
    default: kiln__value_set_i64(v, i, f64_to_i64(x)); break;
    }
}

void kiln__value_set_i64(kiln_value *v, int64_t i, int64_t x)
{
    void *p = v->data;
    switch (v->dtype) {
    case KILN_DT_INT64: ((int64_t *)p)[i] = x; break;
    case KILN_DT_INT32: ((int32_t *)p)[i] = (int32_t)x; break;
    case KILN_DT_UINT64: ((uint64_t *)p)[i] = (uint64_t)x; break;
    case KILN_DT_UINT32: ((uint32_t *)p)[i] = (uint32_t)x; break;
    case KILN_DT_INT16: ((int16_t *)p)[i] = (int16_t)x; break;
    case KILN_DT_UINT16: ((uint16_t *)p)[i] = (uint16_t)x; break;
    case KILN_DT_INT8: ((int8_t *)p)[i] = (int8_t)x; break;
    case KILN_DT_UINT8: ((uint8_t *)p)[i] = (uint8_t)x; break;
    case KILN_DT_BOOL: ((uint8_t *)p)[i] = x != 0; break;
    default: kiln__value_set_f64(v, i, (double)x); break;
    }
}

void kiln_host_tensor_release(kiln_host_tensor *t)
{
    if (!t) return;
    free(t->data);
    memset(t, 0, sizeof *t);
}

/* Exact, with no signed overflow: 0 when any dim is 0 (whatever the others), -1 for a NULL
 * tensor, a bad rank, a negative dim, or a product past INT64_MAX (the readers refuse those). */
int64_t kiln_host_tensor_numel(const kiln_host_tensor *t)
{
    if (!t || t->rank < 0 || t->rank > KILN_MAX_DIMS) return -1;
    int64_t n = 1;
    bool overflow = false;
    for (int i = 0; i < t->rank; i++) {
        int64_t d = t->dims[i];
        if (d < 0) return -1;
        if (d == 0) return 0;
        if (overflow || n > INT64_MAX / d) overflow = true;
        else n *= d;
    }
    return overflow ? -1 : n;
}
