/*
 * Kernels of the movement family. Everything here moves elements by their
 * byte size, so one instantiation per element size (1, 2, 4, 8, 16 bytes)
 * serves every dtype.
 *
 * The core is one strided copy: the caller describes the source and the
 * destination as views (dims + strides in elements, pointers already at the
 * view's first element), both walked in logical row-major order. Before
 * launching, the views are simplified on the host: size-1 axes dropped, axes
 * ordered by destination stride (so writes are coalesced whatever the layout,
 * e.g. a channel slice of an NHWC tensor), adjacent axes merged, and the
 * innermost contiguous run widened to 16-byte accesses where alignment
 * allows. A fully contiguous copy becomes cudaMemcpyAsync.
 *
 * Index arithmetic is 32-bit (with multiply-shift division) when every
 * element count and offset fits, 64-bit otherwise.
 *
 * Fast paths (all reached from the same view descriptions, so they are as
 * general as the strided copy they replace):
 * - a copy whose output-contiguous axis is strided in the source while some
 *   other axis is source-contiguous (NHWC <-> row-major layout changes: 4-D
 *   NHWC <-> 5-D views, Gather of a frame of a 5-D tensor into NHWC) goes
 *   through shared-memory tiles, so reads and writes are both coalesced;
 * - several copies of one node (Concat inputs, Split outputs) that are each
 *   rows of a contiguous run (e.g. channel slices of NHWC) share one launch
 *   with 16-byte accesses where every job allows them;
 * - DepthToSpace CRD between packed NHWC tensors (PixelShuffle) loads each
 *   pixel's b*b*V contiguous input channels and stores b*b vectors of V;
 * - a reshape between two non-contiguous views whose dims nest (4-D NHWC
 *   [5,64,H,W] as [1,320,H,W]) becomes one same-dims copy over the common
 *   refinement of both shapes, so the paths above apply to it.
 * The copy kernels issue several loads per thread before storing: with one
 * load in flight per thread a copy of 2-byte elements reaches ~1 TB/s only.
 * KILN_MOVE_GENERIC=1 in the environment turns all of this off (the kernels
 * as they were, for benchmarks and as a switch-off).
 */
#include "cuda_tensor.h"

#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KM_MAXR (2 * KILN_MAX_DIMS)
#define KM_THREADS 256
#define KM_MAX_BLOCKS (1 << 16)
#define KM_ITEMS 4 /* elements per thread and pass in the copy kernels */

/* KILN_MOVE_GENERIC=1: only the general strided copy (to measure the fast paths against it). */
static bool generic_only(void)
{
    const char *e = getenv("KILN_MOVE_GENERIC");
    return e && e[0] == '1';
}

/* ---- index arithmetic ------------------------------------------------------ */

/* Division by a run-time constant as multiply-high + shift; exact for n < 2^31. */
struct Dim32 {
    uint32_t d, m, s;
    __device__ __forceinline__ uint32_t div(uint32_t n) const { return (__umulhi(n, m) + n) >> s; }
};

struct Dim64 {
    uint64_t d;
    __device__ __forceinline__ uint64_t div(uint64_t n) const { return n / d; }
};

template <bool W> struct Ix;
template <> struct Ix<false> {
    typedef uint32_t U;
    typedef int32_t S;
    typedef Dim32 D;
};
template <> struct Ix<true> {
    typedef uint64_t U;
    typedef int64_t S;
    typedef Dim64 D;
};

static void dim_make(Dim32 *o, int64_t d)
{
    uint32_t s = 0;
    while (((uint64_t)1 << s) < (uint64_t)d) s++;
    o->d = (uint32_t)d;
    o->s = s;
    o->m = (uint32_t)((((uint64_t)1 << 32) * (((uint64_t)1 << s) - (uint64_t)d)) / (uint64_t)d + 1);
}

static void dim_make(Dim64 *o, int64_t d) { o->d = (uint64_t)d; }

template <int ES> struct Elem;
template <> struct Elem<1> { typedef uint8_t T; };
template <> struct Elem<2> { typedef uint16_t T; };
template <> struct Elem<4> { typedef uint32_t T; };
template <> struct Elem<8> { typedef unsigned long long T; };
template <> struct Elem<16> { typedef uint4 T; };

/* ---- kernels ---------------------------------------------------------------- */

/* Axes are stored innermost first, so the decomposition loop runs forward. */
template <bool W> struct CopyP {
    int rank;
    typename Ix<W>::D d[KM_MAXR];
    typename Ix<W>::S is[KM_MAXR], os[KM_MAXR];
};

/*
 * Same dims on both sides. R > 0: rank known at compile time (unrolled).
 * IT elements per thread and pass, all loaded before any is stored, so that
 * each thread keeps several loads in flight (IT = 1 under KILN_MOVE_GENERIC).
 */
template <typename T, bool W, int R, int IT>
__global__ void copy_k(T *__restrict__ dst, const T *__restrict__ src, typename Ix<W>::U n, CopyP<W> p)
{
    typedef typename Ix<W>::U U;
    typedef typename Ix<W>::S S;
    const int rank = R > 0 ? R : p.rank;
    const U step = (U)gridDim.x * blockDim.x * IT;
    for (U base = (U)blockIdx.x * blockDim.x * IT + threadIdx.x; base < n; base += step) {
        T v[IT];
        S oo[IT];
#pragma unroll
        for (int u = 0; u < IT; u++) {
            U r = base + (U)u * blockDim.x;
            if (r >= n) continue;
            S io = 0, o = 0;
#pragma unroll
            for (int k = 0; k < (R > 0 ? R : KM_MAXR); k++) {
                if (R == 0 && k >= rank) break;
                U c;
                if (k == rank - 1) {
                    c = r;
                } else {
                    U q = p.d[k].div(r);
                    c = r - q * p.d[k].d;
                    r = q;
                }
                io += (S)c * p.is[k];
                o += (S)c * p.os[k];
            }
            v[u] = src[io];
            oo[u] = o;
        }
#pragma unroll
        for (int u = 0; u < IT; u++)
            if (base + (U)u * blockDim.x < n) dst[oo[u]] = v[u];
    }
}

/* Different dims on the two sides (a reshape of two non-contiguous views). */
template <bool W> struct DualP {
    int ir, orank;
    typename Ix<W>::D id[KM_MAXR], od[KM_MAXR];
    typename Ix<W>::S is[KM_MAXR], os[KM_MAXR];
};

template <bool W>
__device__ __forceinline__ typename Ix<W>::S offset_of(typename Ix<W>::U r, int rank,
                                                       const typename Ix<W>::D *d,
                                                       const typename Ix<W>::S *s)
{
    typedef typename Ix<W>::U U;
    typedef typename Ix<W>::S S;
    S o = 0;
    for (int k = 0; k < rank; k++) {
        U c;
        if (k == rank - 1) {
            c = r;
        } else {
            U q = d[k].div(r);
            c = r - q * d[k].d;
            r = q;
        }
        o += (S)c * s[k];
    }
    return o;
}

