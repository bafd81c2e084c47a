/*
 * CUDA reduction engine: Reduce*, ArgMax/ArgMin, the global pools, and the
 * per-row statistics of Softmax/LogSoftmax and the normalizations.
 *
 * A reduction is a set of kept axes (one output cell each, M cells) and a set
 * of reduced axes (L elements per cell), all addressed through the input's
 * strides. The planner drops axes of size 1, orders each set by decreasing
 * input stride and merges neighbours that walk memory as one axis, then picks
 * a kernel:
 *  - row: the reduced elements are the contiguous ones (NCHW ReduceMean over
 *    H,W, softmax over the last axis, NHWC reduce over C): a warp, or a block
 *    for long rows, per output cell, lanes striding along the row;
 *  - column: the kept axis is the contiguous one (NHWC global pool, reduce over
 *    C in NCHW): a thread per cell (32 cells per block) with 8 threads per cell
 *    splitting the row, so neighbouring threads read neighbouring addresses.
 * When there are few cells and long rows, rows are split over gridDim.y;
 * partial accumulators go to the workspace and a last kernel combines them.
 * Accumulation is in fp32 for float inputs (integers: exact 64-bit, wrapping
 * like the CPU reference), reductions in registers with warp shuffles.
 *
 * Statistics ops write a float2 per cell into a caller buffer (cells numbered
 * row-major over the kept axes in the planner's order; args->mstr tells the
 * caller each input axis' stride in that numbering) for k_norm.cu to apply.
 */
#include "cuda_tensor.h"
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "k_reduce.h"

