/*
 * CUDA kernels of the norm family and of Softmax's second pass: one
 * elementwise "apply" kernel that reads each element together with its row's
 * statistics (a float2 per cell, from k_reduce.cu or from BatchNorm's running
 * mean and variance) and optional per-element scale and bias, all through
 * strides (broadcast axes have stride 0):
 *   norm:        y = (x - s.x) * s.y * scale + bias
 *   softmax:     y = exp(x - s.x) * s.y
 *   log-softmax: y = x - s.x - s.y
 * The host side orders the axes by decreasing output stride (so NHWC and
 * row-major outputs are both written in memory order), drops size-1 axes and
 * merges neighbours every operand walks as one; element coordinates come from
 * 32-bit multiply-shift division when every offset fits, 64-bit otherwise.
 */
#include "cuda_tensor.h"
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "k_norm.h"

namespace {

enum { THREADS = 256, NS = 5 }; /* operands: x, y, stats, scale, bias */

__device__ __forceinline__ float tof(float v) { return v; }
__device__ __forceinline__ float tof(__half v) { return __half2float(v); }
template <class T> __device__ __forceinline__ T fromf(float v);
template <> __device__ __forceinline__ float fromf<float>(float v) { return v; }
template <> __device__ __forceinline__ __half fromf<__half>(float v) { return __float2half_rn(v); }

/* floor(x / d) for x < 2^31 and d in [1, 2^31] as (x * m) >> s (Granlund-Montgomery). */
struct FastDiv {
    uint32_t d, m, s;
    __device__ __forceinline__ uint32_t div(uint32_t x) const { return (uint32_t)(((uint64_t)x * m) >> s); }
};

static FastDiv make_fastdiv(uint32_t d)
{
    uint32_t l = 0;
    while (l < 32 && ((uint64_t)1 << l) < d) l++;
    FastDiv f;
    f.d = d;
    f.s = 31 + l;
    f.m = (uint32_t)((((uint64_t)1 << f.s) + d - 1) / d);
    return f;
}

struct Geo32 {
    int rank;
    uint32_t n;
    FastDiv dim[KN_MAXR];
    uint32_t str[NS][KN_MAXR];
};

struct Geo64 {
    int rank;
    int64_t n;
    int64_t dim[KN_MAXR];
    int64_t str[NS][KN_MAXR];
};

__device__ __forceinline__ void coords(const Geo32 &g, uint32_t i, uint32_t *o)
{
#pragma unroll
    for (int s = 0; s < NS; s++) o[s] = 0;
    for (int k = g.rank - 1; k >= 0; k--) {
        uint32_t q = k > 0 ? g.dim[k].div(i) : 0, c = i - q * g.dim[k].d;
        i = q;
#pragma unroll
        for (int s = 0; s < NS; s++) o[s] += c * g.str[s][k];
    }
}

__device__ __forceinline__ void coords(const Geo64 &g, int64_t i, int64_t *o)
{
#pragma unroll
    for (int s = 0; s < NS; s++) o[s] = 0;
    for (int k = g.rank - 1; k >= 0; k--) {
        int64_t q = k > 0 ? i / g.dim[k] : 0, c = i - q * g.dim[k];
        i = q;
#pragma unroll
        for (int s = 0; s < NS; s++) o[s] += c * g.str[s][k];
    }
}

template <class T, int MODE, bool HS, bool HB, class G, class I>
__global__ void __launch_bounds__(THREADS) k_apply(const T *__restrict__ x, T *__restrict__ y,
                                                  const float2 *__restrict__ stats, const T *__restrict__ scale,
                                                  const T *__restrict__ bias, G g)
{
    for (I i = (I)blockIdx.x * THREADS + threadIdx.x; i < g.n; i += (I)gridDim.x * THREADS) {
        I o[NS];
        coords(g, i, o);
        float v = tof(x[o[0]]);
        float2 s = stats[o[2]];
        float r;
        if (MODE == KN_SOFTMAX) {
            r = expf(v - s.x) * s.y;
        } else if (MODE == KN_LOGSOFTMAX) {
            r = v - s.x - s.y;
        } else {
            r = (v - s.x) * s.y;
            if (HS) r *= tof(scale[o[3]]);
            if (HB) r += tof(bias[o[4]]);
        }
        y[o[1]] = fromf<T>(r);
    }
}

static unsigned blocks_for(int64_t n)
{
    int64_t b = (n + THREADS - 1) / THREADS;
    if (b > (1 << 20)) b = 1 << 20;
    return (unsigned)(b < 1 ? 1 : b);
}

template <class T, int MODE, bool HS, bool HB>
static void launch4(const kn_args *a, const Geo64 &g, bool small, cudaStream_t st)
{
    const T *x = (const T *)a->x, *sc = (const T *)a->scale, *bi = (const T *)a->bias;
    T *y = (T *)a->y;
    const float2 *stats = (const float2 *)a->stats;
    if (small) {
        Geo32 h;
        memset(&h, 0, sizeof h);
        h.rank = g.rank;
        h.n = (uint32_t)g.n;
        for (int k = 0; k < g.rank; k++) {
            h.dim[k] = make_fastdiv((uint32_t)g.dim[k]);
            for (int s = 0; s < NS; s++) h.str[s][k] = (uint32_t)g.str[s][k];
        }
        k_apply<T, MODE, HS, HB, Geo32, uint32_t><<<blocks_for(g.n), THREADS, 0, st>>>(x, y, stats, sc, bi, h);
    } else {
        k_apply<T, MODE, HS, HB, Geo64, int64_t><<<blocks_for(g.n), THREADS, 0, st>>>(x, y, stats, sc, bi, g);
    }
}

template <class T> static void launch_t(const kn_args *a, const Geo64 &g, bool small, cudaStream_t st)
{
    bool hs = a->scale != NULL, hb = a->bias != NULL;
    if (a->mode == KN_SOFTMAX) launch4<T, KN_SOFTMAX, false, false>(a, g, small, st);
    else if (a->mode == KN_LOGSOFTMAX) launch4<T, KN_LOGSOFTMAX, false, false>(a, g, small, st);
    else if (hs && hb) launch4<T, KN_NORM, true, true>(a, g, small, st);
    else if (hs) launch4<T, KN_NORM, true, false>(a, g, small, st);
    else if (hb) launch4<T, KN_NORM, false, true>(a, g, small, st);
    else launch4<T, KN_NORM, false, false>(a, g, small, st);
}

__global__ void k_bn_stats(float2 *stats, const void *mean, int64_t ms, const void *var, int64_t vs, bool half,
                           int64_t c, float eps)
{
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < c; i += (int64_t)gridDim.x * THREADS) {
        float m = half ? __half2float(((const __half *)mean)[i * ms]) : ((const float *)mean)[i * ms];
        float v = half ? __half2float(((const __half *)var)[i * vs]) : ((const float *)var)[i * vs];
        stats[i] = make_float2(m, 1.f / sqrtf(v + eps));
    }
}

