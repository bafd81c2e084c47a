/*
 * CPU reference kernels of the matmul family: MatMul and Gemm.
 * float runs through kiln__sgemm, double through kiln__dgemm, float16 and
 * bfloat16 through float copies; integers are multiplied exactly (wrapping).
 */
#include "cpu_ops_util.h"
#include "cpu_gemm.h"
#include "../ir/ops_matmul.h"
#include <stdlib.h>
#include <string.h>

static int64_t dimv(const kiln_value *v, int i) { return v->shape.d[i].add; }

static bool is_half(kiln_dtype dt) { return dt == KILN_DT_FLOAT16 || dt == KILN_DT_BFLOAT16; }

static kiln_status oom(const kiln_node *node, kiln_err *err)
{
    return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s' (%s): out of memory", node->name, node->op_type);
}

/* Y[y_off] (m x n) = A[a_off] (m x k) * B[b_off] (k x n), integers with wrap-around. */
static void int_matmul(const kiln_value *a, int64_t a_off, const kiln_value *b, int64_t b_off, kiln_value *y,
                       int64_t y_off, int64_t m, int64_t n, int64_t k)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            uint64_t acc = 0;
            for (int64_t p = 0; p < k; p++)
                acc += (uint64_t)kiln__value_get_i64(a, a_off + i * k + p) *
                       (uint64_t)kiln__value_get_i64(b, b_off + p * n + j);
            kiln__value_set_i64(y, y_off + i * n + j, (int64_t)acc);
        }
}

typedef struct mm_shape {
    int64_t m, n, k, batches;
    int nb;                       /* batch dims of the output */
    int64_t ob[KILN_MAX_DIMS];    /* output batch dims */
    int64_t sa[KILN_MAX_DIMS];    /* A's stride per batch dim, in matrices (0: broadcast) */
    int64_t sb[KILN_MAX_DIMS];
    bool fold;                    /* B shared by all batches and A not broadcast: one tall GEMM */
} mm_shape;

static void mm_shape_init(const kiln_value *a, const kiln_value *b, const kiln_value *y, mm_shape *s)
{
    int ra = a->shape.rank, rb = b->shape.rank;
    memset(s, 0, sizeof *s);
    s->m = ra > 1 ? dimv(a, ra - 2) : 1;
    s->k = dimv(a, ra - 1);
    s->n = rb > 1 ? dimv(b, rb - 1) : 1;
    s->nb = y->shape.rank - (ra > 1) - (rb > 1);
    int ba = ra > 2 ? ra - 2 : 0, bb = rb > 2 ? rb - 2 : 0;
    int64_t accum_a = 1, accum_b = 1;
    bool a_full = true, b_shared = true;
    s->batches = 1;
    for (int i = s->nb - 1; i >= 0; i--) {
        int ia = i - (s->nb - ba), ib = i - (s->nb - bb);
        int64_t da = ia >= 0 ? dimv(a, ia) : 1, db = ib >= 0 ? dimv(b, ib) : 1;
        s->ob[i] = dimv(y, i);
        s->sa[i] = da == 1 ? 0 : accum_a;
        s->sb[i] = db == 1 ? 0 : accum_b;
        if (da != s->ob[i]) a_full = false;
        if (db != 1) b_shared = false;
        accum_a *= da;
        accum_b *= db;
        s->batches *= s->ob[i];
    }
    s->fold = a_full && b_shared;
}

/* Matrix offsets (in elements) of batch `bi` in A and B. */
static void mm_offsets(const mm_shape *s, int64_t bi, int64_t *ao, int64_t *bo)
{
    int64_t a = 0, b = 0;
    for (int i = s->nb - 1; i >= 0; i--) {
        int64_t idx = bi % s->ob[i];
        bi /= s->ob[i];
        a += idx * s->sa[i];
        b += idx * s->sb[i];
    }
    *ao = a * s->m * s->k;
    *bo = b * s->k * s->n;
}

static kiln_status matmul_run(const kiln_node *node, const void *params, const kiln_value *const *in,
                              kiln_value *out, kiln_err *err)
{
    const kiln_value *a = in[0], *b = in[1];
    kiln_value *y = &out[0];
    mm_shape s;
    mm_shape_init(a, b, y, &s);
    if (kiln__value_numel(y) == 0) return KILN_OK;
    kiln_dtype dt = a->dtype;
    if (dt == KILN_DT_DOUBLE) {
        const double *pa = a->data, *pb = b->data;
        double *py = y->data;
        if (s.fold)
            return kiln__dgemm(false, false, s.batches * s.m, s.n, s.k, 1, pa, s.k, pb, s.n, 0, py, s.n)
                       ? KILN_OK
                       : oom(node, err);
        for (int64_t bi = 0; bi < s.batches; bi++) {
            int64_t ao, bo;
            mm_offsets(&s, bi, &ao, &bo);
            if (!kiln__dgemm(false, false, s.m, s.n, s.k, 1, pa + ao, s.k, pb + bo, s.n, 0, py + bi * s.m * s.n, s.n))
                return oom(node, err);
        }
        return KILN_OK;
    }
    if (dt == KILN_DT_FLOAT || is_half(dt)) {
        bool half = is_half(dt);
        float *ha = NULL, *hb = NULL, *hy = NULL;
        if (half && (!(ha = kiln__cpu_half_to_f32(a)) || !(hb = kiln__cpu_half_to_f32(b)) ||
                     !(hy = kiln__malloc((size_t)kiln__value_numel(y) * sizeof *hy)))) {
            free(ha);
            free(hb);
            return oom(node, err);
        }
        const float *pa = half ? ha : a->data, *pb = half ? hb : b->data;
        float *py = half ? hy : y->data;
        bool ok = true;
        if (s.fold) {
            ok = kiln__sgemm(false, false, s.batches * s.m, s.n, s.k, 1, pa, s.k, pb, s.n, 0, py, s.n);
        } else {
            for (int64_t bi = 0; bi < s.batches && ok; bi++) {
                int64_t ao, bo;
                mm_offsets(&s, bi, &ao, &bo);
                ok = kiln__sgemm(false, false, s.m, s.n, s.k, 1, pa + ao, s.k, pb + bo, s.n, 0, py + bi * s.m * s.n, s.n);
            }
        }
        if (ok && half) kiln__cpu_f32_to_half(y, hy);
        free(ha);
        free(hb);
        free(hy);
        return ok ? KILN_OK : oom(node, err);
    }
    for (int64_t bi = 0; bi < s.batches; bi++) {
        int64_t ao, bo;
        mm_offsets(&s, bi, &ao, &bo);
        int_matmul(a, ao, b, bo, y, bi * s.m * s.n, s.m, s.n, s.k);
    }
    return KILN_OK;
}

