/*
 * CPU reference kernels of the elementwise family.
 *
 * Every dtype is computed in one of four classes: float (float32, float16,
 * bfloat16), double, int64 (signed integers) and uint64 (unsigned integers and
 * bool). float32/double/int64/uint64 data is used in place; narrower types are
 * converted through small stack blocks. Integer arithmetic wraps like numpy
 * (computed modulo 2^64, then truncated to the element width), and every
 * operation that C leaves undefined (division by zero, INT_MIN / -1, float to
 * int out of range) gets a defined answer instead.
 *
 * Broadcasting: one iterator maps output rows to input offsets, with stride 0
 * along broadcast axes and adjacent axes merged, so equal shapes run as a
 * single row and a scalar operand as a stride-0 row.
 */
#include "cpu.h"
#include "../ir/ops_elementwise.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BLOCK = 256, MAXIN = 3 };
/* Threads pay off only on large tensors; PAR_CHUNK elements per work unit. */
#define PAR_MIN ((int64_t)1 << 17)
#define PAR_CHUNK ((int64_t)1 << 14)

typedef enum cclass { C_F32, C_F64, C_I64, C_U64 } cclass;

typedef enum ew_op {
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW, OP_MOD, OP_FMOD, OP_MAX, OP_MIN,
    OP_AND, OP_OR, OP_XOR, OP_SHL, OP_SHR,
    OP_EQ, OP_LT, OP_GT, OP_LE, OP_GE,
    OP_SQRT, OP_EXP, OP_LOG, OP_RECIP, OP_FLOOR, OP_CEIL, OP_ROUND, OP_ERF, OP_SIN, OP_COS,
    OP_TAN, OP_SINH, OP_COSH, OP_ASIN, OP_ACOS, OP_ATAN, OP_ASINH, OP_ACOSH, OP_ATANH,
    OP_ABS, OP_NEG, OP_SIGN, OP_NOT, OP_BITNOT
} ew_op;

static cclass class_of(kiln_dtype dt)
{
    switch (dt) {
    case KILN_DT_FLOAT:
    case KILN_DT_FLOAT16:
    case KILN_DT_BFLOAT16: return C_F32;
    case KILN_DT_DOUBLE: return C_F64;
    case KILN_DT_INT8:
    case KILN_DT_INT16:
    case KILN_DT_INT32:
    case KILN_DT_INT64: return C_I64;
    default: return C_U64;
    }
}

/* The dtype whose storage is the class's compute type (used in place, no conversion). */
static kiln_dtype native_of(cclass c)
{
    static const kiln_dtype t[] = {KILN_DT_FLOAT, KILN_DT_DOUBLE, KILN_DT_INT64, KILN_DT_UINT64};
    return t[c];
}

static bool dtype_supported(kiln_dtype dt)
{
    switch (dt) {
    case KILN_DT_FLOAT: case KILN_DT_FLOAT16: case KILN_DT_BFLOAT16: case KILN_DT_DOUBLE:
    case KILN_DT_INT8: case KILN_DT_INT16: case KILN_DT_INT32: case KILN_DT_INT64:
    case KILN_DT_UINT8: case KILN_DT_UINT16: case KILN_DT_UINT32: case KILN_DT_UINT64:
    case KILN_DT_BOOL: return true;
    default: return false;
    }
}

/* ---- conversions that C leaves undefined, made total ---- */

static inline int64_t f_to_i64(double x)
{
    if (x != x) return 0;
    if (x >= 9223372036854775808.0) return INT64_MAX;
    if (x <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)x;
}

static inline uint64_t f_to_u64(double x)
{
    if (!(x > 0)) return 0;
    if (x >= 18446744073709551616.0) return UINT64_MAX;
    return (uint64_t)x;
}

static inline int64_t clamp_i64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }
static inline uint64_t clamp_u64(uint64_t v, uint64_t hi) { return v > hi ? hi : v; }

/* ---- load: any dtype -> a class buffer; element k is base[off + k*st] ---- */

#define LOAD_CASE(DT, T, EXPR)                                                                 \
    case DT: {                                                                                 \
        const T *s = (const T *)base + off;                                                    \
        for (int64_t k = 0; k < n; k++) {                                                      \
            T v = s[k * st];                                                                   \
            dst[k] = EXPR;                                                                     \
        }                                                                                      \
        break;                                                                                 \
    }

/* FROM_F converts a double (float sources) into the destination type. */
#define DEFINE_LOAD(NAME, DT_T, FROM_F)                                                        \
    static void NAME(kiln_dtype dt, const void *base, int64_t off, int64_t st, int64_t n,      \
                     DT_T *dst)                                                                \
    {                                                                                          \
        switch (dt) {                                                                          \
            LOAD_CASE(KILN_DT_FLOAT, float, FROM_F((double)v))                                 \
            LOAD_CASE(KILN_DT_DOUBLE, double, FROM_F(v))                                       \
            LOAD_CASE(KILN_DT_FLOAT16, uint16_t, FROM_F((double)kiln__f16_to_f32(v)))          \
            LOAD_CASE(KILN_DT_BFLOAT16, uint16_t, FROM_F((double)kiln__bf16_to_f32(v)))        \
            LOAD_CASE(KILN_DT_INT8, int8_t, (DT_T)v)                                           \
            LOAD_CASE(KILN_DT_INT16, int16_t, (DT_T)v)                                         \
            LOAD_CASE(KILN_DT_INT32, int32_t, (DT_T)v)                                         \
            LOAD_CASE(KILN_DT_INT64, int64_t, (DT_T)v)                                         \
            LOAD_CASE(KILN_DT_UINT8, uint8_t, (DT_T)v)                                         \
            LOAD_CASE(KILN_DT_UINT16, uint16_t, (DT_T)v)                                       \
            LOAD_CASE(KILN_DT_UINT32, uint32_t, (DT_T)v)                                       \
            LOAD_CASE(KILN_DT_UINT64, uint64_t, (DT_T)v)                                       \
            LOAD_CASE(KILN_DT_BOOL, uint8_t, (DT_T)(v != 0))                                   \
        default: memset(dst, 0, sizeof(DT_T) * (size_t)n); break;                              \
        }                                                                                      \
    }

