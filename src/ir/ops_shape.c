/*
 * Op schemas of the shape family: ops that make, inspect or re-view shapes
 * (Shape, Size, ConstantOfShape, Constant, Identity, Range, Reshape, Flatten,
 * Squeeze, Unsqueeze, Expand, EyeLike).
 *
 * Statically these carry shape computations as `symval` so that a PyTorch
 * export such as Reshape(x, Concat(Shape(x)[0], 64, Shape(x)[2] * 2, ...))
 * keeps H and W symbolic. Consumers read in->data first (always set at run
 * time) and fall back to in->symval.
 */
#include "ops_shape.h"
#include "ops_util.h"
#include <math.h>
#include <string.h>

#define FAIL(st, ...) return kiln__fail(err, st, __VA_ARGS__)

/* Product of dims [from, to): constant, one symbol times a constant, or unknown. */
static kiln_dim dims_product(const kiln_dim *d, int from, int to)
{
    int64_t c = 1;
    int n_sym = 0;
    kiln_dim sym = kiln__dim_unknown();
    for (int i = from; i < to; i++) {
        if (kiln__dim_is_const(d[i])) {
            if (__builtin_mul_overflow(c, d[i].add, &c)) return kiln__dim_unknown();
        } else if (d[i].sym >= 0) {
            n_sym++;
            sym = d[i];
        } else {
            return kiln__dim_unknown();
        }
    }
    if (c == 0) return kiln__dim_const(0);
    if (n_sym == 0) return kiln__dim_const(c);
    if (n_sym == 1) return kiln__ops_dim_mul(sym, c);
    return kiln__dim_unknown();
}

/* Most ops here pass the symval of a small int64 tensor through a re-view of it. */
static void pass_symval(const kiln_value *in, kiln_value *out)
{
    if (in->dtype != KILN_DT_INT64) return;
    int64_t n = kiln__shape_numel(&out->shape);
    if (n < 0 || n > KILN_SYMVAL_MAX) return;
    if (in->data && kiln__value_numel(in) == n) {
        kiln_dim d[KILN_SYMVAL_MAX];
        for (int64_t i = 0; i < n; i++) d[i] = kiln__dim_const(kiln__value_get_i64(in, i));
        kiln__ops_set_symval(out, d, (int)n);
    } else if (in->symval_n == n) {
        kiln__ops_set_symval(out, in->symval, (int)n);
    }
}

/* ---- Shape ---------------------------------------------------------------- */

static kiln_status shape_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_shape_op_params *p = params;
    kiln_status st = kiln__attr_expect(node, "start", KILN_ATTR_INT, err);
    if (!st) st = kiln__attr_expect(node, "end", KILN_ATTR_INT, err);
    if (st) return st;
    p->start = kiln__attr_int(node, "start", 0);
    p->has_end = kiln__node_attr(node, "end") != NULL;
    p->end = kiln__attr_int(node, "end", 0);
    return KILN_OK;
}

void kiln__shape_op_range(const kiln_shape_op_params *p, int rank, int *start, int *end)
{
    int64_t s = p->start;
    int64_t e = p->has_end ? p->end : rank;
    if (s < 0) s += rank;
    if (e < 0) e += rank;
    s = s < 0 ? 0 : (s > rank ? rank : s);
    e = e < 0 ? 0 : (e > rank ? rank : e);
    if (e < s) e = s;
    *start = (int)s;
    *end = (int)e;
}

static kiln_status shape_infer(const kiln_node *node, const void *params,
                               const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    kiln_shape s = {.rank = 1};
    int r = in[0]->shape.rank;
    if (r < 0) {
        s.d[0] = kiln__dim_unknown();
        kiln__value_set_type(&out[0], KILN_DT_INT64, &s);
        return KILN_OK;
    }
    int b, e;
    kiln__shape_op_range(params, r, &b, &e);
    s.d[0] = kiln__dim_const(e - b);
    kiln__value_set_type(&out[0], KILN_DT_INT64, &s);
    kiln__ops_set_symval(&out[0], &in[0]->shape.d[b], e - b);
    return KILN_OK;
}

/* ---- Size ----------------------------------------------------------------- */

static kiln_status size_infer(const kiln_node *node, const void *params,
                              const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    kiln_shape s = {.rank = 0};
    kiln__value_set_type(&out[0], KILN_DT_INT64, &s);
    if (in[0]->shape.rank >= 0) {
        kiln_dim n = dims_product(in[0]->shape.d, 0, in[0]->shape.rank);
        if (n.sym != KILN_SYM_UNKNOWN) kiln__ops_set_symval(&out[0], &n, 1);
    }
    return KILN_OK;
}

/* ---- ConstantOfShape ------------------------------------------------------ */

