/*
 * batch_branches: horizontal batching of identical independent branches.
 *
 * Why: EDVR runs its PCD alignment module once per frame, the same weights on
 * five frames at batch 1, so the engine runs each of ~60 small layers five
 * times, underfilling the GPU and paying a launch per layer. Batched, it runs
 * each layer once at batch 5.
 *
 * A group of k >= 2 nodes with the same op, domain and attributes, no path
 * between any two, whose inputs at each slot are either one tensor for all
 * (shared: a weight, or an activation such as the reference frame's feature)
 * or distinct tensors of one shape with leading dim N, becomes
 *   Concat(axis 0) of the batched inputs -> one node at batch k*N ->
 *   Split(axis 0) into the original output tensors.
 * A shared activation that must have the batch dim (Concat along channels,
 * a conv's input) is repeated k times along axis 0; an elementwise operand
 * whose axis-0 dim is 1 (or that does not reach axis 0) stays shared.
 *
 * Groups are seeded by convolution-like nodes that share their weights and
 * grow through the readers of an axis-0 Split's pieces (or of a complete
 * family of Gather(X, i, axis=1) on X [1, k, ...]) and through the producers
 * of an axis-0 Concat's inputs, one group per round. Between rounds the
 * copies cancel:
 *   Concat0(Split0(X) pieces, in order)                    -> X
 *   Concat0(Gather(X, i, axis=1), i = 0..k-1), X [1,k,...] -> Squeeze(X, 0)
 *   Concat(axis a) of Split0(X) pieces of batch 1, X's dims 1..a-1 == 1
 *                                                          -> Reshape(X)
 *   a reshape-like node (Reshape/Squeeze/Unsqueeze/Flatten) over a chain of
 *   them whose output shape equals a tensor of the chain   -> that tensor
 *   Reshape (constant shape) over a chain of them          -> Reshape of the chain's start
 *   Gather(Reshape(x [k, ...]) -> [1, k, ...], i, axis=1)  -> Slice(x, i:i+1, axis 0)
 * and nodes nothing reads any more are removed.
 *
 * Batch-safe ops only (axis 0 is an independent index): convolutions
 * (Conv, ConvTranspose, kiln::FusedConv, DeformConv and the DCNv2 plugins),
 * elementwise unary and binary ops, Concat/Split/Slice/Softmax/Reduce/
 * Squeeze/Unsqueeze/Transpose away from axis 0, Resize with scale 1 on
 * axis 0 (or `sizes`, rewritten), pooling, inference BatchNormalization,
 * Instance/LayerNormalization, DepthToSpace/SpaceToDepth. Shapes must be
 * known statically (symbolic H/W are fine, N must be a constant). Pinned
 * nodes are left alone; graph outputs keep their names and shapes.
 * KILN_NO_BATCH_BRANCHES=1 in the environment skips the pass (A/B runs).
 */
#include "passes.h"
#include "../plugin/plugin.h" /* DCNv2 plugin nodes (issue 4) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_K = 64, MAX_IN = 64, MAX_OUT = 16 };

/* Input slot roles. */
enum {
    R_PARAM = 0, /* must be one tensor (or equal constants) for the whole group */
    R_BATCH,     /* carries the batch dim at axis 0 */
    R_BCAST,     /* elementwise operand: batched, or shared when it broadcasts over axis 0 */
    R_SIZES      /* Resize sizes: shared constant, its axis-0 entry is rewritten */
};

/* What the batched node reads at a slot. */
enum { P_OMIT, P_KEEP, P_CONCAT, P_REPEAT, P_SIZES };

typedef struct slot_plan {
    int kind;
    int t;       /* P_KEEP / P_REPEAT / P_SIZES: the tensor */
    int64_t pos; /* P_SIZES: entry of axis 0 */
} slot_plan;

typedef struct ctx {
    kiln_network *net;
    const kiln_pass_options *opts;
    kiln_graph_uses u;
    int *order; /* topological order */
    uint64_t *reach; /* reach[i*words ..]: nodes reachable from node i (NULL until needed) */
    int words, n;
    int groups, batched, cancelled, squeezed, reshaped, bypassed, repeats, sliced;
} ctx;

/* ---- small helpers --------------------------------------------------------- */

static bool is_op(const kiln_node *n, const char *op) { return !n->domain[0] && !strcmp(n->op_type, op); }

static const kiln_shape *shape_of(const kiln_network *net, int t) { return &net->tensors[t].v.shape; }

/* Every dim known and equal (symbolic dims compare structurally). */
static bool shape_same(const kiln_shape *a, const kiln_shape *b)
{
    if (a->rank < 0 || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->d[i].sym == KILN_SYM_UNKNOWN || b->d[i].sym == KILN_SYM_UNKNOWN || !kiln__dim_equal(a->d[i], b->d[i]))
            return false;
    return true;
}

static bool shape_known(const kiln_shape *s)
{
    if (s->rank < 0) return false;
    for (int i = 0; i < s->rank; i++)
        if (s->d[i].sym == KILN_SYM_UNKNOWN) return false;
    return true;
}

/* Leading dim as a constant, or -1. */
static int64_t dim0(const kiln_shape *s)
{
    return s->rank >= 1 && kiln__dim_is_const(s->d[0]) ? s->d[0].add : -1;
}

static bool attr_equal(const kiln_attr *a, const kiln_attr *b)
{
    if (a->type != b->type) return false;
    switch (a->type) {
    case KILN_ATTR_INT: return a->i == b->i;
    case KILN_ATTR_FLOAT: return !memcmp(&a->f, &b->f, sizeof a->f);
    case KILN_ATTR_STRING: return a->s_len == b->s_len && (!a->s_len || !memcmp(a->s, b->s, a->s_len));
    case KILN_ATTR_INTS:
        return a->n == b->n && (!a->n || !memcmp(a->ints, b->ints, sizeof *a->ints * (size_t)a->n));
    case KILN_ATTR_FLOATS:
        return a->n == b->n && (!a->n || !memcmp(a->floats, b->floats, sizeof *a->floats * (size_t)a->n));
    case KILN_ATTR_STRINGS:
        if (a->n != b->n) return false;
        for (int64_t i = 0; i < a->n; i++)
            if (strcmp(a->strings[i], b->strings[i])) return false;
        return true;
    case KILN_ATTR_TENSOR:
        if (!a->t || !b->t) return a->t == b->t;
        return a->t->dtype == b->t->dtype && shape_same(&a->t->shape, &b->t->shape) && a->t->nbytes == b->t->nbytes &&
               (!a->t->nbytes || !memcmp(a->t->data, b->t->data, a->t->nbytes));
    default: return false;
    }
}

static bool attrs_equal(const kiln_node *a, const kiln_node *b)
{
    if (a->n_attrs != b->n_attrs) return false;
    for (int i = 0; i < a->n_attrs; i++) {
        const kiln_attr *x = &a->attrs[i], *y = kiln__node_attr(b, x->name);
        if (!y || !attr_equal(x, y)) return false;
    }
    return true;
}