#define F_AS_F32(x) ((float)(x))
#define F_AS_F64(x) (x)
DEFINE_LOAD(load_f32, float, F_AS_F32)
DEFINE_LOAD(load_f64, double, F_AS_F64)
DEFINE_LOAD(load_i64, int64_t, f_to_i64)
DEFINE_LOAD(load_u64, uint64_t, f_to_u64)

/* ---- store: a class buffer -> any dtype, at base[off + k] ---- */

#define STORE_CASE(DT, T, EXPR)                                                                \
    case DT: {                                                                                 \
        T *d = (T *)base + off;                                                                \
        for (int64_t k = 0; k < n; k++) {                                                      \
            SRC_T v = src[k];                                                                  \
            d[k] = EXPR;                                                                       \
        }                                                                                      \
        break;                                                                                 \
    }

/*
 * TO_S(v, lo, hi) / TO_U(v, hi) turn a value into a narrower integer: float
 * sources truncate and clamp, integer sources wrap (numpy's astype).
 */
#define DEFINE_STORE(NAME, SRC_T_, TO_S, TO_U)                                                  \
    static void NAME(kiln_dtype dt, void *base, int64_t off, int64_t n, const SRC_T_ *src)     \
    {                                                                                          \
        typedef SRC_T_ SRC_T;                                                                  \
        switch (dt) {                                                                          \
            STORE_CASE(KILN_DT_FLOAT, float, (float)v)                                         \
            STORE_CASE(KILN_DT_DOUBLE, double, (double)v)                                      \
            STORE_CASE(KILN_DT_FLOAT16, uint16_t, kiln__f32_to_f16((float)v))                  \
            STORE_CASE(KILN_DT_BFLOAT16, uint16_t, kiln__f32_to_bf16((float)v))                \
            STORE_CASE(KILN_DT_INT8, int8_t, (int8_t)TO_S(v, INT8_MIN, INT8_MAX))              \
            STORE_CASE(KILN_DT_INT16, int16_t, (int16_t)TO_S(v, INT16_MIN, INT16_MAX))         \
            STORE_CASE(KILN_DT_INT32, int32_t, (int32_t)TO_S(v, INT32_MIN, INT32_MAX))         \
            STORE_CASE(KILN_DT_INT64, int64_t, (int64_t)TO_S(v, INT64_MIN, INT64_MAX))         \
            STORE_CASE(KILN_DT_UINT8, uint8_t, (uint8_t)TO_U(v, UINT8_MAX))                    \
            STORE_CASE(KILN_DT_UINT16, uint16_t, (uint16_t)TO_U(v, UINT16_MAX))                \
            STORE_CASE(KILN_DT_UINT32, uint32_t, (uint32_t)TO_U(v, UINT32_MAX))                \
            STORE_CASE(KILN_DT_UINT64, uint64_t, (uint64_t)TO_U(v, UINT64_MAX))                \
            STORE_CASE(KILN_DT_BOOL, uint8_t, (uint8_t)(v != 0))                               \
        default: break;                                                                        \
        }                                                                                      \
    }

#define FS(v, lo, hi) clamp_i64(f_to_i64((double)(v)), lo, hi)
#define FU(v, hi) clamp_u64(f_to_u64((double)(v)), hi)
/* Wrapping through uint64 keeps the low bits; the final narrowing is modular in gcc/clang. */
#define IS(v, lo, hi) ((uint64_t)(v))
#define IU(v, hi) ((uint64_t)(v))
DEFINE_STORE(store_f32, float, FS, FU)
DEFINE_STORE(store_f64, double, FS, FU)
DEFINE_STORE(store_i64, int64_t, IS, IU)
DEFINE_STORE(store_u64, uint64_t, IS, IU)

/* ---- a block of class values: in place when the dtype is native, else converted ---- */

typedef union stage {
    float f[BLOCK];
    double d[BLOCK];
    int64_t i[BLOCK];
    uint64_t u[BLOCK];
} stage;

/*
 * Returns a pointer to n class values of operand (dt, base) starting at
 * element off with stride st (0 or 1 in practice); *ost is the stride to use.
 */
static const void *fetch(cclass c, kiln_dtype dt, const void *base, int64_t off, int64_t st, int64_t n, stage *buf,
                         int64_t *ost)
{
    if (dt == native_of(c)) {
        *ost = st;
        return (const char *)base + (size_t)off * kiln_dtype_size(dt);
    }
    int64_t m = st == 0 ? 1 : n;
    *ost = st == 0 ? 0 : 1;
    switch (c) {
    case C_F32: load_f32(dt, base, off, st, m, buf->f); return buf->f;
    case C_F64: load_f64(dt, base, off, st, m, buf->d); return buf->d;
    case C_I64: load_i64(dt, base, off, st, m, buf->i); return buf->i;
    case C_U64: load_u64(dt, base, off, st, m, buf->u); return buf->u;
    }
    return buf->u;
}

static void put(cclass c, kiln_dtype dt, void *base, int64_t off, int64_t n, const stage *buf)
{
    switch (c) {
    case C_F32: store_f32(dt, base, off, n, buf->f); break;
    case C_F64: store_f64(dt, base, off, n, buf->d); break;
    case C_I64: store_i64(dt, base, off, n, buf->i); break;
    case C_U64: store_u64(dt, base, off, n, buf->u); break;
    }
}

/* ---- binary kernels on class values ---- */

/* Four loops so the common contiguous and scalar cases vectorize. */
#define BIN_LOOP(EXPR)                                                                         \
    do {                                                                                       \
        if (sa == 1 && sb == 1)                                                                \
            for (int64_t k = 0; k < n; k++) { T x = a[k], y = b[k]; o[k] = (EXPR); }           \
        else if (sa == 1 && sb == 0) {                                                         \
            T y = b[0];                                                                        \
            for (int64_t k = 0; k < n; k++) { T x = a[k]; o[k] = (EXPR); }                     \
        } else if (sa == 0 && sb == 1) {                                                       \
            T x = a[0];                                                                        \
            for (int64_t k = 0; k < n; k++) { T y = b[k]; o[k] = (EXPR); }                     \
        } else                                                                                 \
            for (int64_t k = 0; k < n; k++) { T x = a[k * sa], y = b[k * sb]; o[k] = (EXPR); } \
    } while (0)

