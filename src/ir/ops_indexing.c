/*
 * Op schemas of the indexing family: GatherND, ScatterND, ScatterElements
 * (and the older Scatter), OneHot, CumSum, TopK, Trilu, NonZero, Compress,
 * Einsum.
 *
 * Shapes that depend on data (NonZero, Compress, OneHot's depth, TopK's k)
 * are exact whenever the deciding input has data, which is always the case at
 * run time; statically they stay unknown. Index *values* of GatherND/Scatter*
 * are range-checked by the kernels, which read them anyway.
 */
#include "ir.h"
#include <string.h>

#define FAIL(st, ...) return kiln__fail(err, st, __VA_ARGS__)

/* Defined in src/ir/ops_shape.c. */
void kiln__ops_clear_symval(const kiln_node *node, kiln_value *out);
kiln_status kiln__ops_check_numel(const kiln_node *node, const kiln_shape *s, kiln_err *err);
kiln_status kiln__ops_norm_axis(const kiln_node *node, int64_t axis, int rank, int64_t *out,
                                kiln_err *err);

/* Shared with src/cpu/cpu_indexing.c, which repeats these prototypes. */
int kiln__indexing_reduction(const kiln_node *node);
int64_t kiln__indexing_count_true(const kiln_value *cond, int64_t limit);
int64_t kiln__indexing_count_nonzero(const kiln_value *x);

/* Value of a dim when constant, else -1. */
static int64_t cdim(const kiln_value *v, int i)
{
    if (v->shape.rank <= i || !kiln__dim_is_const(v->shape.d[i])) return -1;
    return v->shape.d[i].add;
}

static bool is_index_dtype(kiln_dtype dt)
{
    return dt == KILN_DT_INT64 || dt == KILN_DT_INT32 || dt == KILN_DT_UNDEFINED;
}

static bool is_numeric(kiln_dtype dt)
{
    return dt != KILN_DT_STRING && dt != KILN_DT_BOOL && dt != KILN_DT_COMPLEX64 &&
           dt != KILN_DT_COMPLEX128;
}

static kiln_status expect_index(const kiln_node *node, const kiln_value *v, const char *what,
                                kiln_err *err)
{
    if (!is_index_dtype(v->dtype))
        FAIL(KILN_ERR_DTYPE, "node '%s' (%s): %s must be int64 or int32, got %s", node->name,
             node->op_type, what, kiln_dtype_name(v->dtype));
    return KILN_OK;
}

/* Two dims that must agree: fails only when both are constant and differ. */
static kiln_status expect_same_dim(const kiln_node *node, kiln_dim a, kiln_dim b, const char *what,
                                   int i, kiln_err *err)
{
    if (kiln__dim_is_const(a) && kiln__dim_is_const(b) && a.add != b.add)
        FAIL(KILN_ERR_SHAPE, "node '%s' (%s): %s dim %d is %lld, expected %lld", node->name,
             node->op_type, what, i, (long long)a.add, (long long)b.add);
    return KILN_OK;
}

/* The constant of two dims that must agree (either one when neither is constant). */
static kiln_dim pick_dim(kiln_dim a, kiln_dim b)
{
    return kiln__dim_is_const(a) || b.sym == KILN_SYM_UNKNOWN ? a : b;
}

/*
 * A scalar input (rank 0, or rank 1 with one element): its value when known
 * (data, or a constant symval), else *known = false. *sym gets a symbolic
 * value when only that is known (sym->sym >= 0).
 */
static kiln_status read_scalar(const kiln_node *node, const kiln_value *v, const char *what,
                               int64_t *val, bool *known, kiln_dim *sym, kiln_err *err)
{
    *known = false;
    if (sym) *sym = kiln__dim_unknown();
    int64_t n = kiln__shape_numel(&v->shape);
    if (v->shape.rank > 1 || (n >= 0 && n != 1))
        FAIL(KILN_ERR_SHAPE, "node '%s' (%s): %s must hold exactly one value", node->name,
             node->op_type, what);
    if (v->data && n == 1) {
        *val = kiln__value_get_i64(v, 0);
        *known = true;
    } else if (v->symval_n == 1) {
        if (kiln__dim_is_const(v->symval[0])) {
            *val = v->symval[0].add;
            *known = true;
        } else if (sym) {
            *sym = v->symval[0];
        }
    }
    return KILN_OK;
}

