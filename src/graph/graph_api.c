/*
 * Graph API, edit side. Every edit checks what it can before touching the
 * graph; what only the whole graph can tell (a cycle, a dangling input) is
 * checked with the topological sort after the change, and the change is
 * undone when the check fails. Edits keep the node order except where nodes
 * are removed or sorted.
 */
#include "graph_internal.h"
#include "../plugin/plugin.h" /* plugin nodes own an instance in their params */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IO 4096

/* --- small helpers ------------------------------------------------------------ */

static kiln_node *edit_node(kiln_network *net, int node)
{
    if (!net) return NULL;
    if (node < 0 || node >= net->n_nodes) {
        kiln__gapi_fail(net, KILN_ERR_INVALID_ARG, "graph edit: node index %d is out of range (0..%d)", node,
                        net->n_nodes - 1);
        return NULL;
    }
    return &net->nodes[node];
}

static const char *norm_domain(const char *domain)
{
    return (!domain || !strcmp(domain, "ai.onnx")) ? "" : domain;
}

/* Producers from the node list (validity is checked separately, by the edit or the sort). */
static void reset_producers(kiln_network *net)
{
    for (int t = 0; t < net->n_tensors; t++) net->tensors[t].producer = -1;
    for (int i = 0; i < net->n_nodes; i++)
        for (int j = 0; j < net->nodes[i].n_out; j++) {
            int t = net->nodes[i].out[j];
            if (t >= 0 && net->tensors[t].kind == KILN_TENSOR_ACTIVATION && net->tensors[t].producer < 0)
                net->tensors[t].producer = i;
        }
}

/* Rebuilds the name hash in the table it has: only called when the tensor count did not grow. */
static void rehash_in_place(kiln_network *net)
{
    if (!net->hash_cap) return;
    int cap = net->hash_cap;
    for (int i = 0; i < cap; i++) net->hash[i] = -1;
    for (int t = 0; t < net->n_tensors; t++) {
        uint64_t k = kiln__hash_str(net->tensors[t].name) & (uint64_t)(cap - 1);
        while (net->hash[k] >= 0) k = (k + 1) & (uint64_t)(cap - 1);
        net->hash[k] = t;
    }
}

static void tensor_free(kiln_tensor *t)
{
    free(t->name);
    free(t->v.data);
    kiln__tensor_decl_free(t->decl);
    free(t->doc_string);
    memset(t, 0, sizeof *t);
}

/* Undoes tensor creation: drops every tensor from index n on (they are new and unreferenced). */
static void truncate_tensors(kiln_network *net, int n)
{
    if (net->n_tensors <= n) return;
    for (int t = n; t < net->n_tensors; t++) tensor_free(&net->tensors[t]);
    net->n_tensors = n;
    rehash_in_place(net);
}

/* Drops the tensors in cand[] that nothing references any more (no node, not a graph input/output). */
static void drop_orphans(kiln_network *net, const bool *cand)
{
    int nt = net->n_tensors;
    bool *used = kiln__calloc((size_t)nt + 1, sizeof *used);
    int *map = kiln__calloc((size_t)nt + 1, sizeof *map);
    if (!used || !map) { /* leaving an orphan is harmless; OOM here is not worth failing an edit for */
        free(used);
        free(map);
        return;
    }
    for (int i = 0; i < net->n_inputs; i++) used[net->inputs[i]] = true;
    for (int i = 0; i < net->n_outputs; i++) used[net->outputs[i]] = true;
    for (int i = 0; i < net->n_nodes; i++) {
        const kiln_node *n = &net->nodes[i];
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j] >= 0) used[n->in[j]] = true;
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j] >= 0) used[n->out[j]] = true;
    }
    int w = 0;
    bool any = false;
    for (int t = 0; t < nt; t++) {
        if (cand[t] && !used[t]) {
            tensor_free(&net->tensors[t]);
            map[t] = -1;
            any = true;
            continue;
        }
        if (w != t) net->tensors[w] = net->tensors[t];
        map[t] = w++;
    }
    if (any) {
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
        rehash_in_place(net);
        reset_producers(net);
    }
    free(used);
    free(map);
}

/* Sorts the graph to find cycles and dangling inputs; the message goes to err. */
static kiln_status check_graph(const kiln_network *net, kiln_err *err)
{
    int *order = NULL;
    kiln_status s = kiln__net_toposort(net, &order, err);
    free(order);
    return s;
}

/* A declared ONNX type (value_info) no longer holds once a node computes something else. */
static void forget_decls(kiln_network *net, const kiln_node *n)
{
    for (int j = 0; j < n->n_out; j++) {
        int t = n->out[j];
        if (t < 0 || net->tensors[t].is_output) continue;
        kiln__tensor_decl_free(net->tensors[t].decl);
        net->tensors[t].decl = NULL;
    }
}

/* A built-in op, else a loaded plugin matching the node (by op type and attributes), else NULL. */
static const kiln_op_schema *resolve_schema(const kiln_node *n)
{
    const kiln_op_schema *sc = kiln__op_schema_find(n->domain, n->op_type);
    return sc ? sc : kiln__plugin_schema_for_node(n);
}

