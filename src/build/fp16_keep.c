/*
 * Layers of an fp16 build that keep fp32 for accuracy rather than range, found on the
 * network before the passes (so the builder pins them and nothing fuses them away):
 *   - long residual chains: Adds that each add a branch onto the previous Add's result
 *     (directly or through a Mul/Div by a constant scalar, ESRGAN's "x + 0.2 * y"). An
 *     fp16 running sum is rounded at every step, and the error grows along the chain:
 *     RRDBNet-x4plus's 92-step trunk makes most of its fp16 error (H200, 1x3x180x320: 1.47e-3
 *     with an fp16 trunk, 6.6e-4 with an fp32 one; see bench/RESULTS.md). Chains of RESIDUAL_CHAIN_MIN steps or more keep fp32, with the
 *     scalar Muls between them; shorter ones (a ResNet stage, EDVR's residual blocks)
 *     stay fp16, where the error is small and the extra bytes would show.
 *   - the image skip: an Add/Sub that adds a graph input, taken through ops that only
 *     move or resample it (Resize, Slice, Gather, Reshape...), to the network's result
 *     (SRVGGNetCompact's upsampled input, EDVR's upsampled centre frame). In fp16 the
 *     input image itself would be rounded into the output; these tensors have few
 *     channels, so fp32 costs little.
 *   - the input image's first conv: a stride-1 Conv of at most 3x3 reading a graph input
 *     (through such ops) with at most IMAGE_CHANNELS input channels: its weights and the
 *     image stay fp32 (its FLOPs are a few percent of a 64-channel layer's; a
 *     classifier's 7x7 stride-2 stem is left alone: costlier, and its error is averaged
 *     away by the pooling after it). Errors of the first
 *     layers grow the most through an SR network (H200: realesr-general-x4v3 1.00e-3 ->
 *     9.5e-4 with this one layer in fp32).
 * The builder gives these layers fp32 math without TF32 (TF32 rounds the operands as
 * fp16 storage does).
 * keep[] (net->n_nodes) gets the marks; the counts say which rule marked how many.
 */
#include "engine.h"
#include "../ir/ops_util.h" /* kiln__dtype_is_float */
#include <stdlib.h>
#include <string.h>

#define RESIDUAL_CHAIN_MIN 16
#define IMAGE_CHANNELS 4

static bool float_tensor(const kiln_network *net, int t)
{
    return t >= 0 && kiln__dtype_is_float(net->tensors[t].v.dtype) && net->tensors[t].kind != KILN_TENSOR_CONSTANT;
}

static bool is_op(const kiln_node *n, const char *op) { return !n->domain[0] && !strcmp(n->op_type, op); }

static bool from_constant_node(const kiln_network *net, const int *prod, int t)
{
    return t >= 0 && prod[t] >= 0 && is_op(&net->nodes[prod[t]], "Constant");
}

/* Add (or Sum) of two computed float tensors: a candidate residual step. */
static bool residual_add(const kiln_network *net, const int *prod, const kiln_node *n)
{
    return (is_op(n, "Add") || (is_op(n, "Sum") && n->n_in == 2)) && n->n_in == 2 && n->n_out == 1 &&
           float_tensor(net, n->in[0]) && float_tensor(net, n->in[1]) && !from_constant_node(net, prod, n->in[0]) &&
           !from_constant_node(net, prod, n->in[1]);
}

/* One value known before the run: an initializer, or a Constant node's output (the passes
 * have not folded those yet). */
static bool scalar_constant(const kiln_network *net, const int *prod, int t)
{
    if (t < 0) return false;
    const kiln_tensor *ct = &net->tensors[t];
    if (ct->kind == KILN_TENSOR_CONSTANT) return ct->v.data && kiln__value_numel(&ct->v) == 1;
    if (prod[t] < 0 || !is_op(&net->nodes[prod[t]], "Constant") || !kiln__shape_is_const(&ct->v.shape)) return false;
    int64_t n = 1;
    for (int d = 0; d < ct->v.shape.rank; d++) n *= ct->v.shape.d[d].add;
    return n == 1;
}

/* Mul/Div of a computed tensor by a constant scalar: returns the computed input, or -1. */
static int scaled_input(const kiln_network *net, const int *prod, const kiln_node *n)
{
    if (!(is_op(n, "Mul") || is_op(n, "Div")) || n->n_in != 2 || n->n_out != 1) return -1;
    for (int j = 0; j < 2; j++) {
        int c = n->in[j], x = n->in[1 - j];
        if (is_op(n, "Div") && j == 0) continue; /* c / x is no scaling of x */
        if (scalar_constant(net, prod, c) && float_tensor(net, x) && !scalar_constant(net, prod, x)) return x;
    }
    return -1;
}

/* Ops that only move, pick or resample values: the image skip may pass through them. */
static bool moves_only(const kiln_node *n)
{
    static const char *const ops[] = {"Resize", "Upsample", "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze",
                                      "Slice", "Gather", "Transpose", "Expand", "DepthToSpace", "SpaceToDepth"};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        if (is_op(n, ops[k])) return true;
    return false;
}

/* Whether tensor t is a graph input taken through moving ops only; path gets those ops. */
static bool from_graph_input(const kiln_network *net, const int *prod, int t, int *path, int *steps)
{
    *steps = 0;
    while (t >= 0 && *steps < 32) {
        if (net->tensors[t].kind == KILN_TENSOR_INPUT) return kiln__dtype_is_float(net->tensors[t].v.dtype);
        int p = prod[t];
        if (p < 0 || !moves_only(&net->nodes[p]) || net->nodes[p].n_in < 1) return false;
        path[(*steps)++] = p;
        t = net->nodes[p].in[0];
    }
    return false;
}

