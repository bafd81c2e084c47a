/*
 * Kernels of the conv family that cuDNN does not provide:
 *  - the epilogue: y = act(src + bias[c]) * out_scale + z_scale * z (or, with
 *    `after`, act((src + bias[c]) * out_scale + z_scale * z)), one pass,
 *    in place over cuDNN's output (or from a cropped temporary for ConvTranspose);
 *  - a strided copy with zero fill, used to pad inputs whose begin/end pads
 *    differ and to reorder tensors cuDNN cannot read in place.
 * Every tensor is read through its strides; the in-place epilogue over a
 * packed NCHW or NHWC tensor has a vectorized 16-byte fast path.
 */
#include "cuda_tensor.h"
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

/* Activation codes, shared with cuda_ops_conv.c (keep in sync). */
enum { ACT_NONE = 0, ACT_RELU, ACT_LEAKY, ACT_PRELU, ACT_SIGMOID, ACT_TANH, ACT_CLIP };

#define EPI_MAX_RANK 5
#define THREADS 256
#define MAX_BLOCKS 8192

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half_rn(x); }

template <int ACT>
__device__ __forceinline__ float act_fn(float x, float a, float b, float slope)
{
    switch (ACT) {
    case ACT_RELU: return x > 0.f ? x : 0.f;
    case ACT_LEAKY: return x < 0.f ? a * x : x;
    case ACT_PRELU: return x < 0.f ? slope * x : x;
    case ACT_SIGMOID: return 1.f / (1.f + expf(-x));
    case ACT_TANH: return tanhf(x);
    case ACT_CLIP: return x < a ? a : x > b ? b : x; /* NaN passes through, as on the CPU */
    default: return x;
    }
}

__device__ __forceinline__ float act_any(int act, float x, float a, float b, float slope)
{
    switch (act) {
    case ACT_RELU: return act_fn<ACT_RELU>(x, a, b, slope);
    case ACT_LEAKY: return act_fn<ACT_LEAKY>(x, a, b, slope);
    case ACT_PRELU: return act_fn<ACT_PRELU>(x, a, b, slope);
    case ACT_SIGMOID: return act_fn<ACT_SIGMOID>(x, a, b, slope);
    case ACT_TANH: return act_fn<ACT_TANH>(x, a, b, slope);
    case ACT_CLIP: return act_fn<ACT_CLIP>(x, a, b, slope);
    default: return x;
    }
}

/* Per-channel operands and scalars common to both epilogue paths. */
struct EpiScalars {
    const void *bias, *slope;
    int64_t bias_stride, slope_stride;
    float a, b, out_scale, z_scale;
    int after; /* activation after the residual add */
};

template <typename T, int ACT>
__device__ __forceinline__ float epi_value(float v, int64_t c, float zv, const EpiScalars &s)
{
    if (s.bias) v += to_f(__ldg(static_cast<const T *>(s.bias) + c * s.bias_stride));
    float slope = 0.f;
    if (ACT == ACT_PRELU) slope = to_f(__ldg(static_cast<const T *>(s.slope) + c * s.slope_stride));
    if (ACT != ACT_NONE && s.after) return act_fn<ACT>(v * s.out_scale + s.z_scale * zv, s.a, s.b, slope);
    v = act_fn<ACT>(v, s.a, s.b, slope);
    return v * s.out_scale + s.z_scale * zv;
}

/*
 * In place over a packed tensor of `total` elements (< 2^31); z, when present,
 * has the same strides. Channel of element i: NHWC i % C, NCHW (i / inner) % C.
 * VEC: each step handles 16 bytes (callers check alignment and total % V).
 */
template <typename T, int ACT, bool NHWC, bool HASZ, bool VEC>
__global__ void epi_fast(T *y, const T *z, EpiScalars s, uint32_t total, uint32_t C, uint32_t inner)
{
    constexpr uint32_t V = VEC ? 16 / sizeof(T) : 1;
    uint32_t step = gridDim.x * blockDim.x * V;
    for (uint32_t i = (blockIdx.x * blockDim.x + threadIdx.x) * V; i < total; i += step) {
        T e[V], ze[V];
        if (VEC) {
            uint4 raw = *reinterpret_cast<const uint4 *>(y + i);
            memcpy(e, &raw, 16);
            if (HASZ) {
                uint4 zr = *reinterpret_cast<const uint4 *>(z + i);
                memcpy(ze, &zr, 16);
            }
        } else {
            e[0] = y[i];
            if (HASZ) ze[0] = z[i];
        }
        uint32_t c = NHWC ? i % C : (i / inner) % C;
#pragma unroll
        for (uint32_t k = 0; k < V; k++) {
            uint32_t ck = c;
            if (k) {
                if (NHWC) {
                    ck = (c + k) % C;
                } else {
                    ck = ((i + k) / inner) % C;
                }
            }
            float zv = HASZ ? to_f(ze[k]) : 0.f;
            e[k] = from_f<T>(epi_value<T, ACT>(to_f(e[k]), ck, zv, s));
        }
        if (VEC) {
            uint4 raw;
            memcpy(&raw, e, 16);
            *reinterpret_cast<uint4 *>(y + i) = raw;
        } else {
            y[i] = e[0];
        }
    }
}

