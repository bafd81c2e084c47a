/*
 * CPU reference kernels of the indexing family. Shapes were validated by the
 * schemas' infer(); index values are checked here, where they are read: a
 * negative index wraps once (adds the dim), anything still out of range is an
 * error naming the node. Data moves by element size, so every dtype works;
 * reductions compute floats in double (exact for one add/mul of two floats)
 * and integers with wrap-around in their own type.
 */
#include "cpu.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(st, ...) return kiln__fail(err, st, __VA_ARGS__)

/* Defined in src/ir/ops_indexing.c next to the shape rules they share with infer(). */
int kiln__indexing_reduction(const kiln_node *node);
int64_t kiln__indexing_count_true(const kiln_value *cond, int64_t limit);
int64_t kiln__indexing_count_nonzero(const kiln_value *x);

enum { RED_NONE, RED_ADD, RED_MUL, RED_MAX, RED_MIN };

static kiln_status esize(const kiln_node *node, kiln_dtype dt, size_t *es, kiln_err *err)
{
    *es = kiln_dtype_size(dt);
    if (*es == 0 || dt == KILN_DT_STRING)
        FAIL(KILN_ERR_UNSUPPORTED, "node '%s' (%s): type %s unsupported on CPU", node->name,
             node->op_type, kiln_dtype_name(dt));
    return KILN_OK;
}

static bool is_float(kiln_dtype dt)
{
    return dt == KILN_DT_FLOAT || dt == KILN_DT_DOUBLE || dt == KILN_DT_FLOAT16 ||
           dt == KILN_DT_BFLOAT16;
}

static int64_t dimv(const kiln_value *v, int i) { return v->shape.d[i].add; }

/* Product of dims [from, to). */
static int64_t prod(const kiln_value *v, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++) p *= v->shape.d[i].add;
    return p;
}

static int64_t norm_axis(int64_t axis, int rank) { return axis < 0 ? axis + rank : axis; }

/* Wraps a negative index once; fails when the result is outside [0, dim). */
static kiln_status wrap_index(const kiln_node *node, int64_t v, int axis, int64_t dim,
                              int64_t *out, kiln_err *err)
{
    int64_t w = v < 0 ? v + dim : v;
    if (w < 0 || w >= dim)
        FAIL(KILN_ERR_SHAPE,
             "node '%s' (%s): index %lld out of range for data axis %d of size %lld (valid: %lld..%lld)",
             node->name, node->op_type, (long long)v, axis, (long long)dim, (long long)-dim,
             (long long)dim - 1);
    *out = w;
    return KILN_OK;
}

static char *at(const kiln_value *v, int64_t i, size_t es) { return (char *)v->data + (size_t)i * es; }

/* NaN wins max and min, as in numpy. */
static double fmax_nan(double a, double b) { return (isnan(a) || a >= b) ? a : b; }
static double fmin_nan(double a, double b) { return (isnan(a) || a <= b) ? a : b; }

/* o[oi] = o[oi] (reduction) u[ui]; same dtype on both sides. */
static void combine(kiln_value *o, int64_t oi, const kiln_value *u, int64_t ui, int red, size_t es)
{
    if (red == RED_NONE) {
        memcpy(at(o, oi, es), at(u, ui, es), es);
    } else if (is_float(o->dtype)) {
        double a = kiln__value_get_f64(o, oi), b = kiln__value_get_f64(u, ui);
        double r = red == RED_ADD ? a + b : red == RED_MUL ? a * b : red == RED_MAX ? fmax_nan(a, b) : fmin_nan(a, b);
        kiln__value_set_f64(o, oi, r);
    } else if (o->dtype == KILN_DT_UINT64) {
        uint64_t *p = (uint64_t *)o->data, b = ((const uint64_t *)u->data)[ui], a = p[oi];
        p[oi] = red == RED_ADD ? a + b : red == RED_MUL ? a * b : red == RED_MAX ? (a > b ? a : b) : (a < b ? a : b);
    } else {
        /* Wrapping math in uint64, truncated to the type on store. */
        int64_t a = kiln__value_get_i64(o, oi), b = kiln__value_get_i64(u, ui), r;
        if (red == RED_ADD) r = (int64_t)((uint64_t)a + (uint64_t)b);
        else if (red == RED_MUL) r = (int64_t)((uint64_t)a * (uint64_t)b);
        else if (red == RED_MAX) r = a > b ? a : b;
        else r = a < b ? a : b;
        kiln__value_set_i64(o, oi, r);
    }
}