namespace {

enum { BLOCK = 256, COLX = 32, COLY = 8 };

/* ---- values ---- */

__device__ __forceinline__ float ldv(float v) { return v; }
__device__ __forceinline__ float ldv(__half v) { return __half2float(v); }
__device__ __forceinline__ int64_t ldv(int32_t v) { return v; }
__device__ __forceinline__ int64_t ldv(int64_t v) { return v; }

__device__ __forceinline__ void st(float *p, float r) { *p = r; }
__device__ __forceinline__ void st(__half *p, float r) { *p = __float2half_rn(r); }
__device__ __forceinline__ void st(int32_t *p, uint64_t r) { *p = (int32_t)(uint32_t)r; }
__device__ __forceinline__ void st(int64_t *p, uint64_t r) { *p = (int64_t)r; }
__device__ __forceinline__ void st(int64_t *p, int64_t r) { *p = r; }
__device__ __forceinline__ void st(float2 *p, float2 r) { *p = r; }

/* Runtime parameters of an op. */
struct Q {
    int pre, post; /* FAdd / IAdd: element map and final map */
    int last;      /* Arg: ties to the last index */
    int amax;      /* Arg: max rather than min */
    int log;       /* softmax stats: log-sum rather than 1/sum */
    float eps;
};

enum { PRE_ID, PRE_ABS, PRE_SQ };
enum { POST_ID, POST_MEAN, POST_SQRT, POST_LOG };

/* max/min where a NaN anywhere wins (as the CPU reference). */
__device__ __forceinline__ float nmax(float a, float b) { return isnan(a) ? a : isnan(b) ? b : (b > a ? b : a); }
__device__ __forceinline__ float nmin(float a, float b) { return isnan(a) ? a : isnan(b) ? b : (b < a ? b : a); }

/* Sum-like float reductions: Sum, Mean, L1, L2, LogSum, SumSquare. */
struct FAdd {
    typedef float V;
    typedef float A;
    typedef float R;
    enum { SHIFT = 0 };
    static __device__ A init(const Q &) { return 0.f; }
    static __device__ A load(V v, int64_t, float, const Q &q)
    {
        return q.pre == PRE_ABS ? fabsf(v) : q.pre == PRE_SQ ? v * v : v;
    }
    static __device__ A comb(A a, A b, const Q &) { return a + b; }
    static __device__ R fin(A a, int64_t L, float, const Q &q)
    {
        switch (q.post) {
        case POST_MEAN: return a / (float)L;
        case POST_SQRT: return sqrtf(a);
        case POST_LOG: return logf(a);
        default: return a;
        }
    }
};

struct FMax {
    typedef float V;
    typedef float A;
    typedef float R;
    enum { SHIFT = 0 };
    static __device__ A init(const Q &) { return -INFINITY; }
    static __device__ A load(V v, int64_t, float, const Q &) { return v; }
    static __device__ A comb(A a, A b, const Q &) { return nmax(a, b); }
    static __device__ R fin(A a, int64_t, float, const Q &) { return a; }
};

struct FMin {
    typedef float V;
    typedef float A;
    typedef float R;
    enum { SHIFT = 0 };
    static __device__ A init(const Q &) { return INFINITY; }
    static __device__ A load(V v, int64_t, float, const Q &) { return v; }
    static __device__ A comb(A a, A b, const Q &) { return nmin(a, b); }
    static __device__ R fin(A a, int64_t, float, const Q &) { return a; }
};

struct FProd {
    typedef float V;
    typedef float A;
    typedef float R;
    enum { SHIFT = 0 };
    static __device__ A init(const Q &) { return 1.f; }
    static __device__ A load(V v, int64_t, float, const Q &) { return v; }
    static __device__ A comb(A a, A b, const Q &) { return a * b; }
    static __device__ R fin(A a, int64_t, float, const Q &) { return a; }
};

/*
 * Running (max, sum of exp(x - max)), combined as in online softmax. A NaN
 * max stays NaN; equal maxima (also both infinite) scale by exactly 1.
 */
struct FOnline {
    typedef float V;
    typedef float2 A;
    enum { SHIFT = 0 };
    static __device__ A init(const Q &) { return make_float2(-INFINITY, 0.f); }
    static __device__ A load(V v, int64_t, float, const Q &) { return make_float2(v, 1.f); }
    static __device__ A comb(A a, A b, const Q &)
    {
        float m = nmax(a.x, b.x);
        if (isnan(m)) return make_float2(m, 0.f);
        float fa = a.x == m ? 1.f : expf(a.x - m), fb = b.x == m ? 1.f : expf(b.x - m);
        return make_float2(m, a.y * fa + b.y * fb);
    }
};

/* ReduceLogSumExp: max + log(sum); a non-finite max is the result (as the CPU reference). */
struct FLse : FOnline {
    typedef float R;
    static __device__ R fin(A a, int64_t, float, const Q &) { return isfinite(a.x) ? a.x + logf(a.y) : a.x; }
};

/*
 * Softmax statistics (shift, b): softmax = exp(x - shift) * b, log-softmax =
 * x - shift - b. A row with a +inf or NaN is all NaN; a row of -inf shifts by
 * 0 and divides 0 by 0, as the CPU reference.
 */
struct FSoftmax : FOnline {
    typedef float2 R;
    static __device__ R fin(A a, int64_t, float, const Q &q)
    {
        float m = a.x, s = a.y;
        if (isnan(m) || (isinf(m) && m > 0)) return make_float2(NAN, NAN);
        if (isinf(m)) {
            m = 0.f;
            s = 0.f;
        }
        return make_float2(m, q.log ? logf(s) : 1.f / s);
    }
};

/*
 * Mean and 1/sqrt(var + eps) from sums of (x - shift) and (x - shift)^2,
 * shift being the row's first element: fp32 sums stay accurate when the mean
 * is large against the spread.
 */
struct FMoments {
    typedef float V;
    typedef float2 A;
    typedef float2 R;
    enum { SHIFT = 1 };
    static __device__ A init(const Q &) { return make_float2(0.f, 0.f); }
    static __device__ A load(V v, int64_t, float shift, const Q &)
    {
        float d = v - shift;
        return make_float2(d, d * d);
    }
    static __device__ A comb(A a, A b, const Q &) { return make_float2(a.x + b.x, a.y + b.y); }
    static __device__ R fin(A a, int64_t L, float shift, const Q &q)
    {
        if (L <= 0) return make_float2(0.f, 1.f / sqrtf(q.eps));
        float m1 = a.x / (float)L, var = a.y / (float)L - m1 * m1;
        if (!(var > 0.f)) var = var != var ? var : 0.f;
        return make_float2(shift + m1, 1.f / sqrtf(var + q.eps));
    }
};

/* Exact integer reductions, wrapping modulo 2^64 like the CPU reference. */
struct IAdd {
    typedef int64_t V;
    typedef uint64_t A;
    typedef uint64_t R;
    enum { SHIFT = 0 };
    static __device__ A init(const Q &) { return 0; }
    static __device__ A load(V v, int64_t, float, const Q &q)
    {
        uint64_t u = (uint64_t)v;
        return q.pre == PRE_ABS ? (v < 0 ? (uint64_t)0 - u : u) : q.pre == PRE_SQ ? u * u : u;
    }
    static __device__ A comb(A a, A b, const Q &) { return a + b; }
    static __device__ R fin(A a, int64_t, float, const Q &) { return a; }
};

struct IProd {
    typedef int64_t V;
    typedef uint64_t A;
    typedef uint64_t R;
    enum { SHIFT = 0 };
    static __device__ A init(const Q &) { return 1; }
    static __device__ A load(V v, int64_t, float, const Q &) { return (uint64_t)v; }
    static __device__ A comb(A a, A b, const Q &) { return a * b; }
    static __device__ R fin(A a, int64_t, float, const Q &) { return a; }
};

/* Max/min of int32/int64: the identity is the input type's limit. */
template <bool MAX, class T> struct IExt {
    typedef int64_t V;
    typedef uint64_t A;
    typedef uint64_t R;
    enum { SHIFT = 0 };
    static __device__ int64_t lim()
    {
        return sizeof(T) == 4 ? (MAX ? (int64_t)INT32_MIN : (int64_t)INT32_MAX) : (MAX ? INT64_MIN : INT64_MAX);
    }
    static __device__ A init(const Q &) { return (uint64_t)lim(); }
    static __device__ A load(V v, int64_t, float, const Q &) { return (uint64_t)v; }
    static __device__ A comb(A a, A b, const Q &)
    {
        int64_t x = (int64_t)a, y = (int64_t)b;
        return (uint64_t)(MAX ? (y > x ? y : x) : (y < x ? y : x));
    }
    static __device__ R fin(A a, int64_t, float, const Q &) { return a; }
};

/*
 * ArgMax / ArgMin as a total order, so partial results combine in any order:
 * NaN beats every number, a better value beats a worse one, and ties go to
 * the first (or last) index — what the CPU reference's scan gives.
 */
template <class VT> struct ArgAcc {
    VT v;
    int64_t i; /* -1: empty */
};

__device__ __forceinline__ bool isnanv(float v) { return isnan(v); }
__device__ __forceinline__ bool isnanv(int64_t) { return false; }

template <class VT> struct Arg {
    typedef VT V;
    typedef ArgAcc<VT> A;
    typedef int64_t R;
    enum { SHIFT = 0 };
    static __device__ A init(const Q &)
    {
        A a;
        a.v = VT();
        a.i = -1;
        return a;
    }
    static __device__ A load(V v, int64_t j, float, const Q &)
    {
        A a;
        a.v = v;
        a.i = j;
        return a;
    }
    static __device__ A comb(A a, A b, const Q &q)
    {
        if (a.i < 0) return b;
        if (b.i < 0) return a;
        bool na = isnanv(a.v), nb = isnanv(b.v);
        bool b_first = b.i < a.i;
        bool take_b;
        if (na || nb) take_b = (na && nb) ? (q.last ? !b_first : b_first) : nb;
        else if (a.v == b.v) take_b = q.last ? !b_first : b_first;
        else take_b = q.amax ? b.v > a.v : b.v < a.v;
        return take_b ? b : a;
    }
    static __device__ R fin(A a, int64_t, float, const Q &) { return a.i < 0 ? 0 : a.i; }
};

/* ---- geometry ---- */

struct Plan {
    int nk, nr;
    int64_t M, L;
    int64_t kdim[KR_MAXR], kin[KR_MAXR], kout[KR_MAXR]; /* kept axes, innermost last */
    int64_t rdim[KR_MAXR], rin[KR_MAXR];                /* reduced axes, innermost last */
    int S;                                              /* splits of each row */
    int64_t chunk;                                      /* elements per split */
    Q q;
};

__device__ __forceinline__ void kept_off(const Plan &p, int64_t m, int64_t &xi, int64_t &yo)
{
    xi = 0;
    yo = 0;
    for (int k = p.nk - 1; k >= 0; k--) {
        int64_t d = p.kdim[k], c = m % d;
        m /= d;
        xi += c * p.kin[k];
        yo += c * p.kout[k];
    }
}

__device__ __forceinline__ int64_t red_off(const Plan &p, int64_t j)
{
    if (p.nr == 1) return j * p.rin[0];
    int64_t o = 0;
    for (int k = p.nr - 1; k >= 0; k--) {
        int64_t d = p.rdim[k];
        o += (j % d) * p.rin[k];
        j /= d;
    }
    return o;
}

template <class A> __device__ __forceinline__ A shfl_down(A a, int off)
{
    static_assert(sizeof(A) % 4 == 0, "accumulators are whole 32-bit words");
    union {
        A a;
        int w[sizeof(A) / 4];
    } u;
    u.a = a;
#pragma unroll
    for (int i = 0; i < (int)(sizeof(A) / 4); i++) u.w[i] = __shfl_down_sync(0xffffffffu, u.w[i], off);
    return u.a;
}

/* Lane 0 of the warp ends with the combination of all 32 lanes. */
template <class OP> __device__ __forceinline__ typename OP::A warp_reduce(typename OP::A a, const Q &q)
{
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) a = OP::comb(a, shfl_down(a, off), q);
    return a;
}