/* Dims and strides of every operand of the general epilogue. */
struct EpiGeneral {
    int rank;
    int64_t dims[EPI_MAX_RANK];
    int64_t ys[EPI_MAX_RANK], ss[EPI_MAX_RANK], zs[EPI_MAX_RANK];
    int64_t sdims[EPI_MAX_RANK], off[EPI_MAX_RANK];
    const void *src, *z;
    void *y;
    int act;
};

/* Any strides: src coordinate = y coordinate + off, zero outside src (ConvTranspose crop). */
template <typename T>
__global__ void epi_general(EpiGeneral g, EpiScalars s, int64_t total)
{
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
        int64_t rem = i, yo = 0, so = 0, zo = 0, c = 0;
        bool valid = true;
        for (int d = g.rank - 1; d >= 0; d--) {
            int64_t q = rem % g.dims[d];
            rem /= g.dims[d];
            if (d == 1) c = q;
            yo += q * g.ys[d];
            zo += q * g.zs[d];
            int64_t sc = q + g.off[d];
            if (sc < 0 || sc >= g.sdims[d]) valid = false;
            so += sc * g.ss[d];
        }
        float v = valid ? to_f(static_cast<const T *>(g.src)[so]) : 0.f;
        if (s.bias) v += to_f(static_cast<const T *>(s.bias)[c * s.bias_stride]);
        float slope = g.act == ACT_PRELU ? to_f(static_cast<const T *>(s.slope)[c * s.slope_stride]) : 0.f;
        float zv = g.z ? to_f(static_cast<const T *>(g.z)[zo]) : 0.f;
        if (s.after) {
            v = act_any(g.act, v * s.out_scale + s.z_scale * zv, s.a, s.b, slope);
        } else {
            v = act_any(g.act, v, s.a, s.b, slope);
            v = v * s.out_scale + s.z_scale * zv;
        }
        static_cast<T *>(g.y)[yo] = from_f<T>(v);
    }
}

static unsigned blocks_for(int64_t work)
{
    int64_t b = (work + THREADS - 1) / THREADS;
    if (b > MAX_BLOCKS) b = MAX_BLOCKS;
    return b < 1 ? 1u : (unsigned)b;
}

/* 0 NCHW-packed, 1 NHWC-packed, -1 neither (dims of size 1 match any stride). */
static int packed_format(const kiln_cuda_tensor *t)
{
    int r = t->rank;
    int64_t st[EPI_MAX_RANK];
    st[r - 1] = 1;
    for (int d = r - 2; d >= 0; d--) st[d] = st[d + 1] * t->dims[d + 1];
    bool ok = true;
    for (int d = 0; d < r; d++)
        if (t->dims[d] > 1 && t->strides[d] != st[d]) ok = false;
    if (ok) return 0;
    st[1] = 1;
    st[r - 1] = t->dims[1];
    for (int d = r - 2; d >= 2; d--) st[d] = st[d + 1] * t->dims[d + 1];
    st[0] = st[2] * t->dims[2];
    for (int d = 0; d < r; d++)
        if (t->dims[d] > 1 && t->strides[d] != st[d]) return -1;
    return 1;
}

static bool same_strides(const kiln_cuda_tensor *a, const kiln_cuda_tensor *b)
{
    if (a->rank != b->rank) return false;
    for (int d = 0; d < a->rank; d++)
        if (a->dims[d] != b->dims[d] || (a->dims[d] > 1 && a->strides[d] != b->strides[d])) return false;
    return true;
}

template <typename T, int ACT, bool NHWC, bool HASZ>
static void launch_fast_vec(T *y, const T *z, const EpiScalars &s, uint32_t total, uint32_t C, uint32_t inner,
                            bool vec, cudaStream_t st)
{
    constexpr uint32_t V = 16 / sizeof(T);
    if (vec)
        epi_fast<T, ACT, NHWC, HASZ, true><<<blocks_for(total / V), THREADS, 0, st>>>(y, z, s, total, C, inner);
    else
        epi_fast<T, ACT, NHWC, HASZ, false><<<blocks_for(total), THREADS, 0, st>>>(y, z, s, total, C, inner);
}

