/*
 * Subgraph extraction: a copy of the network cut at named tensors. The copy's
 * shapes are inferred first so each cut tensor becomes a graph input with its
 * type and shape; nodes no output needs are dropped with the compaction the
 * passes use.
 */
#include "graph_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A dim a graph input can carry: fixed, or a plain symbol. Others get a symbol of their own. */
static kiln_status input_dim(kiln_network *c, const char *name, int i, kiln_dim *d)
{
    if (kiln__dim_is_const(*d)) return KILN_OK;
    if (d->sym >= 0 && d->mul == 1 && d->add == 0 && d->div == 1) return KILN_OK;
    char sn[300];
    if (d->sym >= 0) kiln__dim_str(c, *d, sn, sizeof sn); /* e.g. "2*height": a new symbol of that name */
    else snprintf(sn, sizeof sn, "%.250s_dim%d", name, i);
    int32_t sym = kiln__net_symbol(c, sn);
    if (sym < 0) return KILN_ERR_OUT_OF_MEMORY;
    *d = kiln__dim_sym(sym);
    return KILN_OK;
}

static kiln_status fail_free(kiln_network *c, kiln_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static kiln_status fail_free(kiln_network *c, kiln_status s, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    kiln_network_free(c);
    return kiln__gapi_lfail(s, "extract: %s", msg);
}

kiln_status kiln_graph_extract(const kiln_network *net, const char *const *inputs, int n_inputs,
                               const char *const *outputs, int n_outputs, kiln_network **out)
{
    if (out) *out = NULL;
    if (!net || !out) return kiln__gapi_lfail(KILN_ERR_INVALID_ARG, "extract: NULL argument");
    if (n_inputs < 0 || n_inputs > 4096 || (n_inputs && !inputs))
        return kiln__gapi_lfail(KILN_ERR_INVALID_ARG, "extract: bad input list");
    if (n_outputs < 1 || n_outputs > 4096 || !outputs)
        return kiln__gapi_lfail(KILN_ERR_INVALID_ARG, "extract: at least one output is needed");
    kiln_err err = {{0}};
    kiln_network *c = NULL;
    kiln_status s = kiln__net_clone(net, &c, &err);
    if (s) return kiln__gapi_lfail(s, "extract: %s", err.msg);
    char infer_msg[1100] = "";
    if (kiln_network_infer_shapes(c)) snprintf(infer_msg, sizeof infer_msg, " (shape inference: %s)", c->last_error);

    int nt = c->n_tensors;
    bool *is_in = kiln__calloc((size_t)nt + 1, sizeof *is_in);
    bool *seen = kiln__calloc((size_t)nt + 1, sizeof *seen);
    bool *keep = kiln__calloc((size_t)c->n_nodes + 1, sizeof *keep);
    size_t slots = (size_t)n_outputs + 1; /* each tensor is pushed at most once per reading slot */
    for (int i = 0; i < c->n_nodes; i++) slots += (size_t)c->nodes[i].n_in;
    int *stack = kiln__calloc(slots, sizeof *stack);
    int *in_idx = kiln__calloc((size_t)n_inputs + 1, sizeof *in_idx);
    int *out_idx = kiln__calloc((size_t)n_outputs, sizeof *out_idx);
    kiln_status st = KILN_OK;
    char msg[1024] = "";
#define EXTRACT_FAIL(code, ...)                                                                                        \
    do {                                                                                                               \
        st = (code);                                                                                                   \
        snprintf(msg, sizeof msg, __VA_ARGS__);                                                                        \
        goto done;                                                                                                     \
    } while (0)
    if (!is_in || !seen || !keep || !stack || !in_idx || !out_idx) EXTRACT_FAIL(KILN_ERR_OUT_OF_MEMORY, "out of memory");

    for (int i = 0; i < n_inputs; i++) {
        const char *nm = inputs[i] ? inputs[i] : "";
        int t = kiln__net_find_tensor(c, nm);
        if (t < 0) EXTRACT_FAIL(KILN_ERR_NOT_FOUND, "input '%s' is not a tensor of the graph", nm);
        if (is_in[t]) EXTRACT_FAIL(KILN_ERR_INVALID_ARG, "input '%s' is listed twice", nm);
        kiln_tensor *tt = &c->tensors[t];
        if (tt->kind == KILN_TENSOR_CONSTANT) EXTRACT_FAIL(KILN_ERR_INVALID_ARG, "input '%s' is an initializer (a constant)", nm);
        if (tt->kind == KILN_TENSOR_ACTIVATION) {
            if (tt->producer < 0) EXTRACT_FAIL(KILN_ERR_GRAPH, "input '%s' is not produced by any node", nm);
            if (tt->v.dtype == KILN_DT_UNDEFINED || tt->v.shape.rank < 0)
                EXTRACT_FAIL(KILN_ERR_SHAPE, "the type or rank of input '%s' is not known%s", nm, infer_msg);
        }
        is_in[t] = true;
        in_idx[i] = t;
    }
    for (int i = 0; i < n_outputs; i++) {
        const char *nm = outputs[i] ? outputs[i] : "";
        int t = kiln__net_find_tensor(c, nm);
        if (t < 0) EXTRACT_FAIL(KILN_ERR_NOT_FOUND, "output '%s' is not a tensor of the graph", nm);
        for (int j = 0; j < i; j++)
            if (out_idx[j] == t) EXTRACT_FAIL(KILN_ERR_INVALID_ARG, "output '%s' is listed twice", nm);
        out_idx[i] = t;
    }
    /* walk back from each output to the inputs and constants */
    for (int i = 0; i < n_outputs; i++) {
        int sp = 0;
        if (!seen[out_idx[i]]) stack[sp++] = out_idx[i];
        while (sp > 0) {
            int t = stack[--sp];
            if (seen[t]) continue;
            seen[t] = true;
            const kiln_tensor *tt = &c->tensors[t];
            if (is_in[t] || tt->kind == KILN_TENSOR_CONSTANT) continue;
            if (tt->kind == KILN_TENSOR_INPUT)
                EXTRACT_FAIL(KILN_ERR_GRAPH, "output '%s' depends on graph input '%s', which is not among the inputs",
                             outputs[i], tt->name);
            if (tt->producer < 0)
                EXTRACT_FAIL(KILN_ERR_GRAPH, "output '%s' depends on '%s', which no node produces", outputs[i], tt->name);
            int p = tt->producer;
            if (keep[p]) continue;
            keep[p] = true;
            const kiln_node *nd = &c->nodes[p];
            for (int j = 0; j < nd->n_in; j++)
                if (nd->in[j] >= 0 && !seen[nd->in[j]]) stack[sp++] = nd->in[j];
        }
    }
    for (int i = 0; i < n_inputs; i++) {
        const kiln_tensor *tt = &c->tensors[in_idx[i]];
        if (tt->kind == KILN_TENSOR_ACTIVATION && keep[tt->producer])
            EXTRACT_FAIL(KILN_ERR_GRAPH, "input '%s' is written by node '%s', which the outputs need as well", tt->name,
                         c->nodes[tt->producer].name);
    }

    /* cut: the listed tensors become the graph inputs, with their inferred type and shape */
    for (int i = 0; i < n_inputs; i++) {
        kiln_tensor *tt = &c->tensors[in_idx[i]];
        if (tt->kind == KILN_TENSOR_ACTIVATION) {
            free(tt->v.data);
            tt->v.data = NULL;
            tt->v.nbytes = 0;
            tt->v.symval_n = 0;
            for (int d = 0; d < tt->v.shape.rank; d++)
                if (input_dim(c, tt->name, d, &c->tensors[in_idx[i]].v.shape.d[d]))
                    EXTRACT_FAIL(KILN_ERR_OUT_OF_MEMORY, "out of memory");
            tt = &c->tensors[in_idx[i]];
            tt->kind = KILN_TENSOR_INPUT;
            tt->producer = -1;
            kiln__tensor_decl_free(tt->decl);
            tt->decl = NULL;
        }
    }
    for (int i = 0; i < c->n_nodes; i++) keep[i] = !keep[i]; /* now: deleted */
    int *ni = kiln__realloc(c->inputs, sizeof(int) * (size_t)(n_inputs + 1));
    int *no = kiln__realloc(c->outputs, sizeof(int) * (size_t)n_outputs);
    if (ni) c->inputs = ni;
    if (no) c->outputs = no;
    if (!ni || !no) EXTRACT_FAIL(KILN_ERR_OUT_OF_MEMORY, "out of memory");
    memcpy(c->inputs, in_idx, sizeof(int) * (size_t)n_inputs);
    c->n_inputs = n_inputs;
    memcpy(c->outputs, out_idx, sizeof(int) * (size_t)n_outputs);
    c->n_outputs = n_outputs;
    /* graph inputs not listed are unreferenced now (the walk refused any the outputs need) */
    for (int t = 0; t < c->n_tensors; t++)
        if (c->tensors[t].kind == KILN_TENSOR_INPUT && !is_in[t]) c->tensors[t].kind = KILN_TENSOR_ACTIVATION;
    s = kiln__graph_compact(c, keep, &err);
    if (s) EXTRACT_FAIL(s, "%s", err.msg);
    if (kiln_network_infer_shapes(c)) EXTRACT_FAIL(KILN_ERR_SHAPE, "shape inference on the subgraph: %s", c->last_error);
done:
#undef EXTRACT_FAIL
    free(is_in);
    free(seen);
    free(keep);
    free(stack);
    free(in_idx);
    free(out_idx);
    if (st) return fail_free(c, st, "%s", msg);
    *out = c;
    return KILN_OK;
}
