/*
 * Op schemas of the movement family: ops that copy elements to new places
 * (Concat, Split, Slice, Gather, GatherElements, Transpose, Tile,
 * DepthToSpace, SpaceToDepth, Pad).
 *
 * Concat, Gather and Slice also carry `symval` through small int64 shape
 * computations so that symbolic H/W survive PyTorch exports.
 */
#include "ops_movement.h"
#include "ops_util.h"
#include <stdlib.h>
#include <string.h>

#define FAIL(st, ...) return kiln__fail(err, st, __VA_ARGS__)
#define MANY 65535

/* Values past this magnitude in starts/ends are "to the end" (INT64_MAX, INT_MAX, ...). */
#define BIG ((int64_t)1 << 40)

static kiln_status expect_ints(const kiln_node *node, const char *const *names, int n, kiln_err *err)
{
    for (int i = 0; i < n; i++) {
        kiln_status st = kiln__attr_expect(node, names[i], KILN_ATTR_INTS, err);
        if (st) return st;
    }
    return KILN_OK;
}

/* Split, Gather, GatherElements: 'axis', default 0. */
static kiln_status axis_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_axis_params *p = params;
    kiln_status st = kiln__attr_expect(node, "axis", KILN_ATTR_INT, err);
    if (st) return st;
    p->axis = kiln__attr_int(node, "axis", 0);
    return KILN_OK;
}

/* Merges two dims that must be equal; fails when both are constant and differ. */
static kiln_status merge_dim(const kiln_node *node, kiln_dim *acc, kiln_dim d, int axis,
                             kiln_err *err)
{
    if (kiln__dim_is_const(*acc) && kiln__dim_is_const(d)) {
        if (acc->add != d.add)
            FAIL(KILN_ERR_SHAPE, "node '%s' (%s): dim %d is %lld in one input and %lld in another",
                 node->name, node->op_type, axis, (long long)acc->add, (long long)d.add);
    } else if (kiln__dim_is_const(d) || acc->sym == KILN_SYM_UNKNOWN) {
        *acc = d;
    }
    return KILN_OK;
}

/* ---- Concat --------------------------------------------------------------- */

static kiln_status concat_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_status st = axis_parse(node, params, err);
    if (st) return st;
    if (node->opset >= 4 && !kiln__node_attr(node, "axis"))
        FAIL(KILN_ERR_INVALID_ARG, "node '%s' (Concat): attribute 'axis' is required", node->name);
    /* Concat-1 defaulted to the channel axis. */
    ((kiln_axis_params *)params)->axis = kiln__attr_int(node, "axis", 1);
    return KILN_OK;
}

static kiln_status concat_infer(const kiln_node *node, const void *params,
                                const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    kiln_dtype dt = KILN_DT_UNDEFINED;
    int rank = -1;
    for (int i = 0; i < node->n_in; i++) {
        if (!in[i]) FAIL(KILN_ERR_GRAPH, "node '%s' (Concat): input %d is empty", node->name, i);
        if (in[i]->dtype != KILN_DT_UNDEFINED) {
            if (dt != KILN_DT_UNDEFINED && dt != in[i]->dtype)
                FAIL(KILN_ERR_DTYPE, "node '%s' (Concat): input %d is %s, input 0 is %s",
                     node->name, i, kiln_dtype_name(in[i]->dtype), kiln_dtype_name(dt));
            dt = in[i]->dtype;
        }
        int r = in[i]->shape.rank;
        if (r >= 0) {
            if (rank >= 0 && r != rank)
                FAIL(KILN_ERR_SHAPE, "node '%s' (Concat): input %d has rank %d, another has %d",
                     node->name, i, r, rank);
            rank = r;
        }
    }
    kiln_shape s = {.rank = rank};
    if (rank >= 0) {
        if (rank == 0)
            FAIL(KILN_ERR_SHAPE, "node '%s' (Concat): inputs are scalars", node->name);
        int64_t axis = 0;
        kiln_status st = kiln__ops_norm_axis(node, ((const kiln_axis_params *)params)->axis, rank, &axis, err);
        if (st) return st;
        for (int k = 0; k < rank; k++) s.d[k] = kiln__dim_unknown();
        kiln_dim sum = kiln__dim_const(0);
        for (int i = 0; i < node->n_in; i++) {
            if (in[i]->shape.rank < 0) {
                sum = kiln__dim_unknown();
                continue;
            }
            for (int k = 0; k < rank; k++) {
                if (k == axis) continue;
                st = merge_dim(node, &s.d[k], in[i]->shape.d[k], k, err);
                if (st) return st;
            }
            kiln_dim d = in[i]->shape.d[axis];
            if (kiln__dim_is_const(sum) && kiln__dim_is_const(d)) {
                if (__builtin_add_overflow(sum.add, d.add, &sum.add))
                    FAIL(KILN_ERR_LIMIT, "node '%s' (Concat): concatenated dim overflows",
                         node->name);
            } else if (kiln__dim_is_const(d))
                sum = kiln__ops_dim_add(sum, d.add);
            else if (kiln__dim_is_const(sum))
                sum = kiln__ops_dim_add(d, sum.add);
            else
                sum = kiln__dim_add_dim(sum, d);
        }
        s.d[axis] = sum;
        st = kiln__ops_check_numel(node, &s, err);
        if (st) return st;
    }
    kiln__value_set_type(&out[0], dt, &s);

    /* Shape vectors: concatenate their known contents. */
    if (dt == KILN_DT_INT64 && rank == 1) {
        kiln_dim all[KILN_SYMVAL_MAX];
        int total = 0;
        for (int i = 0; i < node->n_in; i++) {
            kiln_dim d[KILN_SYMVAL_MAX];
            int n;
            bool known;
            int64_t len = kiln__shape_numel(&in[i]->shape);
            if (len < 0 || len > KILN_SYMVAL_MAX - total) return KILN_OK;
            kiln_status st = kiln__ops_read_ints(node, in[i], "input", d, KILN_SYMVAL_MAX, &n,
                                                 &known, err);
            if (st) return st;
            if (!known) return KILN_OK;
            memcpy(all + total, d, sizeof(kiln_dim) * (size_t)n);
            total += n;
        }
        kiln__ops_set_symval(&out[0], all, total);
    }
    return KILN_OK;
}