template <typename T, int ACT>
static void launch_fast_act(T *y, const T *z, const EpiScalars &s, uint32_t total, uint32_t C, uint32_t inner,
                            bool nhwc, bool vec, cudaStream_t st)
{
    if (nhwc) {
        if (z) launch_fast_vec<T, ACT, true, true>(y, z, s, total, C, inner, vec, st);
        else launch_fast_vec<T, ACT, true, false>(y, z, s, total, C, inner, vec, st);
    } else {
        if (z) launch_fast_vec<T, ACT, false, true>(y, z, s, total, C, inner, vec, st);
        else launch_fast_vec<T, ACT, false, false>(y, z, s, total, C, inner, vec, st);
    }
}

template <typename T>
static void launch_fast(int act, T *y, const T *z, const EpiScalars &s, uint32_t total, uint32_t C,
                        uint32_t inner, bool nhwc, bool vec, cudaStream_t st)
{
    switch (act) {
    case ACT_RELU: launch_fast_act<T, ACT_RELU>(y, z, s, total, C, inner, nhwc, vec, st); break;
    case ACT_LEAKY: launch_fast_act<T, ACT_LEAKY>(y, z, s, total, C, inner, nhwc, vec, st); break;
    case ACT_PRELU: launch_fast_act<T, ACT_PRELU>(y, z, s, total, C, inner, nhwc, vec, st); break;
    case ACT_SIGMOID: launch_fast_act<T, ACT_SIGMOID>(y, z, s, total, C, inner, nhwc, vec, st); break;
    case ACT_TANH: launch_fast_act<T, ACT_TANH>(y, z, s, total, C, inner, nhwc, vec, st); break;
    case ACT_CLIP: launch_fast_act<T, ACT_CLIP>(y, z, s, total, C, inner, nhwc, vec, st); break;
    default: launch_fast_act<T, ACT_NONE>(y, z, s, total, C, inner, nhwc, vec, st); break;
    }
}

/*
 * y = act(src + bias[c]) * out_scale + z_scale * z, or with `after`
 * act((src + bias[c]) * out_scale + z_scale * z). y, src and z have rank 3..5
 * with the channel at dim 1; src may be y itself (in place) or a temporary whose
 * coordinates are y's plus src_off (outside src: 0). bias and slope are NULL or
 * per-channel vectors (dims[0] entries, strides[0] apart; slope stride 0 for
 * a single slope). All operands have y's dtype (FLOAT or FLOAT16).
 */
extern "C" int kiln__cuda_conv_epilogue(const kiln_cuda_tensor *y, const kiln_cuda_tensor *src,
                                        const int64_t *src_off, const kiln_cuda_tensor *bias,
                                        const kiln_cuda_tensor *slope, const kiln_cuda_tensor *z, int act,
                                        int after, float alpha, float beta, float out_scale, float z_scale,
                                        void *stream)
{
    cudaStream_t st = (cudaStream_t)stream;
    if (y->rank < 3 || y->rank > EPI_MAX_RANK || src->rank != y->rank || (z && z->rank != y->rank))
        return (int)cudaErrorInvalidValue;
    if (y->dtype != KILN_DT_FLOAT && y->dtype != KILN_DT_FLOAT16) return (int)cudaErrorInvalidValue;
    int64_t total = 1;
    for (int d = 0; d < y->rank; d++) total *= y->dims[d];
    if (total <= 0) return (int)cudaSuccess;
    EpiScalars s;
    s.bias = bias ? bias->ptr : NULL;
    s.bias_stride = bias ? bias->strides[0] : 0;
    s.slope = slope ? slope->ptr : NULL;
    s.slope_stride = slope ? slope->strides[0] : 0;
    s.a = alpha;
    s.b = beta;
    s.out_scale = out_scale;
    s.z_scale = z_scale;
    s.after = after;
    if (act == ACT_PRELU && !s.slope) return (int)cudaErrorInvalidValue;
    if (!z) s.z_scale = 0.f;

    bool in_place = src->ptr == y->ptr && same_strides(src, y);
    for (int d = 0; d < y->rank && in_place; d++)
        if (src_off && src_off[d] != 0) in_place = false;
    int fmt = packed_format(y);
    if (in_place && fmt >= 0 && (!z || same_strides(z, y)) && total < ((int64_t)1 << 31)) {
        size_t es = y->dtype == KILN_DT_FLOAT ? 4 : 2;
        size_t vb = 16 / es;
        bool vec = total % (int64_t)vb == 0 && ((uintptr_t)y->ptr % 16) == 0 && (!z || ((uintptr_t)z->ptr % 16) == 0);
        int64_t inner = 1;
        for (int d = 2; d < y->rank; d++) inner *= y->dims[d];
        uint32_t C = (uint32_t)y->dims[1], in32 = (uint32_t)inner;
        if (y->dtype == KILN_DT_FLOAT)
            launch_fast<float>(act, (float *)y->ptr, z ? (const float *)z->ptr : NULL, s, (uint32_t)total, C, in32,
                               fmt == 1, vec, st);
        else
            launch_fast<__half>(act, (__half *)y->ptr, z ? (const __half *)z->ptr : NULL, s, (uint32_t)total, C, in32,
                                fmt == 1, vec, st);
        return (int)cudaGetLastError();
    }

    EpiGeneral g;
    memset(&g, 0, sizeof g);
    g.rank = y->rank;
    for (int d = 0; d < y->rank; d++) {
        g.dims[d] = y->dims[d];
        g.ys[d] = y->strides[d];
        g.ss[d] = src->strides[d];
        g.sdims[d] = src->dims[d];
        g.zs[d] = z ? z->strides[d] : 0;
        g.off[d] = src_off ? src_off[d] : 0;
    }
    g.src = src->ptr;
    g.y = y->ptr;
    g.z = z ? z->ptr : NULL;
    g.act = act;
    if (y->dtype == KILN_DT_FLOAT) epi_general<float><<<blocks_for(total), THREADS, 0, st>>>(g, s, total);
    else epi_general<__half><<<blocks_for(total), THREADS, 0, st>>>(g, s, total);
    return (int)cudaGetLastError();
}