/* Same node kind: op, domain, opset, attributes, input/output counts. */
static bool same_kind(const kiln_node *a, const kiln_node *b)
{
    return !strcmp(a->op_type, b->op_type) && !strcmp(a->domain, b->domain) && a->opset == b->opset &&
           a->n_in == b->n_in && a->n_out == b->n_out && a->schema == b->schema && attrs_equal(a, b);
}

/* Two constants with the same type, shape and bytes (exporters sometimes duplicate small ones). */
static bool const_equal(const kiln_network *net, int a, int b)
{
    if (a == b) return true;
    const kiln_value *x = kiln__graph_const(net, a), *y = kiln__graph_const(net, b);
    return x && y && x->dtype == y->dtype && shape_same(&x->shape, &y->shape) && x->nbytes == y->nbytes &&
           (!x->nbytes || !memcmp(x->data, y->data, x->nbytes));
}

/* Integer constant (scalar or 1-D) into v[]; false when not constant, not integer or too long. */
static bool const_ints(const kiln_network *net, int t, int64_t *v, int max, int *n)
{
    const kiln_value *c = t >= 0 ? kiln__graph_const(net, t) : NULL;
    if (!c || (c->dtype != KILN_DT_INT64 && c->dtype != KILN_DT_INT32) || c->shape.rank > 1) return false;
    int64_t cnt = kiln__value_numel(c);
    if (cnt > max) return false;
    for (int64_t i = 0; i < cnt; i++) v[i] = kiln__value_get_i64(c, i);
    *n = (int)cnt;
    return true;
}

/* Axes from an INTS attribute or an integer constant input; false when absent or not constant. */
static bool get_axes(const kiln_network *net, const kiln_node *n, bool from_input, int slot, int64_t *v, int *cnt)
{
    if (from_input) return slot < n->n_in && const_ints(net, n->in[slot], v, KILN_MAX_DIMS, cnt);
    const int64_t *a;
    int64_t na = kiln__attr_ints(n, "axes", &a);
    if (na < 0 || na > KILN_MAX_DIMS) return false;
    for (int64_t i = 0; i < na; i++) v[i] = a[i];
    *cnt = (int)na;
    return true;
}

/* No axis (normalized for rank) is 0; false too when an axis is out of range or none given. */
static bool axes_skip_batch(const int64_t *ax, int cnt, int rank)
{
    if (cnt < 1) return false;
    for (int i = 0; i < cnt; i++) {
        int64_t a = ax[i] < 0 ? ax[i] + rank : ax[i];
        if (a <= 0 || a >= rank) return false;
    }
    return true;
}

static int64_t norm_axis(int64_t a, int rank) { return a < 0 ? a + rank : a; }

static bool any_reader_pinned(const ctx *c, int t)
{
    for (int k = c->u.start[t]; k < c->u.start[t + 1]; k++)
        if (kiln__pass_pinned(c->opts, c->net->nodes[c->u.node[k]].name)) return true;
    return false;
}

/* ---- batch-safe ops ---------------------------------------------------------- */

static const char *const unary_ops[] = {
    "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Selu", "Celu", "HardSigmoid", "HardSwish", "Softplus", "Softsign",
    "Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round", "Sin", "Cos", "Tan", "Erf", "Gelu",
    "Mish", "Identity", "Cast", "Not", "Sign", "ThresholdedRelu", "IsNaN", "IsInf", "Clip", "DepthToSpace",
    "SpaceToDepth", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", NULL};
static const char *const binary_ops[] = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean",
                                         "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And",
                                         "Or", "Xor", "Where", "PRelu", "Mod", "BitShift", NULL};
static const char *const reduce_ops[] = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
                                         "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
                                         "ReduceSumSquare", NULL};

static bool in_list(const char *op, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (!strcmp(op, list[i])) return true;
    return false;
}

static bool is_plugin_dcn(const kiln_node *n)
{
    return kiln__plugin_schema_class(n->schema) &&
           (!strcmp(n->op_type, "ModulatedDeformConv2d") || !strcmp(n->op_type, "MMCVModulatedDeformConv2d"));
}

/* Entry of Resize's scales/sizes that belongs to axis 0 (the `axes` attribute, opset 18), or -1 when
 * axis 0 is not resized at all. */
static int64_t resize_axis0_entry(const kiln_node *n, int rank)
{
    const int64_t *ax;
    int64_t na = kiln__attr_ints(n, "axes", &ax);
    if (na < 0) return 0;
    for (int64_t i = 0; i < na; i++)
        if (norm_axis(ax[i], rank) == 0) return i;
    return -1;
}

/*
 * The roles of n's input slots when n is batch-safe along axis 0 (its attributes and constant
 * parameters checked against the input rank); false otherwise.
 */
