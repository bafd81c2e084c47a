/*
 * Static shape inference over the whole graph. Each node's schema infers its
 * outputs from its inputs (symbolic dims allowed). When every input of a node
 * is known and an evaluator is given, the node is evaluated instead, so shape
 * computations on constants fold and their results feed Reshape & co.
 */
#include "ir.h"
#include <stdlib.h>
#include <string.h>

/* Constant results larger than this are not kept during inference. */
#define FOLD_MAX_BYTES (1 << 20)

kiln_status kiln__net_infer_shapes_eval(kiln_network *net, kiln__node_eval_fn eval, kiln_err *err)
{
    int *order = NULL;
    kiln_status s = kiln__net_toposort(net, &order, err);
    if (s) return s;
    /* data computed during inference; freed at the end (activations keep only type/shape) */
    void **tmp = kiln__calloc((size_t)net->n_tensors, sizeof(void *));
    if (!tmp) {
        free(order);
        return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int k = 0; k < net->n_nodes && !s; k++) {
        kiln_node *nd = &net->nodes[order[k]];
        if (!nd->schema) {
            for (int j = 0; j < nd->n_out; j++)
                if (nd->out[j] >= 0) {
                    kiln_value *v = &net->tensors[nd->out[j]].v;
                    v->shape.rank = -1;
                }
            continue;
        }
        const kiln_value *in[64];
        kiln_value out[64];
        if (nd->n_in > 64 || nd->n_out > 64) continue;
        bool all_known = true;
        for (int j = 0; j < nd->n_in; j++) {
            in[j] = nd->in[j] >= 0 ? &net->tensors[nd->in[j]].v : NULL;
            if (in[j] && (!in[j]->data || !kiln__shape_is_const(&in[j]->shape))) all_known = false;
        }
        memset(out, 0, sizeof(kiln_value) * (size_t)nd->n_out);
        for (int j = 0; j < nd->n_out; j++) out[j].shape.rank = -1;
        s = nd->schema->infer(nd, nd->params, in, out, err);
        if (s) {
            kiln__err_prefix(err, "shape inference");
            break;
        }
        if (all_known && eval) {
            bool small = true;
            for (int j = 0; j < nd->n_out; j++) {
                int64_t numel = kiln__shape_numel(&out[j].shape);
                if (numel < 0 || (size_t)numel * kiln_dtype_size(out[j].dtype) > FOLD_MAX_BYTES) small = false;
            }
            /* Evaluation failure is not fatal here: the value just stays unknown. */
            if (small && eval(nd, in, out) != KILN_OK)
                for (int j = 0; j < nd->n_out; j++) {
                    free(out[j].data);
                    out[j].data = NULL;
                }
        }
        for (int j = 0; j < nd->n_out; j++) {
            if (nd->out[j] < 0) {
                free(out[j].data);
                continue;
            }
            int t = nd->out[j];
            free(tmp[t]);
            tmp[t] = out[j].data;
            net->tensors[t].v = out[j];
        }
    }
    for (int t = 0; t < net->n_tensors; t++) {
        if (tmp[t]) {
            free(tmp[t]);
            net->tensors[t].v.data = NULL;
            net->tensors[t].v.nbytes = 0;
        }
    }
    free(tmp);
    free(order);
    return s;
}

kiln_status kiln__net_infer_shapes(kiln_network *net, kiln_err *err)
{
    return kiln__net_infer_shapes_eval(net, NULL, err);
}