/* Gemm's C, broadcast one way to (m, n): element (i, j). */
static int64_t c_index(const kiln_value *c, int64_t i, int64_t j)
{
    int r = c->shape.rank;
    int64_t rows = r == 2 ? dimv(c, 0) : 1, cols = r >= 1 ? dimv(c, r - 1) : 1;
    return (rows == 1 ? 0 : i) * cols + (cols == 1 ? 0 : j);
}

static kiln_status gemm_run(const kiln_node *node, const void *params, const kiln_value *const *in,
                            kiln_value *out, kiln_err *err)
{
    const kiln_value *a = in[0], *b = in[1], *c = node->n_in > 2 ? in[2] : NULL;
    kiln_value *y = &out[0];
    const kiln_gemm_params *gp = params;
    bool ta = gp->trans_a, tb = gp->trans_b;
    float alpha = gp->alpha, beta = gp->beta;
    int64_t m = dimv(y, 0), n = dimv(y, 1), k = dimv(a, ta ? 0 : 1);
    int64_t lda = dimv(a, 1), ldb = dimv(b, 1);
    kiln_dtype dt = a->dtype;
    if (m == 0 || n == 0) return KILN_OK;
    if (dt == KILN_DT_DOUBLE) {
        double *py = y->data;
        if (c)
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++)
                    py[i * n + j] = (double)beta * ((const double *)c->data)[c_index(c, i, j)];
        return kiln__dgemm(ta, tb, m, n, k, alpha, a->data, lda, b->data, ldb, c ? 1 : 0, py, n) ? KILN_OK
                                                                                                : oom(node, err);
    }
    if (dt == KILN_DT_FLOAT || is_half(dt)) {
        bool half = is_half(dt);
        float *ha = NULL, *hb = NULL, *hc = NULL, *hy = NULL;
        if (half && (!(ha = kiln__cpu_half_to_f32(a)) || !(hb = kiln__cpu_half_to_f32(b)) ||
                     (c && !(hc = kiln__cpu_half_to_f32(c))) ||
                     !(hy = kiln__malloc((size_t)(m * n) * sizeof *hy)))) {
            free(ha);
            free(hb);
            free(hc);
            return oom(node, err);
        }
        const float *pa = half ? ha : a->data, *pb = half ? hb : b->data, *pc = c ? (half ? hc : c->data) : NULL;
        float *py = half ? hy : y->data;
        if (c)
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) py[i * n + j] = beta * pc[c_index(c, i, j)];
        bool ok = kiln__sgemm(ta, tb, m, n, k, alpha, pa, lda, pb, ldb, c ? 1.0f : 0.0f, py, n);
        if (ok && half) kiln__cpu_f32_to_half(y, hy);
        free(ha);
        free(hb);
        free(hc);
        free(hy);
        return ok ? KILN_OK : oom(node, err);
    }
    /* Integers: exact products; alpha/beta other than 1 go through double as the reference does. */
    bool exact = alpha == 1.0f && beta == 1.0f;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            uint64_t acc = 0;
            for (int64_t p = 0; p < k; p++)
                acc += (uint64_t)kiln__value_get_i64(a, ta ? p * lda + i : i * lda + p) *
                       (uint64_t)kiln__value_get_i64(b, tb ? j * ldb + p : p * ldb + j);
            if (exact) {
                if (c) acc += (uint64_t)kiln__value_get_i64(c, c_index(c, i, j));
                kiln__value_set_i64(y, i * n + j, (int64_t)acc);
            } else {
                double v = (double)alpha * (double)(int64_t)acc;
                if (c) v += (double)beta * kiln__value_get_f64(c, c_index(c, i, j));
                kiln__value_set_f64(y, i * n + j, v);
            }
        }
    return KILN_OK;
}

const kiln_cpu_kernel kiln__cpu_matmul[] = {
    {"MatMul", "", matmul_run},
    {"Gemm", "", gemm_run},
    {0},
};
