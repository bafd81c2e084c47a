/*
 * Op schemas of the elementwise family: unary math, binary arithmetic with
 * multidirectional (numpy) broadcasting, variadic Max/Min/Sum/Mean,
 * comparisons, logic, Where and Cast/CastLike.
 *
 * Shape-computing graphs (PyTorch exports) run Add/Sub/Mul/Div/Cast/Equal/
 * Where on small int64 tensors; their contents are propagated as `symval`
 * so that symbolic H/W reach Reshape, Expand and Resize.
 */
#include "ops_elementwise.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum ew_kind {
    K_UNARY,    /* out = f(x), same dtype and shape */
    K_BINARY,   /* out = f(a, b), same dtype, broadcast */
    K_POW,      /* base and exponent may differ in dtype; out has the base's */
    K_COMPARE,  /* same dtype in, bool out, broadcast */
    K_VARIADIC, /* Max/Min/Sum/Mean: 1..N inputs, broadcast */
    K_WHERE,
    K_CAST,
    K_CASTLIKE,
    K_PREDICATE, /* IsNaN/IsInf: float in, bool out */
    K_BITCAST
} ew_kind;

#define BIT(t) (1u << (t))
#define T_FLOATS (BIT(KILN_DT_FLOAT) | BIT(KILN_DT_FLOAT16) | BIT(KILN_DT_BFLOAT16) | BIT(KILN_DT_DOUBLE))
#define T_SINTS (BIT(KILN_DT_INT8) | BIT(KILN_DT_INT16) | BIT(KILN_DT_INT32) | BIT(KILN_DT_INT64))
#define T_UINTS (BIT(KILN_DT_UINT8) | BIT(KILN_DT_UINT16) | BIT(KILN_DT_UINT32) | BIT(KILN_DT_UINT64))
#define T_NUM (T_FLOATS | T_SINTS | T_UINTS)
#define T_ALL (T_NUM | BIT(KILN_DT_BOOL))
#define T_BOOL BIT(KILN_DT_BOOL)

typedef struct kiln_ew_desc {
    const char *name;
    ew_kind kind;
    uint32_t types;  /* dtypes accepted for the (first) data input */
    bool legacy;     /* had the `broadcast`/`axis` attributes before opset 7 */
    int symval_op;   /* 0 none, else '+', '-', '*', '/', '=' */
} ew_desc;

