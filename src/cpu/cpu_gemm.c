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

/* Block sizes: a KC x NC block of B (512 KiB of floats) stays in L2, an MC x KC block of A in L1/L2.
 * MC and NC must be multiples of MR and NR. */
#define GEMM_MC 64
#define GEMM_KC 256
#define GEMM_NC 512
/* Register tile of the micro kernel (its code assumes MR == 4). */
#define GEMM_MR 4
#define GEMM_NR 8

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

/*
 * The micro kernel reads only the packed buffers allocated here, with bounds
 * fixed by the block sizes. Sanitizer checks on each multiply-add would make
 * sanitizer builds too slow to run real models, so it is left uninstrumented.
 */
#if defined(__GNUC__) || defined(__clang__)
#define GEMM_NO_SANITIZE __attribute__((no_sanitize("address", "undefined")))
#else
#define GEMM_NO_SANITIZE
#endif

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

/*
 * Register tile: acc (4 x GEMM_NR) = A panel (kb x 4, packed) * B panel (kb x NR, packed).
 * One accumulator row per A row and a fixed-length inner loop: the form compilers
 * vectorize at -O2.
 */
GEMM_NO_SANITIZE static void GEMM_FN(micro_kernel)(int64_t kb, const GEMM_T *restrict a, const GEMM_T *restrict b,
                                                   GEMM_T acc[GEMM_MR][GEMM_NR])
{
    GEMM_T c0[GEMM_NR] = {0}, c1[GEMM_NR] = {0}, c2[GEMM_NR] = {0}, c3[GEMM_NR] = {0};
    for (int64_t p = 0; p < kb; p++, a += GEMM_MR, b += GEMM_NR) {
        GEMM_T a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
        for (int j = 0; j < GEMM_NR; j++) {
            GEMM_T bj = b[j];
            c0[j] += a0 * bj;
            c1[j] += a1 * bj;
            c2[j] += a2 * bj;
            c3[j] += a3 * bj;
        }
    }
    for (int j = 0; j < GEMM_NR; j++) {
        acc[0][j] = c0[j];
        acc[1][j] = c1[j];
        acc[2][j] = c2[j];
        acc[3][j] = c3[j];
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
    GEMM_T *bp_all = malloc((size_t)nt * GEMM_KC * GEMM_NC * sizeof *bp_all);
    GEMM_T *ap_all = malloc((size_t)nt * GEMM_MC * GEMM_KC * sizeof *ap_all);
    if (!bp_all || !ap_all) {
        free(bp_all);
        free(ap_all);
        return false;
    }
    /* One parallel loop over MC x NC tiles of C: each thread packs its own panels, so
     * there is no barrier per K block (repacking B per tile costs 1/MC of the math). */
    int64_t nbi = (m + GEMM_MC - 1) / GEMM_MC, nbj = (n + GEMM_NC - 1) / GEMM_NC, tiles = nbi * nbj;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic) if (tiles > 1 && m * n * k > 262144)
#endif
    for (int64_t t = 0; t < tiles; t++) {
        int64_t ic = (t % nbi) * GEMM_MC, jc = (t / nbi) * GEMM_NC;
        int64_t mb = m - ic < GEMM_MC ? m - ic : GEMM_MC, nb = n - jc < GEMM_NC ? n - jc : GEMM_NC;
        GEMM_T *ap = ap_all + (size_t)thread_id() * GEMM_MC * GEMM_KC;
        GEMM_T *bp = bp_all + (size_t)thread_id() * GEMM_KC * GEMM_NC;
        for (int64_t pc = 0; pc < k; pc += GEMM_KC) {
            int64_t kb = k - pc < GEMM_KC ? k - pc : GEMM_KC;
            /* B block in panels of NR columns, zero-padded: bp[panel][p][NR]. */
            for (int64_t j0 = 0; j0 < nb; j0 += GEMM_NR) {
                GEMM_T *dst = bp + j0 * kb;
                for (int64_t p = 0; p < kb; p++)
                    for (int64_t j = 0; j < GEMM_NR; j++) {
                        int64_t col = jc + j0 + j, row = pc + p;
                        *dst++ = j0 + j >= nb ? 0 : trans_b ? b[col * ldb + row] : b[row * ldb + col];
                    }
            }
            /* A block in panels of MR rows, alpha folded in: ap[panel][p][MR]. */
            for (int64_t i0 = 0; i0 < mb; i0 += GEMM_MR) {
                GEMM_T *dst = ap + i0 * kb;
                for (int64_t p = 0; p < kb; p++)
                    for (int64_t i = 0; i < GEMM_MR; i++) {
                        int64_t row = ic + i0 + i, col = pc + p;
                        *dst++ = i0 + i >= mb ? 0 : alpha * (trans_a ? a[col * lda + row] : a[row * lda + col]);
                    }
            }
            for (int64_t i0 = 0; i0 < mb; i0 += GEMM_MR)
                for (int64_t j0 = 0; j0 < nb; j0 += GEMM_NR) {
                    GEMM_T acc[GEMM_MR][GEMM_NR];
                    GEMM_FN(micro_kernel)(kb, ap + i0 * kb, bp + j0 * kb, acc);
                    int64_t mr = mb - i0 < GEMM_MR ? mb - i0 : GEMM_MR, nr = nb - j0 < GEMM_NR ? nb - j0 : GEMM_NR;
                    for (int64_t i = 0; i < mr; i++) {
                        GEMM_T *crow = c + (ic + i0 + i) * ldc + jc + j0;
                        for (int64_t j = 0; j < nr; j++) crow[j] += acc[i][j];
                    }
                }
        }
    }
    free(bp_all);
    free(ap_all);
    return true;
}

#endif