static kiln_status reduction_parse(const kiln_node *node, kiln_err *err)
{
    kiln_status st = kiln__attr_expect(node, "reduction", KILN_ATTR_STRING, err);
    if (st) return st;
    if (kiln__indexing_reduction(node) < 0)
        FAIL(KILN_ERR_UNSUPPORTED,
             "node '%s' (%s): reduction '%s' unsupported (none, add, mul, max, min)", node->name,
             node->op_type, kiln__attr_string(node, "reduction", ""));
    return KILN_OK;
}

/* 0 none, 1 add, 2 mul, 3 max, 4 min; -1 unknown. */
int kiln__indexing_reduction(const kiln_node *node)
{
    static const char *const names[] = {"none", "add", "mul", "max", "min"};
    const char *r = kiln__attr_string(node, "reduction", "none");
    if (!r) return -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(r, names[i])) return i;
    return -1;
}

/* ---- GatherND ------------------------------------------------------------- */

static kiln_status gathernd_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_status st = kiln__attr_expect(node, "batch_dims", KILN_ATTR_INT, err);
    if (st) return st;
    int64_t b = kiln__attr_int(node, "batch_dims", 0);
    if (b < 0 || b >= KILN_MAX_DIMS)
        FAIL(KILN_ERR_INVALID_ARG, "node '%s' (GatherND): batch_dims is %lld", node->name,
             (long long)b);
    return KILN_OK;
}

static kiln_status gathernd_infer(const kiln_node *node, const void *params,
                                  const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0], *idx = in[1];
    kiln_status st = expect_index(node, idx, "indices", err);
    if (st) return st;
    int b = (int)kiln__attr_int(node, "batch_dims", 0);
    int r = x->shape.rank, q = idx->shape.rank;
    if (r == 0 || q == 0)
        FAIL(KILN_ERR_SHAPE, "node '%s' (GatherND): data and indices need rank >= 1, got %d and %d",
             node->name, r, q);
    if ((r >= 0 && b >= r) || (q >= 0 && b >= q))
        FAIL(KILN_ERR_SHAPE, "node '%s' (GatherND): batch_dims %d must be below both ranks (%d, %d)",
             node->name, b, r, q);
    kiln_shape s = {.rank = -1};
    if (r >= 0 && q >= 0) {
        for (int i = 0; i < b; i++) {
            st = expect_same_dim(node, idx->shape.d[i], x->shape.d[i], "indices batch", i, err);
            if (st) return st;
        }
        int64_t k = cdim(idx, q - 1);
        if (k >= 0) {
            if (k < 1 || k > r - b)
                FAIL(KILN_ERR_SHAPE,
                     "node '%s' (GatherND): indices' last dim is %lld, must be in [1, %d]",
                     node->name, (long long)k, r - b);
            int orank = q - 1 + r - b - (int)k;
            if (orank > KILN_MAX_DIMS)
                FAIL(KILN_ERR_LIMIT, "node '%s' (GatherND): output rank %d, at most %d supported",
                     node->name, orank, KILN_MAX_DIMS);
            s.rank = 0;
            for (int i = 0; i < q - 1; i++)
                s.d[s.rank++] = i < b ? pick_dim(idx->shape.d[i], x->shape.d[i]) : idx->shape.d[i];
            for (int i = b + (int)k; i < r; i++) s.d[s.rank++] = x->shape.d[i];
        }
    }
    kiln__value_set_type(&out[0], x->dtype, &s);
    return KILN_OK;
}

/* ---- ScatterND ------------------------------------------------------------ */

static kiln_status scatter_parse(const kiln_node *node, void *params, kiln_err *err)
{
    return reduction_parse(node, err);
}

static kiln_status expect_updates_type(const kiln_node *node, const kiln_value *x,
                                       const kiln_value *upd, kiln_err *err)
{
    if (x->dtype && upd->dtype && x->dtype != upd->dtype)
        FAIL(KILN_ERR_DTYPE, "node '%s' (%s): updates are %s, data is %s", node->name,
             node->op_type, kiln_dtype_name(upd->dtype), kiln_dtype_name(x->dtype));
    return KILN_OK;
}

