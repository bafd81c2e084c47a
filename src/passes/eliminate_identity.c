/*
 * eliminate_identity: removes Identity and inference-mode Dropout nodes.
 *
 * y = Identity(x): readers of y read x instead. When y is a graph output its
 * name must survive, so x's producer is made to produce y directly (and x's
 * other readers read y); that is only possible when x is a node output that is
 * not itself a graph output. An Identity from a graph input or constant to a
 * graph output stays: the output needs its own buffer.
 */
#include "passes.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Dropout is a copy when training_mode is absent or constant false, or the ratio is constant 0. */
static bool dropout_is_copy(const kiln_network *net, const kiln_node *n)
{
    int mode = n->n_in > 2 ? n->in[2] : -1, ratio = n->n_in > 1 ? n->in[1] : -1;
    if (mode < 0) return true;
    const kiln_value *m = kiln__graph_const(net, mode);
    if (m && kiln__value_numel(m) == 1 && kiln__value_get_i64(m, 0) == 0) return true;
    const kiln_value *r = kiln__graph_const(net, ratio);
    return r && kiln__value_numel(r) == 1 && kiln__value_get_f64(r, 0) == 0;
}

kiln_status kiln__pass_eliminate_identity(kiln_network *net, const kiln_pass_options *opts, kiln_pass_stats *stats,
                                          kiln_err *err)
{
    int *order = NULL, *count = NULL;
    bool *deleted = NULL;
    kiln_graph_uses u = {0};
    kiln_status s = kiln__net_toposort(net, &order, err);
    if (s) return s;
    s = kiln__graph_uses_build(net, NULL, &u, err);
    if (s) goto done;
    count = kiln__calloc((size_t)net->n_tensors + 1, sizeof(int));
    deleted = kiln__calloc((size_t)net->n_nodes + 1, sizeof(bool));
    if (!count || !deleted) {
        s = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    /* Reader counts kept up to date as readers move from one tensor to another. */
    for (int t = 0; t < net->n_tensors; t++) count[t] = kiln__graph_use_count(&u, t);
    int n_identity = 0, n_dropout = 0, n_renamed = 0, n_kept = 0;
    for (int k = 0; k < net->n_nodes; k++) {
        int i = order[k];
        kiln_node *n = &net->nodes[i];
        if (n->domain[0] || n->n_in < 1 || n->n_out < 1 || n->in[0] < 0) continue;
        bool is_id = !strcmp(n->op_type, "Identity"), is_drop = !strcmp(n->op_type, "Dropout");
        if (!is_id && !is_drop) continue;
        if (kiln__pass_pinned(opts, n->name)) continue;
        if (is_drop) {
            if (!dropout_is_copy(net, n)) continue;
            int mask = n->n_out > 1 ? n->out[1] : -1;
            if (mask >= 0 && (count[mask] > 0 || net->tensors[mask].is_output)) continue;
        }
        int x = n->in[0], y = n->out[0];
        if (y < 0) {
            deleted[i] = true;
            count[x]--;
        } else if (!net->tensors[y].is_output) {
            kiln__graph_replace_uses(net, deleted, y, x);
            deleted[i] = true;
            count[x] += count[y] - 1;
            count[y] = 0;
        } else {
            kiln_tensor *tx = &net->tensors[x];
            int p = tx->producer;
            if (tx->kind != KILN_TENSOR_ACTIVATION || p < 0 || tx->is_output || deleted[p]) {
                n_kept++;
                continue;
            }
            /* x's producer writes y; x's other readers read y. */
            deleted[i] = true;
            kiln_node *pn = &net->nodes[p];
            for (int j = 0; j < pn->n_out; j++)
                if (pn->out[j] == x) pn->out[j] = y;
            net->tensors[y].producer = p;
            net->tensors[y].v.dtype = tx->v.dtype;
            net->tensors[y].v.shape = tx->v.shape;
            tx->producer = -1;
            kiln__graph_replace_uses(net, deleted, x, y);
            count[y] += count[x] - 1;
            count[x] = 0;
            n_renamed++;
        }
        if (is_id) n_identity++;
        else n_dropout++;
    }
    stats->changes = n_identity + n_dropout;
    if (n_identity) kiln__pass_note(stats, "removed %d Identity", n_identity);
    if (n_dropout) kiln__pass_note(stats, "removed %d Dropout", n_dropout);
    if (n_renamed) kiln__pass_note(stats, "%d of them by making the producer write the graph output", n_renamed);
    if (n_kept) kiln__pass_note(stats, "kept %d that copy a graph input, constant or output to a graph output", n_kept);
    if (stats->changes) s = kiln__graph_compact(net, deleted, err);
done:
    kiln__graph_uses_free(&u);
    free(order);
    free(count);
    free(deleted);
    return s;
}
