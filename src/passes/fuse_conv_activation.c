/*
 * fuse_conv_activation: Conv [+ activation] [+ Mul by a constant scalar]
 * [+ Add (or two-input Sum) of a tensor Z of the same shape] becomes one kiln::FusedConv
 * (y = act(conv(X, W) + B) * out_scale + z_scale * Z, see src/ir/ops_fused.c).
 *
 * Activations: Relu, LeakyRelu, PRelu with a constant slope that is one value
 * per channel (or a single value, which becomes LeakyRelu), Sigmoid, Tanh,
 * Clip with constant bounds. Each intermediate tensor must have exactly one
 * reader and not be a graph output; pinned nodes are left alone. The fused
 * node keeps the conv's name and records every merged node's name in
 * "fused_nodes" so per-layer profiles still name the ONNX nodes.
 *
 * An Add followed by an activation (ResNet's bottleneck end, relu(conv + b + z))
 * fuses too, when no activation came before the Add: the node then gets
 * act_after_residual = 1, y = act((conv(X, W) + B) * out_scale + z_scale * Z).
 */
#include "passes.h"
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ACT_NONE, ACT_RELU, ACT_LEAKY, ACT_PRELU, ACT_SIGMOID, ACT_TANH, ACT_CLIP, ACT_COUNT };
static const char *const act_names[] = {"", "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Clip"};

typedef struct chain {
    int act;
    float alpha, beta;
    int slope; /* tensor, -1 none */
    float out_scale;
    int z;     /* tensor, -1 none */
    bool after; /* activation taken after the residual Add */
    int nodes[4], n_nodes;
    int out;   /* tensor the fused node writes */
} chain;

static bool is_float(kiln_dtype dt)
{
    return dt == KILN_DT_FLOAT || dt == KILN_DT_DOUBLE || dt == KILN_DT_FLOAT16 || dt == KILN_DT_BFLOAT16;
}

/* A scalar constant of type dt as a float attribute; false when float cannot hold it exactly. */
static bool scalar_of(const kiln_network *net, int t, kiln_dtype dt, int max_rank, float *out)
{
    const kiln_value *v = kiln__graph_const(net, t);
    if (!v || v->dtype != dt || kiln__value_numel(v) != 1 || v->shape.rank > max_rank) return false;
    double d = kiln__value_get_f64(v, 0);
    *out = (float)d;
    return (double)*out == d || isnan(d);
}

/* PRelu slope laid along the channel axis of y (rank r, C channels), as the CPU kernel broadcasts it. */
static bool slope_per_channel(const kiln_node *pr, const kiln_value *sl, const kiln_shape *y)
{
    int r = y->rank;
    if (r < 2 || !kiln__dim_is_const(y->d[1])) return false;
    int64_t c = y->d[1].add;
    if (pr->opset < 7 && sl->shape.rank == 1 && sl->shape.d[0].add != 1 && sl->shape.d[0].add == c) return true;
    if (sl->shape.rank > r) return false;
    int off = r - sl->shape.rank;
    for (int i = 0; i < sl->shape.rank; i++) {
        int64_t d = sl->shape.d[i].add;
        if (d != 1 && (off + i != 1 || d != c)) return false;
    }
    return true;
}

