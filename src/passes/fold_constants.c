/*
 * fold_constants: evaluates every node whose inputs are all constants with the
 * CPU reference kernel (the schema's infer gives the exact output shapes) and
 * replaces its outputs by constants. This turns weight subgraphs (Transpose,
 * Cast, DequantizeLinear-like chains, ONNX "light" models' ConstantOfShape)
 * and shape computations into plain constants.
 *
 * When input shapes are static, Shape and Size of a tensor whose inferred
 * shape is constant fold too, from static shape inference, so whole
 * Shape -> Gather -> Concat -> Reshape chains collapse. With dynamic shapes
 * they are left alone: the builder may still change the input dims.
 *
 * A node is left in place (not an error) when it has no CPU kernel, is
 * random, is pinned, its result would exceed the size limit, or its
 * evaluation fails — the run time reports a real failure with context.
 */
#include "../cpu/cpu.h"
#include "passes.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IO 64

static bool is_random(const kiln_node *n)
{
    static const char *const ops[] = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                                      "Bernoulli", "Multinomial"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (!strcmp(n->op_type, ops[i])) return true;
    return false;
}

/* Shape/Size of a tensor with a constant inferred shape: the value is in the output's symval. */
static bool shape_source(const kiln_network *net, const kiln_node *n)
{
    if (n->domain[0] || (strcmp(n->op_type, "Shape") && strcmp(n->op_type, "Size"))) return false;
    if (n->n_in != 1 || n->n_out != 1 || n->in[0] < 0 || n->out[0] < 0) return false;
    if (!kiln__shape_is_const(&net->tensors[n->in[0]].v.shape)) return false;
    const kiln_value *o = &net->tensors[n->out[0]].v;
    int64_t numel = kiln__shape_numel(&o->shape);
    if (o->dtype != KILN_DT_INT64 || numel < 0 || numel != o->symval_n) return false;
    for (int i = 0; i < o->symval_n; i++)
        if (!kiln__dim_is_const(o->symval[i])) return false;
    return true;
}

/* Evaluates node n; on success out[] hold the results (owned by the caller). */
static kiln_status evaluate(const kiln_network *net, const kiln_node *n, size_t max_bytes, kiln_value *out,
                            bool *too_big, kiln_err *err)
{
    const kiln_value *in[MAX_IO];
    for (int j = 0; j < n->n_in; j++) in[j] = n->in[j] >= 0 ? &net->tensors[n->in[j]].v : NULL;
    memset(out, 0, sizeof(kiln_value) * (size_t)n->n_out);
    for (int j = 0; j < n->n_out; j++) out[j].shape.rank = -1;
    kiln_status s = n->schema->infer(n, n->params, in, out, err);
    if (s) return s;
    for (int j = 0; j < n->n_out; j++) {
        int64_t numel = kiln__shape_numel(&out[j].shape);
        size_t es = kiln_dtype_size(out[j].dtype), nbytes;
        if (numel < 0 || es == 0)
            return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): output %d has no concrete shape or type", n->name,
                              n->op_type, j);
        if (kiln__mul_overflow((size_t)numel, es, &nbytes) || nbytes > max_bytes) {
            *too_big = true;
            return kiln__fail(err, KILN_ERR_LIMIT, "node '%s' (%s): output %d is over the size limit", n->name,
                              n->op_type, j);
        }
        out[j].symval_n = 0;
    }
    for (int j = 0; j < n->n_out; j++) {
        size_t nbytes = (size_t)kiln__shape_numel(&out[j].shape) * kiln_dtype_size(out[j].dtype);
        if (!(out[j].data = kiln__calloc(1, nbytes))) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        out[j].nbytes = nbytes;
    }
    const kiln_cpu_kernel *k = kiln__cpu_kernel_find(n->domain, n->op_type);
    return k->run(n, n->params, in, out, err);
}

