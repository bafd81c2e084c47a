/*
 * The pool family's parsed attributes (src/ir/ops_pool.c): MaxPool,
 * AveragePool (GlobalAveragePool / GlobalMaxPool have none). Private to the
 * schemas and the backends.
 */
#ifndef KILN_OPS_POOL_H
#define KILN_OPS_POOL_H

#include "ops_util.h"

/*
 * Window attributes as given. nsp (entries of kernel_shape, required) is the
 * number of spatial dims; the other counts are nsp (2 * nsp for pads) or -1
 * when absent (stride and dilation 1, pads 0).
 */
typedef struct kiln_pool_params {
    kiln_auto_pad auto_pad;
    bool ceil_mode;           /* output size rounds up (a last partial window counts) */
    bool count_include_pad;   /* AveragePool: pads count in the divisor */
    bool storage_order;       /* MaxPool Indices: column-major (1) rather than row-major (0) */
    int nsp;
    int n_strides, n_dil, n_pads; /* n_pads is -1 unless auto_pad is NOTSET */
    int64_t kernel[KILN_MAX_SPATIAL];
    int64_t strides[KILN_MAX_SPATIAL];
    int64_t dil[KILN_MAX_SPATIAL];
    int64_t pads[2 * KILN_MAX_SPATIAL]; /* all begins, then all ends */
} kiln_pool_params;

#endif