template <typename T, bool W>
__global__ void dual_k(T *__restrict__ dst, const T *__restrict__ src, typename Ix<W>::U n, DualP<W> p)
{
    typedef typename Ix<W>::U U;
    for (U i = (U)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (U)gridDim.x * blockDim.x)
        dst[offset_of<W>(i, p.orank, p.od, p.os)] = src[offset_of<W>(i, p.ir, p.id, p.is)];
}

/*
 * Gather and GatherElements: dst[coord] = src[sum coord*is + v*axis_stride],
 * v = idx[sum coord*xs] normalized (negative counts from the end) and clamped
 * to [0, axis_len) so a bad device index cannot fault.
 */
template <bool W> struct GatherP {
    int rank;
    typename Ix<W>::D d[KM_MAXR];
    typename Ix<W>::S is[KM_MAXR], os[KM_MAXR], xs[KM_MAXR];
    int64_t axis_stride, axis_len;
};

template <typename T, bool W, typename IT>
__global__ void gather_k(T *__restrict__ dst, const T *__restrict__ src, const IT *__restrict__ idx,
                         typename Ix<W>::U n, GatherP<W> p)
{
    typedef typename Ix<W>::U U;
    typedef typename Ix<W>::S S;
    for (U i = (U)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (U)gridDim.x * blockDim.x) {
        U r = i;
        S io = 0, oo = 0, xo = 0;
        for (int k = 0; k < p.rank; k++) {
            U c;
            if (k == p.rank - 1) {
                c = r;
            } else {
                U q = p.d[k].div(r);
                c = r - q * p.d[k].d;
                r = q;
            }
            io += (S)c * p.is[k];
            oo += (S)c * p.os[k];
            xo += (S)c * p.xs[k];
        }
        int64_t v = (int64_t)idx[xo];
        if (v < 0) v += p.axis_len;
        v = v < 0 ? 0 : (v >= p.axis_len ? p.axis_len - 1 : v);
        dst[oo] = src[io + (S)(v * p.axis_stride)];
    }
}

/* Pad: each output coordinate maps to an input coordinate or to the fill value. */
enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP };

template <bool W> struct PadP {
    int rank, mode;
    typename Ix<W>::D od[KILN_MAX_DIMS];
    typename Ix<W>::S os[KILN_MAX_DIMS], is[KILN_MAX_DIMS], id[KILN_MAX_DIMS], begin[KILN_MAX_DIMS];
};

template <typename S> __device__ __forceinline__ S pad_src(int mode, S i, S d)
{
    if (i >= 0 && i < d) return i;
    switch (mode) {
    case PAD_EDGE: return i < 0 ? 0 : d - 1;
    case PAD_WRAP: return ((i % d) + d) % d;
    case PAD_REFLECT: {
        if (d == 1) return 0;
        S m = 2 * (d - 1);
        i = ((i % m) + m) % m;
        return i < d ? i : m - i;
    }
    default: return -1;
    }
}

template <typename T, bool W>
__global__ void pad_k(T *__restrict__ dst, const T *__restrict__ src, typename Ix<W>::U n, PadP<W> p,
                      T fill, const T *__restrict__ fill_ptr)
{
    typedef typename Ix<W>::U U;
    typedef typename Ix<W>::S S;
    if (fill_ptr) fill = *fill_ptr;
    for (U i = (U)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (U)gridDim.x * blockDim.x) {
        U r = i;
        S io = 0, oo = 0;
        bool outside = false;
        for (int k = 0; k < p.rank; k++) {
            U c;
            if (k == p.rank - 1) {
                c = r;
            } else {
                U q = p.od[k].div(r);
                c = r - q * p.od[k].d;
                r = q;
            }
            oo += (S)c * p.os[k];
            S s = pad_src<S>(p.mode, (S)c - p.begin[k], p.id[k]);
            if (s < 0) outside = true;
            else io += s * p.is[k];
        }
        dst[oo] = outside ? fill : src[io];
    }
}

template <typename T, bool W>
__global__ void fill_k(T *__restrict__ dst, typename Ix<W>::U n, CopyP<W> p, T value)
{
    typedef typename Ix<W>::U U;
    for (U i = (U)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (U)gridDim.x * blockDim.x)
        dst[offset_of<W>(i, p.rank, p.d, p.os)] = value;
}

/*
 * Tiled transpose: axis a is contiguous in the destination (stride 1) and
 * strided in the source (stride isa); axis b is contiguous in the source and
 * strided in the destination (stride osb); every other axis is a batch axis.
 * A TD x TD tile is read along b and written along a through shared memory.
 */
struct TrP {
    int64_t na, nb, isa, osb;
    Dim32 ta, tb; /* tile counts along a and b */
    int nbatch;
    Dim32 bd[KM_MAXR]; /* batch dims, outermost first */
    int64_t bis[KM_MAXR], bos[KM_MAXR];
};

/*
 * Every thread first issues all its TD*TD/256 loads into registers (so that
 * many are in flight at once), then fills the tile, then writes. The block
 * index (< 2^31) is split with multiply-shift divisions.
 */
template <typename T, int TD, int PAD>
__global__ void __launch_bounds__(256) transpose_k(T *__restrict__ dst, const T *__restrict__ src, TrP p)
{
    __shared__ T tile[TD][TD + PAD];
    constexpr int RY = TD / 8, RX = TD / 32;
    uint32_t blk = blockIdx.x, q = p.ta.div(blk);
    const uint32_t ta = blk - q * p.ta.d;
    blk = q;
    q = p.tb.div(blk);
    const uint32_t tb = blk - q * p.tb.d;
    blk = q;
    int64_t io = 0, oo = 0;
    for (int k = p.nbatch - 1; k >= 0; k--) {
        q = p.bd[k].div(blk);
        const uint32_t c = blk - q * p.bd[k].d;
        blk = q;
        io += (int64_t)c * p.bis[k];
        oo += (int64_t)c * p.bos[k];
    }
    const int64_t a0 = (int64_t)ta * TD, b0 = (int64_t)tb * TD;
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int ra = (int)(p.na - a0 < TD ? p.na - a0 : TD), rb = (int)(p.nb - b0 < TD ? p.nb - b0 : TD);
    T v[RY][RX];
#pragma unroll
    for (int y = 0; y < RY; y++) {
        const int r = ty + 8 * y;
#pragma unroll
        for (int x = 0; x < RX; x++) {
            const int c = tx + 32 * x;
            if (r < ra && c < rb) v[y][x] = src[io + (a0 + r) * p.isa + b0 + c];
        }
    }
#pragma unroll
    for (int y = 0; y < RY; y++) {
#pragma unroll
        for (int x = 0; x < RX; x++) {
            const int r = ty + 8 * y, c = tx + 32 * x;
            if (r < ra && c < rb) tile[r][c] = v[y][x];
        }
    }
    __syncthreads();
#pragma unroll
    for (int y = 0; y < RY; y++) {
        const int r = ty + 8 * y;
#pragma unroll
        for (int x = 0; x < RX; x++) {
            const int c = tx + 32 * x;
            if (r < rb && c < ra) dst[oo + (b0 + r) * p.osb + a0 + c] = tile[c][r];
        }
    }
}