/* Mean (s.x) and InvStdDev (s.y) of each cell into LayerNormalization's extra outputs. */
struct Export {
    int rank;
    int64_t n;
    int64_t dims[KN_MAXR], mstr[KN_MAXR], astr[KN_MAXR], bstr[KN_MAXR];
};

template <class TA, class TB>
__global__ void k_export(const float2 *__restrict__ stats, TA *a, TB *b, Export e)
{
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < e.n; i += (int64_t)gridDim.x * THREADS) {
        int64_t r = i, m = 0, ao = 0, bo = 0;
        for (int k = e.rank - 1; k >= 0; k--) {
            int64_t c = r % e.dims[k];
            r /= e.dims[k];
            m += c * e.mstr[k];
            ao += c * e.astr[k];
            bo += c * e.bstr[k];
        }
        float2 s = stats[m];
        if (a) a[ao] = fromf<TA>(s.x);
        if (b) b[bo] = fromf<TB>(s.y);
    }
}

template <class TA> static void export_b(const float2 *stats, TA *a, void *b, bool bh, const Export &e, cudaStream_t st)
{
    if (bh) k_export<TA, __half><<<blocks_for(e.n), THREADS, 0, st>>>(stats, a, (__half *)b, e);
    else k_export<TA, float><<<blocks_for(e.n), THREADS, 0, st>>>(stats, a, (float *)b, e);
}

} // namespace

/*
 * Writes the statistics of every cell into `mean` (its mean) and `inv` (its
 * 1/sqrt(var + eps)), either may be NULL, both FLOAT or FLOAT16 with dims
 * `dims` (the reduced axes of size 1) and their own strides.
 */
