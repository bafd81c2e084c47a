/*
 * Dense matrix multiply for the CPU backend.
 *
 * The plain C path is written once for a generic element type: this file
 * includes itself twice (GEMM_T = float, then double) below the common part.
 */
#ifndef GEMM_T

#include "cpu_gemm.h"
#include "../core/core.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#ifdef KILN_HAVE_BLAS
#include <cblas.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

/* Block sizes: a KC x NC panel of B (~512 KiB floats) stays in L2, an MC x KC block of A in L1/L2. */
#define GEMM_MC 64
#define GEMM_KC 256
#define GEMM_NC 512

static int max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

#ifdef KILN_HAVE_BLAS
static bool fits_blas(int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldc)
{
    return m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX;
}
#endif

#define GEMM_T float
#define GEMM_FN(name) name##_f32
#include "cpu_gemm.c"
#undef GEMM_T
#undef GEMM_FN

#define GEMM_T double
#define GEMM_FN(name) name##_f64
#include "cpu_gemm.c"
#undef GEMM_T
#undef GEMM_FN

bool kiln__sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                 int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0) return true;
#ifdef KILN_HAVE_BLAS
    if (k > 0 && fits_blas(m, n, k, lda, ldb, ldc)) {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)m,
                    (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
        return true;
    }
#endif
    return gemm_f32(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

bool kiln__dgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double *a,
                 int64_t lda, const double *b, int64_t ldb, double beta, double *c, int64_t ldc)
{
    if (m <= 0 || n <= 0) return true;
#ifdef KILN_HAVE_BLAS
    if (k > 0 && fits_blas(m, n, k, lda, ldb, ldc)) {
        cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)m,
                    (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
        return true;
    }
#endif
    return gemm_f64(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

#else /* GEMM_T: the type-generic plain C part */

/* C rows i0..i0+mb (already scaled by beta) += Ap (mb x kb, alpha folded in) * Bp (kb x nb). */
static void GEMM_FN(block_kernel)(int64_t mb, int64_t nb, int64_t kb, const GEMM_T *restrict ap,
                                  const GEMM_T *restrict bp, GEMM_T *restrict c, int64_t ldc)
{
    int64_t i = 0;
    /* Four rows of C per pass so each loaded row of B feeds four multiply-adds. */
    for (; i + 4 <= mb; i += 4) {
        GEMM_T *restrict c0 = c + i * ldc, *restrict c1 = c0 + ldc, *restrict c2 = c1 + ldc, *restrict c3 = c2 + ldc;
        const GEMM_T *a0 = ap + i * kb, *a1 = a0 + kb, *a2 = a1 + kb, *a3 = a2 + kb;
        for (int64_t p = 0; p < kb; p++) {
            const GEMM_T *restrict brow = bp + p * nb;
            GEMM_T v0 = a0[p], v1 = a1[p], v2 = a2[p], v3 = a3[p];
            for (int64_t j = 0; j < nb; j++) {
                GEMM_T bv = brow[j];
                c0[j] += v0 * bv;
                c1[j] += v1 * bv;
                c2[j] += v2 * bv;
                c3[j] += v3 * bv;
            }
        }
    }
    for (; i < mb; i++) {
        GEMM_T *restrict c0 = c + i * ldc;
        const GEMM_T *a0 = ap + i * kb;
        for (int64_t p = 0; p < kb; p++) {
            const GEMM_T *restrict brow = bp + p * nb;
            GEMM_T v0 = a0[p];
            for (int64_t j = 0; j < nb; j++) c0[j] += v0 * brow[j];
        }
    }
}

static bool GEMM_FN(gemm)(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, GEMM_T alpha,
                          const GEMM_T *a, int64_t lda, const GEMM_T *b, int64_t ldb, GEMM_T beta, GEMM_T *c,
                          int64_t ldc)
{
    for (int64_t i = 0; i < m; i++) {
        GEMM_T *row = c + i * ldc;
        if (beta == 0)
            memset(row, 0, (size_t)n * sizeof *row);
        else if (beta != 1)
            for (int64_t j = 0; j < n; j++) row[j] *= beta;
    }
    if (k <= 0 || alpha == 0) return true;
    int nt = max_threads();
    GEMM_T *bp = malloc((size_t)GEMM_KC * GEMM_NC * sizeof *bp);
    GEMM_T *ap_all = malloc((size_t)nt * GEMM_MC * GEMM_KC * sizeof *ap_all);
    if (!bp || !ap_all) {
        free(bp);
        free(ap_all);
        return false;
    }
    for (int64_t jc = 0; jc < n; jc += GEMM_NC) {
        int64_t nb = n - jc < GEMM_NC ? n - jc : GEMM_NC;
        for (int64_t pc = 0; pc < k; pc += GEMM_KC) {
            int64_t kb = k - pc < GEMM_KC ? k - pc : GEMM_KC;
            for (int64_t p = 0; p < kb; p++)
                for (int64_t j = 0; j < nb; j++)
                    bp[p * nb + j] = trans_b ? b[(jc + j) * ldb + pc + p] : b[(pc + p) * ldb + jc + j];
            int64_t nblocks = (m + GEMM_MC - 1) / GEMM_MC;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (m * nb * kb > 32768)
#endif
            for (int64_t blk = 0; blk < nblocks; blk++) {
                int64_t ic = blk * GEMM_MC, mb = m - ic < GEMM_MC ? m - ic : GEMM_MC;
                GEMM_T *ap = ap_all + (size_t)thread_id() * GEMM_MC * GEMM_KC;
                for (int64_t i = 0; i < mb; i++)
                    for (int64_t p = 0; p < kb; p++)
                        ap[i * kb + p] = alpha * (trans_a ? a[(pc + p) * lda + ic + i] : a[(ic + i) * lda + pc + p]);
                GEMM_FN(block_kernel)(mb, nb, kb, ap, bp, c + ic * ldc + jc, ldc);
            }
        }
    }
    free(bp);
    free(ap_all);
    return true;
}

#endif
