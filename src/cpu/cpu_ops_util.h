/*
 * Helpers shared by the CPU kernel families (src/cpu/cpu_*.c): element
 * sizes, strided copies that move elements by their byte size (so one code
 * path serves every dtype), and element loads/stores through double.
 */
#ifndef KILN_CPU_OPS_UTIL_H
#define KILN_CPU_OPS_UTIL_H

#include "cpu.h"
#include <string.h>

/* Most axes a strided view may have: a tensor's dims, each split in two (Tile). */
#define KILN_CPU_MAX_VIEW (2 * KILN_MAX_DIMS)

/* Copies one element of es bytes; constant sizes let the compiler use plain moves. */
static inline void kiln__cpu_copy_elem(char *dst, const char *src, size_t es)
{
    switch (es) {
    case 1: *dst = *src; break;
    case 2: memcpy(dst, src, 2); break;
    case 4: memcpy(dst, src, 4); break;
    case 8: memcpy(dst, src, 8); break;
    default: memcpy(dst, src, es); break;
    }
}

/* Element size of dt into *es; fails (naming the node) for types the CPU cannot move. */
kiln_status kiln__cpu_elem_size(const kiln_node *node, kiln_dtype dt, size_t *es, kiln_err *err);

/*
 * Fills contiguous dst of shape dims[rank] (rank <= KILN_CPU_MAX_VIEW) from
 * src + base (element offsets) walked with strides sstr (elements; negative
 * or 0 allowed), es bytes per element.
 */
void kiln__cpu_strided_copy(char *dst, const char *src, int64_t base, int rank, const int64_t *dims,
                            const int64_t *sstr, size_t es);

/* A float16/bfloat16 value's elements as a new float buffer (the caller frees); NULL when out of memory. */
float *kiln__cpu_half_to_f32(const kiln_value *v);
/* Stores float buffer `buf` into a float16/bfloat16 value, one element per element of v. */
void kiln__cpu_f32_to_half(kiln_value *v, const float *buf);

/* Element i of a float-typed value as double, with a direct path for float32. */
static inline double kiln__cpu_load_f64(const kiln_value *v, int64_t i)
{
    if (v->dtype == KILN_DT_FLOAT) return ((const float *)v->data)[i];
    return kiln__value_get_f64(v, i);
}

/* Stores x as element i of a float-typed value, with a direct path for float32. */
static inline void kiln__cpu_store_f64(kiln_value *v, int64_t i, double x)
{
    if (v->dtype == KILN_DT_FLOAT) ((float *)v->data)[i] = (float)x;
    else kiln__value_set_f64(v, i, x);
}

#endif