/* ---- host-side view simplification ---------------------------------------- */

/* A view with several stride sets sharing one set of dims (outermost first). */
struct Joint {
    int rank, ns;
    int64_t d[KM_MAXR];
    int64_t s[3][KM_MAXR];
};

static void joint_drop_ones(Joint *j)
{
    int r = 0;
    for (int k = 0; k < j->rank; k++) {
        if (j->d[k] == 1) continue;
        j->d[r] = j->d[k];
        for (int t = 0; t < j->ns; t++) j->s[t][r] = j->s[t][k];
        r++;
    }
    j->rank = r;
}

/* Stable sort of the axes by |stride| of set `key`, largest first. */
static void joint_sort(Joint *j, int key)
{
    for (int a = 1; a < j->rank; a++) {
        for (int b = a; b > 0; b--) {
            int64_t x = j->s[key][b - 1], y = j->s[key][b];
            if ((x < 0 ? -x : x) >= (y < 0 ? -y : y)) break;
            int64_t td = j->d[b];
            j->d[b] = j->d[b - 1];
            j->d[b - 1] = td;
            for (int t = 0; t < j->ns; t++) {
                int64_t ts = j->s[t][b];
                j->s[t][b] = j->s[t][b - 1];
                j->s[t][b - 1] = ts;
            }
        }
    }
}

/* Merges axis k into k+1 wherever every stride set walks them as one axis. */
static void joint_merge(Joint *j)
{
    if (j->rank == 0) return;
    int r = 0;
    for (int k = 1; k < j->rank; k++) {
        bool ok = true;
        for (int t = 0; t < j->ns && ok; t++) ok = j->s[t][r] == j->s[t][k] * j->d[k];
        if (ok) {
            j->d[r] *= j->d[k];
            for (int t = 0; t < j->ns; t++) j->s[t][r] = j->s[t][k];
        } else {
            r++;
            j->d[r] = j->d[k];
            for (int t = 0; t < j->ns; t++) j->s[t][r] = j->s[t][k];
        }
    }
    j->rank = r + 1;
}

static void joint_simplify(Joint *j, int sort_key)
{
    joint_drop_ones(j);
    if (sort_key >= 0) joint_sort(j, sort_key);
    joint_merge(j);
}

/* Largest |offset| a view reaches from its base. */
static int64_t joint_span(const Joint *j, int t)
{
    int64_t m = 0;
    for (int k = 0; k < j->rank; k++) {
        int64_t s = j->s[t][k] < 0 ? -j->s[t][k] : j->s[t][k];
        m += (j->d[k] - 1) * s;
    }
    return m;
}

static bool fits32(int64_t n, const Joint *j)
{
    if (n > INT32_MAX) return false;
    for (int t = 0; t < j->ns; t++)
        if (joint_span(j, t) > INT32_MAX) return false;
    return true;
}

static unsigned grid_for(int64_t n)
{
    int64_t b = (n + KM_THREADS - 1) / KM_THREADS;
    return (unsigned)(b > KM_MAX_BLOCKS ? KM_MAX_BLOCKS : b);
}

/* Fills a kernel's per-axis arrays, innermost axis first. */
template <bool W>
static void fill_axes(const Joint *j, typename Ix<W>::D *d, typename Ix<W>::S *const *s, int ns)
{
    for (int k = 0; k < j->rank; k++) {
        int src = j->rank - 1 - k;
        dim_make(&d[k], j->d[src]);
        for (int t = 0; t < ns; t++) s[t][k] = (typename Ix<W>::S)j->s[t][src];
    }
}

/* ---- copy launchers ---------------------------------------------------------- */

template <typename T, bool W, int IT>
static void launch_copy_it(void *dst, const void *src, int64_t n, const Joint *j, cudaStream_t st)
{
    CopyP<W> p;
    memset(&p, 0, sizeof p);
    p.rank = j->rank;
    typename Ix<W>::S *sets[2] = {p.is, p.os};
    fill_axes<W>(j, p.d, sets, 2);
    unsigned g = grid_for((n + IT - 1) / IT);
    typedef typename Ix<W>::U U;
    T *o = (T *)dst;
    const T *i = (const T *)src;
    if constexpr (W) {
        copy_k<T, W, 0, IT><<<g, KM_THREADS, 0, st>>>(o, i, (U)n, p);
    } else {
        switch (j->rank) {
        case 1: copy_k<T, W, 1, IT><<<g, KM_THREADS, 0, st>>>(o, i, (U)n, p); break;
        case 2: copy_k<T, W, 2, IT><<<g, KM_THREADS, 0, st>>>(o, i, (U)n, p); break;
        case 3: copy_k<T, W, 3, IT><<<g, KM_THREADS, 0, st>>>(o, i, (U)n, p); break;
        case 4: copy_k<T, W, 4, IT><<<g, KM_THREADS, 0, st>>>(o, i, (U)n, p); break;
        default: copy_k<T, W, 0, IT><<<g, KM_THREADS, 0, st>>>(o, i, (U)n, p); break;
        }
    }
}

template <typename T, bool W>
static void launch_copy_t(void *dst, const void *src, int64_t n, const Joint *j, cudaStream_t st)
{
    if (generic_only()) launch_copy_it<T, W, 1>(dst, src, n, j, st);
    else launch_copy_it<T, W, KM_ITEMS>(dst, src, n, j, st);
}

template <typename T>
static void launch_copy_es(void *dst, const void *src, int64_t n, const Joint *j, cudaStream_t st)
{
    if (fits32(n, j)) launch_copy_t<T, false>(dst, src, n, j, st);
    else launch_copy_t<T, true>(dst, src, n, j, st);
}

/*
 * Widens the innermost axis (unit stride on both sides) to v elements per
 * access when every stride, the axis length and both pointers allow it.
 */
static int vectorize(Joint *j, int es, const void *dst, const void *src)
{
    if (j->rank == 0) return es;
    int last = j->rank - 1;
    if (j->s[0][last] != 1 || j->s[1][last] != 1) return es;
    for (int v = 16 / es; v >= 2; v /= 2) {
        int64_t bytes = (int64_t)v * es;
        if (j->d[last] % v || (uintptr_t)dst % bytes || (uintptr_t)src % bytes) continue;
        bool ok = true;
        for (int k = 0; k < last && ok; k++) ok = j->s[0][k] % v == 0 && j->s[1][k] % v == 0;
        if (!ok) continue;
        j->d[last] /= v;
        for (int k = 0; k < last; k++) {
            j->s[0][k] /= v;
            j->s[1][k] /= v;
        }
        return (int)bytes;
    }
    return es;
}

template <typename T, int TD, int PAD>
static int launch_transpose_t(void *dst, const void *src, const TrP *p, int64_t blocks, cudaStream_t st)
{
    transpose_k<T, TD, PAD><<<(unsigned)blocks, dim3(32, 8), 0, st>>>((T *)dst, (const T *)src, *p);
    return (int)cudaGetLastError();
}

