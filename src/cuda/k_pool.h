/*
 * The pooling launcher (k_pool.cu) as cuda_ops_pool.c sees it. Plain C, included by the .cu file
 * too, so the argument struct has one definition.
 */
#ifndef KILN_K_POOL_H
#define KILN_K_POOL_H

#include <stdint.h>

typedef struct kp_args {
    int max;               /* MaxPool rather than AveragePool */
    int count_include_pad;
    int dt;                /* FLOAT or FLOAT16 */
    const void *x;
    void *y;
    int64_t n, c;
    int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
    int64_t xs[5], ys[5];  /* strides of N, C and the three spatial dims (0 for missing ones) */
} kp_args;

#ifdef __cplusplus
extern "C" {
#endif
int kiln__kp_pool(const kp_args *a, void *stream);
#ifdef __cplusplus
}
#endif
#endif