static const ew_desc descs[] = {
    {"Add", K_BINARY, T_NUM, true, '+'},
    {"Sub", K_BINARY, T_NUM, true, '-'},
    {"Mul", K_BINARY, T_NUM, true, '*'},
    {"Div", K_BINARY, T_NUM, true, '/'},
    {"Mod", K_BINARY, T_NUM, false, 0},
    {"Pow", K_POW, T_NUM, true, 0},
    {"And", K_BINARY, T_BOOL, true, 0},
    {"Or", K_BINARY, T_BOOL, true, 0},
    {"Xor", K_BINARY, T_BOOL, true, 0},
    {"Equal", K_COMPARE, T_ALL, true, '='},
    {"Less", K_COMPARE, T_ALL, true, 0},
    {"Greater", K_COMPARE, T_ALL, true, 0},
    {"LessOrEqual", K_COMPARE, T_ALL, false, 0},
    {"GreaterOrEqual", K_COMPARE, T_ALL, false, 0},
    {"Max", K_VARIADIC, T_NUM, false, 0},
    {"Min", K_VARIADIC, T_NUM, false, 0},
    {"Sum", K_VARIADIC, T_NUM, false, 0},
    {"Mean", K_VARIADIC, T_FLOATS, false, 0},
    {"Sqrt", K_UNARY, T_FLOATS, false, 0},
    {"Exp", K_UNARY, T_FLOATS, false, 0},
    {"Log", K_UNARY, T_FLOATS, false, 0},
    {"Reciprocal", K_UNARY, T_FLOATS, false, 0},
    {"Floor", K_UNARY, T_FLOATS, false, 0},
    {"Ceil", K_UNARY, T_FLOATS, false, 0},
    {"Round", K_UNARY, T_FLOATS, false, 0},
    {"Erf", K_UNARY, T_FLOATS, false, 0},
    {"Sin", K_UNARY, T_FLOATS, false, 0},
    {"Cos", K_UNARY, T_FLOATS, false, 0},
    {"Abs", K_UNARY, T_NUM, false, 0},
    {"Neg", K_UNARY, T_NUM, false, 0},
    {"Sign", K_UNARY, T_NUM, false, 0},
    {"Not", K_UNARY, T_BOOL, false, 0},
    {"Tan", K_UNARY, T_FLOATS, false, 0},
    {"Sinh", K_UNARY, T_FLOATS, false, 0},
    {"Cosh", K_UNARY, T_FLOATS, false, 0},
    {"Asin", K_UNARY, T_FLOATS, false, 0},
    {"Acos", K_UNARY, T_FLOATS, false, 0},
    {"Atan", K_UNARY, T_FLOATS, false, 0},
    {"Asinh", K_UNARY, T_FLOATS, false, 0},
    {"Acosh", K_UNARY, T_FLOATS, false, 0},
    {"Atanh", K_UNARY, T_FLOATS, false, 0},
    {"IsNaN", K_PREDICATE, T_FLOATS, false, 0},
    {"IsInf", K_PREDICATE, T_FLOATS, false, 0},
    {"BitShift", K_BINARY, T_SINTS | T_UINTS, false, 0},
    {"BitwiseAnd", K_BINARY, T_SINTS | T_UINTS, false, 0},
    {"BitwiseOr", K_BINARY, T_SINTS | T_UINTS, false, 0},
    {"BitwiseXor", K_BINARY, T_SINTS | T_UINTS, false, 0},
    {"BitwiseNot", K_UNARY, T_SINTS | T_UINTS, false, 0},
    {"BitCast", K_BITCAST, T_ALL, false, 0},
    {"Where", K_WHERE, T_ALL, false, 0},
    {"Cast", K_CAST, T_ALL, false, 0},
    {"CastLike", K_CASTLIKE, T_ALL, false, 0},
};

static const ew_desc *find_desc(const char *op)
{
    for (size_t i = 0; i < sizeof descs / sizeof descs[0]; i++)
        if (!strcmp(descs[i].name, op)) return &descs[i];
    return NULL;
}

static bool dtype_ok(uint32_t mask, kiln_dtype dt)
{
    return dt > 0 && dt < 32 && (mask & BIT(dt)) && kiln_dtype_size(dt) > 0;
}

/* Cast-1 to Cast-5 name the target type as a string. */
static kiln_dtype dtype_from_name(const char *s)
{
    static const struct {
        const char *name;
        kiln_dtype dt;
    } names[] = {
        {"FLOAT", KILN_DT_FLOAT},   {"UINT8", KILN_DT_UINT8},     {"INT8", KILN_DT_INT8},
        {"UINT16", KILN_DT_UINT16}, {"INT16", KILN_DT_INT16},     {"INT32", KILN_DT_INT32},
        {"INT64", KILN_DT_INT64},   {"BOOL", KILN_DT_BOOL},       {"FLOAT16", KILN_DT_FLOAT16},
        {"DOUBLE", KILN_DT_DOUBLE}, {"UINT32", KILN_DT_UINT32},   {"UINT64", KILN_DT_UINT64},
        {"BFLOAT16", KILN_DT_BFLOAT16},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(names[i].name, s)) return names[i].dt;
    return KILN_DT_UNDEFINED;
}

