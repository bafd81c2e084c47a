/*
 * Graph editing for the passes: consumer lists, new tensors and
 * constants, attribute changes, and the compaction that ends every edit
 * (removed nodes freed, orphan tensors dropped, nodes in topological order,
 * producers and the name hash rebuilt).
 */
#include "passes.h"
#include "../plugin/plugin.h" /* plugin nodes (issue 4) */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Power-of-two open-addressing table at most half full, as network.c keeps it. */
static kiln_status rebuild_hash(kiln_network *net, kiln_err *err)
{
    int cap = 256;
    while (cap < (net->n_tensors + 1) * 2) cap *= 2;
    int *h = malloc(sizeof(int) * (size_t)cap);
    if (!h) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; i < cap; i++) h[i] = -1;
    for (int t = 0; t < net->n_tensors; t++) {
        uint64_t k = kiln__hash_str(net->tensors[t].name) & (uint64_t)(cap - 1);
        while (h[k] >= 0) k = (k + 1) & (uint64_t)(cap - 1);
        h[k] = t;
    }
    free(net->hash);
    net->hash = h;
    net->hash_cap = cap;
    return KILN_OK;
}

kiln_status kiln__graph_uses_build(const kiln_network *net, const bool *deleted, kiln_graph_uses *u, kiln_err *err)
{
    memset(u, 0, sizeof *u);
    u->start = kiln__calloc((size_t)net->n_tensors + 2, sizeof(int));
    if (!u->start) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; i < net->n_nodes; i++) {
        if (deleted && deleted[i]) continue;
        for (int j = 0; j < net->nodes[i].n_in; j++)
            if (net->nodes[i].in[j] >= 0) u->start[net->nodes[i].in[j] + 1]++;
    }
    for (int t = 0; t < net->n_tensors; t++) u->start[t + 1] += u->start[t];
    int total = u->start[net->n_tensors];
    int *fill = kiln__calloc((size_t)net->n_tensors + 1, sizeof(int));
    u->node = kiln__calloc((size_t)total + 1, sizeof(int));
    u->slot = kiln__calloc((size_t)total + 1, sizeof(int));
    if (!fill || !u->node || !u->slot) {
        free(fill);
        kiln__graph_uses_free(u);
        return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; i < net->n_nodes; i++) {
        if (deleted && deleted[i]) continue;
        for (int j = 0; j < net->nodes[i].n_in; j++) {
            int t = net->nodes[i].in[j];
            if (t < 0) continue;
            int k = u->start[t] + fill[t]++;
            u->node[k] = i;
            u->slot[k] = j;
        }
    }
    free(fill);
    return KILN_OK;
}

void kiln__graph_uses_free(kiln_graph_uses *u)
{
    free(u->start);
    free(u->node);
    free(u->slot);
    memset(u, 0, sizeof *u);
}

void kiln__pass_note(kiln_pass_stats *stats, const char *fmt, ...)
{
    size_t len = strlen(stats->summary);
    if (len + 3 >= sizeof stats->summary) return;
    if (len) {
        memcpy(stats->summary + len, "; ", 3);
        len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(stats->summary + len, sizeof stats->summary - len, fmt, ap);
    va_end(ap);
}

bool kiln__pass_pinned(const kiln_pass_options *opts, const char *name)
{
    if (!opts || !name) return false;
    for (int i = 0; i < opts->n_pinned; i++)
        if (opts->pinned[i] && !strcmp(opts->pinned[i], name)) return true;
    return false;
}

const kiln_value *kiln__graph_const(const kiln_network *net, int t)
{
    if (t < 0 || t >= net->n_tensors) return NULL;
    const kiln_tensor *tt = &net->tensors[t];
    if (tt->kind != KILN_TENSOR_CONSTANT || (!tt->v.data && tt->v.nbytes)) return NULL;
    if (!kiln__shape_is_const(&tt->v.shape)) return NULL;
    return &tt->v;
}

int kiln__graph_new_tensor(kiln_network *net, const char *base)
{
    char name[512];
    snprintf(name, sizeof name, "%s", base);
    for (int k = 1; kiln__net_find_tensor(net, name) >= 0; k++) {
        if (k > 1000000) return -1;
        snprintf(name, sizeof name, "%.480s_%d", base, k);
    }
    return kiln__net_tensor(net, name);
}

int kiln__graph_add_constant(kiln_network *net, const char *base, kiln_dtype dt, const kiln_shape *shape,
                             void *data, size_t nbytes, kiln_err *err)
{
    int t = kiln__graph_new_tensor(net, base);
    if (t < 0) {
        free(data);
        kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory adding constant '%s'", base);
        return -1;
    }
    kiln_tensor *tt = &net->tensors[t];
    tt->kind = KILN_TENSOR_CONSTANT;
    tt->producer = -1;
    memset(&tt->v, 0, sizeof tt->v);
    tt->v.dtype = dt;
    tt->v.shape = *shape;
    tt->v.data = data;
    tt->v.nbytes = nbytes;
    return t;
}

void kiln__graph_replace_uses(kiln_network *net, const bool *deleted, int from, int to)
{
    for (int i = 0; i < net->n_nodes; i++) {
        if (deleted && deleted[i]) continue;
        kiln_node *n = &net->nodes[i];
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j] == from) n->in[j] = to;
    }
}

