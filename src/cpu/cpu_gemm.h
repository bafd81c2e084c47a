/*
 * Dense matrix multiply shared by the CPU conv and matmul kernels: OpenBLAS
 * when the build found it (KILN_HAVE_BLAS), else a cache-blocked plain C loop.
 */
#ifndef KILN_CPU_GEMM_H
#define KILN_CPU_GEMM_H

#include <stdbool.h>
#include <stdint.h>

/*
 * C = alpha * op(A) * op(B) + beta * C, all row-major. op(A) is m x k (A is
 * stored k x m when trans_a), op(B) is k x n (B stored n x k when trans_b);
 * lda/ldb/ldc are row strides in elements. beta == 0 overwrites C.
 * Returns false only when the fallback could not get its packing buffers.
 */
bool kiln__sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                 int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
bool kiln__dgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double *a,
                 int64_t lda, const double *b, int64_t ldb, double beta, double *c, int64_t ldc);

#endif