/*
 * The tiled transpose for a simplified joint (sorted by destination stride)
 * whose innermost axis is strided in the source while another axis is
 * source-contiguous; -1 when the view is not of that kind.
 */
static int try_transpose(void *dst, const void *src, int es, const Joint *j, cudaStream_t st)
{
    int last = j->rank - 1, ib = -1;
    if (j->rank < 2 || j->s[1][last] != 1 || j->s[0][last] == 1 || j->s[0][last] == 0) return -1;
    for (int k = last - 1; k >= 0 && ib < 0; k--)
        if (j->s[0][k] == 1) ib = k;
    if (ib < 0) return -1;
    /* Mostly empty tiles waste the block: the strided copy (whose reads hit the
     * same cache lines from neighbouring warps) does narrow ones better. */
    int64_t narrow = j->d[last] < j->d[ib] ? j->d[last] : j->d[ib];
    if (narrow < 16) return -1;
    TrP p;
    memset(&p, 0, sizeof p);
    p.na = j->d[last];
    p.nb = j->d[ib];
    p.isa = j->s[0][last];
    p.osb = j->s[1][ib];
    int td = es <= 4 && narrow >= 48 ? 64 : 32;
    int64_t ta = (p.na + td - 1) / td, tb = (p.nb + td - 1) / td;
    int64_t blocks = ta * tb;
    for (int k = 0; k < last && blocks <= INT32_MAX; k++) {
        if (k == ib) continue;
        dim_make(&p.bd[p.nbatch], j->d[k]);
        p.bis[p.nbatch] = j->s[0][k];
        p.bos[p.nbatch] = j->s[1][k];
        p.nbatch++;
        blocks = j->d[k] > INT32_MAX ? (int64_t)INT32_MAX + 1 : blocks * j->d[k];
    }
    /* The block index and every factor of it must fit the 32-bit divisions. */
    if (blocks > INT32_MAX) return -1;
    dim_make(&p.ta, ta);
    dim_make(&p.tb, tb);
    /* Padding makes a tile row an odd number of 32-bit words: column reads hit distinct banks. */
    switch (es * 100 + td) {
    case 164: return launch_transpose_t<Elem<1>::T, 64, 4>(dst, src, &p, blocks, st);
    case 264: return launch_transpose_t<Elem<2>::T, 64, 2>(dst, src, &p, blocks, st);
    case 464: return launch_transpose_t<Elem<4>::T, 64, 1>(dst, src, &p, blocks, st);
    case 132: return launch_transpose_t<Elem<1>::T, 32, 4>(dst, src, &p, blocks, st);
    case 232: return launch_transpose_t<Elem<2>::T, 32, 2>(dst, src, &p, blocks, st);
    case 432: return launch_transpose_t<Elem<4>::T, 32, 1>(dst, src, &p, blocks, st);
    case 832: return launch_transpose_t<Elem<8>::T, 32, 1>(dst, src, &p, blocks, st);
    case 1632: return launch_transpose_t<Elem<16>::T, 32, 1>(dst, src, &p, blocks, st);
    default: return -1;
    }
}

static int copy_joint(void *dst, const void *src, int es, Joint *j, cudaStream_t st)
{
    int64_t n = 1;
    joint_simplify(j, 1);
    /* A copy onto itself (an input of a Concat already in place) has nothing to do. */
    bool self = dst == src;
    for (int k = 0; k < j->rank && self; k++) self = j->s[0][k] == j->s[1][k];
    if (self) return 0;
    if (j->rank == 0 || (j->rank == 1 && j->s[0][0] == 1 && j->s[1][0] == 1)) {
        n = j->rank ? j->d[0] : 1;
        return (int)cudaMemcpyAsync(dst, src, (size_t)n * (size_t)es, cudaMemcpyDeviceToDevice, st);
    }
    if (!generic_only()) {
        int rc = try_transpose(dst, src, es, j, st);
        if (rc >= 0) return rc;
    }
    es = vectorize(j, es, dst, src);
    for (int k = 0; k < j->rank; k++) n *= j->d[k];
    switch (es) {
    case 1: launch_copy_es<Elem<1>::T>(dst, src, n, j, st); break;
    case 2: launch_copy_es<Elem<2>::T>(dst, src, n, j, st); break;
    case 4: launch_copy_es<Elem<4>::T>(dst, src, n, j, st); break;
    case 8: launch_copy_es<Elem<8>::T>(dst, src, n, j, st); break;
    case 16: launch_copy_es<Elem<16>::T>(dst, src, n, j, st); break;
    default: return (int)cudaErrorInvalidValue;
    }
    return (int)cudaGetLastError();
}

/* A single view (one stride set) simplified on its own, keeping logical order. */
static void single(Joint *v, int rank, const int64_t *dims, const int64_t *str)
{
    v->rank = rank;
    v->ns = 1;
    for (int k = 0; k < rank; k++) {
        v->d[k] = dims[k];
        v->s[0][k] = str[k];
    }
    joint_simplify(v, -1);
}

/* Strides that walk `dims` in the element order of a view of at most one axis. */
static void spread(int64_t *s, const Joint *one, int rank, const int64_t *dims)
{
    int64_t base = one->rank ? one->s[0][0] : 1, rm = 1;
    for (int k = rank - 1; k >= 0; k--) {
        s[k] = rm * base;
        rm *= dims[k];
    }
}

/*
 * Both views as one joint over a common refinement of their dims: walking
 * from the innermost axis, an axis of one side that is a multiple of the
 * other side's is split. Fails (false) when the dims do not nest, e.g.
 * [6,4] against [4,6].
 */
static bool refine(const Joint *vi, const Joint *vo, Joint *j)
{
    int i = vi->rank - 1, o = vo->rank - 1, r = 0;
    int64_t d[KM_MAXR], si[KM_MAXR], so[KM_MAXR];
    if (i < 0 || o < 0) return false;
    int64_t ri = vi->d[i], ro = vo->d[o], ci = vi->s[0][i], co = vo->s[0][o];
    while (i >= 0 && o >= 0) {
        if (r == KM_MAXR) return false;
        int64_t m = ri < ro ? ri : ro;
        if ((ri > ro ? ri : ro) % m) return false;
        d[r] = m;
        si[r] = ci;
        so[r] = co;
        r++;
        ri /= m;
        ro /= m;
        ci *= m;
        co *= m;
        if (ri == 1 && --i >= 0) {
            ri = vi->d[i];
            ci = vi->s[0][i];
        }
        if (ro == 1 && --o >= 0) {
            ro = vo->d[o];
            co = vo->s[0][o];
        }
    }
    if (i >= 0 || o >= 0) return false;
    j->ns = 2;
    j->rank = r;
    for (int k = 0; k < r; k++) {
        j->d[k] = d[r - 1 - k];
        j->s[0][k] = si[r - 1 - k];
        j->s[1][k] = so[r - 1 - k];
    }
    return true;
}

