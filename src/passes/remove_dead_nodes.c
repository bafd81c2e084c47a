/*
 * remove_dead_nodes: drops nodes none of whose outputs reaches a graph output,
 * and constants no remaining node reads. Graph inputs stay even when unused:
 * they are part of the network's interface.
 */
#include "passes.h"
#include <stdio.h>
#include <stdlib.h>

kiln_status kiln__pass_remove_dead_nodes(kiln_network *net, const kiln_pass_options *opts, kiln_pass_stats *stats,
                                         kiln_err *err)
{
    int *order = NULL;
    kiln_status s = kiln__net_toposort(net, &order, err);
    if (s) return s;
    bool *needed = kiln__calloc((size_t)net->n_tensors + 1, sizeof(bool));
    bool *deleted = kiln__calloc((size_t)net->n_nodes + 1, sizeof(bool));
    if (!needed || !deleted) {
        free(order);
        free(needed);
        free(deleted);
        return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int o = 0; o < net->n_outputs; o++) needed[net->outputs[o]] = true;
    int dead = 0;
    /* Reverse topological order: every reader of a node's outputs is decided before the node. */
    for (int k = net->n_nodes - 1; k >= 0; k--) {
        const kiln_node *n = &net->nodes[order[k]];
        bool live = false;
        for (int j = 0; j < n->n_out && !live; j++) live = n->out[j] >= 0 && needed[n->out[j]];
        if (!live) {
            deleted[order[k]] = true;
            dead++;
            continue;
        }
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j] >= 0) needed[n->in[j]] = true;
    }
    int unused = 0;
    double bytes = 0;
    for (int t = 0; t < net->n_tensors; t++)
        if (net->tensors[t].kind == KILN_TENSOR_CONSTANT && !needed[t]) {
            unused++;
            bytes += (double)net->tensors[t].v.nbytes;
        }
    stats->changes = dead + unused;
    if (dead) kiln__pass_note(stats, "removed %d dead nodes", dead);
    if (unused) kiln__pass_note(stats, "removed %d unused constants (%.1f MiB)", unused, bytes / 1048576.0);
    /* Compaction drops every tensor nothing references, the unused constants among them. */
    if (stats->changes) s = kiln__graph_compact(net, deleted, err);
    free(order);
    free(needed);
    free(deleted);
    return s;
}
