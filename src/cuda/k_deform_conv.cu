/*
 * Deformable convolution (ONNX DeformConv / DCNv2), 2-D, fp32 and fp16.
 *
 * Implicit GEMM with the bilinear sampling fused in: per group,
 *   Y[m, p] = sum_k W[m, k] * col[k, p],  k = (tap, c),  p = output pixel,
 * where col[(tap, c), p] = mask * bilinear(X[c], base(p, tap) + offset).
 * Each CTA owns a BM x BN tile of Y (output channels x output pixels) and
 * walks K in chunks of BK channels of one kernel tap: it samples that chunk
 * of col straight into shared memory (no im2col buffer in global memory),
 * stages the matching weight slice and multiplies: tensor cores (mma.sync
 * m16n8k16, fp32 accumulate) for fp16, FFMA for fp32 (exact fp32, as the
 * CPU reference). K is ordered tap-major so that one sampling work item
 * covers V consecutive channels of one offset group: the coordinates and
 * bilinear weights are computed once for them, and with channel-contiguous
 * (NHWC) input each corner is one 16-byte load.
 *
 * Every tensor is read and written through its strides, so any layout works;
 * the vector path needs C stride 1 and 16-byte alignment. The output tile
 * goes through shared memory so stores are coalesced along whichever of C or
 * W is contiguous. Bias and an activation are applied in the epilogue.
 */
#include "cuda_tensor.h"
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include <atomic>

#include "k_deform_conv.h"

namespace {

enum { THREADS = 256, BM = 64, BK = 32 };

__device__ __forceinline__ float tof(float v) { return v; }
__device__ __forceinline__ float tof(__half v) { return __half2float(v); }
template <class T> __device__ __forceinline__ T fromf(float v);
template <> __device__ __forceinline__ float fromf<float>(float v) { return v; }
template <> __device__ __forceinline__ __half fromf<__half>(float v) { return __float2half_rn(v); }

template <class T, int BN> struct Tile {
    static constexpr int CS_LD = BN + 1;
    static constexpr int LDS = sizeof(T) == 2 ? BK + 8 : BK + 1; /* row pitch of As / Bs in elements */
    static constexpr int AB_BYTES = (BM + BN) * LDS * (int)sizeof(T);
    static constexpr int CS_BYTES = BM * CS_LD * 4;
    static constexpr int UNION_BYTES = ((AB_BYTES > CS_BYTES ? AB_BYTES : CS_BYTES) + 15) / 16 * 16;
    static constexpr int SMEM = UNION_BYTES + 2 * BN * 4;
};

struct Geo {
    int n, c, h, w, m, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
    int group, og, cg, mg, cpo, taps, P, mtiles, ptiles;
    int64_t xs[4], wts[4], offs[4], ms[4], ys[4], bs;
    int act;
    float alpha;
    int tiles_x, wr, wh, ww; /* fast kernel: tiles per output row; X window margin and size (tactics 9-11) */
    int orec, mrec;          /* fast kernel, OST: staged offset / mask record lengths per pixel (0: not staged) */
};

template <class T> struct Ptrs {
    const T *x, *wt, *off, *mask, *bias;
    T *y;
};

/* Loads V channels (stride cs) at one corner and adds wgt * value into acc. */
template <class T, int V, bool VEC, class I>
__device__ __forceinline__ void corner(const T *__restrict__ p, I cs, float wgt, float *acc)
{
    if constexpr (VEC && sizeof(T) == 2) {
        uint4 q = __ldg(reinterpret_cast<const uint4 *>(p));
        const __half2 *hp = reinterpret_cast<const __half2 *>(&q);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float2 f = __half22float2(hp[j]);
            acc[2 * j] += wgt * f.x;
            acc[2 * j + 1] += wgt * f.y;
        }
    } else if constexpr (VEC) {
        float4 q = __ldg(reinterpret_cast<const float4 *>(p));
        acc[0] += wgt * q.x;
        acc[1] += wgt * q.y;
        acc[2] += wgt * q.z;
        acc[3] += wgt * q.w;
    } else {
#pragma unroll
        for (int j = 0; j < V; j++) acc[j] += wgt * tof(p[(I)j * cs]);
    }
}

/* Branch-free corner: always loads (the caller clamps the address into the image), adds only when valid. */
template <class T, int V, bool VEC, class I>
__device__ __forceinline__ void corner_bf(const T *__restrict__ p, I cs, float wgt, bool ok, float *acc)
{
    if constexpr (VEC && sizeof(T) == 2) {
        uint4 q = __ldg(reinterpret_cast<const uint4 *>(p));
        const __half2 *hp = reinterpret_cast<const __half2 *>(&q);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float2 f = __half22float2(hp[j]);
            acc[2 * j] += ok ? wgt * f.x : 0.f;
            acc[2 * j + 1] += ok ? wgt * f.y : 0.f;
        }
    } else if constexpr (VEC) {
        float4 q = __ldg(reinterpret_cast<const float4 *>(p));
        acc[0] += ok ? wgt * q.x : 0.f;
        acc[1] += ok ? wgt * q.y : 0.f;
        acc[2] += ok ? wgt * q.z : 0.f;
        acc[3] += ok ? wgt * q.w : 0.f;
    } else {
#pragma unroll
        for (int j = 0; j < V; j++) {
            float f = tof(__ldg(p + (I)j * cs));
            acc[j] += ok ? wgt * f : 0.f;
        }
    }
}

__device__ __forceinline__ void mma16816(float *d, const uint32_t *a, const uint32_t *b)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/* acc += As (BM x BK, row-major) x Bs^T (BN x BK): tensor cores for fp16, FFMA for fp32. */
template <class T, int BN>
__device__ __forceinline__ void chunk_mma(const T *__restrict__ As, const T *__restrict__ Bs, float *acc, int tid)
{
    constexpr int LDS = Tile<T, BN>::LDS;
    constexpr int NI = BN / 32, JN = BN / 16;
    constexpr bool HALF = sizeof(T) == 2;
    if constexpr (HALF) {
        const int warp = tid >> 5, lane = tid & 31, wm = warp & 1, wn = warp >> 1;
        const int gq = lane >> 2, t4 = lane & 3;
#pragma unroll
        for (int ks = 0; ks < BK / 16; ks++) {
            uint32_t af[2][4], bf[NI][2];
#pragma unroll
            for (int mi = 0; mi < 2; mi++) {
                const T *a0 = As + (wm * 32 + mi * 16 + gq) * LDS + ks * 16 + t4 * 2;
                af[mi][0] = *reinterpret_cast<const uint32_t *>(a0);
                af[mi][1] = *reinterpret_cast<const uint32_t *>(a0 + 8 * LDS);
                af[mi][2] = *reinterpret_cast<const uint32_t *>(a0 + 8);
                af[mi][3] = *reinterpret_cast<const uint32_t *>(a0 + 8 * LDS + 8);
            }
#pragma unroll
            for (int ni = 0; ni < NI; ni++) {
                const T *b0 = Bs + (wn * (BN / 4) + ni * 8 + gq) * LDS + ks * 16 + t4 * 2;
                bf[ni][0] = *reinterpret_cast<const uint32_t *>(b0);
                bf[ni][1] = *reinterpret_cast<const uint32_t *>(b0 + 8);
            }
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
#pragma unroll
                for (int ni = 0; ni < NI; ni++) mma16816(&acc[(mi * NI + ni) * 4], af[mi], bf[ni]);
        }
    } else {
        const int tx = tid & 15, ty = tid >> 4;
#pragma unroll 4
        for (int k = 0; k < BK; k++) {
            float a[4], bv[JN];
#pragma unroll
            for (int i = 0; i < 4; i++) a[i] = tof(As[(ty + 16 * i) * LDS + k]);
#pragma unroll
            for (int j = 0; j < JN; j++) bv[j] = tof(Bs[(tx + 16 * j) * LDS + k]);
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < JN; j++) acc[i * JN + j] += a[i] * bv[j];
        }
    }
}

/*
 * MODE 0: one channel per sampling item (any channel count); 1: V channels
 * per item through scalar loads; 2: V channels per item as one 16-byte load.
 */
