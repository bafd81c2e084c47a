/*
 * CUDA kernels of the resize family: Resize / Upsample (nearest, linear and
 * cubic, any rank, every coordinate transformation, antialiasing) and
 * GridSample (2 or 3 spatial dims).
 *
 * Resize follows the CPU reference (src/cpu/cpu_resize.c): each resized axis
 * maps output index o to a few input taps (index, weight), and the output is
 * the tensor product of the axes' taps. A first small kernel per resized axis
 * computes its taps into the workspace in double, with the reference's exact
 * arithmetic (no fused multiply-adds, so nearest rounding and edge decisions
 * match bit for bit); the main kernel walks the output in memory order, four
 * outputs of the innermost axis per thread (so the index arithmetic is paid
 * once per four), and gathers (nearest: whole elements, any 1/2/4/8-byte
 * type, bit-exact) or sums weighted taps in fp32 (linear/cubic:
 * FLOAT/FLOAT16). Axes whose taps are the identity are not resampled.
 *
 * Fast paths for 4-D nearest / linear resizes of H and W (the SR and EDVR
 * upsamplers): no tap tables and no per-element division. Each block computes
 * its tile's taps (same function, same bits) in shared memory; NHWC moves a
 * vector of channels per thread (16 bytes when C allows), a row-major output
 * is written as vectors along W. KILN_MEMK_GENERIC=1 turns them off.
 */
#include "cuda_tensor.h"
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <atomic>

/* Keep in step with cuda_ops_resize.c (values of src/ir/ops_resize.h's enums). */
#define KRS_MAXR 8
#define KRS_MAXK 64
enum { KRS_NEAREST, KRS_LINEAR, KRS_CUBIC };
enum { KRS_HALF_PIXEL, KRS_HALF_PIXEL_SYMMETRIC, KRS_PYTORCH_HALF_PIXEL, KRS_ALIGN_CORNERS, KRS_ASYMMETRIC,
       KRS_TF_HALF_PIXEL_FOR_NN, KRS_TF_CROP_AND_RESIZE };
enum { KRS_ROUND_PREFER_FLOOR, KRS_ROUND_PREFER_CEIL, KRS_FLOOR, KRS_CEIL, KRS_SIMPLE };
typedef struct krs_axis {
    double scale, roi_s, roi_e;
    int64_t in_len, out_len;
    int resized; /* out: not the identity */
    int taps;    /* out: taps per output index */
} krs_axis;
typedef struct krs_args {
    int mode, ctm, nearest, exclude_outside, antialias;
    double cubic_a;
    float extrapolation;   /* linear/cubic, tf_crop_and_resize */
    uint64_t extrap_bits;  /* nearest: the extrapolation value in X's type */
    int dt, es;            /* X and Y: dtype and element size */
    int rank;
    const void *x;
    int64_t xstr[KRS_MAXR];
    void *y;
    int64_t ystr[KRS_MAXR];
    krs_axis ax[KRS_MAXR];
    void *ws;
    size_t ws_bytes;
} krs_args;

/* GridSample; keep in step with cuda_ops_resize.c (values of src/ir/ops_sampling.h's enums). */
enum { KGS_NEAREST, KGS_LINEAR, KGS_CUBIC };
enum { KGS_ZEROS, KGS_BORDER, KGS_REFLECTION };
typedef struct kgs_args {
    int mode, padding, align_corners;
    int dt;   /* X, grid and Y */
    int rank; /* 4 or 5: 2 or 3 spatial dims */
    const void *x;
    int64_t xdims[5], xstr[5];
    const void *grid;
    int64_t gstr[5];
    void *y;
    int64_t ydims[5], ystr[5];
} kgs_args;