static inline float fmax_nan(float x, float y) { return x != x ? x : y != y ? y : x > y ? x : y; }
static inline float fmin_nan(float x, float y) { return x != x ? x : y != y ? y : x < y ? x : y; }
static inline double dmax_nan(double x, double y) { return x != x ? x : y != y ? y : x > y ? x : y; }
static inline double dmin_nan(double x, double y) { return x != x ? x : y != y ? y : x < y ? x : y; }

/* Python's modulo: the result takes the divisor's sign. */
static inline double py_fmod(double x, double y)
{
    double r = fmod(x, y);
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return r;
}

static inline int64_t i_div(int64_t x, int64_t y)
{
    if (y == 0) return 0;
    if (y == -1) return (int64_t)(0 - (uint64_t)x);
    return x / y;
}

static inline int64_t i_fmod(int64_t x, int64_t y) { return (y == 0 || y == -1) ? 0 : x % y; }

static inline int64_t i_mod(int64_t x, int64_t y)
{
    int64_t r = i_fmod(x, y);
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return r;
}

static inline uint64_t u_pow(uint64_t x, uint64_t e)
{
    uint64_t r = 1;
    while (e) {
        if (e & 1) r *= x;
        x *= x;
        e >>= 1;
    }
    return r;
}

/* Negative integer exponents give 0 except for bases 1 and -1 (integer results). */
static inline int64_t i_pow(int64_t x, int64_t e)
{
    if (e < 0) return x == 1 ? 1 : x == -1 ? ((e & 1) ? -1 : 1) : 0;
    return (int64_t)u_pow((uint64_t)x, (uint64_t)e);
}

#define WRAP_I(expr) ((int64_t)(expr))

static void bin_f32(ew_op op, const float *a, int64_t sa, const float *b, int64_t sb, float *o, int64_t n)
{
    typedef float T;
    switch (op) {
    case OP_ADD: BIN_LOOP(x + y); break;
    case OP_SUB: BIN_LOOP(x - y); break;
    case OP_MUL: BIN_LOOP(x * y); break;
    case OP_DIV: BIN_LOOP(x / y); break;
    case OP_POW: BIN_LOOP(powf(x, y)); break;
    case OP_MOD: BIN_LOOP((float)py_fmod(x, y)); break;
    case OP_FMOD: BIN_LOOP(fmodf(x, y)); break;
    case OP_MAX: BIN_LOOP(fmax_nan(x, y)); break;
    case OP_MIN: BIN_LOOP(fmin_nan(x, y)); break;
    default: break;
    }
}

static void bin_f64(ew_op op, const double *a, int64_t sa, const double *b, int64_t sb, double *o, int64_t n)
{
    typedef double T;
    switch (op) {
    case OP_ADD: BIN_LOOP(x + y); break;
    case OP_SUB: BIN_LOOP(x - y); break;
    case OP_MUL: BIN_LOOP(x * y); break;
    case OP_DIV: BIN_LOOP(x / y); break;
    case OP_POW: BIN_LOOP(pow(x, y)); break;
    case OP_MOD: BIN_LOOP(py_fmod(x, y)); break;
    case OP_FMOD: BIN_LOOP(fmod(x, y)); break;
    case OP_MAX: BIN_LOOP(dmax_nan(x, y)); break;
    case OP_MIN: BIN_LOOP(dmin_nan(x, y)); break;
    default: break;
    }
}

static void bin_i64(ew_op op, const int64_t *a, int64_t sa, const int64_t *b, int64_t sb, int64_t *o, int64_t n)
{
    typedef int64_t T;
    switch (op) {
    case OP_ADD: BIN_LOOP(WRAP_I((uint64_t)x + (uint64_t)y)); break;
    case OP_SUB: BIN_LOOP(WRAP_I((uint64_t)x - (uint64_t)y)); break;
    case OP_MUL: BIN_LOOP(WRAP_I((uint64_t)x * (uint64_t)y)); break;
    case OP_DIV: BIN_LOOP(i_div(x, y)); break;
    case OP_POW: BIN_LOOP(i_pow(x, y)); break;
    case OP_MOD: BIN_LOOP(i_mod(x, y)); break;
    case OP_FMOD: BIN_LOOP(i_fmod(x, y)); break;
    case OP_MAX: BIN_LOOP(x > y ? x : y); break;
    case OP_MIN: BIN_LOOP(x < y ? x : y); break;
    case OP_AND: BIN_LOOP(x & y); break;
    case OP_OR: BIN_LOOP(x | y); break;
    case OP_XOR: BIN_LOOP(x ^ y); break;
    case OP_SHL: BIN_LOOP(y < 0 || y > 63 ? 0 : WRAP_I((uint64_t)x << y)); break;
    case OP_SHR: BIN_LOOP(y < 0 || y > 63 ? 0 : WRAP_I((uint64_t)x >> y)); break;
    default: break;
    }
}

static void bin_u64(ew_op op, const uint64_t *a, int64_t sa, const uint64_t *b, int64_t sb, uint64_t *o, int64_t n)
{
    typedef uint64_t T;
    switch (op) {
    case OP_ADD: BIN_LOOP(x + y); break;
    case OP_SUB: BIN_LOOP(x - y); break;
    case OP_MUL: BIN_LOOP(x * y); break;
    case OP_DIV: BIN_LOOP(y ? x / y : 0); break;
    case OP_POW: BIN_LOOP(u_pow(x, y)); break;
    case OP_MOD:
    case OP_FMOD: BIN_LOOP(y ? x % y : 0); break;
    case OP_MAX: BIN_LOOP(x > y ? x : y); break;
    case OP_MIN: BIN_LOOP(x < y ? x : y); break;
    case OP_AND: BIN_LOOP(x & y); break;
    case OP_OR: BIN_LOOP(x | y); break;
    case OP_XOR: BIN_LOOP(x ^ y); break;
    case OP_SHL: BIN_LOOP(y > 63 ? 0 : x << y); break;
    case OP_SHR: BIN_LOOP(y > 63 ? 0 : x >> y); break;
    default: break;
    }
}