/* ---- GatherND ------------------------------------------------------------- */

static kiln_status run_gathernd(const kiln_node *node, const void *params,
                                const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    const kiln_value *x = in[0], *idx = in[1];
    size_t es;
    kiln_status st = esize(node, x->dtype, &es, err);
    if (st) return st;
    int b = (int)kiln__attr_int(node, "batch_dims", 0);
    int r = x->shape.rank, q = idx->shape.rank;
    int k = (int)dimv(idx, q - 1);
    int64_t B = prod(x, 0, b), DB = prod(x, b, r), slice = prod(x, b + k, r), M = prod(idx, b, q - 1);
    if (B * M * slice != kiln__value_numel(&out[0]) || prod(idx, 0, b) != B)
        FAIL(KILN_ERR_INTERNAL, "node '%s' (GatherND): output size", node->name);
    int64_t stride[KILN_MAX_DIMS];
    for (int j = 0; j < k; j++) stride[j] = prod(x, b + j + 1, r);
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t m = 0; m < M; m++) {
            int64_t row = bi * M + m, off = 0;
            for (int j = 0; j < k; j++) {
                int64_t v = 0;
                st = wrap_index(node, kiln__value_get_i64(idx, row * k + j), b + j, dimv(x, b + j),
                                &v, err);
                if (st) return st;
                off += v * stride[j];
            }
            if (slice) memcpy(at(&out[0], row * slice, es), at(x, bi * DB + off, es), (size_t)slice * es);
        }
    return KILN_OK;
}

/* ---- ScatterND ------------------------------------------------------------ */

static kiln_status run_scatternd(const kiln_node *node, const void *params,
                                 const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    const kiln_value *x = in[0], *idx = in[1], *upd = in[2];
    size_t es;
    kiln_status st = esize(node, x->dtype, &es, err);
    if (st) return st;
    int red = kiln__indexing_reduction(node);
    if (out[0].nbytes != x->nbytes)
        FAIL(KILN_ERR_INTERNAL, "node '%s' (ScatterND): output size", node->name);
    if (x->nbytes) memcpy(out[0].data, x->data, x->nbytes);
    int r = x->shape.rank, q = idx->shape.rank;
    int k = (int)dimv(idx, q - 1);
    int64_t M = prod(idx, 0, q - 1), slice = prod(x, k, r);
    if (M * slice != kiln__value_numel(upd))
        FAIL(KILN_ERR_INTERNAL, "node '%s' (ScatterND): updates size", node->name);
    int64_t stride[KILN_MAX_DIMS];
    for (int j = 0; j < k; j++) stride[j] = prod(x, j + 1, r);
    for (int64_t m = 0; m < M; m++) {
        int64_t off = 0;
        for (int j = 0; j < k; j++) {
            int64_t v = 0;
            st = wrap_index(node, kiln__value_get_i64(idx, m * k + j), j, dimv(x, j), &v, err);
            if (st) return st;
            off += v * stride[j];
        }
        if (red == RED_NONE) {
            if (slice) memcpy(at(&out[0], off, es), at(upd, m * slice, es), (size_t)slice * es);
        } else {
            for (int64_t e = 0; e < slice; e++) combine(&out[0], off + e, upd, m * slice + e, red, es);
        }
    }
    return KILN_OK;
}

/* ---- ScatterElements / Scatter -------------------------------------------- */

static kiln_status run_scatter_elements(const kiln_node *node, const void *params,
                                        const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    const kiln_value *x = in[0], *idx = in[1], *upd = in[2];
    size_t es;
    kiln_status st = esize(node, x->dtype, &es, err);
    if (st) return st;
    int red = kiln__indexing_reduction(node);
    if (out[0].nbytes != x->nbytes || kiln__value_numel(idx) != kiln__value_numel(upd))
        FAIL(KILN_ERR_INTERNAL, "node '%s' (%s): sizes", node->name, node->op_type);
    if (x->nbytes) memcpy(out[0].data, x->data, x->nbytes);
    int r = x->shape.rank;
    int axis = (int)norm_axis(kiln__attr_int(node, "axis", 0), r);
    int64_t xstr[KILN_MAX_DIMS], coord[KILN_MAX_DIMS] = {0};
    for (int d = 0; d < r; d++) xstr[d] = prod(x, d + 1, r);
    int64_t n = kiln__value_numel(idx);
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0, v = 0;
        for (int d = 0; d < r; d++)
            if (d != axis) off += coord[d] * xstr[d];
        st = wrap_index(node, kiln__value_get_i64(idx, i), axis, dimv(x, axis), &v, err);
        if (st) return st;
        combine(&out[0], off + v * xstr[axis], upd, i, red, es);
        for (int d = r - 1; d >= 0; d--) {
            if (++coord[d] < dimv(idx, d)) break;
            coord[d] = 0;
        }
    }
    return KILN_OK;
}

