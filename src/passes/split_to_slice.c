/*
 * split_to_slice: a Split whose consecutive outputs are glued back by one
 * Concat along the same axis becomes Slices: the Concat is a Slice of the
 * Split's input over the same range, and the Split's one other used output
 * (if any) a second Slice. The Split disappears.
 *
 * Why: DCNv2 packs (BasicSR, mmcv) compute offsets and mask with one conv,
 * then `o1, o2, mask = chunk(out, 3, dim=1); offset = cat(o1, o2)`. On the GPU
 * that is a Split writing 3 tensors and a Concat copying two of them again;
 * as two Slices each byte is read and written once. In EDVR-M (fp16, batch 5
 * after batch_branches) the Split + Concat pairs cost 0.16 ms each at 180x320.
 *
 * Conditions: default-domain Split and Concat of opset >= 13 (Slice takes its
 * ranges as inputs), the same axis, the glued outputs consecutive and in order,
 * read by that Concat only and no graph outputs; every used output's extent
 * along the axis is a static constant. Pinned nodes are left alone.
 */
#include "passes.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OUT 64

static int norm_axis(const kiln_node *n, int rank)
{
    int64_t a = kiln__attr_int(n, "axis", 0);
    if (a < 0) a += rank;
    return a >= 0 && a < rank ? (int)a : -1;
}

static int i64_const(kiln_network *net, const char *base, int64_t v, kiln_err *err)
{
    int64_t *d = malloc(sizeof *d);
    if (!d) {
        kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        return -1;
    }
    *d = v;
    kiln_shape sh;
    memset(&sh, 0, sizeof sh);
    sh.rank = 1;
    sh.d[0] = kiln__dim_const(1);
    return kiln__graph_add_constant(net, base, KILN_DT_INT64, &sh, d, sizeof *d, err);
}

/* Node n becomes Slice(x, [begin], [end], [axis]) writing tensor out. */
static kiln_status to_slice(kiln_network *net, int ni, int x, int64_t begin, int64_t end, int axis, int out,
                            kiln_err *err)
{
    char base[256];
    snprintf(base, sizeof base, "%s.slice", net->nodes[ni].name);
    int s = i64_const(net, base, begin, err), e = s < 0 ? -1 : i64_const(net, base, end, err),
        a = e < 0 ? -1 : i64_const(net, base, axis, err);
    if (a < 0) return KILN_ERR_OUT_OF_MEMORY; /* err says why */
    kiln_node *n = &net->nodes[ni]; /* after the constants: they do not move nodes, but stay safe */
    kiln_status st = kiln__node_set_n_inputs(n, 4, err);
    if (st) return st;
    n->in[0] = x;
    n->in[1] = s;
    n->in[2] = e;
    n->in[3] = a;
    n->out[0] = out;
    n->n_out = 1;
    kiln__node_remove_attr(n, "axis");
    kiln__node_remove_attr(n, "num_outputs");
    kiln__node_remove_attr(n, "split");
    return kiln__node_set_op(n, "", "Slice", err);
}

kiln_status kiln__pass_split_to_slice(kiln_network *net, const kiln_pass_options *opts, kiln_pass_stats *stats,
                                      kiln_err *err)
{
    kiln_status s = kiln__net_infer_shapes(net, err);
    if (s) return s;
    kiln_graph_uses u = {0};
    if ((s = kiln__graph_uses_build(net, NULL, &u, err))) return s;
    int rewrites = 0, n0 = net->n_nodes;
    for (int si = 0; si < n0 && !s; si++) {
        kiln_node *sp = &net->nodes[si];
        if (sp->domain[0] || strcmp(sp->op_type, "Split") || sp->opset < 13 || sp->n_out < 2 || sp->n_out > MAX_OUT ||
            sp->n_in < 1 || sp->in[0] < 0 || kiln__pass_pinned(opts, sp->name))
            continue;
        const kiln_shape *xs = &net->tensors[sp->in[0]].v.shape;
        int axis = xs->rank > 0 ? norm_axis(sp, xs->rank) : -1;
        if (axis < 0) continue;
        /* extents and users of every output */
        int64_t off[MAX_OUT + 1];
        int cat = -1, other = -1, n_other = 0;
        bool ok = true;
        off[0] = 0;
        for (int k = 0; k < sp->n_out && ok; k++) {
            int t = sp->out[k];
            if (t < 0) {
                ok = false;
                break;
            }
            const kiln_shape *ts = &net->tensors[t].v.shape;
            ok = ts->rank == xs->rank && kiln__dim_is_const(ts->d[axis]);
            if (!ok) break;
            off[k + 1] = off[k] + ts->d[axis].add;
            int nu = kiln__graph_use_count(&u, t);
            if (nu == 0 && !net->tensors[t].is_output) continue;
            const kiln_node *user = nu == 1 ? &net->nodes[u.node[u.start[t]]] : NULL;
            bool is_cat = user && !net->tensors[t].is_output && !user->domain[0] && !strcmp(user->op_type, "Concat") &&
                          user->opset >= 13 && !kiln__pass_pinned(opts, user->name);
            if (is_cat && (cat < 0 || cat == u.node[u.start[t]])) {
                cat = u.node[u.start[t]];
            } else {
                other = k;
                n_other++;
            }
        }
        if (!ok || cat < 0 || n_other > 1) continue;
        /* the Concat reads S's outputs i..j in order, along the same axis, and nothing else */
        kiln_node *cn = &net->nodes[cat];
        if (cn->n_in < 2 || cn->n_out != 1 || cn->out[0] < 0 || norm_axis(cn, xs->rank) != axis) continue;
        int first = -1;
        for (int k = 0; k < sp->n_out; k++)
            if (sp->out[k] == cn->in[0]) first = k;
        if (first < 0 || first + cn->n_in > sp->n_out) continue;
        for (int j = 0; j < cn->n_in && ok; j++) ok = cn->in[j] == sp->out[first + j];
        if (!ok) continue;
        int x = sp->in[0], last = first + cn->n_in - 1;
        int keep = other >= 0 ? sp->out[other] : -1;
        s = to_slice(net, cat, x, off[first], off[last + 1], axis, net->nodes[cat].out[0], err);
        if (!s && other >= 0) s = to_slice(net, si, x, off[other], off[other + 1], axis, keep, err);
        if (!s && other < 0) {
            /* the Split is dead: drop its outputs so that compaction removes it */
            kiln_node *d = &net->nodes[si];
            d->n_out = 0;
        }
        rewrites++;
    }
    kiln__graph_uses_free(&u);
    if (s) return s;
    stats->changes = rewrites;
    if (!rewrites) return KILN_OK;
    kiln__pass_note(stats, "%d Split + Concat pair(s) became Slice", rewrites);
    /* a Split left without outputs is deleted */
    bool *del = kiln__calloc((size_t)net->n_nodes + 1, sizeof(bool));
    if (!del) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; i < net->n_nodes; i++) del[i] = net->nodes[i].n_out == 0;
    s = kiln__graph_compact(net, del, err);
    free(del);
    return s;
}