template <typename T, bool W>
static void launch_dual_t(void *dst, const void *src, int64_t n, const Joint *in, const Joint *out,
                          cudaStream_t st)
{
    DualP<W> p;
    memset(&p, 0, sizeof p);
    p.ir = in->rank;
    p.orank = out->rank;
    typename Ix<W>::S *si[1] = {p.is}, *so[1] = {p.os};
    fill_axes<W>(in, p.id, si, 1);
    fill_axes<W>(out, p.od, so, 1);
    dual_k<T, W><<<grid_for(n), KM_THREADS, 0, st>>>((T *)dst, (const T *)src, (typename Ix<W>::U)n, p);
}

template <typename T>
static void launch_dual_es(void *dst, const void *src, int64_t n, const Joint *in, const Joint *out,
                           cudaStream_t st)
{
    if (fits32(n, in) && fits32(n, out)) launch_dual_t<T, false>(dst, src, n, in, out, st);
    else launch_dual_t<T, true>(dst, src, n, in, out, st);
}

/*
 * Copies a source view into a destination view, both walked in logical
 * row-major order; the element counts must match (checked by the caller).
 * Strides are in elements and may be negative (source) or zero (source).
 */
extern "C" int kiln__km_copy(void *dst, const void *src, int es, int in_rank, const int64_t *in_dims,
                             const int64_t *in_str, int out_rank, const int64_t *out_dims,
                             const int64_t *out_str, void *stream)
{
    cudaStream_t st = (cudaStream_t)stream;
    if (in_rank < 0 || in_rank > KM_MAXR || out_rank < 0 || out_rank > KM_MAXR)
        return (int)cudaErrorInvalidValue;
    int64_t n = 1;
    for (int k = 0; k < out_rank; k++) n *= out_dims[k];
    if (n == 0) return 0;

    Joint j;
    j.ns = 2;
    bool same = in_rank == out_rank;
    for (int k = 0; k < out_rank && same; k++) same = in_dims[k] == out_dims[k];
    if (same) {
        j.rank = out_rank;
        for (int k = 0; k < out_rank; k++) {
            j.d[k] = out_dims[k];
            j.s[0][k] = in_str[k];
            j.s[1][k] = out_str[k];
        }
        return copy_joint(dst, src, es, &j, st);
    }

    /* Different dims: simplify each side alone; often they then agree, or one
     * side is a single run that can be laid over the other side's dims. */
    Joint vi, vo;
    single(&vi, in_rank, in_dims, in_str);
    single(&vo, out_rank, out_dims, out_str);
    same = vi.rank == vo.rank;
    for (int k = 0; k < vi.rank && same; k++) same = vi.d[k] == vo.d[k];
    if (same || vi.rank <= 1 || vo.rank <= 1) {
        const Joint *shape = same || vo.rank > 1 ? &vo : &vi;
        j.rank = shape->rank;
        for (int k = 0; k < j.rank; k++) j.d[k] = shape->d[k];
        if (same || vi.rank > 1)
            for (int k = 0; k < j.rank; k++) j.s[0][k] = vi.s[0][k];
        else
            spread(j.s[0], &vi, j.rank, j.d);
        if (same || vo.rank > 1)
            for (int k = 0; k < j.rank; k++) j.s[1][k] = vo.s[0][k];
        else
            spread(j.s[1], &vo, j.rank, j.d);
        return copy_joint(dst, src, es, &j, st);
    }
    if (!generic_only() && refine(&vi, &vo, &j)) return copy_joint(dst, src, es, &j, st);
    switch (es) {
    case 1: launch_dual_es<Elem<1>::T>(dst, src, n, &vi, &vo, st); break;
    case 2: launch_dual_es<Elem<2>::T>(dst, src, n, &vi, &vo, st); break;
    case 4: launch_dual_es<Elem<4>::T>(dst, src, n, &vi, &vo, st); break;
    case 8: launch_dual_es<Elem<8>::T>(dst, src, n, &vi, &vo, st); break;
    case 16: launch_dual_es<Elem<16>::T>(dst, src, n, &vi, &vo, st); break;
    default: return (int)cudaErrorInvalidValue;
    }
    return (int)cudaGetLastError();
}

/* ---- gather ------------------------------------------------------------------- */

template <typename T, bool W, typename IT>
static void launch_gather_t(void *dst, const void *src, const void *idx, int64_t n, const Joint *j,
                            int64_t axis_stride, int64_t axis_len, cudaStream_t st)
{
    GatherP<W> p;
    memset(&p, 0, sizeof p);
    p.rank = j->rank;
    typename Ix<W>::S *sets[3] = {p.is, p.os, p.xs};
    fill_axes<W>(j, p.d, sets, 3);
    p.axis_stride = axis_stride;
    p.axis_len = axis_len;
    gather_k<T, W, IT><<<grid_for(n), KM_THREADS, 0, st>>>((T *)dst, (const T *)src, (const IT *)idx,
                                                          (typename Ix<W>::U)n, p);
}

template <typename T>
static void launch_gather_es(void *dst, const void *src, const void *idx, int idx_es, int64_t n,
                             const Joint *j, int64_t axis_stride, int64_t axis_len, cudaStream_t st)
{
    /* The gathered axis adds up to (len-1)*|stride| to the source offset. */
    int64_t as = axis_stride < 0 ? -axis_stride : axis_stride;
    bool narrow = fits32(n, j) && joint_span(j, 0) + (axis_len - 1) * as <= INT32_MAX;
    if (idx_es == 8) {
        if (narrow) launch_gather_t<T, false, int64_t>(dst, src, idx, n, j, axis_stride, axis_len, st);
        else launch_gather_t<T, true, int64_t>(dst, src, idx, n, j, axis_stride, axis_len, st);
    } else {
        if (narrow) launch_gather_t<T, false, int32_t>(dst, src, idx, n, j, axis_stride, axis_len, st);
        else launch_gather_t<T, true, int32_t>(dst, src, idx, n, j, axis_stride, axis_len, st);
    }
}

/*
 * dst[c] = src[sum c_k*in_str_k + v*axis_stride], v = idx[sum c_k*idx_str_k]
 * (idx_es 4: int32, 8: int64), negative v counted from axis_len, clamped.
 */
