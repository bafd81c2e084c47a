/*
 * The reference executor: runs nodes in topological order on host memory.
 * Per node it asks the op schema for exact output shapes (the same code that
 * does static inference), allocates the outputs, and calls the CPU kernel.
 * Buffers are freed after their last reader, so large models fit in memory.
 */
#include "cpu.h"
#include "../plugin/plugin.h" /* unknown-op error (issue 4) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One activation over this many bytes is refused (adversarial shapes). */
#define MAX_TENSOR_BYTES ((size_t)8 << 30)

static kiln_status alloc_outputs(const kiln_node *nd, kiln_value *out, kiln_err *err)
{
    for (int j = 0; j < nd->n_out; j++) {
        kiln_value *v = &out[j];
        int64_t numel = kiln__shape_numel(&v->shape);
        size_t es = kiln_dtype_size(v->dtype), nbytes;
        if (numel < 0)
            return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): output %d has no concrete shape", nd->name, nd->op_type, j);
        if (es == 0)
            return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): output %d has unsupported type %s", nd->name, nd->op_type, j, kiln_dtype_name(v->dtype));
        if (kiln__mul_overflow((size_t)numel, es, &nbytes) || nbytes > MAX_TENSOR_BYTES)
            return kiln__fail(err, KILN_ERR_LIMIT, "node '%s' (%s): output %d would need %lld elements, over the limit", nd->name, nd->op_type, j, (long long)numel);
        v->data = kiln__calloc(1, nbytes);
        if (!v->data) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s' (%s): out of memory for output %d (%zu bytes)", nd->name, nd->op_type, j, nbytes);
        v->nbytes = nbytes;
    }
    return KILN_OK;
}

kiln_status kiln__cpu_run_node(const kiln_node *nd, const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    for (int j = 0; j < nd->n_out; j++) out[j].shape.rank = -1;
    const kiln_cpu_kernel *k = kiln__cpu_kernel_find(nd->domain, nd->op_type);
    if (!nd->schema) return kiln__plugin_unknown_op(err, nd); /* plugins (issue 4): names the loaded plugins */
    if (!nd->schema || !k)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s': op %s%s%s is not supported by the cpu backend", nd->name,
                          nd->domain[0] ? nd->domain : "", nd->domain[0] ? "::" : "", nd->op_type);
    for (int j = 0; j < nd->n_out; j++) {
        memset(&out[j], 0, sizeof out[j]);
        out[j].shape.rank = -1;
    }
    kiln_status s = nd->schema->infer(nd, nd->params, in, out, err);
    if (s) return s;
    for (int j = 0; j < nd->n_out; j++)
        if (!kiln__shape_is_const(&out[j].shape))
            return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): output %d shape not resolved at run time", nd->name, nd->op_type, j);
    s = alloc_outputs(nd, out, err);
    if (s) return s;
    return k->run(nd, nd->params, in, out, err);
}

/* Evaluator for static inference: folds nodes whose inputs are all constant. */
static kiln_status eval_node(const kiln_node *nd, const kiln_value *const *in, kiln_value *out)
{
    const kiln_cpu_kernel *k = kiln__cpu_kernel_find(nd->domain, nd->op_type);
    kiln_err err;
    if (!k) return KILN_ERR_UNSUPPORTED;
    kiln_status s = alloc_outputs(nd, out, &err);
    if (!s) s = k->run(nd, nd->params, in, out, &err);
    return s;
}

kiln_status kiln__cpu_infer_and_fold(kiln_network *net, kiln_err *err)
{
    return kiln__net_infer_shapes_eval(net, eval_node, err);
}