static kiln_status ew_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_ew_params *p = params;
    p->desc = find_desc(node->op_type);
    if (!p->desc)
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s': no elementwise op '%s'", node->name, node->op_type);
    kiln_status s;
    if (p->desc->kind == K_CAST || p->desc->kind == K_BITCAST) {
        const kiln_attr *a = kiln__node_attr(node, "to");
        if (!a) return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): attribute 'to' is missing", node->name, node->op_type);
        if (a->type == KILN_ATTR_STRING) {
            p->to = dtype_from_name(a->s ? a->s : "");
            if (!p->to)
                return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): target type '%s' is not supported",
                                  node->name, node->op_type, a->s ? a->s : "");
        } else if (a->type == KILN_ATTR_INT) {
            if (!dtype_ok(T_ALL, (kiln_dtype)(a->i > 0 && a->i < 32 ? a->i : 0)))
                return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): target type %lld is not supported",
                                  node->name, node->op_type, (long long)a->i);
            p->to = (kiln_dtype)a->i;
        } else {
            return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): attribute 'to' must be INT", node->name,
                              node->op_type);
        }
    }
    if (!strcmp(p->desc->name, "BitShift")) {
        const char *dir = kiln__attr_string(node, "direction", "");
        if (strcmp(dir, "LEFT") && strcmp(dir, "RIGHT"))
            return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (BitShift): direction must be LEFT or RIGHT, got '%s'",
                              node->name, dir);
        p->shift_left = !strcmp(dir, "LEFT");
    }
    if (!strcmp(p->desc->name, "IsInf")) {
        if ((s = kiln__attr_expect(node, "detect_negative", KILN_ATTR_INT, err))) return s;
        if ((s = kiln__attr_expect(node, "detect_positive", KILN_ATTR_INT, err))) return s;
        p->detect_negative = kiln__attr_int(node, "detect_negative", 1) != 0;
        p->detect_positive = kiln__attr_int(node, "detect_positive", 1) != 0;
    }
    if (!strcmp(p->desc->name, "Mod")) {
        if ((s = kiln__attr_expect(node, "fmod", KILN_ATTR_INT, err))) return s;
        int64_t f = kiln__attr_int(node, "fmod", 0);
        if (f != 0 && f != 1)
            return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (Mod): fmod must be 0 or 1, got %lld", node->name,
                              (long long)f);
        p->fmod = f != 0;
    }
    if (p->desc->legacy && node->opset < 7) {
        if ((s = kiln__attr_expect(node, "broadcast", KILN_ATTR_INT, err))) return s;
        if ((s = kiln__attr_expect(node, "axis", KILN_ATTR_INT, err))) return s;
        p->legacy_bcast = kiln__attr_int(node, "broadcast", 0) != 0;
        p->has_axis = kiln__node_attr(node, "axis") != NULL;
        p->axis = kiln__attr_int(node, "axis", 0);
    }
    return KILN_OK;
}

/* Before opset 7, broadcast=1 lined B's dims up with A's starting at `axis` (default: trailing). */
kiln_status kiln__ew_b_shape(const kiln_node *node, const kiln_ew_params *p, const kiln_shape *a,
                             const kiln_shape *b, kiln_shape *eff, kiln_err *err)
{
    *eff = *b;
    if (!p->legacy_bcast || a->rank < 0 || b->rank < 0) return KILN_OK;
    int64_t axis = p->has_axis ? p->axis : a->rank - b->rank;
    if (axis < 0) axis += a->rank;
    if (axis < 0 || axis + b->rank > a->rank)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): legacy broadcast axis %lld does not fit B (rank %d) into A (rank %d)",
                          node->name, node->op_type, (long long)p->axis, b->rank, a->rank);
    eff->rank = a->rank;
    for (int i = 0; i < a->rank; i++)
        eff->d[i] = (i >= axis && i < axis + b->rank) ? b->d[i - axis] : kiln__dim_const(1);
    return KILN_OK;
}