static kiln_status scatternd_infer(const kiln_node *node, const void *params,
                                   const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0], *idx = in[1], *upd = in[2];
    kiln_status st = expect_index(node, idx, "indices", err);
    if (!st) st = expect_updates_type(node, x, upd, err);
    if (st) return st;
    int r = x->shape.rank, q = idx->shape.rank, u = upd->shape.rank;
    if (r == 0 || q == 0)
        FAIL(KILN_ERR_SHAPE, "node '%s' (ScatterND): data and indices need rank >= 1, got %d and %d",
             node->name, r, q);
    int64_t k = q > 0 ? cdim(idx, q - 1) : -1;
    if (r > 0 && k > r)
        FAIL(KILN_ERR_SHAPE, "node '%s' (ScatterND): indices' last dim is %lld, data has rank %d",
             node->name, (long long)k, r);
    if (r > 0 && q > 0 && k >= 0 && u >= 0) {
        if (u != q - 1 + r - (int)k)
            FAIL(KILN_ERR_SHAPE, "node '%s' (ScatterND): updates have rank %d, expected %d",
                 node->name, u, q - 1 + r - (int)k);
        for (int i = 0; i < q - 1; i++) {
            st = expect_same_dim(node, upd->shape.d[i], idx->shape.d[i], "updates", i, err);
            if (st) return st;
        }
        for (int i = q - 1; i < u; i++) {
            st = expect_same_dim(node, upd->shape.d[i], x->shape.d[(int)k + i - (q - 1)],
                                 "updates", i, err);
            if (st) return st;
        }
    }
    kiln__value_set_type(&out[0], x->dtype, &x->shape);
    return KILN_OK;
}

/* ---- ScatterElements / Scatter -------------------------------------------- */

static kiln_status scatter_elements_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_status st = kiln__attr_expect(node, "axis", KILN_ATTR_INT, err);
    if (!st) st = reduction_parse(node, err);
    return st;
}

static kiln_status scatter_elements_infer(const kiln_node *node, const void *params,
                                          const kiln_value *const *in, kiln_value *out,
                                          kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0], *idx = in[1], *upd = in[2];
    kiln_status st = expect_index(node, idx, "indices", err);
    if (!st) st = expect_updates_type(node, x, upd, err);
    if (st) return st;
    int r = x->shape.rank;
    if (r == 0) FAIL(KILN_ERR_SHAPE, "node '%s' (%s): data must have rank >= 1", node->name, node->op_type);
    if (r > 0) {
        int64_t axis;
        st = kiln__ops_norm_axis(node, kiln__attr_int(node, "axis", 0), r, &axis, err);
        if (st) return st;
        if (idx->shape.rank >= 0 && idx->shape.rank != r)
            FAIL(KILN_ERR_SHAPE, "node '%s' (%s): indices have rank %d, data has rank %d",
                 node->name, node->op_type, idx->shape.rank, r);
        if (idx->shape.rank == r)
            for (int i = 0; i < r; i++) {
                int64_t di = cdim(idx, i), dx = cdim(x, i);
                if (i != axis && di >= 0 && dx >= 0 && di > dx)
                    FAIL(KILN_ERR_SHAPE, "node '%s' (%s): indices dim %d is %lld, data's is %lld",
                         node->name, node->op_type, i, (long long)di, (long long)dx);
            }
    }
    if (idx->shape.rank >= 0 && upd->shape.rank >= 0) {
        if (idx->shape.rank != upd->shape.rank)
            FAIL(KILN_ERR_SHAPE, "node '%s' (%s): updates have rank %d, indices have rank %d",
                 node->name, node->op_type, upd->shape.rank, idx->shape.rank);
        for (int i = 0; i < idx->shape.rank; i++) {
            st = expect_same_dim(node, upd->shape.d[i], idx->shape.d[i], "updates", i, err);
            if (st) return st;
        }
    }
    kiln__value_set_type(&out[0], x->dtype, &x->shape);
    return KILN_OK;
}

/* ---- OneHot --------------------------------------------------------------- */

static kiln_status axis_parse(const kiln_node *node, void *params, kiln_err *err)
{
    return kiln__attr_expect(node, "axis", KILN_ATTR_INT, err);
}