/* ---- OneHot --------------------------------------------------------------- */

static kiln_status run_onehot(const kiln_node *node, const void *params,
                              const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    const kiln_value *ind = in[0], *vals = in[2];
    size_t es;
    kiln_status st = esize(node, vals->dtype, &es, err);
    if (st) return st;
    if (kiln__value_numel(vals) != 2)
        FAIL(KILN_ERR_SHAPE, "node '%s' (OneHot): values must hold 2 elements", node->name);
    int r = ind->shape.rank;
    int axis = (int)norm_axis(kiln__attr_int(node, "axis", -1), r + 1);
    int64_t D = dimv(&out[0], axis), outer = prod(ind, 0, axis), inner = prod(ind, axis, r);
    int64_t total = kiln__value_numel(&out[0]);
    for (int64_t i = 0; i < total; i++) memcpy(at(&out[0], i, es), at(vals, 0, es), es);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t v = kiln__value_get_i64(ind, o * inner + i);
            /* Out-of-range indices give an all-off row, as the spec says. */
            if (v < 0) v += D;
            if (v >= 0 && v < D) memcpy(at(&out[0], (o * D + v) * inner + i, es), at(vals, 1, es), es);
        }
    return KILN_OK;
}

/* ---- CumSum --------------------------------------------------------------- */

static kiln_status run_cumsum(const kiln_node *node, const void *params,
                              const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    const kiln_value *x = in[0];
    int r = x->shape.rank;
    int64_t a = kiln__value_get_i64(in[1], 0);
    if (a < -r || a >= r)
        FAIL(KILN_ERR_SHAPE, "node '%s' (CumSum): axis %lld out of range for rank %d", node->name,
             (long long)a, r);
    int axis = (int)norm_axis(a, r);
    bool excl = kiln__attr_int(node, "exclusive", 0) != 0, rev = kiln__attr_int(node, "reverse", 0) != 0;
    int64_t outer = prod(x, 0, axis), len = dimv(x, axis), inner = prod(x, axis + 1, r);
    kiln_dtype dt = x->dtype;
    kiln_value *y = &out[0];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            float af = 0;
            double ad = 0;
            uint64_t ai = 0;
            for (int64_t t = 0; t < len; t++) {
                int64_t p = (o * len + (rev ? len - 1 - t : t)) * inner + i;
                if (dt == KILN_DT_FLOAT) {
                    float v = ((const float *)x->data)[p];
                    if (!excl) af += v;
                    ((float *)y->data)[p] = af;
                    if (excl) af += v;
                } else if (dt == KILN_DT_DOUBLE) {
                    double v = ((const double *)x->data)[p];
                    if (!excl) ad += v;
                    ((double *)y->data)[p] = ad;
                    if (excl) ad += v;
                } else if (is_float(dt)) {
                    float v = (float)kiln__value_get_f64(x, p);
                    if (!excl) af += v;
                    kiln__value_set_f64(y, p, af);
                    if (excl) af += v;
                } else {
                    uint64_t v = (uint64_t)kiln__value_get_i64(x, p);
                    if (!excl) ai += v;
                    kiln__value_set_i64(y, p, (int64_t)ai);
                    if (excl) ai += v;
                }
            }
        }
    return KILN_OK;
}

/* ---- TopK ----------------------------------------------------------------- */

/* Sort keys of one line: floats as double, uint64 apart so no value loses precision. */
typedef struct topk_line {
    int kind; /* 0 double, 1 int64, 2 uint64 */
    bool largest;
    double *f;
    int64_t *i;
    uint64_t *u;
} topk_line;

/* Whether element a ranks strictly above element b; NaN ranks above every number. */
static bool ranks_above(const topk_line *L, int64_t a, int64_t b)
{
    if (!L->largest) {
        int64_t t = a;
        a = b;
        b = t;
    }
    if (L->kind == 0) {
        double x = L->f[a], y = L->f[b];
        if (isnan(x)) return !isnan(y);
        if (isnan(y)) return false;
        return x > y;
    }
    if (L->kind == 1) return L->i[a] > L->i[b];
    return L->u[a] > L->u[b];
}