int kiln__fp16_keep_fp32(const kiln_network *net, bool *keep, int *n_chain, int *n_skip, int *n_first)
{
    int nn = net->n_nodes, nt = net->n_tensors;
    *n_chain = *n_skip = *n_first = 0;
    memset(keep, 0, sizeof(bool) * (size_t)nn);
    int *prod = kiln__calloc((size_t)nt + 1, sizeof(int));
    int *pred = kiln__calloc(2 * (size_t)nn + 2, sizeof(int)); /* per Add: up to 2 chain predecessors */
    int *link = kiln__calloc(2 * (size_t)nn + 2, sizeof(int)); /* the scalar Mul between, or -1 */
    int *depth = kiln__calloc((size_t)nn + 1, sizeof(int)), *height = kiln__calloc((size_t)nn + 1, sizeof(int));
    int *order = NULL;
    kiln_err terr = {{0}};
    int rc = 0;
    if (!prod || !pred || !link || !depth || !height) {
        rc = -1;
        goto out;
    }
    for (int t = 0; t < nt; t++) prod[t] = -1;
    for (int i = 0; i < nn; i++)
        for (int j = 0; j < net->nodes[i].n_out; j++)
            if (net->nodes[i].out[j] >= 0) prod[net->nodes[i].out[j]] = i;
    /* chain predecessors of each residual Add */
    for (int i = 0; i < nn; i++) {
        pred[2 * i] = pred[2 * i + 1] = link[2 * i] = link[2 * i + 1] = -1;
        const kiln_node *n = &net->nodes[i];
        if (!residual_add(net, prod, n)) continue;
        for (int j = 0; j < 2; j++) {
            int p = prod[n->in[j]], via = -1;
            if (p >= 0 && !residual_add(net, prod, &net->nodes[p])) {
                int x = scaled_input(net, prod, &net->nodes[p]);
                via = p;
                p = x >= 0 ? prod[x] : -1;
            }
            if (p >= 0 && residual_add(net, prod, &net->nodes[p])) {
                pred[2 * i + j] = p;
                link[2 * i + j] = via;
            }
        }
    }
    /* longest chain ending at (depth) and starting at (height) each Add, in node order: a
     * chain predecessor is an ancestor. A graph that does not sort marks nothing (the passes
     * report what is wrong with it). */
    if (kiln__net_toposort(net, &order, &terr)) goto out;
    for (int k = 0; k < nn; k++) {
        int i = order[k];
        depth[i] = residual_add(net, prod, &net->nodes[i]) ? 1 : 0;
        for (int j = 0; j < 2; j++)
            if (pred[2 * i + j] >= 0 && depth[pred[2 * i + j]] + 1 > depth[i]) depth[i] = depth[pred[2 * i + j]] + 1;
    }
    for (int k = nn - 1; k >= 0; k--) {
        int i = order[k];
        if (!height[i]) height[i] = depth[i] ? 1 : 0;
        for (int j = 0; j < 2; j++) {
            int p = pred[2 * i + j];
            if (p >= 0 && height[i] + 1 > height[p]) height[p] = height[i] + 1;
        }
    }
    for (int i = 0; i < nn; i++) {
        if (!depth[i] || depth[i] + height[i] - 1 < RESIDUAL_CHAIN_MIN) continue;
        keep[i] = true;
        (*n_chain)++;
        for (int j = 0; j < 2; j++) {
            int p = pred[2 * i + j], l = link[2 * i + j];
            if (p >= 0 && l >= 0 && !keep[l] && depth[p] + height[p] - 1 >= RESIDUAL_CHAIN_MIN) {
                keep[l] = true;
                (*n_chain)++;
            }
        }
    }
    /* the image skip: walk each Add/Sub input back through moving ops to a graph input;
     * the first conv: a few-channel Conv reading the image */
    for (int i = 0; i < nn; i++) {
        const kiln_node *n = &net->nodes[i];
        int path[32], steps = 0;
        if (is_op(n, "Conv") && n->n_in >= 2 && n->n_out == 1 && n->in[1] >= 0 &&
            from_graph_input(net, prod, n->in[0], path, &steps)) {
            const kiln_shape *ws = &net->tensors[n->in[1]].v.shape;
            bool small = ws->rank >= 3 && kiln__dim_is_const(ws->d[1]) && ws->d[1].add <= IMAGE_CHANNELS;
            for (int d = 2; small && d < ws->rank; d++) small = kiln__dim_is_const(ws->d[d]) && ws->d[d].add <= 3;
            const kiln_attr *st = kiln__node_attr(n, "strides");
            for (int64_t k = 0; small && st && st->type == KILN_ATTR_INTS && k < st->n; k++) small = st->ints[k] == 1;
            if (small) {
                if (!keep[i]) (*n_first)++;
                keep[i] = true;
            }
        }
        if (!(is_op(n, "Add") || is_op(n, "Sub")) || n->n_in != 2 || n->n_out != 1) continue;
        for (int j = 0; j < 2; j++) {
            if (!from_graph_input(net, prod, n->in[j], path, &steps)) continue;
            if (!keep[i]) (*n_skip)++;
            keep[i] = true;
            for (int k = 0; k < steps; k++) {
                if (!keep[path[k]]) (*n_skip)++;
                keep[path[k]] = true;
            }
        }
    }
out:
    free(prod);
    free(pred);
    free(link);
    free(depth);
    free(height);
    free(order);
    return rc;
}