static kiln_status cos_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_constant_of_shape_params *p = params;
    kiln_status st = kiln__attr_expect(node, "value", KILN_ATTR_TENSOR, err);
    if (st) return st;
    const kiln_attr *a = kiln__node_attr(node, "value");
    if (a) {
        if (!a->t || kiln__shape_numel(&a->t->shape) != 1 || !a->t->data)
            FAIL(KILN_ERR_INVALID_ARG, "node '%s' (ConstantOfShape): 'value' must hold one element",
                 node->name);
        if (kiln_dtype_size(a->t->dtype) == 0)
            FAIL(KILN_ERR_UNSUPPORTED, "node '%s' (ConstantOfShape): value type %s unsupported",
                 node->name, kiln_dtype_name(a->t->dtype));
    }
    p->dtype = KILN_DT_FLOAT;
    if (a) {
        size_t es = kiln_dtype_size(a->t->dtype);
        if (es > sizeof p->value)
            FAIL(KILN_ERR_UNSUPPORTED, "node '%s' (ConstantOfShape): value type %s unsupported",
                 node->name, kiln_dtype_name(a->t->dtype));
        p->dtype = a->t->dtype;
        p->has_value = true;
        memcpy(p->value, a->t->data, es);
    }
    return KILN_OK;
}

static kiln_status cos_infer(const kiln_node *node, const void *params,
                             const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_constant_of_shape_params *p = params;
    kiln_dtype dt = p->dtype;
    kiln_dim d[KILN_MAX_DIMS];
    int n;
    bool known;
    kiln_status st = kiln__ops_read_ints(node, in[0], "shape", d, KILN_MAX_DIMS, &n, &known, err);
    if (st) return st;
    kiln_shape s = {.rank = -1};
    if (known) {
        s.rank = n;
        for (int i = 0; i < n; i++) {
            if (kiln__dim_is_const(d[i]) && d[i].add < 0)
                FAIL(KILN_ERR_SHAPE, "node '%s' (ConstantOfShape): shape[%d] is negative (%lld)",
                     node->name, i, (long long)d[i].add);
            s.d[i] = d[i];
        }
        st = kiln__ops_check_numel(node, &s, err);
        if (st) return st;
    } else {
        int64_t len = kiln__ops_const_len(in[0]);
        if (len > KILN_MAX_DIMS)
            FAIL(KILN_ERR_LIMIT, "node '%s' (ConstantOfShape): %lld dims, at most %d supported",
                 node->name, (long long)len, KILN_MAX_DIMS);
        if (len >= 0) {
            s.rank = (int)len;
            for (int i = 0; i < s.rank; i++) s.d[i] = kiln__dim_unknown();
        }
    }
    kiln__value_set_type(&out[0], dt, &s);
    /* An int64 fill is often part of a shape computation (e.g. ones for Expand). */
    int64_t numel = kiln__shape_numel(&s);
    if (dt == KILN_DT_INT64 && numel > 0 && numel <= KILN_SYMVAL_MAX) {
        kiln_value fill = {.dtype = dt, .data = (void *)p->value};
        int64_t v = p->has_value ? kiln__value_get_i64(&fill, 0) : 0;
        kiln_dim sv[KILN_SYMVAL_MAX];
        for (int64_t i = 0; i < numel; i++) sv[i] = kiln__dim_const(v);
        kiln__ops_set_symval(&out[0], sv, (int)numel);
    }
    return KILN_OK;
}

/* ---- Constant ------------------------------------------------------------- */

static kiln_status constant_parse(const kiln_node *node, void *params, kiln_err *err)
{
    static const char *const names[] = {"value", "value_float", "value_floats", "value_int",
                                        "value_ints"};
    static const kiln_attr_type types[] = {KILN_ATTR_TENSOR, KILN_ATTR_FLOAT, KILN_ATTR_FLOATS,
                                           KILN_ATTR_INT, KILN_ATTR_INTS};
    int found = 0;
    for (int i = 0; i < node->n_attrs; i++) {
        const char *nm = node->attrs[i].name;
        bool ok = false;
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
            if (strcmp(nm, names[k])) continue;
            kiln_status st = kiln__attr_expect(node, nm, types[k], err);
            if (st) return st;
            ok = true;
        }
        if (!ok)
            FAIL(KILN_ERR_UNSUPPORTED, "node '%s' (Constant): attribute '%s' unsupported",
                 node->name, nm);
        found++;
    }
    if (found != 1)
        FAIL(KILN_ERR_INVALID_ARG, "node '%s' (Constant): needs exactly one value attribute, got %d",
             node->name, found);
    const kiln_attr *a = kiln__node_attr(node, "value");
    if (a) {
        if (!a->t || a->t->shape.rank < 0 || !kiln__shape_is_const(&a->t->shape))
            FAIL(KILN_ERR_INVALID_ARG, "node '%s' (Constant): 'value' has no tensor", node->name);
        if (kiln_dtype_size(a->t->dtype) == 0)
            FAIL(KILN_ERR_UNSUPPORTED, "node '%s' (Constant): value type %s unsupported",
                 node->name, kiln_dtype_name(a->t->dtype));
        int64_t numel = kiln__shape_numel(&a->t->shape);
        if (numel < 0 || (numel > 0 && !a->t->data) ||
            a->t->nbytes < (size_t)numel * kiln_dtype_size(a->t->dtype))
            FAIL(KILN_ERR_INVALID_ARG, "node '%s' (Constant): 'value' data is short", node->name);
    }
    return KILN_OK;
}

