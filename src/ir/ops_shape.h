/*
 * The shape family's parsed attributes and the rules its kernels share with
 * infer() (src/ir/ops_shape.c). Private to the schemas and the backends.
 */
#ifndef KILN_OPS_SHAPE_H
#define KILN_OPS_SHAPE_H

#include "ir.h"

/* Shape: which dims to report (opset 15 added start/end; both may be negative). */
typedef struct kiln_shape_op_params {
    int64_t start;    /* 'start', default 0 */
    int64_t end;      /* 'end'; only meaningful when has_end */
    bool has_end;     /* without 'end' the range runs to the rank */
} kiln_shape_op_params;

/* ConstantOfShape: the fill value. */
typedef struct kiln_constant_of_shape_params {
    kiln_dtype dtype;   /* of the output: the value's type, float32 without one */
    bool has_value;     /* false: fill with 0.0f */
    /* the fill, one element of dtype (every supported type fits); aligned because it is read
     * in place as that type (kiln__value_get_i64 on an int64 fill) */
    _Alignas(8) uint8_t value[8];
} kiln_constant_of_shape_params;

/* EyeLike: diagonal offset and output type. */
typedef struct kiln_eyelike_params {
    int64_t k;        /* 'k': 0 main diagonal, > 0 above, < 0 below */
    kiln_dtype dtype; /* 'dtype'; KILN_DT_UNDEFINED: the input's type */
} kiln_eyelike_params;

/* [start, end) of the dims Shape reports for an input of `rank`, clamped as opset 15 says. */
void kiln__shape_op_range(const kiln_shape_op_params *p, int rank, int *start, int *end);

/*
 * Element count of Range for concrete scalar start/limit/delta: -1 when delta
 * is zero or a bound is not finite, -2 when over KILN_OPS_MAX_NUMEL.
 */
int64_t kiln__range_count(const kiln_value *start, const kiln_value *limit, const kiln_value *delta);

#endif