template <class T, int MODE, class I, int BN, bool BF>
__global__ void __launch_bounds__(THREADS, BF ? 2 : 1) k_deform_conv(Ptrs<T> pt, Geo g)
{
    constexpr int V = MODE == 0 ? 1 : 16 / (int)sizeof(T);
    constexpr bool VEC = MODE == 2;
    constexpr int LDS = Tile<T, BN>::LDS;
    constexpr int CS_LD = Tile<T, BN>::CS_LD;
    constexpr int NI = BN / 32; /* fp16: n8 tiles per warp (a warp covers BN / 4 columns) */
    constexpr int JN = BN / 16; /* fp32: columns per thread */
    constexpr bool HALF = sizeof(T) == 2;
    extern __shared__ __align__(16) unsigned char smem[];
    T *As = reinterpret_cast<T *>(smem);
    T *Bs = As + BM * LDS;
    float *Cs = reinterpret_cast<float *>(smem);
    int *pix_oh = reinterpret_cast<int *>(smem + Tile<T, BN>::UNION_BYTES);
    int *pix_ow = pix_oh + BN;

    const int tid = threadIdx.x;
    int64_t b = blockIdx.x;
    const int ptile = (int)(b % g.ptiles);
    b /= g.ptiles;
    const int mtile = (int)(b % g.mtiles);
    b /= g.mtiles;
    const int grp = (int)(b % g.group);
    const int n = (int)(b / g.group);
    const int p0 = ptile * BN, m0 = mtile * BM;

    for (int i = tid; i < BN; i += THREADS) {
        int p = p0 + i;
        pix_oh[i] = p < g.P ? p / g.ow : -1;
        pix_ow[i] = p < g.P ? p % g.ow : 0;
    }

    /* fp16: 8 warps as 2 (M) x 4 (N), 32 x BN/4 each; fp32: 16 x 16 threads, 4 x BN/16 outputs each. */
    constexpr int NACC = HALF ? 2 * NI * 4 : 4 * JN;
    float acc[NACC];
#pragma unroll
    for (int i = 0; i < NACC; i++) acc[i] = 0.f;

    const T *xn = pt.x + (I)n * (I)g.xs[0];
    const T *offn = pt.off + (I)n * (I)g.offs[0];
    const T *mkn = pt.mask ? pt.mask + (I)n * (I)g.ms[0] : nullptr;
    const I xs1 = (I)g.xs[1], xs2 = (I)g.xs[2], xs3 = (I)g.xs[3];

    if constexpr (BF) {
        /*
         * Software-pipelined, branch-free sampling: the weights and offsets/mask of chunk kc+1 are
         * loaded while chunk kc is sampled and multiplied, and corner loads use addresses clamped
         * into the image (invalid corners add nothing), so one memory latency per chunk is exposed
         * instead of three. Needs H, W >= 1 and V > 1 (the host checks).
         */
        constexpr int VPR = BK / V;
        constexpr int IPT = BN * VPR / THREADS;
        constexpr int WPT = BM * BK / THREADS;
        const int nck = (g.cg + BK - 1) / BK, nch = g.taps * nck;
        auto prefetch = [&](int kc, float (&w_)[WPT], float (&dy_)[IPT], float (&dx_)[IPT], float (&mk_)[IPT],
                            int (&cab_)[IPT]) {
            const int tap = kc / nck, c0 = (kc % nck) * BK, ki = tap / g.kw, kj = tap % g.kw;
#pragma unroll
            for (int r = 0; r < WPT; r++) {
                const int i = tid + r * THREADS, kk = i % BK, mm = i / BK, m = m0 + mm, c = c0 + kk;
                const bool ok = m < g.mg && c < g.cg;
                const I wi = (I)(grp * g.mg + (ok ? m : 0)) * (I)g.wts[0] + (I)(ok ? c : 0) * (I)g.wts[1] +
                             (I)ki * (I)g.wts[2] + (I)kj * (I)g.wts[3];
                const float v = tof(pt.wt[wi]);
                w_[r] = ok ? v : 0.f;
            }
#pragma unroll
            for (int q = 0; q < IPT; q++) {
                const int it = tid + q * THREADS, pl = it % BN, c = c0 + (it / BN) * V;
                const int oh = pix_oh[pl];
                const bool valid = oh >= 0 && c < g.cg;
                const int ohc = valid ? oh : 0, ow = pix_ow[pl];
                const int cabs = grp * g.cg + (valid ? c : 0);
                const int tg = (cabs / g.cpo) * g.taps + tap;
                const I ob = (I)ohc * (I)g.offs[2] + (I)ow * (I)g.offs[3];
                dy_[q] = tof(offn[ob + (I)(2 * tg) * (I)g.offs[1]]);
                dx_[q] = tof(offn[ob + (I)(2 * tg + 1) * (I)g.offs[1]]);
                const float mk =
                    mkn ? tof(mkn[(I)tg * (I)g.ms[1] + (I)ohc * (I)g.ms[2] + (I)ow * (I)g.ms[3]]) : 1.f;
                mk_[q] = valid ? mk : 0.f;
                cab_[q] = valid ? cabs : -1;
            }
        };
        float wr[WPT], dyv[IPT], dxv[IPT], mkv[IPT];
        int cabv[IPT];
        __syncthreads(); /* pix_* are written */
        if (nch > 0) prefetch(0, wr, dyv, dxv, mkv, cabv);
        for (int kc = 0; kc < nch; kc++) {
            const int tap = kc / nck, ki = tap / g.kw, kj = tap % g.kw;
            const int dyb = ki * g.dh - g.ph, dxb = kj * g.dw - g.pw;
            float wn[WPT], dyn[IPT], dxn[IPT], mkn2[IPT];
            int cabn[IPT];
            /* the next chunk's loads (the last iteration reloads its own: harmless) */
            prefetch(kc + 1 < nch ? kc + 1 : kc, wn, dyn, dxn, mkn2, cabn);
            float pv[IPT][V];
#pragma unroll
            for (int q = 0; q < IPT; q++) {
                const int it = tid + q * THREADS, pl = it % BN;
                const bool valid = cabv[q] >= 0;
                const int oh = valid ? pix_oh[pl] : 0, ow = pix_ow[pl];
                float py = (float)(oh * g.sh + dyb) + dyv[q];
                float px = (float)(ow * g.sw + dxb) + dxv[q];
                const bool inb = valid && py > -1.f && py < (float)g.h && px > -1.f && px < (float)g.w;
                py = inb ? py : 0.f;
                px = inb ? px : 0.f;
                const float fy = floorf(py), fx = floorf(px);
                const int y0 = (int)fy, x0 = (int)fx;
                const float ly = py - fy, lx = px - fx, hy = 1.f - ly, hx = 1.f - lx;
                const bool oy0 = inb && y0 >= 0, oy1 = inb && y0 + 1 < g.h;
                const bool ox0 = x0 >= 0, ox1 = x0 + 1 < g.w;
                const int ya = y0 > 0 ? y0 : 0, yb = y0 + 1 < g.h ? y0 + 1 : g.h - 1;
                const int xa = x0 > 0 ? x0 : 0, xb = x0 + 1 < g.w ? x0 + 1 : g.w - 1;
                const T *img = xn + (I)(valid ? cabv[q] : 0) * xs1;
                const I r0 = (I)ya * xs2, r1 = (I)yb * xs2, q0 = (I)xa * xs3, q1 = (I)xb * xs3;
#pragma unroll
                for (int j = 0; j < V; j++) pv[q][j] = 0.f;
                /* the CPU reference's order: (y0,x0), (y0,x1), (y1,x0), (y1,x1) */
                corner_bf<T, V, VEC, I>(img + r0 + q0, xs1, hy * hx, oy0 && ox0, pv[q]);
                corner_bf<T, V, VEC, I>(img + r0 + q1, xs1, hy * lx, oy0 && ox1, pv[q]);
                corner_bf<T, V, VEC, I>(img + r1 + q0, xs1, ly * hx, oy1 && ox0, pv[q]);
                corner_bf<T, V, VEC, I>(img + r1 + q1, xs1, ly * lx, oy1 && ox1, pv[q]);
            }
            __syncthreads(); /* the previous chunk's products are done */
#pragma unroll
            for (int r = 0; r < WPT; r++) {
                const int i = tid + r * THREADS;
                As[(i / BK) * LDS + i % BK] = fromf<T>(wr[r]);
            }
#pragma unroll
            for (int q = 0; q < IPT; q++) {
                const int it = tid + q * THREADS, pl = it % BN, kk = (it / BN) * V;
                const float mk = mkv[q];
                T *dst = Bs + pl * LDS + kk;
                if constexpr (HALF && V == 8) {
                    __align__(16) __half2 hv[4];
#pragma unroll
                    for (int j = 0; j < 4; j++) hv[j] = __floats2half2_rn(pv[q][2 * j] * mk, pv[q][2 * j + 1] * mk);
                    *reinterpret_cast<uint4 *>(dst) = *reinterpret_cast<const uint4 *>(hv);
                } else {
#pragma unroll
                    for (int j = 0; j < V; j++) dst[j] = fromf<T>(pv[q][j] * mk);
                }
            }
            __syncthreads();
            chunk_mma<T, BN>(As, Bs, acc, tid);
#pragma unroll
            for (int r = 0; r < WPT; r++) wr[r] = wn[r];
#pragma unroll
            for (int q = 0; q < IPT; q++) {
                dyv[q] = dyn[q];
                dxv[q] = dxn[q];
                mkv[q] = mkn2[q];
                cabv[q] = cabn[q];
            }
        }
    } else {
        for (int tap = 0; tap < g.taps; tap++) {
            const int ki = tap / g.kw, kj = tap % g.kw;
            const int dyb = ki * g.dh - g.ph, dxb = kj * g.dw - g.pw;
            for (int c0 = 0; c0 < g.cg; c0 += BK) {
                __syncthreads(); /* the previous chunk's products are done (and pix_* are written) */
                /* weights: As[m][kk] = W[grp*mg + m0 + m, c0 + kk, ki, kj]; all loads first, then the stores */
                constexpr int WPT = BM * BK / THREADS;
                float wv[WPT];
#pragma unroll
                for (int r = 0; r < WPT; r++) {
                    const int i = tid + r * THREADS, kk = i % BK, mm = i / BK, m = m0 + mm, c = c0 + kk;
                    wv[r] = 0.f;
                    if (m < g.mg && c < g.cg)
                        wv[r] = tof(pt.wt[(I)(grp * g.mg + m) * (I)g.wts[0] + (I)c * (I)g.wts[1] +
                                          (I)ki * (I)g.wts[2] + (I)kj * (I)g.wts[3]]);
                }
#pragma unroll
                for (int r = 0; r < WPT; r++) {
                    const int i = tid + r * THREADS;
                    As[(i / BK) * LDS + i % BK] = fromf<T>(wv[r]);
                }
                /* columns: Bs[p][kk] = mask * bilinear(X[c0 + kk], ...) */
                constexpr int VPR = BK / V;
                for (int it = tid; it < BN * VPR; it += THREADS) {
                    const int pl = it % BN, kk = (it / BN) * V, c = c0 + kk;
                    const int oh = pix_oh[pl];
                    float v[V];
#pragma unroll
                    for (int j = 0; j < V; j++) v[j] = 0.f;
                    float mk = 1.f;
                    if (oh >= 0 && c < g.cg) {
                        const int ow = pix_ow[pl];
                        const int cabs = grp * g.cg + c;
                        const int tg = (cabs / g.cpo) * g.taps + tap;
                        const I ob = (I)oh * (I)g.offs[2] + (I)ow * (I)g.offs[3];
                        const float dy = tof(offn[ob + (I)(2 * tg) * (I)g.offs[1]]);
                        const float dx = tof(offn[ob + (I)(2 * tg + 1) * (I)g.offs[1]]);
                        if (mkn) mk = tof(mkn[(I)tg * (I)g.ms[1] + (I)oh * (I)g.ms[2] + (I)ow * (I)g.ms[3]]);
                        const float py = (float)(oh * g.sh + dyb) + dy;
                        const float px = (float)(ow * g.sw + dxb) + dx;
                        if (py > -1.f && py < (float)g.h && px > -1.f && px < (float)g.w) {
                            const float fy = floorf(py), fx = floorf(px);
                            const int y0 = (int)fy, x0 = (int)fx;
                            const float ly = py - fy, lx = px - fx, hy = 1.f - ly, hx = 1.f - lx;
                            const T *img = xn + (I)cabs * xs1;
                            const I r0 = (I)y0 * xs2, r1 = r0 + xs2, q0 = (I)x0 * xs3, q1 = q0 + xs3;
                            /* the CPU reference's order: (y0,x0), (y0,x1), (y1,x0), (y1,x1) */
                            if (y0 >= 0 && x0 >= 0) corner<T, V, VEC, I>(img + r0 + q0, xs1, hy * hx, v);
                            if (y0 >= 0 && x0 + 1 < g.w) corner<T, V, VEC, I>(img + r0 + q1, xs1, hy * lx, v);
                            if (y0 + 1 < g.h && x0 >= 0) corner<T, V, VEC, I>(img + r1 + q0, xs1, ly * hx, v);
                            if (y0 + 1 < g.h && x0 + 1 < g.w) corner<T, V, VEC, I>(img + r1 + q1, xs1, ly * lx, v);
                        }
                    }
                    T *dst = Bs + pl * LDS + kk;
                    if constexpr (HALF && V == 8) {
                        __align__(16) __half2 hv[4];
#pragma unroll
                        for (int j = 0; j < 4; j++) hv[j] = __floats2half2_rn(v[2 * j] * mk, v[2 * j + 1] * mk);
                        *reinterpret_cast<uint4 *>(dst) = *reinterpret_cast<const uint4 *>(hv);
                    } else {
#pragma unroll
                        for (int j = 0; j < V; j++) dst[j] = fromf<T>(v[j] * mk);
                    }
                }
                __syncthreads();
                chunk_mma<T, BN>(As, Bs, acc, tid);
            }
        }
    }
    __syncthreads(); /* As/Bs become Cs */

    /* epilogue: bias and activation into Cs[m][p], then coalesced stores */
    auto finish = [&](int mm, int pl, float v) {
        const int m = m0 + mm;
        if (pt.bias && m < g.mg) v += tof(pt.bias[(I)(grp * g.mg + m) * (I)g.bs]);
        if (g.act == KDC_ACT_RELU) v = v > 0.f ? v : 0.f;
        else if (g.act == KDC_ACT_LEAKY) v = v >= 0.f ? v : v * g.alpha;
        Cs[mm * CS_LD + pl] = v;
    };
    if constexpr (HALF) {
        const int warp = tid >> 5, lane = tid & 31, wm = warp & 1, wn = warp >> 1;
        const int gq = lane >> 2, t4 = lane & 3;
#pragma unroll
        for (int mi = 0; mi < 2; mi++)
#pragma unroll
            for (int ni = 0; ni < NI; ni++) {
                const int mm = wm * 32 + mi * 16 + gq, pl = wn * (BN / 4) + ni * 8 + t4 * 2;
                const float *d = &acc[(mi * NI + ni) * 4];
                finish(mm, pl, d[0]);
                finish(mm, pl + 1, d[1]);
                finish(mm + 8, pl, d[2]);
                finish(mm + 8, pl + 1, d[3]);
            }
    } else {
        const int tx = tid & 15, ty = tid >> 4;
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < JN; j++) finish(ty + 16 * i, tx + 16 * j, acc[i * JN + j]);
    }
    __syncthreads();
    const bool c_inner = g.ys[1] == 1 && g.ys[3] != 1;
    T *yn = pt.y + (I)n * (I)g.ys[0];
    for (int it = tid; it < BM * BN; it += THREADS) {
        int mm, pl;
        if (c_inner) {
            mm = it % BM;
            pl = it / BM;
        } else {
            pl = it % BN;
            mm = it / BN;
        }
        const int m = m0 + mm, oh = pix_oh[pl];
        if (m >= g.mg || oh < 0) continue;
        yn[(I)(grp * g.mg + m) * (I)g.ys[1] + (I)oh * (I)g.ys[2] + (I)pix_ow[pl] * (I)g.ys[3]] =
            fromf<T>(Cs[mm * CS_LD + pl]);
    }
}