static kiln_status constant_infer(const kiln_node *node, const void *params,
                                  const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_attr *a = node->n_attrs > 0 ? &node->attrs[0] : NULL;
    if (!a) FAIL(KILN_ERR_INVALID_ARG, "node '%s' (Constant): no value", node->name);
    kiln_shape s = {.rank = 0};
    kiln_dtype dt;
    switch (a->type) {
    case KILN_ATTR_TENSOR:
        dt = a->t->dtype;
        s = a->t->shape;
        break;
    case KILN_ATTR_FLOAT: dt = KILN_DT_FLOAT; break;
    case KILN_ATTR_INT: dt = KILN_DT_INT64; break;
    case KILN_ATTR_FLOATS:
    case KILN_ATTR_INTS:
        dt = a->type == KILN_ATTR_INTS ? KILN_DT_INT64 : KILN_DT_FLOAT;
        s.rank = 1;
        s.d[0] = kiln__dim_const(a->n);
        break;
    default: FAIL(KILN_ERR_UNSUPPORTED, "node '%s' (Constant): unsupported value", node->name);
    }
    kiln__value_set_type(&out[0], dt, &s);
    if (dt == KILN_DT_INT64) {
        int64_t numel = kiln__shape_numel(&s);
        if (numel >= 1 && numel <= KILN_SYMVAL_MAX) {
            kiln_dim sv[KILN_SYMVAL_MAX];
            for (int64_t i = 0; i < numel; i++)
                sv[i] = kiln__dim_const(a->type == KILN_ATTR_TENSOR ? kiln__value_get_i64(a->t, i)
                                        : a->type == KILN_ATTR_INT  ? a->i
                                                                    : a->ints[i]);
            kiln__ops_set_symval(&out[0], sv, (int)numel);
        }
    }
    return KILN_OK;
}

/* ---- Identity ------------------------------------------------------------- */

static kiln_status identity_infer(const kiln_node *node, const void *params,
                                  const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    kiln__value_set_type(&out[0], in[0]->dtype, &in[0]->shape);
    pass_symval(in[0], &out[0]);
    return KILN_OK;
}

/* ---- Range ---------------------------------------------------------------- */

static bool is_float_dtype(kiln_dtype dt) { return kiln__dtype_is_float(dt); }

int64_t kiln__range_count(const kiln_value *start, const kiln_value *limit, const kiln_value *delta)
{
    if (is_float_dtype(start->dtype)) {
        double s = kiln__value_get_f64(start, 0), l = kiln__value_get_f64(limit, 0);
        double d = kiln__value_get_f64(delta, 0);
        if (d == 0 || !isfinite(s) || !isfinite(l) || !isfinite(d)) return -1;
        double n = ceil((l - s) / d);
        if (!(n > 0)) return 0;
        if (n > (double)KILN_OPS_MAX_NUMEL) return -2;
        return (int64_t)n;
    }
    int64_t s = kiln__value_get_i64(start, 0), l = kiln__value_get_i64(limit, 0);
    int64_t d = kiln__value_get_i64(delta, 0);
    if (d == 0) return -1;
    /* Exact ceil((l - s) / d) without overflow: work in unsigned magnitudes. */
    if ((d > 0 && l <= s) || (d < 0 && l >= s)) return 0;
    uint64_t span = d > 0 ? (uint64_t)l - (uint64_t)s : (uint64_t)s - (uint64_t)l;
    uint64_t step = d > 0 ? (uint64_t)d : (uint64_t)0 - (uint64_t)d;
    uint64_t n = span / step + (span % step != 0);
    if (n > (uint64_t)KILN_OPS_MAX_NUMEL) return -2;
    return (int64_t)n;
}