/* Numpy broadcast of n shapes; rank -1 when any rank is unknown. */
static kiln_status broadcast_shapes(const kiln_node *node, int n, const kiln_shape *const *s, kiln_shape *out,
                                    kiln_err *err)
{
    memset(out, 0, sizeof *out);
    int rank = 0;
    for (int i = 0; i < n; i++) {
        if (s[i]->rank < 0) {
            out->rank = -1;
            return KILN_OK;
        }
        if (s[i]->rank > rank) rank = s[i]->rank;
    }
    out->rank = rank;
    for (int d = 0; d < rank; d++) {
        kiln_dim acc = kiln__dim_const(1);
        for (int i = 0; i < n; i++) {
            int k = d - (rank - s[i]->rank);
            if (k < 0) continue;
            bool ok = true;
            kiln_dim next = kiln__dim_broadcast(acc, s[i]->d[k], &ok);
            if (!ok) {
                char a[256], b[256];
                a[0] = b[0] = 0;
                for (int j = 0; j < n; j++) {
                    size_t len = strlen(a);
                    kiln__shape_str(NULL, s[j], b, sizeof b);
                    snprintf(a + len, sizeof a - len, "%s%s", j ? " vs " : "", b);
                }
                return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): shapes %s do not broadcast (axis %d)",
                                  node->name, node->op_type, a, d);
            }
            acc = next;
        }
        out->d[d] = acc;
    }
    /* Reject outputs whose byte size cannot be represented. */
    int64_t numel = 1;
    for (int d = 0; d < rank; d++) {
        if (!kiln__dim_is_const(out->d[d])) continue;
        if (out->d[d].add < 0)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): negative dimension %lld", node->name,
                              node->op_type, (long long)out->d[d].add);
        if (__builtin_mul_overflow(numel, out->d[d].add, &numel) || numel > ((int64_t)1 << 58))
            return kiln__fail(err, KILN_ERR_LIMIT, "node '%s' (%s): output has too many elements", node->name,
                              node->op_type);
    }
    return KILN_OK;
}

/* ---- symval propagation (contents of small int64 shape tensors) ---- */

typedef struct symvec {
    int n;
    kiln_dim v[KILN_SYMVAL_MAX];
} symvec;

static bool is_int_dtype(kiln_dtype dt)
{
    return dtype_ok(T_SINTS | T_UINTS | T_BOOL, dt);
}

/* The value's contents as dims, from symval or from constant integer data. */
static bool get_symvec(const kiln_value *v, symvec *out)
{
    if (!v || v->shape.rank > 1) return false;
    if (v->symval_n > 0 && v->symval_n <= KILN_SYMVAL_MAX) {
        out->n = v->symval_n;
        memcpy(out->v, v->symval, sizeof(kiln_dim) * (size_t)out->n);
        return true;
    }
    if (!v->data || !is_int_dtype(v->dtype) || !kiln__shape_is_const(&v->shape)) return false;
    int64_t n = kiln__shape_numel(&v->shape);
    if (n < 0 || n > KILN_SYMVAL_MAX || (size_t)n * kiln_dtype_size(v->dtype) > v->nbytes) return false;
    out->n = (int)n;
    for (int64_t i = 0; i < n; i++) out->v[i] = kiln__dim_const(kiln__value_get_i64(v, i));
    return true;
}

static bool dim_known(kiln_dim d) { return d.sym != KILN_SYM_UNKNOWN; }