#define CMP_BODY                                                                               \
    switch (op) {                                                                              \
    case OP_EQ: BIN_LOOP(x == y); break;                                                       \
    case OP_LT: BIN_LOOP(x < y); break;                                                        \
    case OP_GT: BIN_LOOP(x > y); break;                                                        \
    case OP_LE: BIN_LOOP(x <= y); break;                                                       \
    case OP_GE: BIN_LOOP(x >= y); break;                                                       \
    default: break;                                                                            \
    }

#define DEFINE_CMP(NAME, T_)                                                                   \
    static void NAME(ew_op op, const T_ *a, int64_t sa, const T_ *b, int64_t sb, uint8_t *o, int64_t n) \
    {                                                                                          \
        typedef T_ T;                                                                          \
        CMP_BODY                                                                               \
    }
DEFINE_CMP(cmp_f32, float)
DEFINE_CMP(cmp_f64, double)
DEFINE_CMP(cmp_i64, int64_t)
DEFINE_CMP(cmp_u64, uint64_t)

static bool is_compare(ew_op op) { return op >= OP_EQ && op <= OP_GE; }

/* ---- broadcast iterator ---- */

typedef struct bcast {
    int nin;
    int orank;                             /* outer (non-innermost) merged axes */
    int64_t dims[KILN_MAX_DIMS];
    int64_t st[MAXIN][KILN_MAX_DIMS];
    int64_t inner;                         /* innermost merged axis length */
    int64_t ist[MAXIN];                    /* innermost strides: 0 or 1 */
    int64_t rows;
} bcast;

/*
 * Input shapes are right-aligned to the output's rank; an input axis of size 1
 * gets stride 0. Output axes of size 1 are dropped, and neighbours merge
 * whenever every operand walks them as one.
 */
static kiln_status bcast_init(bcast *it, const kiln_node *node, const kiln_shape *out, int nin,
                              const kiln_shape *const *ins, kiln_err *err)
{
    memset(it, 0, sizeof *it);
    it->nin = nin;
    int R = out->rank;
    int64_t s[MAXIN][KILN_MAX_DIMS];
    for (int k = 0; k < nin; k++) {
        int r = ins[k]->rank;
        if (r > R || r < 0)
            return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): input %d rank %d vs output rank %d", node->name,
                              node->op_type, k, r, R);
        int64_t acc = 1;
        for (int d = R - 1; d >= 0; d--) {
            int id = d - (R - r);
            int64_t dim = id >= 0 ? ins[k]->d[id].add : 1;
            if (dim != 1 && dim != out->d[d].add)
                return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): input %d axis %d is %lld, output %lld",
                                  node->name, node->op_type, k, id, (long long)dim, (long long)out->d[d].add);
            s[k][d] = dim == 1 ? 0 : acc;
            acc *= dim;
        }
    }
    int n = 0;
    int64_t cd[KILN_MAX_DIMS];
    int64_t cs[MAXIN][KILN_MAX_DIMS];
    for (int d = 0; d < R; d++) {
        int64_t od = out->d[d].add;
        if (od == 1) continue;
        bool merge = n > 0;
        for (int k = 0; k < nin && merge; k++)
            if (cs[k][n - 1] != s[k][d] * od) merge = false;
        if (merge) {
            cd[n - 1] *= od;
            for (int k = 0; k < nin; k++) cs[k][n - 1] = s[k][d];
        } else {
            cd[n] = od;
            for (int k = 0; k < nin; k++) cs[k][n] = s[k][d];
            n++;
        }
    }
    it->inner = n > 0 ? cd[n - 1] : 1;
    for (int k = 0; k < nin; k++) it->ist[k] = n > 0 ? cs[k][n - 1] : 0;
    it->orank = n > 0 ? n - 1 : 0;
    it->rows = 1;
    for (int d = 0; d < it->orank; d++) {
        it->dims[d] = cd[d];
        it->rows *= cd[d];
        for (int k = 0; k < nin; k++) it->st[k][d] = cs[k][d];
    }
    if (it->inner == 0) it->rows = 0;
    return KILN_OK;
}

/* Per-input offsets of output row r (row-major over the outer axes). */
static inline void bcast_offsets(const bcast *it, int64_t r, int64_t *off)
{
    for (int k = 0; k < it->nin; k++) off[k] = 0;
    for (int d = it->orank - 1; d >= 0 && r; d--) {
        int64_t i = r % it->dims[d];
        r /= it->dims[d];
        for (int k = 0; k < it->nin; k++) off[k] += i * it->st[k][d];
    }
}

/* Advances the per-input offsets to the next output row. */
static inline void bcast_next(const bcast *it, int64_t *idx, int64_t *off)
{
    for (int d = it->orank - 1; d >= 0; d--) {
        idx[d]++;
        for (int k = 0; k < it->nin; k++) off[k] += it->st[k][d];
        if (idx[d] < it->dims[d]) return;
        for (int k = 0; k < it->nin; k++) off[k] -= it->st[k][d] * it->dims[d];
        idx[d] = 0;
    }
}

/* ---- binary op over a broadcast: out = a op b ---- */

typedef struct bin_job {
    ew_op op;
    cclass ca, cb, co;  /* compute class of each operand and the result */
    kiln_dtype ta, tb, to;
    const void *a, *b;
    void *o;
} bin_job;