static kiln_status onehot_infer(const kiln_node *node, const void *params,
                                const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *ind = in[0], *depth = in[1], *vals = in[2];
    if (ind->dtype && !is_numeric(ind->dtype))
        FAIL(KILN_ERR_DTYPE, "node '%s' (OneHot): indices must be numeric, got %s", node->name,
             kiln_dtype_name(ind->dtype));
    if (depth->dtype && !is_numeric(depth->dtype))
        FAIL(KILN_ERR_DTYPE, "node '%s' (OneHot): depth must be numeric, got %s", node->name,
             kiln_dtype_name(depth->dtype));
    int64_t nv = kiln__shape_numel(&vals->shape);
    if (vals->shape.rank > 1 || (vals->shape.rank >= 0 && nv >= 0 && nv != 2))
        FAIL(KILN_ERR_SHAPE, "node '%s' (OneHot): values must be [off_value, on_value]", node->name);
    int64_t dv = 0;
    bool known;
    kiln_dim dsym;
    kiln_status st = read_scalar(node, depth, "depth", &dv, &known, &dsym, err);
    if (st) return st;
    kiln_dim dd = dsym;
    if (known) {
        if (dv < 0)
            FAIL(KILN_ERR_SHAPE, "node '%s' (OneHot): depth is %lld", node->name, (long long)dv);
        dd = kiln__dim_const(dv);
    }
    kiln_shape s = {.rank = -1};
    int r = ind->shape.rank;
    if (r >= 0) {
        if (r + 1 > KILN_MAX_DIMS)
            FAIL(KILN_ERR_LIMIT, "node '%s' (OneHot): output rank %d, at most %d supported",
                 node->name, r + 1, KILN_MAX_DIMS);
        int64_t axis;
        st = kiln__ops_norm_axis(node, kiln__attr_int(node, "axis", -1), r + 1, &axis, err);
        if (st) return st;
        s.rank = r + 1;
        for (int i = 0, j = 0; i <= r; i++) s.d[i] = i == axis ? dd : ind->shape.d[j++];
        st = kiln__ops_check_numel(node, &s, err);
        if (st) return st;
    }
    kiln__value_set_type(&out[0], vals->dtype, &s);
    return KILN_OK;
}

/* ---- CumSum --------------------------------------------------------------- */

static kiln_status cumsum_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_status st = kiln__attr_expect(node, "exclusive", KILN_ATTR_INT, err);
    if (!st) st = kiln__attr_expect(node, "reverse", KILN_ATTR_INT, err);
    return st;
}

static kiln_status cumsum_infer(const kiln_node *node, const void *params,
                                const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0], *ax = in[1];
    if (x->dtype && !is_numeric(x->dtype))
        FAIL(KILN_ERR_DTYPE, "node '%s' (CumSum): input must be numeric, got %s", node->name,
             kiln_dtype_name(x->dtype));
    kiln_status st = expect_index(node, ax, "axis", err);
    if (st) return st;
    int64_t a = 0;
    bool known;
    st = read_scalar(node, ax, "axis", &a, &known, NULL, err);
    if (st) return st;
    if (x->shape.rank == 0)
        FAIL(KILN_ERR_SHAPE, "node '%s' (CumSum): input must have rank >= 1", node->name);
    if (known && x->shape.rank > 0) {
        int64_t na;
        st = kiln__ops_norm_axis(node, a, x->shape.rank, &na, err);
        if (st) return st;
    }
    kiln__value_set_type(&out[0], x->dtype, &x->shape);
    return KILN_OK;
}

/* ---- TopK ----------------------------------------------------------------- */

static kiln_status topk_parse(const kiln_node *node, void *params, kiln_err *err)
{
    static const char *const ints[] = {"axis", "largest", "sorted", "k"};
    for (int i = 0; i < 4; i++) {
        kiln_status st = kiln__attr_expect(node, ints[i], KILN_ATTR_INT, err);
        if (st) return st;
    }
    if (node->opset < 10 && !kiln__node_attr(node, "k"))
        FAIL(KILN_ERR_INVALID_ARG, "node '%s' (TopK): attribute 'k' is required before opset 10",
             node->name);
    if (node->opset >= 10 && node->n_in < 2)
        FAIL(KILN_ERR_INVALID_ARG, "node '%s' (TopK): input K is required since opset 10",
             node->name);
    return KILN_OK;
}