static bool op_roles(const kiln_network *net, const kiln_node *n, int *roles)
{
    if (n->n_in < 1 || n->n_in > MAX_IN || n->n_out < 1 || n->n_out > MAX_OUT || n->in[0] < 0) return false;
    for (int j = 0; j < n->n_in; j++) roles[j] = R_PARAM;
    int rank = shape_of(net, n->in[0])->rank;
    if (rank < 1) return false;
    const char *op = n->op_type;
    int64_t ax[KILN_MAX_DIMS];
    int cnt = 0;
    if (is_plugin_dcn(n)) { /* input, offset, mask, weight, bias */
        for (int j = 0; j < 3 && j < n->n_in; j++) roles[j] = R_BATCH;
        return n->n_out == 1;
    }
    if (!strcmp(n->domain, "kiln")) {
        if (strcmp(op, "FusedConv")) return false;
        roles[0] = R_BATCH;
        if (n->n_in > 4) roles[4] = R_BATCH; /* the residual Z has the output's shape */
        return n->n_out == 1;
    }
    if (n->domain[0]) return false;
    if (!strcmp(op, "Conv") || !strcmp(op, "ConvTranspose")) {
        roles[0] = R_BATCH;
        return n->n_out == 1 && !kiln__node_attr(n, "output_shape");
    }
    if (!strcmp(op, "DeformConv")) { /* X, W, offset, B, mask */
        roles[0] = R_BATCH;
        if (n->n_in > 2) roles[2] = R_BATCH;
        if (n->n_in > 4) roles[4] = R_BATCH;
        return n->n_out == 1;
    }
    if (in_list(op, unary_ops)) {
        roles[0] = R_BATCH;
        return n->n_out == 1;
    }
    if (!strcmp(op, "MaxPool")) { /* Indices are flat over the whole tensor, N included */
        roles[0] = R_BATCH;
        return n->n_out == 1 || (n->n_out == 2 && n->out[1] < 0);
    }
    if (in_list(op, binary_ops)) {
        for (int j = 0; j < n->n_in; j++) roles[j] = R_BCAST;
        return n->n_out == 1;
    }
    if (!strcmp(op, "BatchNormalization")) {
        roles[0] = R_BATCH;
        for (int j = 1; j < n->n_out; j++)
            if (n->out[j] >= 0) return false;
        return kiln__attr_int(n, "training_mode", 0) == 0;
    }
    if (!strcmp(op, "InstanceNormalization")) {
        roles[0] = R_BATCH;
        return n->n_out == 1;
    }
    if (!strcmp(op, "LayerNormalization")) {
        roles[0] = R_BATCH;
        return norm_axis(kiln__attr_int(n, "axis", -1), rank) >= 1;
    }
    if (!strcmp(op, "Concat")) {
        for (int j = 0; j < n->n_in; j++) roles[j] = R_BATCH;
        int64_t a = norm_axis(kiln__attr_int(n, "axis", 0), rank);
        return n->n_out == 1 && a >= 1 && a < rank;
    }
    if (!strcmp(op, "Split")) {
        roles[0] = R_BATCH;
        int64_t a = norm_axis(kiln__attr_int(n, "axis", 0), rank);
        return a >= 1 && a < rank;
    }
    if (!strcmp(op, "Softmax") || !strcmp(op, "LogSoftmax") || !strcmp(op, "Hardmax")) {
        roles[0] = R_BATCH;
        int64_t a = norm_axis(kiln__attr_int(n, "axis", n->opset < 13 ? 1 : -1), rank);
        return n->n_out == 1 && a >= 1 && a < rank;
    }
    if (!strcmp(op, "ArgMax") || !strcmp(op, "ArgMin")) {
        roles[0] = R_BATCH;
        int64_t a = norm_axis(kiln__attr_int(n, "axis", 0), rank);
        return n->n_out == 1 && a >= 1 && a < rank;
    }
    if (!strcmp(op, "Transpose")) {
        const int64_t *perm;
        roles[0] = R_BATCH;
        return n->n_out == 1 && kiln__attr_ints(n, "perm", &perm) == rank && perm[0] == 0;
    }
    if (!strcmp(op, "Unsqueeze")) {
        roles[0] = R_BATCH;
        if (!get_axes(net, n, n->opset >= 13, 1, ax, &cnt)) return false;
        return n->n_out == 1 && axes_skip_batch(ax, cnt, rank + cnt);
    }
    if (!strcmp(op, "Squeeze")) {
        roles[0] = R_BATCH;
        if (!get_axes(net, n, n->opset >= 13, 1, ax, &cnt)) return false; /* no axes: N = 1 would go */
        return n->n_out == 1 && axes_skip_batch(ax, cnt, rank);
    }
    if (in_list(op, reduce_ops)) {
        roles[0] = R_BATCH;
        bool from_input = n->opset >= (strcmp(op, "ReduceSum") ? 18 : 13);
        if (!get_axes(net, n, from_input, 1, ax, &cnt)) return false; /* no axes: every axis */
        return n->n_out == 1 && axes_skip_batch(ax, cnt, rank);
    }
    if (!strcmp(op, "Slice")) {
        roles[0] = R_BATCH;
        if (n->opset < 10) {
            if (!get_axes(net, n, false, 0, ax, &cnt)) return false;
        } else if (n->n_in < 4 || !const_ints(net, n->in[3], ax, KILN_MAX_DIMS, &cnt)) {
            return false;
        }
        return n->n_out == 1 && axes_skip_batch(ax, cnt, rank);
    }
    if (!strcmp(op, "Resize") || !strcmp(op, "Upsample")) {
        roles[0] = R_BATCH;
        if (n->n_out != 1) return false;
        const char *ctm = kiln__attr_string(n, "coordinate_transformation_mode", "half_pixel");
        if (!strcmp(ctm, "tf_crop_and_resize")) return false;
        int64_t e = resize_axis0_entry(n, rank);
        /* scales: input 1 (opset 10, Upsample 9) or 2 (opset 11+), or Upsample-7's attribute */
        int scales_slot = !strcmp(op, "Upsample") || n->opset < 11 ? 1 : 2;
        if (!strcmp(op, "Upsample") && n->opset < 9) {
            const kiln_attr *a = kiln__node_attr(n, "scales");
            return a && a->type == KILN_ATTR_FLOATS && a->n == rank && a->floats[0] == 1.0f;
        }
        if (scales_slot < n->n_in && n->in[scales_slot] >= 0) {
            const kiln_value *sc = kiln__graph_const(net, n->in[scales_slot]);
            if (!sc) return false;
            int64_t ns = kiln__value_numel(sc);
            if (ns > 0 && e >= 0 && (e >= ns || kiln__value_get_f64(sc, e) != 1.0)) return false;
        }
        if (scales_slot == 2 && n->n_in > 3 && n->in[3] >= 0) {
            const kiln_value *sz = kiln__graph_const(net, n->in[3]);
            if (!sz || sz->dtype != KILN_DT_INT64) return false;
            int64_t ns = kiln__value_numel(sz);
            if (ns > 0 && e >= 0) {
                if (e >= ns) return false;
                roles[3] = R_SIZES;
            }
        }
        return true;
    }
    return false;
}

/* ---- reachability ------------------------------------------------------------ */

static kiln_status build_reach(ctx *c, kiln_err *err)
{
    if (c->reach) return KILN_OK;
    kiln_network *net = c->net;
    c->n = net->n_nodes;
    c->words = (c->n + 63) / 64;
    c->reach = kiln__calloc((size_t)c->n * (size_t)c->words + 1, sizeof(uint64_t));
    if (!c->reach) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    for (int k = c->n - 1; k >= 0; k--) {
        int i = c->order[k];
        uint64_t *ri = c->reach + (size_t)i * (size_t)c->words;
        const kiln_node *n = &net->nodes[i];
        for (int j = 0; j < n->n_out; j++) {
            int t = n->out[j];
            if (t < 0) continue;
            for (int q = c->u.start[t]; q < c->u.start[t + 1]; q++) {
                int r = c->u.node[q];
                const uint64_t *rr = c->reach + (size_t)r * (size_t)c->words;
                for (int w = 0; w < c->words; w++) ri[w] |= rr[w];
                ri[r / 64] |= (uint64_t)1 << (r % 64);
            }
        }
    }
    return KILN_OK;
}

static bool reaches(const ctx *c, int a, int b)
{
    return (c->reach[(size_t)a * (size_t)c->words + (size_t)(b / 64)] >> (b % 64)) & 1;
}

/* ---- group validation ------------------------------------------------------ */

/*
 * Can the nodes m[0..k-1] run as one node at batch k*N? Fills plan[] (one per input slot) and *n_batch.
 */
