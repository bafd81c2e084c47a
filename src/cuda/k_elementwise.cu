/*
 * CUDA kernels of the elementwise family: unary math and activations,
 * broadcasting binary arithmetic and comparisons, Where, Cast and copies.
 *
 * One launcher, kiln__k_elementwise, takes the output and up to three inputs
 * as strided tensors. On the host it right-aligns every input to the output's
 * rank (stride 0 along broadcast axes), drops axes of size 1, orders the axes
 * by decreasing output stride (so NHWC tensors are walked in memory order) and
 * merges neighbours that every operand walks as one. What is left picks the
 * kernel:
 *  - dense: one axis, output stride 1, each input stride 1 or 0 (a scalar):
 *    16-byte vector loads and stores;
 *  - channel: a dense tensor with a per-channel vector ([outer, C, inner],
 *    vector strides 0/1/0), the bias / PReLU / scale case, vectorized;
 *  - transpose: one input whose last two merged axes swap the contiguous
 *    side ([B,] P, Q: input contiguous along P, output along Q), the
 *    NCHW <-> NHWC reformat with or without fp32 <-> fp16: tiles through
 *    shared memory, 16-byte accesses on both sides;
 *  - general: output index -> coordinates -> per-operand offsets through the
 *    strides, with 32-bit indices and multiply-shift division when every
 *    offset fits, 64-bit otherwise.
 * Float ops take FLOAT or FLOAT16 storage and compute in fp32; integer ops are
 * exact and wrap like the CPU reference (src/cpu/cpu_elementwise.c).
 *
 * Each kernel's body is a __host__ __device__ function; defining
 * KILN_KEW_HOST_EMULATION runs the bodies on the host over a few emulated
 * threads, so the index arithmetic can be tested on a machine without a GPU.
 */
#include "cuda_tensor.h"
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <atomic>

/* Keep in step with cuda_ops_elementwise.c. */
enum kew_op {
    KEW_ADD, KEW_SUB, KEW_MUL, KEW_DIV, KEW_POW, KEW_MAX, KEW_MIN, KEW_ADD_DIV,
    KEW_EQUAL, KEW_LESS, KEW_GREATER, KEW_AND, KEW_OR, KEW_PRELU, KEW_WHERE, KEW_CAST,
    KEW_SQRT, KEW_EXP, KEW_LOG, KEW_ABS, KEW_NEG, KEW_RECIP, KEW_FLOOR, KEW_CEIL, KEW_ROUND, KEW_ERF,
    KEW_SIGMOID, KEW_TANH, KEW_RELU, KEW_LEAKY_RELU, KEW_CLIP, KEW_ELU, KEW_SELU, KEW_HARD_SIGMOID,
    KEW_HARD_SWISH, KEW_SOFTPLUS, KEW_GELU, KEW_GELU_TANH, KEW_MISH, KEW_NOT
};
enum { KEW_E_UNSUPPORTED = -1, KEW_E_SHAPE = -2, KEW_E_ARG = -3 };
typedef struct kew_params {
    float f[4];         /* alpha, beta / gamma; Clip lo, hi; Mean's divisor */
    int64_t i[2];       /* integer Clip lo, hi */
    const void *dev[2]; /* Clip min/max as device scalars when not known on the host */
} kew_params;

namespace {

#define HD __host__ __device__ __forceinline__
/* The bodies also compile for the host, whose compiler does not know the pragma. */
#ifdef __CUDA_ARCH__
#define KEW_UNROLL _Pragma("unroll")
#else
#define KEW_UNROLL
#endif

enum { MAXR = KILN_MAX_DIMS, MAXIN = 3, THREADS = 256 };

/* An unused operand slot. */
struct Nil {
    uint8_t x;
};

template <class T, int N> struct alignas(sizeof(T) * N) Vec {
    T v[N];
};

/* Quotient by an invariant d in [1, 2^31] for x < 2^31: floor(x * m / 2^s) with
 * l = ceil(log2 d), s = 31 + l, m = ceil(2^s / d) (< 2^32; Granlund-Montgomery). */
struct FastDiv {
    uint32_t d, m, s;
    HD uint32_t div(uint32_t x) const { return (uint32_t)(((uint64_t)x * m) >> s); }
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

struct SlowDiv {
    int64_t d;
    HD int64_t div(int64_t x) const { return x / d; }
};

template <class I> struct DivOf;
template <> struct DivOf<uint32_t> { typedef FastDiv type; };
template <> struct DivOf<int64_t> { typedef SlowDiv type; };

/* Merged geometry as the general kernel sees it, innermost axis first. */
template <class I> struct GeomK {
    int rank;
    I n;
    I dims[MAXR];
    typename DivOf<I>::type div[MAXR];
    I ost[MAXR];
    I ist[MAXIN][MAXR];
};

struct Ptrs {
    void *out;
    const void *in[MAXIN];
};

/* ---- conversions ---- */

HD float tof(float x) { return x; }
HD float tof(__half x) { return __half2float(x); }
HD float tof(int32_t x) { return (float)x; }
HD float tof(int64_t x) { return (float)x; }
template <class T> HD T fromf(float x);
template <> HD float fromf<float>(float x) { return x; }
template <> HD __half fromf<__half>(float x) { return __float2half_rn(x); }

/* Float to integer with defined results for NaN and out-of-range values (as the CPU). */
HD int64_t f_to_i64(double x)
{
    if (x != x) return 0;
    if (x >= 9223372036854775808.0) return INT64_MAX;
    if (x <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)x;
}

/* Cast: float sources go through double, integer and bool sources through int64. */
template <class T> struct IsFloat { static const bool value = false; };
template <> struct IsFloat<float> { static const bool value = true; };
template <> struct IsFloat<__half> { static const bool value = true; };
template <> struct IsFloat<double> { static const bool value = true; };

HD double to_d(float x) { return x; }
HD double to_d(__half x) { return __half2float(x); }
HD double to_d(double x) { return x; }
HD int64_t to_i(int32_t x) { return x; }
HD int64_t to_i(int64_t x) { return x; }
HD int64_t to_i(uint8_t x) { return x != 0; } /* bool */

template <class TO> HD TO from_d(double d);
template <> HD float from_d<float>(double d) { return (float)d; }
template <> HD __half from_d<__half>(double d) { return __float2half_rn((float)d); }
template <> HD double from_d<double>(double d) { return d; }
template <> HD int64_t from_d<int64_t>(double d) { return f_to_i64(d); }
template <> HD int32_t from_d<int32_t>(double d)
{
    int64_t v = f_to_i64(d);
    return (int32_t)(v < INT32_MIN ? INT32_MIN : v > INT32_MAX ? INT32_MAX : v);
}
template <> HD uint8_t from_d<uint8_t>(double d) { return d != 0; }

template <class TO> HD TO from_i(int64_t i);
template <> HD float from_i<float>(int64_t i) { return (float)i; }
template <> HD __half from_i<__half>(int64_t i) { return __float2half_rn((float)i); }
template <> HD double from_i<double>(int64_t i) { return (double)i; }
template <> HD int64_t from_i<int64_t>(int64_t i) { return i; }
template <> HD int32_t from_i<int32_t>(int64_t i) { return (int32_t)(uint32_t)(uint64_t)i; } /* wraps */
template <> HD uint8_t from_i<uint8_t>(int64_t i) { return i != 0; }

/* ---- operators on fp32 values ---- */

struct OAdd { HD float operator()(float a, float b) const { return a + b; } };
struct OSub { HD float operator()(float a, float b) const { return a - b; } };
struct OMul { HD float operator()(float a, float b) const { return a * b; } };
struct ODiv { HD float operator()(float a, float b) const { return a / b; } };
struct OPow { HD float operator()(float a, float b) const { return powf(a, b); } };
/* NaN wins, as numpy's maximum/minimum. */
struct OMax { HD float operator()(float a, float b) const { return a != a ? a : b != b ? b : a > b ? a : b; } };
struct OMin { HD float operator()(float a, float b) const { return a != a ? a : b != b ? b : a < b ? a : b; } };
struct OPRelu { HD float operator()(float x, float s) const { return x < 0 ? x * s : x; } };
struct OAddDiv {
    float n;
    HD float operator()(float a, float b) const { return (a + b) / n; }
};

struct USqrt { HD float operator()(float x) const { return sqrtf(x); } };
struct UExp { HD float operator()(float x) const { return expf(x); } };
struct ULog { HD float operator()(float x) const { return logf(x); } };
struct UAbs { HD float operator()(float x) const { return fabsf(x); } };
struct UNeg { HD float operator()(float x) const { return -x; } };
struct URecip { HD float operator()(float x) const { return 1.0f / x; } };
struct UFloor { HD float operator()(float x) const { return floorf(x); } };
struct UCeil { HD float operator()(float x) const { return ceilf(x); } };
/* rint rounds half to even in the default rounding mode, as ONNX Round. */
struct URound { HD float operator()(float x) const { return rintf(x); } };
struct UErf { HD float operator()(float x) const { return erff(x); } };
struct USigmoid {
    /* Both branches keep exp()'s argument <= 0, so nothing overflows. On the GPU the fast
     * exponential and division (a few ulp, far inside fp32's tolerance): with expf and an IEEE
     * division the fp16 kernel was bound by arithmetic, not memory. */
    HD float operator()(float x) const
    {
#ifdef __CUDA_ARCH__
        const float e = __expf(-fabsf(x)), r = __fdividef(1.0f, 1.0f + e);
        return x >= 0 ? r : e * r;
#else
        if (x >= 0) return 1.0f / (1.0f + expf(-x));
        float e = expf(x);
        return e / (1.0f + e);
#endif
    }
};
struct UTanh { HD float operator()(float x) const { return tanhf(x); } };
struct URelu { HD float operator()(float x) const { return x > 0 ? x : 0.0f; } };
struct ULeakyRelu {
    float alpha;
    HD float operator()(float x) const { return x >= 0 ? x : alpha * x; }
};
struct UElu {
    float alpha;
    HD float operator()(float x) const { return x >= 0 ? x : alpha * expm1f(x); }
};
struct USelu {
    float alpha, gamma;
    HD float operator()(float x) const { return x > 0 ? gamma * x : gamma * (alpha * expf(x) - alpha); }
};
struct UHardSigmoid {
    float alpha, beta;
    HD float operator()(float x) const
    {
        float v = alpha * x + beta;
        return v < 0 ? 0.0f : v > 1 ? 1.0f : v;
    }
};
struct UHardSwish {
    HD float operator()(float x) const
    {
        float v = x / 6.0f + 0.5f;
        return x * (v < 0 ? 0.0f : v > 1 ? 1.0f : v);
    }
};
HD float softplus(float x) { return x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x)); }
struct USoftplus { HD float operator()(float x) const { return softplus(x); } };
struct UGelu { HD float operator()(float x) const { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); } };
struct UGeluTanh {
    HD float operator()(float x) const
    {
        const float k = 0.79788456080286535588f; /* sqrt(2/pi) */
        return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
    }
};
struct UMish { HD float operator()(float x) const { return x * tanhf(softplus(x)); } };