/* Dims and strides of a strided copy. */
struct PackArgs {
    int rank;
    int64_t dims[KILN_MAX_DIMS], ds[KILN_MAX_DIMS], ss[KILN_MAX_DIMS], sdims[KILN_MAX_DIMS], off[KILN_MAX_DIMS];
    const void *src;
    void *dst;
};

template <typename E>
__global__ void pack_kernel(PackArgs p, int64_t total)
{
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
        int64_t rem = i, dof = 0, sof = 0;
        bool valid = true;
        for (int d = p.rank - 1; d >= 0; d--) {
            int64_t q = rem % p.dims[d];
            rem /= p.dims[d];
            dof += q * p.ds[d];
            int64_t sc = q - p.off[d];
            if (sc < 0 || sc >= p.sdims[d]) valid = false;
            sof += sc * p.ss[d];
        }
        static_cast<E *>(p.dst)[dof] = valid ? static_cast<const E *>(p.src)[sof] : E(0);
    }
}

/*
 * dst[i] = src[i - off] (per-dim coordinates), zero where that falls outside
 * src. Same rank and element type on both sides; 2-, 4- or 8-byte elements
 * (the bits are copied, so any dtype of that size works).
 */
extern "C" int kiln__cuda_conv_pack(const kiln_cuda_tensor *dst, const kiln_cuda_tensor *src, const int64_t *off,
                                    void *stream)
{
    if (dst->rank < 1 || dst->rank > KILN_MAX_DIMS || src->rank != dst->rank || src->dtype != dst->dtype)
        return (int)cudaErrorInvalidValue;
    PackArgs p;
    memset(&p, 0, sizeof p);
    p.rank = dst->rank;
    int64_t total = 1;
    for (int d = 0; d < dst->rank; d++) {
        p.dims[d] = dst->dims[d];
        p.ds[d] = dst->strides[d];
        p.ss[d] = src->strides[d];
        p.sdims[d] = src->dims[d];
        p.off[d] = off ? off[d] : 0;
        total *= dst->dims[d];
    }
    if (total <= 0) return (int)cudaSuccess;
    p.src = src->ptr;
    p.dst = dst->ptr;
    cudaStream_t st = (cudaStream_t)stream;
    switch (kiln_dtype_size(dst->dtype)) {
    case 2: pack_kernel<uint16_t><<<blocks_for(total), THREADS, 0, st>>>(p, total); break;
    case 4: pack_kernel<uint32_t><<<blocks_for(total), THREADS, 0, st>>>(p, total); break;
    case 8: pack_kernel<uint64_t><<<blocks_for(total), THREADS, 0, st>>>(p, total); break;
    default: return (int)cudaErrorInvalidValue;
    }
    return (int)cudaGetLastError();
}