static kiln_status topk_infer(const kiln_node *node, const void *params,
                              const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0];
    if (x->dtype && !is_numeric(x->dtype))
        FAIL(KILN_ERR_DTYPE, "node '%s' (TopK): input must be numeric, got %s", node->name,
             kiln_dtype_name(x->dtype));
    int64_t k = 0;
    bool known = false;
    kiln_dim ksym = kiln__dim_unknown();
    if (node->n_in >= 2 && in[1]) {
        kiln_status st = expect_index(node, in[1], "K", err);
        if (!st) st = read_scalar(node, in[1], "K", &k, &known, &ksym, err);
        if (st) return st;
    } else if (node->opset >= 10) {
        FAIL(KILN_ERR_INVALID_ARG, "node '%s' (TopK): input K is required since opset 10", node->name);
    } else {
        k = kiln__attr_int(node, "k", 0);
        known = true;
    }
    if (known && k < 0) FAIL(KILN_ERR_SHAPE, "node '%s' (TopK): k is %lld", node->name, (long long)k);
    kiln_shape s = {.rank = -1};
    int r = x->shape.rank;
    if (r == 0) FAIL(KILN_ERR_SHAPE, "node '%s' (TopK): input must have rank >= 1", node->name);
    if (r > 0) {
        int64_t axis;
        kiln_status st = kiln__ops_norm_axis(node, kiln__attr_int(node, "axis", -1), r, &axis, err);
        if (st) return st;
        int64_t n = cdim(x, (int)axis);
        if (known && n >= 0 && k > n)
            FAIL(KILN_ERR_SHAPE, "node '%s' (TopK): k is %lld, axis %lld has only %lld elements",
                 node->name, (long long)k, (long long)axis, (long long)n);
        s = x->shape;
        s.d[axis] = known ? kiln__dim_const(k) : ksym;
    }
    kiln__value_set_type(&out[0], x->dtype, &s);
    if (node->n_out > 1) kiln__value_set_type(&out[1], KILN_DT_INT64, &s);
    return KILN_OK;
}

/* ---- Trilu ---------------------------------------------------------------- */

static kiln_status trilu_parse(const kiln_node *node, void *params, kiln_err *err)
{
    return kiln__attr_expect(node, "upper", KILN_ATTR_INT, err);
}

static kiln_status trilu_infer(const kiln_node *node, const void *params,
                               const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0];
    if (x->shape.rank >= 0 && x->shape.rank < 2)
        FAIL(KILN_ERR_SHAPE, "node '%s' (Trilu): input must have rank >= 2, got %d", node->name,
             x->shape.rank);
    if (node->n_in >= 2 && in[1]) {
        int64_t k;
        bool known;
        kiln_status st = expect_index(node, in[1], "k", err);
        if (!st) st = read_scalar(node, in[1], "k", &k, &known, NULL, err);
        if (st) return st;
    }
    kiln__value_set_type(&out[0], x->dtype, &x->shape);
    return KILN_OK;
}

/* ---- NonZero -------------------------------------------------------------- */

/* Counts elements that are not zero (NaN counts, -0.0 does not). */
int64_t kiln__indexing_count_nonzero(const kiln_value *x)
{
    int64_t n = kiln__value_numel(x), c = 0;
    bool fl = x->dtype == KILN_DT_FLOAT || x->dtype == KILN_DT_DOUBLE ||
              x->dtype == KILN_DT_FLOAT16 || x->dtype == KILN_DT_BFLOAT16;
    for (int64_t i = 0; i < n; i++)
        c += fl ? kiln__value_get_f64(x, i) != 0 : kiln__value_get_i64(x, i) != 0;
    return c;
}

static kiln_status nonzero_infer(const kiln_node *node, const void *params,
                                 const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0];
    if (x->dtype == KILN_DT_STRING || x->dtype == KILN_DT_COMPLEX64 ||
        x->dtype == KILN_DT_COMPLEX128)
        FAIL(KILN_ERR_DTYPE, "node '%s' (NonZero): type %s unsupported", node->name,
             kiln_dtype_name(x->dtype));
    /* A scalar is treated as a 1-element vector, as numpy.nonzero does. */
    kiln_shape s = {.rank = 2, .d = {kiln__dim_unknown(), kiln__dim_unknown()}};
    if (x->shape.rank >= 0) s.d[0] = kiln__dim_const(x->shape.rank ? x->shape.rank : 1);
    if (x->data && kiln__shape_is_const(&x->shape)) s.d[1] = kiln__dim_const(kiln__indexing_count_nonzero(x));
    kiln__value_set_type(&out[0], KILN_DT_INT64, &s);
    return KILN_OK;
}

/* ---- Compress ------------------------------------------------------------- */

/* True entries of a bool condition among its first `limit`; -1 if one lies past limit. */
int64_t kiln__indexing_count_true(const kiln_value *cond, int64_t limit)
{
    int64_t n = kiln__value_numel(cond), c = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!kiln__value_get_i64(cond, i)) continue;
        if (i >= limit) return -1;
        c++;
    }
    return c;
}