/* X [N, C, H, W] with any strides -> contiguous NHWC, through 32 x 32 tiles (coalesced on both sides
 * when X is NCHW). Grid: (ceil(H*W / 32), ceil(C / 32), N). */
template <class T, class I>
__global__ void __launch_bounds__(256) k_to_nhwc(const T *__restrict__ x, T *__restrict__ y, int c, int h, int w,
                                                  int64_t s0, int64_t s1, int64_t s2, int64_t s3)
{
    __shared__ T tile[32][33];
    const int hw = h * w, p0 = blockIdx.x * 32, c0 = blockIdx.y * 32, n = blockIdx.z;
    const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
    const T *xn = x + (I)n * (I)s0;
#pragma unroll
    for (int k = 0; k < 32; k += 8) {
        int cc = c0 + ty + k, p = p0 + tx;
        if (cc < c && p < hw) tile[ty + k][tx] = xn[(I)cc * (I)s1 + (I)(p / w) * (I)s2 + (I)(p % w) * (I)s3];
    }
    __syncthreads();
    T *yn = y + (I)n * (I)hw * (I)c;
#pragma unroll
    for (int k = 0; k < 32; k += 8) {
        int p = p0 + ty + k, cc = c0 + tx;
        if (cc < c && p < hw) yn[(I)p * (I)c + cc] = tile[tx][ty + k];
    }
}

/* Largest element offset + 1 of a 4-D tensor with these dims and strides (0 if empty). */
int64_t span(const int64_t *dims, const int64_t *st)
{
    int64_t s = 1;
    for (int i = 0; i < 4; i++) {
        if (dims[i] <= 0) return 0;
        s += (dims[i] - 1) * st[i];
    }
    return s;
}

bool fits_int(int64_t v) { return v >= 0 && v < ((int64_t)1 << 30); }

struct Launch {
    const void *x; /* X as the kernel reads it (maybe the workspace copy) */
    int64_t xs[4];
};

template <class T, int MODE, class I, int BN, bool BF>
cudaError_t launch(const kdc_args *a, const Launch &lx, Geo g, cudaStream_t st)
{
    Ptrs<T> p;
    p.x = (const T *)lx.x;
    p.wt = (const T *)a->wt;
    p.off = (const T *)a->off;
    p.mask = (const T *)a->mask;
    p.bias = (const T *)a->bias;
    p.y = (T *)a->y;
    for (int i = 0; i < 4; i++) g.xs[i] = lx.xs[i];
    g.ptiles = (g.P + BN - 1) / BN;
    const int64_t blocks = (int64_t)g.n * g.group * g.mtiles * g.ptiles;
    if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
    k_deform_conv<T, MODE, I, BN, BF><<<(unsigned)blocks, THREADS, Tile<T, BN>::SMEM, st>>>(p, g);
    return cudaGetLastError();
}