/* ---- functors on storage types: what the kernels call ---- */

/* Float binary op on FLOAT/FLOAT16 storage; B may be another type (Pow's exponent). */
template <class Op, class T, class B = T> struct FBin {
    Op op;
    HD void init() {}
    HD T operator()(T a, B b) const { return fromf<T>(op(tof(a), tof(b))); }
};

template <class Op, class T> struct FUn {
    Op op;
    HD void init() {}
    HD T operator()(T a) const { return fromf<T>(op(tof(a))); }
};

/* Bounds from device scalars are read once per thread. Comparisons rather than
 * fminf/fmaxf so that NaN passes through, as on the CPU. */
template <class T> struct FClip {
    float lo, hi;
    const T *plo, *phi;
    HD void init()
    {
        if (plo) lo = tof(*plo);
        if (phi) hi = tof(*phi);
    }
    HD T operator()(T x) const
    {
        float v = tof(x);
        if (v < lo) v = lo;
        if (v > hi) v = hi;
        return fromf<T>(v);
    }
};

template <class T> struct UnsignedOf;
template <> struct UnsignedOf<int32_t> { typedef uint32_t type; };
template <> struct UnsignedOf<int64_t> { typedef uint64_t type; };

/* Integer arithmetic wraps (computed modulo 2^bits); division truncates, x/0 is 0. */
template <class T> struct IAdd {
    HD void init() {}
    HD T operator()(T a, T b) const
    {
        typedef typename UnsignedOf<T>::type U;
        return (T)((U)a + (U)b);
    }
};
template <class T> struct ISub {
    HD void init() {}
    HD T operator()(T a, T b) const
    {
        typedef typename UnsignedOf<T>::type U;
        return (T)((U)a - (U)b);
    }
};
template <class T> struct IMul {
    HD void init() {}
    HD T operator()(T a, T b) const
    {
        typedef typename UnsignedOf<T>::type U;
        return (T)((U)a * (U)b);
    }
};
template <class T> struct IDiv {
    HD void init() {}
    HD T operator()(T a, T b) const
    {
        typedef typename UnsignedOf<T>::type U;
        if (b == 0) return 0;
        if (b == -1) return (T)((U)0 - (U)a); /* MIN / -1 wraps to MIN */
        return a / b;
    }
};
template <class T> struct IMax {
    HD void init() {}
    HD T operator()(T a, T b) const { return a > b ? a : b; }
};
template <class T> struct IMin {
    HD void init() {}
    HD T operator()(T a, T b) const { return a < b ? a : b; }
};
template <class T> struct INeg {
    HD void init() {}
    HD T operator()(T a) const
    {
        typedef typename UnsignedOf<T>::type U;
        return (T)((U)0 - (U)a);
    }
};
template <class T> struct IAbs {
    HD void init() {}
    HD T operator()(T a) const
    {
        typedef typename UnsignedOf<T>::type U;
        return a < 0 ? (T)((U)0 - (U)a) : a;
    }
};
template <class T> struct IRelu {
    HD void init() {}
    HD T operator()(T a) const { return a < 0 ? (T)0 : a; }
};
template <class T> struct IClip {
    T lo, hi;
    const T *plo, *phi;
    HD void init()
    {
        if (plo) lo = *plo;
        if (phi) hi = *phi;
    }
    HD T operator()(T x) const { return x < lo ? lo : x > hi ? hi : x; }
};

/* Comparison value of a storage element: fp32 for floats, itself for integers, 0/1 for bool. */
HD float cmpv(float x) { return x; }
HD float cmpv(__half x) { return __half2float(x); }
HD int32_t cmpv(int32_t x) { return x; }
HD int64_t cmpv(int64_t x) { return x; }
HD uint8_t cmpv(uint8_t x) { return x != 0; }