namespace {

enum { THREADS = 256, WS_ALIGN = 256 };

static size_t align_up(size_t v) { return (v + WS_ALIGN - 1) / WS_ALIGN * WS_ALIGN; }

__device__ __forceinline__ float tof(float v) { return v; }
__device__ __forceinline__ float tof(__half v) { return __half2float(v); }
template <class T> __device__ __forceinline__ T fromf(float v);
template <> __device__ __forceinline__ float fromf<float>(float v) { return v; }
template <> __device__ __forceinline__ __half fromf<__half>(float v) { return __float2half_rn(v); }

/* Rounded double arithmetic that the compiler may not contract into FMAs. */
__device__ __forceinline__ double dadd(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ double dsub(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ double dmul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ double ddiv(double a, double b) { return __ddiv_rn(a, b); }

/* ---- taps of one axis (as build_taps in the CPU reference) ---- */

struct TapPrm {
    int mode, ctm, nearest, exclude_outside, antialias, K;
    double scale, roi_s, roi_e, a;
    int64_t in_len, out_len;
};

__device__ double original_coord(const TapPrm &p, int64_t o, bool *outside)
{
    double out_w = dmul(p.scale, (double)p.in_len), xf = (double)o, v;
    *outside = false;
    switch (p.ctm) {
    case KRS_ALIGN_CORNERS:
        v = out_w == 1.0 ? 0.0 : ddiv(dmul(xf, (double)(p.in_len - 1)), dsub(out_w, 1.0));
        break;
    case KRS_ASYMMETRIC: v = ddiv(xf, p.scale); break;
    case KRS_TF_HALF_PIXEL_FOR_NN: v = ddiv(dadd(xf, 0.5), p.scale); break;
    case KRS_TF_CROP_AND_RESIZE: {
        double span = dsub(p.roi_e, p.roi_s), last = (double)(p.in_len - 1);
        if (out_w == 1.0) v = ddiv(dmul(span, last), 2.0);
        else v = ddiv(dmul(dmul(xf, span), last), dsub(out_w, 1.0));
        v = dadd(v, dmul(p.roi_s, last));
        if (v < 0 || v > last) *outside = true;
        break;
    }
    case KRS_PYTORCH_HALF_PIXEL: v = out_w == 1.0 ? -0.5 : dsub(ddiv(dadd(xf, 0.5), p.scale), 0.5); break;
    case KRS_HALF_PIXEL_SYMMETRIC: {
        double adjustment = ddiv((double)p.out_len, out_w);
        double offset = dmul(ddiv((double)p.in_len, 2.0), dsub(1.0, adjustment));
        v = dsub(dadd(offset, ddiv(dadd(xf, 0.5), p.scale)), 0.5);
        break;
    }
    default: v = dsub(ddiv(dadd(xf, 0.5), p.scale), 0.5); break;
    }
    return v;
}

__device__ __forceinline__ int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

__device__ __forceinline__ double clampd(double v)
{
    if (isnan(v)) return 0;
    return v < -1e15 ? -1e15 : v > 1e15 ? 1e15 : v;
}

__device__ int64_t nearest_index(const TapPrm &p, double x)
{
    double f = floor(x), r = dsub(x, f);
    int64_t i = (int64_t)f;
    if (r == 0) return i;
    switch (p.nearest) {
    case KRS_ROUND_PREFER_CEIL: return r < 0.5 ? i : i + 1;
    case KRS_FLOOR: return i;
    case KRS_CEIL: return i + 1;
    case KRS_SIMPLE: return p.scale < 1.0 ? i + 1 : i;
    default: return r <= 0.5 ? i : i + 1;
    }
}

__device__ double cubic_weight(double x, double a)
{
    x = fabs(x);
    if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    return 0;
}

/* Filter coefficients for a position `ratio` in (0, 1] after the base index; c[j] weighs base + start + j. */
__device__ int filter_taps(const TapPrm &p, double ratio, int *start, double *c)
{
    if (p.mode == KRS_LINEAR && !p.antialias) {
        *start = 0;
        c[0] = 1 - ratio;
        c[1] = ratio;
        return 2;
    }
    if (p.mode == KRS_CUBIC && !p.antialias) {
        double a = p.a, t = ratio;
        *start = -1;
        c[0] = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a;
        c[1] = ((a + 2) * t - (a + 3)) * t * t + 1;
        c[2] = ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1;
        c[3] = ((a * ((1 - t) + 1) - 5 * a) * ((1 - t) + 1) + 8 * a) * ((1 - t) + 1) - 4 * a;
        return 4;
    }
    double s = p.scale < 1.0 ? p.scale : 1.0;
    double support = p.mode == KRS_LINEAR ? 1.0 : 2.0;
    int st = (int)floor(ddiv(-support, s)) + 1;
    int n = 2 - 2 * st;
    if (n > p.K) n = p.K;
    double sum = 0;
    for (int j = 0; j < n; j++) {
        double arg = dmul((double)(st + j) - ratio, s);
        double v = p.mode == KRS_LINEAR ? 1 - fabs(arg) : cubic_weight(arg, p.a);
        if (p.mode == KRS_LINEAR && v < 0) v = 0;
        c[j] = v;
        sum += v;
    }
    if (sum != 0)
        for (int j = 0; j < n; j++) c[j] /= sum;
    *start = st;
    return n;
}

/*
 * Taps of output index o: p.K (<= MK) entries of (index, weight); index -1
 * first marks a coordinate outside the input. Shared by the tap-table kernel
 * and the fast 2-D kernels (which compute their tile's taps in shared
 * memory), so both see the same taps bit for bit.
 */
template <int MK> __device__ void tap_of(const TapPrm &p, int64_t o, int *__restrict__ ix, float *__restrict__ w)
{
    {
        for (int j = 0; j < p.K; j++) {
            ix[j] = 0;
            w[j] = 0.f;
        }
        bool outside;
        double x = clampd(original_coord(p, o, &outside));
        if (outside) {
            ix[0] = -1;
            return;
        }
        if (p.mode == KRS_NEAREST) {
            ix[0] = (int)clamp64(nearest_index(p, x), 0, p.in_len - 1);
            w[0] = 1.f;
            return;
        }
        double f = floor(x), ratio = dsub(x, f);
        int64_t base = (int64_t)f;
        if (ratio == 0) {
            ratio = 1;
            base -= 1;
        }
        double c[MK], acc[MK];
        int64_t ti[MK];
        int start;
        int n = filter_taps(p, ratio, &start, c);
        /* The reference's neighbourhood lies in the input padded by ceil(n/2) edge values on each side. */
        int64_t pad = (n + 1) / 2, lo = base + start;
        if (lo < -pad) lo = -pad;
        if (lo + n - 1 > p.in_len - 1 + pad) lo = p.in_len - 1 + pad - (n - 1);
        if (p.exclude_outside) {
            double sum = 0;
            for (int j = 0; j < n; j++) {
                int64_t i = lo + j;
                if (i < 0 || i >= p.in_len) c[j] = 0;
                sum += c[j];
            }
            if (sum != 0)
                for (int j = 0; j < n; j++) c[j] /= sum;
        }
        int k = 0;
        for (int j = 0; j < n; j++) {
            if (c[j] == 0) continue;
            int64_t i = clamp64(lo + j, 0, p.in_len - 1);
            if (k > 0 && ti[k - 1] == i) {
                acc[k - 1] += c[j];
                continue;
            }
            ti[k] = i;
            acc[k] = c[j];
            k++;
        }
        for (int j = 0; j < k; j++) {
            ix[j] = (int)ti[j];
            w[j] = (float)acc[j];
        }
    }
}

__global__ void k_taps(TapPrm p, int *__restrict__ tidx, float *__restrict__ tw)
{
    for (int64_t o = (int64_t)blockIdx.x * THREADS + threadIdx.x; o < p.out_len; o += (int64_t)gridDim.x * THREADS)
        tap_of<KRS_MAXK>(p, o, tidx + o * p.K, tw + o * p.K);
}

/* ---- fast 2-D paths (4-D tensors, N and C kept, H and/or W resized) ---- */

/*
 * Taps of a fast kernel's tile live in shared memory: FK entries per output
 * row / column, computed by tap_of (the same function and arithmetic as the
 * tap tables), or the identity for an axis that is not resized.
 */
enum { FK = 2, FAST_MAX_TW = 512, FAST_MAX_TH = 64 };
struct Fast2D {
    TapPrm ph, pw;   /* taps of H and W */
    int hres, wres;  /* resized, else identity */
    uint32_t N, C, Ho, Wo;
    uint32_t xn, xc, xh, xw; /* input strides (elements or units) */
    uint32_t yn, yc, yh, yw; /* output strides */
    uint32_t th, tw;         /* tile: output rows, output columns (rows kernel: elements of a row) */
    uint32_t cv;             /* NHWC: vectors per pixel */
    uint32_t planes, pc;     /* rows kernel: planes (N * pc), channels per plane (C or 1) */
    uint32_t ci, xci;        /* rows kernel: channels per column (1 or C), their input stride */
    uint32_t rowlen;         /* rows kernel: elements per output row (Wo * ci) */
};

__device__ __forceinline__ void fast_tap(const TapPrm &p, int res, int64_t o, int *ix, float *w)
{
    if (res) {
        tap_of<FK>(p, o, ix, w);
        for (int j = p.K; j < FK; j++) { /* nearest: one tap; the rest defined all the same */
            ix[j] = 0;
            w[j] = 0.f;
        }
    } else {
        ix[0] = (int)o;
        w[0] = 1.f;
        for (int j = 1; j < FK; j++) {
            ix[j] = 0;
            w[j] = 0.f;
        }
    }
}

/* Fills the tile's taps: rows h0.. (g.th of them), columns w0.. (nw of them). */
__device__ __forceinline__ void fast_tile_taps(const Fast2D &g, uint32_t h0, uint32_t w0, uint32_t nw, int *rix,
                                               float *rw, int *cix, float *cw)
{
    for (uint32_t t = threadIdx.x; t < g.th + nw; t += blockDim.x) {
        if (t < g.th) {
            if (h0 + t < g.Ho) fast_tap(g.ph, g.hres, h0 + t, rix + t * FK, rw + t * FK);
        } else {
            uint32_t c = t - g.th;
            if (w0 + c < g.Wo) fast_tap(g.pw, g.wres, w0 + c, cix + c * FK, cw + c * FK);
        }
    }
    __syncthreads();
}

template <class T, int V> struct alignas(sizeof(T) * V) FVec {
    T v[V];
};

/*
 * NHWC (C stride 1 on both sides): one thread per (output pixel, vector of V
 * channels). Nearest moves raw units (T: 1..16-byte words, V == 1, bit-exact);
 * linear sums K x K taps in fp32 in the generic kernel's order.
 */
template <class T, int V, bool NEAREST>
__global__ void __launch_bounds__(THREADS) k_fast_nhwc(const T *__restrict__ x, T *__restrict__ y, Fast2D g, T extrap_n,
                                                      float extrap)
{
    __shared__ int rix[FAST_MAX_TH * FK], cix[FAST_MAX_TW * FK];
    __shared__ float rw[FAST_MAX_TH * FK], cw[FAST_MAX_TW * FK];
    const uint32_t h0 = blockIdx.y * g.th, w0 = blockIdx.x * g.tw;
    fast_tile_taps(g, h0, w0, g.tw, rix, rw, cix, cw);
    const uint32_t items = g.th * g.tw * g.cv;
    for (uint32_t n = blockIdx.z; n < g.N; n += gridDim.z) {
        const T *xb = x + n * g.xn;
        T *yb = y + n * g.yn;
        for (uint32_t it = threadIdx.x; it < items; it += blockDim.x) {
            const uint32_t v = it % g.cv, pix = it / g.cv, wi = pix % g.tw, hi = pix / g.tw;
            const uint32_t h = h0 + hi, w = w0 + wi;
            if (h >= g.Ho || w >= g.Wo) continue;
            const int *ri = rix + hi * FK, *ci = cix + wi * FK;
            const float *rwt = rw + hi * FK, *cwt = cw + wi * FK;
            T *dst = yb + h * g.yh + w * g.yw + v * V;
            const bool out = ri[0] < 0 || ci[0] < 0;
            if constexpr (NEAREST) {
                *dst = out ? extrap_n : xb[(uint32_t)ri[0] * g.xh + (uint32_t)ci[0] * g.xw + v];
            } else {
                float acc[V];
#pragma unroll
                for (int k = 0; k < V; k++) acc[k] = out ? extrap : 0.f;
                if (!out) {
#pragma unroll
                    for (int a = 0; a < FK; a++) {
                        const float wa = rwt[a];
                        if (wa == 0.f) continue;
                        const T *xr = xb + (uint32_t)ri[a] * g.xh + v * V;
#pragma unroll
                        for (int b = 0; b < FK; b++) {
                            const float wb = cwt[b];
                            if (wb == 0.f) continue;
                            const FVec<T, V> s = *reinterpret_cast<const FVec<T, V> *>(xr + (uint32_t)ci[b] * g.xw);
#pragma unroll
                            for (int k = 0; k < V; k++) acc[k] += wa * wb * tof(s.v[k]);
                        }
                    }
                }
                FVec<T, V> o;
#pragma unroll
                for (int k = 0; k < V; k++) o.v[k] = fromf<T>(acc[k]);
                *reinterpret_cast<FVec<T, V> *>(dst) = o;
            }
        }
    }
}

/*
 * Rows of the output walked as flat runs of elements: row-major (W stride 1,
 * ci == 1; a plane per (n, c)) or NHWC with few channels (pixels dense along
 * W, ci == C; a plane per n), where 16 bytes of output span several pixels.
 * Element j of a row is column j / ci, channel j % ci. A thread owns V
 * consecutive elements of the tile's row segment (g.tw / V == vpr threads
 * per row, vpr a power of two dividing THREADS), keeps their column taps in
 * registers, and walks the tile's rows and the planes: per output element
 * only the input gathers (cached) remain, one V-wide store.
 */
template <class T, int V, bool NEAREST>
__global__ void __launch_bounds__(THREADS) k_fast_rows(const T *__restrict__ x, T *__restrict__ y, Fast2D g, T extrap_n)
{
    __shared__ int rix[FAST_MAX_TH * FK], cix[(FAST_MAX_TW + 2) * FK];
    __shared__ float rw[FAST_MAX_TH * FK], cw[(FAST_MAX_TW + 2) * FK];
    const uint32_t h0 = blockIdx.y * g.th, j0 = blockIdx.x * g.tw, c0 = j0 / g.ci;
    fast_tile_taps(g, h0, c0, (j0 + g.tw - 1) / g.ci - c0 + 1, rix, rw, cix, cw);
    const uint32_t vpr = g.tw / V, rp = THREADS / vpr; /* threads per row, rows per pass */
    const uint32_t wv = threadIdx.x % vpr, r0 = threadIdx.x / vpr, j = j0 + wv * V;
    if (r0 >= rp || j >= g.rowlen) return; /* no __syncthreads below */
    /* this thread's column taps: input offsets (column and channel) and weights; skip: outside */
    uint32_t off0[V], off1[V];
    float w0[V], w1[V];
    uint32_t skip = 0;
    {
        uint32_t col = j / g.ci, ch = j - col * g.ci;
#pragma unroll
        for (int k = 0; k < V; k++) {
            const uint32_t t = col - c0;
            const bool past = j + k >= g.rowlen;
            const int i0 = past ? 0 : cix[t * FK], i1 = past ? 0 : cix[t * FK + 1];
            if (past || i0 < 0) skip |= 1u << k;
            off0[k] = (uint32_t)(i0 < 0 ? 0 : i0) * g.xw + ch * g.xci;
            off1[k] = (uint32_t)i1 * g.xw + ch * g.xci;
            w0[k] = past ? 0.f : cw[t * FK];
            w1[k] = past ? 0.f : cw[t * FK + 1];
            if (++ch == g.ci) {
                ch = 0;
                col++;
            }
        }
    }
    for (uint32_t pl = blockIdx.z; pl < g.planes; pl += gridDim.z) {
        const uint32_t n = pl / g.pc, c = pl - n * g.pc;
        const T *xb = x + n * g.xn + c * g.xc;
        T *yb = y + n * g.yn + c * g.yc;
        for (uint32_t hi = r0; hi < g.th; hi += rp) {
            const uint32_t h = h0 + hi;
            if (h >= g.Ho) break;
            const int ra = rix[hi * FK], rb = rix[hi * FK + 1];
            const float wa = rw[hi * FK], wb = rw[hi * FK + 1];
            FVec<T, V> o;
            if (ra < 0) { /* row outside (crop): extrapolation */
#pragma unroll
                for (int k = 0; k < V; k++) o.v[k] = extrap_n;
            } else if constexpr (NEAREST) {
                const T *xr = xb + (uint32_t)ra * g.xh;
#pragma unroll
                for (int k = 0; k < V; k++) o.v[k] = (skip >> k) & 1 ? extrap_n : xr[off0[k]];
            } else {
                /* the generic kernel's order: per row tap, the column taps' sum, then weighted */
                const T *xa = xb + (uint32_t)ra * g.xh, *xc = xb + (uint32_t)(rb < 0 ? 0 : rb) * g.xh;
#pragma unroll
                for (int k = 0; k < V; k++) {
                    if ((skip >> k) & 1) {
                        o.v[k] = extrap_n;
                        continue;
                    }
                    float acc = 0.f;
                    if (wa != 0.f) {
                        float sa = 0.f;
                        if (w0[k] != 0.f) sa += w0[k] * tof(xa[off0[k]]);
                        if (w1[k] != 0.f) sa += w1[k] * tof(xa[off1[k]]);
                        acc += wa * sa;
                    }
                    if (wb != 0.f) {
                        float sb = 0.f;
                        if (w0[k] != 0.f) sb += w0[k] * tof(xc[off0[k]]);
                        if (w1[k] != 0.f) sb += w1[k] * tof(xc[off1[k]]);
                        acc += wb * sb;
                    }
                    o.v[k] = fromf<T>(acc);
                }
            }
            if (V == 1 || j + V <= g.rowlen) {
                *reinterpret_cast<FVec<T, V> *>(yb + h * g.yh + j) = o;
            } else {
                for (int k = 0; k < V && j + k < g.rowlen; k++) yb[h * g.yh + j + k] = o.v[k];
            }
        }
    }
}

static int fast_sm_count(void)
{
    static std::atomic<int> cached(0);
    int v = cached.load(std::memory_order_relaxed);
    if (v > 0) return v;
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
        v <= 0)
        v = 132;
    cached.store(v, std::memory_order_relaxed);
    return v;
}

static TapPrm make_tapprm(const krs_args *a, const krs_axis *x)
{
    TapPrm t;
    memset(&t, 0, sizeof t);
    t.mode = a->mode;
    t.ctm = a->ctm;
    t.nearest = a->nearest;
    t.exclude_outside = a->exclude_outside;
    t.antialias = a->antialias;
    t.K = x->resized ? x->taps : 1;
    t.scale = x->scale;
    t.roi_s = x->roi_s;
    t.roi_e = x->roi_e;
    t.a = a->cubic_a;
    t.in_len = x->in_len;
    t.out_len = x->out_len;
    return t;
}

template <class T> static T bits_as(const uint8_t *rep)
{
    T v;
    memcpy(&v, rep, sizeof v);
    return v;
}

static unsigned cdiv(uint64_t a, uint64_t b) { return (unsigned)((a + b - 1) / b); }

/* Largest of 16, 8, 4, 2, 1 bytes that divides every byte count / address given (0 entries ignored). */
static int unit_of(const uint64_t *v, int n, int maxu)
{
    int u = maxu;
    for (int i = 0; i < n; i++)
        while (u > 1 && v[i] % (uint64_t)u) u /= 2;
    return u;
}

template <class T, int V, bool NEAREST>
static void launch_nhwc(const krs_args *a, Fast2D g, dim3 grid, T extrap_n, cudaStream_t st)
{
    k_fast_nhwc<T, V, NEAREST><<<grid, THREADS, 0, st>>>((const T *)a->x, (T *)a->y, g, extrap_n, a->extrapolation);
}

template <class T, int V, bool NEAREST>
static void launch_rows(const krs_args *a, Fast2D g, dim3 grid, T extrap_n, cudaStream_t st)
{
    k_fast_rows<T, V, NEAREST><<<grid, THREADS, 0, st>>>((const T *)a->x, (T *)a->y, g, extrap_n);
}

/*
 * The 2-D fast paths: 4-D tensors whose N and C are not resized, nearest or
 * linear with at most FK taps per axis, 32-bit offsets. NHWC (C stride 1 on
 * both sides) moves vectors of channels per output pixel; an output with W
 * stride 1 (row-major) writes vectors along W. Returns -1 when neither
 * applies, else the launch's CUDA error code.
 */
/* KILN_MEMK_GENERIC=1: only the generic kernels (to measure the fast paths against them). */
static bool generic_only(void)
{
    static std::atomic<int> cached(-1);
    int v = cached.load(std::memory_order_relaxed);
    if (v < 0) {
        const char *e = getenv("KILN_MEMK_GENERIC");
        v = e && e[0] == '1';
        cached.store(v, std::memory_order_relaxed);
    }
    return v == 1;
}

static int try_fast(const krs_args *a, cudaStream_t st)
{
    if (generic_only()) return -1;
    if (a->rank != 4 || (a->mode != KRS_NEAREST && a->mode != KRS_LINEAR)) return -1;
    const krs_axis *ax = a->ax;
    /* N and C must be kept; tf_crop_and_resize marks every axis resized, but an axis with roi
     * [0, 1], scale 1 and equal lengths maps o to o exactly (one tap of weight 1) */
    for (int i = 0; i < 2; i++)
        if (ax[i].resized && !(a->ctm == KRS_TF_CROP_AND_RESIZE && ax[i].roi_s == 0.0 && ax[i].roi_e == 1.0 &&
                               ax[i].scale == 1.0 && ax[i].in_len == ax[i].out_len))
            return -1;
    if ((ax[2].resized && ax[2].taps > FK) || (ax[3].resized && ax[3].taps > FK)) return -1;
    for (int i = 0; i < 4; i++)
        if (ax[i].in_len < 1 || ax[i].out_len < 1 || ax[i].in_len > 0x7fffffff || ax[i].out_len > 0x7fffffff ||
            a->xstr[i] < 0 || a->ystr[i] < 0 || a->xstr[i] > 0x7fffffff || a->ystr[i] > 0x7fffffff)
            return -1;
    int64_t xspan = 0, yspan = 0;
    for (int i = 0; i < 4; i++) {
        xspan += (ax[i].in_len - 1) * a->xstr[i];
        yspan += (ax[i].out_len - 1) * a->ystr[i];
    }
    /* headroom: offsets of a whole vector and of partial tiles stay below 2^31 */
    if (xspan >= ((int64_t)1 << 30) || yspan >= ((int64_t)1 << 30) || ax[2].out_len > 65535 * 64) return -1;
    const int es = a->es;
    const int64_t N = ax[0].out_len, C = ax[1].out_len, Ho = ax[2].out_len, Wo = ax[3].out_len;
    Fast2D g;
    memset(&g, 0, sizeof g);
    g.ph = make_tapprm(a, &ax[2]);
    g.pw = make_tapprm(a, &ax[3]);
    g.hres = ax[2].resized;
    g.wres = ax[3].resized;
    g.N = (uint32_t)N;
    g.C = (uint32_t)C;
    g.Ho = (uint32_t)Ho;
    g.Wo = (uint32_t)Wo;
    /* the extrapolation value repeated over 16 bytes, for any unit */
    uint8_t rep[16];
    for (int i = 0; i < 16; i++) rep[i] = (uint8_t)(a->extrap_bits >> (8 * (i % es)));
    const int sms = fast_sm_count();
    bool nhwc = a->xstr[1] == 1 && a->ystr[1] == 1 && C > 1, flat = false;
    int u = 0; /* NHWC: bytes per thread item */
    if (nhwc) {
        uint64_t chk[8] = {(uint64_t)(C * es), (uint64_t)(a->xstr[0] * es), (uint64_t)(a->xstr[2] * es),
                           (uint64_t)(a->xstr[3] * es), (uint64_t)(a->ystr[0] * es), (uint64_t)(a->ystr[2] * es),
                           (uint64_t)(a->ystr[3] * es), 0};
        chk[7] = (uint64_t)(uintptr_t)a->x | (uint64_t)(uintptr_t)a->y;
        u = unit_of(chk, 8, 16);
        /* few channels (under 16 bytes a pixel): flat rows of pixels, 16-byte stores spanning pixels */
        if (u < 16 && a->ystr[3] == C) {
            nhwc = false;
            flat = true;
        }
    }
    const bool rows = flat || (a->ystr[3] == 1 && !nhwc);
    if (nhwc) {
        if (u < es) return -1;
        const int ue = u / es; /* elements per item */
        g.cv = (uint32_t)(C / ue);
        /* strides in the kernel's T: units of u bytes for nearest, elements for linear */
        const int64_t sd = a->mode == KRS_NEAREST ? ue : 1;
        g.xn = (uint32_t)(a->xstr[0] / sd);
        g.xh = (uint32_t)(a->xstr[2] / sd);
        g.xw = (uint32_t)(a->xstr[3] / sd);
        g.yn = (uint32_t)(a->ystr[0] / sd);
        g.yh = (uint32_t)(a->ystr[2] / sd);
        g.yw = (uint32_t)(a->ystr[3] / sd);
        /* tile: up to 32 columns, rows so that a block has a fair share of the items */
        const uint64_t total = (uint64_t)N * Ho * Wo * g.cv;
        uint64_t per = total / (uint64_t)(4 * sms);
        if (per < 256) per = 256;
        if (per > 2048) per = 2048;
        g.tw = (uint32_t)(Wo < 32 ? Wo : 32);
        uint64_t th = per / ((uint64_t)g.tw * g.cv);
        if (th < 1) th = 1;
        if (th > FAST_MAX_TH) th = FAST_MAX_TH;
        if (th > (uint64_t)Ho) th = (uint64_t)Ho;
        g.th = (uint32_t)th;
        dim3 grid(cdiv(Wo, g.tw), cdiv(Ho, g.th), (unsigned)(N < 65535 ? N : 65535));
        if (grid.y > 65535) return -1;
        if (a->mode == KRS_NEAREST) {
            if (u == 16) launch_nhwc<uint4, 1, true>(a, g, grid, bits_as<uint4>(rep), st);
            else if (u == 8) launch_nhwc<uint2, 1, true>(a, g, grid, bits_as<uint2>(rep), st);
            else if (u == 4) launch_nhwc<uint32_t, 1, true>(a, g, grid, bits_as<uint32_t>(rep), st);
            else if (u == 2) launch_nhwc<uint16_t, 1, true>(a, g, grid, bits_as<uint16_t>(rep), st);
            else launch_nhwc<uint8_t, 1, true>(a, g, grid, bits_as<uint8_t>(rep), st);
        } else if (a->dt == KILN_DT_FLOAT16) {
            const __half z = __float2half_rn(0.f);
            if (ue == 8) launch_nhwc<__half, 8, false>(a, g, grid, z, st);
            else if (ue == 4) launch_nhwc<__half, 4, false>(a, g, grid, z, st);
            else if (ue == 2) launch_nhwc<__half, 2, false>(a, g, grid, z, st);
            else launch_nhwc<__half, 1, false>(a, g, grid, z, st);
        } else {
            if (ue == 4) launch_nhwc<float, 4, false>(a, g, grid, 0.f, st);
            else if (ue == 2) launch_nhwc<float, 2, false>(a, g, grid, 0.f, st);
            else launch_nhwc<float, 1, false>(a, g, grid, 0.f, st);
        }
        return (int)cudaGetLastError();
    }
    if (!rows) return -1;
    /* Flat rows: element strides; V outputs along a row per thread when aligned. */
    g.xn = (uint32_t)a->xstr[0];
    g.xh = (uint32_t)a->xstr[2];
    g.xw = (uint32_t)a->xstr[3];
    g.yn = (uint32_t)a->ystr[0];
    g.yh = (uint32_t)a->ystr[2];
    g.yw = 1;
    if (flat) { /* NHWC, pixels dense along W: a row is Wo * C elements, a plane per n */
        g.xc = g.yc = 0;
        g.pc = 1;
        g.ci = (uint32_t)C;
        g.xci = (uint32_t)a->xstr[1];
    } else { /* row-major: a plane per (n, c) */
        g.xc = (uint32_t)a->xstr[1];
        g.yc = (uint32_t)a->ystr[1];
        g.pc = (uint32_t)C;
        g.ci = 1;
        g.xci = 0;
    }
    if ((uint64_t)N * (uint64_t)g.pc > 0x7fffffffu) return -1;
    g.planes = (uint32_t)(N * g.pc);
    const uint64_t rowlen = (uint64_t)Wo * g.ci;
    g.rowlen = (uint32_t)rowlen;
    uint64_t chk[5] = {(uint64_t)(a->ystr[0] * es), (uint64_t)(flat ? 0 : a->ystr[1] * es), (uint64_t)(a->ystr[2] * es),
                       (uint64_t)(uintptr_t)a->y, rowlen * (uint64_t)es};
    int uy = unit_of(chk, 5, 16);
    int V = uy >= es ? uy / es : 1;
    /* Tile: vpr (a power of two up to 32) threads across V * vpr elements of a row, THREADS / vpr
     * rows per pass; rows enough to spread the tiles over the GPU (and amortize the taps). */
    const uint64_t vneed = (rowlen + V - 1) / V;
    uint64_t vpr = 1;
    while (vpr < vneed && vpr < 32) vpr *= 2;
    g.tw = (uint32_t)(vpr * V);
    const unsigned gx = cdiv(rowlen, g.tw);
    uint64_t th = THREADS / vpr, bal = ((uint64_t)Ho * gx + 4 * sms - 1) / (uint64_t)(4 * sms);
    if (th < bal) th = bal;
    if (th > FAST_MAX_TH) th = FAST_MAX_TH;
    if (th > (uint64_t)Ho) th = (uint64_t)Ho;
    g.th = (uint32_t)th;
    dim3 grid(gx, cdiv(Ho, g.th), 1);
    if (grid.y > 65535) return -1;
    uint64_t tiles = (uint64_t)grid.x * grid.y, want = (uint64_t)(4 * sms);
    uint64_t gz = tiles >= want ? 1 : (want + tiles - 1) / tiles;
    if (gz > g.planes) gz = g.planes;
    if (gz > 65535) gz = 65535;
    grid.z = (unsigned)gz;
    if (a->mode == KRS_NEAREST) {
        switch (es) {
        case 1:
            if (V == 16) launch_rows<uint8_t, 16, true>(a, g, grid, bits_as<uint8_t>(rep), st);
            else if (V == 8) launch_rows<uint8_t, 8, true>(a, g, grid, bits_as<uint8_t>(rep), st);
            else if (V == 4) launch_rows<uint8_t, 4, true>(a, g, grid, bits_as<uint8_t>(rep), st);
            else if (V == 2) launch_rows<uint8_t, 2, true>(a, g, grid, bits_as<uint8_t>(rep), st);
            else launch_rows<uint8_t, 1, true>(a, g, grid, bits_as<uint8_t>(rep), st);
            break;
        case 2:
            if (V == 8) launch_rows<uint16_t, 8, true>(a, g, grid, bits_as<uint16_t>(rep), st);
            else if (V == 4) launch_rows<uint16_t, 4, true>(a, g, grid, bits_as<uint16_t>(rep), st);
            else if (V == 2) launch_rows<uint16_t, 2, true>(a, g, grid, bits_as<uint16_t>(rep), st);
            else launch_rows<uint16_t, 1, true>(a, g, grid, bits_as<uint16_t>(rep), st);
            break;
        case 4:
            if (V == 4) launch_rows<uint32_t, 4, true>(a, g, grid, bits_as<uint32_t>(rep), st);
            else if (V == 2) launch_rows<uint32_t, 2, true>(a, g, grid, bits_as<uint32_t>(rep), st);
            else launch_rows<uint32_t, 1, true>(a, g, grid, bits_as<uint32_t>(rep), st);
            break;
        default:
            if (V == 2) launch_rows<uint64_t, 2, true>(a, g, grid, bits_as<uint64_t>(rep), st);
            else launch_rows<uint64_t, 1, true>(a, g, grid, bits_as<uint64_t>(rep), st);
            break;
        }
    } else if (a->dt == KILN_DT_FLOAT16) {
        const __half e = __float2half_rn(a->extrapolation);
        if (V == 8) launch_rows<__half, 8, false>(a, g, grid, e, st);
        else if (V == 4) launch_rows<__half, 4, false>(a, g, grid, e, st);
        else if (V == 2) launch_rows<__half, 2, false>(a, g, grid, e, st);
        else launch_rows<__half, 1, false>(a, g, grid, e, st);
    } else {
        const float e = a->extrapolation;
        if (V == 4) launch_rows<float, 4, false>(a, g, grid, e, st);
        else if (V == 2) launch_rows<float, 2, false>(a, g, grid, e, st);
        else launch_rows<float, 1, false>(a, g, grid, e, st);
    }
    return (int)cudaGetLastError();
}

/* ---- the main kernels ---- */

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

struct Div64 {
    int64_t d;
    __device__ __forceinline__ int64_t div(int64_t x) const { return x / d; }
};

__device__ __forceinline__ uint32_t dval(const FastDiv &f) { return f.d; }
__device__ __forceinline__ int64_t dval(const Div64 &f) { return f.d; }

enum { VEC = 4 }; /* outputs per thread along the innermost axis */

/*
 * The output walked in memory order: the innermost axis (din outputs, cut
 * into chunks of `vec`) and the outer axes (outermost first), whose
 * coordinates come from the row number. Resized outer axes have input stride
 * 0 in xs; outer slot s is a resized outer axis, its coordinate
 * (row / inner[s]) % sdim[s]. The innermost axis reads its own taps when
 * resized (tin / win, kin per output).
 */
template <class I, class D> struct Geo {
    int rank, nres; /* outer axes; resized outer axes */
    int vec;
    I nt;           /* threads: rows * chunks */
    D chunks;       /* chunks per row */
    I din, xs_in, ys_in;
    int in_res, kin;
    const int *tin;
    const float *win;
    D dim[KRS_MAXR];
    I xs[KRS_MAXR], ys[KRS_MAXR];
    D inner[KRS_MAXR];
    D sdim[KRS_MAXR];
    I rxs[KRS_MAXR]; /* input stride of slot s */
    int K[KRS_MAXR];
    const int *tidx[KRS_MAXR];
    const float *tw[KRS_MAXR];
};

/* Input and output offsets of a row's first element (outer axes only). */
template <class I, class D> __device__ __forceinline__ void offsets(const Geo<I, D> &g, I row, I &xo, I &yo)
{
    xo = 0;
    yo = 0;
    for (int k = g.rank - 1; k >= 0; k--) {
        I q = k > 0 ? (I)g.dim[k].div(row) : 0, c = row - q * (I)dval(g.dim[k]);
        row = q;
        xo += c * g.xs[k];
        yo += c * g.ys[k];
    }
}

template <class I, class D> __device__ __forceinline__ I slot_coord(const Geo<I, D> &g, int s, I row)
{
    I q = (I)g.inner[s].div(row);
    return q - (I)g.sdim[s].div(q) * (I)dval(g.sdim[s]);
}

/* Row and first innermost coordinate of thread item t. */
template <class I, class D> __device__ __forceinline__ void split(const Geo<I, D> &g, I t, I &row, I &c0)
{
    row = (I)g.chunks.div(t);
    c0 = (t - row * (I)dval(g.chunks)) * (I)g.vec;
}

template <class S, class I, class D>
__global__ void __launch_bounds__(THREADS) k_nearest(const S *__restrict__ x, S *__restrict__ y, Geo<I, D> g, S extrap)
{
    for (I t = (I)blockIdx.x * THREADS + threadIdx.x; t < g.nt; t += (I)gridDim.x * THREADS) {
        I row, c0, xo, yo;
        split(g, t, row, c0);
        offsets(g, row, xo, yo);
        bool out = false;
        for (int s = 0; s < g.nres; s++) {
            int ti = g.tidx[s][(int64_t)slot_coord(g, s, row) * g.K[s]];
            out |= ti < 0;
            xo += (I)(ti < 0 ? 0 : ti) * g.rxs[s];
        }
        for (int v = 0; v < g.vec; v++) {
            I c = c0 + (I)v;
            if (c >= g.din) break;
            I xv = xo;
            bool o = out;
            if (g.in_res) {
                int ti = g.tin[c];
                o |= ti < 0;
                xv += (I)(ti < 0 ? 0 : ti) * g.xs_in;
            } else {
                xv += c * g.xs_in;
            }
            y[yo + c * g.ys_in] = o ? extrap : x[xv];
        }
    }
}

/* Weighted taps of the innermost axis at coordinate c, from input offset base. */
template <class T, bool IR, class I, class D>
__device__ __forceinline__ float inner_sum(const T *__restrict__ x, const Geo<I, D> &g, I base, I c)
{
    if (!IR) return tof(x[base + c * g.xs_in]);
    const int *ti = g.tin + (int64_t)c * g.kin;
    const float *tw = g.win + (int64_t)c * g.kin;
    float a = 0.f;
    for (int k = 0; k < g.kin; k++) {
        float w = tw[k];
        if (w != 0.f) a += w * tof(x[base + (I)ti[k] * g.xs_in]);
    }
    return a;
}

/* NRO resized outer axes (0, 1 or 2; -1: any number, through an odometer); IR: the innermost axis is resized. */
template <class T, int NRO, bool IR, class I, class D>
__global__ void __launch_bounds__(THREADS) k_filter(const T *__restrict__ x, T *__restrict__ y, Geo<I, D> g, float extrap)
{
    for (I t = (I)blockIdx.x * THREADS + threadIdx.x; t < g.nt; t += (I)gridDim.x * THREADS) {
        I row, c0, xo, yo;
        split(g, t, row, c0);
        offsets(g, row, xo, yo);
        int64_t r0 = 0, r1 = 0;
        bool out = false;
        if (NRO >= 1) {
            r0 = (int64_t)slot_coord(g, 0, row) * g.K[0];
            out |= g.tidx[0][r0] < 0;
        }
        if (NRO >= 2) {
            r1 = (int64_t)slot_coord(g, 1, row) * g.K[1];
            out |= g.tidx[1][r1] < 0;
        }
        int64_t rows[KRS_MAXR];
        if (NRO < 0)
            for (int s = 0; s < g.nres; s++) {
                rows[s] = (int64_t)slot_coord(g, s, row) * g.K[s];
                out |= g.tidx[s][rows[s]] < 0;
            }
        for (int v = 0; v < g.vec; v++) {
            I c = c0 + (I)v;
            if (c >= g.din) break;
            bool o = out || (IR && g.tin[(int64_t)c * g.kin] < 0);
            float acc = 0.f;
            if (o) {
                acc = extrap;
            } else if (NRO == 0) {
                acc = inner_sum<T, IR>(x, g, xo, c);
            } else if (NRO == 1 || NRO == 2) {
                const int *i0 = g.tidx[0] + r0;
                const float *w0 = g.tw[0] + r0;
                for (int a = 0; a < g.K[0]; a++) {
                    float wa = w0[a];
                    if (wa == 0.f) continue;
                    I oa = xo + (I)i0[a] * g.rxs[0];
                    /* NRO == 1: a single pass along an absent second axis. */
                    int kb = NRO == 2 ? g.K[NRO - 1] : 1;
                    for (int b = 0; b < kb; b++) {
                        float wb = NRO == 2 ? g.tw[NRO - 1][r1 + b] : 1.f;
                        if (wb == 0.f) continue;
                        I ob = NRO == 2 ? oa + (I)g.tidx[NRO - 1][r1 + b] * g.rxs[NRO - 1] : oa;
                        acc += wa * wb * inner_sum<T, IR>(x, g, ob, c);
                    }
                }
            } else {
                int cnt[KRS_MAXR];
                for (int s = 0; s < g.nres; s++) cnt[s] = 0;
                for (;;) {
                    float w = 1.f;
                    I off = xo;
                    for (int s = 0; s < g.nres; s++) {
                        w *= g.tw[s][rows[s] + cnt[s]];
                        off += (I)g.tidx[s][rows[s] + cnt[s]] * g.rxs[s];
                    }
                    if (w != 0.f) acc += w * inner_sum<T, IR>(x, g, off, c);
                    int s = g.nres - 1;
                    for (; s >= 0; s--) {
                        if (++cnt[s] < g.K[s]) break;
                        cnt[s] = 0;
                    }
                    if (s < 0) break;
                }
            }
            y[yo + c * g.ys_in] = fromf<T>(acc);
        }
    }
}

static unsigned blocks_for(int64_t n)
{
    int64_t b = (n + THREADS - 1) / THREADS;
    if (b > (1 << 20)) b = 1 << 20;
    return (unsigned)(b < 1 ? 1 : b);
}

/* Taps per output index of one axis; 0 when over KRS_MAXK. */
static int taps_of(const krs_args *a, const krs_axis *x)
{
    if (a->mode == KRS_NEAREST) return 1;
    if (!a->antialias) return a->mode == KRS_LINEAR ? 2 : 4;
    double s = x->scale < 1.0 ? x->scale : 1.0;
    double support = a->mode == KRS_LINEAR ? 1.0 : 2.0;
    double st = floor(-support / s) + 1;
    double n = 2 - 2 * st;
    return (n >= 1 && n <= KRS_MAXK) ? (int)n : 0;
}

template <class I, class D> static D mkdiv(int64_t d);
template <> FastDiv mkdiv<uint32_t, FastDiv>(int64_t d) { return make_fastdiv((uint32_t)d); }
template <> Div64 mkdiv<int64_t, Div64>(int64_t d)
{
    Div64 v;
    v.d = d;
    return v;
}

/* ord: the output axes walked (size > 1 or resized), outermost first; rank >= 1. */
template <class I, class D>
static void build_geo(const krs_args *a, const int *ord, int rank, int **tidx, float **tw, Geo<I, D> &g)
{
    memset(&g, 0, sizeof g);
    const int last = ord[rank - 1];
    const krs_axis *in = &a->ax[last];
    g.din = (I)in->out_len;
    g.vec = in->out_len >= VEC ? VEC : 1;
    g.ys_in = (I)a->ystr[last];
    g.xs_in = (I)a->xstr[last];
    g.in_res = in->resized;
    g.kin = in->taps;
    g.tin = tidx[last];
    g.win = tw[last];
    int64_t chunks = (in->out_len + g.vec - 1) / g.vec, rows = 1;
    g.rank = rank - 1;
    int slot_of[KRS_MAXR], ns = 0;
    for (int k = 0; k < g.rank; k++) {
        slot_of[k] = a->ax[ord[k]].resized ? ns++ : -1;
        rows *= a->ax[ord[k]].out_len;
    }
    g.nres = ns;
    g.chunks = mkdiv<I, D>(chunks);
    g.nt = (I)(rows * chunks);
    int64_t inner = 1;
    for (int k = g.rank - 1; k >= 0; k--) {
        const krs_axis *x = &a->ax[ord[k]];
        g.dim[k] = mkdiv<I, D>(x->out_len);
        g.ys[k] = (I)a->ystr[ord[k]];
        g.xs[k] = x->resized ? 0 : (I)a->xstr[ord[k]];
        int s = slot_of[k];
        if (s >= 0) {
            g.inner[s] = mkdiv<I, D>(inner);
            g.sdim[s] = mkdiv<I, D>(x->out_len);
            g.rxs[s] = (I)a->xstr[ord[k]];
            g.K[s] = x->taps;
            g.tidx[s] = tidx[ord[k]];
            g.tw[s] = tw[ord[k]];
        }
        inner *= x->out_len;
    }
}

template <class T, int NRO, class I, class D>
static void launch_filter(const krs_args *a, const Geo<I, D> &g, unsigned b, cudaStream_t st)
{
    const T *x = (const T *)a->x;
    T *y = (T *)a->y;
    if (g.in_res) k_filter<T, NRO, true, I, D><<<b, THREADS, 0, st>>>(x, y, g, a->extrapolation);
    else k_filter<T, NRO, false, I, D><<<b, THREADS, 0, st>>>(x, y, g, a->extrapolation);
}

template <class T, class I, class D>
static void launch_filter_t(const krs_args *a, const Geo<I, D> &g, unsigned b, cudaStream_t st)
{
    switch (g.nres) {
    case 0: launch_filter<T, 0>(a, g, b, st); break;
    case 1: launch_filter<T, 1>(a, g, b, st); break;
    case 2: launch_filter<T, 2>(a, g, b, st); break;
    default: launch_filter<T, -1>(a, g, b, st); break;
    }
}

template <class I, class D>
static void launch_main(const krs_args *a, const Geo<I, D> &g, cudaStream_t st)
{
    unsigned b = blocks_for((int64_t)g.nt);
    if (a->mode == KRS_NEAREST) {
        switch (a->es) {
        case 1: k_nearest<uint8_t, I, D><<<b, THREADS, 0, st>>>((const uint8_t *)a->x, (uint8_t *)a->y, g, (uint8_t)a->extrap_bits); break;
        case 2: k_nearest<uint16_t, I, D><<<b, THREADS, 0, st>>>((const uint16_t *)a->x, (uint16_t *)a->y, g, (uint16_t)a->extrap_bits); break;
        case 4: k_nearest<uint32_t, I, D><<<b, THREADS, 0, st>>>((const uint32_t *)a->x, (uint32_t *)a->y, g, (uint32_t)a->extrap_bits); break;
        default: k_nearest<uint64_t, I, D><<<b, THREADS, 0, st>>>((const uint64_t *)a->x, (uint64_t *)a->y, g, (uint64_t)a->extrap_bits); break;
        }
        return;
    }
    if (a->dt == KILN_DT_FLOAT) launch_filter_t<float>(a, g, b, st);
    else launch_filter_t<__half>(a, g, b, st);
}

/* ---- GridSample ---- */

struct GsGeo {
    int mode, padding, align;
    int64_t len[3];           /* input spatial dims */
    int64_t xs[5], gs[5], ys[5];
    int64_t total;
    int ord[5];               /* output axes in memory order, outermost first */
    int64_t od[5];
};

__device__ double reflect(double x, double lo, double hi)
{
    double rng = dsub(hi, lo);
    if (!(rng > 0)) return lo;
    if (x < lo) {
        double dx = dsub(lo, x), n = floor(ddiv(dx, rng)), r = dsub(dx, dmul(n, rng));
        return fmod(n, 2.0) == 0 ? dadd(lo, r) : dsub(hi, r);
    }
    if (x > hi) {
        double dx = dsub(x, hi), n = floor(ddiv(dx, rng)), r = dsub(dx, dmul(n, rng));
        return fmod(n, 2.0) == 0 ? dsub(hi, r) : dadd(lo, r);
    }
    return x;
}

__device__ double gs_cubic_w(double x, int j)
{
    const double a = -0.75;
    double t = j == 0 ? x + 1 : j == 1 ? x : j == 2 ? 1 - x : 2 - x;
    if (j == 1 || j == 2) return ((a + 2) * t - (a + 3)) * t * t + 1;
    return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
}

/* One tap index after padding: -1 when it reads zero. */
__device__ int64_t gs_tap(const GsGeo &g, int64_t i, int64_t len, double lo, double hi)
{
    if (g.padding == KGS_ZEROS) return (i >= 0 && i < len) ? i : -1;
    if (g.padding == KGS_BORDER) return i < 0 ? 0 : i >= len ? len - 1 : i;
    double f = reflect((double)i, lo, hi);
    int64_t k = (int64_t)f;
    return k < 0 ? 0 : k >= len ? len - 1 : k;
}

/* Taps along one axis of length len for normalized coordinate gn; returns the tap count. */
__device__ int gs_axis(const GsGeo &g, double gn, int64_t len, int64_t *ti, double *tw)
{
    double l = (double)len;
    double lo = g.align ? 0.0 : -0.5, hi = g.align ? l - 1.0 : l - 0.5;
    float xf = g.align ? (float)dmul(ddiv(dadd(gn, 1.0), 2.0), dsub(l, 1.0))
                       : (float)ddiv(dsub(dmul(dadd(gn, 1.0), l), 1.0), 2.0);
    double c = xf;
    if (isnan(c)) c = -1e9;
    c = c < -1e9 ? -1e9 : c > 1e9 ? 1e9 : c;
    if (g.mode == KGS_NEAREST) c = rint(c);
    if (c < lo || c > hi) {
        if (g.padding == KGS_BORDER) c = c < 0 ? 0 : c > l - 1 ? l - 1 : c;
        else if (g.padding == KGS_REFLECTION) c = reflect(c, lo, hi);
    }
    if (g.mode == KGS_NEAREST) {
        ti[0] = gs_tap(g, (int64_t)c, len, lo, hi);
        tw[0] = 1;
        return 1;
    }
    double f = floor(c), t = dsub(c, f);
    int64_t i0 = (int64_t)f;
    if (g.mode == KGS_LINEAR) {
        ti[0] = gs_tap(g, i0, len, lo, hi);
        ti[1] = gs_tap(g, i0 + 1, len, lo, hi);
        tw[0] = 1 - t;
        tw[1] = t;
        return 2;
    }
    for (int j = 0; j < 4; j++) {
        ti[j] = gs_tap(g, i0 - 1 + j, len, lo, hi);
        tw[j] = gs_cubic_w(t, j);
    }
    return 4;
}

template <class T, int D>
__global__ void __launch_bounds__(THREADS) k_gridsample(const T *__restrict__ x, const T *__restrict__ grid,
                                                        T *__restrict__ y, GsGeo g)
{
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < g.total; i += (int64_t)gridDim.x * THREADS) {
        int64_t c[D + 2], r = i;
        for (int k = D + 1; k >= 0; k--) {
            c[g.ord[k]] = r % g.od[k];
            r /= g.od[k];
        }
        const T *gp = grid + c[0] * g.gs[0];
        for (int k = 0; k < D; k++) gp += c[2 + k] * g.gs[1 + k];
        int64_t ti[D][4];
        double tw[D][4];
        int nt[D];
        /* grid's last dim lists the innermost spatial dim first. */
#pragma unroll
        for (int k = 0; k < D; k++)
            nt[k] = gs_axis(g, (double)tof(gp[(D - 1 - k) * g.gs[D + 1]]), g.len[k], ti[k], tw[k]);
        const T *xp = x + c[0] * g.xs[0] + c[1] * g.xs[1];
        int64_t yo = c[0] * g.ys[0] + c[1] * g.ys[1];
        for (int k = 0; k < D; k++) yo += c[2 + k] * g.ys[2 + k];
        double acc = 0;
        if (D == 2) {
            for (int a = 0; a < nt[0]; a++) {
                if (ti[0][a] < 0) continue;
                for (int b = 0; b < nt[D - 1]; b++) {
                    if (ti[D - 1][b] < 0) continue;
                    acc += tw[0][a] * tw[D - 1][b] * (double)tof(xp[ti[0][a] * g.xs[2] + ti[D - 1][b] * g.xs[3]]);
                }
            }
        } else {
            for (int a = 0; a < nt[0]; a++) {
                if (ti[0][a] < 0) continue;
                for (int b = 0; b < nt[1]; b++) {
                    if (ti[1][b] < 0) continue;
                    for (int e = 0; e < nt[D - 1]; e++) {
                        if (ti[D - 1][e] < 0) continue;
                        acc += tw[0][a] * tw[1][b] * tw[D - 1][e] *
                               (double)tof(xp[ti[0][a] * g.xs[2] + ti[1][b] * g.xs[3] + ti[D - 1][e] * g.xs[D + 1]]);
                    }
                }
            }
        }
        y[yo] = fromf<T>((float)acc);
    }
}

/*
 * 4-D GridSample with one thread per output pixel: the taps and weights (the
 * costly part: double-precision coordinate math as the reference) are
 * computed once and reused for every channel, in the same order as the
 * per-element kernel above.
 */
template <class T>
__global__ void __launch_bounds__(THREADS) k_gridsample_px(const T *__restrict__ x, const T *__restrict__ grid,
                                                           T *__restrict__ y, GsGeo g, int64_t npix, int64_t C,
                                                           int64_t Ho, int64_t Wo)
{
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < npix; i += (int64_t)gridDim.x * THREADS) {
        const int64_t wo = i % Wo, r = i / Wo, ho = r % Ho, n = r / Ho;
        const T *gp = grid + n * g.gs[0] + ho * g.gs[1] + wo * g.gs[2];
        int64_t ti[2][4];
        double tw[2][4];
        int nt[2];
        /* grid's last dim lists the innermost spatial dim (W) first. */
        nt[0] = gs_axis(g, (double)tof(gp[g.gs[3]]), g.len[0], ti[0], tw[0]);
        nt[1] = gs_axis(g, (double)tof(gp[0]), g.len[1], ti[1], tw[1]);
        int64_t off[16];
        double w[16];
        int nc = 0;
        for (int a = 0; a < nt[0]; a++) {
            if (ti[0][a] < 0) continue;
            for (int b = 0; b < nt[1]; b++) {
                if (ti[1][b] < 0) continue;
                off[nc] = ti[0][a] * g.xs[2] + ti[1][b] * g.xs[3];
                w[nc] = tw[0][a] * tw[1][b];
                nc++;
            }
        }
        const T *xp = x + n * g.xs[0];
        T *yp = y + n * g.ys[0] + ho * g.ys[2] + wo * g.ys[3];
        for (int64_t c = 0; c < C; c++) {
            const T *xc = xp + c * g.xs[1];
            double acc = 0;
            for (int k = 0; k < nc; k++) acc += w[k] * (double)tof(xc[off[k]]);
            yp[c * g.ys[1]] = fromf<T>((float)acc);
        }
    }
}

} // namespace