static kiln_status compress_infer(const kiln_node *node, const void *params,
                                  const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0], *cond = in[1];
    if (cond->dtype && cond->dtype != KILN_DT_BOOL)
        FAIL(KILN_ERR_DTYPE, "node '%s' (Compress): condition must be bool, got %s", node->name,
             kiln_dtype_name(cond->dtype));
    if (cond->shape.rank >= 0 && cond->shape.rank != 1)
        FAIL(KILN_ERR_SHAPE, "node '%s' (Compress): condition must be 1-D, got rank %d",
             node->name, cond->shape.rank);
    int r = x->shape.rank;
    if (r == 0) FAIL(KILN_ERR_SHAPE, "node '%s' (Compress): input must have rank >= 1", node->name);
    bool has_axis = kiln__node_attr(node, "axis") != NULL;
    kiln_shape s = {.rank = has_axis ? r : 1};
    int64_t axis = 0;
    if (has_axis && r > 0) {
        kiln_status st = kiln__ops_norm_axis(node, kiln__attr_int(node, "axis", 0), r, &axis, err);
        if (st) return st;
    }
    for (int i = 0; i < s.rank; i++) s.d[i] = has_axis ? x->shape.d[i] : kiln__dim_unknown();
    /* Length of what the condition selects from: the axis, or every element. */
    int64_t len = -1;
    if (has_axis && r > 0) len = cdim(x, (int)axis);
    else if (!has_axis && r >= 0) len = kiln__shape_numel(&x->shape);
    kiln_dim sel = kiln__dim_unknown();
    if (cond->data && kiln__shape_is_const(&cond->shape) && len >= 0) {
        int64_t c = kiln__indexing_count_true(cond, len);
        if (c < 0)
            FAIL(KILN_ERR_SHAPE,
                 "node '%s' (Compress): condition selects entry past the %lld available",
                 node->name, (long long)len);
        sel = kiln__dim_const(c);
    }
    if (s.rank >= 0) s.d[has_axis ? axis : 0] = sel;
    kiln__value_set_type(&out[0], x->dtype, &s);
    return KILN_OK;
}

/* ---- Einsum --------------------------------------------------------------- */

/*
 * The equation resolved against input ranks: every dim of every input and
 * of the output gets a label (0..51 letters, 52.. the broadcast dims of an
 * ellipsis). A label's size is the broadcast of every dim carrying it.
 * The same layout is declared in src/cpu/cpu_indexing.c (checked via
 * kiln__einsum_plan_size).
 */
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

const size_t kiln__einsum_plan_size = sizeof(einsum_plan);
kiln_status kiln__einsum_plan(const kiln_node *node, const kiln_value *const *in, einsum_plan *p,
                              kiln_err *err);

static int letter_label(char c)
{
    if (c >= 'a' && c <= 'z') return c - 'a';
    if (c >= 'A' && c <= 'Z') return 26 + c - 'A';
    return -1;
}

static char label_letter(int l) { return l < 26 ? (char)('a' + l) : (char)('A' + l - 26); }

/* One term of the equation: letters with at most one ellipsis (at position ell, else -1). */
typedef struct einsum_term {
    int n;
    int8_t lab[64];
    int ell;
} einsum_term;

static kiln_status parse_term(const kiln_node *node, const char *s, size_t len, einsum_term *t,
                              kiln_err *err)
{
    t->n = 0;
    t->ell = -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ') continue;
        if (s[i] == '.') {
            if (t->ell >= 0 || i + 2 >= len || s[i + 1] != '.' || s[i + 2] != '.')
                FAIL(KILN_ERR_INVALID_ARG, "node '%s' (Einsum): bad ellipsis in equation", node->name);
            t->ell = t->n;
            i += 2;
            continue;
        }
        int l = letter_label(s[i]);
        if (l < 0)
            FAIL(KILN_ERR_INVALID_ARG, "node '%s' (Einsum): unexpected '%c' in equation", node->name,
                 s[i]);
        if (t->n >= 64)
            FAIL(KILN_ERR_LIMIT, "node '%s' (Einsum): term too long", node->name);
        t->lab[t->n++] = (int8_t)l;
    }
    return KILN_OK;
}