/* Accumulates elements [j0, j1) of the row at xi, step apart, starting at j0 + first. */
template <class OP, class T>
__device__ __forceinline__ typename OP::A accumulate(const T *__restrict__ x, const Plan &p, int64_t xi, int64_t first,
                                                     int64_t step, int s, float shift)
{
    typename OP::A acc = OP::init(p.q);
    int64_t j0 = (int64_t)s * p.chunk, j1 = j0 + p.chunk < p.L ? j0 + p.chunk : p.L;
    if (p.nr == 1) {
        const int64_t rs = p.rin[0];
        for (int64_t j = j0 + first; j < j1; j += step) acc = OP::comb(acc, OP::load(ldv(x[xi + j * rs]), j, shift, p.q), p.q);
    } else {
        for (int64_t j = j0 + first; j < j1; j += step)
            acc = OP::comb(acc, OP::load(ldv(x[xi + red_off(p, j)]), j, shift, p.q), p.q);
    }
    return acc;
}

template <class OP, class T> __device__ __forceinline__ float row_shift(const T *x, const Plan &p, int64_t xi)
{
    return (OP::SHIFT && p.L > 0) ? (float)ldv(x[xi]) : 0.f;
}

/* Lane 0 of each group of G lanes (G < 32, a power of two) ends with the group's combination. */
template <class OP, int G> __device__ __forceinline__ typename OP::A group_reduce(typename OP::A a, const Q &q)
{
#pragma unroll
    for (int off = G / 2; off > 0; off >>= 1) a = OP::comb(a, shfl_down(a, off), q);
    return a;
}