/*
 * Fills each axis' `resized` and `taps` from the geometry (scale, lengths)
 * and returns 0, or -1 when an antialiasing filter is too wide for the GPU.
 * An axis of equal lengths and scale 1 maps every index to itself under every
 * transformation except tf_crop_and_resize and tf_half_pixel_for_nn.
 */
extern "C" int kiln__krs_plan(krs_args *a)
{
    if (a->rank < 1 || a->rank > KRS_MAXR) return -1;
    for (int i = 0; i < a->rank; i++) {
        krs_axis *x = &a->ax[i];
        x->resized = !(x->in_len == x->out_len && x->scale == 1.0 && a->ctm != KRS_TF_CROP_AND_RESIZE &&
                       a->ctm != KRS_TF_HALF_PIXEL_FOR_NN);
        x->taps = x->resized ? taps_of(a, x) : 1;
        if (x->taps < 1 || x->in_len > 0x7fffffff) return -1;
    }
    return 0;
}

/* Workspace bytes for the tap tables (after kiln__krs_plan). */
extern "C" size_t kiln__krs_workspace(const krs_args *a)
{
    size_t n = 0;
    for (int i = 0; i < a->rank && i < KRS_MAXR; i++)
        if (a->ax[i].resized && a->ax[i].out_len > 0)
            n += 2 * align_up((size_t)a->ax[i].out_len * (size_t)a->ax[i].taps * 4);
    return n;
}