static kiln_dim sym_binop(int op, kiln_dim a, kiln_dim b)
{
    if (!dim_known(a) || !dim_known(b)) return kiln__dim_unknown();
    bool ca = kiln__dim_is_const(a), cb = kiln__dim_is_const(b);
    int64_t r;
    switch (op) {
    case '+':
        if (ca && cb) return __builtin_add_overflow(a.add, b.add, &r) ? kiln__dim_unknown() : kiln__dim_const(r);
        return kiln__dim_add_dim(a, b);
    case '-':
        if (ca && cb) return __builtin_sub_overflow(a.add, b.add, &r) ? kiln__dim_unknown() : kiln__dim_const(r);
        if (cb) return b.add == INT64_MIN ? kiln__dim_unknown() : kiln__dim_add(a, -b.add);
        if (kiln__dim_equal(a, b)) return kiln__dim_const(0);
        if (a.sym == b.sym && a.div == 1 && b.div == 1 && a.mul >= b.mul)
            return a.mul == b.mul ? kiln__dim_const(a.add - b.add) : (kiln_dim){a.sym, a.mul - b.mul, a.add - b.add, 1};
        return kiln__dim_unknown();
    case '*':
        if (ca && cb) return __builtin_mul_overflow(a.add, b.add, &r) ? kiln__dim_unknown() : kiln__dim_const(r);
        if (cb) return kiln__dim_mul(a, b.add);
        if (ca) return kiln__dim_mul(b, a.add);
        return kiln__dim_unknown();
    case '/':
        /* ONNX integer Div truncates; dims are >= 0, where truncation is floor. */
        if (!cb || b.add == 0) return kiln__dim_unknown();
        if (ca) return (a.add == INT64_MIN && b.add == -1) ? kiln__dim_unknown() : kiln__dim_const(a.add / b.add);
        if (b.add < 0) return kiln__dim_unknown();
        if (kiln__dim_equal(a, b)) return kiln__dim_const(1);
        return kiln__dim_div(a, b.add);
    case '=':
        if (ca && cb) return kiln__dim_const(a.add == b.add);
        if (kiln__dim_equal(a, b)) return kiln__dim_const(1);
        /* A dimension is never negative. */
        if ((ca && a.add < 0) || (cb && b.add < 0)) return kiln__dim_const(0);
        return kiln__dim_unknown();
    }
    return kiln__dim_unknown();
}

/* Elementwise over symvecs of length n or 1; out length is the broadcast length. */
static void propagate_symval(int op, int nin, const kiln_value *const *in, kiln_value *out)
{
    symvec v[3];
    int n = 1;
    if (out->shape.rank > 1) return;
    for (int i = 0; i < nin; i++) {
        if (!get_symvec(in[i], &v[i])) return;
        if (v[i].n != 1) {
            if (n != 1 && n != v[i].n) return;
            n = v[i].n;
        }
    }
    kiln_dim r[KILN_SYMVAL_MAX];
    for (int k = 0; k < n; k++) {
        kiln_dim x[3] = {{0}, {0}, {0}};
        for (int i = 0; i < nin; i++) x[i] = v[i].v[v[i].n == 1 ? 0 : k];
        if (op == '?') {
            if (kiln__dim_is_const(x[0])) r[k] = x[0].add ? x[1] : x[2];
            else r[k] = kiln__dim_equal(x[1], x[2]) ? x[1] : kiln__dim_unknown();
        } else {
            r[k] = sym_binop(op, x[0], x[1]);
        }
        /* A partial vector is still useful: unknown entries stay unknown. */
    }
    out->symval_n = n;
    memcpy(out->symval, r, sizeof(kiln_dim) * (size_t)n);
}

/* ---- infer ---- */

static kiln_status check_dtype(const kiln_node *node, uint32_t mask, kiln_dtype dt, const char *what, kiln_err *err)
{
    if (dt == KILN_DT_UNDEFINED || dtype_ok(mask, dt)) return KILN_OK;
    return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): %s has type %s, which %s does not take", node->name,
                      node->op_type, what, kiln_dtype_name(dt), node->op_type);
}

/* All inputs in [first, n) share one dtype; returns it (UNDEFINED if none is known). */
static kiln_status same_dtype(const kiln_node *node, const kiln_value *const *in, int first, int n,
                              kiln_dtype *dt, kiln_err *err)
{
    *dt = KILN_DT_UNDEFINED;
    for (int i = first; i < n; i++) {
        if (!in[i] || in[i]->dtype == KILN_DT_UNDEFINED) continue;
        if (*dt == KILN_DT_UNDEFINED) *dt = in[i]->dtype;
        else if (in[i]->dtype != *dt)
            return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): input %d has type %s, input %d has %s", node->name,
                              node->op_type, first, kiln_dtype_name(*dt), i, kiln_dtype_name(in[i]->dtype));
    }
    return KILN_OK;
}