static void bin_row(const bin_job *j, int64_t ao, int64_t sa, int64_t bo, int64_t sb, int64_t oo, int64_t n)
{
    stage sa_buf, sb_buf, so_buf;
    for (int64_t c = 0; c < n; c += BLOCK) {
        int64_t m = n - c < BLOCK ? n - c : BLOCK;
        int64_t psa, psb;
        const void *pa = fetch(j->ca, j->ta, j->a, ao + c * sa, sa, m, &sa_buf, &psa);
        const void *pb = fetch(j->cb, j->tb, j->b, bo + c * sb, sb, m, &sb_buf, &psb);
        if (is_compare(j->op)) {
            uint8_t *po = (uint8_t *)j->o + oo + c;
            switch (j->ca) {
            case C_F32: cmp_f32(j->op, pa, psa, pb, psb, po, m); break;
            case C_F64: cmp_f64(j->op, pa, psa, pb, psb, po, m); break;
            case C_I64: cmp_i64(j->op, pa, psa, pb, psb, po, m); break;
            case C_U64: cmp_u64(j->op, pa, psa, pb, psb, po, m); break;
            }
            continue;
        }
        bool direct = j->to == native_of(j->co);
        void *po = direct ? (char *)j->o + (size_t)(oo + c) * kiln_dtype_size(j->to) : (void *)&so_buf;
        switch (j->co) {
        case C_F32: bin_f32(j->op, pa, psa, pb, psb, po, m); break;
        case C_F64: bin_f64(j->op, pa, psa, pb, psb, po, m); break;
        case C_I64: bin_i64(j->op, pa, psa, pb, psb, po, m); break;
        case C_U64: bin_u64(j->op, pa, psa, pb, psb, po, m); break;
        }
        if (!direct) put(j->co, j->to, j->o, oo + c, m, &so_buf);
    }
}

/* Integer-base Pow with a float exponent is computed in double, then truncated. */
static kiln_status run_binary(const kiln_node *node, ew_op op, const kiln_value *a, const kiln_shape *bshape,
                              const kiln_value *b, kiln_value *out, kiln_err *err)
{
    bin_job j = {op, class_of(a->dtype), class_of(a->dtype), class_of(out->dtype), a->dtype, b->dtype, out->dtype,
                 a->data, b->data, out->data};
    if (is_compare(op)) j.co = j.ca;
    if (op == OP_POW) {
        cclass eb = class_of(b->dtype);
        bool int_base = j.ca == C_I64 || j.ca == C_U64;
        bool float_exp = eb == C_F32 || eb == C_F64;
        if (int_base && float_exp) j.ca = j.cb = j.co = C_F64;
        else if (int_base) j.cb = j.ca;
    }
    const kiln_shape *ins[2] = {&a->shape, bshape};
    bcast it;
    kiln_status s = bcast_init(&it, node, &out->shape, 2, ins, err);
    if (s) return s;
    /* Work units are pieces of rows, so one long row (equal shapes) spreads over threads too. */
    int64_t per_row = (it.inner + PAR_CHUNK - 1) / PAR_CHUNK, units = it.rows * per_row;
    bool par = it.rows * it.inner >= PAR_MIN;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (par)
#endif
    for (int64_t u = 0; u < units; u++) {
        int64_t r = u / per_row, c = (u % per_row) * PAR_CHUNK, off[MAXIN];
        int64_t m = it.inner - c < PAR_CHUNK ? it.inner - c : PAR_CHUNK;
        bcast_offsets(&it, r, off);
        bin_row(&j, off[0] + c * it.ist[0], it.ist[0], off[1] + c * it.ist[1], it.ist[1], r * it.inner + c, m);
    }
    (void)par;
    return KILN_OK;
}

/* ---- checks shared by every kernel ---- */

static kiln_status check_value(const kiln_node *node, const kiln_value *v, const char *what, kiln_err *err)
{
    if (!v) return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): %s is missing", node->name, node->op_type, what);
    if (!dtype_supported(v->dtype))
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): %s has unsupported type %s", node->name,
                          node->op_type, what, kiln_dtype_name(v->dtype) ? kiln_dtype_name(v->dtype) : "?");
    if (v->shape.rank < 0 || !kiln__shape_is_const(&v->shape))
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): %s has no concrete shape", node->name, node->op_type,
                          what);
    int64_t n = kiln__shape_numel(&v->shape);
    size_t need;
    if (n < 0 || kiln__mul_overflow((size_t)n, kiln_dtype_size(v->dtype), &need) || (need && (!v->data || v->nbytes < need)))
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): %s holds %zu bytes, its shape needs more", node->name,
                          node->op_type, what, v->nbytes);
    return KILN_OK;
}

static kiln_status check_io(const kiln_node *node, int nin, const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln_status s;
    for (int i = 0; i < nin; i++) {
        char what[32];
        snprintf(what, sizeof what, "input %d", i);
        if ((s = check_value(node, in[i], what, err))) return s;
    }
    return check_value(node, &out[0], "output", err);
}

static kiln_status binary(const kiln_node *node, const void *params, ew_op op, const kiln_value *const *in,
                          kiln_value *out, kiln_err *err)
{
    kiln_status s = check_io(node, 2, in, out, err);
    if (s) return s;
    kiln_shape eb;
    if ((s = kiln__ew_b_shape(node, params, &in[0]->shape, &in[1]->shape, &eb, err))) return s;
    return run_binary(node, op, in[0], &eb, in[1], out, err);
}

#define BINARY_KERNEL(fn, op)                                                                  \
    static kiln_status fn(const kiln_node *node, const void *params, const kiln_value *const *in, \
                          kiln_value *out, kiln_err *err)                                      \
    {                                                                                          \
        return binary(node, params, op, in, out, err);                                         \
    }

BINARY_KERNEL(run_add, OP_ADD)
BINARY_KERNEL(run_sub, OP_SUB)
BINARY_KERNEL(run_mul, OP_MUL)
BINARY_KERNEL(run_div, OP_DIV)
BINARY_KERNEL(run_pow, OP_POW)
BINARY_KERNEL(run_and, OP_AND)
BINARY_KERNEL(run_or, OP_OR)
BINARY_KERNEL(run_xor, OP_XOR)
BINARY_KERNEL(run_equal, OP_EQ)
BINARY_KERNEL(run_less, OP_LT)
BINARY_KERNEL(run_greater, OP_GT)
BINARY_KERNEL(run_less_equal, OP_LE)
BINARY_KERNEL(run_greater_equal, OP_GE)
BINARY_KERNEL(run_bitwise_and, OP_AND)
BINARY_KERNEL(run_bitwise_or, OP_OR)
BINARY_KERNEL(run_bitwise_xor, OP_XOR)