kiln_status kiln__node_set_n_inputs(kiln_node *n, int n_in, kiln_err *err)
{
    if (n_in == n->n_in) return KILN_OK;
    int *in = kiln__realloc(n->in, sizeof(int) * (size_t)(n_in > 0 ? n_in : 1));
    if (!in) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    for (int j = n->n_in; j < n_in; j++) in[j] = -1;
    n->in = in;
    n->n_in = n_in;
    return KILN_OK;
}

/* The node's attribute `name`, emptied for a new value, or a new one. */
static kiln_attr *attr_slot(kiln_node *n, const char *name, kiln_err *err)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (!strcmp(n->attrs[i].name, name)) {
            char *keep = n->attrs[i].name;
            n->attrs[i].name = NULL;
            kiln__attr_free(&n->attrs[i]);
            n->attrs[i].name = keep;
            return &n->attrs[i];
        }
    char *nm = kiln__strdup(name);
    kiln_attr *a = nm ? kiln__realloc(n->attrs, sizeof *a * (size_t)(n->n_attrs + 1)) : NULL;
    if (!a) {
        free(nm);
        kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        return NULL;
    }
    n->attrs = a;
    a = &n->attrs[n->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = nm;
    return a;
}

kiln_status kiln__node_set_attr_float(kiln_node *n, const char *name, float v, kiln_err *err)
{
    kiln_attr *a = attr_slot(n, name, err);
    if (!a) return KILN_ERR_OUT_OF_MEMORY;
    a->type = KILN_ATTR_FLOAT;
    a->f = v;
    return KILN_OK;
}

kiln_status kiln__node_set_attr_string(kiln_node *n, const char *name, const char *v, kiln_err *err)
{
    char *s = kiln__strdup(v);
    if (!s) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    kiln_attr *a = attr_slot(n, name, err);
    if (!a) {
        free(s);
        return KILN_ERR_OUT_OF_MEMORY;
    }
    a->type = KILN_ATTR_STRING;
    a->s = s;
    a->s_len = strlen(s);
    return KILN_OK;
}

void kiln__node_remove_attr(kiln_node *n, const char *name)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (!strcmp(n->attrs[i].name, name)) {
            kiln__attr_free(&n->attrs[i]);
            memmove(&n->attrs[i], &n->attrs[i + 1], sizeof *n->attrs * (size_t)(n->n_attrs - i - 1));
            n->n_attrs--;
            return;
        }
}

kiln_status kiln__node_set_op(kiln_node *n, const char *domain, const char *op_type, kiln_err *err)
{
    const kiln_op_schema *sc = kiln__op_schema_find(domain, op_type);
    if (!sc) return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s': op %s::%s has no schema", n->name, domain, op_type);
    char *d = kiln__strdup(domain), *o = kiln__strdup(op_type);
    void *params = kiln__calloc(1, sc->params_size);
    if (!d || !o || !params) {
        free(d);
        free(o);
        free(params);
        return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    free(n->domain);
    free(n->op_type);
    kiln__plugin_params_release(n); /* plugins (issue 4) */
    free(n->params);
    n->domain = d;
    n->op_type = o;
    n->params = params;
    n->schema = sc;
    if (n->n_in < sc->min_inputs || (sc->max_inputs >= 0 && n->n_in > sc->max_inputs))
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): %d inputs, expected %d to %d", n->name, op_type,
                          n->n_in, sc->min_inputs, sc->max_inputs);
    return sc->parse_attrs ? sc->parse_attrs(n, n->params, err) : KILN_OK;
}