enum { CMP_EQ, CMP_LT, CMP_GT };
template <int C, class T> struct FCmp {
    HD void init() {}
    HD uint8_t operator()(T a, T b) const
    {
        if (C == CMP_EQ) return cmpv(a) == cmpv(b);
        if (C == CMP_LT) return cmpv(a) < cmpv(b);
        return cmpv(a) > cmpv(b);
    }
};

struct FAnd {
    HD void init() {}
    HD uint8_t operator()(uint8_t a, uint8_t b) const { return (a != 0) & (b != 0); }
};
struct FOr {
    HD void init() {}
    HD uint8_t operator()(uint8_t a, uint8_t b) const { return (a != 0) | (b != 0); }
};
struct FNot {
    HD void init() {}
    HD uint8_t operator()(uint8_t a) const { return a == 0; }
};

/* Where moves elements by size only. */
template <class T> struct FWhere {
    HD void init() {}
    HD T operator()(uint8_t c, T x, T y) const { return c ? x : y; }
};

template <class T> struct FCopy {
    HD void init() {}
    HD T operator()(T x) const { return x; }
};

template <class TI, class TO, bool FROM_FLOAT = IsFloat<TI>::value> struct FCast;
template <class TI, class TO> struct FCast<TI, TO, true> {
    HD void init() {}
    HD TO operator()(TI x) const { return from_d<TO>(to_d(x)); }
};
template <class TI, class TO> struct FCast<TI, TO, false> {
    HD void init() {}
    HD TO operator()(TI x) const { return from_i<TO>(to_i(x)); }
};
/* The precision-boundary conversions, without the trip through double. */
template <> struct FCast<float, __half, true> {
    HD void init() {}
    HD __half operator()(float x) const { return __float2half_rn(x); }
};
template <> struct FCast<__half, float, true> {
    HD void init() {}
    HD float operator()(__half x) const { return __half2float(x); }
};

/* ---- kernel bodies (thread tid of nth) ---- */

template <int NIN, class F, class A, class B, class C> HD auto apply(const F &f, A a, B b, C c)
{
    if constexpr (NIN == 1) {
        (void)b;
        (void)c;
        return f(a);
    } else if constexpr (NIN == 2) {
        (void)c;
        return f(a, b);
    } else {
        return f(a, b, c);
    }
}

template <class T, int VEC, class I> HD Vec<T, VEC> load_vec(const T *p, I i, bool scalar)
{
    Vec<T, VEC> v;
    if (scalar) {
        T s = p[0];
KEW_UNROLL
        for (int k = 0; k < VEC; k++) v.v[k] = s;
    } else {
        v = *reinterpret_cast<const Vec<T, VEC> *>(p + i);
    }
    return v;
}

/* Every operand walks one axis with stride 1, or is a scalar (bit k of `scalar`). */
template <int NIN, class F, class TO, class T0, class T1, class T2, int VEC, class I = int64_t>
HD void dense_body(int64_t tid, int64_t nth, F f, Ptrs p, int64_t n, unsigned scalar)
{
    f.init();
    TO *o = (TO *)p.out;
    const T0 *a = (const T0 *)p.in[0];
    const T1 *b = (const T1 *)p.in[1];
    const T2 *c = (const T2 *)p.in[2];
    const bool sa = scalar & 1, sb = scalar & 2, sc = scalar & 4;
    const I nv = (I)(n / VEC);
    if constexpr (sizeof(I) == 4) {
        /* two vectors per thread in flight: loads of both before either store */
        for (I v = (I)tid; v < nv; v += 2 * (I)nth) {
            const I v1 = v + (I)nth;
            const bool two = v1 < nv;
            Vec<T0, VEC> va[2];
            Vec<T1, VEC> vb[2]{};
            Vec<T2, VEC> vc[2]{};
KEW_UNROLL
            for (int u = 0; u < 2; u++) {
                if (u == 1 && !two) break;
                const I i = (u ? v1 : v) * VEC;
                va[u] = load_vec<T0, VEC>(a, i, sa);
                if constexpr (NIN > 1) vb[u] = load_vec<T1, VEC>(b, i, sb);
                if constexpr (NIN > 2) vc[u] = load_vec<T2, VEC>(c, i, sc);
            }
KEW_UNROLL
            for (int u = 0; u < 2; u++) {
                if (u == 1 && !two) break;
                Vec<TO, VEC> vo;
KEW_UNROLL
                for (int k = 0; k < VEC; k++) vo.v[k] = apply<NIN>(f, va[u].v[k], vb[u].v[k], vc[u].v[k]);
                *reinterpret_cast<Vec<TO, VEC> *>(o + (u ? v1 : v) * VEC) = vo;
            }
        }
    } else
    for (I v = (I)tid; v < nv; v += (I)nth) {
        const I i = v * VEC;
        Vec<T0, VEC> va = load_vec<T0, VEC>(a, i, sa);
        Vec<T1, VEC> vb{};
        Vec<T2, VEC> vc{};
        if constexpr (NIN > 1) vb = load_vec<T1, VEC>(b, i, sb);
        if constexpr (NIN > 2) vc = load_vec<T2, VEC>(c, i, sc);
        Vec<TO, VEC> vo;
KEW_UNROLL
        for (int k = 0; k < VEC; k++) vo.v[k] = apply<NIN>(f, va.v[k], vb.v[k], vc.v[k]);
        *reinterpret_cast<Vec<TO, VEC> *>(o + i) = vo;
    }
    for (I i = nv * VEC + (I)tid; i < (I)n; i += (I)nth) {
        T1 xb{};
        T2 xc{};
        if constexpr (NIN > 1) xb = b[sb ? 0 : i];
        if constexpr (NIN > 2) xc = c[sc ? 0 : i];
        o[i] = apply<NIN>(f, a[sa ? 0 : i], xb, xc);
    }
}

/*
 * A dense operand and a per-channel vector: element i has channel
 * (i / inner) % C. SAME: inner % VEC == 0, a vector of elements shares one
 * channel. RUN: inner == 1 and C % VEC == 0, a vector of elements has VEC
 * consecutive channels. Either way n is a multiple of VEC.
 */
enum { CHAN_SAME, CHAN_RUN };
template <class F, class T, int VEC, int MODE>
HD void chan_body(int64_t tid, int64_t nth, F f, const T *dense, const T *vec, T *o, uint32_t n, FastDiv inner,
                  FastDiv nch, int vec_first)
{
    f.init();
    const uint32_t nv = n / VEC;
    for (uint32_t v = (uint32_t)tid; v < nv; v += (uint32_t)nth) {
        const uint32_t i = v * VEC;
        const uint32_t q = MODE == CHAN_RUN ? i : inner.div(i);
        const uint32_t ch = q - nch.div(q) * nch.d;
        Vec<T, VEC> x = *reinterpret_cast<const Vec<T, VEC> *>(dense + i), s, r;
        if (MODE == CHAN_RUN) {
            s = *reinterpret_cast<const Vec<T, VEC> *>(vec + ch);
        } else {
            T sv = vec[ch];
KEW_UNROLL
            for (int k = 0; k < VEC; k++) s.v[k] = sv;
        }
        if (vec_first) {
KEW_UNROLL
            for (int k = 0; k < VEC; k++) r.v[k] = f(s.v[k], x.v[k]);
        } else {
KEW_UNROLL
            for (int k = 0; k < VEC; k++) r.v[k] = f(x.v[k], s.v[k]);
        }
        *reinterpret_cast<Vec<T, VEC> *>(o + i) = r;
    }
}