template <class T, int BN, bool BF>
cudaError_t dispatch_bn(const kdc_args *a, const Launch &lx, const Geo &g, bool small, cudaStream_t st)
{
    const int V = 16 / (int)sizeof(T);
    int mode = 0;
    if (g.cg % V == 0 && g.cpo % V == 0) {
        mode = 1;
        bool aligned = ((uintptr_t)lx.x % 16) == 0 && lx.xs[1] == 1 && lx.xs[0] % V == 0 && lx.xs[2] % V == 0 &&
                       lx.xs[3] % V == 0;
        if (aligned) mode = 2;
    }
    if (small) {
        if (mode == 2) return launch<T, 2, int32_t, BN, BF>(a, lx, g, st);
        if (mode == 1) return launch<T, 1, int32_t, BN, BF>(a, lx, g, st);
        return launch<T, 0, int32_t, BN, false>(a, lx, g, st); /* generic path: no branch-free variant */
    }
    if (mode == 2) return launch<T, 2, int64_t, BN, BF>(a, lx, g, st);
    if (mode == 1) return launch<T, 1, int64_t, BN, BF>(a, lx, g, st);
    return launch<T, 0, int64_t, BN, false>(a, lx, g, st); /* generic path: no branch-free variant */
}

template <class T>
cudaError_t dispatch(const kdc_args *a, const Launch &lx, const Geo &g, bool small, cudaStream_t st)
{
    /* the branch-free sampling clamps addresses into the image: only for non-empty images */
    const bool bf = a->tactic >= 3 && g.h > 0 && g.w > 0, big = a->tactic == 0 || a->tactic == 3;
    if (big) return bf ? dispatch_bn<T, 128, true>(a, lx, g, small, st) : dispatch_bn<T, 128, false>(a, lx, g, small, st);
    return bf ? dispatch_bn<T, 64, true>(a, lx, g, small, st) : dispatch_bn<T, 64, false>(a, lx, g, small, st);
}

/*
 * ---- Fast path (tactics 6-18): channel-contiguous X (NHWC, or the workspace copy) ----
 *
 * One CTA owns 64 output channels x BN output pixels (a TH x TW tile: 8x16, 8x8 or 4x8) and
 * walks K in chunks of
 * TPC = 128 / BN kernel taps x KC channels (fp16: 64 channels, fp32: 32), so every chunk
 * samples 128 x KC values whatever BN is: small BN fills the GPU at small images without
 * more sampling rounds per CTA. Each sampling item is V channels (one 16-byte vector) of
 * one offset group at one pixel and tap: the coordinates and bilinear weights are computed
 * once, each corner is one 16-byte load (clamped address, selected when valid), the result
 * goes to shared memory. Two shared stages: the weights of chunk k+1 stream in with cp.async
 * while chunk k is multiplied and chunk k+1 sampled, and chunk k+1 is sampled while the other
 * stage may still be multiplied by slower warps; the offsets/mask of chunk k+1 are loaded
 * while chunk k is sampled. One __syncthreads per chunk. fp16: ldmatrix + mma.sync m16n8k16, fp32 accumulation; fp32: FFMA (exact fp32).
 * Epilogue: bias, activation, a tile in shared memory, 16-byte stores when Y is NHWC.
 *
 * WIN (tactics 9-11): the CTA first copies the X window its samples need when every offset is
 * within +-R pixels (R as large as the window capacity allows, >= 1) into shared memory, and
 * samples from there: a corner load from global memory touches its own 128-byte line (L1 serves
 * about one line per clock), from shared memory the 8 offset groups of a pixel hit 8 different
 * bank groups, so a warp's 16-byte loads take 4 wavefronts instead of ~32. Samples outside the
 * window (larger offsets) read global memory as without WIN.
 * HB (tactics 16-18, fp16): the bilinear blend and the mask in half2 arithmetic.
 * OST (tactics 12-15, fp16): the tile's offset and mask records (contiguous per pixel in NHWC)
 * are copied into shared memory once with 16-byte cp.async: read per chunk from global memory,
 * each (pixel, tap) touches 8 scattered sectors of its pixel's records, every chunk again.
 */
enum { F_THREADS = 256, FBM = 64 };

template <class T> struct FT {
    static constexpr bool HALF = sizeof(T) == 2;
    static constexpr int V = 16 / (int)sizeof(T); /* channels per sampling item */
    static constexpr int KC = HALF ? 64 : 32;     /* channels per tap in a chunk */
    static constexpr int VPT = KC / V;            /* items per tap and pixel: 8 */
};

template <class T, int BN> struct FL {
    static constexpr bool HALF = FT<T>::HALF;
    static constexpr int TW = BN == 128 ? 16 : 8, TH = BN / TW; /* output tile */
    /* X window capacity in pixels (a pixel record is KC channels = 128 bytes): 3x3 stride 1 with R = 3 */
    static constexpr int WCAP = BN == 128 ? 448 : BN == 64 ? 296 : 224;
    static constexpr int TPC = 128 / BN;
    static constexpr int KCH = TPC * FT<T>::KC;
    /* fp16: As[m][k], Bs[n][k] with rows padded to 16 bytes mod 128 (ldmatrix without bank
     * conflicts); fp32: As[m][k] (odd pitch), Bs[k][n] (odd pitch) for the FFMA reads */
    static constexpr int LDA = HALF ? KCH + 8 : KCH + 1;
    static constexpr int LDB = HALF ? KCH + 8 : BN + 1;
    static constexpr int A_EL = FBM * LDA;
    static constexpr int B_EL = HALF ? BN * LDB : KCH * LDB;
    static constexpr int STAGE = ((A_EL + B_EL) * (int)sizeof(T) + 15) / 16 * 16;
    static constexpr int CLD = FBM + 4; /* Cs[pixel][m], fp32 */
    static constexpr int C_BYTES = BN * CLD * 4;
    static constexpr int SMEM = 2 * STAGE > C_BYTES ? 2 * STAGE : C_BYTES;
    static constexpr int WIN_BYTES = WCAP * FT<T>::KC * (int)sizeof(T);
    /* OST: the tile's offset and mask records (2*og*taps + og*taps values per pixel: 216 = 3x3, og 8) */
    static constexpr int OREC = 216;
    static constexpr int OST_BYTES = BN * OREC * (int)sizeof(T);
    static constexpr int IPT = BN * TPC * FT<T>::VPT / F_THREADS; /* items per thread per chunk: 4 */
    static constexpr int WARPS_N = BN >= 64 ? 4 : 2, WARPS_M = 8 / WARPS_N;
    static constexpr int WM = FBM / WARPS_M, WN = BN / WARPS_N, MI = WM / 16, NI = WN / 8;
    static constexpr int JN = BN / 16; /* fp32: columns per thread */
    static constexpr int NACC = HALF ? MI * NI * 4 : 4 * JN;
    static_assert(F_THREADS / FT<T>::VPT == 32 && BN % 32 == 0 && NI % 2 == 0, "tile shape");
};

__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool ok)
{
    const unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(ok ? 16 : 0));
}
__device__ __forceinline__ void cp_async4(void *dst, const void *src, bool ok)
{
    const unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(src), "r"(ok ? 4 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }
__device__ __forceinline__ void ldsm4(uint32_t *r, const void *p)
{
    const unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}

/* acc[0..V) += wgt * the V values of one 16-byte vector, or nothing when !ok (the vector is
 * zeroed first, so Inf/NaN of an unused corner never leaks in: 4 selects instead of V). */
template <class T>
__device__ __forceinline__ void fcorner(uint4 q, float wgt, bool ok, float *acc)
{
    q.x = ok ? q.x : 0u;
    q.y = ok ? q.y : 0u;
    q.z = ok ? q.z : 0u;
    q.w = ok ? q.w : 0u;
    if constexpr (sizeof(T) == 2) {
        const __half2 *hp = reinterpret_cast<const __half2 *>(&q);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const float2 f = __half22float2(hp[j]);
            acc[2 * j] = fmaf(wgt, f.x, acc[2 * j]);
            acc[2 * j + 1] = fmaf(wgt, f.y, acc[2 * j + 1]);
        }
    } else {
        const float f[4] = {__uint_as_float(q.x), __uint_as_float(q.y), __uint_as_float(q.z), __uint_as_float(q.w)};
#pragma unroll
        for (int j = 0; j < 4; j++) acc[j] = fmaf(wgt, f[j], acc[j]);
    }
}

/* wvec: the weights' C stride is 1 and every other stride/pointer 16-byte aligned (fp16 only);
 * yvec: Y's C stride is 1, 16-byte aligned, and mg % V == 0; offpair: the offsets' C stride is 1
 * and (dy, dx) pairs are aligned (one 2-element load). */
