/*
 * CUDA kernels of MaxPool and AveragePool (1-D, 2-D and 3-D windows; the
 * geometry is unified to three spatial dims, missing ones of size 1). One
 * thread per output element, in the output's memory order (C innermost for
 * NHWC, so neighbouring threads read neighbouring channels). Windows follow
 * the CPU reference (src/cpu/cpu_pool.c) exactly: taps are visited in the
 * same order (MaxPool keeps the first maximum and a leading NaN), a window
 * entirely in the padding gives 0 (max) or NaN (average), and
 * count_include_pad counts pads but not taps beyond the end padding.
 */
#include "cuda_tensor.h"
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "k_pool.h"

namespace {

enum { THREADS = 256 };

__device__ __forceinline__ float tof(float v) { return v; }
__device__ __forceinline__ float tof(__half v) { return __half2float(v); }
__device__ __forceinline__ void stf(float *p, float v) { *p = v; }
__device__ __forceinline__ void stf(__half *p, float v) { *p = __float2half_rn(v); }

struct Geo {
    int64_t total;
    int64_t dim[5];  /* output dims in memory order, outermost first */
    int axis[5];     /* which of N, C, D, H, W each is */
    int64_t in[3], k[3], s[3], d[3], pb[3], pe[3];
    int64_t xs[5], ys[5];
    int max, cip;
};

/* Taps t in [lo, hi) of a window starting at `start` that land inside [0, n). */
__device__ __forceinline__ void tap_range(int64_t start, int64_t d, int64_t k, int64_t n, int64_t &lo, int64_t &hi)
{
    int64_t l = start >= 0 ? 0 : (-start + d - 1) / d;
    int64_t h = n - start <= 0 ? 0 : (n - start + d - 1) / d;
    if (h > k) h = k;
    if (l > h) l = h;
    lo = l;
    hi = h;
}

template <class T, class I>
__global__ void __launch_bounds__(THREADS) k_pool(const T *__restrict__ x, T *__restrict__ y, Geo g)
{
    for (I i = (I)blockIdx.x * THREADS + threadIdx.x; i < (I)g.total; i += (I)gridDim.x * THREADS) {
        int64_t c[5];
        I r = i;
#pragma unroll
        for (int a = 4; a >= 0; a--) {
            I dd = (I)g.dim[a];
            c[g.axis[a]] = (int64_t)(r % dd);
            r /= dd;
        }
        const T *xp = x + c[0] * g.xs[0] + c[1] * g.xs[1];
        int64_t start[3], lo[3], hi[3];
#pragma unroll
        for (int j = 0; j < 3; j++) {
            start[j] = c[2 + j] * g.s[j] - g.pb[j];
            tap_range(start[j], g.d[j], g.k[j], g.in[j], lo[j], hi[j]);
        }
        float best = 0.f, sum = 0.f;
        bool any = false;
        int64_t count = 0;
        for (int64_t a = lo[0]; a < hi[0]; a++) {
            const T *p0 = xp + (start[0] + a * g.d[0]) * g.xs[2];
            for (int64_t b = lo[1]; b < hi[1]; b++) {
                const T *p1 = p0 + (start[1] + b * g.d[1]) * g.xs[3];
                for (int64_t e = lo[2]; e < hi[2]; e++) {
                    float v = tof(p1[(start[2] + e * g.d[2]) * g.xs[4]]);
                    if (g.max) {
                        if (!any || v > best) best = v;
                        any = true;
                    } else {
                        sum += v;
                        count++;
                    }
                }
            }
        }
        float out;
        if (g.max) {
            out = any ? best : 0.f;
        } else {
            if (g.cip) {
                count = 1;
#pragma unroll
                for (int j = 0; j < 3; j++) {
                    int64_t l, h;
                    tap_range(start[j] + g.pb[j], g.d[j], g.k[j], g.in[j] + g.pb[j] + g.pe[j], l, h);
                    count *= h - l;
                }
            }
            out = count > 0 ? sum / (float)count : NAN;
        }
        stf(y + c[0] * g.ys[0] + c[1] * g.ys[1] + c[2] * g.ys[2] + c[3] * g.ys[3] + c[4] * g.ys[4], out);
    }
}

static unsigned blocks_for(int64_t n)
{
    int64_t b = (n + THREADS - 1) / THREADS;
    if (b > (1 << 20)) b = 1 << 20;
    return (unsigned)(b < 1 ? 1 : b);
}

} // namespace

extern "C" int kiln__kp_pool(const kp_args *a, void *stream)
{
    Geo g;
    memset(&g, 0, sizeof g);
    int64_t od[5] = {a->n, a->c, a->out[0], a->out[1], a->out[2]};
    g.total = 1;
    for (int i = 0; i < 5; i++) {
        if (od[i] < 0) return (int)cudaErrorInvalidValue;
        g.total *= od[i];
    }
    if (g.total == 0) return 0;
    if (!a->x || !a->y || (a->dt != KILN_DT_FLOAT && a->dt != KILN_DT_FLOAT16)) return (int)cudaErrorInvalidValue;
    for (int j = 0; j < 3; j++) {
        if (a->k[j] < 1 || a->s[j] < 1 || a->d[j] < 1) return (int)cudaErrorInvalidValue;
        g.in[j] = a->in[j];
        g.k[j] = a->k[j];
        g.s[j] = a->s[j];
        g.d[j] = a->d[j];
        g.pb[j] = a->pb[j];
        g.pe[j] = a->pe[j];
    }
    for (int i = 0; i < 5; i++) {
        g.xs[i] = a->xs[i];
        g.ys[i] = a->ys[i];
    }
    g.max = a->max;
    g.cip = a->count_include_pad;
    /* Output axes by decreasing output stride (stable), so threads write in memory order. */
    int ord[5] = {0, 1, 2, 3, 4};
    for (int i = 1; i < 5; i++)
        for (int j = i; j > 0 && a->ys[ord[j]] > a->ys[ord[j - 1]]; j--) {
            int t = ord[j];
            ord[j] = ord[j - 1];
            ord[j - 1] = t;
        }
    for (int i = 0; i < 5; i++) {
        g.axis[i] = ord[i];
        g.dim[i] = od[ord[i]];
    }
    cudaStream_t st = (cudaStream_t)stream;
    bool small = g.total < ((int64_t)1 << 31);
    if (a->dt == KILN_DT_FLOAT) {
        if (small) k_pool<float, uint32_t><<<blocks_for(g.total), THREADS, 0, st>>>((const float *)a->x, (float *)a->y, g);
        else k_pool<float, int64_t><<<blocks_for(g.total), THREADS, 0, st>>>((const float *)a->x, (float *)a->y, g);
    } else {
        if (small)
            k_pool<__half, uint32_t><<<blocks_for(g.total), THREADS, 0, st>>>((const __half *)a->x, (__half *)a->y, g);
        else k_pool<__half, int64_t><<<blocks_for(g.total), THREADS, 0, st>>>((const __half *)a->x, (__half *)a->y, g);
    }
    return (int)cudaGetLastError();
}
