/*
 * hoist_activation: Conv -> DepthToSpace -> activation becomes
 * Conv -> activation -> DepthToSpace, so that fuse_conv_activation (next) can
 * take the activation into the conv's epilogue.
 *
 * Why: SR upsamplers are conv -> PixelShuffle -> LeakyReLU (EDVR, BasicSR's
 * nets). PixelShuffle only moves elements, and a pointwise activation with
 * scalar parameters commutes with any movement, so the swap is exact. At
 * EDVR-M's last upsampling the standalone LeakyReLU reads and writes 118 MB
 * (60 us on the H200); fused it costs nothing.
 *
 * Taken: Relu, LeakyRelu, Sigmoid, Tanh, Clip with constant bounds, PRelu
 * with a single-value constant slope (a per-channel slope does not commute:
 * DepthToSpace changes channels). Every tensor on the way must have exactly
 * one reader and not be a graph output; pinned nodes are left alone.
 */
#include "passes.h"
#include <string.h>

static bool scalar_const(const kiln_network *net, int t)
{
    const kiln_value *v = kiln__graph_const(net, t);
    return v && kiln__value_numel(v) == 1;
}

/* A pointwise activation whose parameters are scalars (so it commutes with element moves). */
static bool commuting_activation(const kiln_network *net, const kiln_node *n)
{
    if (n->domain[0] || n->n_out != 1 || n->n_in < 1) return false;
    const char *op = n->op_type;
    if (!strcmp(op, "Relu") || !strcmp(op, "LeakyRelu") || !strcmp(op, "Sigmoid") || !strcmp(op, "Tanh"))
        return n->n_in == 1;
    if (!strcmp(op, "PRelu")) return n->n_in == 2 && scalar_const(net, n->in[1]);
    if (!strcmp(op, "Clip")) {
        for (int j = 1; j < n->n_in; j++)
            if (n->in[j] >= 0 && !scalar_const(net, n->in[j])) return false;
        return true;
    }
    return false;
}

static bool single_reader(const kiln_network *net, const kiln_graph_uses *u, int t)
{
    return t >= 0 && !net->tensors[t].is_output && kiln__graph_use_count(u, t) == 1;
}

kiln_status kiln__pass_hoist_activation(kiln_network *net, const kiln_pass_options *opts, kiln_pass_stats *stats,
                                        kiln_err *err)
{
    kiln_graph_uses u = {0};
    kiln_status s = kiln__graph_uses_build(net, NULL, &u, err);
    if (s) return s;
    int moved = 0;
    for (int di = 0; di < net->n_nodes; di++) {
        kiln_node *d = &net->nodes[di];
        if (d->domain[0] || strcmp(d->op_type, "DepthToSpace") || d->n_in != 1 || d->n_out != 1) continue;
        int x = d->in[0], t = d->out[0];
        if (x < 0 || t < 0 || net->tensors[x].producer < 0) continue;
        const kiln_node *cv = &net->nodes[net->tensors[x].producer];
        if (cv->domain[0] || strcmp(cv->op_type, "Conv") || !single_reader(net, &u, x) || !single_reader(net, &u, t))
            continue;
        int ai = u.node[u.start[t]];
        kiln_node *a = &net->nodes[ai];
        if (u.slot[u.start[t]] != 0 || !commuting_activation(net, a) || a->out[0] < 0) continue;
        if (kiln__pass_pinned(opts, d->name) || kiln__pass_pinned(opts, a->name)) continue;
        /* x -> A -> t -> D -> y: tensor t now holds act(x), with x's shape (inference refreshes it) */
        int y = a->out[0];
        a->in[0] = x;
        a->out[0] = t;
        d->in[0] = t;
        d->out[0] = y;
        net->tensors[t].v.shape = net->tensors[x].v.shape;
        moved++;
    }
    kiln__graph_uses_free(&u);
    stats->changes = moved;
    if (moved) kiln__pass_note(stats, "moved %d activation(s) before DepthToSpace", moved);
    /* producers and order: compact re-derives both (nothing is deleted) */
    return moved ? kiln__graph_compact(net, NULL, err) : KILN_OK;
}