template <class T, int BN, class I, bool WIN, bool HB, bool OST>
__global__ void __launch_bounds__(F_THREADS, 2) k_dc_fast(Ptrs<T> pt, Geo g, int wvec, int yvec, int offpair)
{
    using L = FL<T, BN>;
    constexpr bool HALF = L::HALF;
    constexpr int V = FT<T>::V, KC = FT<T>::KC, VPT = FT<T>::VPT, TPC = L::TPC, KCH = L::KCH, IPT = L::IPT;
    constexpr int LDA = L::LDA, LDB = L::LDB;
    extern __shared__ __align__(16) unsigned char smem[];

    const int tid = threadIdx.x;
    int64_t b = blockIdx.x;
    const int ptile = (int)(b % g.ptiles);
    b /= g.ptiles;
    const int mtile = (int)(b % g.mtiles);
    b /= g.mtiles;
    const int grp = (int)(b % g.group);
    const int n = (int)(b / g.group);
    const int ty0 = ptile / g.tiles_x, oh0 = ty0 * L::TH, ow0 = (ptile - ty0 * g.tiles_x) * L::TW, m0 = mtile * FBM;
    T *win = reinterpret_cast<T *>(smem + 2 * L::STAGE); /* WIN: X window [wh][ww][KC] */
    const int wy0 = oh0 * g.sh - g.ph - g.wr, wx0 = ow0 * g.sw - g.pw - g.wr;

    /* this thread's sampling items: channel vector `vec`, pixel pl(q), tap-in-chunk tl(q) = 32q / BN */
    const int vec = tid % VPT;
    int pyb[IPT], pxb[IPT];
    I pob[IPT], pmb[IPT];
    bool pok[IPT];
#pragma unroll
    for (int q = 0; q < IPT; q++) {
        const int pl = (32 * q) % BN + tid / VPT, ohq = oh0 + pl / L::TW, owq = ow0 + pl % L::TW;
        pok[q] = ohq < g.oh && owq < g.ow;
        const int oh = pok[q] ? ohq : 0, ow = pok[q] ? owq : 0;
        pyb[q] = oh * g.sh - g.ph;
        pxb[q] = ow * g.sw - g.pw;
        pob[q] = (I)oh * (I)g.offs[2] + (I)ow * (I)g.offs[3];
        pmb[q] = (I)oh * (I)g.ms[2] + (I)ow * (I)g.ms[3];
    }
    const T *xn = pt.x + (I)n * (I)g.xs[0];
    const T *offn = pt.off + (I)n * (I)g.offs[0];
    const T *mkn = pt.mask ? pt.mask + (I)n * (I)g.ms[0] : nullptr;
    const I xs2 = (I)g.xs[2], xs3 = (I)g.xs[3], offs1 = (I)g.offs[1], ms1 = (I)g.ms[1];
    const int nck = (g.cg + KC - 1) / KC, ntb = (g.taps + TPC - 1) / TPC, nch = nck * ntb;
    T *ost = reinterpret_cast<T *>(smem + 2 * L::STAGE + (WIN ? L::WIN_BYTES : 0)); /* OST: records */
    const int opitch = g.orec + g.mrec;
    const bool staged = OST && g.orec > 0;

    auto load_offs = [&](int kc, float (&dy)[IPT], float (&dx)[IPT], float (&mk)[IPT], bool (&ok)[IPT]) {
        const int cc = kc / ntb, tb = kc - cc * ntb, c = cc * KC + vec * V;
        const int cabs = grp * g.cg + (c < g.cg ? c : 0), ogi = cabs / g.cpo;
#pragma unroll
        for (int q = 0; q < IPT; q++) {
            const int tap = tb * TPC + (32 * q) / BN;
            const bool v = pok[q] && tap < g.taps && c < g.cg;
            const int tg = ogi * g.taps + (tap < g.taps ? tap : 0);
            if (staged) {
                const T *rec = ost + ((32 * q) % BN + tid / VPT) * opitch;
                dy[q] = tof(rec[2 * tg]);
                dx[q] = tof(rec[2 * tg + 1]);
                const float m = mkn ? tof(rec[g.orec + tg]) : 1.f;
                mk[q] = v ? m : 0.f;
                ok[q] = v;
                continue;
            }
            const I ob = pob[q] + (I)(2 * tg) * offs1;
            if (offpair) {
                if constexpr (HALF) {
                    const float2 f = __half22float2(*reinterpret_cast<const __half2 *>(offn + ob));
                    dy[q] = f.x;
                    dx[q] = f.y;
                } else {
                    const float2 f = *reinterpret_cast<const float2 *>(offn + ob);
                    dy[q] = f.x;
                    dx[q] = f.y;
                }
            } else {
                dy[q] = tof(offn[ob]);
                dx[q] = tof(offn[ob + offs1]);
            }
            const float m = mkn ? tof(mkn[pmb[q] + (I)tg * ms1]) : 1.f;
            mk[q] = v ? m : 0.f;
            ok[q] = v;
        }
    };
    auto load_w = [&](int kc, T *As) {
        const int cc = kc / ntb, tb = kc - cc * ntb, c0 = cc * KC;
        if (HALF && wvec) {
            constexpr int NV = FBM * TPC * VPT;
#pragma unroll
            for (int rr = 0; rr < NV / F_THREADS; rr++) {
                const int v = tid + rr * F_THREADS, vv = v % VPT, r = v / VPT, tl = r % TPC, mm = r / TPC;
                const int m = m0 + mm, tap = tb * TPC + tl, c = c0 + vv * V;
                const bool ok = m < g.mg && tap < g.taps && c < g.cg;
                const int ki = ok ? tap / g.kw : 0, kj = ok ? tap - ki * g.kw : 0;
                const T *src = ok ? pt.wt + (I)(grp * g.mg + m) * (I)g.wts[0] + (I)c + (I)ki * (I)g.wts[2] +
                                        (I)kj * (I)g.wts[3]
                                  : pt.wt;
                cp_async16(As + mm * LDA + tl * KC + vv * V, src, ok);
            }
        } else {
            constexpr int NE = FBM * KCH;
#pragma unroll 4
            for (int rr = 0; rr < NE / F_THREADS; rr++) {
                const int e = tid + rr * F_THREADS, kk = e % KCH, mm = e / KCH, tl = kk / KC, c = c0 + (kk - tl * KC);
                const int m = m0 + mm, tap = tb * TPC + tl;
                const bool ok = m < g.mg && tap < g.taps && c < g.cg;
                const int ki = ok ? tap / g.kw : 0, kj = ok ? tap - ki * g.kw : 0;
                const T *src = ok ? pt.wt + (I)(grp * g.mg + m) * (I)g.wts[0] + (I)c * (I)g.wts[1] +
                                        (I)ki * (I)g.wts[2] + (I)kj * (I)g.wts[3]
                                  : pt.wt;
                if constexpr (HALF) As[mm * LDA + kk] = ok ? *src : __float2half_rn(0.f);
                else cp_async4(As + mm * LDA + kk, src, ok);
            }
        }
        cp_async_commit();
    };
    /* WIN: the window of channel chunk cc, zeros outside the image */
    auto load_win = [&](int cc) {
        const int c = cc * KC + vec * V, npx = g.wh * g.ww;
        for (int px = tid / VPT; px < npx; px += F_THREADS / VPT) {
            const int wy = px / g.ww, iy = wy0 + wy, ix = wx0 + (px - wy * g.ww);
            const bool ok = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w && c < g.cg;
            const T *src = ok ? xn + (I)iy * xs2 + (I)ix * xs3 + (grp * g.cg + c) : pt.x;
            cp_async16(win + px * KC + vec * V, src, ok);
        }
        cp_async_commit();
    };

    float acc[L::NACC];
#pragma unroll
    for (int i = 0; i < L::NACC; i++) acc[i] = 0.f;

    float dyv[IPT], dxv[IPT], mkv[IPT];
    bool okv[IPT];
    if (staged) { /* the tile's records, zeros for pixels outside the image */
        constexpr int VV = 16 / (int)sizeof(T);
        const int oc = g.orec / VV, per = oc + g.mrec / VV;
        for (int e = tid; e < BN * per; e += F_THREADS) {
            const int pl = e / per, k = e - pl * per, oh = oh0 + pl / L::TW, ow = ow0 + pl % L::TW;
            const bool ok = oh < g.oh && ow < g.ow;
            const T *src = !ok     ? pt.off
                           : k < oc ? offn + (I)oh * (I)g.offs[2] + (I)ow * (I)g.offs[3] + k * VV
                                    : mkn + (I)oh * (I)g.ms[2] + (I)ow * (I)g.ms[3] + (k - oc) * VV;
            cp_async16(ost + pl * opitch + k * VV, src, ok);
        }
        cp_async_commit();
        cp_async_wait_all();
        __syncthreads();
    }
    if (nch > 0) {
        load_offs(0, dyv, dxv, mkv, okv);
        load_w(0, reinterpret_cast<T *>(smem));
    }
    for (int kc = 0; kc < nch; kc++) {
        T *As = reinterpret_cast<T *>(smem + (kc & 1) * L::STAGE);
        T *Bs = As + L::A_EL;
        const int cc = kc / ntb, tb = kc - cc * ntb, c = cc * KC + vec * V;
        if (WIN && tb == 0) { /* a new channel chunk: its window (every sample of the previous one is done) */
            load_win(cc);
            cp_async_wait_all();
            __syncthreads();
        }
        float dyn[IPT], dxn[IPT], mkn2[IPT];
        bool okn[IPT];
        load_offs(kc + 1 < nch ? kc + 1 : kc, dyn, dxn, mkn2, okn); /* the next chunk's, in flight meanwhile */
        const T *img = xn + (grp * g.cg + (c < g.cg ? c : 0));
#pragma unroll
        for (int q = 0; q < IPT; q++) {
            const int tl = (32 * q) / BN, tap = tb * TPC + tl;
            const int ki = okv[q] ? tap / g.kw : 0, kj = okv[q] ? tap - ki * g.kw : 0;
            float py = (float)(pyb[q] + ki * g.dh) + dyv[q];
            float px = (float)(pxb[q] + kj * g.dw) + dxv[q];
            const bool inb = okv[q] && py > -1.f && py < (float)g.h && px > -1.f && px < (float)g.w;
            py = inb ? py : 0.f;
            px = inb ? px : 0.f;
            const float fy = floorf(py), fx = floorf(px);
            const int y0 = (int)fy, x0 = (int)fx;
            const float ly = py - fy, lx = px - fx, hy = 1.f - ly, hx = 1.f - lx;
            const bool oy0 = inb && y0 >= 0, oy1 = inb && y0 + 1 < g.h, ox0 = x0 >= 0, ox1 = x0 + 1 < g.w;
            const int ya = y0 > 0 ? y0 : 0, yb = y0 + 1 < g.h ? y0 + 1 : g.h - 1;
            const int xa = x0 > 0 ? x0 : 0, xb = x0 + 1 < g.w ? x0 + 1 : g.w - 1;
            uint4 c00, c01, c10, c11;
            const int wy = y0 - wy0, wx = x0 - wx0;
            if (WIN && (!inb || (wy >= 0 && wy + 1 < g.wh && wx >= 0 && wx + 1 < g.ww))) {
                const T *w0 = win + (inb ? (wy * g.ww + wx) * KC : 0) + vec * V, *w1 = w0 + g.ww * KC;
                c00 = *reinterpret_cast<const uint4 *>(w0);
                c01 = *reinterpret_cast<const uint4 *>(w0 + KC);
                c10 = *reinterpret_cast<const uint4 *>(w1);
                c11 = *reinterpret_cast<const uint4 *>(w1 + KC);
            } else {
                const I r0 = (I)ya * xs2, r1 = (I)yb * xs2, q0 = (I)xa * xs3, q1 = (I)xb * xs3;
                c00 = __ldg(reinterpret_cast<const uint4 *>(img + r0 + q0));
                c01 = __ldg(reinterpret_cast<const uint4 *>(img + r0 + q1));
                c10 = __ldg(reinterpret_cast<const uint4 *>(img + r1 + q0));
                c11 = __ldg(reinterpret_cast<const uint4 *>(img + r1 + q1));
            }
            const int pl = (32 * q) % BN + tid / VPT;
            if constexpr (HALF && HB) {
                /* half2 arithmetic (as PyTorch's fp16 deformable convolution): a quarter of the instructions */
                const uint4 cs[4] = {c00, c01, c10, c11};
                const float ws[4] = {hy * hx, hy * lx, ly * hx, ly * lx};
                const bool oks[4] = {oy0 && ox0, oy0 && ox1, oy1 && ox0, oy1 && ox1};
                __align__(16) __half2 hv[4];
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    const __half2 wk = __float2half2_rn(oks[k] ? ws[k] : 0.f);
                    uint4 qk = cs[k];
                    qk.x = oks[k] ? qk.x : 0u; /* an unused corner's Inf/NaN never leaks in */
                    qk.y = oks[k] ? qk.y : 0u;
                    qk.z = oks[k] ? qk.z : 0u;
                    qk.w = oks[k] ? qk.w : 0u;
                    const __half2 *hp = reinterpret_cast<const __half2 *>(&qk);
#pragma unroll
                    for (int j = 0; j < 4; j++) hv[j] = k ? __hfma2(wk, hp[j], hv[j]) : __hmul2(wk, hp[j]);
                }
                const __half2 m2 = __float2half2_rn(mkv[q]);
#pragma unroll
                for (int j = 0; j < 4; j++) hv[j] = __hmul2(hv[j], m2);
                *reinterpret_cast<uint4 *>(Bs + pl * LDB + tl * KC + vec * V) = *reinterpret_cast<const uint4 *>(hv);
            } else {
                float v[V];
#pragma unroll
                for (int j = 0; j < V; j++) v[j] = 0.f;
                /* the CPU reference's order: (y0,x0), (y0,x1), (y1,x0), (y1,x1) */
                fcorner<T>(c00, hy * hx, oy0 && ox0, v);
                fcorner<T>(c01, hy * lx, oy0 && ox1, v);
                fcorner<T>(c10, ly * hx, oy1 && ox0, v);
                fcorner<T>(c11, ly * lx, oy1 && ox1, v);
                const float mk = mkv[q];
                if constexpr (HALF) {
                    __align__(16) __half2 hv[4];
#pragma unroll
                    for (int j = 0; j < 4; j++) hv[j] = __floats2half2_rn(v[2 * j] * mk, v[2 * j + 1] * mk);
                    *reinterpret_cast<uint4 *>(Bs + pl * LDB + tl * KC + vec * V) = *reinterpret_cast<const uint4 *>(hv);
                } else {
#pragma unroll
                    for (int j = 0; j < V; j++) Bs[(tl * KC + vec * V + j) * LDB + pl] = v[j] * mk;
                }
            }
        }
        cp_async_wait_all(); /* this chunk's weights */
        __syncthreads();
        /* the next chunk's weights stream in during this chunk's products and the next sampling: the
         * other stage's last reader, the previous chunk's products, finished before this barrier */
        if (kc + 1 < nch) load_w(kc + 1, reinterpret_cast<T *>(smem + ((kc + 1) & 1) * L::STAGE));
        if constexpr (HALF) {
            const int warp = tid >> 5, lane = tid & 31;
            const int wm = warp % L::WARPS_M, wn = warp / L::WARPS_M;
#pragma unroll
            for (int ks = 0; ks < KCH / 16; ks++) {
                uint32_t af[L::MI][4], bf[L::NI][2];
#pragma unroll
                for (int mi = 0; mi < L::MI; mi++)
                    ldsm4(af[mi], As + (wm * L::WM + mi * 16 + (lane & 15)) * LDA + ks * 16 + (lane >> 4) * 8);
#pragma unroll
                for (int np = 0; np < L::NI / 2; np++) {
                    uint32_t r[4];
                    ldsm4(r, Bs + (wn * L::WN + np * 16 + (lane & 7) + ((lane >> 4) << 3)) * LDB + ks * 16 +
                                 ((lane >> 3) & 1) * 8);
                    bf[2 * np][0] = r[0];
                    bf[2 * np][1] = r[1];
                    bf[2 * np + 1][0] = r[2];
                    bf[2 * np + 1][1] = r[3];
                }
#pragma unroll
                for (int mi = 0; mi < L::MI; mi++)
#pragma unroll
                    for (int ni = 0; ni < L::NI; ni++) mma16816(&acc[(mi * L::NI + ni) * 4], af[mi], bf[ni]);
            }
        } else {
            const int tx = tid & 15, ty = tid >> 4;
#pragma unroll 4
            for (int k = 0; k < KCH; k++) {
                float a[4], bv[L::JN];
#pragma unroll
                for (int i = 0; i < 4; i++) a[i] = tof(As[(ty + 16 * i) * LDA + k]);
#pragma unroll
                for (int j = 0; j < L::JN; j++) bv[j] = tof(Bs[k * LDB + tx + 16 * j]);
#pragma unroll
                for (int i = 0; i < 4; i++)
#pragma unroll
                    for (int j = 0; j < L::JN; j++) acc[i * L::JN + j] += a[i] * bv[j];
            }
        }
#pragma unroll
        for (int q = 0; q < IPT; q++) {
            dyv[q] = dyn[q];
            dxv[q] = dxn[q];
            mkv[q] = mkn2[q];
            okv[q] = okn[q];
        }
    }
    __syncthreads(); /* the stages become Cs */

    float *Cs = reinterpret_cast<float *>(smem);
    auto finish = [&](int mm, int pl, float v) {
        const int m = m0 + mm;
        if (pt.bias && m < g.mg) v += tof(pt.bias[(I)(grp * g.mg + m) * (I)g.bs]);
        if (g.act == KDC_ACT_RELU) v = v > 0.f ? v : 0.f;
        else if (g.act == KDC_ACT_LEAKY) v = v >= 0.f ? v : v * g.alpha;
        Cs[pl * L::CLD + mm] = v;
    };
    if constexpr (HALF) {
        const int warp = tid >> 5, lane = tid & 31;
        const int wm = warp % L::WARPS_M, wn = warp / L::WARPS_M, gq = lane >> 2, t4 = lane & 3;
#pragma unroll
        for (int mi = 0; mi < L::MI; mi++)
#pragma unroll
            for (int ni = 0; ni < L::NI; ni++) {
                const int mm = wm * L::WM + mi * 16 + gq, pl = wn * L::WN + ni * 8 + t4 * 2;
                const float *d = &acc[(mi * L::NI + ni) * 4];
                finish(mm, pl, d[0]);
                finish(mm, pl + 1, d[1]);
                finish(mm + 8, pl, d[2]);
                finish(mm + 8, pl + 1, d[3]);
            }
    } else {
        const int tx = tid & 15, ty = tid >> 4;
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < L::JN; j++) finish(ty + 16 * i, tx + 16 * j, acc[i * L::JN + j]);
    }
    __syncthreads();
    T *yn = pt.y + (I)n * (I)g.ys[0];
    if (yvec) {
        constexpr int VM = FBM / V; /* vectors per pixel */
        for (int it = tid; it < BN * VM; it += F_THREADS) {
            const int vm = it % VM, pl = it / VM, m = m0 + vm * V;
            const int oh = oh0 + pl / L::TW, ow = ow0 + pl % L::TW;
            if (oh >= g.oh || ow >= g.ow || m >= g.mg) continue;
            const float *src = Cs + pl * L::CLD + vm * V;
            uint4 o;
            if constexpr (HALF) {
                __align__(16) __half2 hv[4];
#pragma unroll
                for (int j = 0; j < 4; j++) hv[j] = __floats2half2_rn(src[2 * j], src[2 * j + 1]);
                o = *reinterpret_cast<const uint4 *>(hv);
            } else {
                o = make_uint4(__float_as_uint(src[0]), __float_as_uint(src[1]), __float_as_uint(src[2]),
                               __float_as_uint(src[3]));
            }
            *reinterpret_cast<uint4 *>(yn + (I)(grp * g.mg + m) + (I)oh * (I)g.ys[2] + (I)ow * (I)g.ys[3]) = o;
        }
    } else {
        const bool c_inner = g.ys[1] == 1 && g.ys[3] != 1;
        for (int it = tid; it < FBM * BN; it += F_THREADS) {
            int mm, pl;
            if (c_inner) {
                mm = it % FBM;
                pl = it / FBM;
            } else {
                pl = it % BN;
                mm = it / BN;
            }
            const int m = m0 + mm, oh = oh0 + pl / L::TW, ow = ow0 + pl % L::TW;
            if (m >= g.mg || oh >= g.oh || ow >= g.ow) continue;
            yn[(I)(grp * g.mg + m) * (I)g.ys[1] + (I)oh * (I)g.ys[2] + (I)ow * (I)g.ys[3]] = fromf<T>(Cs[pl * L::CLD + mm]);
        }
    }
}