static kiln_status run_bitshift(const kiln_node *node, const void *params, const kiln_value *const *in,
                                kiln_value *out, kiln_err *err)
{
    const kiln_ew_params *p = params;
    return binary(node, params, p->shift_left ? OP_SHL : OP_SHR, in, out, err);
}

static kiln_status run_mod(const kiln_node *node, const void *params, const kiln_value *const *in, kiln_value *out,
                           kiln_err *err)
{
    const kiln_ew_params *p = params;
    return binary(node, params, p->fmod ? OP_FMOD : OP_MOD, in, out, err);
}

/* ---- variadic Max/Min/Sum/Mean: fold the inputs into the output ---- */

static kiln_status variadic(const kiln_node *node, ew_op op, bool mean, const kiln_value *const *in, kiln_value *out,
                            kiln_err *err)
{
    int nin = node->n_in;
    kiln_status s = check_io(node, nin, in, out, err);
    if (s) return s;
    if (nin == 1) {
        /* Same shape as the output (a one-input broadcast is the identity). */
        memcpy(out->data, in[0]->data, (size_t)kiln__value_numel(out) * kiln_dtype_size(out->dtype));
    } else {
        if ((s = run_binary(node, op, in[0], &in[1]->shape, in[1], out, err))) return s;
        for (int i = 2; i < nin; i++)
            if ((s = run_binary(node, op, out, &in[i]->shape, in[i], out, err))) return s;
    }
    if (mean) {
        int64_t n = kiln__value_numel(out);
        cclass c = class_of(out->dtype);
        stage buf;
        for (int64_t k = 0; k < n; k += BLOCK) {
            int64_t m = n - k < BLOCK ? n - k : BLOCK;
            if (c == C_F64) {
                load_f64(out->dtype, out->data, k, 1, m, buf.d);
                for (int64_t q = 0; q < m; q++) buf.d[q] /= nin;
            } else {
                load_f32(out->dtype, out->data, k, 1, m, buf.f);
                for (int64_t q = 0; q < m; q++) buf.f[q] /= (float)nin;
                c = C_F32;
            }
            put(c, out->dtype, out->data, k, m, &buf);
        }
    }
    return KILN_OK;
}

#define VARIADIC_KERNEL(fn, op, mean)                                                          \
    static kiln_status fn(const kiln_node *node, const void *params, const kiln_value *const *in, \
                          kiln_value *out, kiln_err *err)                                      \
    {                                                                                          \
        return variadic(node, op, mean, in, out, err);                                         \
    }

VARIADIC_KERNEL(run_max, OP_MAX, false)
VARIADIC_KERNEL(run_min, OP_MIN, false)
VARIADIC_KERNEL(run_sum, OP_ADD, false)
VARIADIC_KERNEL(run_mean, OP_ADD, true)

/* ---- unary ---- */

#define UN_LOOP(EXPR)                                                                          \
    for (int64_t k = 0; k < n; k++) {                                                          \
        T x = a[k];                                                                            \
        o[k] = (EXPR);                                                                         \
    }                                                                                          \
    break

static inline float sign_f(float x) { return x > 0 ? 1.0f : x < 0 ? -1.0f : x; }
static inline double sign_d(double x) { return x > 0 ? 1.0 : x < 0 ? -1.0 : x; }

static void un_f32(ew_op op, const float *a, float *o, int64_t n)
{
    typedef float T;
    switch (op) {
    case OP_SQRT: UN_LOOP(sqrtf(x));
    case OP_EXP: UN_LOOP(expf(x));
    case OP_LOG: UN_LOOP(logf(x));
    case OP_RECIP: UN_LOOP(1.0f / x);
    case OP_FLOOR: UN_LOOP(floorf(x));
    case OP_CEIL: UN_LOOP(ceilf(x));
    case OP_ROUND: UN_LOOP(nearbyintf(x)); /* the default rounding mode: half to even */
    case OP_ERF: UN_LOOP(erff(x));
    case OP_SIN: UN_LOOP(sinf(x));
    case OP_COS: UN_LOOP(cosf(x));
    case OP_TAN: UN_LOOP(tanf(x));
    case OP_SINH: UN_LOOP(sinhf(x));
    case OP_COSH: UN_LOOP(coshf(x));
    case OP_ASIN: UN_LOOP(asinf(x));
    case OP_ACOS: UN_LOOP(acosf(x));
    case OP_ATAN: UN_LOOP(atanf(x));
    case OP_ASINH: UN_LOOP(asinhf(x));
    case OP_ACOSH: UN_LOOP(acoshf(x));
    case OP_ATANH: UN_LOOP(atanhf(x));
    case OP_ABS: UN_LOOP(fabsf(x));
    case OP_NEG: UN_LOOP(-x);
    case OP_SIGN: UN_LOOP(sign_f(x));
    default: break;
    }
}

static void un_f64(ew_op op, const double *a, double *o, int64_t n)
{
    typedef double T;
    switch (op) {
    case OP_SQRT: UN_LOOP(sqrt(x));
    case OP_EXP: UN_LOOP(exp(x));
    case OP_LOG: UN_LOOP(log(x));
    case OP_RECIP: UN_LOOP(1.0 / x);
    case OP_FLOOR: UN_LOOP(floor(x));
    case OP_CEIL: UN_LOOP(ceil(x));
    case OP_ROUND: UN_LOOP(nearbyint(x));
    case OP_ERF: UN_LOOP(erf(x));
    case OP_SIN: UN_LOOP(sin(x));
    case OP_COS: UN_LOOP(cos(x));
    case OP_TAN: UN_LOOP(tan(x));
    case OP_SINH: UN_LOOP(sinh(x));
    case OP_COSH: UN_LOOP(cosh(x));
    case OP_ASIN: UN_LOOP(asin(x));
    case OP_ACOS: UN_LOOP(acos(x));
    case OP_ATAN: UN_LOOP(atan(x));
    case OP_ASINH: UN_LOOP(asinh(x));
    case OP_ACOSH: UN_LOOP(acosh(x));
    case OP_ATANH: UN_LOOP(atanh(x));
    case OP_ABS: UN_LOOP(fabs(x));
    case OP_NEG: UN_LOOP(-x);
    case OP_SIGN: UN_LOOP(sign_d(x));
    default: break;
    }
}

