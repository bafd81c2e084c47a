/*
 * The normalization/softmax pass (k_norm.cu) as its host callers (cuda_ops_norm.c,
 * cuda_ops_reduce.c) see it. Plain C, included by the .cu file too.
 */
#ifndef KILN_K_NORM_H
#define KILN_K_NORM_H

#include <stddef.h>
#include <stdint.h>

#define KN_MAXR 10
enum kn_mode { KN_NORM, KN_SOFTMAX, KN_LOGSOFTMAX };
typedef struct kn_args {
    int mode;
    int dt; /* FLOAT or FLOAT16: x, y, scale and bias */
    int rank;
    int64_t dims[KN_MAXR];
    const void *x;
    int64_t xstr[KN_MAXR];
    void *y;
    int64_t ystr[KN_MAXR];
    const void *stats; /* float2 per cell */
    int64_t mstr[KN_MAXR];
    const void *scale; /* NULL: 1 */
    int64_t sstr[KN_MAXR];
    const void *bias; /* NULL: 0 */
    int64_t bstr[KN_MAXR];
} kn_args;

#ifdef __cplusplus
extern "C" {
#endif
int kiln__kn_apply(const kn_args *a, void *stream);
int kiln__kn_export(int rank, const int64_t *dims, const int64_t *mstr, const void *stats, void *mean, int mean_dt,
                    const int64_t *mean_str, void *inv, int inv_dt, const int64_t *inv_str, void *stream);
int kiln__kn_bn_stats(void *stats, const void *mean, int64_t mean_stride, const void *var, int64_t var_stride, int dt,
                      int64_t c, float eps, void *stream);
#ifdef __cplusplus
}
#endif
#endif