static kiln_status range_infer(const kiln_node *node, const void *params,
                               const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    static const char *const names[3] = {"start", "limit", "delta"};
    kiln_dtype dt = in[0]->dtype;
    for (int i = 0; i < 3; i++) {
        if (in[i]->dtype != dt)
            FAIL(KILN_ERR_DTYPE, "node '%s' (Range): %s is %s, start is %s", node->name, names[i],
                 kiln_dtype_name(in[i]->dtype), kiln_dtype_name(dt));
        int64_t n = kiln__shape_numel(&in[i]->shape);
        if (in[i]->shape.rank > 1 || (n >= 0 && n != 1))
            FAIL(KILN_ERR_SHAPE, "node '%s' (Range): %s must be a scalar", node->name, names[i]);
    }
    if (dt != KILN_DT_UNDEFINED && (kiln_dtype_size(dt) == 0 || dt == KILN_DT_BOOL))
        FAIL(KILN_ERR_DTYPE, "node '%s' (Range): type %s unsupported", node->name,
             kiln_dtype_name(dt));
    kiln_shape s = {.rank = 1, .d = {kiln__dim_unknown()}};
    if (in[0]->data && in[1]->data && in[2]->data) {
        int64_t n = kiln__range_count(in[0], in[1], in[2]);
        if (n == -1)
            FAIL(KILN_ERR_SHAPE, "node '%s' (Range): delta is zero or a bound is not finite",
                 node->name);
        if (n < 0)
            FAIL(KILN_ERR_LIMIT, "node '%s' (Range): more than %lld elements", node->name,
                 (long long)KILN_OPS_MAX_NUMEL);
        s.d[0] = kiln__dim_const(n);
    } else if (dt == KILN_DT_INT64 || dt == KILN_DT_INT32) {
        /* Range(start, L, delta) with constant start/delta > 0 and symbolic L (e.g. an H). */
        kiln_dim v[3];
        bool ok = true;
        for (int i = 0; i < 3 && ok; i++) {
            int n;
            bool known;
            kiln_status st = kiln__ops_read_ints(node, in[i], names[i], &v[i], 1, &n, &known, err);
            if (st) return st;
            ok = known && n == 1;
        }
        if (ok && kiln__dim_is_const(v[0]) && kiln__dim_is_const(v[2]) && v[2].add > 0) {
            int64_t st0 = v[0].add, d = v[2].add;
            if (kiln__dim_is_const(v[1])) {
                int64_t span = v[1].add - st0;
                s.d[0] = kiln__dim_const(span <= 0 ? 0 : (span + d - 1) / d);
            } else if (v[1].sym >= 0 && st0 > -((int64_t)1 << 40) && st0 < ((int64_t)1 << 40) &&
                       d < ((int64_t)1 << 40)) {
                s.d[0] = kiln__ops_dim_div(kiln__ops_dim_add(v[1], d - 1 - st0), d);
            }
        }
    }
    kiln__value_set_type(&out[0], dt, &s);
    return KILN_OK;
}

/* ---- Reshape -------------------------------------------------------------- */

static kiln_status reshape_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_status st = kiln__attr_expect(node, "allowzero", KILN_ATTR_INT, err);
    if (!st) st = kiln__attr_expect(node, "shape", KILN_ATTR_INTS, err);
    return st;
}

/* Splits a product of dims into a constant factor and its non-constant dims. */
typedef struct dim_factors {
    int64_t c;
    int n;
    kiln_dim d[KILN_MAX_DIMS];
    bool overflow;
} dim_factors;

static void factors_add(dim_factors *f, kiln_dim d)
{
    if (kiln__dim_is_const(d)) {
        if (__builtin_mul_overflow(f->c, d.add, &f->c)) f->overflow = true;
    } else {
        f->d[f->n++] = d;
    }
}