/* Is node n (reading t at slot 0) an activation the fused conv can take? Fills ch only then. */
static bool take_activation(const kiln_network *net, const kiln_node *n, int slot, kiln_dtype dt, const kiln_shape *ys,
                            chain *out)
{
    if (slot != 0) return false;
    chain tmp = *out, *ch = &tmp;
    const char *op = n->op_type;
    if (!strcmp(op, "Relu") && n->n_in == 1) {
        ch->act = ACT_RELU;
    } else if (!strcmp(op, "Sigmoid") && n->n_in == 1) {
        ch->act = ACT_SIGMOID;
    } else if (!strcmp(op, "Tanh") && n->n_in == 1) {
        ch->act = ACT_TANH;
    } else if (!strcmp(op, "LeakyRelu") && n->n_in == 1) {
        ch->act = ACT_LEAKY;
        ch->alpha = kiln__attr_float(n, "alpha", 0.01f);
    } else if (!strcmp(op, "PRelu") && n->n_in == 2) {
        const kiln_value *sl = kiln__graph_const(net, n->in[1]);
        if (!sl || sl->dtype != dt) return false;
        float a;
        if (kiln__value_numel(sl) == 1 && sl->shape.rank <= ys->rank && scalar_of(net, n->in[1], dt, ys->rank, &a)) {
            /* one slope for all: LeakyRelu */
            ch->act = ACT_LEAKY;
            ch->alpha = a;
        } else if (slope_per_channel(n, sl, ys)) {
            ch->act = ACT_PRELU;
            ch->slope = n->in[1];
        } else {
            return false;
        }
    } else if (!strcmp(op, "Clip")) {
        ch->act = ACT_CLIP;
        if (n->opset < 11) {
            if (n->n_in != 1) return false;
            ch->alpha = kiln__attr_float(n, "min", -FLT_MAX);
            ch->beta = kiln__attr_float(n, "max", FLT_MAX);
        } else {
            ch->alpha = -INFINITY;
            ch->beta = INFINITY;
            if (n->n_in > 1 && n->in[1] >= 0 && !scalar_of(net, n->in[1], dt, KILN_MAX_DIMS, &ch->alpha)) return false;
            if (n->n_in > 2 && n->in[2] >= 0 && !scalar_of(net, n->in[2], dt, KILN_MAX_DIMS, &ch->beta)) return false;
        }
    } else {
        return false;
    }
    *out = tmp;
    return true;
}

static bool same_shape(const kiln_shape *a, const kiln_shape *b)
{
    if (a->rank < 0 || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->d[i].sym == KILN_SYM_UNKNOWN || !kiln__dim_equal(a->d[i], b->d[i])) return false;
    return true;
}

/* Follows the conv's output through the fusable nodes; returns false when nothing fuses. */
static bool find_chain(const kiln_network *net, const kiln_pass_options *opts, const kiln_graph_uses *u,
                       const bool *deleted, const kiln_node *cv, chain *ch)
{
    memset(ch, 0, sizeof *ch);
    ch->slope = ch->z = -1;
    ch->out_scale = 1.0f;
    int t = cv->out[0];
    ch->out = t;
    const kiln_value *yv = &net->tensors[t].v;
    kiln_dtype dt = yv->dtype;
    kiln_shape ys = yv->shape;
    if (!is_float(dt)) return false;
    int stage = 0; /* 1: activation taken, 2: Mul taken, 3: Add taken, 4: activation after the Add */
    while (stage < 4) {
        if (net->tensors[t].is_output || kiln__graph_use_count(u, t) != 1) break;
        int ni = u->node[u->start[t]], slot = u->slot[u->start[t]];
        const kiln_node *n = &net->nodes[ni];
        if (deleted[ni] || n->domain[0] || n->n_out != 1 || n->out[0] < 0 || kiln__pass_pinned(opts, n->name)) break;
        bool is_add = !strcmp(n->op_type, "Add") || !strcmp(n->op_type, "Sum");
        float scale;
        if (stage < 1 && take_activation(net, n, slot, dt, &ys, ch)) {
            stage = 1;
        } else if (stage == 3 && ch->act == ACT_NONE && take_activation(net, n, slot, dt, &ys, ch)) {
            ch->after = true;
            stage = 4;
        } else if (stage < 2 && !strcmp(n->op_type, "Mul") && n->n_in == 2 && ys.rank >= 0 &&
                   scalar_of(net, n->in[1 - slot], dt, ys.rank, &scale)) {
            ch->out_scale = scale;
            stage = 2;
        } else if (stage < 3 && is_add && n->n_in == 2 && n->in[1 - slot] >= 0 && n->in[1 - slot] != t) {
            int z = n->in[1 - slot];
            const kiln_value *zv = &net->tensors[z].v;
            if (zv->dtype != dt || !same_shape(&zv->shape, &ys)) break;
            ch->z = z;
            stage = 3;
        } else {
            break;
        }
        ch->nodes[ch->n_nodes++] = ni;
        t = n->out[0];
        ch->out = t;
    }
    return ch->n_nodes > 0;
}

/* An INT attribute = 1 (graph_edit.c has setters for FLOAT and STRING only). */
static kiln_status set_attr_one(kiln_node *n, const char *name, kiln_err *err)
{
    kiln_status s = kiln__node_set_attr_float(n, name, 1.0f, err);
    if (s) return s;
    for (int i = 0; i < n->n_attrs; i++)
        if (!strcmp(n->attrs[i].name, name)) {
            n->attrs[i].type = KILN_ATTR_INT;
            n->attrs[i].i = 1;
            n->attrs[i].f = 0.0f;
        }
    return KILN_OK;
}