extern "C" int kiln__kn_export(int rank, const int64_t *dims, const int64_t *mstr, const void *stats, void *mean,
                               int mean_dt, const int64_t *mean_str, void *inv, int inv_dt, const int64_t *inv_str,
                               void *stream)
{
    if (rank < 0 || rank > KN_MAXR || !stats) return (int)cudaErrorInvalidValue;
    if ((mean && mean_dt != KILN_DT_FLOAT && mean_dt != KILN_DT_FLOAT16) ||
        (inv && inv_dt != KILN_DT_FLOAT && inv_dt != KILN_DT_FLOAT16))
        return (int)cudaErrorInvalidValue;
    Export e;
    memset(&e, 0, sizeof e);
    e.rank = rank;
    e.n = 1;
    for (int k = 0; k < rank; k++) {
        if (dims[k] < 0) return (int)cudaErrorInvalidValue;
        e.n *= dims[k];
        e.dims[k] = dims[k];
        e.mstr[k] = mstr[k];
        e.astr[k] = mean ? mean_str[k] : 0;
        e.bstr[k] = inv ? inv_str[k] : 0;
    }
    if (e.n == 0 || (!mean && !inv)) return 0;
    cudaStream_t st = (cudaStream_t)stream;
    const float2 *s = (const float2 *)stats;
    bool bh = inv_dt == KILN_DT_FLOAT16;
    if (mean_dt == KILN_DT_FLOAT16) export_b<__half>(s, (__half *)mean, inv, bh, e, st);
    else export_b<float>(s, (float *)mean, inv, bh, e, st);
    return (int)cudaGetLastError();
}

extern "C" int kiln__kn_apply(const kn_args *a, void *stream)
{
    cudaStream_t st = (cudaStream_t)stream;
    if (a->rank < 0 || a->rank > KN_MAXR || !a->stats) return (int)cudaErrorInvalidValue;
    if (a->dt != KILN_DT_FLOAT && a->dt != KILN_DT_FLOAT16) return (int)cudaErrorInvalidValue;
    Geo64 g;
    memset(&g, 0, sizeof g);
    const int64_t *strs[NS] = {a->xstr, a->ystr, a->mstr, a->sstr, a->bstr};
    int64_t n = 1;
    /* Axes of size > 1, in decreasing output stride (stable). */
    int ord[KN_MAXR], r = 0;
    for (int i = 0; i < a->rank; i++) {
        if (a->dims[i] < 0) return (int)cudaErrorInvalidValue;
        n *= a->dims[i];
        if (a->dims[i] != 1) ord[r++] = i;
    }
    if (n == 0) return 0;
    if (!a->x || !a->y) return (int)cudaErrorInvalidValue;
    for (int i = 1; i < r; i++)
        for (int j = i; j > 0 && a->ystr[ord[j]] > a->ystr[ord[j - 1]]; j--) {
            int t = ord[j];
            ord[j] = ord[j - 1];
            ord[j - 1] = t;
        }
    for (int k = 0; k < r; k++) {
        int ax = ord[k];
        bool merge = g.rank > 0;
        for (int s = 0; s < NS && merge; s++) merge = g.str[s][g.rank - 1] == strs[s][ax] * a->dims[ax];
        if (merge) {
            g.dim[g.rank - 1] *= a->dims[ax];
            for (int s = 0; s < NS; s++) g.str[s][g.rank - 1] = strs[s][ax];
        } else {
            g.dim[g.rank] = a->dims[ax];
            for (int s = 0; s < NS; s++) g.str[s][g.rank] = strs[s][ax];
            g.rank++;
        }
    }
    g.n = n;
    /* 32-bit indexing when the element count and every operand's last offset fit. */
    bool small = n < ((int64_t)1 << 31);
    for (int s = 0; s < NS && small; s++) {
        int64_t span = 0;
        for (int k = 0; k < g.rank; k++) {
            if (g.str[s][k] < 0) return (int)cudaErrorInvalidValue;
            span += (g.dim[k] - 1) * g.str[s][k];
        }
        small = span < ((int64_t)1 << 31);
    }
    if (a->dt == KILN_DT_FLOAT) launch_t<float>(a, g, small, st);
    else launch_t<__half>(a, g, small, st);
    return (int)cudaGetLastError();
}

/* stats[i] = (mean[i], 1 / sqrt(var[i] + eps)) for BatchNormalization's c channels. */
extern "C" int kiln__kn_bn_stats(void *stats, const void *mean, int64_t mean_stride, const void *var,
                                 int64_t var_stride, int dt, int64_t c, float eps, void *stream)
{
    if (c <= 0) return 0;
    if ((dt != KILN_DT_FLOAT && dt != KILN_DT_FLOAT16) || !stats || !mean || !var) return (int)cudaErrorInvalidValue;
    k_bn_stats<<<blocks_for(c), THREADS, 0, (cudaStream_t)stream>>>((float2 *)stats, mean, mean_stride, var,
                                                                     var_stride, dt == KILN_DT_FLOAT16, c, eps);
    return (int)cudaGetLastError();
}