bool al16(const void *p) { return ((uintptr_t)p & 15) == 0; }

template <class T, int BN, class I, bool WIN, bool HB, bool OST>
cudaError_t launch_fast(const kdc_args *a, const Launch &lx, Geo g, cudaStream_t st)
{
    using L = FL<T, BN>;
    constexpr int V = FT<T>::V;
    Ptrs<T> p;
    p.x = (const T *)lx.x;
    p.wt = (const T *)a->wt;
    p.off = (const T *)a->off;
    p.mask = (const T *)a->mask;
    p.bias = (const T *)a->bias;
    p.y = (T *)a->y;
    for (int i = 0; i < 4; i++) g.xs[i] = lx.xs[i];
    g.mtiles = (g.mg + FBM - 1) / FBM;
    g.tiles_x = (g.ow + L::TW - 1) / L::TW;
    g.ptiles = g.tiles_x * ((g.oh + L::TH - 1) / L::TH);
    g.wr = g.wh = g.ww = 0;
    if (WIN) { /* the largest margin R <= 8 whose window fits (the dispatcher checked R >= 1 does) */
        const int sy = (L::TH - 1) * g.sh + (g.kh - 1) * g.dh + 2, sx = (L::TW - 1) * g.sw + (g.kw - 1) * g.dw + 2;
        for (int r = 8; r >= 1 && !g.wr; r--)
            if ((int64_t)(sy + 2 * r) * (sx + 2 * r) <= L::WCAP) g.wr = r, g.wh = sy + 2 * r, g.ww = sx + 2 * r;
        if (!g.wr) return cudaErrorInvalidValue;
    }
    g.orec = g.mrec = 0;
    if (OST) { /* staged only when every record is contiguous, 16-byte aligned and fits */
        const int64_t orec = 2 * a->offset_group * a->kh * a->kw, mrec = a->mask ? a->offset_group * a->kh * a->kw : 0;
        bool ok = orec + mrec <= L::OREC && orec % V == 0 && mrec % V == 0 && a->offs[1] == 1 && a->offs[0] % V == 0 &&
                  a->offs[2] % V == 0 && a->offs[3] % V == 0 && al16(a->off);
        if (a->mask)
            ok = ok && a->ms[1] == 1 && a->ms[0] % V == 0 && a->ms[2] % V == 0 && a->ms[3] % V == 0 && al16(a->mask);
        if (ok) g.orec = (int)orec, g.mrec = (int)mrec;
    }
    const int64_t blocks = (int64_t)g.n * g.group * g.mtiles * g.ptiles;
    if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
    const int wvec = FT<T>::HALF && a->wts[1] == 1 && a->wts[0] % V == 0 && a->wts[2] % V == 0 &&
                     a->wts[3] % V == 0 && al16(a->wt);
    const int yvec = a->ys[1] == 1 && a->ys[0] % V == 0 && a->ys[2] % V == 0 && a->ys[3] % V == 0 && g.mg % V == 0 &&
                     al16(a->y);
    const int offpair = a->offs[1] == 1 && a->offs[0] % 2 == 0 && a->offs[2] % 2 == 0 && a->offs[3] % 2 == 0 &&
                        ((uintptr_t)a->off % (2 * sizeof(T))) == 0;
    constexpr int smem = L::SMEM + (WIN ? L::WIN_BYTES : 0) + (OST ? L::OST_BYTES : 0);
    /* more than 48 KB of dynamic shared memory needs the opt-in, once per device (not a stream
     * operation: also fine while a graph is being captured) */
    static std::atomic<unsigned> opted{0};
    int dev = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e != cudaSuccess) return e;
    const unsigned bit = dev >= 0 && dev < 32 ? 1u << dev : 0u;
    if (!bit || !(opted.load(std::memory_order_relaxed) & bit)) {
        e = cudaFuncSetAttribute(k_dc_fast<T, BN, I, WIN, HB, OST>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
        if (e != cudaSuccess) return e;
        opted.fetch_or(bit, std::memory_order_relaxed);
    }
    k_dc_fast<T, BN, I, WIN, HB, OST><<<(unsigned)blocks, F_THREADS, smem, st>>>(p, g, wvec, yvec, offpair);
    return cudaGetLastError();
}