static bool validate(ctx *c, const int *m, int k, slot_plan *plan, int64_t *n_batch, kiln_err *err, kiln_status *st)
{
    kiln_network *net = c->net;
    if (k < 2 || k > MAX_K) return false;
    const kiln_node *n0 = &net->nodes[m[0]];
    for (int b = 0; b < k; b++) {
        const kiln_node *nb = &net->nodes[m[b]];
        if (kiln__pass_pinned(c->opts, nb->name) || !same_kind(n0, nb)) return false;
        for (int a = 0; a < b; a++)
            if (m[a] == m[b]) return false;
    }
    int roles[MAX_IN];
    if (!op_roles(net, n0, roles)) return false;
    /* outputs: batch N at axis 0, one shape for all members */
    int64_t N = -1;
    for (int j = 0; j < n0->n_out; j++) {
        int t0 = n0->out[j];
        for (int b = 1; b < k; b++)
            if ((net->nodes[m[b]].out[j] < 0) != (t0 < 0)) return false;
        if (t0 < 0) continue;
        const kiln_shape *s0 = shape_of(net, t0);
        int64_t d = dim0(s0);
        if (!shape_known(s0) || d < 1 || (N >= 0 && d != N)) return false;
        N = d;
        for (int b = 1; b < k; b++) {
            int tb = net->nodes[m[b]].out[j];
            if (!shape_same(s0, shape_of(net, tb)) || net->tensors[tb].v.dtype != net->tensors[t0].v.dtype)
                return false;
        }
    }
    if (N < 1 || N > ((int64_t)1 << 30) / k) return false;
    int out_rank = shape_of(net, n0->out[0] >= 0 ? n0->out[0] : n0->out[n0->n_out - 1])->rank;
    bool any_batched = false;
    for (int s = 0; s < n0->n_in; s++) {
        int t0 = n0->in[s];
        bool same = true;
        for (int b = 1; b < k; b++) {
            int tb = net->nodes[m[b]].in[s];
            if ((tb < 0) != (t0 < 0)) return false;
            same = same && tb == t0;
        }
        plan[s].kind = P_OMIT;
        plan[s].t = t0;
        if (t0 < 0) continue;
        const kiln_shape *s0 = shape_of(net, t0);
        bool all_shapes = true;
        for (int b = 1; b < k && all_shapes; b++) {
            int tb = net->nodes[m[b]].in[s];
            all_shapes = shape_same(s0, shape_of(net, tb)) && net->tensors[tb].v.dtype == net->tensors[t0].v.dtype;
        }
        switch (roles[s]) {
        case R_PARAM:
            for (int b = 1; b < k; b++)
                if (!const_equal(net, t0, net->nodes[m[b]].in[s])) return false;
            plan[s].kind = P_KEEP;
            break;
        case R_SIZES: {
            for (int b = 1; b < k; b++)
                if (!const_equal(net, t0, net->nodes[m[b]].in[s])) return false;
            int64_t e = resize_axis0_entry(n0, shape_of(net, n0->in[0])->rank);
            const kiln_value *sz = kiln__graph_const(net, t0);
            if (!sz || e < 0 || e >= kiln__value_numel(sz) || kiln__value_get_i64(sz, e) != N) return false;
            plan[s].kind = P_SIZES;
            plan[s].pos = e;
            break;
        }
        case R_BATCH:
            if (!shape_known(s0) || dim0(s0) != N) return false;
            if (same) {
                plan[s].kind = P_REPEAT;
            } else {
                if (!all_shapes) return false;
                plan[s].kind = P_CONCAT;
                any_batched = true;
            }
            break;
        case R_BCAST:
            if (!shape_known(s0) || s0->rank > out_rank) return false;
            if (same) {
                if (s0->rank < out_rank || dim0(s0) == 1) plan[s].kind = P_KEEP;
                else if (dim0(s0) == N) plan[s].kind = P_REPEAT;
                else return false;
            } else {
                if (!all_shapes || s0->rank != out_rank || dim0(s0) != N) return false;
                plan[s].kind = P_CONCAT;
                any_batched = true;
            }
            break;
        default: return false;
        }
    }
    if (!any_batched) return false; /* the same computation k times: not this pass's business */
    if ((*st = build_reach(c, err))) return false;
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++)
            if (a != b && reaches(c, m[a], m[b])) return false;
    *n_batch = N;
    return true;
}

/* ---- graph building -------------------------------------------------------- */

/* A node name not used yet, from base and a suffix. */
static void unique_node_name(const kiln_network *net, const char *base, const char *suffix, char *out, size_t len)
{
    snprintf(out, len, "%.400s/%s", base, suffix);
    for (int k = 2; k < 1000000; k++) {
        bool used = false;
        for (int i = 0; i < net->n_nodes && !used; i++) used = !strcmp(net->nodes[i].name, out);
        if (!used) return;
        snprintf(out, len, "%.400s/%s_%d", base, suffix, k);
    }
}

/* Appends a node (tensors by index; -1 = omitted) through the network API; returns its index or -1. */
static int add_node(kiln_network *net, const char *name, const char *op, int n_in, const int *in, int n_out,
                    const int *out, int n_attrs, const kiln_attr_value *attrs, kiln_status *st, kiln_err *err)
{
    char **names = kiln__calloc((size_t)(n_in + n_out) + 1, sizeof(char *));
    if (!names) {
        *st = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        return -1;
    }
    bool ok = true;
    for (int i = 0; i < n_in + n_out && ok; i++) {
        int t = i < n_in ? in[i] : out[i - n_in];
        names[i] = kiln__strdup(t >= 0 ? net->tensors[t].name : "");
        ok = names[i] != NULL;
    }
    int idx = -1;
    if (!ok) {
        *st = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    } else {
        kiln_status s = kiln_network_add_node(net, name, op, "", n_in, (const char *const *)names, n_out,
                                              (const char *const *)(names + n_in), n_attrs, attrs);
        if (s) *st = kiln__fail(err, s, "adding %s '%s': %s", op, name, kiln_network_last_error(net));
        else idx = net->n_nodes - 1;
    }
    for (int i = 0; i < n_in + n_out; i++) free(names[i]);
    free(names);
    return idx;
}

/* An int64 1-D constant. */
static int add_ints(kiln_network *net, const char *base, const int64_t *v, int n, kiln_status *st, kiln_err *err)
{
    int64_t *p = kiln__malloc(sizeof *p * (size_t)(n > 0 ? n : 1));
    if (!p) {
        *st = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        return -1;
    }
    memcpy(p, v, sizeof *p * (size_t)n);
    int64_t d = n;
    kiln_shape s = kiln__shape_of(1, &d);
    int t = kiln__graph_add_constant(net, base, KILN_DT_INT64, &s, p, sizeof *p * (size_t)n, err);
    if (t < 0) *st = KILN_ERR_OUT_OF_MEMORY;
    return t;
}