/* Frees params parsed for schema sc (a plugin instance included). */
static void params_discard(const kiln_op_schema *sc, void *params)
{
    if (!params) return;
    kiln_node tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.schema = sc;
    tmp.params = params;
    kiln__plugin_params_release(&tmp);
    free(params);
}

/* Puts a node's new schema and params in place, releasing the old ones. */
static void params_swap(kiln_node *n, const kiln_op_schema *sc, void *params)
{
    params_discard(n->schema, n->params);
    n->schema = sc;
    n->params = params;
}

/*
 * Checks a candidate node against a schema (counts, required inputs, attributes)
 * and gives the new params (caller frees). sc NULL (unknown op): nothing to check.
 */
static kiln_status check_schema(kiln_network *net, const kiln_node *cand, const kiln_op_schema *sc, void **params)
{
    *params = NULL;
    if (!sc) return KILN_OK;
    if (cand->n_in < sc->min_inputs || (sc->max_inputs >= 0 && cand->n_in > sc->max_inputs))
        return kiln__gapi_fail(net, KILN_ERR_GRAPH, "node '%s' (%s): %d inputs, expected %d to %d", cand->name,
                               cand->op_type, cand->n_in, sc->min_inputs, sc->max_inputs);
    if (cand->n_out < sc->min_outputs || (sc->max_outputs >= 0 && cand->n_out > sc->max_outputs))
        return kiln__gapi_fail(net, KILN_ERR_GRAPH, "node '%s' (%s): %d outputs, expected %d to %d", cand->name,
                               cand->op_type, cand->n_out, sc->min_outputs, sc->max_outputs);
    for (int i = 0; i < sc->min_inputs && i < cand->n_in; i++)
        if (cand->in[i] < 0)
            return kiln__gapi_fail(net, KILN_ERR_GRAPH, "node '%s' (%s): input %d is required but empty", cand->name,
                                   cand->op_type, i);
    void *p = kiln__calloc(1, sc->params_size);
    if (!p) return kiln__gapi_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    if (sc->parse_attrs) {
        kiln_err err = {{0}};
        kiln_status s = sc->parse_attrs(cand, p, &err);
        if (s) {
            params_discard(sc, p);
            return kiln__gapi_fail(net, s, "%s", err.msg[0] ? err.msg : "invalid attributes");
        }
    }
    *params = p;
    return KILN_OK;
}

/* --- op and attributes ---------------------------------------------------------- */