static kiln_status bind_input(kiln_network *net, const kiln_tensor *decl, const kiln_host_tensor *h,
                              int64_t *sym_vals, kiln_value *v, kiln_err *err)
{
    if (h->dtype != decl->v.dtype)
        return kiln__fail(err, KILN_ERR_DTYPE, "input '%s': expected %s, got %s", decl->name,
                          kiln_dtype_name(decl->v.dtype), kiln_dtype_name(h->dtype));
    if (h->rank < 0 || h->rank > KILN_MAX_DIMS)
        return kiln__fail(err, KILN_ERR_SHAPE, "input '%s': rank %d is not supported", decl->name, h->rank);
    char want[512];
    kiln__shape_str(net, &decl->v.shape, want, sizeof want);
    if (decl->v.shape.rank >= 0 && decl->v.shape.rank != h->rank)
        return kiln__fail(err, KILN_ERR_SHAPE, "input '%s': expected shape %s (rank %d), got rank %d", decl->name, want, decl->v.shape.rank, h->rank);
    int64_t numel = 1;
    for (int i = 0; i < h->rank; i++) {
        if (h->dims[i] < 0 || __builtin_mul_overflow(numel, h->dims[i], &numel))
            return kiln__fail(err, KILN_ERR_SHAPE, "input '%s': bad dimension %d (%lld)", decl->name, i, (long long)h->dims[i]);
        if (decl->v.shape.rank < 0) continue;
        kiln_dim d = decl->v.shape.d[i];
        if (kiln__dim_is_const(d) && d.add != h->dims[i])
            return kiln__fail(err, KILN_ERR_SHAPE, "input '%s': expected shape %s, got dimension %d = %lld", decl->name, want, i, (long long)h->dims[i]);
        if (d.sym >= 0 && d.mul == 1 && d.add == 0 && d.div == 1) {
            if (sym_vals[d.sym] >= 0 && sym_vals[d.sym] != h->dims[i])
                return kiln__fail(err, KILN_ERR_SHAPE, "input '%s': dimension '%s' is %lld here but %lld in another input", decl->name,
                                  net->syms[d.sym], (long long)h->dims[i], (long long)sym_vals[d.sym]);
            sym_vals[d.sym] = h->dims[i];
        }
    }
    size_t need = (size_t)numel * kiln_dtype_size(h->dtype);
    if (h->nbytes != need || (need && !h->data))
        return kiln__fail(err, KILN_ERR_SHAPE, "input '%s': %zu bytes of data, its shape needs %zu", decl->name, h->nbytes, need);
    memset(v, 0, sizeof *v);
    v->dtype = h->dtype;
    v->shape = kiln__shape_of(h->rank, h->dims);
    v->data = h->data;
    v->nbytes = h->nbytes;
    return KILN_OK;
}