static kiln_status reshape_infer(const kiln_node *node, const void *params,
                                 const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0];
    bool allowzero = kiln__attr_int(node, "allowzero", 0) != 0;
    kiln_dim want[KILN_MAX_DIMS];
    int n = 0;
    bool known = false;
    kiln_shape s = {.rank = -1};
    const kiln_value *shp = node->n_in >= 2 ? in[1] : NULL;
    if (shp) {
        kiln_status st = kiln__ops_read_ints(node, shp, "shape", want, KILN_MAX_DIMS, &n, &known, err);
        if (st) return st;
    } else {
        const int64_t *v;
        int64_t cnt = kiln__attr_ints(node, "shape", &v);
        if (cnt < 0) FAIL(KILN_ERR_INVALID_ARG, "node '%s' (Reshape): no shape", node->name);
        if (cnt > KILN_MAX_DIMS)
            FAIL(KILN_ERR_LIMIT, "node '%s' (Reshape): %lld dims, at most %d supported", node->name,
                 (long long)cnt, KILN_MAX_DIMS);
        for (int64_t i = 0; i < cnt; i++) want[i] = kiln__dim_const(v[i]);
        n = (int)cnt;
        known = true;
    }
    if (!known) {
        int64_t len = kiln__ops_const_len(shp);
        if (len > KILN_MAX_DIMS)
            FAIL(KILN_ERR_LIMIT, "node '%s' (Reshape): %lld dims, at most %d supported", node->name,
                 (long long)len, KILN_MAX_DIMS);
        if (len >= 0) {
            s.rank = (int)len;
            for (int i = 0; i < s.rank; i++) s.d[i] = kiln__dim_unknown();
        }
        kiln__value_set_type(&out[0], x->dtype, &s);
        return KILN_OK;
    }
    s.rank = n;
    int infer_at = -1;
    for (int i = 0; i < n; i++) {
        kiln_dim w = want[i];
        if (!kiln__dim_is_const(w)) {
            s.d[i] = w;
        } else if (w.add == 0 && !allowzero) {
            if (x->shape.rank >= 0 && i >= x->shape.rank)
                FAIL(KILN_ERR_SHAPE, "node '%s' (Reshape): shape[%d] is 0 (copy) but input has rank %d",
                     node->name, i, x->shape.rank);
            s.d[i] = x->shape.rank >= 0 ? x->shape.d[i] : kiln__dim_unknown();
        } else if (w.add == -1) {
            if (infer_at >= 0)
                FAIL(KILN_ERR_SHAPE, "node '%s' (Reshape): more than one -1 in shape", node->name);
            infer_at = i;
            s.d[i] = kiln__dim_unknown();
        } else if (w.add < 0) {
            FAIL(KILN_ERR_SHAPE, "node '%s' (Reshape): shape[%d] is %lld", node->name, i,
                 (long long)w.add);
        } else {
            s.d[i] = w;
        }
    }
    if (x->shape.rank >= 0) {
        dim_factors fi = {.c = 1}, fo = {.c = 1};
        for (int i = 0; i < x->shape.rank; i++) factors_add(&fi, x->shape.d[i]);
        for (int i = 0; i < n; i++)
            if (i != infer_at) factors_add(&fo, s.d[i]);
        if (fi.overflow || fo.overflow)
            FAIL(KILN_ERR_LIMIT, "node '%s' (Reshape): element count overflows", node->name);
        /* Cancel symbolic factors common to both sides (e.g. H kept through a re-view). */
        for (int i = 0; i < fo.n; i++)
            for (int j = 0; j < fi.n; j++)
                if (kiln__dim_equal(fo.d[i], fi.d[j])) {
                    fo.d[i--] = fo.d[--fo.n];
                    fi.d[j] = fi.d[--fi.n];
                    break;
                }
        if (infer_at >= 0) {
            if (fi.n == 0 && fo.n == 0) {
                if (fo.c == 0 || fi.c % fo.c != 0)
                    FAIL(KILN_ERR_SHAPE, "node '%s' (Reshape): cannot infer -1: %lld elements into %lld",
                         node->name, (long long)fi.c, (long long)fo.c);
                s.d[infer_at] = kiln__dim_const(fi.c / fo.c);
            } else if (fi.n == 1 && fo.n == 0 && fi.d[0].sym >= 0 && fo.c > 0 && fi.c % fo.c == 0) {
                s.d[infer_at] = kiln__ops_dim_mul(fi.d[0], fi.c / fo.c);
            }
        } else if (fi.n == 0 && fo.n == 0 && fi.c != fo.c) {
            FAIL(KILN_ERR_SHAPE, "node '%s' (Reshape): input has %lld elements, shape asks for %lld",
                 node->name, (long long)fi.c, (long long)fo.c);
        }
    }
    kiln__value_set_type(&out[0], x->dtype, &s);
    pass_symval(x, &out[0]);
    return KILN_OK;
}

/* ---- Flatten -------------------------------------------------------------- */

static kiln_status axis_parse(const kiln_node *node, void *params, kiln_err *err)
{
    return kiln__attr_expect(node, "axis", KILN_ATTR_INT, err);
}

static kiln_status flatten_infer(const kiln_node *node, const void *params,
                                 const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0];
    kiln_shape s = {.rank = 2, .d = {kiln__dim_unknown(), kiln__dim_unknown()}};
    int r = x->shape.rank;
    if (r >= 0) {
        int64_t axis = kiln__attr_int(node, "axis", 1);
        if (axis < -(int64_t)r || axis > r)
            FAIL(KILN_ERR_SHAPE, "node '%s' (Flatten): axis %lld out of range for rank %d",
                 node->name, (long long)axis, r);
        if (axis < 0) axis += r;
        s.d[0] = dims_product(x->shape.d, 0, (int)axis);
        s.d[1] = dims_product(x->shape.d, (int)axis, r);
    }
    kiln__value_set_type(&out[0], x->dtype, &s);
    pass_symval(x, &out[0]);
    return KILN_OK;
}

