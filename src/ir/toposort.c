/* Topological order of nodes; finds dangling tensor names and cycles. */
#include "ir.h"
#include <stdlib.h>

kiln_status kiln__net_toposort(const kiln_network *net, int **order_out, kiln_err *err)
{
    *order_out = NULL;
    int n = net->n_nodes;
    int *indeg = kiln__calloc((size_t)n, sizeof(int));
    int *order = kiln__calloc((size_t)n, sizeof(int));
    /* consumers as CSR: for each tensor, the nodes reading it */
    int *cnt = kiln__calloc((size_t)net->n_tensors + 1, sizeof(int));
    if (!indeg || !order || !cnt) goto oom;
    for (int i = 0; i < n; i++) {
        const kiln_node *nd = &net->nodes[i];
        for (int j = 0; j < nd->n_in; j++) {
            int t = nd->in[j];
            if (t < 0) continue;
            const kiln_tensor *tt = &net->tensors[t];
            if (tt->kind == KILN_TENSOR_ACTIVATION && tt->producer < 0) {
                kiln__fail(err, KILN_ERR_GRAPH, "node '%s' (%s): input '%s' is not produced by any node, input or initializer",
                           nd->name, nd->op_type, tt->name);
                goto fail;
            }
            if (tt->producer >= 0) {
                indeg[i]++;
                cnt[t + 1]++;
            }
        }
    }
    for (int t = 0; t < net->n_tensors; t++) cnt[t + 1] += cnt[t];
    int *cons = kiln__calloc((size_t)cnt[net->n_tensors] + 1, sizeof(int));
    int *fill = kiln__calloc((size_t)net->n_tensors + 1, sizeof(int));
    if (!cons || !fill) {
        free(cons);
        free(fill);
        goto oom;
    }
    for (int i = 0; i < n; i++) {
        const kiln_node *nd = &net->nodes[i];
        for (int j = 0; j < nd->n_in; j++) {
            int t = nd->in[j];
            if (t >= 0 && net->tensors[t].producer >= 0) cons[cnt[t] + fill[t]++] = i;
        }
    }
    /* Kahn's algorithm, stable: keeps the file order where the file is already sorted. */
    int head = 0, tail = 0;
    int *queue = order;
    for (int i = 0; i < n; i++)
        if (indeg[i] == 0) queue[tail++] = i;
    while (head < tail) {
        int i = queue[head++];
        const kiln_node *nd = &net->nodes[i];
        for (int j = 0; j < nd->n_out; j++) {
            int t = nd->out[j];
            if (t < 0) continue;
            for (int c = cnt[t]; c < cnt[t + 1]; c++)
                if (--indeg[cons[c]] == 0) queue[tail++] = cons[c];
        }
    }
    free(cons);
    free(fill);
    if (tail != n) {
        for (int i = 0; i < n; i++)
            if (indeg[i] > 0) {
                kiln__fail(err, KILN_ERR_GRAPH, "graph has a cycle through node '%s' (%s)", net->nodes[i].name, net->nodes[i].op_type);
                break;
            }
        goto fail;
    }
    for (int o = 0; o < net->n_outputs; o++) {
        const kiln_tensor *tt = &net->tensors[net->outputs[o]];
        if (tt->kind == KILN_TENSOR_ACTIVATION && tt->producer < 0) {
            kiln__fail(err, KILN_ERR_GRAPH, "graph output '%s' is not produced by any node", tt->name);
            goto fail;
        }
    }
    free(indeg);
    free(cnt);
    *order_out = order;
    return KILN_OK;
oom:
    kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory sorting the graph");
fail:
    free(indeg);
    free(order);
    free(cnt);
    return err && err->msg[0] ? KILN_ERR_GRAPH : KILN_ERR_OUT_OF_MEMORY;
}