extern "C" int kiln__km_gather(void *dst, const void *src, int es, const void *idx, int idx_es, int rank,
                               const int64_t *dims, const int64_t *out_str, const int64_t *in_str,
                               const int64_t *idx_str, int64_t axis_stride, int64_t axis_len,
                               void *stream)
{
    cudaStream_t st = (cudaStream_t)stream;
    if (rank < 0 || rank > KM_MAXR || (idx_es != 4 && idx_es != 8) || axis_len <= 0)
        return (int)cudaErrorInvalidValue;
    Joint j;
    j.ns = 3;
    j.rank = rank;
    int64_t n = 1;
    for (int k = 0; k < rank; k++) {
        j.d[k] = dims[k];
        j.s[0][k] = in_str[k];
        j.s[1][k] = out_str[k];
        j.s[2][k] = idx_str[k];
        n *= dims[k];
    }
    if (n == 0) return 0;
    joint_simplify(&j, 1);
    switch (es) {
    case 1: launch_gather_es<Elem<1>::T>(dst, src, idx, idx_es, n, &j, axis_stride, axis_len, st); break;
    case 2: launch_gather_es<Elem<2>::T>(dst, src, idx, idx_es, n, &j, axis_stride, axis_len, st); break;
    case 4: launch_gather_es<Elem<4>::T>(dst, src, idx, idx_es, n, &j, axis_stride, axis_len, st); break;
    case 8: launch_gather_es<Elem<8>::T>(dst, src, idx, idx_es, n, &j, axis_stride, axis_len, st); break;
    case 16: launch_gather_es<Elem<16>::T>(dst, src, idx, idx_es, n, &j, axis_stride, axis_len, st); break;
    default: return (int)cudaErrorInvalidValue;
    }
    return (int)cudaGetLastError();
}

/* ---- pad ----------------------------------------------------------------------- */

template <typename T, bool W>
static void launch_pad_t(void *dst, const void *src, int64_t n, int rank, const int64_t *od,
                         const int64_t *os, const int64_t *id, const int64_t *is, const int64_t *begin,
                         int mode, const void *fill_host, const void *fill_dev, cudaStream_t st)
{
    PadP<W> p;
    memset(&p, 0, sizeof p);
    p.rank = rank;
    p.mode = mode;
    for (int k = 0; k < rank; k++) {
        int s = rank - 1 - k;
        dim_make(&p.od[k], od[s]);
        p.os[k] = (typename Ix<W>::S)os[s];
        p.is[k] = (typename Ix<W>::S)is[s];
        p.id[k] = (typename Ix<W>::S)id[s];
        p.begin[k] = (typename Ix<W>::S)begin[s];
    }
    T fill;
    memcpy(&fill, fill_host, sizeof fill);
    pad_k<T, W><<<grid_for(n), KM_THREADS, 0, st>>>((T *)dst, (const T *)src, (typename Ix<W>::U)n, p,
                                                    fill, (const T *)fill_dev);
}

template <typename T>
static void launch_pad_es(void *dst, const void *src, int64_t n, int rank, const int64_t *od,
                          const int64_t *os, const int64_t *id, const int64_t *is, const int64_t *begin,
                          int mode, const void *fill_host, const void *fill_dev, cudaStream_t st)
{
    bool narrow = n <= INT32_MAX;
    int64_t so = 0, si = 0;
    for (int k = 0; k < rank && narrow; k++) {
        so += (od[k] - 1) * (os[k] < 0 ? -os[k] : os[k]);
        si += (id[k] > 0 ? id[k] - 1 : 0) * (is[k] < 0 ? -is[k] : is[k]);
        /* c - begin and the reflect period 2*(d-1) must fit too. */
        int64_t b = begin[k] < 0 ? -begin[k] : begin[k];
        narrow = so <= INT32_MAX && si <= INT32_MAX && b + od[k] <= INT32_MAX / 4 && id[k] <= INT32_MAX / 4;
    }
    if (narrow) launch_pad_t<T, false>(dst, src, n, rank, od, os, id, is, begin, mode, fill_host, fill_dev, st);
    else launch_pad_t<T, true>(dst, src, n, rank, od, os, id, is, begin, mode, fill_host, fill_dev, st);
}

/*
 * Pad of a rank <= 8 view: output coordinate c reads input coordinate
 * c - begin (or its reflect/edge/wrap image); outside in constant mode, the
 * fill value: *fill_dev when given (device memory), else fill_host (es bytes).
 */
