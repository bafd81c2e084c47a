/* Graph API, read side: nodes, attributes, tensors, constant values, producers and consumers. */
#include "graph_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static kiln_status vfail(kiln_network *net, kiln_status s, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (net) snprintf(net->last_error, sizeof net->last_error, "%s", msg);
    kiln__set_last_error(msg);
    return s;
}

kiln_status kiln__gapi_fail(kiln_network *net, kiln_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s = vfail(net, s, fmt, ap);
    va_end(ap);
    return s;
}

kiln_status kiln__gapi_lfail(kiln_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s = vfail(NULL, s, fmt, ap);
    va_end(ap);
    return s;
}

bool kiln__gapi_constlike(const kiln_network *net, int t)
{
    const kiln_tensor *tt = &net->tensors[t];
    if (tt->kind == KILN_TENSOR_CONSTANT) return true;
    if (tt->kind != KILN_TENSOR_ACTIVATION || tt->producer < 0 || tt->producer >= net->n_nodes) return false;
    const kiln_node *p = &net->nodes[tt->producer];
    return !strcmp(p->op_type, "Constant") && !p->domain[0];
}

/* --- nodes ------------------------------------------------------------------ */

int kiln_graph_node_count(const kiln_network *net) { return net ? net->n_nodes : 0; }

int kiln_graph_find_node(const kiln_network *net, const char *name)
{
    if (!net || !name) return -1;
    for (int i = 0; i < net->n_nodes; i++)
        if (!strcmp(net->nodes[i].name, name)) return i;
    return -1;
}

const char *kiln_graph_node_name(const kiln_network *net, int node)
{
    const kiln_node *n = kiln__gapi_node(net, node);
    return n ? n->name : NULL;
}

const char *kiln_graph_node_op(const kiln_network *net, int node)
{
    const kiln_node *n = kiln__gapi_node(net, node);
    return n ? n->op_type : NULL;
}

const char *kiln_graph_node_domain(const kiln_network *net, int node)
{
    const kiln_node *n = kiln__gapi_node(net, node);
    return n ? n->domain : NULL;
}

int kiln_graph_node_input_count(const kiln_network *net, int node)
{
    const kiln_node *n = kiln__gapi_node(net, node);
    return n ? n->n_in : -1;
}

/* The tensor name at ids[slot] of a node's n inputs or outputs; "" for an omitted optional one. */
static const char *slot_name(const kiln_network *net, const int *ids, int n, int slot)
{
    if (slot < 0 || slot >= n) return NULL;
    return ids[slot] >= 0 ? net->tensors[ids[slot]].name : "";
}

const char *kiln_graph_node_input(const kiln_network *net, int node, int slot)
{
    const kiln_node *n = kiln__gapi_node(net, node);
    return n ? slot_name(net, n->in, n->n_in, slot) : NULL;
}

int kiln_graph_node_output_count(const kiln_network *net, int node)
{
    const kiln_node *n = kiln__gapi_node(net, node);
    return n ? n->n_out : -1;
}

const char *kiln_graph_node_output(const kiln_network *net, int node, int slot)
{
    const kiln_node *n = kiln__gapi_node(net, node);
    return n ? slot_name(net, n->out, n->n_out, slot) : NULL;
}

int kiln_graph_node_known(const kiln_network *net, int node)
{
    const kiln_node *n = kiln__gapi_node(net, node);
    return n && n->schema ? 1 : 0;
}

/* --- attributes --------------------------------------------------------------- */

int kiln_graph_node_attr_count(const kiln_network *net, int node)
{
    const kiln_node *n = kiln__gapi_node(net, node);
    return n ? n->n_attrs : -1;
}

const char *kiln_graph_node_attr_name(const kiln_network *net, int node, int i)
{
    const kiln_node *n = kiln__gapi_node(net, node);
    return (n && i >= 0 && i < n->n_attrs) ? n->attrs[i].name : NULL;
}

/* The attribute, or NULL with the reason in kiln_last_error(); type 0 accepts any. */
static const kiln_attr *find_attr(const kiln_network *net, int node, const char *name, kiln_attr_type type,
                                  kiln_status *st)
{
    const kiln_node *n = kiln__gapi_node(net, node);
    if (!n || !name) {
        *st = n ? kiln__gapi_lfail(KILN_ERR_INVALID_ARG, "node '%s': no attribute name given", n->name)
                : kiln__gapi_lfail(KILN_ERR_INVALID_ARG, "graph: node index %d is out of range", node);
        return NULL;
    }
    const kiln_attr *a = kiln__node_attr(n, name);
    if (!a) {
        *st = kiln__gapi_lfail(KILN_ERR_NOT_FOUND, "node '%s' (%s) has no attribute '%s'", n->name, n->op_type, name);
        return NULL;
    }
    if (type && a->type != type) {
        *st = kiln__gapi_lfail(KILN_ERR_DTYPE, "node '%s' (%s): attribute '%s' is %s, not %s", n->name, n->op_type, name,
                               kiln__attr_type_name(a->type), kiln__attr_type_name(type));
        return NULL;
    }
    *st = KILN_OK;
    return a;
}