/* Concat(axis 0) of ins[0..k-1]: an existing identical one, or a new one. Returns its output or -1. */
static int concat0(kiln_network *net, const int *ins, int k, const char *base, kiln_status *st, kiln_err *err)
{
    for (int i = 0; i < net->n_nodes; i++) {
        const kiln_node *n = &net->nodes[i];
        if (!is_op(n, "Concat") || n->n_in != k || n->n_out != 1 || n->out[0] < 0 ||
            kiln__attr_int(n, "axis", -1) != 0)
            continue;
        bool same = true;
        for (int b = 0; b < k && same; b++) same = n->in[b] == ins[b];
        if (same) return n->out[0];
    }
    char name[512];
    snprintf(name, sizeof name, "%.400s_batched", net->tensors[ins[0]].name);
    int out = kiln__graph_new_tensor(net, name);
    if (out < 0) {
        *st = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        return -1;
    }
    unique_node_name(net, base, "batch_concat", name, sizeof name);
    kiln_attr_value ax = {.name = "axis", .type = KILN_ATTR_INT, .i = 0};
    return add_node(net, name, "Concat", k, ins, 1, &out, 1, &ax, st, err) < 0 ? -1 : out;
}

/* Split(axis 0) of x into outs[0..k-1], n rows each. */
static kiln_status split0(kiln_network *net, int x, const int *outs, int k, int64_t n, const char *base, kiln_err *err)
{
    int64_t sizes[MAX_K];
    for (int b = 0; b < k; b++) sizes[b] = n;
    char name[512];
    unique_node_name(net, base, "batch_split", name, sizeof name);
    kiln_attr_value at[2] = {{.name = "axis", .type = KILN_ATTR_INT, .i = 0},
                             {.name = "split", .type = KILN_ATTR_INTS, .ints = sizes, .n = k}};
    kiln_status st = KILN_OK;
    if (net->opset < 13) {
        add_node(net, name, "Split", 1, &x, k, outs, 2, at, &st, err);
        return st;
    }
    int sz = add_ints(net, "batch_split_sizes", sizes, k, &st, err);
    if (sz < 0) return st;
    int ins[2] = {x, sz};
    add_node(net, name, "Split", 2, ins, k, outs, 1, at, &st, err);
    return st;
}

