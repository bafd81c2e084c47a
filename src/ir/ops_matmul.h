/*
 * The matmul family's parsed attributes (src/ir/ops_matmul.c). MatMul has
 * none. Private to the schemas and the backends.
 */
#ifndef KILN_OPS_MATMUL_H
#define KILN_OPS_MATMUL_H

#include "ir.h"

/* Gemm: Y = alpha * op(A) * op(B) + beta * C. */
typedef struct kiln_gemm_params {
    float alpha, beta;  /* default 1 */
    bool trans_a;       /* transA: A is stored K x M */
    bool trans_b;       /* transB: B is stored N x K */
} kiln_gemm_params;

#endif