/* ---- Split ---------------------------------------------------------------- */

static kiln_status split_parse(const kiln_node *node, void *params, kiln_err *err)
{
    static const char *const ints[] = {"split"};
    kiln_status st = axis_parse(node, params, err);
    if (!st) st = expect_ints(node, ints, 1, err);
    if (!st) st = kiln__attr_expect(node, "num_outputs", KILN_ATTR_INT, err);
    if (st) return st;
    const kiln_attr *no = kiln__node_attr(node, "num_outputs");
    if (no && no->i != node->n_out)
        FAIL(KILN_ERR_INVALID_ARG, "node '%s' (Split): num_outputs is %lld but node has %d outputs",
             node->name, (long long)no->i, node->n_out);
    return KILN_OK;
}

static kiln_status split_infer(const kiln_node *node, const void *params,
                               const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0];
    int n_out = node->n_out, r = x->shape.rank;
    if (r < 0) {
        kiln_shape s = {.rank = -1};
        for (int i = 0; i < n_out; i++) kiln__value_set_type(&out[i], x->dtype, &s);
        return KILN_OK;
    }
    int64_t axis = 0;
    kiln_status st = kiln__ops_norm_axis(node, ((const kiln_axis_params *)params)->axis, r, &axis, err);
    if (st) return st;
    kiln_dim d = x->shape.d[axis];

    /* Explicit sizes: the attribute before opset 13, the second input after. */
    const int64_t *sv;
    int64_t n_attr = kiln__attr_ints(node, "split", &sv);
    bool have_split = n_attr >= 0 || (node->n_in >= 2 && in[1]);
    kiln_dim *sz = kiln__calloc((size_t)n_out, sizeof(kiln_dim));
    if (!sz) FAIL(KILN_ERR_OUT_OF_MEMORY, "node '%s' (Split): out of memory", node->name);
    for (int i = 0; i < n_out; i++) sz[i] = kiln__dim_unknown();
    st = KILN_OK;
    if (have_split) {
        int64_t cnt = n_attr;
        bool known = true;
        const int64_t *vals = sv;
        int64_t *owned = NULL;
        if (n_attr < 0) {
            const kiln_value *sp = in[1];
            cnt = kiln__ops_const_len(sp);
            if (sp->shape.rank > 1 || (sp->dtype != KILN_DT_INT64 && sp->dtype != KILN_DT_UNDEFINED)) {
                st = kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Split): 'split' must be 1-D int64",
                                node->name);
                goto done;
            }
            known = sp->data != NULL && cnt >= 0;
            if (known) {
                owned = kiln__calloc((size_t)(cnt ? cnt : 1), sizeof(int64_t));
                if (!owned) {
                    st = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s': out of memory", node->name);
                    goto done;
                }
                for (int64_t i = 0; i < cnt; i++) owned[i] = kiln__value_get_i64(sp, i);
                vals = owned;
            }
        }
        if (cnt >= 0 && cnt != n_out) {
            st = kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Split): 'split' has %lld entries for %d outputs",
                            node->name, (long long)cnt, n_out);
        } else if (known) {
            int64_t sum = 0;
            for (int i = 0; i < n_out && !st; i++) {
                if (vals[i] < 0 || __builtin_add_overflow(sum, vals[i], &sum))
                    st = kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Split): split[%d] is %lld",
                                    node->name, i, (long long)vals[i]);
                sz[i] = kiln__dim_const(vals[i]);
            }
            if (!st && kiln__dim_is_const(d) && sum != d.add)
                st = kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Split): sizes sum to %lld, dim %lld is %lld",
                                node->name, (long long)sum, (long long)axis, (long long)d.add);
        }
        free(owned);
    } else if (kiln__dim_is_const(d)) {
        /* Equal parts; with num_outputs (opset 18) the last part may be smaller. */
        int64_t chunk = d.add / n_out;
        if (d.add % n_out) {
            if (!kiln__node_attr(node, "num_outputs") && node->opset < 18) {
                st = kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Split): dim %lld (%lld) does not split into %d equal parts",
                                node->name, (long long)axis, (long long)d.add, n_out);
                goto done;
            }
            chunk = d.add / n_out + 1;
        }
        int64_t left = d.add;
        for (int i = 0; i < n_out; i++) {
            int64_t c = i == n_out - 1 ? left : chunk;
            if (c < 0) {
                st = kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Split): dim %lld (%lld) cannot make %d parts of %lld",
                                node->name, (long long)axis, (long long)d.add, n_out, (long long)chunk);
                goto done;
            }
            sz[i] = kiln__dim_const(c);
            left -= c;
        }
    } else {
        for (int i = 0; i < n_out; i++) sz[i] = kiln__ops_dim_div(d, n_out);
    }
    for (int i = 0; i < n_out && !st; i++) {
        kiln_shape s = x->shape;
        s.d[axis] = sz[i];
        kiln__value_set_type(&out[i], x->dtype, &s);
    }
done:
    free(sz);
    return st;
}

/* ---- Slice ---------------------------------------------------------------- */