/* Any strides: coordinates of output element i (innermost first), offsets per operand. */
template <int NIN, class F, class TO, class T0, class T1, class T2, class I>
HD void gen_body(int64_t tid, int64_t nth, F f, Ptrs p, const GeomK<I> &g)
{
    f.init();
    TO *o = (TO *)p.out;
    const T0 *a = (const T0 *)p.in[0];
    const T1 *b = (const T1 *)p.in[1];
    const T2 *c = (const T2 *)p.in[2];
    for (I i = (I)tid; i < g.n; i += (I)nth) {
        I rem = i, oo = 0, o0 = 0, o1 = 0, o2 = 0;
KEW_UNROLL
        for (int d = 0; d < MAXR; d++) {
            if (d >= g.rank) break;
            I x;
            if (d == g.rank - 1) {
                x = rem;
            } else {
                I q = g.div[d].div(rem);
                x = rem - q * g.dims[d];
                rem = q;
            }
            oo += x * g.ost[d];
            o0 += x * g.ist[0][d];
            if constexpr (NIN > 1) o1 += x * g.ist[1][d];
            if constexpr (NIN > 2) o2 += x * g.ist[2][d];
        }
        T1 xb{};
        T2 xc{};
        if constexpr (NIN > 1) xb = b[o1];
        if constexpr (NIN > 2) xc = c[o2];
        o[oo] = apply<NIN>(f, a[o0], xb, xc);
    }
}

/* ---- kernels ---- */