static kiln_status rewrite(kiln_network *net, int ci, const chain *ch, bool *deleted, kiln_err *err)
{
    kiln_node *cv = &net->nodes[ci];
    int x = cv->in[0], w = cv->in[1], b = cv->n_in > 2 ? cv->in[2] : -1;
    int n_in = ch->z >= 0 ? 5 : ch->slope >= 0 ? 4 : b >= 0 ? 3 : 2;
    kiln_status s = kiln__node_set_n_inputs(cv, n_in, err);
    if (s) return s;
    int ins[5] = {x, w, b, ch->slope, ch->z};
    for (int j = 0; j < n_in; j++) cv->in[j] = ins[j];
    net->tensors[cv->out[0]].producer = -1;
    cv->out[0] = ch->out;
    net->tensors[ch->out].producer = ci;
    if ((s = kiln__node_set_attr_string(cv, "activation", act_names[ch->act], err))) return s;
    if (ch->act == ACT_LEAKY || ch->act == ACT_CLIP)
        if ((s = kiln__node_set_attr_float(cv, "act_alpha", ch->alpha, err))) return s;
    if (ch->act == ACT_CLIP)
        if ((s = kiln__node_set_attr_float(cv, "act_beta", ch->beta, err))) return s;
    if ((s = kiln__node_set_attr_float(cv, "out_scale", ch->out_scale, err))) return s;
    if ((s = kiln__node_set_attr_float(cv, "z_scale", 1.0f, err))) return s;
    if (ch->after && (s = set_attr_one(cv, "act_after_residual", err))) return s;
    for (int k = 0; k < ch->n_nodes; k++) {
        deleted[ch->nodes[k]] = true;
        if ((s = kiln__node_add_fused_name(cv, net->nodes[ch->nodes[k]].name, err))) return s;
    }
    return kiln__node_set_op(cv, "kiln", "FusedConv", err);
}

kiln_status kiln__pass_fuse_conv_activation(kiln_network *net, const kiln_pass_options *opts, kiln_pass_stats *stats,
                                            kiln_err *err)
{
    kiln_status s = kiln__net_infer_shapes(net, err);
    if (s) return s;
    int *order = NULL;
    if ((s = kiln__net_toposort(net, &order, err))) return s;
    kiln_graph_uses u = {0};
    bool *deleted = kiln__calloc((size_t)net->n_nodes + 1, sizeof(bool));
    if (!deleted) {
        free(order);
        return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    s = kiln__graph_uses_build(net, NULL, &u, err);
    int fused = 0, convs = 0, by_act[ACT_COUNT] = {0}, muls = 0, adds = 0, afters = 0;
    for (int k = 0; k < net->n_nodes && !s; k++) {
        int ci = order[k];
        kiln_node *cv = &net->nodes[ci];
        if (cv->domain[0] || strcmp(cv->op_type, "Conv")) continue;
        convs++;
        if (deleted[ci] || kiln__pass_pinned(opts, cv->name) || cv->n_out != 1 || cv->out[0] < 0 || cv->n_in < 2)
            continue;
        chain ch;
        if (!find_chain(net, opts, &u, deleted, cv, &ch)) continue;
        s = rewrite(net, ci, &ch, deleted, err);
        fused++;
        by_act[ch.act]++;
        muls += ch.out_scale != 1.0f;
        adds += ch.z >= 0;
        afters += ch.after;
    }
    kiln__graph_uses_free(&u);
    free(order);
    stats->changes = fused;
    if (convs) kiln__pass_note(stats, "fused %d of %d Conv into FusedConv", fused, convs);
    for (int a = 1; a < ACT_COUNT; a++)
        if (by_act[a]) kiln__pass_note(stats, "%d with %s", by_act[a], act_names[a]);
    if (muls) kiln__pass_note(stats, "%d with a scale", muls);
    if (adds) kiln__pass_note(stats, "%d with a residual Add", adds);
    if (afters) kiln__pass_note(stats, "%d with the activation after the Add", afters);
    if (fused) {
        kiln_err e2;
        kiln_status s2 = kiln__graph_compact(net, deleted, s ? &e2 : err);
        if (!s) s = s2;
    }
    free(deleted);
    return s;
}