static kiln_status slice_parse(const kiln_node *node, void *params, kiln_err *err)
{
    static const char *const ints[] = {"starts", "ends", "axes"};
    kiln_status st = expect_ints(node, ints, 3, err);
    if (st) return st;
    if (node->opset < 10 && (!kiln__node_attr(node, "starts") || !kiln__node_attr(node, "ends")))
        FAIL(KILN_ERR_INVALID_ARG, "node '%s' (Slice): 'starts' and 'ends' are required", node->name);
    if (node->opset < 10 && node->n_in > 1)
        FAIL(KILN_ERR_INVALID_ARG, "node '%s' (Slice): opset %lld takes one input", node->name,
             (long long)node->opset);
    if (node->opset >= 10 && node->n_in < 3)
        FAIL(KILN_ERR_INVALID_ARG, "node '%s' (Slice): needs data, starts and ends inputs", node->name);
    return KILN_OK;
}

typedef struct slice_args {
    int n;                         /* number of sliced axes */
    kiln_dim starts[KILN_MAX_DIMS], ends[KILN_MAX_DIMS];
    int64_t axes[KILN_MAX_DIMS];   /* normalized */
    int64_t steps[KILN_MAX_DIMS];
    bool known;                    /* starts/ends/axes/steps all known (starts/ends may be symbolic) */
    bool axes_known;
} slice_args;

static kiln_status read_attr_dims(const kiln_node *node, const char *name, kiln_dim *d, int *n,
                                  kiln_err *err)
{
    const int64_t *v;
    int64_t cnt = kiln__attr_ints(node, name, &v);
    if (cnt > KILN_MAX_DIMS)
        FAIL(KILN_ERR_LIMIT, "node '%s' (Slice): '%s' has %lld entries, at most %d supported",
             node->name, name, (long long)cnt, KILN_MAX_DIMS);
    *n = (int)cnt;
    for (int64_t i = 0; i < cnt; i++) d[i] = kiln__dim_const(v[i]);
    return KILN_OK;
}

/* Gathers Slice's starts/ends/axes/steps from attributes (opset < 10) or inputs; rank >= 0. */
static kiln_status slice_args_get(const kiln_node *node, const kiln_value *const *in, int rank,
                                  slice_args *a, kiln_err *err)
{
    memset(a, 0, sizeof *a);
    kiln_dim axes[KILN_MAX_DIMS], steps[KILN_MAX_DIMS];
    int ns = -1, ne = -1, na = -1, nst = -1;
    bool ks = true, ke = true, ka = true, kst = true;
    kiln_status st;
    if (node->opset < 10) {
        if ((st = read_attr_dims(node, "starts", a->starts, &ns, err))) return st;
        if ((st = read_attr_dims(node, "ends", a->ends, &ne, err))) return st;
        if ((st = read_attr_dims(node, "axes", axes, &na, err))) return st;
    } else {
        if ((st = kiln__ops_read_ints(node, in[1], "starts", a->starts, KILN_MAX_DIMS, &ns, &ks, err)))
            return st;
        if ((st = kiln__ops_read_ints(node, in[2], "ends", a->ends, KILN_MAX_DIMS, &ne, &ke, err)))
            return st;
        if (!ks) ns = (int)kiln__ops_const_len(in[1]);
        if (!ke) ne = (int)kiln__ops_const_len(in[2]);
        if (node->n_in > 3 && in[3]) {
            if ((st = kiln__ops_read_ints(node, in[3], "axes", axes, KILN_MAX_DIMS, &na, &ka, err)))
                return st;
            if (!ka) na = -1;
        }
        if (node->n_in > 4 && in[4]) {
            if ((st = kiln__ops_read_ints(node, in[4], "steps", steps, KILN_MAX_DIMS, &nst, &kst, err)))
                return st;
            if (!kst) nst = -1;
        }
    }
    if (ns >= 0 && ne >= 0 && ns != ne)
        FAIL(KILN_ERR_SHAPE, "node '%s' (Slice): %d starts but %d ends", node->name, ns, ne);
    a->n = ns >= 0 ? ns : ne;
    bool axes_given = node->opset < 10 ? na >= 0 : (node->n_in > 3 && in[3]);
    bool steps_given = node->opset >= 10 && node->n_in > 4 && in[4];
    if (a->n >= 0 && ((na >= 0 && na != a->n) || (nst >= 0 && nst != a->n)))
        FAIL(KILN_ERR_SHAPE, "node '%s' (Slice): starts, ends, axes and steps differ in length",
             node->name);
    if (a->n > rank)
        FAIL(KILN_ERR_SHAPE, "node '%s' (Slice): %d axes sliced on rank %d", node->name, a->n, rank);
    a->axes_known = a->n >= 0 && (!axes_given || ka);
    if (a->axes_known) {
        bool seen[KILN_MAX_DIMS] = {false};
        for (int i = 0; i < a->n; i++) {
            if (axes_given && !kiln__dim_is_const(axes[i])) {
                a->axes_known = false;
                break;
            }
            int64_t ax = axes_given ? axes[i].add : i;
            if ((st = kiln__ops_norm_axis(node, ax, rank, &a->axes[i], err))) return st;
            if (seen[a->axes[i]])
                FAIL(KILN_ERR_SHAPE, "node '%s' (Slice): axis %lld repeated", node->name, (long long)ax);
            seen[a->axes[i]] = true;
        }
    }
    a->known = a->axes_known && ks && ke && (!steps_given || kst);
    for (int i = 0; a->n >= 0 && i < a->n; i++) {
        a->steps[i] = 1;
        if (steps_given && kst) {
            if (!kiln__dim_is_const(steps[i])) {
                a->known = false;
                continue;
            }
            a->steps[i] = steps[i].add;
            if (a->steps[i] == 0)
                FAIL(KILN_ERR_SHAPE, "node '%s' (Slice): steps[%d] is 0", node->name, i);
        }
    }
    return KILN_OK;
}