extern "C" int kiln__krs_resize(const krs_args *a, void *stream)
{
    cudaStream_t st = (cudaStream_t)stream;
    if (a->rank < 1 || a->rank > KRS_MAXR) return (int)cudaErrorInvalidValue;
    int64_t total = 1;
    for (int i = 0; i < a->rank; i++) {
        if (a->ax[i].out_len < 0 || a->ax[i].in_len < 0) return (int)cudaErrorInvalidValue;
        total *= a->ax[i].out_len;
    }
    if (total == 0) return 0;
    if (!a->x || !a->y) return (int)cudaErrorInvalidValue;
    if (a->mode == KRS_NEAREST ? (a->es != 1 && a->es != 2 && a->es != 4 && a->es != 8)
                               : (a->dt != KILN_DT_FLOAT && a->dt != KILN_DT_FLOAT16))
        return (int)cudaErrorInvalidValue;
    /* 4-D nearest / linear in NHWC or with a row-major output: no tap tables needed */
    int fast = try_fast(a, st);
    if (fast >= 0) return fast;
    size_t need = kiln__krs_workspace(a);
    if (need > a->ws_bytes || (need && !a->ws)) return (int)cudaErrorInvalidValue;
    /* Tap tables, one per resized axis. */
    int *tidx[KRS_MAXR] = {0};
    float *tw[KRS_MAXR] = {0};
    uint8_t *p = (uint8_t *)a->ws;
    for (int i = 0; i < a->rank; i++) {
        const krs_axis *x = &a->ax[i];
        if (!x->resized) continue;
        if (x->in_len < 1 || x->taps < 1 || x->taps > KRS_MAXK) return (int)cudaErrorInvalidValue;
        size_t bytes = align_up((size_t)x->out_len * (size_t)x->taps * 4);
        tidx[i] = (int *)p;
        tw[i] = (float *)(p + bytes);
        p += 2 * bytes;
        TapPrm t;
        t.mode = a->mode;
        t.ctm = a->ctm;
        t.nearest = a->nearest;
        t.exclude_outside = a->exclude_outside;
        t.antialias = a->antialias;
        t.K = x->taps;
        t.scale = x->scale;
        t.roi_s = x->roi_s;
        t.roi_e = x->roi_e;
        t.a = a->cubic_a;
        t.in_len = x->in_len;
        t.out_len = x->out_len;
        k_taps<<<blocks_for(x->out_len), THREADS, 0, st>>>(t, tidx[i], tw[i]);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) return (int)e;
    }
    /* Axes of size > 1 by decreasing output stride (stable): threads write in memory order. */
    int ord[KRS_MAXR], rank = 0;
    for (int i = 0; i < a->rank; i++)
        if (a->ax[i].out_len != 1 || a->ax[i].resized) ord[rank++] = i;
    if (rank == 0) ord[rank++] = a->rank - 1; /* a single element: walk one axis of 1 */
    for (int i = 1; i < rank; i++)
        for (int j = i; j > 0 && a->ystr[ord[j]] > a->ystr[ord[j - 1]]; j--) {
            int t = ord[j];
            ord[j] = ord[j - 1];
            ord[j - 1] = t;
        }
    int64_t xspan = 0, yspan = 0;
    for (int i = 0; i < a->rank; i++) {
        if (a->xstr[i] < 0 || a->ystr[i] < 0) return (int)cudaErrorInvalidValue;
        xspan += (a->ax[i].in_len - 1) * a->xstr[i];
        yspan += (a->ax[i].out_len - 1) * a->ystr[i];
    }
    if (total < ((int64_t)1 << 31) && xspan < ((int64_t)1 << 31) && yspan < ((int64_t)1 << 31)) {
        Geo<uint32_t, FastDiv> g;
        build_geo<uint32_t, FastDiv>(a, ord, rank, tidx, tw, g);
        launch_main(a, g, st);
    } else {
        Geo<int64_t, Div64> g;
        build_geo<int64_t, Div64>(a, ord, rank, tidx, tw, g);
        launch_main(a, g, st);
    }
    return (int)cudaGetLastError();
}