kiln_status kiln_graph_get_attr(const kiln_network *net, int node, const char *name, kiln_attr_value *out)
{
    kiln_status s;
    if (!out) return KILN_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    const kiln_attr *a = find_attr(net, node, name, 0, &s);
    if (!a) return s;
    *out = (kiln_attr_value){.name = a->name, .type = a->type, .i = a->i, .f = a->f, .s = a->s, .s_len = a->s_len,
                             .ints = a->ints, .floats = a->floats, .strings = (const char *const *)a->strings, .n = a->n};
    return KILN_OK;
}

kiln_status kiln_graph_get_attr_int(const kiln_network *net, int node, const char *name, int64_t *v)
{
    kiln_status s;
    const kiln_attr *a = find_attr(net, node, name, KILN_ATTR_INT, &s);
    if (a && v) *v = a->i;
    return s;
}

kiln_status kiln_graph_get_attr_float(const kiln_network *net, int node, const char *name, float *v)
{
    kiln_status s;
    const kiln_attr *a = find_attr(net, node, name, KILN_ATTR_FLOAT, &s);
    if (a && v) *v = a->f;
    return s;
}

kiln_status kiln_graph_get_attr_string(const kiln_network *net, int node, const char *name, const char **v,
                                       size_t *len)
{
    kiln_status s;
    const kiln_attr *a = find_attr(net, node, name, KILN_ATTR_STRING, &s);
    if (a) {
        if (v) *v = a->s ? a->s : "";
        if (len) *len = a->s ? a->s_len : 0;
    }
    return s;
}

/* An INTS (into *ints) or FLOATS (into *floats) attribute and its count; the outputs, each
 * optional, are left alone when it is missing. */
static kiln_status get_attr_list(const kiln_network *net, int node, const char *name, kiln_attr_type type,
                                 const int64_t **ints, const float **floats, int64_t *n)
{
    kiln_status s;
    const kiln_attr *a = find_attr(net, node, name, type, &s);
    if (a) {
        if (ints) *ints = a->ints;
        if (floats) *floats = a->floats;
        if (n) *n = a->n;
    }
    return s;
}

kiln_status kiln_graph_get_attr_ints(const kiln_network *net, int node, const char *name, const int64_t **v,
                                     int64_t *n)
{
    return get_attr_list(net, node, name, KILN_ATTR_INTS, v, NULL, n);
}

kiln_status kiln_graph_get_attr_floats(const kiln_network *net, int node, const char *name, const float **v,
                                       int64_t *n)
{
    return get_attr_list(net, node, name, KILN_ATTR_FLOATS, NULL, v, n);
}

/* Copies a value with constant dims into a host tensor the caller releases. */
static kiln_status value_to_host(const kiln_value *v, const char *name, kiln_host_tensor *out)
{
    memset(out, 0, sizeof *out);
    if (v->shape.rank < 0 || v->shape.rank > KILN_MAX_DIMS || !kiln__shape_is_const(&v->shape))
        return kiln__gapi_lfail(KILN_ERR_SHAPE, "tensor '%s' has no fixed shape", name);
    snprintf(out->name, sizeof out->name, "%s", name);
    out->dtype = v->dtype;
    out->rank = v->shape.rank;
    for (int d = 0; d < out->rank; d++) out->dims[d] = v->shape.d[d].add;
    out->data = kiln__malloc(v->nbytes);
    if (!out->data) return kiln__gapi_lfail(KILN_ERR_OUT_OF_MEMORY, "out of memory copying '%s'", name);
    if (v->nbytes) memcpy(out->data, v->data, v->nbytes);
    out->nbytes = v->nbytes;
    return KILN_OK;
}

kiln_status kiln_graph_get_attr_tensor(const kiln_network *net, int node, const char *name, kiln_host_tensor *out)
{
    kiln_status s;
    if (!out) return KILN_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    const kiln_attr *a = find_attr(net, node, name, KILN_ATTR_TENSOR, &s);
    if (!a) return s;
    if (!a->t) return kiln__gapi_lfail(KILN_ERR_INVALID_ARG, "attribute '%s' holds no tensor", name);
    return value_to_host(a->t, name, out);
}

/* --- tensors ------------------------------------------------------------------ */

int kiln_graph_tensor_count(const kiln_network *net) { return net ? net->n_tensors : 0; }

const char *kiln_graph_tensor_name(const kiln_network *net, int i)
{
    return (net && i >= 0 && i < net->n_tensors) ? net->tensors[i].name : NULL;
}

int kiln_graph_find_tensor(const kiln_network *net, const char *name)
{
    return (net && name) ? kiln__net_find_tensor(net, name) : -1;
}

static int use_count(const kiln_network *net, int t, int *nodes, int max)
{
    int c = 0;
    for (int i = 0; i < net->n_nodes; i++)
        for (int j = 0; j < net->nodes[i].n_in; j++)
            if (net->nodes[i].in[j] == t) {
                if (nodes && c < max) nodes[c] = i;
                c++;
            }
    return c;
}