/* Clamped start and element count of one sliced axis of constant length d. */
static void slice_axis(int64_t d, int64_t s, int64_t e, int64_t step, int64_t *start, int64_t *count)
{
    /* s + d cannot overflow: s < 0 and d >= 0. */
    if (s < 0) s += d;
    if (e < 0) e += d;
    if (step > 0) {
        s = s < 0 ? 0 : (s > d ? d : s);
        e = e < 0 ? 0 : (e > d ? d : e);
        *count = e > s ? (e - s - 1) / step + 1 : 0;
    } else {
        s = s < 0 ? 0 : (s > d - 1 ? d - 1 : s);
        e = e < -1 ? -1 : (e > d - 1 ? d - 1 : e);
        /* -step would overflow for INT64_MIN; any such step takes one element. */
        *count = s > e ? (step == INT64_MIN ? 1 : (s - e - 1) / -step + 1) : 0;
    }
    *start = s;
}

/* A slice bound relative to a symbolic length: `rel` means d + c, else the constant c. */
typedef struct bound {
    bool rel;
    int64_t c;
} bound;

static bool sym_bound(kiln_dim v, kiln_dim d, int64_t step, bound *b)
{
    if (!kiln__dim_is_const(v)) {
        /* e.g. ends = H - 1 computed from Shape: same symbol as the sliced dim. */
        if (v.sym >= 0 && v.sym == d.sym && v.mul == d.mul && v.div == 1 && d.div == 1) {
            *b = (bound){true, v.add - d.add};
            return true;
        }
        return false;
    }
    int64_t x = v.add;
    if (x >= BIG) *b = step > 0 ? (bound){true, 0} : (bound){true, -1};
    else if (x <= -BIG) *b = step > 0 ? (bound){false, 0} : (bound){false, -1};
    else if (x < 0) *b = (bound){true, x};
    else *b = (bound){false, x};
    return true;
}

/* Length of a slice of a symbolic dim d, or unknown. */
static kiln_dim slice_sym_len(kiln_dim d, kiln_dim sv, kiln_dim ev, int64_t step)
{
    bound s, e;
    if (d.sym < 0 || !sym_bound(sv, d, step, &s) || !sym_bound(ev, d, step, &e) ||
        step <= -BIG || step >= BIG)
        return kiln__dim_unknown();
    int64_t k = step > 0 ? step : -step;
    bound hi = step > 0 ? e : s, lo = step > 0 ? s : e;
    if (hi.rel == lo.rel) {
        int64_t diff = hi.c - lo.c;
        if (diff <= 0) return kiln__dim_const(0);
        if (hi.rel) return kiln__dim_const((diff - 1) / k + 1);
        return kiln__dim_unknown(); /* both fixed: depends on whether d reaches them */
    }
    if (hi.rel) /* (d + hi.c - lo.c) / k rounded up, assuming d is long enough */
        return kiln__ops_dim_div(kiln__ops_dim_add(d, hi.c - lo.c + k - 1), k);
    return kiln__dim_unknown();
}

kiln_status kiln__slice_resolve(const kiln_node *node, const kiln_value *const *in, int rank,
                                const int64_t *dims, int64_t *start, int64_t *step, int64_t *count,
                                kiln_err *err)
{
    slice_args a;
    kiln_status st = slice_args_get(node, in, rank, &a, err);
    if (st) return st;
    if (!a.known || a.n < 0)
        FAIL(KILN_ERR_INTERNAL, "node '%s' (Slice): starts/ends not known", node->name);
    for (int k = 0; k < rank; k++) {
        start[k] = 0;
        step[k] = 1;
        count[k] = dims[k];
    }
    for (int i = 0; i < a.n; i++) {
        int64_t ax = a.axes[i];
        if (!kiln__dim_is_const(a.starts[i]) || !kiln__dim_is_const(a.ends[i]))
            FAIL(KILN_ERR_INTERNAL, "node '%s' (Slice): starts/ends not constant", node->name);
        step[ax] = a.steps[i];
        slice_axis(dims[ax], a.starts[i].add, a.ends[i].add, a.steps[i], &start[ax], &count[ax]);
    }
    return KILN_OK;
}

static kiln_status slice_infer(const kiln_node *node, const void *params,
                               const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0];
    kiln_shape s = x->shape;
    if (s.rank < 0) {
        kiln__value_set_type(&out[0], x->dtype, &s);
        return KILN_OK;
    }
    if (s.rank == 0) FAIL(KILN_ERR_SHAPE, "node '%s' (Slice): input is a scalar", node->name);
    slice_args a;
    kiln_status st = slice_args_get(node, in, s.rank, &a, err);
    if (st) return st;
    if (!a.axes_known) {
        for (int k = 0; k < s.rank; k++) s.d[k] = kiln__dim_unknown();
    } else {
        for (int i = 0; i < a.n; i++) {
            int64_t ax = a.axes[i];
            kiln_dim d = x->shape.d[ax];
            if (!a.known) {
                s.d[ax] = kiln__dim_unknown();
            } else if (kiln__dim_is_const(d) && kiln__dim_is_const(a.starts[i]) &&
                       kiln__dim_is_const(a.ends[i])) {
                int64_t b = 0, c = 0;
                slice_axis(d.add, a.starts[i].add, a.ends[i].add, a.steps[i], &b, &c);
                s.d[ax] = kiln__dim_const(c);
            } else {
                s.d[ax] = slice_sym_len(d, a.starts[i], a.ends[i], a.steps[i]);
            }
        }
    }
    kiln__value_set_type(&out[0], x->dtype, &s);

    /* Shape vectors: Shape(x)[2:4] and the like keep their symbols. */
    if (x->dtype == KILN_DT_INT64 && s.rank == 1 && a.known && kiln__shape_is_const(&x->shape) &&
        x->shape.d[0].add <= KILN_SYMVAL_MAX && kiln__shape_is_const(&s)) {
        kiln_dim v[KILN_SYMVAL_MAX];
        int n;
        bool known;
        st = kiln__ops_read_ints(node, x, "data", v, KILN_SYMVAL_MAX, &n, &known, err);
        if (st) return st;
        int64_t b = 0, step = 1, c = n;
        if (!known || (a.n == 1 && (!kiln__dim_is_const(a.starts[0]) ||
                                    !kiln__dim_is_const(a.ends[0]))))
            return KILN_OK;
        if (a.n == 1) slice_axis(n, a.starts[0].add, a.ends[0].add, a.steps[0], &b, &c);
        kiln_dim o[KILN_SYMVAL_MAX];
        if (a.n == 1) step = a.steps[0];
        for (int64_t i = 0; i < c; i++) o[i] = v[b + i * step];
        kiln__ops_set_symval(&out[0], o, (int)c);
    }
    return KILN_OK;
}