/* ---- Squeeze / Unsqueeze -------------------------------------------------- */

static kiln_status axes_parse(const kiln_node *node, void *params, kiln_err *err)
{
    /* The attribute is also accepted past opset 13: some exporters still write it. */
    return kiln__attr_expect(node, "axes", KILN_ATTR_INTS, err);
}

/* Axes from the attribute (before opset 13) or the second input. *known false when not known. */
static kiln_status get_axes(const kiln_node *node, const kiln_value *const *in, int64_t *axes,
                            int *n, bool *present, bool *known, kiln_err *err)
{
    *n = 0;
    *present = false;
    *known = true;
    const int64_t *v;
    int64_t cnt = kiln__attr_ints(node, "axes", &v);
    if (cnt >= 0) {
        if (cnt > KILN_MAX_DIMS)
            FAIL(KILN_ERR_LIMIT, "node '%s' (%s): %lld axes, at most %d supported", node->name,
                 node->op_type, (long long)cnt, KILN_MAX_DIMS);
        memcpy(axes, v, sizeof(int64_t) * (size_t)cnt);
        *n = (int)cnt;
        *present = true;
        return KILN_OK;
    }
    if (node->n_in < 2 || !in[1]) return KILN_OK;
    *present = true;
    kiln_dim d[KILN_MAX_DIMS];
    kiln_status st = kiln__ops_read_ints(node, in[1], "axes", d, KILN_MAX_DIMS, n, known, err);
    if (st) return st;
    for (int i = 0; i < *n && *known; i++) {
        if (!kiln__dim_is_const(d[i])) *known = false;
        axes[i] = d[i].add;
    }
    if (!*known) {
        int64_t len = kiln__ops_const_len(in[1]);
        *n = (len >= 0 && len <= KILN_MAX_DIMS) ? (int)len : -1;
    }
    return KILN_OK;
}

static kiln_status squeeze_infer(const kiln_node *node, const void *params,
                                 const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0];
    int64_t axes[KILN_MAX_DIMS];
    int n;
    bool present, known;
    kiln_status st = get_axes(node, in, axes, &n, &present, &known, err);
    if (st) return st;
    kiln_shape s = {.rank = -1};
    int r = x->shape.rank;
    if (r >= 0 && !known) {
        if (n >= 0 && n <= r) {
            s.rank = r - n;
            for (int i = 0; i < s.rank; i++) s.d[i] = kiln__dim_unknown();
        }
    } else if (r >= 0 && present) {
        bool drop[KILN_MAX_DIMS] = {false};
        for (int i = 0; i < n; i++) {
            int64_t a = 0;
            st = kiln__ops_norm_axis(node, axes[i], r, &a, err);
            if (st) return st;
            if (drop[a])
                FAIL(KILN_ERR_SHAPE, "node '%s' (Squeeze): axis %lld repeated", node->name,
                     (long long)axes[i]);
            kiln_dim d = x->shape.d[a];
            if (kiln__dim_is_const(d) && d.add != 1)
                FAIL(KILN_ERR_SHAPE, "node '%s' (Squeeze): dim %lld is %lld, not 1", node->name,
                     (long long)a, (long long)d.add);
            drop[a] = true;
        }
        s.rank = 0;
        for (int i = 0; i < r; i++)
            if (!drop[i]) s.d[s.rank++] = x->shape.d[i];
    } else if (r >= 0) {
        /* No axes: drop every 1. A named symbol is taken as not 1; an unknown dim could be. */
        s.rank = 0;
        for (int i = 0; i < r; i++) {
            kiln_dim d = x->shape.d[i];
            if (d.sym == KILN_SYM_UNKNOWN) {
                s.rank = -1;
                break;
            }
            if (!(kiln__dim_is_const(d) && d.add == 1)) s.d[s.rank++] = d;
        }
    }
    kiln__value_set_type(&out[0], x->dtype, &s);
    pass_symval(x, &out[0]);
    return KILN_OK;
}