__device__ __forceinline__ int64_t gtid() { return (int64_t)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t gnth() { return (int64_t)gridDim.x * blockDim.x; }

template <int NIN, class F, class TO, class T0, class T1, class T2, int VEC, class I>
__global__ void __launch_bounds__(THREADS) k_dense(F f, Ptrs p, int64_t n, unsigned scalar)
{
    dense_body<NIN, F, TO, T0, T1, T2, VEC, I>(gtid(), gnth(), f, p, n, scalar);
}

/*
 * Batched 2-D transpose with a conversion, the NCHW <-> NHWC reformat:
 * out[b, p, q] = f(in[b, p, q]) where the input is contiguous along p and the
 * output along q. A TT x TT tile goes through shared memory: read as 16-byte
 * vectors along p (rows of the tile are q), written as 16-byte vectors along
 * q; element-wise accesses where a vector would leave the tensor or the
 * strides / pointers are not aligned for it (vin / vout false).
 */
enum { TT = 64 };
struct TrGeom {
    uint32_t P, Q, B;
    uint32_t isq, ib, osp, ob;
    int vin, vout;
};

template <class F, class TI, class TO>
__global__ void __launch_bounds__(THREADS) k_transpose(F f, const TI *__restrict__ in, TO *__restrict__ out, TrGeom g)
{
    constexpr int VI = 16 / sizeof(TI), VO = 16 / sizeof(TO);
    constexpr int R = TT + (sizeof(TO) == 2 ? 2 : 1); /* padded row: fewer bank conflicts on the column reads */
    constexpr int VPI = TT / VI, VPO = TT / VO;
    __shared__ __align__(16) unsigned char raw[TT * R * sizeof(TO)];
    TO *s = reinterpret_cast<TO *>(raw);
    f.init();
    const uint32_t p0 = blockIdx.x * TT, q0 = blockIdx.y * TT;
    for (uint32_t bz = blockIdx.z; bz < g.B; bz += gridDim.z) {
        const TI *ib = in + bz * g.ib;
        TO *ob = out + bz * g.ob;
        for (uint32_t t = threadIdx.x; t < TT * VPI; t += THREADS) {
            const uint32_t qi = t / VPI, pi = (t % VPI) * VI, q = q0 + qi, p = p0 + pi;
            if (q >= g.Q || p >= g.P) continue;
            const TI *src = ib + q * g.isq + p;
            TO *d = s + qi * R + pi;
            if (g.vin && p + VI <= g.P) {
                const Vec<TI, VI> v = *reinterpret_cast<const Vec<TI, VI> *>(src);
#pragma unroll
                for (int k = 0; k < VI; k++) d[k] = f(v.v[k]);
            } else {
                for (int k = 0; k < VI && p + k < g.P; k++) d[k] = f(src[k]);
            }
        }
        __syncthreads();
        for (uint32_t t = threadIdx.x; t < TT * VPO; t += THREADS) {
            const uint32_t pi = t / VPO, qi = (t % VPO) * VO, p = p0 + pi, q = q0 + qi;
            if (p >= g.P || q >= g.Q) continue;
            TO *dst = ob + p * g.osp + q;
            const TO *c = s + qi * R + pi;
            if (g.vout && q + VO <= g.Q) {
                Vec<TO, VO> v;
#pragma unroll
                for (int k = 0; k < VO; k++) v.v[k] = c[k * R];
                *reinterpret_cast<Vec<TO, VO> *>(dst) = v;
            } else {
                for (int k = 0; k < VO && q + k < g.Q; k++) dst[k] = c[k * R];
            }
        }
        __syncthreads();
    }
}

template <class F, class T, int VEC, int MODE>
__global__ void __launch_bounds__(THREADS)
    k_chan(F f, const T *dense, const T *vec, T *o, uint32_t n, FastDiv inner, FastDiv nch, int vec_first)
{
    chan_body<F, T, VEC, MODE>(gtid(), gnth(), f, dense, vec, o, n, inner, nch, vec_first);
}

template <int NIN, class F, class TO, class T0, class T1, class T2, class I>
__global__ void __launch_bounds__(THREADS) k_gen(F f, Ptrs p, GeomK<I> g)
{
    gen_body<NIN, F, TO, T0, T1, T2, I>(gtid(), gnth(), f, p, g);
}

/* ---- host side: geometry ---- */

struct Geom {
    int nin;
    int rank; /* merged axes, outermost first */
    int64_t n;
    int64_t dims[MAXR];
    int64_t ost[MAXR];
    int64_t ist[MAXIN][MAXR];
    Ptrs p;
    bool dense;   /* one axis, output stride 1, input strides 1 or 0 */
    unsigned scalar;
    bool fits32;  /* n and every offset below 2^31 */
    /* channel form: input chan_dense is laid out as the output, input chan_vec is a
     * contiguous vector along the middle of [outer, C, inner] */
    bool chan;
    int chan_vec;
    int64_t chan_c, chan_inner;
    /* transpose form (one input, 32-bit offsets): [B,] P, Q with the input contiguous
     * along P and the output along Q */
    bool tr;
    int64_t tr_b, tr_p, tr_q, tr_isq, tr_ib, tr_osp, tr_ob;
};

static int64_t max_offset(int rank, const int64_t *dims, const int64_t *st)
{
    const int64_t lim = (int64_t)1 << 62;
    int64_t m = 0;
    for (int d = 0; d < rank; d++) {
        if (st[d] == 0) continue;
        if (dims[d] - 1 > lim / st[d]) return lim;
        m += (dims[d] - 1) * st[d];
        if (m >= lim) return lim;
    }
    return m;
}

static int build_geom(const kiln_cuda_tensor *out, int nin, const kiln_cuda_tensor *in, Geom *g)
{
    const int R = out->rank;
    if (R < 0 || R > MAXR || nin < 1 || nin > MAXIN) return KEW_E_ARG;
    g->nin = nin;
    g->n = 1;
    for (int d = 0; d < R; d++) {
        if (out->dims[d] < 0 || out->strides[d] < 0) return KEW_E_ARG;
        if (out->dims[d] > 0 && g->n > ((int64_t)1 << 62) / out->dims[d]) return KEW_E_ARG;
        g->n *= out->dims[d];
    }
    /* Right-align each input; a broadcast axis (size 1) gets stride 0. */
    int64_t ist[MAXIN][MAXR];
    for (int k = 0; k < nin; k++) {
        const int r = in[k].rank;
        if (r < 0 || r > R) return KEW_E_SHAPE;
        for (int d = 0; d < R; d++) {
            const int id = d - (R - r);
            const int64_t dim = id >= 0 ? in[k].dims[id] : 1;
            if (dim != 1 && dim != out->dims[d]) return KEW_E_SHAPE;
            ist[k][d] = dim == 1 ? 0 : in[k].strides[id];
            if (ist[k][d] < 0) return KEW_E_ARG;
        }
    }
    g->p.out = out->ptr;
    for (int k = 0; k < MAXIN; k++) g->p.in[k] = k < nin ? in[k].ptr : NULL;
    g->dense = g->chan = false;
    g->fits32 = true;
    g->scalar = 0;
    g->rank = 0;
    if (g->n == 0) return 0;
    if (!out->ptr) return KEW_E_ARG;
    for (int k = 0; k < nin; k++)
        if (!in[k].ptr) return KEW_E_ARG;

    /* Axes of size 1 carry nothing. */
    int m = 0, axis[MAXR];
    for (int d = 0; d < R; d++)
        if (out->dims[d] != 1) axis[m++] = d;
    /* Walk in the output's memory order: stable sort by decreasing output stride. */
    for (int i = 1; i < m; i++) {
        int a = axis[i], j = i;
        while (j > 0 && out->strides[axis[j - 1]] < out->strides[a]) {
            axis[j] = axis[j - 1];
            j--;
        }
        axis[j] = a;
    }
    /* Merge an axis into the one outside it when every operand walks both as one. */
    int r = 0;
    for (int i = 0; i < m; i++) {
        const int d = axis[i];
        const int64_t dim = out->dims[d];
        bool merge = r > 0 && g->ost[r - 1] == out->strides[d] * dim;
        for (int k = 0; k < nin && merge; k++)
            if (g->ist[k][r - 1] != ist[k][d] * dim) merge = false;
        if (merge) {
            g->dims[r - 1] *= dim;
            g->ost[r - 1] = out->strides[d];
            for (int k = 0; k < nin; k++) g->ist[k][r - 1] = ist[k][d];
        } else {
            g->dims[r] = dim;
            g->ost[r] = out->strides[d];
            for (int k = 0; k < nin; k++) g->ist[k][r] = ist[k][d];
            r++;
        }
    }
    if (r == 0) { /* a single element */
        r = 1;
        g->dims[0] = 1;
        g->ost[0] = 1;
        for (int k = 0; k < nin; k++) g->ist[k][0] = 0;
    }
    g->rank = r;

    g->fits32 = g->n < ((int64_t)1 << 31) && max_offset(r, g->dims, g->ost) < ((int64_t)1 << 31);
    for (int k = 0; k < nin; k++)
        if (max_offset(r, g->dims, g->ist[k]) >= ((int64_t)1 << 31)) g->fits32 = false;

    if (r == 1 && g->ost[0] == 1) {
        g->dense = true;
        for (int k = 0; k < nin; k++) {
            if (g->ist[k][0] == 0) g->scalar |= 1u << k;
            else if (g->ist[k][0] != 1) g->dense = false;
        }
    }

    /* Transpose form: the last two merged axes swap which side is contiguous. With a short side
     * (e.g. 3 channels) the general kernel's accesses are nearly contiguous already and a tile
     * would be mostly empty: both sides must be at least 32 long. */
    g->tr = false;
    if (nin == 1 && (r == 2 || r == 3) && g->fits32) {
        const int q = r - 1, pa = r - 2;
        if (g->ost[q] == 1 && g->ist[0][pa] == 1 && g->ist[0][q] > 1 && g->ost[pa] > 1 && g->dims[q] >= 32 &&
            g->dims[pa] >= 32) {
            g->tr = true;
            g->tr_b = r == 3 ? g->dims[0] : 1;
            g->tr_ib = r == 3 ? g->ist[0][0] : 0;
            g->tr_ob = r == 3 ? g->ost[0] : 0;
            g->tr_p = g->dims[pa];
            g->tr_q = g->dims[q];
            g->tr_isq = g->ist[0][q];
            g->tr_osp = g->ost[pa];
        }
    }

    /* Channel form: output dense over [outer, C, inner], one input the same, the other 0/1/0. */
    if (nin == 2 && (r == 2 || r == 3) && g->fits32) {
        bool odense = g->ost[r - 1] == 1;
        for (int d = r - 2; d >= 0 && odense; d--)
            if (g->ost[d] != g->ost[d + 1] * g->dims[d + 1]) odense = false;
        for (int v = 0; v < 2 && odense && !g->chan; v++) {
            const int x = 1 - v;
            bool same = true;
            for (int d = 0; d < r; d++)
                if (g->ist[x][d] != g->ost[d]) same = false;
            int cd = -1, ones = 0;
            for (int d = 0; d < r; d++) {
                if (g->ist[v][d] == 1) {
                    cd = d;
                    ones++;
                } else if (g->ist[v][d] != 0) {
                    ones = 99;
                }
            }
            if (!same || ones != 1) continue;
            g->chan = true;
            g->chan_vec = v;
            g->chan_c = g->dims[cd];
            g->chan_inner = 1;
            for (int d = cd + 1; d < r; d++) g->chan_inner *= g->dims[d];
        }
    }
    return 0;
}

template <class I> static GeomK<I> kernel_geom(const Geom &g);

template <> GeomK<uint32_t> kernel_geom<uint32_t>(const Geom &g)
{
    GeomK<uint32_t> k = {};
    k.rank = g.rank;
    k.n = (uint32_t)g.n;
    for (int d = 0; d < g.rank; d++) {
        const int s = g.rank - 1 - d; /* innermost first */
        k.dims[d] = (uint32_t)g.dims[s];
        k.div[d] = make_fastdiv((uint32_t)g.dims[s]);
        k.ost[d] = (uint32_t)g.ost[s];
        for (int j = 0; j < g.nin; j++) k.ist[j][d] = (uint32_t)g.ist[j][s];
    }
    return k;
}

template <> GeomK<int64_t> kernel_geom<int64_t>(const Geom &g)
{
    GeomK<int64_t> k = {};
    k.rank = g.rank;
    k.n = g.n;
    for (int d = 0; d < g.rank; d++) {
        const int s = g.rank - 1 - d;
        k.dims[d] = g.dims[s];
        k.div[d].d = g.dims[s];
        k.ost[d] = g.ost[s];
        for (int j = 0; j < g.nin; j++) k.ist[j][d] = g.ist[j][s];
    }
    return k;
}

/* ---- host side: launches ---- */

#ifdef KILN_KEW_HOST_EMULATION
enum { EMU_THREADS = 7 };
#endif

static int sm_count(void)
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

/* Enough blocks to fill the GPU once; the grid-stride loops cover the rest. */
static unsigned grid_for(int64_t work)
{
    int64_t b = (work + THREADS - 1) / THREADS, cap = (int64_t)sm_count() * (2048 / THREADS);
    if (b > cap) b = cap;
    return (unsigned)(b < 1 ? 1 : b);
}

static bool aligned(const void *p, size_t bytes) { return ((uintptr_t)p % bytes) == 0; }

template <class TO, class T0, class T1, class T2> constexpr int vec_count()
{
    size_t m = sizeof(TO);
    if (sizeof(T0) > m) m = sizeof(T0);
    if (sizeof(T1) > m) m = sizeof(T1);
    if (sizeof(T2) > m) m = sizeof(T2);
    return (int)(16 / m);
}

template <int NIN, class F, class TO, class T0, class T1, class T2, class I>
static int run_gen(const F &f, const Geom &g, cudaStream_t s)
{
    GeomK<I> k = kernel_geom<I>(g);
#ifdef KILN_KEW_HOST_EMULATION
    (void)s;
    for (int64_t t = 0; t < EMU_THREADS; t++) gen_body<NIN, F, TO, T0, T1, T2, I>(t, EMU_THREADS, f, g.p, k);
    return 0;
#else
    k_gen<NIN, F, TO, T0, T1, T2, I><<<grid_for(g.n), THREADS, 0, s>>>(f, g.p, k);
    return (int)cudaGetLastError();
#endif
}

/* KILN_MEMK_GENERIC=1: no transpose kernel, 64-bit dense loops (the kernels before them, for measuring). */
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

#ifndef KILN_KEW_HOST_EMULATION
template <class F, class TO, class TI> static int run_transpose(const F &f, const Geom &g, cudaStream_t s)
{
    constexpr int VI = 16 / sizeof(TI), VO = 16 / sizeof(TO);
    TrGeom k;
    k.P = (uint32_t)g.tr_p;
    k.Q = (uint32_t)g.tr_q;
    k.B = (uint32_t)g.tr_b;
    k.isq = (uint32_t)g.tr_isq;
    k.ib = (uint32_t)g.tr_ib;
    k.osp = (uint32_t)g.tr_osp;
    k.ob = (uint32_t)g.tr_ob;
    k.vin = aligned(g.p.in[0], 16) && k.isq % VI == 0 && k.ib % VI == 0;
    k.vout = aligned(g.p.out, 16) && k.osp % VO == 0 && k.ob % VO == 0;
    dim3 grid((unsigned)((g.tr_p + TT - 1) / TT), (unsigned)((g.tr_q + TT - 1) / TT), 1);
    if (grid.y > 65535) return run_gen<1, F, TO, TI, Nil, Nil, uint32_t>(f, g, s);
    int64_t tiles = (int64_t)grid.x * grid.y, want = (int64_t)sm_count() * 4;
    int64_t gz = tiles >= want ? 1 : (want + tiles - 1) / tiles;
    if (gz > g.tr_b) gz = g.tr_b;
    if (gz > 65535) gz = 65535;
    grid.z = (unsigned)gz;
    k_transpose<F, TI, TO><<<grid, THREADS, 0, s>>>(f, (const TI *)g.p.in[0], (TO *)g.p.out, k);
    return (int)cudaGetLastError();
}
#endif

/* Dense when the pointers allow 16-byte accesses, else the general kernel. */
template <int NIN, class F, class TO, class T0, class T1 = Nil, class T2 = Nil>
static int run_map(const F &f, const Geom &g, cudaStream_t s)
{
    if (g.n == 0) return 0;
    constexpr int VEC = vec_count<TO, T0, T1, T2>();
    const size_t sz[4] = {sizeof(TO), sizeof(T0), sizeof(T1), sizeof(T2)};
    bool ok = g.dense && aligned(g.p.out, VEC * sz[0]);
    for (int k = 0; k < NIN && ok; k++)
        if (!(g.scalar & (1u << k)) && !aligned(g.p.in[k], VEC * sz[k + 1])) ok = false;
    if (ok) {
#ifdef KILN_KEW_HOST_EMULATION
        for (int64_t t = 0; t < EMU_THREADS; t++)
            dense_body<NIN, F, TO, T0, T1, T2, VEC>(t, EMU_THREADS, f, g.p, g.n, g.scalar);
        return 0;
#else
        /* 32-bit indices when the grid-stride loop cannot overflow them */
        if (g.n < ((int64_t)1 << 31) - (int64_t)2 * VEC * THREADS * grid_for(g.n / VEC) && !generic_only())
            k_dense<NIN, F, TO, T0, T1, T2, VEC, uint32_t>
                <<<grid_for((g.n / VEC + 1) / 2), THREADS, 0, s>>>(f, g.p, g.n, g.scalar);
        else
            k_dense<NIN, F, TO, T0, T1, T2, VEC, int64_t><<<grid_for(g.n / VEC), THREADS, 0, s>>>(f, g.p, g.n, g.scalar);
        return (int)cudaGetLastError();
#endif
    }
#ifndef KILN_KEW_HOST_EMULATION
    if constexpr (NIN == 1 && (sizeof(TO) == 2 || sizeof(TO) == 4) && (sizeof(T0) == 2 || sizeof(T0) == 4)) {
        if (g.tr && !generic_only()) return run_transpose<F, TO, T0>(f, g, s);
    }
#endif
    if (g.fits32) return run_gen<NIN, F, TO, T0, T1, T2, uint32_t>(f, g, s);
    return run_gen<NIN, F, TO, T0, T1, T2, int64_t>(f, g, s);
}

/* Binary float ops that also take the per-channel fast path. */
template <class F, class T> static int run_chan(const F &f, const Geom &g, cudaStream_t s)
{
    constexpr int VEC = 16 / sizeof(T);
    if (!g.chan || g.dense) return run_map<2, F, T, T, T>(f, g, s);
    const T *dense = (const T *)g.p.in[1 - g.chan_vec], *vec = (const T *)g.p.in[g.chan_vec];
    T *o = (T *)g.p.out;
    int mode = -1;
    if (aligned(dense, 16) && aligned(o, 16)) {
        if (g.chan_inner % VEC == 0) mode = CHAN_SAME;
        else if (g.chan_inner == 1 && g.chan_c % VEC == 0 && aligned(vec, 16)) mode = CHAN_RUN;
    }
    if (mode < 0) return run_map<2, F, T, T, T>(f, g, s);
    const uint32_t n = (uint32_t)g.n;
    const FastDiv inner = make_fastdiv((uint32_t)g.chan_inner), nch = make_fastdiv((uint32_t)g.chan_c);
    const int vf = g.chan_vec == 0;
#ifdef KILN_KEW_HOST_EMULATION
    (void)s;
    for (int64_t t = 0; t < EMU_THREADS; t++) {
        if (mode == CHAN_SAME) chan_body<F, T, VEC, CHAN_SAME>(t, EMU_THREADS, f, dense, vec, o, n, inner, nch, vf);
        else chan_body<F, T, VEC, CHAN_RUN>(t, EMU_THREADS, f, dense, vec, o, n, inner, nch, vf);
    }
    return 0;
#else
    if (mode == CHAN_SAME)
        k_chan<F, T, VEC, CHAN_SAME><<<grid_for(n / VEC), THREADS, 0, s>>>(f, dense, vec, o, n, inner, nch, vf);
    else
        k_chan<F, T, VEC, CHAN_RUN><<<grid_for(n / VEC), THREADS, 0, s>>>(f, dense, vec, o, n, inner, nch, vf);
    return (int)cudaGetLastError();
#endif
}

/* ---- dispatch by op and dtype ---- */

template <class Op> static int bin_float(kiln_dtype dt, const Op &op, const Geom &g, cudaStream_t s)
{
    switch (dt) {
    case KILN_DT_FLOAT: return run_chan<FBin<Op, float>, float>(FBin<Op, float>{op}, g, s);
    case KILN_DT_FLOAT16: return run_chan<FBin<Op, __half>, __half>(FBin<Op, __half>{op}, g, s);
    default: return KEW_E_UNSUPPORTED;
    }
}

template <template <class> class IOp> static int bin_int(kiln_dtype dt, const Geom &g, cudaStream_t s)
{
    switch (dt) {
    case KILN_DT_INT32: return run_map<2, IOp<int32_t>, int32_t, int32_t, int32_t>(IOp<int32_t>{}, g, s);
    case KILN_DT_INT64: return run_map<2, IOp<int64_t>, int64_t, int64_t, int64_t>(IOp<int64_t>{}, g, s);
    default: return KEW_E_UNSUPPORTED;
    }
}

template <class Op, template <class> class IOp>
static int bin_arith(kiln_dtype dt, const Op &op, const Geom &g, cudaStream_t s)
{
    if (dt == KILN_DT_FLOAT || dt == KILN_DT_FLOAT16) return bin_float(dt, op, g, s);
    return bin_int<IOp>(dt, g, s);
}

template <class T> static int pow_exp(kiln_dtype et, const Geom &g, cudaStream_t s)
{
    switch (et) {
    case KILN_DT_FLOAT: return run_map<2, FBin<OPow, T, float>, T, T, float>(FBin<OPow, T, float>{}, g, s);
    case KILN_DT_FLOAT16: return run_map<2, FBin<OPow, T, __half>, T, T, __half>(FBin<OPow, T, __half>{}, g, s);
    case KILN_DT_INT32: return run_map<2, FBin<OPow, T, int32_t>, T, T, int32_t>(FBin<OPow, T, int32_t>{}, g, s);
    case KILN_DT_INT64: return run_map<2, FBin<OPow, T, int64_t>, T, T, int64_t>(FBin<OPow, T, int64_t>{}, g, s);
    default: return KEW_E_UNSUPPORTED;
    }
}

template <int C> static int compare(kiln_dtype dt, const Geom &g, cudaStream_t s)
{
    switch (dt) {
    case KILN_DT_FLOAT: return run_map<2, FCmp<C, float>, uint8_t, float, float>(FCmp<C, float>{}, g, s);
    case KILN_DT_FLOAT16: return run_map<2, FCmp<C, __half>, uint8_t, __half, __half>(FCmp<C, __half>{}, g, s);
    case KILN_DT_INT32: return run_map<2, FCmp<C, int32_t>, uint8_t, int32_t, int32_t>(FCmp<C, int32_t>{}, g, s);
    case KILN_DT_INT64: return run_map<2, FCmp<C, int64_t>, uint8_t, int64_t, int64_t>(FCmp<C, int64_t>{}, g, s);
    case KILN_DT_BOOL: return run_map<2, FCmp<C, uint8_t>, uint8_t, uint8_t, uint8_t>(FCmp<C, uint8_t>{}, g, s);
    default: return KEW_E_UNSUPPORTED;
    }
}

template <class Op> static int un_float(kiln_dtype dt, const Op &op, const Geom &g, cudaStream_t s)
{
    switch (dt) {
    case KILN_DT_FLOAT: return run_map<1, FUn<Op, float>, float, float>(FUn<Op, float>{op}, g, s);
    case KILN_DT_FLOAT16: return run_map<1, FUn<Op, __half>, __half, __half>(FUn<Op, __half>{op}, g, s);
    default: return KEW_E_UNSUPPORTED;
    }
}

template <class Op, template <class> class IOp>
static int un_signed(kiln_dtype dt, const Op &op, const Geom &g, cudaStream_t s)
{
    switch (dt) {
    case KILN_DT_INT32: return run_map<1, IOp<int32_t>, int32_t, int32_t>(IOp<int32_t>{}, g, s);
    case KILN_DT_INT64: return run_map<1, IOp<int64_t>, int64_t, int64_t>(IOp<int64_t>{}, g, s);
    default: return un_float(dt, op, g, s);
    }
}

static int clip(kiln_dtype dt, const kew_params *p, const Geom &g, cudaStream_t s)
{
    switch (dt) {
    case KILN_DT_FLOAT: {
        FClip<float> f = {p->f[0], p->f[1], (const float *)p->dev[0], (const float *)p->dev[1]};
        return run_map<1, FClip<float>, float, float>(f, g, s);
    }
    case KILN_DT_FLOAT16: {
        FClip<__half> f = {p->f[0], p->f[1], (const __half *)p->dev[0], (const __half *)p->dev[1]};
        return run_map<1, FClip<__half>, __half, __half>(f, g, s);
    }
    case KILN_DT_INT32: {
        IClip<int32_t> f = {(int32_t)p->i[0], (int32_t)p->i[1], (const int32_t *)p->dev[0],
                            (const int32_t *)p->dev[1]};
        return run_map<1, IClip<int32_t>, int32_t, int32_t>(f, g, s);
    }
    case KILN_DT_INT64: {
        IClip<int64_t> f = {p->i[0], p->i[1], (const int64_t *)p->dev[0], (const int64_t *)p->dev[1]};
        return run_map<1, IClip<int64_t>, int64_t, int64_t>(f, g, s);
    }
    default: return KEW_E_UNSUPPORTED;
    }
}

static int copy(size_t es, const Geom &g, cudaStream_t s)
{
    switch (es) {
    case 1: return run_map<1, FCopy<uint8_t>, uint8_t, uint8_t>(FCopy<uint8_t>{}, g, s);
    case 2: return run_map<1, FCopy<uint16_t>, uint16_t, uint16_t>(FCopy<uint16_t>{}, g, s);
    case 4: return run_map<1, FCopy<uint32_t>, uint32_t, uint32_t>(FCopy<uint32_t>{}, g, s);
    case 8: return run_map<1, FCopy<uint64_t>, uint64_t, uint64_t>(FCopy<uint64_t>{}, g, s);
    default: return KEW_E_UNSUPPORTED;
    }
}

static int where(size_t es, const Geom &g, cudaStream_t s)
{
    switch (es) {
    case 1: return run_map<3, FWhere<uint8_t>, uint8_t, uint8_t, uint8_t, uint8_t>(FWhere<uint8_t>{}, g, s);
    case 2: return run_map<3, FWhere<uint16_t>, uint16_t, uint8_t, uint16_t, uint16_t>(FWhere<uint16_t>{}, g, s);
    case 4: return run_map<3, FWhere<uint32_t>, uint32_t, uint8_t, uint32_t, uint32_t>(FWhere<uint32_t>{}, g, s);
    case 8: return run_map<3, FWhere<uint64_t>, uint64_t, uint8_t, uint64_t, uint64_t>(FWhere<uint64_t>{}, g, s);
    default: return KEW_E_UNSUPPORTED;
    }
}

template <class TI> static int cast_from(kiln_dtype odt, const Geom &g, cudaStream_t s)
{
    switch (odt) {
    case KILN_DT_FLOAT: return run_map<1, FCast<TI, float>, float, TI>(FCast<TI, float>{}, g, s);
    case KILN_DT_FLOAT16: return run_map<1, FCast<TI, __half>, __half, TI>(FCast<TI, __half>{}, g, s);
    case KILN_DT_DOUBLE: return run_map<1, FCast<TI, double>, double, TI>(FCast<TI, double>{}, g, s);
    case KILN_DT_INT64: return run_map<1, FCast<TI, int64_t>, int64_t, TI>(FCast<TI, int64_t>{}, g, s);
    case KILN_DT_INT32: return run_map<1, FCast<TI, int32_t>, int32_t, TI>(FCast<TI, int32_t>{}, g, s);
    case KILN_DT_BOOL: return run_map<1, FCast<TI, uint8_t>, uint8_t, TI>(FCast<TI, uint8_t>{}, g, s);
    default: return KEW_E_UNSUPPORTED;
    }
}

static int cast(kiln_dtype idt, kiln_dtype odt, const Geom &g, cudaStream_t s)
{
    if (idt == odt) return copy(kiln_dtype_size(idt), g, s);
    switch (idt) {
    case KILN_DT_FLOAT: return cast_from<float>(odt, g, s);
    case KILN_DT_FLOAT16: return cast_from<__half>(odt, g, s);
    case KILN_DT_DOUBLE: return cast_from<double>(odt, g, s);
    case KILN_DT_INT64: return cast_from<int64_t>(odt, g, s);
    case KILN_DT_INT32: return cast_from<int32_t>(odt, g, s);
    case KILN_DT_BOOL: return cast_from<uint8_t>(odt, g, s);
    default: return KEW_E_UNSUPPORTED;
    }
}

static bool same_types(int nin, const kiln_cuda_tensor *in, kiln_dtype dt)
{
    for (int k = 0; k < nin; k++)
        if (in[k].dtype != dt) return false;
    return true;
}

} // namespace