static kiln_status ew_infer(const kiln_node *node, const void *params, const kiln_value *const *in, kiln_value *out,
                            kiln_err *err)
{
    const kiln_ew_params *p = params;
    const ew_desc *d = p->desc;
    kiln_status s;
    int nin = node->n_in;
    for (int i = 0; i < nin; i++)
        if (!in[i])
            return kiln__fail(err, KILN_ERR_GRAPH, "node '%s' (%s): input %d is missing", node->name, node->op_type, i);
    kiln_dtype dt = KILN_DT_UNDEFINED, out_dt;
    kiln_shape shape;
    switch (d->kind) {
    case K_UNARY:
    case K_CAST:
    case K_CASTLIKE:
        dt = in[0]->dtype;
        if ((s = check_dtype(node, d->types, dt, "input", err))) return s;
        out_dt = dt;
        if (d->kind == K_CAST) out_dt = p->to;
        if (d->kind == K_CASTLIKE) {
            out_dt = in[1]->dtype;
            if ((s = check_dtype(node, T_ALL, out_dt, "target_type", err))) return s;
        }
        kiln__value_set_type(&out[0], out_dt, &in[0]->shape);
        if (d->kind != K_UNARY && is_int_dtype(out_dt) && out_dt != KILN_DT_BOOL) {
            symvec v;
            if (get_symvec(in[0], &v)) {
                out[0].symval_n = v.n;
                memcpy(out[0].symval, v.v, sizeof(kiln_dim) * (size_t)v.n);
            }
        }
        return KILN_OK;
    case K_PREDICATE:
        if ((s = check_dtype(node, d->types, in[0]->dtype, "input", err))) return s;
        kiln__value_set_type(&out[0], KILN_DT_BOOL, &in[0]->shape);
        return KILN_OK;
    case K_BITCAST:
        dt = in[0]->dtype;
        if ((s = check_dtype(node, d->types, dt, "input", err))) return s;
        /* Differing element sizes would reshape the last axis; no model needs it yet. */
        if (dt != KILN_DT_UNDEFINED && kiln_dtype_size(dt) != kiln_dtype_size(p->to))
            return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (BitCast): %s to %s changes the element size",
                              node->name, kiln_dtype_name(dt), kiln_dtype_name(p->to));
        kiln__value_set_type(&out[0], p->to, &in[0]->shape);
        return KILN_OK;
    case K_BINARY:
    case K_COMPARE:
    case K_POW: {
        if (d->kind == K_POW) {
            dt = in[0]->dtype;
            if ((s = check_dtype(node, d->types, dt, "base", err))) return s;
            if ((s = check_dtype(node, T_NUM, in[1]->dtype, "exponent", err))) return s;
        } else {
            if ((s = same_dtype(node, in, 0, 2, &dt, err))) return s;
            if ((s = check_dtype(node, d->types, dt, "input", err))) return s;
        }
        kiln_shape eb;
        if ((s = kiln__ew_b_shape(node, p, &in[0]->shape, &in[1]->shape, &eb, err))) return s;
        const kiln_shape *sh[2] = {&in[0]->shape, &eb};
        if ((s = broadcast_shapes(node, 2, sh, &shape, err))) return s;
        out_dt = d->kind == K_COMPARE ? KILN_DT_BOOL : dt;
        kiln__value_set_type(&out[0], out_dt, &shape);
        if (d->symval_op && (dt == KILN_DT_INT64 || dt == KILN_DT_INT32 || dt == KILN_DT_UNDEFINED) && !p->legacy_bcast)
            propagate_symval(d->symval_op, 2, in, &out[0]);
        return KILN_OK;
    }
    case K_VARIADIC: {
        if ((s = same_dtype(node, in, 0, nin, &dt, err))) return s;
        if ((s = check_dtype(node, d->types, dt, "input", err))) return s;
        const kiln_shape *stack[16] = {0};
        const kiln_shape **sh = stack;
        if (nin > 16) {
            sh = kiln__calloc((size_t)nin, sizeof *sh);
            if (!sh) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        }
        for (int i = 0; i < nin; i++) sh[i] = &in[i]->shape;
        s = broadcast_shapes(node, nin, sh, &shape, err);
        if (sh != stack) free(sh);
        if (s) return s;
        kiln__value_set_type(&out[0], dt, &shape);
        return KILN_OK;
    }
    case K_WHERE: {
        if ((s = check_dtype(node, T_BOOL, in[0]->dtype, "condition", err))) return s;
        if ((s = same_dtype(node, in, 1, 3, &dt, err))) return s;
        if ((s = check_dtype(node, T_ALL, dt, "input", err))) return s;
        const kiln_shape *sh[3] = {&in[0]->shape, &in[1]->shape, &in[2]->shape};
        if ((s = broadcast_shapes(node, 3, sh, &shape, err))) return s;
        kiln__value_set_type(&out[0], dt, &shape);
        if (is_int_dtype(dt) && dt != KILN_DT_BOOL) propagate_symval('?', 3, in, &out[0]);
        return KILN_OK;
    }
    }
    return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s': bad elementwise kind", node->name);
}