/* Splits the equation into input terms and the output term (*has_out false when implicit). */
static kiln_status parse_equation(const kiln_node *node, einsum_term *terms, int *n_terms,
                                  einsum_term *out, bool *has_out, kiln_err *err)
{
    const kiln_attr *a = kiln__node_attr(node, "equation");
    if (!a || a->type != KILN_ATTR_STRING || !a->s)
        FAIL(KILN_ERR_INVALID_ARG, "node '%s' (Einsum): string attribute 'equation' is required",
             node->name);
    const char *s = a->s;
    size_t len = a->s_len, arrow = len;
    for (size_t i = 0; i + 1 < len; i++)
        if (s[i] == '-' && s[i + 1] == '>') {
            arrow = i;
            break;
        }
    *has_out = arrow < len;
    *n_terms = 0;
    size_t start = 0;
    for (size_t i = 0; i <= arrow; i++) {
        if (i < arrow && s[i] != ',') continue;
        if (*n_terms >= EINSUM_MAX_IN)
            FAIL(KILN_ERR_LIMIT, "node '%s' (Einsum): more than %d operands", node->name, EINSUM_MAX_IN);
        kiln_status st = parse_term(node, s + start, i - start, &terms[(*n_terms)++], err);
        if (st) return st;
        start = i + 1;
    }
    if (*has_out) {
        kiln_status st = parse_term(node, s + arrow + 2, len - arrow - 2, out, err);
        if (st) return st;
    }
    return KILN_OK;
}

kiln_status kiln__einsum_plan(const kiln_node *node, const kiln_value *const *in, einsum_plan *p,
                              kiln_err *err)
{
    memset(p, 0, sizeof *p);
    einsum_term terms[EINSUM_MAX_IN], ot;
    int nt;
    bool has_out;
    kiln_status st = parse_equation(node, terms, &nt, &ot, &has_out, err);
    if (st) return st;
    if (nt != node->n_in)
        FAIL(KILN_ERR_INVALID_ARG, "node '%s' (Einsum): equation has %d operands, node has %d inputs",
             node->name, nt, node->n_in);
    p->n_in = nt;
    for (int l = 0; l < EINSUM_LABELS; l++) p->size[l] = kiln__dim_const(1);
    /* Ellipsis rank: the largest over the inputs (they broadcast, right-aligned). */
    int ell_rank = 0, count[52] = {0};
    for (int i = 0; i < nt; i++) {
        int r = in[i] ? in[i]->shape.rank : -1;
        if (r < 0) return KILN_ERR_NOT_FOUND; /* rank unknown: nothing to plan */
        int er = r - terms[i].n;
        if ((terms[i].ell < 0 && er != 0) || er < 0)
            FAIL(KILN_ERR_SHAPE, "node '%s' (Einsum): operand %d has rank %d, its term has %d labels",
                 node->name, i, r, terms[i].n);
        if (er > ell_rank) ell_rank = er;
        for (int j = 0; j < terms[i].n; j++) count[terms[i].lab[j]]++;
    }
    for (int i = 0; i < nt; i++) {
        const einsum_term *t = &terms[i];
        int r = in[i]->shape.rank, er = r - t->n, d = 0;
        p->rank[i] = r;
        for (int j = 0; j <= t->n; j++) {
            if (j == t->ell)
                for (int e = 0; e < er; e++) p->lab[i][d++] = (int8_t)(52 + ell_rank - er + e);
            if (j < t->n) p->lab[i][d++] = t->lab[j];
        }
        for (int j = 0; j < r; j++) {
            int l = p->lab[i][j];
            bool ok;
            kiln_dim dim = in[i]->shape.d[j];
            p->size[l] = p->used[l] ? kiln__dim_broadcast(p->size[l], dim, &ok) : dim;
            if (p->used[l] && !ok)
                FAIL(KILN_ERR_SHAPE, "node '%s' (Einsum): label %s%c has sizes %lld and %lld",
                     node->name, l < 52 ? "" : "of '...' ", l < 52 ? label_letter(l) : ' ',
                     (long long)p->size[l].add, (long long)dim.add);
            p->used[l] = true;
        }
    }
    int n = 0;
    int8_t lab[64 + KILN_MAX_DIMS];
    if (has_out) {
        bool seen[EINSUM_LABELS] = {false};
        for (int j = 0; j <= ot.n; j++) {
            if (j == ot.ell)
                for (int e = 0; e < ell_rank; e++) lab[n++] = (int8_t)(52 + e);
            if (j == ot.n) break;
            int l = ot.lab[j];
            if (!p->used[l] || seen[l])
                FAIL(KILN_ERR_INVALID_ARG, "node '%s' (Einsum): output label '%c' %s", node->name,
                     label_letter(l), seen[l] ? "repeats" : "is not in any input");
            seen[l] = true;
            lab[n++] = (int8_t)l;
        }
    } else {
        /* Implicit output: the ellipsis, then labels used once, in ASCII order (A-Z, a-z). */
        for (int e = 0; e < ell_rank; e++) lab[n++] = (int8_t)(52 + e);
        for (int l = 26; l < 52; l++)
            if (count[l] == 1) lab[n++] = (int8_t)l;
        for (int l = 0; l < 26; l++)
            if (count[l] == 1) lab[n++] = (int8_t)l;
    }
    if (n > KILN_MAX_DIMS)
        FAIL(KILN_ERR_LIMIT, "node '%s' (Einsum): output rank %d, at most %d supported", node->name,
             n, KILN_MAX_DIMS);
    p->out_rank = n;
    memcpy(p->out_lab, lab, (size_t)n);
    return KILN_OK;
}