/* G lanes per output cell: G = 8 (short rows: 4 cells per warp, e.g. an NHWC reduce over 64
 * channels), 32 (a warp) or BLOCK (the whole block). */
template <class OP, class T, class TO, int G>
__global__ void __launch_bounds__(BLOCK) k_row(const T *__restrict__ x, TO *__restrict__ y, typename OP::A *part, Plan p)
{
    typedef typename OP::A A;
    const int per = BLOCK / G;
    int g = threadIdx.x / G, lane = threadIdx.x % G;
    int64_t m = (int64_t)blockIdx.x * per + g;
    bool on = m < p.M;
    int64_t xi = 0, yo = 0;
    float shift = 0.f;
    A acc = OP::init(p.q);
    if (on) {
        kept_off(p, m, xi, yo);
        shift = row_shift<OP>(x, p, xi);
        acc = accumulate<OP>(x, p, xi, lane, G, blockIdx.y, shift);
    }
    acc = G < 32 ? group_reduce<OP, (G < 32 ? G : 32)>(acc, p.q) : warp_reduce<OP>(acc, p.q);
    if (G > 32) {
        __shared__ A sm[BLOCK / 32];
        int w = threadIdx.x / 32, l = threadIdx.x % 32;
        if (l == 0) sm[w] = acc;
        __syncthreads();
        if (w == 0) {
            acc = l < BLOCK / 32 ? sm[l] : OP::init(p.q);
            acc = warp_reduce<OP>(acc, p.q);
        }
    }
    if (on && lane == 0) {
        if (p.S == 1) st(y + yo, OP::fin(acc, p.L, shift, p.q));
        else part[m * p.S + blockIdx.y] = acc;
    }
}