/* Stable bottom-up merge sort of perm[0..n) (ties keep the lower index first). */
static void sort_perm(const topk_line *L, int64_t *perm, int64_t *tmp, int64_t n)
{
    for (int64_t w = 1; w < n; w *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * w) {
            int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int64_t i = lo, j = mid, o = lo;
            while (i < mid && j < hi) tmp[o++] = ranks_above(L, perm[j], perm[i]) ? perm[j++] : perm[i++];
            while (i < mid) tmp[o++] = perm[i++];
            while (j < hi) tmp[o++] = perm[j++];
        }
        memcpy(perm, tmp, sizeof(int64_t) * (size_t)n);
    }
}

static kiln_status run_topk(const kiln_node *node, const void *params,
                            const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    const kiln_value *x = in[0];
    size_t es;
    kiln_status st = esize(node, x->dtype, &es, err);
    if (st) return st;
    int r = x->shape.rank;
    int axis = (int)norm_axis(kiln__attr_int(node, "axis", -1), r);
    int64_t n = dimv(x, axis), k = dimv(&out[0], axis);
    int64_t outer = prod(x, 0, axis), inner = prod(x, axis + 1, r);
    if (k > n) FAIL(KILN_ERR_INTERNAL, "node '%s' (TopK): k %lld > %lld", node->name, (long long)k, (long long)n);
    if (k == 0 || outer * inner == 0) return KILN_OK;
    topk_line L = {.largest = kiln__attr_int(node, "largest", 1) != 0};
    L.kind = is_float(x->dtype) ? 0 : x->dtype == KILN_DT_UINT64 ? 2 : 1;
    /* One buffer: keys (8 bytes each, whichever kind), perm, tmp. */
    int64_t *buf = kiln__calloc((size_t)n * 3, sizeof(int64_t));
    if (!buf) FAIL(KILN_ERR_OUT_OF_MEMORY, "node '%s' (TopK): out of memory", node->name);
    L.f = (double *)(void *)buf;
    L.i = buf;
    L.u = (uint64_t *)(void *)buf;
    int64_t *perm = buf + n, *tmp = buf + 2 * n;
    bool has_idx = node->n_out > 1;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            for (int64_t t = 0; t < n; t++) {
                int64_t p = (o * n + t) * inner + i;
                if (L.kind == 0) L.f[t] = kiln__value_get_f64(x, p);
                else if (L.kind == 1) L.i[t] = kiln__value_get_i64(x, p);
                else L.u[t] = ((const uint64_t *)x->data)[p];
                perm[t] = t;
            }
            sort_perm(&L, perm, tmp, n);
            for (int64_t t = 0; t < k; t++) {
                int64_t q = (o * k + t) * inner + i;
                memcpy(at(&out[0], q, es), at(x, (o * n + perm[t]) * inner + i, es), es);
                if (has_idx) ((int64_t *)out[1].data)[q] = perm[t];
            }
        }
    free(buf);
    return KILN_OK;
}

/* ---- Trilu ---------------------------------------------------------------- */

static kiln_status run_trilu(const kiln_node *node, const void *params,
                             const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    const kiln_value *x = in[0];
    size_t es;
    kiln_status st = esize(node, x->dtype, &es, err);
    if (st) return st;
    int r = x->shape.rank;
    int64_t rows = dimv(x, r - 2), cols = dimv(x, r - 1), mats = prod(x, 0, r - 2);
    int64_t k = node->n_in >= 2 && in[1] ? kiln__value_get_i64(in[1], 0) : 0;
    /* Clamped so that i + k below cannot overflow; the result is the same. */
    if (k > cols + 1) k = cols + 1;
    if (k < -rows - 1) k = -rows - 1;
    bool upper = kiln__attr_int(node, "upper", 1) != 0;
    for (int64_t m = 0; m < mats; m++)
        for (int64_t i = 0; i < rows; i++) {
            /* Kept columns: j - i >= k (upper) or j - i <= k (lower). */
            int64_t lo = upper ? i + k : 0, hi = upper ? cols : i + k + 1;
            if (lo < 0) lo = 0;
            if (hi > cols) hi = cols;
            if (hi <= lo) continue;
            int64_t base = (m * rows + i) * cols;
            memcpy(at(&out[0], base + lo, es), at(x, base + lo, es), (size_t)(hi - lo) * es);
        }
    return KILN_OK;
}