static void un_i64(ew_op op, const int64_t *a, int64_t *o, int64_t n)
{
    typedef int64_t T;
    switch (op) {
    case OP_ABS: UN_LOOP(x < 0 ? WRAP_I(0 - (uint64_t)x) : x);
    case OP_NEG: UN_LOOP(WRAP_I(0 - (uint64_t)x));
    case OP_SIGN: UN_LOOP(x > 0 ? 1 : x < 0 ? -1 : 0);
    case OP_BITNOT: UN_LOOP(~x);
    default: UN_LOOP(x); /* Floor/Ceil/Round of an integer is itself */
    }
}

static void un_u64(ew_op op, const uint64_t *a, uint64_t *o, int64_t n)
{
    typedef uint64_t T;
    switch (op) {
    case OP_NEG: UN_LOOP(0 - x);
    case OP_SIGN: UN_LOOP(x > 0);
    case OP_NOT: UN_LOOP(!x);
    case OP_BITNOT: UN_LOOP(~x);
    default: UN_LOOP(x);
    }
}

static kiln_status unary(const kiln_node *node, ew_op op, const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln_status s = check_io(node, 1, in, out, err);
    if (s) return s;
    const kiln_value *x = in[0];
    if (x->dtype != out->dtype || kiln__value_numel(x) != kiln__value_numel(out))
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): output does not match input", node->name,
                          node->op_type);
    cclass c = class_of(x->dtype);
    bool direct = x->dtype == native_of(c);
    int64_t n = kiln__value_numel(x);
    size_t es = kiln_dtype_size(x->dtype);
    bool par = n >= PAR_MIN;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (par)
#endif
    for (int64_t k = 0; k < n; k += BLOCK) {
        stage ib, ob;
        int64_t m = n - k < BLOCK ? n - k : BLOCK, st;
        const void *pa = fetch(c, x->dtype, x->data, k, 1, m, &ib, &st);
        void *po = direct ? (char *)out->data + (size_t)k * es : (void *)&ob;
        switch (c) {
        case C_F32: un_f32(op, pa, po, m); break;
        case C_F64: un_f64(op, pa, po, m); break;
        case C_I64: un_i64(op, pa, po, m); break;
        case C_U64: un_u64(op, pa, po, m); break;
        }
        if (!direct) put(c, out->dtype, out->data, k, m, &ob);
    }
    (void)par;
    return KILN_OK;
}

#define UNARY_KERNEL(fn, op)                                                                   \
    static kiln_status fn(const kiln_node *node, const void *params, const kiln_value *const *in, \
                          kiln_value *out, kiln_err *err)                                      \
    {                                                                                          \
        return unary(node, op, in, out, err);                                                  \
    }

UNARY_KERNEL(run_sqrt, OP_SQRT)
UNARY_KERNEL(run_exp, OP_EXP)
UNARY_KERNEL(run_log, OP_LOG)
UNARY_KERNEL(run_recip, OP_RECIP)
UNARY_KERNEL(run_floor, OP_FLOOR)
UNARY_KERNEL(run_ceil, OP_CEIL)
UNARY_KERNEL(run_round, OP_ROUND)
UNARY_KERNEL(run_erf, OP_ERF)
UNARY_KERNEL(run_sin, OP_SIN)
UNARY_KERNEL(run_cos, OP_COS)
UNARY_KERNEL(run_abs, OP_ABS)
UNARY_KERNEL(run_neg, OP_NEG)
UNARY_KERNEL(run_sign, OP_SIGN)
UNARY_KERNEL(run_not, OP_NOT)
UNARY_KERNEL(run_tan, OP_TAN)
UNARY_KERNEL(run_sinh, OP_SINH)
UNARY_KERNEL(run_cosh, OP_COSH)
UNARY_KERNEL(run_asin, OP_ASIN)
UNARY_KERNEL(run_acos, OP_ACOS)
UNARY_KERNEL(run_atan, OP_ATAN)
UNARY_KERNEL(run_asinh, OP_ASINH)
UNARY_KERNEL(run_acosh, OP_ACOSH)
UNARY_KERNEL(run_atanh, OP_ATANH)
UNARY_KERNEL(run_bitwise_not, OP_BITNOT)

/* IsNaN / IsInf: float in, bool out. */
static kiln_status run_predicate(const kiln_node *node, const kiln_ew_params *p, const kiln_value *const *in,
                                 kiln_value *out, bool nan, kiln_err *err)
{
    kiln_status s = check_io(node, 1, in, out, err);
    if (s) return s;
    int64_t n = kiln__value_numel(in[0]);
    if (out->dtype != KILN_DT_BOOL || n != kiln__value_numel(out))
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): output does not match input", node->name,
                          node->op_type);
    bool neg = p->detect_negative, pos = p->detect_positive;
    uint8_t *o = out->data;
    stage buf;
    for (int64_t k = 0; k < n; k += BLOCK) {
        int64_t m = n - k < BLOCK ? n - k : BLOCK;
        load_f64(in[0]->dtype, in[0]->data, k, 1, m, buf.d);
        for (int64_t q = 0; q < m; q++) {
            double x = buf.d[q];
            o[k + q] = nan ? isnan(x) : ((pos && x == INFINITY) || (neg && x == -INFINITY));
        }
    }
    return KILN_OK;
}

static kiln_status run_isnan(const kiln_node *node, const void *params, const kiln_value *const *in, kiln_value *out,
                             kiln_err *err)
{
    return run_predicate(node, params, in, out, true, err);
}

static kiln_status run_isinf(const kiln_node *node, const void *params, const kiln_value *const *in, kiln_value *out,
                             kiln_err *err)
{
    return run_predicate(node, params, in, out, false, err);
}

/* ---- Cast / CastLike ---- */