kiln_status kiln__pass_fold_constants(kiln_network *net, const kiln_pass_options *opts, kiln_pass_stats *stats,
                                      kiln_err *err)
{
    size_t max_bytes = opts->fold_max_bytes ? opts->fold_max_bytes : KILN_FOLD_MAX_BYTES_DEFAULT;
    kiln_status s;
    if (opts->static_shapes && (s = kiln__net_infer_shapes(net, err))) return s;
    int *order = NULL;
    s = kiln__net_toposort(net, &order, err);
    if (s) return s;
    bool *deleted = kiln__calloc((size_t)net->n_nodes + 1, sizeof(bool));
    if (!deleted) {
        free(order);
        return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    int folded = 0, from_shapes = 0, n_const = 0, too_big = 0, failed = 0;
    double bytes = 0;
    char first_failure[256] = "";
    for (int k = 0; k < net->n_nodes; k++) {
        kiln_node *n = &net->nodes[order[k]];
        if (!n->schema || n->n_out < 1 || n->n_in > MAX_IO || n->n_out > MAX_IO || is_random(n)) continue;
        if (!kiln__cpu_kernel_find(n->domain, n->op_type) || kiln__pass_pinned(opts, n->name)) continue;
        kiln_value out[MAX_IO];
        if (opts->static_shapes && shape_source(net, n)) {
            /* The value comes from static inference: no kernel run. */
            const kiln_value *o = &net->tensors[n->out[0]].v;
            int64_t cnt = o->symval_n;
            memset(out, 0, sizeof out[0]);
            out[0].dtype = KILN_DT_INT64;
            out[0].shape = o->shape;
            out[0].nbytes = sizeof(int64_t) * (size_t)cnt;
            if (!(out[0].data = kiln__malloc(out[0].nbytes))) {
                s = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
                break;
            }
            for (int64_t i = 0; i < cnt; i++) ((int64_t *)out[0].data)[i] = o->symval[i].add;
            from_shapes++;
        } else {
            bool all_const = true;
            for (int j = 0; j < n->n_in && all_const; j++)
                if (n->in[j] >= 0 && !kiln__graph_const(net, n->in[j])) all_const = false;
            if (!all_const) continue;
            bool big = false;
            kiln_err e = {{0}};
            kiln_status es = evaluate(net, n, max_bytes, out, &big, &e);
            if (es) {
                for (int j = 0; j < n->n_out; j++) free(out[j].data);
                if (es == KILN_ERR_OUT_OF_MEMORY) {
                    s = kiln__fail(err, es, "node '%s' (%s): out of memory folding it", n->name, n->op_type);
                    break;
                }
                if (big) {
                    too_big++;
                } else {
                    if (!failed) snprintf(first_failure, sizeof first_failure, "%s", e.msg);
                    failed++;
                }
                continue;
            }
        }
        for (int j = 0; j < n->n_out; j++) {
            int t = n->out[j];
            if (t < 0) {
                free(out[j].data);
                continue;
            }
            kiln_tensor *tt = &net->tensors[t];
            free(tt->v.data);
            tt->v = out[j];
            tt->kind = KILN_TENSOR_CONSTANT;
            tt->producer = -1;
            bytes += (double)out[j].nbytes;
            n_const++;
        }
        deleted[order[k]] = true;
        folded++;
    }
    free(order);
    if (!s) {
        stats->changes = folded;
        if (folded)
            kiln__pass_note(stats, "folded %d nodes into %d constants (%.1f MiB)", folded, n_const, bytes / 1048576.0);
        if (from_shapes) kiln__pass_note(stats, "%d of them Shape/Size of fixed shapes", from_shapes);
        if (too_big)
            kiln__pass_note(stats, "%d left in place: result over %.0f MiB", too_big, (double)max_bytes / 1048576.0);
        if (failed) kiln__pass_note(stats, "%d could not be evaluated (first: %s)", failed, first_failure);
        if (folded) s = kiln__graph_compact(net, deleted, err);
    } else if (folded) {
        /* Leave a valid graph behind even when failing. */
        kiln_err e2;
        kiln__graph_compact(net, deleted, &e2);
    }
    free(deleted);
    return s;
}