/* COLX cells per block, COLY threads splitting each row. */
template <class OP, class T, class TO>
__global__ void __launch_bounds__(COLX *COLY) k_col(const T *__restrict__ x, TO *__restrict__ y, typename OP::A *part, Plan p)
{
    typedef typename OP::A A;
    __shared__ A sm[COLY][COLX];
    int tx = threadIdx.x, ty = threadIdx.y;
    int64_t m = (int64_t)blockIdx.x * COLX + tx;
    bool on = m < p.M;
    int64_t xi = 0, yo = 0;
    float shift = 0.f;
    A acc = OP::init(p.q);
    if (on) {
        kept_off(p, m, xi, yo);
        shift = row_shift<OP>(x, p, xi);
        acc = accumulate<OP>(x, p, xi, ty, COLY, blockIdx.y, shift);
    }
    sm[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && on) {
        for (int k = 1; k < COLY; k++) acc = OP::comb(acc, sm[k][tx], p.q);
        if (p.S == 1) st(y + yo, OP::fin(acc, p.L, shift, p.q));
        else part[m * p.S + blockIdx.y] = acc;
    }
}

/* Combines the S partials of each cell. */
template <class OP, class T, class TO>
__global__ void __launch_bounds__(BLOCK) k_fin(const T *__restrict__ x, TO *__restrict__ y, const typename OP::A *part, Plan p)
{
    for (int64_t m = (int64_t)blockIdx.x * BLOCK + threadIdx.x; m < p.M; m += (int64_t)gridDim.x * BLOCK) {
        int64_t xi, yo;
        kept_off(p, m, xi, yo);
        float shift = row_shift<OP>(x, p, xi);
        typename OP::A acc = OP::init(p.q);
        for (int s = 0; s < p.S; s++) acc = OP::comb(acc, part[m * p.S + s], p.q);
        st(y + yo, OP::fin(acc, p.L, shift, p.q));
    }
}

/* ---- planning (host) ---- */

static int splits(int64_t M, int64_t L)
{
    if (M <= 0 || L < 4096) return 1;
    int64_t s = (L + 2047) / 2048, want = (16384 + M - 1) / M;
    if (s > want) s = want;
    if (s > 1024) s = 1024;
    return s < 1 ? 1 : (int)s;
}

/* Accumulator bytes budgeted per partial (the largest accumulator, ArgAcc<int64_t>). */
enum { PART_BYTES = 16 };

static void sort_desc(int n, int64_t *d, int64_t *a, int64_t *b, int *orig)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && a[j] > a[j - 1]; j--) {
            int64_t t;
            t = d[j]; d[j] = d[j - 1]; d[j - 1] = t;
            t = a[j]; a[j] = a[j - 1]; a[j - 1] = t;
            if (b) { t = b[j]; b[j] = b[j - 1]; b[j - 1] = t; }
            if (orig) { int o = orig[j]; orig[j] = orig[j - 1]; orig[j - 1] = o; }
        }
}