#define UNARY(name, since) {name, "", since, 1, 1, 1, 1, sizeof(kiln_ew_params), ew_parse, ew_infer}
#define BINARY(name, since) {name, "", since, 2, 2, 1, 1, sizeof(kiln_ew_params), ew_parse, ew_infer}
#define VARIADIC(name, since) {name, "", since, 1, -1, 1, 1, sizeof(kiln_ew_params), ew_parse, ew_infer}

const kiln_op_schema kiln__ops_elementwise[] = {
    BINARY("Add", 1),
    BINARY("Sub", 1),
    BINARY("Mul", 1),
    BINARY("Div", 1),
    BINARY("Mod", 10),
    BINARY("Pow", 1),
    BINARY("And", 1),
    BINARY("Or", 1),
    BINARY("Xor", 1),
    BINARY("Equal", 1),
    BINARY("Less", 1),
    BINARY("Greater", 1),
    BINARY("LessOrEqual", 12),
    BINARY("GreaterOrEqual", 12),
    VARIADIC("Max", 1),
    VARIADIC("Min", 1),
    VARIADIC("Sum", 1),
    VARIADIC("Mean", 1),
    UNARY("Sqrt", 1),
    UNARY("Exp", 1),
    UNARY("Log", 1),
    UNARY("Reciprocal", 1),
    UNARY("Floor", 1),
    UNARY("Ceil", 1),
    UNARY("Round", 11),
    UNARY("Erf", 9),
    UNARY("Sin", 7),
    UNARY("Cos", 7),
    UNARY("Abs", 1),
    UNARY("Neg", 1),
    UNARY("Sign", 9),
    UNARY("Not", 1),
    UNARY("Tan", 7),
    UNARY("Sinh", 9),
    UNARY("Cosh", 9),
    UNARY("Asin", 7),
    UNARY("Acos", 7),
    UNARY("Atan", 7),
    UNARY("Asinh", 9),
    UNARY("Acosh", 9),
    UNARY("Atanh", 9),
    UNARY("IsNaN", 9),
    UNARY("IsInf", 10),
    BINARY("BitShift", 11),
    BINARY("BitwiseAnd", 18),
    BINARY("BitwiseOr", 18),
    BINARY("BitwiseXor", 18),
    UNARY("BitwiseNot", 18),
    UNARY("BitCast", 26),
    {"Where", "", 9, 3, 3, 1, 1, sizeof(kiln_ew_params), ew_parse, ew_infer},
    UNARY("Cast", 1),
    BINARY("CastLike", 15),
    {0},
};