static kiln_status unsqueeze_infer(const kiln_node *node, const void *params,
                                   const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0];
    int64_t axes[KILN_MAX_DIMS];
    int n;
    bool present, known;
    kiln_status st = get_axes(node, in, axes, &n, &present, &known, err);
    if (st) return st;
    if (!present) FAIL(KILN_ERR_INVALID_ARG, "node '%s' (Unsqueeze): no axes", node->name);
    kiln_shape s = {.rank = -1};
    int r = x->shape.rank;
    if (r >= 0 && n >= 0) {
        int orank = r + n;
        if (orank > KILN_MAX_DIMS)
            FAIL(KILN_ERR_LIMIT, "node '%s' (Unsqueeze): output rank %d, at most %d supported",
                 node->name, orank, KILN_MAX_DIMS);
        s.rank = orank;
        if (!known) {
            for (int i = 0; i < orank; i++) s.d[i] = kiln__dim_unknown();
        } else {
            bool ins[KILN_MAX_DIMS] = {false};
            for (int i = 0; i < n; i++) {
                int64_t a = 0;
                st = kiln__ops_norm_axis(node, axes[i], orank, &a, err);
                if (st) return st;
                if (ins[a])
                    FAIL(KILN_ERR_SHAPE, "node '%s' (Unsqueeze): axis %lld repeated", node->name,
                         (long long)axes[i]);
                ins[a] = true;
            }
            for (int i = 0, j = 0; i < orank; i++)
                s.d[i] = ins[i] ? kiln__dim_const(1) : x->shape.d[j++];
        }
    }
    kiln__value_set_type(&out[0], x->dtype, &s);
    pass_symval(x, &out[0]);
    return KILN_OK;
}

/* ---- Expand --------------------------------------------------------------- */

static kiln_status expand_infer(const kiln_node *node, const void *params,
                                const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0];
    kiln_dim want[KILN_MAX_DIMS];
    int n;
    bool known;
    kiln_status st = kiln__ops_read_ints(node, in[1], "shape", want, KILN_MAX_DIMS, &n, &known, err);
    if (st) return st;
    kiln_shape s = {.rank = -1};
    int r = x->shape.rank;
    if (!known) n = (int)kiln__ops_const_len(in[1]);
    if (n > KILN_MAX_DIMS)
        FAIL(KILN_ERR_LIMIT, "node '%s' (Expand): shape has %d entries, at most %d supported",
             node->name, n, KILN_MAX_DIMS);
    if (r >= 0 && n >= 0) {
        s.rank = r > n ? r : n;
        for (int i = 0; i < s.rank; i++) {
            int xi = i - (s.rank - r), wi = i - (s.rank - n);
            kiln_dim a = xi >= 0 ? x->shape.d[xi] : kiln__dim_const(1);
            kiln_dim b = kiln__dim_unknown();
            if (wi < 0) {
                b = kiln__dim_const(1);
            } else if (known) {
                b = want[wi];
                if (kiln__dim_is_const(b) && b.add < 0)
                    FAIL(KILN_ERR_SHAPE, "node '%s' (Expand): shape[%d] is %lld", node->name, wi,
                         (long long)b.add);
            }
            bool ok;
            s.d[i] = kiln__dim_broadcast(a, b, &ok);
            /* An unknown entry must be 1 or equal to a dim that is not 1. */
            if (b.sym == KILN_SYM_UNKNOWN && !(kiln__dim_is_const(a) && a.add == 1)) s.d[i] = a;
            if (!ok)
                FAIL(KILN_ERR_SHAPE, "node '%s' (Expand): input dim %d (%lld) does not broadcast to %lld",
                     node->name, xi, (long long)a.add, (long long)b.add);
        }
        st = kiln__ops_check_numel(node, &s, err);
        if (st) return st;
    }
    kiln__value_set_type(&out[0], x->dtype, &s);
    return KILN_OK;
}

/* ---- EyeLike -------------------------------------------------------------- */

static kiln_status eyelike_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_eyelike_params *p = params;
    kiln_status st = kiln__attr_expect(node, "k", KILN_ATTR_INT, err);
    if (!st) st = kiln__attr_expect(node, "dtype", KILN_ATTR_INT, err);
    if (st) return st;
    int64_t dt = kiln__attr_int(node, "dtype", 0);
    if (kiln__node_attr(node, "dtype") &&
        (dt <= 0 || dt > KILN_DT_BFLOAT16 || kiln_dtype_size((kiln_dtype)dt) == 0))
        FAIL(KILN_ERR_UNSUPPORTED, "node '%s' (EyeLike): dtype %lld unsupported", node->name,
             (long long)dt);
    p->k = kiln__attr_int(node, "k", 0);
    p->dtype = (kiln_dtype)dt;
    return KILN_OK;
}