/* ---- Gather / GatherElements ---------------------------------------------- */

static bool is_index_dtype(kiln_dtype dt)
{
    return dt == KILN_DT_INT64 || dt == KILN_DT_INT32 || dt == KILN_DT_UNDEFINED;
}

static kiln_status gather_infer(const kiln_node *node, const void *params,
                                const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0], *idx = in[1];
    if (!is_index_dtype(idx->dtype))
        FAIL(KILN_ERR_DTYPE, "node '%s' (Gather): indices must be int32/int64, got %s", node->name,
             kiln_dtype_name(idx->dtype));
    kiln_shape s = {.rank = -1};
    int r = x->shape.rank, q = idx->shape.rank;
    if (r == 0) FAIL(KILN_ERR_SHAPE, "node '%s' (Gather): data is a scalar", node->name);
    int64_t axis = 0;
    if (r > 0) {
        kiln_status st = kiln__ops_norm_axis(node, ((const kiln_axis_params *)params)->axis, r, &axis, err);
        if (st) return st;
    }
    if (r > 0 && q >= 0) {
        if (r - 1 + q > KILN_MAX_DIMS)
            FAIL(KILN_ERR_LIMIT, "node '%s' (Gather): output rank %d, at most %d supported",
                 node->name, r - 1 + q, KILN_MAX_DIMS);
        s.rank = r - 1 + q;
        int o = 0;
        for (int k = 0; k < axis; k++) s.d[o++] = x->shape.d[k];
        for (int k = 0; k < q; k++) s.d[o++] = idx->shape.d[k];
        for (int k = (int)axis + 1; k < r; k++) s.d[o++] = x->shape.d[k];
    }
    /* Indices known (always at run time): check their range now. */
    kiln_dim d = r > 0 ? x->shape.d[axis] : kiln__dim_unknown();
    int64_t ni = kiln__shape_numel(&idx->shape);
    if (idx->data && ni >= 0 && kiln__dim_is_const(d)) {
        for (int64_t i = 0; i < ni; i++) {
            int64_t v = kiln__value_get_i64(idx, i);
            if (v < -d.add || v >= d.add)
                FAIL(KILN_ERR_SHAPE, "node '%s' (Gather): index %lld out of range for dim %lld of size %lld",
                     node->name, (long long)v, (long long)axis, (long long)d.add);
        }
    }
    kiln__value_set_type(&out[0], x->dtype, &s);

    /* Picking entries of a shape vector: Gather(Shape(x), 2) is H. */
    if (x->dtype == KILN_DT_INT64 && r == 1 && ni >= 0 && ni <= KILN_SYMVAL_MAX && q <= 1 &&
        kiln__dim_is_const(d)) {
        kiln_dim v[KILN_SYMVAL_MAX], iv[KILN_SYMVAL_MAX], o[KILN_SYMVAL_MAX];
        int n, nidx;
        bool known, kidx;
        kiln_status st = kiln__ops_read_ints(node, x, "data", v, KILN_SYMVAL_MAX, &n, &known, err);
        if (!st) st = kiln__ops_read_ints(node, idx, "indices", iv, KILN_SYMVAL_MAX, &nidx, &kidx, err);
        if (st) return st;
        if (!known || !kidx || n != d.add || nidx != ni) return KILN_OK;
        for (int64_t i = 0; i < ni; i++) {
            if (!kiln__dim_is_const(iv[i])) return KILN_OK;
            int64_t k = iv[i].add;
            if (k < -(int64_t)n || k >= n)
                FAIL(KILN_ERR_SHAPE, "node '%s' (Gather): index %lld out of range for size %d",
                     node->name, (long long)k, n);
            o[i] = v[k < 0 ? k + n : k];
        }
        kiln__ops_set_symval(&out[0], o, (int)ni);
    }
    return KILN_OK;
}

static kiln_status gather_elements_infer(const kiln_node *node, const void *params,
                                         const kiln_value *const *in, kiln_value *out,
                                         kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0], *idx = in[1];
    if (!is_index_dtype(idx->dtype))
        FAIL(KILN_ERR_DTYPE, "node '%s' (GatherElements): indices must be int32/int64, got %s",
             node->name, kiln_dtype_name(idx->dtype));
    int r = x->shape.rank, q = idx->shape.rank;
    if (r >= 0 && q >= 0 && r != q)
        FAIL(KILN_ERR_SHAPE, "node '%s' (GatherElements): data rank %d, indices rank %d", node->name,
             r, q);
    if (r == 0 || q == 0)
        FAIL(KILN_ERR_SHAPE, "node '%s' (GatherElements): scalar input", node->name);
    if (r > 0) {
        int64_t axis = 0;
        kiln_status st = kiln__ops_norm_axis(node, ((const kiln_axis_params *)params)->axis, r, &axis, err);
        if (st) return st;
        for (int k = 0; k < r && q >= 0; k++) {
            kiln_dim a = x->shape.d[k], b = idx->shape.d[k];
            if (k != axis && kiln__dim_is_const(a) && kiln__dim_is_const(b) && b.add > a.add)
                FAIL(KILN_ERR_SHAPE, "node '%s' (GatherElements): indices dim %d (%lld) exceeds data's (%lld)",
                     node->name, k, (long long)b.add, (long long)a.add);
        }
    }
    kiln__value_set_type(&out[0], x->dtype, &idx->shape);
    return KILN_OK;
}