/* ---- NonZero -------------------------------------------------------------- */

static kiln_status run_nonzero(const kiln_node *node, const void *params,
                               const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    const kiln_value *x = in[0];
    int r = x->shape.rank;
    int rr = r ? r : 1;
    int64_t nnz = dimv(&out[0], 1), n = kiln__value_numel(x), c = 0;
    if (dimv(&out[0], 0) != rr || kiln__indexing_count_nonzero(x) != nnz)
        FAIL(KILN_ERR_INTERNAL, "node '%s' (NonZero): output size", node->name);
    bool fl = is_float(x->dtype);
    int64_t *o = out[0].data, coord[KILN_MAX_DIMS] = {0};
    for (int64_t i = 0; i < n; i++) {
        bool nz = fl ? kiln__value_get_f64(x, i) != 0 : kiln__value_get_i64(x, i) != 0;
        if (nz) {
            for (int d = 0; d < rr; d++) o[d * nnz + c] = coord[d];
            c++;
        }
        for (int d = r - 1; d >= 0; d--) {
            if (++coord[d] < dimv(x, d)) break;
            coord[d] = 0;
        }
    }
    return KILN_OK;
}

/* ---- Compress ------------------------------------------------------------- */

static kiln_status run_compress(const kiln_node *node, const void *params,
                                const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    const kiln_value *x = in[0], *cond = in[1];
    size_t es;
    kiln_status st = esize(node, x->dtype, &es, err);
    if (st) return st;
    int r = x->shape.rank;
    bool has_axis = kiln__node_attr(node, "axis") != NULL;
    int axis = has_axis ? (int)norm_axis(kiln__attr_int(node, "axis", 0), r) : 0;
    int64_t outer = has_axis ? prod(x, 0, axis) : 1;
    int64_t len = has_axis ? dimv(x, axis) : kiln__value_numel(x);
    int64_t inner = has_axis ? prod(x, axis + 1, r) : 1;
    int64_t sel = dimv(&out[0], has_axis ? axis : 0), nc = kiln__value_numel(cond);
    if (kiln__indexing_count_true(cond, len) != sel)
        FAIL(KILN_ERR_INTERNAL, "node '%s' (Compress): output size", node->name);
    if (nc > len) nc = len;
    for (int64_t o = 0; o < outer; o++) {
        int64_t c = 0;
        for (int64_t j = 0; j < nc; j++) {
            if (!kiln__value_get_i64(cond, j)) continue;
            if (inner)
                memcpy(at(&out[0], (o * sel + c) * inner, es), at(x, (o * len + j) * inner, es),
                       (size_t)inner * es);
            c++;
        }
    }
    return KILN_OK;
}

/* ---- Einsum --------------------------------------------------------------- */

/* Same layout as in src/ir/ops_indexing.c; kiln__einsum_plan_size guards drift. */
#define EINSUM_MAX_IN 8
#define EINSUM_LABELS (52 + KILN_MAX_DIMS)
typedef struct einsum_plan {
    int n_in;
    int rank[EINSUM_MAX_IN];
    int8_t lab[EINSUM_MAX_IN][KILN_MAX_DIMS];
    int out_rank;
    int8_t out_lab[KILN_MAX_DIMS];
    bool used[EINSUM_LABELS];
    kiln_dim size[EINSUM_LABELS];
} einsum_plan;

extern const size_t kiln__einsum_plan_size;
kiln_status kiln__einsum_plan(const kiln_node *node, const kiln_value *const *in, einsum_plan *p,
                              kiln_err *err);

/* Products visited past this many are refused: the naive loop would not finish. */
#define EINSUM_MAX_STEPS ((int64_t)1 << 36)

/*
 * Naive contraction: an odometer over the output labels then the summed
 * labels; each operand's offset moves by its stride for the label (the sum
 * of its dims carrying it, so repeated labels take diagonals; 0 where the dim
 * is a broadcast 1). Floats accumulate in double, integers wrap in uint64.
 */