/* Returns 0, or -1 on bad arguments; *empty when there is nothing to write. */
static int plan(kr_args *a, bool stats, Plan *p, bool *empty)
{
    memset(p, 0, sizeof *p);
    *empty = false;
    if (a->rank < 0 || a->rank > KR_MAXR) return -1;
    int64_t M = 1, L = 1;
    int korig[KR_MAXR];
    for (int i = 0; i < a->rank; i++) {
        a->mstr[i] = 0;
        int64_t d = a->dims[i];
        if (d < 0) return -1;
        bool red = (a->mask >> i) & 1u;
        if (red) L *= d;
        else M *= d;
        if (d == 1) continue;
        if (red) {
            p->rdim[p->nr] = d;
            p->rin[p->nr++] = a->xstr[i];
        } else {
            korig[p->nk] = i;
            p->kdim[p->nk] = d;
            p->kin[p->nk] = a->xstr[i];
            p->kout[p->nk++] = a->ystr[i];
        }
    }
    if (M == 0) {
        *empty = true;
        return 0;
    }
    if (L == 0) p->nr = 0;
    sort_desc(p->nk, p->kdim, p->kin, p->kout, korig);
    sort_desc(p->nr, p->rdim, p->rin, NULL, NULL);
    /* Cells are numbered row-major over the kept axes in this order. */
    int64_t ms = 1;
    for (int k = p->nk - 1; k >= 0; k--) {
        a->mstr[korig[k]] = ms;
        if (stats) p->kout[k] = ms;
        ms *= p->kdim[k];
    }
    int n = 0;
    for (int k = 0; k < p->nk; k++) {
        if (n > 0 && p->kin[n - 1] == p->kin[k] * p->kdim[k] && p->kout[n - 1] == p->kout[k] * p->kdim[k]) {
            p->kdim[n - 1] *= p->kdim[k];
            p->kin[n - 1] = p->kin[k];
            p->kout[n - 1] = p->kout[k];
        } else {
            p->kdim[n] = p->kdim[k];
            p->kin[n] = p->kin[k];
            p->kout[n++] = p->kout[k];
        }
    }
    p->nk = n;
    n = 0;
    for (int k = 0; k < p->nr; k++) {
        if (n > 0 && p->rin[n - 1] == p->rin[k] * p->rdim[k]) {
            p->rdim[n - 1] *= p->rdim[k];
            p->rin[n - 1] = p->rin[k];
        } else {
            p->rdim[n] = p->rdim[k];
            p->rin[n++] = p->rin[k];
        }
    }
    p->nr = n;
    p->M = M;
    p->L = L;
    p->S = splits(M, L);
    p->chunk = p->S > 1 ? (L + p->S - 1) / p->S : L;
    if (p->chunk < 1) p->chunk = 1;
    return 0;
}

template <class OP, class T, class TO>
static int run_plan(const kr_args *a, const Plan &p, cudaStream_t st)
{
    typedef typename OP::A A;
    const T *x = (const T *)a->x;
    TO *y = (TO *)a->y;
    A *part = NULL;
    if (p.S > 1) {
        size_t need = (size_t)p.M * (size_t)p.S * sizeof(A);
        if (!a->ws || a->ws_bytes < need) return (int)cudaErrorInvalidValue;
        part = (A *)a->ws;
    }
    if ((p.M + COLX - 1) / COLX > 0x7fffffff || p.M > 0x7fffffff) return (int)cudaErrorInvalidValue;
    bool row = p.nk == 0 || (p.nr > 0 && p.L >= 32 && p.rin[p.nr - 1] < p.kin[p.nk - 1]);
    if (row) {
        if (p.chunk >= 1024) {
            dim3 grid((unsigned)p.M, (unsigned)p.S);
            k_row<OP, T, TO, BLOCK><<<grid, BLOCK, 0, st>>>(x, y, part, p);
        } else if (p.chunk <= 128) {
            /* short rows: a warp per cell would leave most lanes idle after two loads */
            dim3 grid((unsigned)((p.M + BLOCK / 8 - 1) / (BLOCK / 8)), (unsigned)p.S);
            k_row<OP, T, TO, 8><<<grid, BLOCK, 0, st>>>(x, y, part, p);
        } else {
            dim3 grid((unsigned)((p.M + BLOCK / 32 - 1) / (BLOCK / 32)), (unsigned)p.S);
            k_row<OP, T, TO, 32><<<grid, BLOCK, 0, st>>>(x, y, part, p);
        }
    } else {
        dim3 grid((unsigned)((p.M + COLX - 1) / COLX), (unsigned)p.S);
        k_col<OP, T, TO><<<grid, dim3(COLX, COLY), 0, st>>>(x, y, part, p);
    }
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess || p.S == 1) return (int)e;
    int64_t blocks = (p.M + BLOCK - 1) / BLOCK;
    if (blocks > 65535) blocks = 65535;
    k_fin<OP, T, TO><<<(unsigned)blocks, BLOCK, 0, st>>>(x, y, part, p);
    return (int)cudaGetLastError();
}

template <class OP, class T> static int run_float_out(const kr_args *a, const Plan &p, cudaStream_t st)
{
    if (a->ydt == KILN_DT_FLOAT) return run_plan<OP, T, float>(a, p, st);
    if (a->ydt == KILN_DT_FLOAT16) return run_plan<OP, T, __half>(a, p, st);
    return (int)cudaErrorInvalidValue;
}