/* ---- Transpose ------------------------------------------------------------ */

static kiln_status transpose_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_transpose_params *p = params;
    static const char *const ints[] = {"perm"};
    kiln_status st = expect_ints(node, ints, 1, err);
    if (st) return st;
    const int64_t *perm;
    p->n_perm = kiln__attr_ints(node, "perm", &perm);
    /* More entries than any rank: infer() reports the mismatch with the input's rank. */
    for (int64_t k = 0; k < p->n_perm && k < KILN_MAX_DIMS; k++) p->perm[k] = perm[k];
    return KILN_OK;
}

static kiln_status transpose_infer(const kiln_node *node, const void *params,
                                   const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0];
    const kiln_transpose_params *tp = params;
    const int64_t *perm = tp->perm;
    int64_t np = tp->n_perm;
    int r = x->shape.rank;
    kiln_shape s = {.rank = r >= 0 ? r : (np >= 0 && np <= KILN_MAX_DIMS ? (int)np : -1)};
    for (int k = 0; k < s.rank; k++) s.d[k] = kiln__dim_unknown();
    if (r >= 0) {
        if (np >= 0 && np != r)
            FAIL(KILN_ERR_SHAPE, "node '%s' (Transpose): perm has %lld entries, input rank %d",
                 node->name, (long long)np, r);
        bool seen[KILN_MAX_DIMS] = {false};
        for (int k = 0; k < r; k++) {
            int64_t p = np >= 0 ? perm[k] : r - 1 - k;
            if (p < 0 || p >= r || seen[p])
                FAIL(KILN_ERR_SHAPE, "node '%s' (Transpose): perm is not a permutation of 0..%d",
                     node->name, r - 1);
            seen[p] = true;
            s.d[k] = x->shape.d[p];
        }
    }
    kiln__value_set_type(&out[0], x->dtype, &s);
    return KILN_OK;
}

/* ---- Tile ----------------------------------------------------------------- */

static kiln_status tile_infer(const kiln_node *node, const void *params,
                              const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0];
    int r = x->shape.rank;
    kiln_dim rep[KILN_MAX_DIMS];
    int n;
    bool known;
    kiln_status st = kiln__ops_read_ints(node, in[1], "repeats", rep, KILN_MAX_DIMS, &n, &known, err);
    if (st) return st;
    kiln_shape s = x->shape;
    if (r >= 0) {
        if (known && n != r)
            FAIL(KILN_ERR_SHAPE, "node '%s' (Tile): %d repeats for rank %d", node->name, n, r);
        for (int k = 0; k < r; k++) {
            if (!known || !kiln__dim_is_const(rep[k])) {
                s.d[k] = kiln__dim_unknown();
                continue;
            }
            int64_t m = rep[k].add;
            if (m < 0)
                FAIL(KILN_ERR_SHAPE, "node '%s' (Tile): repeats[%d] is %lld", node->name, k,
                     (long long)m);
            kiln_dim d = x->shape.d[k];
            if (kiln__dim_is_const(d)) {
                int64_t v;
                if (__builtin_mul_overflow(d.add, m, &v))
                    FAIL(KILN_ERR_LIMIT, "node '%s' (Tile): dim %d overflows", node->name, k);
                s.d[k] = kiln__dim_const(v);
            } else {
                s.d[k] = kiln__ops_dim_mul(d, m);
            }
        }
        st = kiln__ops_check_numel(node, &s, err);
        if (st) return st;
    }
    kiln__value_set_type(&out[0], x->dtype, &s);
    return KILN_OK;
}

/* ---- DepthToSpace / SpaceToDepth ------------------------------------------ */

static kiln_status d2s_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_status st = kiln__attr_expect(node, "blocksize", KILN_ATTR_INT, err);
    if (!st) st = kiln__attr_expect(node, "mode", KILN_ATTR_STRING, err);
    if (st) return st;
    if (!kiln__node_attr(node, "blocksize"))
        FAIL(KILN_ERR_INVALID_ARG, "node '%s' (%s): attribute 'blocksize' is required", node->name,
             node->op_type);
    int64_t b = kiln__attr_int(node, "blocksize", 0);
    if (b < 1 || b > 1024)
        FAIL(KILN_ERR_INVALID_ARG, "node '%s' (%s): blocksize %lld", node->name, node->op_type,
             (long long)b);
    const char *mode = kiln__attr_string(node, "mode", "DCR");
    if (strcmp(mode, "DCR") && strcmp(mode, "CRD"))
        FAIL(KILN_ERR_UNSUPPORTED, "node '%s' (%s): mode '%s' unsupported", node->name,
             node->op_type, mode);
    kiln_depth_space_params *p = params;
    p->blocksize = b;
    p->crd = !strcmp(mode, "CRD");
    return KILN_OK;
}