/* Whether the fast kernel takes this launch: X channel-contiguous with 16-byte vectors, a vector never
 * straddling a group or offset group, non-empty images (corner addresses are clamped into them). */
bool fast_ok(const kdc_args *a, const Launch &lx, const Geo &g)
{
    const int V = a->dt == KILN_DT_FLOAT16 ? 8 : 4;
    return g.c > 0 && g.h > 0 && g.w > 0 && g.cg % V == 0 && g.cpo % V == 0 && lx.xs[1] == 1 &&
           lx.xs[0] % V == 0 && lx.xs[2] % V == 0 && lx.xs[3] % V == 0 && al16(lx.x);
}

/* Whether a window with margin >= 1 fits tile width bn (else the window tactics run without it). */
bool window_fits(const Geo &g, int bn)
{
    const int tw = bn == 128 ? 16 : 8, th = bn / tw, cap = bn == 128 ? 448 : bn == 64 ? 296 : 224;
    const int64_t sy = (int64_t)(th - 1) * g.sh + (int64_t)(g.kh - 1) * g.dh + 4,
                  sx = (int64_t)(tw - 1) * g.sw + (int64_t)(g.kw - 1) * g.dw + 4;
    return sy * sx <= cap;
}

template <class T, int BN, bool WIN, bool HB, bool OST = false>
cudaError_t launch_fast_i(const kdc_args *a, const Launch &lx, const Geo &g, bool small, cudaStream_t st)
{
    return small ? launch_fast<T, BN, int32_t, WIN, HB, OST>(a, lx, g, st)
                 : launch_fast<T, BN, int64_t, WIN, HB, OST>(a, lx, g, st);
}

/* Tactics 12-15: staged offset records (fp16; fp32 runs the same tiles without staging). */
template <class T, int BN>
cudaError_t dispatch_ost(const kdc_args *a, const Launch &lx, const Geo &g, bool small, bool win_req, cudaStream_t st)
{
    const bool win = win_req && window_fits(g, BN);
    if constexpr (sizeof(T) == 2) {
        if (win) return launch_fast_i<T, BN, true, false, true>(a, lx, g, small, st);
        return launch_fast_i<T, BN, false, false, true>(a, lx, g, small, st);
    } else {
        if (win) return launch_fast_i<T, BN, true, false>(a, lx, g, small, st);
        return launch_fast_i<T, BN, false, false>(a, lx, g, small, st);
    }
}

template <class T, int BN>
cudaError_t dispatch_fast_bn(const kdc_args *a, const Launch &lx, const Geo &g, bool small, cudaStream_t st)
{
    const bool win = a->tactic >= 9 && window_fits(g, BN);
    const bool hb = sizeof(T) == 2 && a->tactic >= 16 && win; /* half blending: fp16 only */
    if (hb) return launch_fast_i<T, BN, true, true>(a, lx, g, small, st);
    if (win) return launch_fast_i<T, BN, true, false>(a, lx, g, small, st);
    return launch_fast_i<T, BN, false, false>(a, lx, g, small, st);
}