static kiln_status einsum_parse(const kiln_node *node, void *params, kiln_err *err)
{
    einsum_term terms[EINSUM_MAX_IN], ot;
    int nt;
    bool has_out;
    kiln_status st = parse_equation(node, terms, &nt, &ot, &has_out, err);
    if (st) return st;
    if (nt != node->n_in)
        FAIL(KILN_ERR_INVALID_ARG, "node '%s' (Einsum): equation has %d operands, node has %d inputs",
             node->name, nt, node->n_in);
    return KILN_OK;
}

static kiln_status einsum_infer(const kiln_node *node, const void *params,
                                const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    kiln_dtype dt = in[0]->dtype;
    for (int i = 0; i < node->n_in; i++) {
        if (!in[i]) FAIL(KILN_ERR_INVALID_ARG, "node '%s' (Einsum): operand %d is missing", node->name, i);
        if (in[i]->dtype && !is_numeric(in[i]->dtype))
            FAIL(KILN_ERR_DTYPE, "node '%s' (Einsum): operand %d is %s, must be numeric", node->name,
                 i, kiln_dtype_name(in[i]->dtype));
        if (in[i]->dtype && dt && in[i]->dtype != dt)
            FAIL(KILN_ERR_DTYPE, "node '%s' (Einsum): operand %d is %s, operand 0 is %s", node->name,
                 i, kiln_dtype_name(in[i]->dtype), kiln_dtype_name(dt));
    }
    einsum_plan p;
    kiln_status st = kiln__einsum_plan(node, in, &p, err);
    kiln_shape s = {.rank = -1};
    if (st == KILN_OK) {
        s.rank = p.out_rank;
        for (int j = 0; j < s.rank; j++) s.d[j] = p.size[p.out_lab[j]];
        st = kiln__ops_check_numel(node, &s, err);
    } else if (st == KILN_ERR_NOT_FOUND) {
        st = KILN_OK;
    }
    if (st) return st;
    kiln__value_set_type(&out[0], dt, &s);
    return KILN_OK;
}

/* ---- table ---------------------------------------------------------------- */

const kiln_op_schema kiln__ops_indexing[] = {
    {"GatherND", "", 11, 2, 2, 1, 1, 0, gathernd_parse, gathernd_infer},
    {"ScatterND", "", 11, 3, 3, 1, 1, 0, scatter_parse, scatternd_infer},
    {"ScatterElements", "", 11, 3, 3, 1, 1, 0, scatter_elements_parse, scatter_elements_infer},
    {"Scatter", "", 9, 3, 3, 1, 1, 0, scatter_elements_parse, scatter_elements_infer},
    {"OneHot", "", 9, 3, 3, 1, 1, 0, axis_parse, onehot_infer},
    {"CumSum", "", 11, 2, 2, 1, 1, 0, cumsum_parse, cumsum_infer},
    {"TopK", "", 1, 1, 2, 1, 2, 0, topk_parse, topk_infer},
    {"Trilu", "", 14, 1, 2, 1, 1, 0, trilu_parse, trilu_infer},
    {"NonZero", "", 9, 1, 1, 1, 1, 0, NULL, nonzero_infer},
    {"Compress", "", 9, 2, 2, 1, 1, 0, axis_parse, compress_infer},
    {"Einsum", "", 12, 1, EINSUM_MAX_IN, 1, 1, 0, einsum_parse, einsum_infer},
    {0},
};