/* Rewrites a validated group: member 0 becomes the batched node, the others go. */
static kiln_status apply_group(ctx *c, const int *m, int k, const slot_plan *plan, int64_t N, bool **deleted,
                               kiln_err *err)
{
    kiln_network *net = c->net;
    char base[512];
    snprintf(base, sizeof base, "%s", net->nodes[m[0]].name);
    int n_in = net->nodes[m[0]].n_in, n_out = net->nodes[m[0]].n_out;
    int new_in[MAX_IN], ins[MAX_K];
    for (int s = 0; s < n_in; s++) {
        const slot_plan *p = &plan[s];
        new_in[s] = p->kind == P_OMIT ? -1 : p->t;
        if (p->kind == P_CONCAT || p->kind == P_REPEAT) {
            for (int b = 0; b < k; b++) ins[b] = p->kind == P_REPEAT ? p->t : net->nodes[m[b]].in[s];
            kiln_status st = KILN_OK;
            if ((new_in[s] = concat0(net, ins, k, base, &st, err)) < 0) return st;
            c->repeats += p->kind == P_REPEAT;
        } else if (p->kind == P_SIZES) {
            const kiln_value *sz = kiln__graph_const(net, p->t);
            int64_t v[KILN_MAX_DIMS];
            int cnt = (int)kiln__value_numel(sz);
            if (cnt > KILN_MAX_DIMS) return kiln__fail(err, KILN_ERR_INTERNAL, "Resize sizes of %d entries", cnt);
            for (int i = 0; i < cnt; i++) v[i] = kiln__value_get_i64(sz, i);
            v[p->pos] = N * k;
            kiln_status st = KILN_OK;
            if ((new_in[s] = add_ints(net, "batch_sizes", v, cnt, &st, err)) < 0) return st;
        }
    }
    /* the members' outputs are re-defined by the Splits */
    int old_out[MAX_K][MAX_OUT], new_out[MAX_OUT];
    for (int b = 0; b < k; b++)
        for (int j = 0; j < n_out; j++) {
            kiln_node *nb = &net->nodes[m[b]];
            old_out[b][j] = nb->out[j];
            if (nb->out[j] >= 0) net->tensors[nb->out[j]].producer = -1;
            nb->out[j] = -1;
        }
    for (int j = 0; j < n_out; j++) {
        new_out[j] = -1;
        if (old_out[0][j] < 0) continue;
        char name[512];
        snprintf(name, sizeof name, "%.400s_batched", net->tensors[old_out[0][j]].name);
        if ((new_out[j] = kiln__graph_new_tensor(net, name)) < 0)
            return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    kiln_node *n0 = &net->nodes[m[0]];
    for (int s = 0; s < n_in; s++) n0->in[s] = new_in[s];
    for (int j = 0; j < n_out; j++) {
        n0->out[j] = new_out[j];
        if (new_out[j] >= 0) net->tensors[new_out[j]].producer = m[0];
    }
    for (int j = 0; j < n_out; j++) {
        if (new_out[j] < 0) continue;
        int outs[MAX_K];
        for (int b = 0; b < k; b++) outs[b] = old_out[b][j];
        kiln_status s = split0(net, new_out[j], outs, k, N, base, err);
        if (s) return s;
    }
    bool *del = kiln__calloc((size_t)net->n_nodes + 1, sizeof(bool));
    if (!del) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    for (int b = 1; b < k; b++) del[m[b]] = true;
    *deleted = del;
    c->groups++;
    c->batched += k;
    return KILN_OK;
}

/* Validates and applies a candidate; true when it was applied (or on error, *st set). */
static bool try_group(ctx *c, const int *m, int k, bool **deleted, kiln_status *st, kiln_err *err)
{
    slot_plan plan[MAX_IN];
    int64_t N;
    if (!validate(c, m, k, plan, &N, err, st)) return *st != KILN_OK;
    *st = apply_group(c, m, k, plan, N, deleted, err);
    return true;
}

/* ---- growth and seeds ------------------------------------------------------ */

/* The k outputs of a Split along axis 0 into src[]; false when s is not one. */
static bool split0_pieces(const kiln_network *net, const kiln_node *s, int *src, int *k)
{
    if (!is_op(s, "Split") || s->n_in < 1 || s->in[0] < 0 || s->n_out < 2 || s->n_out > MAX_K) return false;
    int rank = shape_of(net, s->in[0])->rank;
    if (rank < 1 || norm_axis(kiln__attr_int(s, "axis", 0), rank) != 0) return false;
    for (int j = 0; j < s->n_out; j++) {
        if (s->out[j] < 0) return false;
        src[j] = s->out[j];
    }
    *k = s->n_out;
    return true;
}

/* Index of a Gather(X, i, axis=1) with a scalar constant index on X [1, k, ...], else -1 (k from X). */
static int gather_index(const kiln_network *net, const kiln_node *g, int *x)
{
    if (!is_op(g, "Gather") || g->n_in != 2 || g->n_out != 1 || g->in[0] < 0 || g->out[0] < 0) return -1;
    const kiln_shape *xs = shape_of(net, g->in[0]);
    if (xs->rank < 2 || dim0(xs) != 1 || !kiln__dim_is_const(xs->d[1])) return -1;
    int64_t k = xs->d[1].add;
    if (norm_axis(kiln__attr_int(g, "axis", 0), xs->rank) != 1 || k < 2 || k > MAX_K) return -1;
    const kiln_value *iv = kiln__graph_const(net, g->in[1]);
    if (!iv || iv->shape.rank != 0 || (iv->dtype != KILN_DT_INT64 && iv->dtype != KILN_DT_INT32)) return -1;
    int64_t i = kiln__value_get_i64(iv, 0);
    i = i < 0 ? i + k : i;
    if (i < 0 || i >= k) return -1;
    *x = g->in[0];
    return (int)i;
}

/* The complete family Gather(x, i, axis=1), i = 0..k-1, as src[]; false when one is missing. */
static bool gather_family(const ctx *c, int x, int *src, int *k)
{
    const kiln_shape *xs = shape_of(c->net, x);
    if (xs->rank < 2 || dim0(xs) != 1 || !kiln__dim_is_const(xs->d[1]) || xs->d[1].add < 2 || xs->d[1].add > MAX_K)
        return false;
    *k = (int)xs->d[1].add;
    for (int i = 0; i < *k; i++) src[i] = -1;
    for (int q = c->u.start[x]; q < c->u.start[x + 1]; q++) {
        int xx, i = gather_index(c->net, &c->net->nodes[c->u.node[q]], &xx);
        if (i >= 0 && xx == x && src[i] < 0) src[i] = c->net->nodes[c->u.node[q]].out[0];
    }
    for (int i = 0; i < *k; i++)
        if (src[i] < 0) return false;
    return true;
}

/* Groups of readers of src[b] at one slot, one per piece. */
static bool grow_forward(ctx *c, const int *src, int k, bool **deleted, kiln_status *st, kiln_err *err)
{
    kiln_network *net = c->net;
    for (int q0 = c->u.start[src[0]]; q0 < c->u.start[src[0] + 1]; q0++) {
        int m[MAX_K];
        m[0] = c->u.node[q0];
        int slot = c->u.slot[q0];
        bool ok = true;
        for (int b = 1; b < k && ok; b++) {
            m[b] = -1;
            for (int q = c->u.start[src[b]]; q < c->u.start[src[b] + 1] && m[b] < 0; q++) {
                int r = c->u.node[q];
                bool taken = false;
                for (int a = 0; a < b; a++) taken = taken || m[a] == r;
                if (!taken && c->u.slot[q] == slot && same_kind(&net->nodes[m[0]], &net->nodes[r])) m[b] = r;
            }
            ok = m[b] >= 0;
        }
        if (ok && try_group(c, m, k, deleted, st, err)) return true;
    }
    return false;
}

static bool try_growth(ctx *c, bool **deleted, kiln_status *st, kiln_err *err)
{
    kiln_network *net = c->net;
    int src[MAX_K], k;
    for (int i = 0; i < net->n_nodes; i++)
        if (split0_pieces(net, &net->nodes[i], src, &k) && grow_forward(c, src, k, deleted, st, err)) return true;
    for (int t = 0; t < net->n_tensors; t++) {
        if (!gather_family(c, t, src, &k)) continue;
        if (grow_forward(c, src, k, deleted, st, err)) return true;
    }
    /* producers of an axis-0 Concat's inputs */
    for (int i = 0; i < net->n_nodes; i++) {
        const kiln_node *cc = &net->nodes[i];
        if (!is_op(cc, "Concat") || cc->n_in < 2 || cc->n_in > MAX_K || cc->in[0] < 0) continue;
        if (norm_axis(kiln__attr_int(cc, "axis", 0), shape_of(net, cc->in[0])->rank) != 0) continue;
        int m[MAX_K], slot = -1;
        bool ok = true;
        for (int b = 0; b < cc->n_in && ok; b++) {
            int t = cc->in[b];
            m[b] = t >= 0 ? net->tensors[t].producer : -1;
            ok = m[b] >= 0;
            if (!ok) break;
            int j = 0;
            while (j < net->nodes[m[b]].n_out && net->nodes[m[b]].out[j] != t) j++;
            ok = slot < 0 || j == slot;
            slot = j;
        }
        if (ok && try_group(c, m, cc->n_in, deleted, st, err)) return true;
    }
    return false;
}

static bool is_seed_op(const kiln_node *n)
{
    if (is_plugin_dcn(n)) return true;
    if (!strcmp(n->domain, "kiln")) return !strcmp(n->op_type, "FusedConv");
    return is_op(n, "Conv") || is_op(n, "ConvTranspose") || is_op(n, "DeformConv") || is_op(n, "BatchNormalization");
}

/* Seeds: convolution-like nodes that read the same constant weights, independent of each other. */
static bool try_seeds(ctx *c, bool **deleted, kiln_status *st, kiln_err *err)
{
    kiln_network *net = c->net;
    bool *seen = kiln__calloc((size_t)net->n_nodes + 1, sizeof(bool));
    if (!seen) {
        *st = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        return true;
    }
    bool done = false;
    int roles[MAX_IN];
    for (int a = 0; a < net->n_nodes && !done && !*st; a++) {
        int i = c->order[a];
        const kiln_node *n = &net->nodes[i];
        if (seen[i] || !is_seed_op(n) || !op_roles(net, n, roles) || kiln__pass_pinned(c->opts, n->name)) continue;
        bool has_weight = false;
        for (int s = 0; s < n->n_in; s++)
            has_weight = has_weight || (roles[s] == R_PARAM && kiln__graph_const(net, n->in[s]) &&
                                        kiln__value_numel(kiln__graph_const(net, n->in[s])) > 1);
        if (!has_weight) continue;
        /* the nodes with the same key, in topological order */
        int cand[MAX_K], nc = 1;
        cand[0] = i;
        seen[i] = true;
        for (int b = a + 1; b < net->n_nodes && nc < MAX_K; b++) {
            int j = c->order[b];
            const kiln_node *o = &net->nodes[j];
            if (seen[j] || o->n_in != n->n_in || kiln__pass_pinned(c->opts, o->name)) continue;
            bool key = true;
            for (int s = 0; s < n->n_in && key; s++)
                if (roles[s] == R_PARAM) key = n->in[s] == o->in[s];
            if (!key || !same_kind(n, o) || !shape_same(shape_of(net, n->in[0]), shape_of(net, o->in[0]))) continue;
            seen[j] = true;
            cand[nc++] = j;
        }
        if (nc < 2) continue;
        /* greedily the largest set without a path between two of them (a chain of the same
         * weights, e.g. a recurrent block, is not batched) */
        if ((*st = build_reach(c, err))) break;
        int m[MAX_K], k = 0;
        for (int q = 0; q < nc; q++) {
            bool indep = true;
            for (int r = 0; r < k && indep; r++) indep = !reaches(c, m[r], cand[q]) && !reaches(c, cand[q], m[r]);
            if (indep) m[k++] = cand[q];
        }
        if (k >= 2) done = try_group(c, m, k, deleted, st, err);
    }
    free(seen);
    return done || *st;
}

/* ---- cancellation of the copies -------------------------------------------- */

static bool reshape_like(const kiln_node *n)
{
    return (is_op(n, "Reshape") || is_op(n, "Squeeze") || is_op(n, "Unsqueeze") || is_op(n, "Flatten")) &&
           n->n_in >= 1 && n->in[0] >= 0 && n->n_out == 1 && n->out[0] >= 0;
}

/* The tensor a replacement of node i writes: a new one, or (graph output) node i's own output,
 * which node i gives up (it is dead then). -1 on OOM. */
static int take_output(kiln_network *net, int i, bool is_out)
{
    int y = net->nodes[i].out[0];
    if (!is_out) return kiln__graph_new_tensor(net, net->tensors[y].name);
    net->nodes[i].out[0] = -1;
    net->tensors[y].producer = -1;
    return y;
}

/* The first rewrite of the cancellation rules that applies; returns 1 when one was made (one per
 * round: the uses lists and the new tensors' shapes are stale after it). */
static int cancel_copies(ctx *c, bool slices, kiln_status *st, kiln_err *err)
{
    kiln_network *net = c->net;
    int changes = 0, n_nodes = net->n_nodes;
    for (int i = 0; i < n_nodes && !*st && !changes; i++) {
        kiln_node *n = &net->nodes[i];
        if (kiln__pass_pinned(c->opts, n->name) || n->n_out != 1 || n->out[0] < 0 || n->n_in < 1 || n->in[0] < 0)
            continue;
        int y = n->out[0];
        if (any_reader_pinned(c, y)) continue;
        /* a graph output keeps its tensor: a new node takes it over instead of replacing uses */
        bool is_out = net->tensors[y].is_output;
        const kiln_shape *ys = shape_of(net, y);
        /* Gather -> Slice comes last, when nothing else changes: a family of Gathers may still batch */
        int gx = -1, gi = gather_index(net, n, &gx);
        if (slices != (gi >= 0)) continue;
        if (is_op(n, "Concat") && n->n_in >= 2) {
            int rank = shape_of(net, n->in[0])->rank;
            int64_t axis = rank >= 1 ? norm_axis(kiln__attr_int(n, "axis", 0), rank) : -1;
            int p = n->in[0] >= 0 ? net->tensors[n->in[0]].producer : -1;
            const kiln_node *sp = p >= 0 ? &net->nodes[p] : NULL;
            int src[MAX_K], k = 0;
            bool pieces = sp && split0_pieces(net, sp, src, &k) && k == n->n_in;
            for (int b = 0; b < k && pieces; b++) pieces = n->in[b] == src[b];
            if (pieces && axis == 0 && !is_out) { /* Concat0(Split0(X)) = X */
                kiln__graph_replace_uses(net, NULL, y, sp->in[0]);
                c->cancelled++;
                changes++;
                continue;
            }
            int x = sp ? sp->in[0] : -1;
            if (pieces && axis >= 1 && axis < ys->rank && dim0(shape_of(net, x)) == k && shape_known(ys) &&
                shape_of(net, x)->rank == ys->rank) {
                /* stacking batch-1 pieces along axis a: X's rows are already in that order. The
                 * dims after a are X's own (0 copies them when symbolic). */
                bool ones = true;
                for (int d = 1; d < axis; d++) ones = ones && kiln__dim_is_const(ys->d[d]) && ys->d[d].add == 1;
                if (!ones || !kiln__dim_is_const(ys->d[0]) || !kiln__dim_is_const(ys->d[axis])) continue;
                int64_t dims[KILN_MAX_DIMS];
                for (int d = 0; d < ys->rank; d++)
                    dims[d] = kiln__dim_is_const(ys->d[d]) ? ys->d[d].add : 0;
                int rank_y = ys->rank;
                int shp = add_ints(net, "batch_stack_shape", dims, rank_y, st, err);
                if (shp < 0) break;
                int out = take_output(net, i, is_out);
                if (out < 0) {
                    *st = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
                    break;
                }
                char name[512];
                unique_node_name(net, net->nodes[i].name, "batch_stack", name, sizeof name);
                int ins[2] = {x, shp};
                if (add_node(net, name, "Reshape", 2, ins, 1, &out, 0, NULL, st, err) < 0) break;
                if (!is_out) kiln__graph_replace_uses(net, NULL, y, out);
                c->reshaped++;
                changes++;
                continue;
            }
            if (axis == 0) { /* Concat0(Gather(X, i, axis=1), i = 0..k-1) = Squeeze(X, 0) */
                int xx = -1, x0 = -1;
                bool fam = true;
                for (int b = 0; b < n->n_in && fam; b++) {
                    int pb = n->in[b] >= 0 ? net->tensors[n->in[b]].producer : -1;
                    fam = pb >= 0 && gather_index(net, &net->nodes[pb], &xx) == b && (b == 0 || xx == x0);
                    if (b == 0) x0 = xx;
                }
                if (!fam || shape_of(net, x0)->d[1].add != n->n_in) continue;
                int64_t zero = 0;
                int out = take_output(net, i, is_out);
                if (out < 0) {
                    *st = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
                    break;
                }
                char name[512];
                unique_node_name(net, net->nodes[i].name, "batch_squeeze", name, sizeof name);
                kiln_attr_value at = {.name = "axes", .type = KILN_ATTR_INTS, .ints = &zero, .n = 1};
                int idx;
                if (net->opset < 13) {
                    idx = add_node(net, name, "Squeeze", 1, &x0, 1, &out, 1, &at, st, err);
                } else {
                    int ax = add_ints(net, "batch_squeeze_axes", &zero, 1, st, err);
                    int ins[2] = {x0, ax};
                    idx = ax < 0 ? -1 : add_node(net, name, "Squeeze", 2, ins, 1, &out, 0, NULL, st, err);
                }
                if (idx < 0) break;
                if (!is_out) kiln__graph_replace_uses(net, NULL, y, out);
                c->squeezed++;
                changes++;
            }
            continue;
        }
        if (gi >= 0) {
            /* Gather(Reshape(x), i, axis=1) with x [k, rest] viewed as [1, k, rest] is the slice
             * x[i:i+1]: no view of the whole batch (a layout change on the GPU) for one frame */
            int p = net->tensors[gx].producer;
            if (p < 0 || !reshape_like(&net->nodes[p]) || kiln__pass_pinned(c->opts, net->nodes[p].name)) continue;
            int x0 = net->nodes[p].in[0];
            const kiln_shape *xs = shape_of(net, gx), *s0 = shape_of(net, x0);
            bool fits = s0->rank == xs->rank - 1 && dim0(s0) == xs->d[1].add;
            for (int d = 1; d < s0->rank && fits; d++)
                fits = s0->d[d].sym != KILN_SYM_UNKNOWN && kiln__dim_equal(s0->d[d], xs->d[d + 1]);
            if (!fits) continue;
            int64_t se[3] = {gi, gi + 1, 0};
            int out = take_output(net, i, is_out);
            if (out < 0) {
                *st = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
                break;
            }
            char name[512];
            unique_node_name(net, net->nodes[i].name, "batch_slice", name, sizeof name);
            int idx;
            if (net->opset < 10) {
                kiln_attr_value at[3] = {{.name = "starts", .type = KILN_ATTR_INTS, .ints = &se[0], .n = 1},
                                         {.name = "ends", .type = KILN_ATTR_INTS, .ints = &se[1], .n = 1},
                                         {.name = "axes", .type = KILN_ATTR_INTS, .ints = &se[2], .n = 1}};
                idx = add_node(net, name, "Slice", 1, &x0, 1, &out, 3, at, st, err);
            } else {
                int ins[4] = {x0, -1, -1, -1};
                for (int q = 0; q < 3 && !*st; q++) ins[q + 1] = add_ints(net, "batch_slice_arg", &se[q], 1, st, err);
                idx = *st ? -1 : add_node(net, name, "Slice", 4, ins, 1, &out, 0, NULL, st, err);
            }
            if (idx < 0) break;
            if (!is_out) kiln__graph_replace_uses(net, NULL, y, out);
            c->sliced++;
            changes++;
            continue;
        }
        if (!reshape_like(n) || is_out) continue;
        /* a chain of reshapes: an earlier tensor of the same shape replaces y */
        int t = n->in[0], root = t, hops = 0;
        bool found = false;
        while (!found && hops++ < 64) {
            if (shape_same(shape_of(net, t), ys)) {
                found = true;
                break;
            }
            int p = net->tensors[t].producer;
            if (p < 0 || !reshape_like(&net->nodes[p]) || kiln__pass_pinned(c->opts, net->nodes[p].name)) break;
            t = net->nodes[p].in[0];
            root = t;
        }
        if (found) {
            kiln__graph_replace_uses(net, NULL, y, t);
            c->bypassed++;
            changes++;
            continue;
        }
        /* Reshape to a constant shape reads the chain's start directly */
        int64_t shp[KILN_MAX_DIMS];
        int cnt = 0;
        if (is_op(n, "Reshape") && n->n_in == 2 && root != n->in[0] &&
            const_ints(net, n->in[1], shp, KILN_MAX_DIMS, &cnt)) {
            bool zero = false;
            for (int d = 0; d < cnt; d++) zero = zero || shp[d] == 0;
            if (zero && kiln__attr_int(n, "allowzero", 0) == 0) continue;
            n->in[0] = root;
            c->bypassed++;
            changes++;
        }
    }
    return changes;
}

/* ---- rounds ------------------------------------------------------------------ */

/* Removes nodes (besides those already in `deleted`) whose outputs nothing reads, then compacts. */
static kiln_status finish_edit(kiln_network *net, bool *deleted, kiln_err *err)
{
    bool *del = deleted ? deleted : kiln__calloc((size_t)net->n_nodes + 1, sizeof(bool));
    int *readers = kiln__calloc((size_t)net->n_tensors + 1, sizeof(int));
    if (!del || !readers) {
        if (!deleted) free(del);
        free(readers);
        return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; i < net->n_nodes; i++)
        for (int j = 0; j < net->nodes[i].n_in; j++)
            if (!del[i] && net->nodes[i].in[j] >= 0) readers[net->nodes[i].in[j]]++;
    for (bool again = true; again;) {
        again = false;
        for (int i = 0; i < net->n_nodes; i++) {
            const kiln_node *n = &net->nodes[i];
            if (del[i]) continue;
            bool live = false;
            for (int j = 0; j < n->n_out && !live; j++)
                live = n->out[j] >= 0 && (readers[n->out[j]] > 0 || net->tensors[n->out[j]].is_output);
            if (live) continue;
            del[i] = again = true;
            for (int j = 0; j < n->n_in; j++)
                if (n->in[j] >= 0) readers[n->in[j]]--;
        }
    }
    free(readers);
    kiln_status s = kiln__graph_compact(net, del, err);
    if (!deleted) free(del);
    return s;
}

static void ctx_reset(ctx *c)
{
    kiln__graph_uses_free(&c->u);
    free(c->order);
    free(c->reach);
    c->order = NULL;
    c->reach = NULL;
}

kiln_status kiln__pass_batch_branches(kiln_network *net, const kiln_pass_options *opts, kiln_pass_stats *stats,
                                      kiln_err *err)
{
    const char *env = getenv("KILN_NO_BATCH_BRANCHES");
    if (env && *env && strcmp(env, "0")) {
        kiln__pass_note(stats, "skipped (KILN_NO_BATCH_BRANCHES=%s)", env);
        return KILN_OK;
    }
    ctx c;
    memset(&c, 0, sizeof c);
    c.net = net;
    c.opts = opts;
    /* the reachability matrix is n^2 bits: very large graphs are left alone */
    if (net->n_nodes > 20000) {
        kiln__pass_note(stats, "skipped (%d nodes)", net->n_nodes);
        return KILN_OK;
    }
    int nodes_before = net->n_nodes, rounds = 0;
    kiln_status s = KILN_OK;
    for (int limit = 4 * net->n_nodes + 64; rounds < limit; rounds++) {
        if ((s = kiln__net_infer_shapes(net, err))) break;
        if ((s = kiln__net_toposort(net, &c.order, err))) break;
        if ((s = kiln__graph_uses_build(net, NULL, &c.u, err))) break;
        bool *deleted = NULL;
        bool changed = cancel_copies(&c, false, &s, err) > 0;
        if (!s && !changed) changed = try_growth(&c, &deleted, &s, err);
        if (!s && !changed) changed = try_seeds(&c, &deleted, &s, err);
        if (!s && !changed) changed = cancel_copies(&c, true, &s, err) > 0;
        ctx_reset(&c);
        if (!s && changed) s = finish_edit(net, deleted, err);
        free(deleted);
        if (s || !changed) break;
    }
    ctx_reset(&c);
    stats->changes = c.groups + c.cancelled + c.squeezed + c.reshaped + c.bypassed + c.sliced;
    if (c.groups)
        kiln__pass_note(stats, "batched %d groups (%d nodes, %d -> %d nodes in %d rounds)", c.groups, c.batched,
                        nodes_before, net->n_nodes, rounds);
    if (c.repeats) kiln__pass_note(stats, "%d shared inputs repeated along the batch", c.repeats);
    if (c.cancelled) kiln__pass_note(stats, "%d Split/Concat pairs cancelled", c.cancelled);
    if (c.squeezed) kiln__pass_note(stats, "%d Gather/Concat -> Squeeze", c.squeezed);
    if (c.reshaped) kiln__pass_note(stats, "%d stacks -> Reshape", c.reshaped);
    if (c.bypassed) kiln__pass_note(stats, "%d reshape chains shortened", c.bypassed);
    if (c.sliced) kiln__pass_note(stats, "%d Gather of a batch view -> Slice", c.sliced);
    return s;
}