extern "C" int kiln__kgs_gridsample(const kgs_args *a, void *stream)
{
    if (a->rank != 4 && a->rank != 5) return (int)cudaErrorInvalidValue;
    int r = a->rank, D = r - 2;
    GsGeo g;
    memset(&g, 0, sizeof g);
    g.mode = a->mode;
    g.padding = a->padding;
    g.align = a->align_corners;
    g.total = 1;
    for (int i = 0; i < r; i++) {
        if (a->ydims[i] < 0) return (int)cudaErrorInvalidValue;
        g.total *= a->ydims[i];
        g.xs[i] = a->xstr[i];
        g.gs[i] = a->gstr[i];
        g.ys[i] = a->ystr[i];
    }
    for (int k = 0; k < D; k++) g.len[k] = a->xdims[2 + k];
    if (g.total == 0) return 0;
    if (!a->x || !a->grid || !a->y || (a->dt != KILN_DT_FLOAT && a->dt != KILN_DT_FLOAT16))
        return (int)cudaErrorInvalidValue;
    for (int k = 0; k < D; k++)
        if (g.len[k] < 1) return (int)cudaErrorInvalidValue;
    int ord[5] = {0, 1, 2, 3, 4};
    for (int i = 1; i < r; i++)
        for (int j = i; j > 0 && a->ystr[ord[j]] > a->ystr[ord[j - 1]]; j--) {
            int t = ord[j];
            ord[j] = ord[j - 1];
            ord[j - 1] = t;
        }
    for (int i = 0; i < r; i++) {
        g.ord[i] = ord[i];
        g.od[i] = a->ydims[ord[i]];
    }
    cudaStream_t st = (cudaStream_t)stream;
    if (D == 2) {
        /* one thread per output pixel, looping over channels */
        const int64_t npix = a->ydims[0] * a->ydims[2] * a->ydims[3];
        unsigned bp = blocks_for(npix);
        if (a->dt == KILN_DT_FLOAT)
            k_gridsample_px<float><<<bp, THREADS, 0, st>>>((const float *)a->x, (const float *)a->grid, (float *)a->y, g,
                                                           npix, a->ydims[1], a->ydims[2], a->ydims[3]);
        else
            k_gridsample_px<__half><<<bp, THREADS, 0, st>>>((const __half *)a->x, (const __half *)a->grid,
                                                            (__half *)a->y, g, npix, a->ydims[1], a->ydims[2],
                                                            a->ydims[3]);
        return (int)cudaGetLastError();
    }
    unsigned b = blocks_for(g.total);
    if (a->dt == KILN_DT_FLOAT) {
        const float *x = (const float *)a->x, *gr = (const float *)a->grid;
        float *y = (float *)a->y;
        if (D == 2) k_gridsample<float, 2><<<b, THREADS, 0, st>>>(x, gr, y, g);
        else k_gridsample<float, 3><<<b, THREADS, 0, st>>>(x, gr, y, g);
    } else {
        const __half *x = (const __half *)a->x, *gr = (const __half *)a->grid;
        __half *y = (__half *)a->y;
        if (D == 2) k_gridsample<__half, 2><<<b, THREADS, 0, st>>>(x, gr, y, g);
        else k_gridsample<__half, 3><<<b, THREADS, 0, st>>>(x, gr, y, g);
    }
    return (int)cudaGetLastError();
}