kiln_status kiln__node_add_fused_name(kiln_node *n, const char *fused, kiln_err *err)
{
    const char *old = kiln__attr_string(n, "fused_nodes", NULL);
    const char *first = old ? old : n->name;
    size_t len = strlen(first) + strlen(fused) + 2;
    char *s = kiln__malloc(len);
    if (!s) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    snprintf(s, len, "%s,%s", first, fused);
    kiln_status st = kiln__node_set_attr_string(n, "fused_nodes", s, err);
    free(s);
    return st;
}

/* Producers from the node list; a tensor with two producers or a produced input/constant is an error. */
static kiln_status set_producers(kiln_network *net, kiln_err *err)
{
    for (int t = 0; t < net->n_tensors; t++) net->tensors[t].producer = -1;
    for (int i = 0; i < net->n_nodes; i++) {
        const kiln_node *n = &net->nodes[i];
        for (int j = 0; j < n->n_out; j++) {
            int t = n->out[j];
            if (t < 0) continue;
            kiln_tensor *tt = &net->tensors[t];
            if (tt->producer >= 0 || tt->kind != KILN_TENSOR_ACTIVATION)
                return kiln__fail(err, KILN_ERR_INTERNAL, "graph edit: tensor '%s' is defined twice (node '%s')", tt->name,
                                  n->name);
            tt->producer = i;
        }
    }
    return KILN_OK;
}

kiln_status kiln__graph_compact(kiln_network *net, const bool *deleted, kiln_err *err)
{
    /* 1. drop deleted nodes, keeping the order of the rest */
    int w = 0;
    for (int i = 0; i < net->n_nodes; i++) {
        if (deleted && deleted[i]) {
            kiln__node_free(&net->nodes[i]);
            continue;
        }
        if (w != i) net->nodes[w] = net->nodes[i];
        w++;
    }
    net->n_nodes = w;
    kiln_status s = set_producers(net, err);
    if (s) return s;

    /* 2. topological order */
    int *order = NULL;
    s = kiln__net_toposort(net, &order, err);
    if (s) return s;
    kiln_node *sorted = kiln__calloc((size_t)net->cap_nodes + 1, sizeof *sorted);
    if (!sorted) {
        free(order);
        return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int k = 0; k < net->n_nodes; k++) sorted[k] = net->nodes[order[k]];
    free(order);
    free(net->nodes);
    net->nodes = sorted;
    net->cap_nodes = net->cap_nodes + 1;

    /* 3. tensors nothing references */
    int nt = net->n_tensors;
    int *map = kiln__calloc((size_t)nt + 1, sizeof(int));
    if (!map) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; i < net->n_inputs; i++) map[net->inputs[i]] = 1;
    for (int i = 0; i < net->n_outputs; i++) map[net->outputs[i]] = 1;
    for (int i = 0; i < net->n_nodes; i++) {
        const kiln_node *n = &net->nodes[i];
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j] >= 0) map[n->in[j]] = 1;
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j] >= 0) map[n->out[j]] = 1;
    }
    w = 0;
    for (int t = 0; t < nt; t++) {
        if (!map[t]) {
            free(net->tensors[t].name);
            free(net->tensors[t].v.data);
            kiln__tensor_decl_free(net->tensors[t].decl); /* surgeon (issue 5) */
            free(net->tensors[t].doc_string);
            map[t] = -1;
            continue;
        }
        if (w != t) net->tensors[w] = net->tensors[t];
        map[t] = w++;
    }
    net->n_tensors = w;
    for (int i = 0; i < net->n_nodes; i++) {
        kiln_node *n = &net->nodes[i];
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j] >= 0) n->in[j] = map[n->in[j]];
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j] >= 0) n->out[j] = map[n->out[j]];
    }
    for (int i = 0; i < net->n_inputs; i++) net->inputs[i] = map[net->inputs[i]];
    for (int i = 0; i < net->n_outputs; i++) net->outputs[i] = map[net->outputs[i]];
    free(map);
    for (int t = 0; t < net->n_tensors; t++) net->tensors[t].is_output = false;
    for (int i = 0; i < net->n_outputs; i++) net->tensors[net->outputs[i]].is_output = true;
    s = set_producers(net, err);
    if (s) return s;
    return rebuild_hash(net, err);
}