kiln_status kiln_graph_tensor_info_get(const kiln_network *net, const char *name, kiln_graph_tensor_info *out)
{
    if (!net || !name || !out) return kiln__gapi_lfail(KILN_ERR_INVALID_ARG, "graph: tensor_info_get: NULL argument");
    memset(out, 0, sizeof *out);
    int t = kiln__net_find_tensor(net, name);
    if (t < 0) return kiln__gapi_lfail(KILN_ERR_NOT_FOUND, "graph has no tensor '%s'", name);
    const kiln_tensor *tt = &net->tensors[t];
    out->dtype = tt->v.dtype;
    out->rank = tt->v.shape.rank;
    for (int d = 0; d < out->rank && d < KILN_MAX_DIMS; d++) {
        kiln_dim dd = tt->v.shape.d[d];
        out->dims[d] = kiln__dim_is_const(dd) ? dd.add : dd.sym >= 0 ? KILN_DIM_SYMBOLIC : KILN_DIM_UNKNOWN;
        kiln__dim_str(net, dd, out->dim_text[d], sizeof out->dim_text[d]);
    }
    out->is_constant = tt->kind == KILN_TENSOR_CONSTANT;
    for (int i = 0; i < net->n_inputs; i++)
        if (net->inputs[i] == t) out->is_graph_input = 1;
    for (int i = 0; i < net->n_outputs; i++)
        if (net->outputs[i] == t) out->is_graph_output = 1;
    out->producer = tt->kind == KILN_TENSOR_ACTIVATION ? tt->producer : -1;
    out->n_consumers = use_count(net, t, NULL, 0);
    return KILN_OK;
}

int kiln_graph_producer(const kiln_network *net, const char *tensor)
{
    int t = kiln_graph_find_tensor(net, tensor);
    if (t < 0 || net->tensors[t].kind != KILN_TENSOR_ACTIVATION) return -1;
    return net->tensors[t].producer;
}

int kiln_graph_consumers(const kiln_network *net, const char *tensor, int *nodes, int max)
{
    int t = kiln_graph_find_tensor(net, tensor);
    if (t < 0) {
        kiln__gapi_lfail(KILN_ERR_NOT_FOUND, "graph has no tensor '%s'", tensor ? tensor : "(null)");
        return -1;
    }
    return use_count(net, t, nodes, max < 0 ? 0 : max);
}

kiln_status kiln_graph_constant_data(const kiln_network *net, const char *name, kiln_host_tensor *out)
{
    if (!out) return kiln__gapi_lfail(KILN_ERR_INVALID_ARG, "graph: constant_data: NULL output");
    memset(out, 0, sizeof *out);
    int t = kiln_graph_find_tensor(net, name);
    if (t < 0) return kiln__gapi_lfail(KILN_ERR_NOT_FOUND, "graph has no tensor '%s'", name ? name : "(null)");
    const kiln_tensor *tt = &net->tensors[t];
    if (tt->kind == KILN_TENSOR_CONSTANT) {
        if (!tt->v.data && tt->v.nbytes) return kiln__gapi_lfail(KILN_ERR_INVALID_ARG, "constant '%s' has no data", name);
        return value_to_host(&tt->v, name, out);
    }
    if (!kiln__gapi_constlike(net, t))
        return kiln__gapi_lfail(KILN_ERR_INVALID_ARG, "tensor '%s' is not an initializer nor a Constant node's output", name);
    /* A Constant node: its value attribute comes in several spellings; the schema's evaluation knows them all. */
    return kiln_graph_evaluate(net, name, out);
}

kiln_status kiln_graph_evaluate(const kiln_network *net, const char *name, kiln_host_tensor *out)
{
    if (!out) return kiln__gapi_lfail(KILN_ERR_INVALID_ARG, "graph: evaluate: NULL output");
    memset(out, 0, sizeof *out);
    int t = kiln_graph_find_tensor(net, name);
    if (t < 0) return kiln__gapi_lfail(KILN_ERR_NOT_FOUND, "graph has no tensor '%s'", name ? name : "(null)");
    if (net->tensors[t].kind == KILN_TENSOR_CONSTANT) return kiln_graph_constant_data(net, name, out);
    if (net->tensors[t].kind == KILN_TENSOR_INPUT)
        return kiln__gapi_lfail(KILN_ERR_INVALID_ARG, "tensor '%s' is a graph input, not a constant value", name);
    kiln_network *sub = NULL;
    const char *outs[1] = {name};
    kiln_status s = kiln_graph_extract(net, NULL, 0, outs, 1, &sub);
    if (s) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", kiln_last_error());
        return kiln__gapi_lfail(s, "cannot evaluate '%s': %s", name, msg);
    }
    s = kiln_reference_run(sub, 0, NULL, 1, out);
    if (s) {
        kiln__gapi_lfail(s, "cannot evaluate '%s': %s", name, kiln_network_last_error(sub));
        memset(out, 0, sizeof *out);
    } else {
        snprintf(out->name, sizeof out->name, "%s", name);
    }
    kiln_network_free(sub);
    return s;
}