/*
 * Runs `op` over the output's elements with multidirectional broadcasting of
 * the nin inputs. Returns 0, a cudaError_t from the launch, or a negative
 * KEW_E_* code (types without a kernel, shapes that do not broadcast, bad
 * arguments). Never synchronizes.
 */
extern "C" int kiln__k_elementwise(int op, const kiln_cuda_tensor *out, int nin, const kiln_cuda_tensor *in,
                                   const kew_params *prm, void *stream)
{
    if (!out || !in || !prm) return KEW_E_ARG;
    Geom g;
    int rc = build_geom(out, nin, in, &g);
    if (rc) return rc;
    const cudaStream_t s = (cudaStream_t)stream;
    const kiln_dtype dt = in[0].dtype, odt = out->dtype;
    const bool bin_same = nin == 2 && in[1].dtype == dt;

    switch (op) {
    case KEW_ADD:
    case KEW_SUB:
    case KEW_MUL:
    case KEW_DIV:
    case KEW_MAX:
    case KEW_MIN:
        if (!bin_same || odt != dt) return KEW_E_UNSUPPORTED;
        if (g.n == 0) return 0;
        switch (op) {
        case KEW_ADD: return bin_arith<OAdd, IAdd>(dt, OAdd{}, g, s);
        case KEW_SUB: return bin_arith<OSub, ISub>(dt, OSub{}, g, s);
        case KEW_MUL: return bin_arith<OMul, IMul>(dt, OMul{}, g, s);
        case KEW_DIV: return bin_arith<ODiv, IDiv>(dt, ODiv{}, g, s);
        case KEW_MAX: return bin_arith<OMax, IMax>(dt, OMax{}, g, s);
        default: return bin_arith<OMin, IMin>(dt, OMin{}, g, s);
        }
    case KEW_ADD_DIV:
        if (!bin_same || odt != dt) return KEW_E_UNSUPPORTED;
        return g.n ? bin_float(dt, OAddDiv{prm->f[0]}, g, s) : 0;
    case KEW_PRELU:
        if (!bin_same || odt != dt) return KEW_E_UNSUPPORTED;
        return g.n ? bin_float(dt, OPRelu{}, g, s) : 0;
    case KEW_POW:
        if (nin != 2 || odt != dt) return KEW_E_UNSUPPORTED;
        if (g.n == 0) return 0;
        if (dt == KILN_DT_FLOAT) return pow_exp<float>(in[1].dtype, g, s);
        if (dt == KILN_DT_FLOAT16) return pow_exp<__half>(in[1].dtype, g, s);
        return KEW_E_UNSUPPORTED;
    case KEW_EQUAL:
    case KEW_LESS:
    case KEW_GREATER:
        if (!bin_same || odt != KILN_DT_BOOL) return KEW_E_UNSUPPORTED;
        if (g.n == 0) return 0;
        if (op == KEW_EQUAL) return compare<CMP_EQ>(dt, g, s);
        if (op == KEW_LESS) return compare<CMP_LT>(dt, g, s);
        return compare<CMP_GT>(dt, g, s);
    case KEW_AND:
    case KEW_OR:
        if (!bin_same || dt != KILN_DT_BOOL || odt != KILN_DT_BOOL) return KEW_E_UNSUPPORTED;
        if (g.n == 0) return 0;
        if (op == KEW_AND) return run_map<2, FAnd, uint8_t, uint8_t, uint8_t>(FAnd{}, g, s);
        return run_map<2, FOr, uint8_t, uint8_t, uint8_t>(FOr{}, g, s);
    case KEW_WHERE:
        if (nin != 3 || dt != KILN_DT_BOOL || in[1].dtype != odt || in[2].dtype != odt) return KEW_E_UNSUPPORTED;
        return g.n ? where(kiln_dtype_size(odt), g, s) : 0;
    case KEW_CAST:
        if (nin != 1) return KEW_E_UNSUPPORTED;
        return g.n ? cast(dt, odt, g, s) : 0;
    case KEW_NOT:
        if (nin != 1 || dt != KILN_DT_BOOL || odt != KILN_DT_BOOL) return KEW_E_UNSUPPORTED;
        return g.n ? run_map<1, FNot, uint8_t, uint8_t>(FNot{}, g, s) : 0;
    default: break;
    }

    /* Unary ops: one input of the output's type. */
    if (nin != 1 || !same_types(1, in, odt)) return KEW_E_UNSUPPORTED;
    if (g.n == 0) return 0;
    const float *f = prm->f;
    switch (op) {
    case KEW_SQRT: return un_float(dt, USqrt{}, g, s);
    case KEW_EXP: return un_float(dt, UExp{}, g, s);
    case KEW_LOG: return un_float(dt, ULog{}, g, s);
    case KEW_ABS: return un_signed<UAbs, IAbs>(dt, UAbs{}, g, s);
    case KEW_NEG: return un_signed<UNeg, INeg>(dt, UNeg{}, g, s);
    case KEW_RECIP: return un_float(dt, URecip{}, g, s);
    case KEW_FLOOR: return un_float(dt, UFloor{}, g, s);
    case KEW_CEIL: return un_float(dt, UCeil{}, g, s);
    case KEW_ROUND: return un_float(dt, URound{}, g, s);
    case KEW_ERF: return un_float(dt, UErf{}, g, s);
    case KEW_SIGMOID: return un_float(dt, USigmoid{}, g, s);
    case KEW_TANH: return un_float(dt, UTanh{}, g, s);
    case KEW_RELU: return un_signed<URelu, IRelu>(dt, URelu{}, g, s);
    case KEW_LEAKY_RELU: return un_float(dt, ULeakyRelu{f[0]}, g, s);
    case KEW_CLIP: return clip(dt, prm, g, s);
    case KEW_ELU: return un_float(dt, UElu{f[0]}, g, s);
    case KEW_SELU: return un_float(dt, USelu{f[0], f[1]}, g, s);
    case KEW_HARD_SIGMOID: return un_float(dt, UHardSigmoid{f[0], f[1]}, g, s);
    case KEW_HARD_SWISH: return un_float(dt, UHardSwish{}, g, s);
    case KEW_SOFTPLUS: return un_float(dt, USoftplus{}, g, s);
    case KEW_GELU: return un_float(dt, UGelu{}, g, s);
    case KEW_GELU_TANH: return un_float(dt, UGeluTanh{}, g, s);
    case KEW_MISH: return un_float(dt, UMish{}, g, s);
    default: return KEW_E_UNSUPPORTED;
    }
}