static kiln_status run_einsum(const kiln_node *node, const void *params,
                              const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    einsum_plan p;
    if (kiln__einsum_plan_size != sizeof p)
        FAIL(KILN_ERR_INTERNAL, "node '%s' (Einsum): plan layout", node->name);
    kiln_status st = kiln__einsum_plan(node, in, &p, err);
    if (st) return st;
    int lab[EINSUM_LABELS], nl = 0;
    bool in_out[EINSUM_LABELS] = {false};
    for (int j = 0; j < p.out_rank; j++) {
        lab[nl++] = p.out_lab[j];
        in_out[p.out_lab[j]] = true;
    }
    int n_outer = nl;
    for (int l = 0; l < EINSUM_LABELS; l++)
        if (p.used[l] && !in_out[l]) lab[nl++] = l;
    int64_t size[EINSUM_LABELS], str[EINSUM_MAX_IN][EINSUM_LABELS], ostr[EINSUM_LABELS];
    int64_t steps = 1;
    for (int a = 0; a < nl; a++) {
        size[a] = p.size[lab[a]].add;
        if (size[a] == 0) steps = 0;
        else if (steps && __builtin_mul_overflow(steps, size[a], &steps)) steps = INT64_MAX;
    }
    if (steps > EINSUM_MAX_STEPS)
        FAIL(KILN_ERR_LIMIT, "node '%s' (Einsum): %lld multiply-adds, over the limit of %lld",
             node->name, (long long)steps, (long long)EINSUM_MAX_STEPS);
    for (int i = 0; i < p.n_in; i++)
        for (int a = 0; a < nl; a++) {
            str[i][a] = 0;
            for (int d = 0; d < p.rank[i]; d++)
                if (p.lab[i][d] == lab[a] && dimv(in[i], d) != 1) str[i][a] += prod(in[i], d + 1, p.rank[i]);
        }
    for (int a = 0; a < nl; a++) ostr[a] = a < n_outer ? prod(&out[0], a + 1, n_outer) : 0;
    int64_t on = kiln__value_numel(&out[0]);
    if (steps == 0 || on == 0) return KILN_OK; /* a summed label of size 0 leaves zeros */
    kiln_dtype dt = out[0].dtype;
    bool fl = is_float(dt), all_f32 = dt == KILN_DT_FLOAT;
    double *accf = fl ? kiln__calloc((size_t)on, sizeof(double)) : NULL;
    uint64_t *acci = fl ? NULL : kiln__calloc((size_t)on, sizeof(uint64_t));
    if (!accf && !acci) FAIL(KILN_ERR_OUT_OF_MEMORY, "node '%s' (Einsum): out of memory", node->name);
    int64_t coord[EINSUM_LABELS] = {0}, off[EINSUM_MAX_IN] = {0}, o = 0;
    for (int64_t s = 0; s < steps; s++) {
        if (all_f32) {
            double v = 1;
            for (int i = 0; i < p.n_in; i++) v *= ((const float *)in[i]->data)[off[i]];
            accf[o] += v;
        } else if (fl) {
            double v = 1;
            for (int i = 0; i < p.n_in; i++) v *= kiln__value_get_f64(in[i], off[i]);
            accf[o] += v;
        } else {
            uint64_t v = 1;
            for (int i = 0; i < p.n_in; i++) v *= (uint64_t)kiln__value_get_i64(in[i], off[i]);
            acci[o] += v;
        }
        for (int a = nl - 1; a >= 0; a--) {
            for (int i = 0; i < p.n_in; i++) off[i] += str[i][a];
            o += ostr[a];
            if (++coord[a] < size[a]) break;
            for (int i = 0; i < p.n_in; i++) off[i] -= str[i][a] * size[a];
            o -= ostr[a] * size[a];
            coord[a] = 0;
        }
    }
    for (int64_t i = 0; i < on; i++) {
        if (fl) kiln__value_set_f64(&out[0], i, accf[i]);
        else kiln__value_set_i64(&out[0], i, (int64_t)acci[i]);
    }
    free(accf);
    free(acci);
    return KILN_OK;
}

const kiln_cpu_kernel kiln__cpu_indexing[] = {
    {"GatherND", "", run_gathernd},
    {"ScatterND", "", run_scatternd},
    {"ScatterElements", "", run_scatter_elements},
    {"Scatter", "", run_scatter_elements},
    {"OneHot", "", run_onehot},
    {"CumSum", "", run_cumsum},
    {"TopK", "", run_topk},
    {"Trilu", "", run_trilu},
    {"NonZero", "", run_nonzero},
    {"Compress", "", run_compress},
    {"Einsum", "", run_einsum},
    {0},
};