template <class T>
cudaError_t dispatch_fast(const kdc_args *a, const Launch &lx, const Geo &g, bool small, cudaStream_t st)
{
    if (a->tactic >= 12 && a->tactic <= 15) {
        const int t = a->tactic - 12; /* 12: 8x16, 13: 8x8, 14: 8x16 + window, 15: 8x8 + window */
        if (t % 2 == 0) return dispatch_ost<T, 128>(a, lx, g, small, t >= 2, st);
        return dispatch_ost<T, 64>(a, lx, g, small, t >= 2, st);
    }
    const int k = a->tactic >= 16 ? a->tactic - 16 : (a->tactic - 6) % 3; /* 6-8, 9-11, 16-18: 8x16, 8x8, 4x8 */
    if (k == 0) return dispatch_fast_bn<T, 128>(a, lx, g, small, st);
    if (k == 1) return dispatch_fast_bn<T, 64>(a, lx, g, small, st);
    return dispatch_fast_bn<T, 32>(a, lx, g, small, st);
}

/* Whether tactics 2, 5 and the fast ones (6-18) copy X: only when X is not channel-contiguous already
 * and has data. */
bool needs_copy(const kdc_args *a)
{
    return (a->tactic == 2 || a->tactic >= 5) && a->xs[1] != 1 && a->c > 1 && a->n > 0 && a->h > 0 && a->w > 0;
}

} // namespace

extern "C" size_t kiln__kdc_workspace(const kdc_args *a)
{
    if (!a || !needs_copy(a)) return 0;
    if (!fits_int(a->n) || !fits_int(a->c) || !fits_int(a->h) || !fits_int(a->w)) return 0;
    double bytes = (double)a->n * (double)a->c * (double)a->h * (double)a->w * (a->dt == KILN_DT_FLOAT16 ? 2 : 4);
    if (bytes > (double)((int64_t)1 << 40)) return 0; /* the launch refuses it */
    return ((size_t)bytes + 255) / 256 * 256;
}

extern "C" int kiln__kdc_deform_conv(const kdc_args *a, void *stream)
{
    if (!a || (a->dt != KILN_DT_FLOAT && a->dt != KILN_DT_FLOAT16) || a->tactic < 0 || a->tactic >= KDC_TACTICS)
        return (int)cudaErrorInvalidValue;
    const int64_t d64[] = {a->n, a->c, a->h, a->w, a->m, a->oh, a->ow, a->kh, a->kw, a->sh, a->sw,
                           a->ph, a->pw, a->dh, a->dw, a->group, a->offset_group};
    for (unsigned i = 0; i < sizeof d64 / sizeof d64[0]; i++)
        if (!fits_int(d64[i])) return (int)cudaErrorInvalidValue;
    if (a->group < 1 || a->offset_group < 1 || a->kh < 1 || a->kw < 1 || a->sh < 1 || a->sw < 1 || a->dh < 1 ||
        a->dw < 1 || a->c % a->group || a->m % a->group || a->c % a->offset_group)
        return (int)cudaErrorInvalidValue;
    if (a->n == 0 || a->m == 0 || a->oh == 0 || a->ow == 0) return (int)cudaSuccess;
    /* X and W may be empty (no channels, or an empty image: every sample is zero) */
    if (!a->off || !a->y || (!a->wt && a->c > 0) || (!a->x && a->c > 0 && a->h > 0 && a->w > 0))
        return (int)cudaErrorInvalidValue;
    Geo g = {};
    g.n = (int)a->n, g.c = (int)a->c, g.h = (int)a->h, g.w = (int)a->w, g.m = (int)a->m;
    g.oh = (int)a->oh, g.ow = (int)a->ow, g.kh = (int)a->kh, g.kw = (int)a->kw;
    g.sh = (int)a->sh, g.sw = (int)a->sw, g.ph = (int)a->ph, g.pw = (int)a->pw, g.dh = (int)a->dh, g.dw = (int)a->dw;
    g.group = (int)a->group, g.og = (int)a->offset_group;
    g.cg = g.c / g.group, g.mg = g.m / g.group, g.cpo = g.c / g.og;
    int64_t taps = a->kh * a->kw, P = a->oh * a->ow;
    /* coordinates oh*sh + kh*dh must stay in int range */
    if (!fits_int(taps * a->offset_group * 2) || !fits_int(P) || !fits_int(a->h * a->w) ||
        !fits_int(a->oh * a->sh + a->kh * a->dh + a->ph) || !fits_int(a->ow * a->sw + a->kw * a->dw + a->pw))
        return (int)cudaErrorInvalidValue;
    if (g.cpo == 0) g.cpo = 1;
    g.taps = (int)taps;
    g.P = (int)P;
    g.mtiles = (g.mg + BM - 1) / BM;
    g.ptiles = 0;
    for (int i = 0; i < 4; i++) {
        g.xs[i] = a->xs[i];
        g.wts[i] = a->wts[i];
        g.offs[i] = a->offs[i];
        g.ms[i] = a->ms[i];
        g.ys[i] = a->ys[i];
        if (a->xs[i] < 0 || a->wts[i] < 0 || a->offs[i] < 0 || a->ms[i] < 0 || a->ys[i] < 0)
            return (int)cudaErrorInvalidValue;
    }
    g.bs = a->bs;
    g.act = a->act;
    g.alpha = a->alpha;
    const int64_t xd[4] = {a->n, a->c, a->h, a->w}, wd[4] = {a->m, g.cg, a->kh, a->kw};
    const int64_t od[4] = {a->n, taps * a->offset_group * 2, a->oh, a->ow}, md[4] = {a->n, taps * a->offset_group, a->oh, a->ow};
    const int64_t yd[4] = {a->n, a->m, a->oh, a->ow};
    const int64_t lim = (int64_t)1 << 31;
    bool small = span(xd, a->xs) < lim && span(wd, a->wts) < lim && span(od, a->offs) < lim &&
                 span(md, a->ms) < lim && span(yd, a->ys) < lim && a->m * (a->bs > 0 ? a->bs : 1) < lim &&
                 a->n * a->c * a->h * a->w < lim;
    cudaStream_t st = (cudaStream_t)stream;
    Launch lx;
    lx.x = a->x;
    for (int i = 0; i < 4; i++) lx.xs[i] = a->xs[i];
    if (needs_copy(a)) {
        size_t need = kiln__kdc_workspace(a);
        if (!need || !a->ws || a->ws_bytes < need) return (int)cudaErrorInvalidValue;
        dim3 grid((unsigned)((a->h * a->w + 31) / 32), (unsigned)((a->c + 31) / 32), (unsigned)a->n);
        if (grid.y > 65535 || grid.z > 65535) return (int)cudaErrorInvalidValue;
        if (a->dt == KILN_DT_FLOAT16) {
            if (small)
                k_to_nhwc<__half, int32_t><<<grid, 256, 0, st>>>((const __half *)a->x, (__half *)a->ws, g.c, g.h, g.w,
                                                                 a->xs[0], a->xs[1], a->xs[2], a->xs[3]);
            else
                k_to_nhwc<__half, int64_t><<<grid, 256, 0, st>>>((const __half *)a->x, (__half *)a->ws, g.c, g.h, g.w,
                                                                 a->xs[0], a->xs[1], a->xs[2], a->xs[3]);
        } else {
            if (small)
                k_to_nhwc<float, int32_t><<<grid, 256, 0, st>>>((const float *)a->x, (float *)a->ws, g.c, g.h, g.w,
                                                                a->xs[0], a->xs[1], a->xs[2], a->xs[3]);
            else
                k_to_nhwc<float, int64_t><<<grid, 256, 0, st>>>((const float *)a->x, (float *)a->ws, g.c, g.h, g.w,
                                                                a->xs[0], a->xs[1], a->xs[2], a->xs[3]);
        }
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) return (int)e;
        lx.x = a->ws;
        lx.xs[0] = a->h * a->w * a->c;
        lx.xs[1] = 1;
        lx.xs[2] = a->w * a->c;
        lx.xs[3] = a->c;
    }
    if (a->tactic >= 6) {
        if (fast_ok(a, lx, g)) {
            if (a->dt == KILN_DT_FLOAT16) return (int)dispatch_fast<__half>(a, lx, g, small, st);
            return (int)dispatch_fast<float>(a, lx, g, small, st);
        }
        /* shapes the fast kernel does not take: the pipelined tactic of the nearest tile width */
        kdc_args b = *a;
        b.tactic = (a->tactic - 6) % 3 == 0 ? 3 : 4;
        if (a->dt == KILN_DT_FLOAT16) return (int)dispatch<__half>(&b, lx, g, small, st);
        return (int)dispatch<float>(&b, lx, g, small, st);
    }
    if (a->dt == KILN_DT_FLOAT16) return (int)dispatch<__half>(a, lx, g, small, st);
    return (int)dispatch<float>(a, lx, g, small, st);
}

extern "C" const char *kiln__kdc_error_string(int rc) { return cudaGetErrorString((cudaError_t)rc); }

extern "C" int kiln__kdc_pending_error(void)
{
    /* a non-sticky error left by an earlier call is cleared (it is not this node's); a sticky one (a
     * kernel fault: the context is unusable) survives the reset and is reported */
    if (cudaGetLastError() == cudaSuccess) return 0;
    return (int)cudaPeekAtLastError();
}