static kiln_status d2s_infer(const kiln_node *node, const void *params,
                             const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_value *x = in[0];
    bool to_space = !strcmp(node->op_type, "DepthToSpace");
    int64_t b = ((const kiln_depth_space_params *)params)->blocksize;
    kiln_shape s = {.rank = 4};
    if (x->shape.rank >= 0 && x->shape.rank != 4)
        FAIL(KILN_ERR_SHAPE, "node '%s' (%s): input must be 4-D, got rank %d", node->name,
             node->op_type, x->shape.rank);
    if (x->shape.rank < 0) {
        for (int k = 0; k < 4; k++) s.d[k] = kiln__dim_unknown();
        kiln__value_set_type(&out[0], x->dtype, &s);
        return KILN_OK;
    }
    const kiln_dim *d = x->shape.d;
    s.d[0] = d[0];
    if (to_space) {
        if (kiln__dim_is_const(d[1]) && d[1].add % (b * b))
            FAIL(KILN_ERR_SHAPE, "node '%s' (DepthToSpace): channels %lld not divisible by %lld",
                 node->name, (long long)d[1].add, (long long)(b * b));
        s.d[1] = kiln__ops_dim_div(d[1], b * b);
        s.d[2] = kiln__ops_dim_mul(d[2], b);
        s.d[3] = kiln__ops_dim_mul(d[3], b);
    } else {
        for (int k = 2; k < 4; k++)
            if (kiln__dim_is_const(d[k]) && d[k].add % b)
                FAIL(KILN_ERR_SHAPE, "node '%s' (SpaceToDepth): dim %d (%lld) not divisible by %lld",
                     node->name, k, (long long)d[k].add, (long long)b);
        s.d[1] = kiln__ops_dim_mul(d[1], b * b);
        s.d[2] = kiln__ops_dim_div(d[2], b);
        s.d[3] = kiln__ops_dim_div(d[3], b);
    }
    kiln_status st = kiln__ops_check_numel(node, &s, err);
    if (st) return st;
    kiln__value_set_type(&out[0], x->dtype, &s);
    return KILN_OK;
}

/* ---- Pad ------------------------------------------------------------------ */

static kiln_status pad_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_pad_params *p = params;
    static const char *const ints[] = {"pads", "paddings"};
    kiln_status st = expect_ints(node, ints, 2, err);
    if (!st) st = kiln__attr_expect(node, "mode", KILN_ATTR_STRING, err);
    if (!st) st = kiln__attr_expect(node, "value", KILN_ATTR_FLOAT, err);
    if (st) return st;
    const char *m = kiln__attr_string(node, "mode", "constant");
    if (!strcmp(m, "constant")) p->mode = KILN_PAD_CONSTANT;
    else if (!strcmp(m, "reflect")) p->mode = KILN_PAD_REFLECT;
    else if (!strcmp(m, "edge")) p->mode = KILN_PAD_EDGE;
    else if (!strcmp(m, "wrap")) p->mode = KILN_PAD_WRAP;
    else
        FAIL(KILN_ERR_UNSUPPORTED, "node '%s' (Pad): mode '%s' unsupported", node->name, m);
    if (node->opset < 11 && !kiln__node_attr(node, "pads") && !kiln__node_attr(node, "paddings"))
        FAIL(KILN_ERR_INVALID_ARG, "node '%s' (Pad): attribute 'pads' is required", node->name);
    if (node->opset >= 11 && node->n_in < 2)
        FAIL(KILN_ERR_INVALID_ARG, "node '%s' (Pad): input 'pads' is required", node->name);
    p->attr_form = node->opset < 11;
    if (p->attr_form) {
        const int64_t *v;
        p->n_pads = kiln__attr_ints(node, "pads", &v);
        if (p->n_pads < 0) p->n_pads = kiln__attr_ints(node, "paddings", &v);
        /* More entries than any rank needs: pad_args() reports the mismatch with the rank. */
        for (int64_t k = 0; k < p->n_pads && k < 2 * KILN_MAX_DIMS; k++) p->pads[k] = v[k];
        p->value = kiln__attr_float(node, "value", 0.0f);
    }
    return KILN_OK;
}

/*
 * Per-axis begin/end pads as dims. *known false when not known statically.
 * Fails on malformed pads/axes.
 */
static kiln_status pad_args(const kiln_node *node, const kiln_pad_params *p,
                            const kiln_value *const *in, int rank, kiln_dim *begin, kiln_dim *end,
                            bool *known, kiln_err *err)
{
    kiln_dim pads[2 * KILN_MAX_DIMS];
    int np = 0;
    kiln_status st;
    *known = true;
    for (int k = 0; k < rank; k++) begin[k] = end[k] = kiln__dim_const(0);
    if (p->attr_form) {
        const int64_t *v = p->pads;
        int64_t cnt = p->n_pads;
        if (cnt != 2 * rank)
            FAIL(KILN_ERR_SHAPE, "node '%s' (Pad): %lld pads for rank %d", node->name, (long long)cnt,
                 rank);
        for (int k = 0; k < rank; k++) {
            begin[k] = kiln__dim_const(v[k]);
            end[k] = kiln__dim_const(v[rank + k]);
        }
        return KILN_OK;
    }
    st = kiln__ops_read_ints(node, in[1], "pads", pads, 2 * KILN_MAX_DIMS, &np, known, err);
    if (st) return st;
    int64_t axes[KILN_MAX_DIMS];
    int na = rank;
    for (int k = 0; k < rank; k++) axes[k] = k;
    if (node->n_in > 3 && in[3]) {
        kiln_dim ad[KILN_MAX_DIMS];
        bool ka;
        st = kiln__ops_read_ints(node, in[3], "axes", ad, KILN_MAX_DIMS, &na, &ka, err);
        if (st) return st;
        if (!ka) {
            *known = false;
            return KILN_OK;
        }
        bool seen[KILN_MAX_DIMS] = {false};
        for (int i = 0; i < na; i++) {
            if (!kiln__dim_is_const(ad[i])) {
                *known = false;
                return KILN_OK;
            }
            if ((st = kiln__ops_norm_axis(node, ad[i].add, rank, &axes[i], err))) return st;
            if (seen[axes[i]])
                FAIL(KILN_ERR_SHAPE, "node '%s' (Pad): axis %lld repeated", node->name,
                     (long long)ad[i].add);
            seen[axes[i]] = true;
        }
    }
    if (!*known) return KILN_OK;
    if (np != 2 * na)
        FAIL(KILN_ERR_SHAPE, "node '%s' (Pad): %d pads for %d axes", node->name, np, na);
    for (int i = 0; i < na; i++) {
        begin[axes[i]] = pads[i];
        end[axes[i]] = pads[na + i];
    }
    return KILN_OK;
}