extern "C" int kiln__km_pad(void *dst, const void *src, int es, int rank, const int64_t *out_dims,
                            const int64_t *out_str, const int64_t *in_dims, const int64_t *in_str,
                            const int64_t *begin, int mode, const void *fill_host, const void *fill_dev,
                            void *stream)
{
    cudaStream_t st = (cudaStream_t)stream;
    if (rank < 0 || rank > KILN_MAX_DIMS) return (int)cudaErrorInvalidValue;
    int64_t n = 1;
    for (int k = 0; k < rank; k++) {
        n *= out_dims[k];
        if (mode != PAD_CONSTANT && in_dims[k] <= 0 && out_dims[k] > 0) return (int)cudaErrorInvalidValue;
    }
    if (n == 0) return 0;

    /* Walk axes by output stride so writes are coalesced in either layout. */
    int order[KILN_MAX_DIMS];
    for (int k = 0; k < rank; k++) order[k] = k;
    for (int a = 1; a < rank; a++)
        for (int b = a; b > 0 && out_str[order[b - 1]] < out_str[order[b]]; b--) {
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    int64_t od[KILN_MAX_DIMS], os[KILN_MAX_DIMS], id[KILN_MAX_DIMS], is[KILN_MAX_DIMS], bg[KILN_MAX_DIMS];
    for (int k = 0; k < rank; k++) {
        od[k] = out_dims[order[k]];
        os[k] = out_str[order[k]];
        id[k] = in_dims[order[k]];
        is[k] = in_str[order[k]];
        bg[k] = begin[order[k]];
    }
    switch (es) {
    case 1: launch_pad_es<Elem<1>::T>(dst, src, n, rank, od, os, id, is, bg, mode, fill_host, fill_dev, st); break;
    case 2: launch_pad_es<Elem<2>::T>(dst, src, n, rank, od, os, id, is, bg, mode, fill_host, fill_dev, st); break;
    case 4: launch_pad_es<Elem<4>::T>(dst, src, n, rank, od, os, id, is, bg, mode, fill_host, fill_dev, st); break;
    case 8: launch_pad_es<Elem<8>::T>(dst, src, n, rank, od, os, id, is, bg, mode, fill_host, fill_dev, st); break;
    case 16: launch_pad_es<Elem<16>::T>(dst, src, n, rank, od, os, id, is, bg, mode, fill_host, fill_dev, st); break;
    default: return (int)cudaErrorInvalidValue;
    }
    return (int)cudaGetLastError();
}

/* ---- fill ---------------------------------------------------------------------- */

template <typename T, bool W>
static void launch_fill_t(void *dst, int64_t n, const Joint *j, const void *value, cudaStream_t st)
{
    CopyP<W> p;
    memset(&p, 0, sizeof p);
    p.rank = j->rank;
    typename Ix<W>::S *sets[2] = {p.is, p.os};
    fill_axes<W>(j, p.d, sets, 2);
    T v;
    memcpy(&v, value, sizeof v);
    fill_k<T, W><<<grid_for(n), KM_THREADS, 0, st>>>((T *)dst, (typename Ix<W>::U)n, p, v);
}

template <typename T>
static void launch_fill_es(void *dst, int64_t n, const Joint *j, const void *value, cudaStream_t st)
{
    if (fits32(n, j)) launch_fill_t<T, false>(dst, n, j, value, st);
    else launch_fill_t<T, true>(dst, n, j, value, st);
}

/* Writes `value` (es bytes) to every element of a view. */
extern "C" int kiln__km_fill(void *dst, int es, int rank, const int64_t *dims, const int64_t *str,
                             const void *value, void *stream)
{
    cudaStream_t st = (cudaStream_t)stream;
    if (rank < 0 || rank > KM_MAXR) return (int)cudaErrorInvalidValue;
    Joint j;
    j.ns = 2;
    j.rank = rank;
    int64_t n = 1;
    for (int k = 0; k < rank; k++) {
        j.d[k] = dims[k];
        j.s[0][k] = 0;
        j.s[1][k] = str[k];
        n *= dims[k];
    }
    if (n == 0) return 0;
    joint_simplify(&j, 1);
    switch (es) {
    case 1: launch_fill_es<Elem<1>::T>(dst, n, &j, value, st); break;
    case 2: launch_fill_es<Elem<2>::T>(dst, n, &j, value, st); break;
    case 4: launch_fill_es<Elem<4>::T>(dst, n, &j, value, st); break;
    case 8: launch_fill_es<Elem<8>::T>(dst, n, &j, value, st); break;
    case 16: launch_fill_es<Elem<16>::T>(dst, n, &j, value, st); break;
    default: return (int)cudaErrorInvalidValue;
    }
    return (int)cudaGetLastError();
}

/* ---- several row copies in one launch (Concat inputs, Split outputs) ---------- */

/*
 * Job k copies rows x len vectors: src + r*is + c -> dst + r*os + c (units
 * of the vector type). Blocks [blk0_k, blk0_{k+1}) belong to job k.
 */
#define KM_JOBS 8

template <bool W> struct MJob {
    const void *src;
    void *dst;
    int64_t rows, is, os, blk0;
    typename Ix<W>::D len;
};

template <bool W> struct MultiP {
    int n;
    MJob<W> j[KM_JOBS];
};

template <typename T, bool W> __global__ void __launch_bounds__(KM_THREADS) multi_k(MultiP<W> p)
{
    typedef typename Ix<W>::U U;
    typedef typename Ix<W>::S S;
    const int64_t b = blockIdx.x;
    /* Unrolled with constant indices: the job's fields stay in the parameter bank. */
    MJob<W> J = p.j[0];
#pragma unroll
    for (int k = 1; k < KM_JOBS; k++)
        if (k < p.n && b >= p.j[k].blk0) J = p.j[k];
    const U n = (U)J.rows * J.len.d;
    const U base = (U)(b - J.blk0) * (KM_THREADS * KM_ITEMS) + threadIdx.x;
    const T *src = (const T *)J.src;
    T *dst = (T *)J.dst;
    T v[KM_ITEMS];
    S off[KM_ITEMS];
#pragma unroll
    for (int u = 0; u < KM_ITEMS; u++) {
        U q = base + (U)u * KM_THREADS;
        if (q < n) {
            U r = J.len.div(q), c = q - r * J.len.d;
            v[u] = src[(S)r * (S)J.is + (S)c];
            off[u] = (S)r * (S)J.os + (S)c;
        }
    }
#pragma unroll
    for (int u = 0; u < KM_ITEMS; u++)
        if (base + (U)u * KM_THREADS < n) dst[off[u]] = v[u];
}

/* One job on the host, in elements: rows x len, row strides is/os. */
struct HJob {
    const void *src;
    void *dst;
    int64_t rows, len, is, os;
};

/* Widest access (bytes, <= 16) every job allows. */
static int multi_width(const HJob *h, int n, int es)
{
    for (int v = 16 / es; v >= 2; v /= 2) {
        int64_t bytes = (int64_t)v * es;
        bool ok = true;
        for (int k = 0; k < n && ok; k++)
            ok = h[k].len % v == 0 && (h[k].rows == 1 || (h[k].is % v == 0 && h[k].os % v == 0)) &&
                 (uintptr_t)h[k].src % bytes == 0 && (uintptr_t)h[k].dst % bytes == 0;
        if (ok) return (int)bytes;
    }
    return es;
}

template <typename T, bool W> static int launch_multi_t(const HJob *h, int n, int v, cudaStream_t st)
{
    MultiP<W> p;
    memset(&p, 0, sizeof p);
    p.n = n;
    int64_t blocks = 0, per = (int64_t)KM_THREADS * KM_ITEMS;
    for (int k = 0; k < n; k++) {
        MJob<W> &J = p.j[k];
        J.src = h[k].src;
        J.dst = h[k].dst;
        J.rows = h[k].rows;
        J.is = h[k].is / v;
        J.os = h[k].os / v;
        dim_make(&J.len, h[k].len / v);
        J.blk0 = blocks;
        blocks += (h[k].rows * (h[k].len / v) + per - 1) / per;
    }
    if (blocks == 0) return 0;
    multi_k<T, W><<<(unsigned)blocks, KM_THREADS, 0, st>>>(p);
    return (int)cudaGetLastError();
}

template <typename T> static int launch_multi_es(const HJob *h, int n, int v, cudaStream_t st)
{
    bool narrow = true;
    for (int k = 0; k < n; k++) {
        int64_t len = h[k].len / v, rows = h[k].rows;
        int64_t is = h[k].is / v, os = h[k].os / v;
        narrow = narrow && rows * len + (int64_t)KM_THREADS * KM_ITEMS <= INT32_MAX &&
                 (rows - 1) * (is < 0 ? -is : is) + len <= INT32_MAX && (rows - 1) * os + len <= INT32_MAX;
    }
    return narrow ? launch_multi_t<T, false>(h, n, v, st) : launch_multi_t<T, true>(h, n, v, st);
}

static int flush_multi(const HJob *h, int nh, int es, cudaStream_t st)
{
    int w = multi_width(h, nh, es);
    switch (w) {
    case 1: return launch_multi_es<Elem<1>::T>(h, nh, w / es, st);
    case 2: return launch_multi_es<Elem<2>::T>(h, nh, w / es, st);
    case 4: return launch_multi_es<Elem<4>::T>(h, nh, w / es, st);
    case 8: return launch_multi_es<Elem<8>::T>(h, nh, w / es, st);
    case 16: return launch_multi_es<Elem<16>::T>(h, nh, w / es, st);
    default: return (int)cudaErrorInvalidValue;
    }
}

/*
 * Copies n_jobs views of one shape rank each (dims/in_str/out_str: rank
 * entries per job, logical order; src/dst at each view's first element). Jobs
 * that are rows of contiguous runs after simplification share launches of at
 * most KM_JOBS jobs; the others take the general copy one by one.
 */
extern "C" int kiln__km_copy_multi(int n_jobs, void *const *dsts, const void *const *srcs, int es, int rank,
                                   const int64_t *dims, const int64_t *in_str, const int64_t *out_str,
                                   void *stream)
{
    cudaStream_t st = (cudaStream_t)stream;
    if (rank < 0 || rank > KM_MAXR || n_jobs < 0) return (int)cudaErrorInvalidValue;
    HJob h[KM_JOBS];
    int nh = 0;
    bool generic = generic_only() || n_jobs < 2;
    for (int t = 0; t < n_jobs; t++) {
        Joint j;
        j.ns = 2;
        j.rank = rank;
        int64_t n = 1;
        for (int k = 0; k < rank; k++) {
            j.d[k] = dims[t * rank + k];
            j.s[0][k] = in_str[t * rank + k];
            j.s[1][k] = out_str[t * rank + k];
            n *= j.d[k];
        }
        if (n == 0) continue;
        joint_simplify(&j, 1);
        bool self = dsts[t] == srcs[t];
        for (int k = 0; k < j.rank && self; k++) self = j.s[0][k] == j.s[1][k];
        if (self) continue;
        int last = j.rank - 1;
        bool rows = j.rank == 0 || (j.rank <= 2 && j.s[0][last] == 1 && j.s[1][last] == 1);
        if (generic || !rows) {
            int rc = copy_joint(dsts[t], srcs[t], es, &j, st);
            if (rc) return rc;
            continue;
        }
        HJob *o = &h[nh++];
        o->src = srcs[t];
        o->dst = dsts[t];
        o->rows = j.rank == 2 ? j.d[0] : 1;
        o->len = j.rank ? j.d[last] : 1;
        o->is = j.rank == 2 ? j.s[0][0] : 0;
        o->os = j.rank == 2 ? j.s[1][0] : 0;
        if (nh == KM_JOBS) {
            int rc = flush_multi(h, nh, es, st);
            if (rc) return rc;
            nh = 0;
        }
    }
    if (nh > 0) return flush_multi(h, nh, es, st);
    return 0;
}

/* ---- DepthToSpace CRD, packed NHWC ------------------------------------------------ */

template <int BYTES> struct Vec;
template <> struct Vec<2> { typedef uint16_t T; };
template <> struct Vec<4> { typedef uint32_t T; };
template <> struct Vec<8> { typedef uint2 T; };
template <> struct Vec<16> { typedef uint4 T; };

/*
 * Unit t = (pixel, group of V output channels). The input pixel holds
 * channel c*B*B + b1*B + b2 at c*B*B + b1*B + b2, so the group's inputs are
 * V*B*B contiguous elements: B*B vectors in, an in-register transpose, B*B
 * vectors of V out, one per output pixel (h*B + b1, w*B + b2).
 */
template <typename E, int B, int V, bool W>
__global__ void __launch_bounds__(KM_THREADS) d2s_crd_k(E *__restrict__ dst, const E *__restrict__ src,
                                                        typename Ix<W>::U units, typename Ix<W>::D groups,
                                                        typename Ix<W>::D width, typename Ix<W>::S co)
{
    typedef typename Ix<W>::U U;
    typedef typename Ix<W>::S S;
    typedef typename Vec<V * sizeof(E)>::T VT;
    constexpr int BB = B * B;
    static_assert(sizeof(VT) == V * sizeof(E), "vector of V elements");
    for (U t = (U)blockIdx.x * blockDim.x + threadIdx.x; t < units; t += (U)gridDim.x * blockDim.x) {
        U pix = groups.div(t), g = t - pix * groups.d;
        U row = width.div(pix), x = pix - row * width.d; /* row = n*H + h */
        union {
            VT v[BB];
            E e[V * BB];
        } in;
        const VT *s = (const VT *)(src + (S)pix * co * BB) + (S)g * BB;
#pragma unroll
        for (int j = 0; j < BB; j++) in.v[j] = s[j];
        /* (row*B + b1) * (W*B) + x*B + b2, times co, plus g*V */
        const S wb = (S)width.d * B;
#pragma unroll
        for (int b1 = 0; b1 < B; b1++) {
#pragma unroll
            for (int b2 = 0; b2 < B; b2++) {
                union {
                    VT v;
                    E e[V];
                } o;
#pragma unroll
                for (int c = 0; c < V; c++) o.e[c] = in.e[c * BB + b1 * B + b2];
                VT *d = (VT *)(dst + (((S)row * B + b1) * wb + (S)x * B + b2) * co) + g;
                *d = o.v;
            }
        }
    }
}

template <typename E, int B, int V>
static int launch_d2s_v(void *dst, const void *src, int64_t pixels, int64_t co, int64_t width, cudaStream_t st)
{
    int64_t units = pixels * (co / V);
    int64_t total = pixels * co * B * B;
    if (total <= INT32_MAX) {
        Dim32 g, w;
        dim_make(&g, co / V);
        dim_make(&w, width);
        d2s_crd_k<E, B, V, false><<<grid_for(units), KM_THREADS, 0, st>>>((E *)dst, (const E *)src, (uint32_t)units,
                                                                          g, w, (int32_t)co);
    } else {
        Dim64 g, w;
        dim_make(&g, co / V);
        dim_make(&w, width);
        d2s_crd_k<E, B, V, true><<<grid_for(units), KM_THREADS, 0, st>>>((E *)dst, (const E *)src, (uint64_t)units,
                                                                         g, w, co);
    }
    return (int)cudaGetLastError();
}

template <typename E, int B>
static int launch_d2s_b(void *dst, const void *src, int64_t pixels, int64_t co, int64_t width, cudaStream_t st)
{
    constexpr int V = 16 / (int)sizeof(E);
    if (co % V == 0 && (uintptr_t)dst % 16 == 0 && (uintptr_t)src % 16 == 0)
        return launch_d2s_v<E, B, V>(dst, src, pixels, co, width, st);
    return launch_d2s_v<E, B, 1>(dst, src, pixels, co, width, st);
}

/*
 * DepthToSpace, mode CRD, from packed NHWC x [N, co*b*b, H, W] into packed
 * NHWC y [N, co, H*b, W*b]. Element sizes 2 and 4, b in 2..4; returns -1
 * (nothing launched) otherwise, or when KILN_MOVE_GENERIC is set.
 */
extern "C" int kiln__km_d2s_crd_nhwc(void *dst, const void *src, int es, int64_t n, int64_t co, int64_t h,
                                     int64_t w, int64_t b, void *stream)
{
    cudaStream_t st = (cudaStream_t)stream;
    if (generic_only() || (es != 2 && es != 4) || b < 2 || b > 4 || co < 1) return -1;
    int64_t pixels = n * h * w;
    if (pixels == 0) return 0;
    switch (es * 8 + (int)b) {
    case 2 * 8 + 2: return launch_d2s_b<uint16_t, 2>(dst, src, pixels, co, w, st);
    case 2 * 8 + 3: return launch_d2s_b<uint16_t, 3>(dst, src, pixels, co, w, st);
    case 2 * 8 + 4: return launch_d2s_b<uint16_t, 4>(dst, src, pixels, co, w, st);
    case 4 * 8 + 2: return launch_d2s_b<uint32_t, 2>(dst, src, pixels, co, w, st);
    case 4 * 8 + 3: return launch_d2s_b<uint32_t, 3>(dst, src, pixels, co, w, st);
    case 4 * 8 + 4: return launch_d2s_b<uint32_t, 4>(dst, src, pixels, co, w, st);
    default: return -1;
    }
}