kiln_status kiln_reference_run(kiln_network *net, int n_inputs, const kiln_host_tensor *inputs,
                               int n_outputs, kiln_host_tensor *outputs)
{
    if (!net) return KILN_ERR_INVALID_ARG;
    kiln_err err = {{0}};
    kiln_status s = KILN_OK;
    int *order = NULL, *last_use = NULL;
    bool *owned = NULL;
    int64_t *sym_vals = NULL;
    kiln_value *vals = NULL;
    if (n_outputs < net->n_outputs || (net->n_outputs && !outputs)) {
        s = kiln__fail(&err, KILN_ERR_INVALID_ARG, "room for %d outputs given, the network has %d", n_outputs, net->n_outputs);
        goto done;
    }
    if (n_inputs != net->n_inputs) {
        s = kiln__fail(&err, KILN_ERR_INVALID_ARG, "%d inputs given, the network takes %d", n_inputs, net->n_inputs);
        goto done;
    }
    s = kiln__net_toposort(net, &order, &err);
    if (s) goto done;
    vals = kiln__calloc((size_t)net->n_tensors, sizeof *vals);
    owned = kiln__calloc((size_t)net->n_tensors, sizeof *owned);
    last_use = kiln__calloc((size_t)net->n_tensors, sizeof *last_use);
    sym_vals = kiln__calloc((size_t)net->n_syms + 1, sizeof *sym_vals);
    if (!vals || !owned || !last_use || !sym_vals) {
        s = kiln__fail(&err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    for (int i = 0; i < net->n_syms; i++) sym_vals[i] = -1;
    for (int t = 0; t < net->n_tensors; t++) {
        last_use[t] = -1;
        if (net->tensors[t].kind == KILN_TENSOR_CONSTANT) vals[t] = net->tensors[t].v;
    }
    for (int k = 0; k < net->n_nodes; k++) {
        const kiln_node *nd = &net->nodes[order[k]];
        for (int j = 0; j < nd->n_in; j++)
            if (nd->in[j] >= 0) last_use[nd->in[j]] = k;
    }
    for (int o = 0; o < net->n_outputs; o++) last_use[net->outputs[o]] = net->n_nodes;
    for (int i = 0; i < n_inputs; i++) {
        const kiln_host_tensor *h = &inputs[i];
        int t = -1;
        if (h->name[0]) {
            for (int g = 0; g < net->n_inputs; g++)
                if (!strcmp(net->tensors[net->inputs[g]].name, h->name)) t = net->inputs[g];
            if (t < 0) {
                char names[512] = "";
                size_t pos = 0;
                for (int g = 0; g < net->n_inputs && pos < sizeof names; g++)
                    pos += (size_t)snprintf(names + pos, sizeof names - pos, "%s'%s'", g ? ", " : "", net->tensors[net->inputs[g]].name);
                s = kiln__fail(&err, KILN_ERR_NOT_FOUND, "no graph input named '%s' (inputs: %s)", h->name, names);
                goto done;
            }
        } else {
            t = net->inputs[i];
        }
        if (vals[t].data || vals[t].dtype) {
            s = kiln__fail(&err, KILN_ERR_INVALID_ARG, "input '%s' given twice", net->tensors[t].name);
            goto done;
        }
        s = bind_input(net, &net->tensors[t], h, sym_vals, &vals[t], &err);
        if (s) goto done;
    }
    for (int k = 0; k < net->n_nodes && !s; k++) {
        const kiln_node *nd = &net->nodes[order[k]];
        const kiln_value *in[256];
        kiln_value out[256];
        if (nd->n_in > 256 || nd->n_out > 256) {
            s = kiln__fail(&err, KILN_ERR_LIMIT, "node '%s' has too many inputs/outputs", nd->name);
            break;
        }
        for (int j = 0; j < nd->n_in; j++) in[j] = nd->in[j] >= 0 ? &vals[nd->in[j]] : NULL;
        /* out[] is reused across nodes: clear it so a node failing early frees nothing stale */
        memset(out, 0, sizeof(kiln_value) * (size_t)nd->n_out);
        s = kiln__cpu_run_node(nd, in, out, &err);
        for (int j = 0; j < nd->n_out; j++) {
            int t = nd->out[j];
            if (t < 0 || s) {
                free(out[j].data);
                continue;
            }
            vals[t] = out[j];
            owned[t] = true;
        }
        if (s) break;
        /* free what nobody reads any more */
        for (int j = 0; j < nd->n_in; j++) {
            int t = nd->in[j];
            if (t >= 0 && owned[t] && last_use[t] == k) {
                free(vals[t].data);
                vals[t].data = NULL;
                owned[t] = false;
            }
        }
        for (int j = 0; j < nd->n_out; j++) {
            int t = nd->out[j];
            if (t >= 0 && owned[t] && last_use[t] < k) {
                free(vals[t].data);
                vals[t].data = NULL;
                owned[t] = false;
            }
        }
    }
    if (!s) {
        for (int o = 0; o < net->n_outputs; o++) {
            int t = net->outputs[o];
            kiln_host_tensor *h = &outputs[o];
            memset(h, 0, sizeof *h);
            snprintf(h->name, sizeof h->name, "%s", net->tensors[t].name);
            h->dtype = vals[t].dtype;
            h->rank = vals[t].shape.rank;
            for (int i = 0; i < h->rank; i++) h->dims[i] = vals[t].shape.d[i].add;
            h->nbytes = vals[t].nbytes;
            if (owned[t]) {
                /* the same tensor may be listed twice as output: copy on the second */
                bool later = false;
                for (int o2 = o + 1; o2 < net->n_outputs; o2++) later |= net->outputs[o2] == t;
                if (!later) {
                    h->data = vals[t].data;
                    owned[t] = false;
                    vals[t].data = NULL;
                    continue;
                }
            }
            h->data = kiln__malloc(h->nbytes);
            if (!h->data) {
                s = kiln__fail(&err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
                for (int p = 0; p <= o; p++) kiln_host_tensor_release(&outputs[p]);
                break;
            }
            if (h->nbytes) memcpy(h->data, vals[t].data, h->nbytes);
        }
    }
done:
    if (vals)
        for (int t = 0; t < net->n_tensors; t++)
            if (owned[t]) free(vals[t].data);
    free(vals);
    free(owned);
    free(last_use);
    free(sym_vals);
    free(order);
    if (s) {
        snprintf(net->last_error, sizeof net->last_error, "%s", err.msg[0] ? err.msg : kiln_status_str(s));
        kiln__set_last_error(net->last_error);
    }
    return s;
}

int kiln_network_unsupported_report(const kiln_network *net, char *buf, size_t len)
{
    if (!net) return 0;
    if (buf && len) buf[0] = 0;
    size_t pos = 0;
    int total = 0;
    bool *seen = kiln__calloc((size_t)net->n_nodes, sizeof(bool));
    if (!seen) return -1;
    for (int i = 0; i < net->n_nodes; i++) {
        const kiln_node *a = &net->nodes[i];
        if (seen[i] || (a->schema && kiln__cpu_kernel_find(a->domain, a->op_type))) continue;
        int count = 0;
        char names[400] = "";
        size_t np = 0;
        for (int j = i; j < net->n_nodes; j++) {
            const kiln_node *b = &net->nodes[j];
            if (strcmp(a->op_type, b->op_type) || strcmp(a->domain, b->domain)) continue;
            seen[j] = true;
            if (count < 8 && np < sizeof names) np += (size_t)snprintf(names + np, sizeof names - np, "%s%s", count ? ", " : "", b->name);
            count++;
        }
        total += count;
        if (buf && pos < len)
            pos += (size_t)snprintf(buf + pos, len - pos, "%s%s%s: %d node(s): %s%s\n", a->domain[0] ? a->domain : "",
                                    a->domain[0] ? "::" : "", a->op_type, count, names, count > 8 ? ", ..." : "");
    }
    free(seen);
    return total;
}

kiln_status kiln_network_infer_shapes(kiln_network *net)
{
    if (!net) return KILN_ERR_INVALID_ARG;
    kiln_err err = {{0}};
    kiln_status s = kiln__cpu_infer_and_fold(net, &err);
    if (s) {
        snprintf(net->last_error, sizeof net->last_error, "%s", err.msg);
        kiln__set_last_error(net->last_error);
    }
    return s;
}