static kiln_status pad_check_axis(const kiln_node *node, const kiln_pad_params *p, int k, int64_t d,
                                  int64_t b, int64_t e, int64_t *out_dim, kiln_err *err)
{
    int64_t o = 0;
    if (b <= -BIG || b >= BIG || e <= -BIG || e >= BIG || __builtin_add_overflow(d, b + e, &o))
        FAIL(KILN_ERR_LIMIT, "node '%s' (Pad): pads %lld,%lld on dim %d are absurd", node->name,
             (long long)b, (long long)e, k);
    if (o < 0)
        FAIL(KILN_ERR_SHAPE, "node '%s' (Pad): pads %lld,%lld make dim %d (%lld) negative",
             node->name, (long long)b, (long long)e, k, (long long)d);
    if (p->mode != KILN_PAD_CONSTANT && d == 0 && o > 0)
        FAIL(KILN_ERR_SHAPE, "node '%s' (Pad): cannot pad empty dim %d in this mode", node->name, k);
    *out_dim = o;
    return KILN_OK;
}

kiln_status kiln__pad_resolve(const kiln_node *node, const kiln_pad_params *p,
                              const kiln_value *const *in, int rank, int64_t *begin, int64_t *end,
                              kiln_err *err)
{
    kiln_dim b[KILN_MAX_DIMS], e[KILN_MAX_DIMS];
    bool known;
    kiln_status st = pad_args(node, p, in, rank, b, e, &known, err);
    if (st) return st;
    for (int k = 0; k < rank; k++) {
        if (!known || !kiln__dim_is_const(b[k]) || !kiln__dim_is_const(e[k]))
            FAIL(KILN_ERR_INTERNAL, "node '%s' (Pad): pads not known", node->name);
        begin[k] = b[k].add;
        end[k] = e[k].add;
    }
    return KILN_OK;
}

static kiln_status pad_infer(const kiln_node *node, const void *params,
                             const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    kiln__ops_clear_symval(node, out);
    const kiln_pad_params *p = params;
    const kiln_value *x = in[0];
    kiln_shape s = x->shape;
    if (node->n_in > 2 && in[2]) {
        int64_t n = kiln__shape_numel(&in[2]->shape);
        if (in[2]->dtype != x->dtype && in[2]->dtype != KILN_DT_UNDEFINED &&
            x->dtype != KILN_DT_UNDEFINED)
            FAIL(KILN_ERR_DTYPE, "node '%s' (Pad): constant_value is %s, data is %s", node->name,
                 kiln_dtype_name(in[2]->dtype), kiln_dtype_name(x->dtype));
        if (n > 1 || in[2]->shape.rank > 1)
            FAIL(KILN_ERR_SHAPE, "node '%s' (Pad): constant_value must be a scalar", node->name);
    }
    if (s.rank >= 0) {
        kiln_dim b[KILN_MAX_DIMS], e[KILN_MAX_DIMS];
        bool known;
        kiln_status st = pad_args(node, p, in, s.rank, b, e, &known, err);
        if (st) return st;
        for (int k = 0; k < s.rank; k++) {
            kiln_dim d = x->shape.d[k];
            if (!known || !kiln__dim_is_const(b[k]) || !kiln__dim_is_const(e[k])) {
                s.d[k] = kiln__dim_unknown();
            } else if (kiln__dim_is_const(d)) {
                int64_t o = 0;
                st = pad_check_axis(node, p, k, d.add, b[k].add, e[k].add, &o, err);
                if (st) return st;
                s.d[k] = kiln__dim_const(o);
            } else if (b[k].add > -BIG && b[k].add < BIG && e[k].add > -BIG && e[k].add < BIG) {
                s.d[k] = kiln__ops_dim_add(d, b[k].add + e[k].add);
            } else {
                s.d[k] = kiln__dim_unknown();
            }
        }
        st = kiln__ops_check_numel(node, &s, err);
        if (st) return st;
    }
    kiln__value_set_type(&out[0], x->dtype, &s);
    return KILN_OK;
}

/* ---- table ---------------------------------------------------------------- */

const kiln_op_schema kiln__ops_movement[] = {
    {"Concat", "", 1, 1, MANY, 1, 1, sizeof(kiln_axis_params), concat_parse, concat_infer},
    {"Split", "", 1, 1, 2, 1, MANY, sizeof(kiln_axis_params), split_parse, split_infer},
    {"Slice", "", 1, 1, 5, 1, 1, 0, slice_parse, slice_infer},
    {"Gather", "", 1, 2, 2, 1, 1, sizeof(kiln_axis_params), axis_parse, gather_infer},
    {"GatherElements", "", 11, 2, 2, 1, 1, sizeof(kiln_axis_params), axis_parse, gather_elements_infer},
    {"Transpose", "", 1, 1, 1, 1, 1, sizeof(kiln_transpose_params), transpose_parse, transpose_infer},
    {"Tile", "", 6, 2, 2, 1, 1, 0, NULL, tile_infer},
    {"DepthToSpace", "", 1, 1, 1, 1, 1, sizeof(kiln_depth_space_params), d2s_parse, d2s_infer},
    {"SpaceToDepth", "", 1, 1, 1, 1, 1, sizeof(kiln_depth_space_params), d2s_parse, d2s_infer},
    {"Pad", "", 1, 1, 4, 1, 1, sizeof(kiln_pad_params), pad_parse, pad_infer},
    {0},
};
