/*
 * The reduction engine's launcher (k_reduce.cu) as its host callers (cuda_ops_reduce.c,
 * cuda_ops_norm.c, cuda_ops_pool.c) see it. Plain C, included by the .cu file too, so the
 * argument struct has one definition.
 */
#ifndef KILN_K_REDUCE_H
#define KILN_K_REDUCE_H

#include <stddef.h>
#include <stdint.h>

#define KR_MAXR 10
enum kr_op {
    KR_SUM, KR_MEAN, KR_MAX, KR_MIN, KR_PROD, KR_L1, KR_L2, KR_LOG_SUM, KR_LOG_SUM_EXP, KR_SUM_SQUARE,
    KR_ARGMAX, KR_ARGMIN, KR_MOMENTS, KR_SOFTMAX, KR_LOGSOFTMAX
};
typedef struct kr_args {
    int op;
    int rank;
    int64_t dims[KR_MAXR];
    const void *x;
    int xdt;
    int64_t xstr[KR_MAXR];
    void *y;                /* output tensor; for KR_MOMENTS/KR_SOFTMAX/KR_LOGSOFTMAX a float2 per cell */
    int ydt;
    int64_t ystr[KR_MAXR];  /* output stride of each input axis (ignored on reduced axes and for stats) */
    uint32_t mask;          /* bit i: axis i is reduced */
    int select_last;        /* ArgMax/ArgMin ties go to the last index */
    float eps;              /* KR_MOMENTS */
    void *ws;               /* partials when rows are split */
    size_t ws_bytes;
    int64_t mstr[KR_MAXR];  /* out: cell-number stride of each axis (0 on reduced and size-1 axes) */
} kr_args;

#ifdef __cplusplus
extern "C" {
#endif
size_t kiln__kr_workspace(int rank, const int64_t *dims, uint32_t mask);
int kiln__kr_run(kr_args *a, void *stream);
#ifdef __cplusplus
}
#endif
#endif