static kiln_status eyelike_infer(const kiln_node *node, const void *params,
                                 const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0];
    if (x->shape.rank >= 0 && x->shape.rank != 2)
        FAIL(KILN_ERR_SHAPE, "node '%s' (EyeLike): input must be 2-D, got rank %d", node->name,
             x->shape.rank);
    const kiln_eyelike_params *p = params;
    kiln_dtype dt = p->dtype != KILN_DT_UNDEFINED ? p->dtype : x->dtype;
    if (dt == KILN_DT_STRING || (dt != KILN_DT_UNDEFINED && kiln_dtype_size(dt) == 0))
        FAIL(KILN_ERR_UNSUPPORTED, "node '%s' (EyeLike): type %s unsupported", node->name,
             kiln_dtype_name(dt));
    kiln__value_set_type(&out[0], dt, &x->shape);
    return KILN_OK;
}

/* ---- Dropout -------------------------------------------------------------- */

/*
 * Inference semantics: y = x and the mask is all true. Training mode with a
 * ratio above 0 is random and is refused by the kernel, not here, so that a
 * model whose training_mode is a graph input still loads.
 */
static kiln_status dropout_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_status st = kiln__attr_expect(node, "ratio", KILN_ATTR_FLOAT, err);
    if (!st) st = kiln__attr_expect(node, "seed", KILN_ATTR_INT, err);
    if (!st) st = kiln__attr_expect(node, "is_test", KILN_ATTR_INT, err);
    return st;
}

static kiln_status dropout_infer(const kiln_node *node, const void *params,
                                 const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0];
    if (x->dtype != KILN_DT_UNDEFINED && !is_float_dtype(x->dtype))
        FAIL(KILN_ERR_DTYPE, "node '%s' (Dropout): input must be a float type, got %s", node->name,
             kiln_dtype_name(x->dtype));
    const kiln_value *ratio = node->n_in > 1 ? in[1] : NULL;
    const kiln_value *mode = node->n_in > 2 ? in[2] : NULL;
    if (ratio) {
        if (ratio->dtype != KILN_DT_UNDEFINED && !is_float_dtype(ratio->dtype))
            FAIL(KILN_ERR_DTYPE, "node '%s' (Dropout): ratio must be a float type, got %s",
                 node->name, kiln_dtype_name(ratio->dtype));
        int64_t n = kiln__shape_numel(&ratio->shape);
        if (ratio->shape.rank > 1 || (n >= 0 && n != 1))
            FAIL(KILN_ERR_SHAPE, "node '%s' (Dropout): ratio must be a scalar", node->name);
    }
    if (mode) {
        if (mode->dtype != KILN_DT_UNDEFINED && mode->dtype != KILN_DT_BOOL)
            FAIL(KILN_ERR_DTYPE, "node '%s' (Dropout): training_mode must be bool, got %s",
                 node->name, kiln_dtype_name(mode->dtype));
        int64_t n = kiln__shape_numel(&mode->shape);
        if (mode->shape.rank > 1 || (n >= 0 && n != 1))
            FAIL(KILN_ERR_SHAPE, "node '%s' (Dropout): training_mode must be a scalar", node->name);
    }
    kiln__value_set_type(&out[0], x->dtype, &x->shape);
    /* Before opset 10 the mask has the input's type; since then it is bool. */
    if (node->n_out > 1)
        kiln__value_set_type(&out[1], node->opset < 10 ? x->dtype : KILN_DT_BOOL, &x->shape);
    return KILN_OK;
}

/* ---- table ---------------------------------------------------------------- */

const kiln_op_schema kiln__ops_shape[] = {
    {"Shape", "", 1, 1, 1, 1, 1, sizeof(kiln_shape_op_params), shape_parse, shape_infer},
    {"Size", "", 1, 1, 1, 1, 1, 0, NULL, size_infer},
    {"ConstantOfShape", "", 9, 1, 1, 1, 1, sizeof(kiln_constant_of_shape_params), cos_parse, cos_infer},
    {"Constant", "", 1, 0, 0, 1, 1, 0, constant_parse, constant_infer},
    {"Identity", "", 1, 1, 1, 1, 1, 0, NULL, identity_infer},
    {"Range", "", 11, 3, 3, 1, 1, 0, NULL, range_infer},
    {"Reshape", "", 1, 1, 2, 1, 1, 0, reshape_parse, reshape_infer},
    {"Flatten", "", 1, 1, 1, 1, 1, 0, axis_parse, flatten_infer},
    {"Squeeze", "", 1, 1, 2, 1, 1, 0, axes_parse, squeeze_infer},
    {"Unsqueeze", "", 1, 1, 2, 1, 1, 0, axes_parse, unsqueeze_infer},
    {"Expand", "", 8, 2, 2, 1, 1, 0, NULL, expand_infer},
    {"EyeLike", "", 9, 1, 1, 1, 1, sizeof(kiln_eyelike_params), eyelike_parse, eyelike_infer},
    {"Dropout", "", 7, 1, 3, 1, 2, 0, dropout_parse, dropout_infer},
    {0},
};