kiln_status kiln_graph_replace_op(kiln_network *net, int node, const char *op_type, const char *domain)
{
    kiln_node *n = edit_node(net, node);
    if (!n) return net ? KILN_ERR_INVALID_ARG : KILN_ERR_INVALID_ARG;
    if (!op_type || !*op_type) return kiln__gapi_fail(net, KILN_ERR_INVALID_ARG, "replace_op: node '%s': empty op type", n->name);
    domain = norm_domain(domain);
    char *o = kiln__strdup(op_type), *d = kiln__strdup(domain);
    if (!o || !d) {
        free(o);
        free(d);
        return kiln__gapi_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    kiln_node cand = *n;
    cand.op_type = o;
    cand.domain = d;
    const kiln_op_schema *sc = resolve_schema(&cand);
    cand.schema = sc;
    void *params = NULL;
    kiln_status s = check_schema(net, &cand, sc, &params);
    if (s) {
        free(o);
        free(d);
        return s;
    }
    forget_decls(net, n);
    free(n->op_type);
    free(n->domain);
    n->op_type = o;
    n->domain = d;
    params_swap(n, sc, params);
    return KILN_OK;
}

/*
 * Commits an attribute list change: `add` (owned; freed on failure) replaces or
 * joins the attribute of its name, or `remove` names one to drop. The new list
 * is checked against the schema before anything changes.
 */
static kiln_status attrs_commit(kiln_network *net, int node, kiln_attr *add, const char *remove)
{
    kiln_node *n = edit_node(net, node);
    const char *name = add ? add->name : remove;
    kiln_status s = KILN_OK;
    if (!n) {
        s = KILN_ERR_INVALID_ARG;
        goto fail;
    }
    if (!name || !*name) {
        s = kiln__gapi_fail(net, KILN_ERR_INVALID_ARG, "node '%s': attribute without a name", n->name);
        goto fail;
    }
    int idx = -1;
    for (int i = 0; i < n->n_attrs; i++)
        if (!strcmp(n->attrs[i].name, name)) idx = i;
    if (remove && idx < 0) {
        s = kiln__gapi_fail(net, KILN_ERR_NOT_FOUND, "node '%s' (%s) has no attribute '%s'", n->name, n->op_type, name);
        goto fail;
    }
    int nn = n->n_attrs + (add && idx < 0 ? 1 : 0) - (remove ? 1 : 0);
    kiln_attr *arr = kiln__calloc((size_t)nn + 1, sizeof *arr);
    if (!arr) {
        s = kiln__gapi_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        goto fail;
    }
    int w = 0;
    for (int i = 0; i < n->n_attrs; i++) {
        if (i == idx) {
            if (add) arr[w++] = *add;
            continue;
        }
        arr[w++] = n->attrs[i]; /* shallow: the strings stay owned by the node until commit */
    }
    if (add && idx < 0) arr[w++] = *add;
    kiln_node cand = *n;
    cand.attrs = arr;
    cand.n_attrs = nn;
    const kiln_op_schema *sc = resolve_schema(&cand); /* a plugin is matched by its attributes too */
    cand.schema = sc;
    void *params = NULL;
    s = check_schema(net, &cand, sc, &params);
    if (s) {
        free(arr);
        goto fail;
    }
    if (idx >= 0) kiln__attr_free(&n->attrs[idx]);
    free(n->attrs);
    n->attrs = arr;
    n->n_attrs = nn;
    params_swap(n, sc, params);
    forget_decls(net, n);
    return KILN_OK;
fail:
    if (add) kiln__attr_free(add);
    return s;
}

static kiln_status attr_new(kiln_network *net, kiln_attr *a, const char *name, kiln_attr_type type)
{
    memset(a, 0, sizeof *a);
    if (!net) return KILN_ERR_INVALID_ARG;
    a->name = kiln__strdup(name ? name : "");
    a->type = type;
    return a->name ? KILN_OK : kiln__gapi_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
}

/* An INT (value i) or FLOAT (value f) attribute. */
static kiln_status set_attr_scalar(kiln_network *net, int node, const char *name, kiln_attr_type type, int64_t i,
                                   float f)
{
    kiln_attr a;
    kiln_status s = attr_new(net, &a, name, type);
    if (s) return s;
    a.i = i;
    a.f = f;
    return attrs_commit(net, node, &a, NULL);
}

kiln_status kiln_graph_set_attr_int(kiln_network *net, int node, const char *name, int64_t v)
{
    return set_attr_scalar(net, node, name, KILN_ATTR_INT, v, 0.0f);
}

kiln_status kiln_graph_set_attr_float(kiln_network *net, int node, const char *name, float v)
{
    return set_attr_scalar(net, node, name, KILN_ATTR_FLOAT, 0, v);
}

kiln_status kiln_graph_set_attr_string(kiln_network *net, int node, const char *name, const char *v)
{
    kiln_attr a;
    kiln_status s = attr_new(net, &a, name, KILN_ATTR_STRING);
    if (s) return s;
    a.s = kiln__strdup(v ? v : "");
    if (!a.s) {
        kiln__attr_free(&a);
        return kiln__gapi_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    a.s_len = strlen(a.s);
    return attrs_commit(net, node, &a, NULL);
}

/* An INTS or FLOATS attribute: n elements of elem_size bytes copied from v; what names the call. */
static kiln_status set_attr_list(kiln_network *net, int node, const char *name, kiln_attr_type type, const void *v,
                                 int64_t n, size_t elem_size, const char *what)
{
    if (net && (n < 0 || n > (1 << 24) || (n && !v)))
        return kiln__gapi_fail(net, KILN_ERR_INVALID_ARG, "%s '%s': bad count %lld", what, name ? name : "",
                               (long long)n);
    kiln_attr a;
    kiln_status s = attr_new(net, &a, name, type);
    if (s) return s;
    void *list = kiln__calloc((size_t)n + 1, elem_size);
    if (!list) {
        kiln__attr_free(&a);
        return kiln__gapi_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    if (n) memcpy(list, v, elem_size * (size_t)n);
    if (type == KILN_ATTR_INTS) a.ints = list;
    else a.floats = list;
    a.n = n;
    return attrs_commit(net, node, &a, NULL);
}

kiln_status kiln_graph_set_attr_ints(kiln_network *net, int node, const char *name, const int64_t *v, int64_t n)
{
    return set_attr_list(net, node, name, KILN_ATTR_INTS, v, n, sizeof *v, "set_attr_ints");
}

kiln_status kiln_graph_set_attr_floats(kiln_network *net, int node, const char *name, const float *v, int64_t n)
{
    return set_attr_list(net, node, name, KILN_ATTR_FLOATS, v, n, sizeof *v, "set_attr_floats");
}

kiln_status kiln_graph_remove_attr(kiln_network *net, int node, const char *name)
{
    if (!net) return KILN_ERR_INVALID_ARG;
    return attrs_commit(net, node, NULL, name ? name : "");
}

kiln_status kiln_graph_rename_node(kiln_network *net, int node, const char *new_name)
{
    kiln_node *n = edit_node(net, node);
    if (!n) return KILN_ERR_INVALID_ARG;
    if (!new_name || !*new_name) return kiln__gapi_fail(net, KILN_ERR_INVALID_ARG, "rename_node '%s': empty new name", n->name);
    int other = kiln_graph_find_node(net, new_name);
    if (other >= 0 && other != node)
        return kiln__gapi_fail(net, KILN_ERR_GRAPH, "rename_node '%s': a node named '%s' exists already", n->name, new_name);
    char *s = kiln__strdup(new_name);
    if (!s) return kiln__gapi_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    free(n->name);
    n->name = s;
    return KILN_OK;
}

/* --- removing and replacing nodes ---------------------------------------------- */

static bool is_graph_output(const kiln_network *net, int t)
{
    for (int i = 0; i < net->n_outputs; i++)
        if (net->outputs[i] == t) return true;
    return false;
}

static bool is_graph_input(const kiln_network *net, int t)
{
    for (int i = 0; i < net->n_inputs; i++)
        if (net->inputs[i] == t) return true;
    return false;
}

static int readers(const kiln_network *net, int t, int except_node)
{
    int c = 0;
    for (int i = 0; i < net->n_nodes; i++) {
        if (i == except_node) continue;
        for (int j = 0; j < net->nodes[i].n_in; j++)
            if (net->nodes[i].in[j] == t) c++;
    }
    return c;
}

/* Removes node k from the list (freed), renumbering the later ones. */
static void delete_node(kiln_network *net, int k)
{
    kiln__node_free(&net->nodes[k]);
    memmove(&net->nodes[k], &net->nodes[k + 1], sizeof *net->nodes * (size_t)(net->n_nodes - k - 1));
    net->n_nodes--;
    reset_producers(net);
}

kiln_status kiln_graph_remove_node(kiln_network *net, int node)
{
    kiln_node *n = edit_node(net, node);
    if (!n) return KILN_ERR_INVALID_ARG;
    /* X: the one data input (constants such as Dropout's ratio do not count) */
    int x = -1, n_data = 0, n_any = 0, any = -1;
    for (int j = 0; j < n->n_in; j++) {
        int t = n->in[j];
        if (t < 0) continue;
        n_any++;
        any = t;
        if (kiln__gapi_constlike(net, t)) continue;
        n_data++; /* per slot: Add(a, a) is not a one-input node */
        x = t;
    }
    if (n_data == 0 && n_any == 1) x = any, n_data = 1; /* e.g. a Cast of a constant */
    if (n_data != 1)
        return kiln__gapi_fail(net, KILN_ERR_GRAPH,
                               "remove_node: node '%s' (%s) has %d data inputs; only a node with exactly one can be bypassed",
                               n->name, n->op_type, n_data);
    /* Y: the one output something reads */
    int y = -1, n_used = 0;
    for (int j = 0; j < n->n_out; j++) {
        int t = n->out[j];
        if (t < 0 || (readers(net, t, node) == 0 && !is_graph_output(net, t))) continue;
        if (y != t) n_used++;
        y = t;
    }
    if (n_used > 1)
        return kiln__gapi_fail(net, KILN_ERR_GRAPH,
                               "remove_node: node '%s' (%s) has %d used outputs; only a node with one can be bypassed",
                               n->name, n->op_type, n_used);
    bool keep_name = false;
    if (y >= 0 && is_graph_output(net, y)) {
        const kiln_tensor *xt = &net->tensors[x];
        keep_name = xt->kind == KILN_TENSOR_ACTIVATION && xt->producer >= 0 && xt->producer != node &&
                    !is_graph_output(net, x);
        if (!keep_name && is_graph_output(net, x))
            return kiln__gapi_fail(net, KILN_ERR_GRAPH,
                                   "remove_node: node '%s' (%s): its input '%s' and output '%s' are both graph outputs",
                                   n->name, n->op_type, net->tensors[x].name, net->tensors[y].name);
    }
    bool *cand = kiln__calloc((size_t)net->n_tensors + 1, sizeof *cand);
    if (!cand) return kiln__gapi_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    for (int j = 0; j < n->n_out; j++)
        if (n->out[j] >= 0) cand[n->out[j]] = true;
    /* from here nothing fails */
    if (y >= 0) {
        if (keep_name) {
            /* X's producer writes Y instead; X's other readers read Y */
            kiln_node *p = &net->nodes[net->tensors[x].producer];
            for (int j = 0; j < p->n_out; j++)
                if (p->out[j] == x) p->out[j] = y;
            kiln__graph_replace_uses(net, NULL, x, y);
            kiln_tensor *yt = &net->tensors[y];
            yt->v.dtype = net->tensors[x].v.dtype;
            yt->v.shape = net->tensors[x].v.shape;
            kiln__tensor_decl_free(yt->decl);
            yt->decl = NULL;
            cand[x] = true;
            cand[y] = false;
        } else {
            kiln__graph_replace_uses(net, NULL, y, x);
            for (int i = 0; i < net->n_outputs; i++)
                if (net->outputs[i] == y) net->outputs[i] = x;
            if (is_graph_output(net, x)) {
                net->tensors[y].is_output = false;
                net->tensors[x].is_output = true;
            }
        }
    }
    delete_node(net, node);
    drop_orphans(net, cand);
    free(cand);
    return KILN_OK;
}

/* Whether tensor t may become an output of node k: new, written by k today, or defined by nobody. */
static bool output_free(const kiln_network *net, int t, int k)
{
    const kiln_tensor *tt = &net->tensors[t];
    if (tt->kind != KILN_TENSOR_ACTIVATION) return false;
    return tt->producer < 0 || tt->producer == k;
}

/*
 * Builds a node as kiln_network_add_node would (attributes copied, schema
 * checked) in a scratch network, then moves it over with tensor indices of
 * `net`. Input names must exist in net and be defined; output names new,
 * written by node `self` today, or undefined. New output tensors are appended
 * to net (the caller truncates on failure).
 */
static kiln_status build_node(kiln_network *net, int self, int64_t opset, const char *name, const char *op_type,
                              const char *domain, int n_in, const char *const *ins, int n_out,
                              const char *const *outs, int n_attrs, const kiln_attr_value *attrs, kiln_node *out)
{
    memset(out, 0, sizeof *out);
    if (!op_type || !*op_type) return kiln__gapi_fail(net, KILN_ERR_INVALID_ARG, "node '%s': empty op type", name ? name : "");
    if (n_in < 0 || n_out < 0 || n_attrs < 0 || n_in > MAX_IO || n_out > MAX_IO || n_attrs > MAX_IO ||
        (n_in && !ins) || (n_out && !outs) || (n_attrs && !attrs))
        return kiln__gapi_fail(net, KILN_ERR_INVALID_ARG, "node '%s': bad input/output/attribute counts", name ? name : "");
    for (int i = 0; i < n_in; i++) {
        if (!ins[i] || !*ins[i]) continue;
        int t = kiln__net_find_tensor(net, ins[i]);
        if (t < 0)
            return kiln__gapi_fail(net, KILN_ERR_NOT_FOUND, "node '%s': input '%s' is not a tensor of the graph", name,
                                   ins[i]);
        if (!kiln__gapi_defined(net, t))
            return kiln__gapi_fail(net, KILN_ERR_GRAPH,
                                   "node '%s': input '%s' is not produced by any node, input or initializer", name, ins[i]);
    }
    for (int i = 0; i < n_out; i++) {
        if (!outs[i] || !*outs[i]) continue;
        for (int j = 0; j < i; j++)
            if (outs[j] && !strcmp(outs[j], outs[i]))
                return kiln__gapi_fail(net, KILN_ERR_GRAPH, "node '%s': output '%s' is listed twice", name, outs[i]);
        int t = kiln__net_find_tensor(net, outs[i]);
        if (t >= 0 && !output_free(net, t, self)) {
            const kiln_tensor *tt = &net->tensors[t];
            return kiln__gapi_fail(net, KILN_ERR_GRAPH, "node '%s': output '%s' is already defined by %s", name, outs[i],
                                   tt->producer >= 0 ? net->nodes[tt->producer].name
                                   : tt->kind == KILN_TENSOR_INPUT ? "a graph input"
                                                                   : "an initializer");
        }
    }
    kiln_network *scratch = NULL;
    if (kiln_network_create(&scratch)) return kiln__gapi_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    scratch->opset = opset;
    kiln_status s = kiln_network_add_node(scratch, name, op_type, domain, n_in, ins, n_out, outs, n_attrs, attrs);
    if (s) {
        kiln__gapi_fail(net, s, "%s", scratch->last_error);
        kiln_network_free(scratch);
        return s;
    }
    /* move the node out of the scratch network, translating tensor indices by name */
    *out = scratch->nodes[0];
    scratch->n_nodes = 0;
    for (int j = 0; j < out->n_in; j++)
        if (out->in[j] >= 0) out->in[j] = kiln__net_find_tensor(net, scratch->tensors[out->in[j]].name);
    for (int j = 0; j < out->n_out; j++) {
        if (out->out[j] < 0) continue;
        int t = kiln__net_tensor(net, scratch->tensors[out->out[j]].name);
        out->out[j] = t;
        if (t < 0) s = kiln__gapi_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    kiln_network_free(scratch);
    if (s) {
        kiln__node_free(out);
        return s;
    }
    return KILN_OK;
}

kiln_status kiln_graph_replace_node(kiln_network *net, int node, const char *name, const char *op_type,
                                    const char *domain, int n_inputs, const char *const *inputs, int n_outputs,
                                    const char *const *outputs, int n_attrs, const kiln_attr_value *attrs)
{
    kiln_node *n = edit_node(net, node);
    if (!n) return KILN_ERR_INVALID_ARG;
    if (name && *name) {
        int other = kiln_graph_find_node(net, name);
        if (other >= 0 && other != node)
            return kiln__gapi_fail(net, KILN_ERR_GRAPH, "replace_node '%s': a node named '%s' exists already", n->name, name);
    } else {
        name = n->name;
    }
    int nt0 = net->n_tensors;
    kiln_node cand;
    kiln_status s = build_node(net, node, n->opset, name, op_type, domain, n_inputs, inputs, n_outputs, outputs,
                               n_attrs, attrs, &cand);
    if (s) {
        truncate_tensors(net, nt0);
        return s;
    }
    n = &net->nodes[node];
    cand.doc_string = n->doc_string;
    n->doc_string = NULL;
    kiln_node old = *n;
    *n = cand;
    reset_producers(net);
    kiln_err err = {{0}};
    s = check_graph(net, &err);
    if (s) {
        old.doc_string = n->doc_string;
        n->doc_string = NULL;
        kiln__node_free(n);
        *n = old;
        truncate_tensors(net, nt0);
        reset_producers(net);
        return kiln__gapi_fail(net, s, "replace_node '%s': %s", old.name, err.msg);
    }
    bool *cand_t = kiln__calloc((size_t)net->n_tensors + 1, sizeof *cand_t);
    if (cand_t)
        for (int j = 0; j < old.n_out; j++)
            if (old.out[j] >= 0) cand_t[old.out[j]] = true;
    forget_decls(net, n);
    kiln__node_free(&old);
    if (cand_t) drop_orphans(net, cand_t);
    free(cand_t);
    return KILN_OK;
}

kiln_status kiln_graph_set_node_input(kiln_network *net, int node, int slot, const char *tensor)
{
    kiln_node *n = edit_node(net, node);
    if (!n) return KILN_ERR_INVALID_ARG;
    if (slot < 0 || slot > n->n_in)
        return kiln__gapi_fail(net, KILN_ERR_INVALID_ARG, "set_node_input: node '%s' (%s) has %d inputs; slot %d is out of range",
                               n->name, n->op_type, n->n_in, slot);
    int t = -1;
    if (tensor && *tensor) {
        t = kiln__net_find_tensor(net, tensor);
        if (t < 0)
            return kiln__gapi_fail(net, KILN_ERR_NOT_FOUND, "set_node_input: node '%s': no tensor named '%s'", n->name, tensor);
        if (!kiln__gapi_defined(net, t))
            return kiln__gapi_fail(net, KILN_ERR_GRAPH,
                                   "set_node_input: node '%s': '%s' is not produced by any node, input or initializer",
                                   n->name, tensor);
    }
    const kiln_op_schema *sc = n->schema;
    if (sc && slot == n->n_in && sc->max_inputs >= 0 && n->n_in + 1 > sc->max_inputs)
        return kiln__gapi_fail(net, KILN_ERR_GRAPH, "set_node_input: node '%s' (%s) takes at most %d inputs", n->name,
                               n->op_type, sc->max_inputs);
    if (sc && t < 0 && slot < sc->min_inputs)
        return kiln__gapi_fail(net, KILN_ERR_GRAPH, "set_node_input: node '%s' (%s): input %d is required", n->name,
                               n->op_type, slot);
    int old_n = n->n_in, old_t = slot < n->n_in ? n->in[slot] : -1;
    if (slot == n->n_in) {
        kiln_err e = {{0}};
        if (kiln__node_set_n_inputs(n, n->n_in + 1, &e)) return kiln__gapi_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    n->in[slot] = t;
    kiln_err err = {{0}};
    kiln_status s = check_graph(net, &err);
    if (s) {
        n->in[slot] = old_t;
        n->n_in = old_n;
        return kiln__gapi_fail(net, s, "set_node_input: node '%s' input %d = '%s': %s", n->name, slot,
                               tensor ? tensor : "", err.msg);
    }
    forget_decls(net, n);
    return KILN_OK;
}

kiln_status kiln_graph_add_node(kiln_network *net, const char *name, const char *op_type, const char *domain,
                                int n_inputs, const char *const *inputs, int n_outputs, const char *const *outputs,
                                int n_attrs, const kiln_attr_value *attrs)
{
    if (!net) return KILN_ERR_INVALID_ARG;
    char gen[80];
    if (!name || !*name) {
        /* a generated name, unique like the ones kiln_network_add_node makes */
        int k = net->n_nodes;
        do snprintf(gen, sizeof gen, "%.40s_%d", op_type ? op_type : "node", k++);
        while (kiln_graph_find_node(net, gen) >= 0);
        name = gen;
    } else if (kiln_graph_find_node(net, name) >= 0) {
        return kiln__gapi_fail(net, KILN_ERR_GRAPH, "add_node: a node named '%s' exists already", name);
    }
    if (net->n_nodes == net->cap_nodes) {
        int cap = net->cap_nodes ? net->cap_nodes * 2 : 64;
        kiln_node *nn = kiln__realloc(net->nodes, sizeof *nn * (size_t)cap);
        if (!nn) return kiln__gapi_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        net->nodes = nn;
        net->cap_nodes = cap;
    }
    int nt0 = net->n_tensors;
    kiln_node cand;
    kiln_status s = build_node(net, -1, net->opset, name, op_type, domain, n_inputs, inputs, n_outputs, outputs,
                               n_attrs, attrs, &cand);
    if (s) {
        truncate_tensors(net, nt0);
        return s;
    }
    net->nodes[net->n_nodes++] = cand;
    reset_producers(net);
    kiln_err err = {{0}};
    s = check_graph(net, &err);
    if (s) {
        net->n_nodes--;
        kiln__node_free(&net->nodes[net->n_nodes]);
        truncate_tensors(net, nt0);
        reset_producers(net);
        return kiln__gapi_fail(net, s, "add_node '%s': %s", name, err.msg);
    }
    return KILN_OK;
}

/* --- tensors and graph --------------------------------------------------------- */

kiln_status kiln_graph_add_constant(kiln_network *net, const char *name, const kiln_host_tensor *t)
{
    if (!net) return KILN_ERR_INVALID_ARG;
    if (!t) return kiln__gapi_fail(net, KILN_ERR_INVALID_ARG, "add_constant: no tensor");
    if (!name || !*name) name = t->name;
    if (!name[0]) return kiln__gapi_fail(net, KILN_ERR_INVALID_ARG, "add_constant: empty name");
    int e = kiln__net_find_tensor(net, name);
    if (e >= 0 && kiln__gapi_defined(net, e))
        return kiln__gapi_fail(net, KILN_ERR_GRAPH, "add_constant: tensor '%s' exists already", name);
    if (t->rank < 0 || t->rank > KILN_MAX_DIMS)
        return kiln__gapi_fail(net, KILN_ERR_LIMIT, "add_constant '%s': rank %d is outside 0..%d", name, t->rank,
                               KILN_MAX_DIMS);
    int nt0 = net->n_tensors;
    kiln_status s = kiln_network_add_constant(net, name, t->dtype, t->rank, t->dims, t->data, t->nbytes);
    if (s) {
        truncate_tensors(net, nt0);
        return kiln__gapi_fail(net, s, "add_constant: %s", net->last_error);
    }
    return KILN_OK;
}

kiln_status kiln_graph_rename_tensor(kiln_network *net, const char *old_name, const char *new_name)
{
    if (!net) return KILN_ERR_INVALID_ARG;
    int t = old_name ? kiln__net_find_tensor(net, old_name) : -1;
    if (t < 0) return kiln__gapi_fail(net, KILN_ERR_NOT_FOUND, "rename: no tensor named '%s'", old_name ? old_name : "(null)");
    if (!new_name || !*new_name) return kiln__gapi_fail(net, KILN_ERR_INVALID_ARG, "rename '%s': empty new name", old_name);
    if (!strcmp(old_name, new_name)) return KILN_OK;
    if (kiln__net_find_tensor(net, new_name) >= 0)
        return kiln__gapi_fail(net, KILN_ERR_GRAPH, "rename '%s': a tensor named '%s' exists already", old_name, new_name);
    char *s = kiln__strdup(new_name);
    if (!s) return kiln__gapi_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    free(net->tensors[t].name);
    net->tensors[t].name = s;
    rehash_in_place(net);
    return KILN_OK;
}

kiln_status kiln_graph_set_input_shape(kiln_network *net, const char *input, int rank, const int64_t *dims,
                                       const char *const *sym_names)
{
    if (!net) return KILN_ERR_INVALID_ARG;
    int t = input ? kiln__net_find_tensor(net, input) : -1;
    if (t < 0 || !is_graph_input(net, t))
        return kiln__gapi_fail(net, KILN_ERR_NOT_FOUND, "set_input_shape: '%s' is not a graph input", input ? input : "(null)");
    if (rank < 0 || rank > KILN_MAX_DIMS || (rank && !dims))
        return kiln__gapi_fail(net, KILN_ERR_LIMIT, "set_input_shape '%s': rank %d is outside 0..%d", input, rank, KILN_MAX_DIMS);
    for (int i = 0; i < rank; i++)
        if (dims[i] < 0 && dims[i] != KILN_DIM_SYMBOLIC)
            return kiln__gapi_fail(net, KILN_ERR_SHAPE, "set_input_shape '%s': dimension %d is negative (%lld)", input, i,
                                   (long long)dims[i]);
    kiln_shape ns = {.rank = rank};
    for (int i = 0; i < rank; i++) {
        if (dims[i] != KILN_DIM_SYMBOLIC) {
            ns.d[i] = kiln__dim_const(dims[i]);
            continue;
        }
        char gen[300];
        const char *sn = (sym_names && sym_names[i] && *sym_names[i]) ? sym_names[i] : NULL;
        if (!sn) {
            snprintf(gen, sizeof gen, "%.250s_dim%d", input, i);
            sn = gen;
        }
        int32_t sym = kiln__net_symbol(net, sn);
        if (sym < 0) return kiln__gapi_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        ns.d[i] = kiln__dim_sym(sym);
    }
    /* Only a graph whose shapes inferred before is held to inferring after. */
    bool was_ok = kiln_network_infer_shapes(net) == KILN_OK;
    kiln_shape old = net->tensors[t].v.shape;
    net->tensors[t].v.shape = ns;
    kiln__tensor_decl_free(net->tensors[t].decl); /* the declared shape is the old one */
    net->tensors[t].decl = NULL;
    if (was_ok && kiln_network_infer_shapes(net) != KILN_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", net->last_error);
        net->tensors[t].v.shape = old;
        (void)kiln_network_infer_shapes(net);
        return kiln__gapi_fail(net, KILN_ERR_SHAPE, "set_input_shape '%s': the model's shapes do not hold: %s", input, msg);
    }
    return KILN_OK;
}

kiln_status kiln_graph_set_outputs(kiln_network *net, int n, const char *const *names)
{
    if (!net) return KILN_ERR_INVALID_ARG;
    if (n < 1 || n > MAX_IO || !names) return kiln__gapi_fail(net, KILN_ERR_INVALID_ARG, "set_outputs: need 1 to %d names", MAX_IO);
    int *idx = kiln__calloc((size_t)n, sizeof *idx);
    if (!idx) return kiln__gapi_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; i < n; i++) {
        int t = names[i] ? kiln__net_find_tensor(net, names[i]) : -1;
        kiln_status s = KILN_OK;
        if (t < 0) s = kiln__gapi_fail(net, KILN_ERR_NOT_FOUND, "set_outputs: no tensor named '%s'", names[i] ? names[i] : "(null)");
        else if (!kiln__gapi_defined(net, t))
            s = kiln__gapi_fail(net, KILN_ERR_GRAPH, "set_outputs: '%s' is not produced by any node, input or initializer", names[i]);
        for (int j = 0; j < i && !s; j++)
            if (idx[j] == t) s = kiln__gapi_fail(net, KILN_ERR_GRAPH, "set_outputs: '%s' is listed twice", names[i]);
        if (s) {
            free(idx);
            return s;
        }
        idx[i] = t;
    }
    bool *cand = kiln__calloc((size_t)net->n_tensors + 1, sizeof *cand);
    for (int i = 0; i < net->n_outputs; i++) {
        net->tensors[net->outputs[i]].is_output = false;
        if (cand) cand[net->outputs[i]] = true;
    }
    free(net->outputs);
    net->outputs = idx;
    net->n_outputs = n;
    for (int i = 0; i < n; i++) net->tensors[idx[i]].is_output = true;
    if (cand) {
        /* an old output tensor nothing writes or reads any more (e.g. a graph output that was only an input) goes */
        for (int t = 0; t < net->n_tensors; t++)
            if (cand[t] && kiln__gapi_defined(net, t)) cand[t] = false;
        drop_orphans(net, cand);
    }
    free(cand);
    return KILN_OK;
}

kiln_status kiln_graph_toposort(kiln_network *net)
{
    if (!net) return KILN_ERR_INVALID_ARG;
    int *order = NULL;
    kiln_err err = {{0}};
    kiln_status s = kiln__net_toposort(net, &order, &err);
    if (s) return kiln__gapi_fail(net, s, "toposort: %s", err.msg);
    kiln_node *sorted = kiln__calloc((size_t)net->cap_nodes + 1, sizeof *sorted);
    if (!sorted) {
        free(order);
        return kiln__gapi_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int k = 0; k < net->n_nodes; k++) sorted[k] = net->nodes[order[k]];
    free(order);
    free(net->nodes);
    net->nodes = sorted;
    net->cap_nodes = net->cap_nodes + 1;
    reset_producers(net);
    return KILN_OK;
}

kiln_status kiln_graph_cleanup(kiln_network *net, unsigned flags, int *removed_nodes, int *removed_tensors)
{
    if (removed_nodes) *removed_nodes = 0;
    if (removed_tensors) *removed_tensors = 0;
    if (!net) return KILN_ERR_INVALID_ARG;
    int n0 = net->n_nodes, t0 = net->n_tensors;
    kiln_err err = {{0}};
    kiln_status s = check_graph(net, &err); /* refuse before anything changes */
    if (s) return kiln__gapi_fail(net, s, "cleanup: %s", err.msg);
    kiln_pass_stats stats;
    memset(&stats, 0, sizeof stats);
    s = kiln__pass_remove_dead_nodes(net, NULL, &stats, &err);
    if (s) return kiln__gapi_fail(net, s, "cleanup: %s", err.msg);
    if (!stats.changes && (s = kiln_graph_toposort(net))) return s;
    if (flags & KILN_GRAPH_CLEANUP_INPUTS) {
        bool *cand = kiln__calloc((size_t)net->n_tensors + 1, sizeof *cand);
        if (!cand) return kiln__gapi_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        int w = 0;
        for (int i = 0; i < net->n_inputs; i++) {
            int t = net->inputs[i];
            if (readers(net, t, -1) == 0 && !is_graph_output(net, t)) {
                cand[t] = true;
                continue;
            }
            net->inputs[w++] = t;
        }
        if (w != net->n_inputs) {
            net->n_inputs = w;
            /* no longer an input: an orphan activation drop_orphans can take */
            for (int t = 0; t < net->n_tensors; t++)
                if (cand[t]) net->tensors[t].kind = KILN_TENSOR_ACTIVATION;
            drop_orphans(net, cand);
        }
        free(cand);
    }
    if (removed_nodes) *removed_nodes = n0 - net->n_nodes;
    if (removed_tensors) *removed_tensors = t0 - net->n_tensors;
    return KILN_OK;
}