template <class T> static int run_float(const kr_args *a, const Plan &p, cudaStream_t st)
{
    switch (a->op) {
    case KR_SUM: case KR_MEAN: case KR_L1: case KR_L2: case KR_LOG_SUM: case KR_SUM_SQUARE:
        return run_float_out<FAdd, T>(a, p, st);
    case KR_MAX: return run_float_out<FMax, T>(a, p, st);
    case KR_MIN: return run_float_out<FMin, T>(a, p, st);
    case KR_PROD: return run_float_out<FProd, T>(a, p, st);
    case KR_LOG_SUM_EXP: return run_float_out<FLse, T>(a, p, st);
    case KR_ARGMAX: case KR_ARGMIN:
        if (a->ydt != KILN_DT_INT64) return (int)cudaErrorInvalidValue;
        return run_plan<Arg<float>, T, int64_t>(a, p, st);
    case KR_MOMENTS: return run_plan<FMoments, T, float2>(a, p, st);
    case KR_SOFTMAX: case KR_LOGSOFTMAX: return run_plan<FSoftmax, T, float2>(a, p, st);
    default: return (int)cudaErrorInvalidValue;
    }
}

template <class T> static int run_int(const kr_args *a, const Plan &p, cudaStream_t st)
{
    if (a->op == KR_ARGMAX || a->op == KR_ARGMIN) {
        if (a->ydt != KILN_DT_INT64) return (int)cudaErrorInvalidValue;
        return run_plan<Arg<int64_t>, T, int64_t>(a, p, st);
    }
    if (a->ydt != a->xdt) return (int)cudaErrorInvalidValue;
    switch (a->op) {
    case KR_SUM: case KR_L1: case KR_SUM_SQUARE: return run_plan<IAdd, T, T>(a, p, st);
    case KR_PROD: return run_plan<IProd, T, T>(a, p, st);
    case KR_MAX: return run_plan<IExt<true, T>, T, T>(a, p, st);
    case KR_MIN: return run_plan<IExt<false, T>, T, T>(a, p, st);
    default: return (int)cudaErrorInvalidValue;
    }
}

} // namespace

/* Workspace bytes kiln__kr_run needs for these dims (partials of split rows). */
extern "C" size_t kiln__kr_workspace(int rank, const int64_t *dims, uint32_t mask)
{
    if (rank < 0 || rank > KR_MAXR) return 0;
    int64_t M = 1, L = 1;
    for (int i = 0; i < rank; i++) {
        if ((mask >> i) & 1u) L *= dims[i];
        else M *= dims[i];
    }
    int S = splits(M, L);
    return S > 1 ? (size_t)M * (size_t)S * PART_BYTES : 0;
}

extern "C" int kiln__kr_run(kr_args *a, void *stream)
{
    cudaStream_t st = (cudaStream_t)stream;
    bool stats = a->op == KR_MOMENTS || a->op == KR_SOFTMAX || a->op == KR_LOGSOFTMAX;
    Plan p;
    bool empty;
    if (plan(a, stats, &p, &empty)) return (int)cudaErrorInvalidValue;
    if (empty) return 0;
    if (!a->x || !a->y) return (int)cudaErrorInvalidValue;
    p.q.pre = (a->op == KR_L1) ? PRE_ABS : (a->op == KR_L2 || a->op == KR_SUM_SQUARE) ? PRE_SQ : PRE_ID;
    p.q.post = a->op == KR_MEAN ? POST_MEAN : a->op == KR_L2 ? POST_SQRT : a->op == KR_LOG_SUM ? POST_LOG : POST_ID;
    p.q.last = a->select_last;
    p.q.amax = a->op == KR_ARGMAX;
    p.q.log = a->op == KR_LOGSOFTMAX;
    p.q.eps = a->eps;
    switch (a->xdt) {
    case KILN_DT_FLOAT: return run_float<float>(a, p, st);
    case KILN_DT_FLOAT16: return run_float<__half>(a, p, st);
    case KILN_DT_INT32: return stats ? (int)cudaErrorInvalidValue : run_int<int32_t>(a, p, st);
    case KILN_DT_INT64: return stats ? (int)cudaErrorInvalidValue : run_int<int64_t>(a, p, st);
    default: return (int)cudaErrorInvalidValue;
    }
}