static kiln_status run_cast(const kiln_node *node, const void *params, const kiln_value *const *in, kiln_value *out,
                            kiln_err *err)
{
    kiln_status s = check_io(node, 1, in, out, err);
    if (s) return s;
    const kiln_value *x = in[0];
    int64_t n = kiln__value_numel(x);
    if (n != kiln__value_numel(out))
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): output size differs from input", node->name,
                          node->op_type);
    if (x->dtype == out->dtype) {
        memcpy(out->data, x->data, (size_t)n * kiln_dtype_size(x->dtype));
        return KILN_OK;
    }
    /* Floats go through double (exact for every float source), integers through 64 bits. */
    cclass c = class_of(x->dtype);
    if (c == C_F32) c = C_F64;
    stage buf;
    for (int64_t k = 0; k < n; k += BLOCK) {
        int64_t m = n - k < BLOCK ? n - k : BLOCK;
        switch (c) {
        case C_F64: load_f64(x->dtype, x->data, k, 1, m, buf.d); break;
        case C_I64: load_i64(x->dtype, x->data, k, 1, m, buf.i); break;
        default: load_u64(x->dtype, x->data, k, 1, m, buf.u); break;
        }
        put(c, out->dtype, out->data, k, m, &buf);
    }
    return KILN_OK;
}

/* BitCast between types of one element size: the bytes are kept. */
static kiln_status run_bitcast(const kiln_node *node, const void *params, const kiln_value *const *in,
                               kiln_value *out, kiln_err *err)
{
    kiln_status s = check_io(node, 1, in, out, err);
    if (s) return s;
    size_t n = (size_t)kiln__value_numel(in[0]) * kiln_dtype_size(in[0]->dtype);
    if (n != (size_t)kiln__value_numel(out) * kiln_dtype_size(out->dtype))
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (BitCast): output size differs from input", node->name);
    memcpy(out->data, in[0]->data, n);
    return KILN_OK;
}

static kiln_status run_castlike(const kiln_node *node, const void *params, const kiln_value *const *in,
                                kiln_value *out, kiln_err *err)
{
    return run_cast(node, params, in, out, err);
}

/* ---- Where ---- */

#define WHERE_LOOP(T)                                                                          \
    do {                                                                                       \
        const T *px = (const T *)x->data + off[1], *py = (const T *)y->data + off[2];         \
        T *po = (T *)out->data + r * it.inner;                                                 \
        for (int64_t k = 0; k < it.inner; k++)                                                 \
            po[k] = pc[k * it.ist[0]] ? px[k * it.ist[1]] : py[k * it.ist[2]];                 \
    } while (0)

static kiln_status run_where(const kiln_node *node, const void *params, const kiln_value *const *in, kiln_value *out,
                             kiln_err *err)
{
    kiln_status s = check_io(node, 3, in, out, err);
    if (s) return s;
    const kiln_value *c = in[0], *x = in[1], *y = in[2];
    if (c->dtype != KILN_DT_BOOL || x->dtype != out->dtype || y->dtype != out->dtype)
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (Where): condition must be bool and X, Y the output's type",
                          node->name);
    const kiln_shape *ins[3] = {&c->shape, &x->shape, &y->shape};
    bcast it;
    if ((s = bcast_init(&it, node, &out->shape, 3, ins, err))) return s;
    int64_t idx[KILN_MAX_DIMS] = {0}, off[MAXIN] = {0};
    size_t es = kiln_dtype_size(out->dtype);
    for (int64_t r = 0; r < it.rows; r++) {
        const uint8_t *pc = (const uint8_t *)c->data + off[0];
        switch (es) {
        case 1: WHERE_LOOP(uint8_t); break;
        case 2: WHERE_LOOP(uint16_t); break;
        case 4: WHERE_LOOP(uint32_t); break;
        default: WHERE_LOOP(uint64_t); break;
        }
        bcast_next(&it, idx, off);
    }
    return KILN_OK;
}

const kiln_cpu_kernel kiln__cpu_elementwise[] = {
    {"Add", "", run_add},
    {"Sub", "", run_sub},
    {"Mul", "", run_mul},
    {"Div", "", run_div},
    {"Mod", "", run_mod},
    {"Pow", "", run_pow},
    {"And", "", run_and},
    {"Or", "", run_or},
    {"Xor", "", run_xor},
    {"Equal", "", run_equal},
    {"Less", "", run_less},
    {"Greater", "", run_greater},
    {"LessOrEqual", "", run_less_equal},
    {"GreaterOrEqual", "", run_greater_equal},
    {"Max", "", run_max},
    {"Min", "", run_min},
    {"Sum", "", run_sum},
    {"Mean", "", run_mean},
    {"Sqrt", "", run_sqrt},
    {"Exp", "", run_exp},
    {"Log", "", run_log},
    {"Reciprocal", "", run_recip},
    {"Floor", "", run_floor},
    {"Ceil", "", run_ceil},
    {"Round", "", run_round},
    {"Erf", "", run_erf},
    {"Sin", "", run_sin},
    {"Cos", "", run_cos},
    {"Abs", "", run_abs},
    {"Neg", "", run_neg},
    {"Sign", "", run_sign},
    {"Not", "", run_not},
    {"Tan", "", run_tan},
    {"Sinh", "", run_sinh},
    {"Cosh", "", run_cosh},
    {"Asin", "", run_asin},
    {"Acos", "", run_acos},
    {"Atan", "", run_atan},
    {"Asinh", "", run_asinh},
    {"Acosh", "", run_acosh},
    {"Atanh", "", run_atanh},
    {"IsNaN", "", run_isnan},
    {"IsInf", "", run_isinf},
    {"BitShift", "", run_bitshift},
    {"BitwiseAnd", "", run_bitwise_and},
    {"BitwiseOr", "", run_bitwise_or},
    {"BitwiseXor", "", run_bitwise_xor},
    {"BitwiseNot", "", run_bitwise_not},
    {"BitCast", "", run_bitcast},
    {"Where", "", run_where},
    {"Cast", "", run_cast},
    {"CastLike", "", run_castlike},
    {0},
};
