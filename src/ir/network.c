/* The network: tensors and nodes by index, names hashed. Built by the ONNX importer or by hand. */
#include "ir.h"
#include "../plugin/plugin.h" /* plugin nodes (issue 4) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static kiln_status net_fail(kiln_network *net, kiln_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static kiln_status net_fail(kiln_network *net, kiln_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(net->last_error, sizeof net->last_error, fmt, ap);
    va_end(ap);
    kiln__set_last_error(net->last_error);
    return s;
}

kiln_status kiln_network_create(kiln_network **out)
{
    if (!out) return KILN_ERR_INVALID_ARG;
    kiln_network *net = calloc(1, sizeof *net);
    if (!net) {
        *out = NULL;
        kiln__set_last_error("out of memory");
        return KILN_ERR_OUT_OF_MEMORY;
    }
    net->opset = 21;
    *out = net;
    return KILN_OK;
}

static void value_free_data(kiln_value *v)
{
    free(v->data);
    v->data = NULL;
}

void kiln__attr_free(kiln_attr *a)
{
    free(a->name);
    free(a->s);
    free(a->ints);
    free(a->floats);
    if (a->strings)
        for (int64_t i = 0; i < a->n; i++) free(a->strings[i]);
    free(a->strings);
    if (a->t) {
        value_free_data(a->t);
        free(a->t);
    }
    memset(a, 0, sizeof *a);
}

void kiln__node_free(kiln_node *n)
{
    free(n->name);
    free(n->op_type);
    free(n->domain);
    free(n->in);
    free(n->out);
    for (int a = 0; a < n->n_attrs; a++) kiln__attr_free(&n->attrs[a]);
    free(n->attrs);
    kiln__plugin_params_release(n);
    free(n->params);
    free(n->doc_string);
    memset(n, 0, sizeof *n);
}

void kiln_network_free(kiln_network *net)
{
    if (!net) return;
    for (int i = 0; i < net->n_tensors; i++) {
        free(net->tensors[i].name);
        value_free_data(&net->tensors[i].v);
        kiln__tensor_decl_free(net->tensors[i].decl); /* surgeon */
        free(net->tensors[i].doc_string);
    }
    for (int i = 0; i < net->n_nodes; i++) kiln__node_free(&net->nodes[i]);
    for (int i = 0; i < net->n_syms; i++) free(net->syms[i]);
    free(net->syms);
    free(net->tensors);
    free(net->nodes);
    free(net->inputs);
    free(net->outputs);
    free(net->hash);
    free(net->producer_name);
    /* --- surgeon (issue 5) metadata --- */
    free(net->producer_version);
    free(net->model_doc);
    free(net->model_domain);
    free(net->graph_name);
    free(net->graph_doc);
    for (int i = 0; i < net->n_meta; i++) {
        free(net->meta_keys[i]);
        free(net->meta_values[i]);
    }
    free(net->meta_keys);
    free(net->meta_values);
    for (int i = 0; i < net->n_opsets; i++) free(net->opset_domains[i]);
    free(net->opset_domains);
    free(net->opset_versions);
    /* --- end surgeon --- */
    free(net);
}

/* --- surgeon (issue 5): declared types and model metadata ------------------ */

void kiln__tensor_decl_free(kiln_tensor_decl *d)
{
    if (!d) return;
    for (int i = 0; i < KILN_MAX_DIMS; i++) free(d->names[i]);
    free(d);
}

kiln_tensor_decl *kiln__tensor_decl_clone(const kiln_tensor_decl *d)
{
    if (!d) return NULL;
    kiln_tensor_decl *c = kiln__malloc(sizeof *c);
    if (!c) return NULL;
    *c = *d;
    for (int i = 0; i < KILN_MAX_DIMS; i++) c->names[i] = NULL;
    for (int i = 0; i < KILN_MAX_DIMS; i++)
        if (d->names[i] && !(c->names[i] = kiln__strdup(d->names[i]))) {
            kiln__tensor_decl_free(c);
            return NULL;
        }
    return c;
}

static bool dup_opt(char **dst, const char *src)
{
    free(*dst);
    *dst = NULL;
    return !src || (*dst = kiln__strdup(src)) != NULL;
}

bool kiln__net_copy_meta(kiln_network *dst, const kiln_network *src)
{
    if (dst == src) return true;
    dst->ir_version = src->ir_version;
    dst->model_version = src->model_version;
    if (!dup_opt(&dst->producer_name, src->producer_name) || !dup_opt(&dst->producer_version, src->producer_version) ||
        !dup_opt(&dst->model_doc, src->model_doc) || !dup_opt(&dst->model_domain, src->model_domain) ||
        !dup_opt(&dst->graph_name, src->graph_name) || !dup_opt(&dst->graph_doc, src->graph_doc))
        return false;
    if (src->n_meta) {
        char **k = kiln__calloc((size_t)src->n_meta, sizeof *k), **v = kiln__calloc((size_t)src->n_meta, sizeof *v);
        if (!k || !v) {
            free(k);
            free(v);
            return false;
        }
        for (int i = 0; i < dst->n_meta; i++) {
            free(dst->meta_keys[i]);
            free(dst->meta_values[i]);
        }
        free(dst->meta_keys);
        free(dst->meta_values);
        dst->meta_keys = k;
        dst->meta_values = v;
        dst->n_meta = src->n_meta;
        for (int i = 0; i < src->n_meta; i++)
            if (!(k[i] = kiln__strdup(src->meta_keys[i])) || !(v[i] = kiln__strdup(src->meta_values[i]))) return false;
    }
    if (src->n_opsets) {
        char **d = kiln__calloc((size_t)src->n_opsets, sizeof *d);
        int64_t *ver = kiln__calloc((size_t)src->n_opsets, sizeof *ver);
        if (!d || !ver) {
            free(d);
            free(ver);
            return false;
        }
        for (int i = 0; i < dst->n_opsets; i++) free(dst->opset_domains[i]);
        free(dst->opset_domains);
        free(dst->opset_versions);
        dst->opset_domains = d;
        dst->opset_versions = ver;
        dst->n_opsets = src->n_opsets;
        for (int i = 0; i < src->n_opsets; i++) {
            ver[i] = src->opset_versions[i];
            if (!(d[i] = kiln__strdup(src->opset_domains[i]))) return false;
        }
    }
    return true;
}
/* --- end surgeon --- */

const char *kiln_network_last_error(const kiln_network *net)
{
    return net ? net->last_error : "no network";
}

kiln_status kiln_network_set_opset(kiln_network *net, int64_t opset)
{
    if (!net) return KILN_ERR_INVALID_ARG;
    if (opset < 1 || opset > 1000) return net_fail(net, KILN_ERR_INVALID_ARG, "opset %lld is out of range", (long long)opset);
    net->opset = opset;
    return KILN_OK;
}

int64_t kiln_network_opset(const kiln_network *net) { return net ? net->opset : 0; }

/* --- name hash ----------------------------------------------------------- */

static bool hash_grow(kiln_network *net)
{
    int cap = net->hash_cap ? net->hash_cap * 2 : 256;
    int *h = malloc(sizeof(int) * (size_t)cap);
    if (!h) return false;
    for (int i = 0; i < cap; i++) h[i] = -1;
    for (int t = 0; t < net->n_tensors; t++) {
        uint64_t k = kiln__hash_str(net->tensors[t].name) & (uint64_t)(cap - 1);
        while (h[k] >= 0) k = (k + 1) & (uint64_t)(cap - 1);
        h[k] = t;
    }
    free(net->hash);
    net->hash = h;
    net->hash_cap = cap;
    return true;
}

int kiln__net_find_tensor(const kiln_network *net, const char *name)
{
    if (!net->hash_cap || !name) return -1;
    uint64_t k = kiln__hash_str(name) & (uint64_t)(net->hash_cap - 1);
    while (net->hash[k] >= 0) {
        if (!strcmp(net->tensors[net->hash[k]].name, name)) return net->hash[k];
        k = (k + 1) & (uint64_t)(net->hash_cap - 1);
    }
    return -1;
}

int kiln__net_tensor(kiln_network *net, const char *name)
{
    int t = kiln__net_find_tensor(net, name);
    if (t >= 0) return t;
    if ((net->n_tensors + 1) * 2 > net->hash_cap && !hash_grow(net)) return -1;
    if (net->n_tensors == net->cap_tensors) {
        int cap = net->cap_tensors ? net->cap_tensors * 2 : 64;
        kiln_tensor *nt = realloc(net->tensors, sizeof *nt * (size_t)cap);
        if (!nt) return -1;
        net->tensors = nt;
        net->cap_tensors = cap;
    }
    kiln_tensor *tt = &net->tensors[net->n_tensors];
    memset(tt, 0, sizeof *tt);
    tt->name = kiln__strdup(name);
    if (!tt->name) return -1;
    tt->producer = -1;
    tt->v.shape.rank = -1;
    t = net->n_tensors++;
    uint64_t k = kiln__hash_str(name) & (uint64_t)(net->hash_cap - 1);
    while (net->hash[k] >= 0) k = (k + 1) & (uint64_t)(net->hash_cap - 1);
    net->hash[k] = t;
    return t;
}

int32_t kiln__net_symbol(kiln_network *net, const char *name)
{
    for (int i = 0; i < net->n_syms; i++)
        if (!strcmp(net->syms[i], name)) return i;
    char **s = realloc(net->syms, sizeof *s * (size_t)(net->n_syms + 1));
    if (!s) return KILN_SYM_UNKNOWN;
    net->syms = s;
    net->syms[net->n_syms] = kiln__strdup(name);
    if (!net->syms[net->n_syms]) return KILN_SYM_UNKNOWN;
    return net->n_syms++;
}

static bool push_index(int **arr, int *n, int v)
{
    int *a = realloc(*arr, sizeof(int) * (size_t)(*n + 1));
    if (!a) return false;
    a[(*n)++] = v;
    *arr = a;
    return true;
}

/* A tensor that already has a definition (input, constant or a node output) cannot get another. */
static bool is_defined(const kiln_network *net, int t)
{
    const kiln_tensor *tt = &net->tensors[t];
    return tt->kind != KILN_TENSOR_ACTIVATION || tt->producer >= 0;
}

static kiln_status check_rank_dims(kiln_network *net, const char *what, const char *name, int rank,
                                   const int64_t *dims, bool allow_sym)
{
    if (rank < 0 || rank > KILN_MAX_DIMS)
        return net_fail(net, KILN_ERR_LIMIT, "%s '%s': rank %d is outside 0..%d", what, name, rank, KILN_MAX_DIMS);
    for (int i = 0; i < rank; i++) {
        if (dims[i] == KILN_DIM_SYMBOLIC && allow_sym) continue;
        if (dims[i] < 0)
            return net_fail(net, KILN_ERR_SHAPE, "%s '%s': dimension %d is negative (%lld)", what, name, i, (long long)dims[i]);
    }
    return KILN_OK;
}

kiln_status kiln_network_add_input(kiln_network *net, const char *name, kiln_dtype dt, int rank,
                                   const int64_t *dims, const char *const *sym_names)
{
    if (!net || !name || !*name) return KILN_ERR_INVALID_ARG;
    kiln_status s = check_rank_dims(net, "input", name, rank, dims, true);
    if (s) return s;
    if (dt == KILN_DT_UNDEFINED || (kiln_dtype_size(dt) == 0 && dt != KILN_DT_STRING))
        return net_fail(net, KILN_ERR_DTYPE, "input '%s': unsupported data type %d", name, (int)dt);
    int t = kiln__net_tensor(net, name);
    if (t < 0) return net_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    if (is_defined(net, t)) return net_fail(net, KILN_ERR_GRAPH, "input '%s' is defined twice", name);
    kiln_tensor *tt = &net->tensors[t];
    tt->kind = KILN_TENSOR_INPUT;
    tt->v.dtype = dt;
    tt->v.shape.rank = rank;
    for (int i = 0; i < rank; i++) {
        if (dims[i] == KILN_DIM_SYMBOLIC) {
            char gen[32];
            const char *sn = (sym_names && sym_names[i] && *sym_names[i]) ? sym_names[i] : NULL;
            if (!sn) {
                snprintf(gen, sizeof gen, "%s_dim%d", name, i);
                sn = gen;
            }
            int32_t sym = kiln__net_symbol(net, sn);
            if (sym < 0) return net_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
            tt = &net->tensors[t];
            tt->v.shape.d[i] = kiln__dim_sym(sym);
        } else {
            tt->v.shape.d[i] = kiln__dim_const(dims[i]);
        }
    }
    if (!push_index(&net->inputs, &net->n_inputs, t)) return net_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    return KILN_OK;
}

kiln_status kiln_network_add_constant(kiln_network *net, const char *name, kiln_dtype dt, int rank,
                                      const int64_t *dims, const void *data, size_t nbytes)
{
    if (!net || !name || !*name) return KILN_ERR_INVALID_ARG;
    kiln_status s = check_rank_dims(net, "constant", name, rank, dims, false);
    if (s) return s;
    size_t es = kiln_dtype_size(dt);
    if (es == 0) return net_fail(net, KILN_ERR_DTYPE, "constant '%s': unsupported data type %s (%d)", name, kiln_dtype_name(dt), (int)dt);
    size_t n = 1;
    for (int i = 0; i < rank; i++)
        if (kiln__mul_overflow(n, (size_t)dims[i], &n))
            return net_fail(net, KILN_ERR_LIMIT, "constant '%s': element count overflows", name);
    if (kiln__mul_overflow(n, es, &n) || n != nbytes)
        return net_fail(net, KILN_ERR_SHAPE, "constant '%s': %zu bytes of data, its shape needs %zu", name, nbytes, n);
    if (nbytes && !data) return net_fail(net, KILN_ERR_INVALID_ARG, "constant '%s': no data", name);
    int t = kiln__net_tensor(net, name);
    if (t < 0) return net_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    kiln_tensor *tt = &net->tensors[t];
    if (tt->kind == KILN_TENSOR_INPUT) {
        /* ONNX allows an initializer with the same name as a graph input (a default value). */
        for (int i = 0; i < net->n_inputs; i++)
            if (net->inputs[i] == t) {
                memmove(&net->inputs[i], &net->inputs[i + 1], sizeof(int) * (size_t)(net->n_inputs - i - 1));
                net->n_inputs--;
                break;
            }
    } else if (is_defined(net, t)) {
        return net_fail(net, KILN_ERR_GRAPH, "constant '%s' is defined twice", name);
    }
    void *copy = kiln__malloc(nbytes);
    if (!copy) return net_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory for constant '%s' (%zu bytes)", name, nbytes);
    if (nbytes) memcpy(copy, data, nbytes);
    tt->kind = KILN_TENSOR_CONSTANT;
    tt->v.dtype = dt;
    tt->v.shape = kiln__shape_of(rank, dims);
    free(tt->v.data);
    tt->v.data = copy;
    tt->v.nbytes = nbytes;
    return KILN_OK;
}

kiln_status kiln_network_mark_output(kiln_network *net, const char *name)
{
    if (!net || !name || !*name) return KILN_ERR_INVALID_ARG;
    int t = kiln__net_tensor(net, name);
    if (t < 0) return net_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    if (net->tensors[t].is_output) return net_fail(net, KILN_ERR_GRAPH, "output '%s' is marked twice", name);
    net->tensors[t].is_output = true;
    if (!push_index(&net->outputs, &net->n_outputs, t)) return net_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    return KILN_OK;
}

static kiln_status copy_attr(kiln_network *net, const char *node, kiln_attr *dst, const kiln_attr_value *src)
{
    memset(dst, 0, sizeof *dst);
    if (!src->name || !*src->name) return net_fail(net, KILN_ERR_INVALID_ARG, "node '%s': attribute without a name", node);
    dst->name = kiln__strdup(src->name);
    dst->type = src->type;
    if (!dst->name) return KILN_ERR_OUT_OF_MEMORY;
    switch (src->type) {
    case KILN_ATTR_INT: dst->i = src->i; break;
    case KILN_ATTR_FLOAT: dst->f = src->f; break;
    case KILN_ATTR_STRING:
        dst->s = kiln__strndup(src->s ? src->s : "", src->s ? src->s_len : 0);
        dst->s_len = src->s ? src->s_len : 0;
        if (!dst->s) return KILN_ERR_OUT_OF_MEMORY;
        break;
    case KILN_ATTR_INTS:
        if (src->n < 0 || src->n > (1 << 24)) return net_fail(net, KILN_ERR_LIMIT, "node '%s': attribute '%s' has %lld values", node, src->name, (long long)src->n);
        dst->n = src->n;
        dst->ints = kiln__calloc((size_t)src->n, sizeof(int64_t));
        if (!dst->ints) return KILN_ERR_OUT_OF_MEMORY;
        if (src->n) memcpy(dst->ints, src->ints, sizeof(int64_t) * (size_t)src->n);
        break;
    case KILN_ATTR_FLOATS:
        if (src->n < 0 || src->n > (1 << 24)) return net_fail(net, KILN_ERR_LIMIT, "node '%s': attribute '%s' has %lld values", node, src->name, (long long)src->n);
        dst->n = src->n;
        dst->floats = kiln__calloc((size_t)src->n, sizeof(float));
        if (!dst->floats) return KILN_ERR_OUT_OF_MEMORY;
        if (src->n) memcpy(dst->floats, src->floats, sizeof(float) * (size_t)src->n);
        break;
    case KILN_ATTR_STRINGS:
        if (src->n < 0 || src->n > (1 << 20)) return net_fail(net, KILN_ERR_LIMIT, "node '%s': attribute '%s' has %lld values", node, src->name, (long long)src->n);
        dst->strings = kiln__calloc((size_t)src->n, sizeof(char *));
        if (!dst->strings) return KILN_ERR_OUT_OF_MEMORY;
        dst->n = src->n;
        for (int64_t i = 0; i < src->n; i++) {
            dst->strings[i] = kiln__strdup(src->strings[i] ? src->strings[i] : "");
            if (!dst->strings[i]) return KILN_ERR_OUT_OF_MEMORY;
        }
        break;
    case KILN_ATTR_TENSOR: {
        const kiln_host_tensor *t = src->t;
        if (!t) return net_fail(net, KILN_ERR_INVALID_ARG, "node '%s': attribute '%s' has no tensor", node, src->name);
        if (t->rank < 0 || t->rank > KILN_MAX_DIMS)
            return net_fail(net, KILN_ERR_LIMIT, "node '%s': attribute '%s': tensor rank %d", node, src->name, t->rank);
        size_t es = kiln_dtype_size(t->dtype), n = 1;
        if (!es) return net_fail(net, KILN_ERR_DTYPE, "node '%s': attribute '%s': unsupported tensor type %s", node, src->name, kiln_dtype_name(t->dtype));
        for (int i = 0; i < t->rank; i++)
            if (t->dims[i] < 0 || kiln__mul_overflow(n, (size_t)t->dims[i], &n))
                return net_fail(net, KILN_ERR_SHAPE, "node '%s': attribute '%s': bad tensor dims", node, src->name);
        if (kiln__mul_overflow(n, es, &n) || n != t->nbytes)
            return net_fail(net, KILN_ERR_SHAPE, "node '%s': attribute '%s': %zu bytes of data, shape needs %zu", node, src->name, t->nbytes, n);
        dst->t = calloc(1, sizeof *dst->t);
        if (!dst->t) return KILN_ERR_OUT_OF_MEMORY;
        dst->t->dtype = t->dtype;
        dst->t->shape = kiln__shape_of(t->rank, t->dims);
        dst->t->nbytes = t->nbytes;
        dst->t->data = kiln__malloc(t->nbytes);
        if (!dst->t->data) return KILN_ERR_OUT_OF_MEMORY;
        if (t->nbytes) memcpy(dst->t->data, t->data, t->nbytes);
        break;
    }
    default:
        return net_fail(net, KILN_ERR_UNSUPPORTED, "node '%s': attribute '%s' has unsupported type %d", node, src->name, (int)src->type);
    }
    return KILN_OK;
}

kiln_status kiln_network_add_node(kiln_network *net, const char *node_name, const char *op_type,
                                  const char *domain, int n_inputs, const char *const *inputs,
                                  int n_outputs, const char *const *outputs, int n_attrs,
                                  const kiln_attr_value *attrs)
{
    if (!net) return KILN_ERR_INVALID_ARG;
    if (!op_type || !*op_type) return net_fail(net, KILN_ERR_INVALID_ARG, "node '%s' has no op_type", node_name ? node_name : "");
    if (n_inputs < 0 || n_outputs < 0 || n_attrs < 0 || n_inputs > 4096 || n_outputs > 4096 || n_attrs > 4096)
        return net_fail(net, KILN_ERR_LIMIT, "node '%s': bad input/output/attribute counts", node_name ? node_name : "");
    if (net->n_nodes == net->cap_nodes) {
        int cap = net->cap_nodes ? net->cap_nodes * 2 : 64;
        kiln_node *nn = realloc(net->nodes, sizeof *nn * (size_t)cap);
        if (!nn) return net_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        net->nodes = nn;
        net->cap_nodes = cap;
    }
    int idx = net->n_nodes;
    kiln_node *n = &net->nodes[idx];
    memset(n, 0, sizeof *n);
    char gen[64];
    if (!node_name || !*node_name) {
        snprintf(gen, sizeof gen, "%.40s_%d", op_type, idx);
        node_name = gen;
    }
    n->name = kiln__strdup(node_name);
    n->op_type = kiln__strdup(op_type);
    n->domain = kiln__strdup(domain && strcmp(domain, "ai.onnx") ? domain : "");
    n->in = kiln__calloc((size_t)n_inputs, sizeof(int));
    n->out = kiln__calloc((size_t)n_outputs, sizeof(int));
    n->attrs = kiln__calloc((size_t)n_attrs, sizeof(kiln_attr));
    n->opset = net->opset;
    net->n_nodes++; /* from here the node is owned by net and freed with it */
    if (!n->name || !n->op_type || !n->domain || !n->in || !n->out || !n->attrs) goto oom;
    for (int i = 0; i < n_attrs; i++) {
        n->n_attrs = i + 1;
        kiln_status s = copy_attr(net, node_name, &n->attrs[i], &attrs[i]);
        if (s == KILN_ERR_OUT_OF_MEMORY) goto oom;
        if (s) return s;
        for (int j = 0; j < i; j++)
            if (!strcmp(n->attrs[j].name, n->attrs[i].name))
                return net_fail(net, KILN_ERR_INVALID_ARG, "node '%s': attribute '%s' given twice", node_name, n->attrs[i].name);
    }
    n->n_in = n_inputs;
    for (int i = 0; i < n_inputs; i++) {
        if (!inputs[i] || !*inputs[i]) {
            n->in[i] = -1;
            continue;
        }
        int t = kiln__net_tensor(net, inputs[i]);
        n = &net->nodes[idx];
        if (t < 0) goto oom;
        n->in[i] = t;
    }
    n->n_out = n_outputs;
    for (int i = 0; i < n_outputs; i++) {
        if (!outputs[i] || !*outputs[i]) {
            n->out[i] = -1;
            continue;
        }
        int t = kiln__net_tensor(net, outputs[i]);
        n = &net->nodes[idx];
        if (t < 0) goto oom;
        if (is_defined(net, t))
            return net_fail(net, KILN_ERR_GRAPH, "node '%s': output '%s' is already defined by %s", node_name, outputs[i],
                            net->tensors[t].producer >= 0 ? net->nodes[net->tensors[t].producer].name : "an input or constant");
        net->tensors[t].producer = idx;
        n->out[i] = t;
    }
    /* Unknown ops stay in the graph (inspect reports them all at once); running them fails. */
    n->schema = kiln__op_schema_find(n->domain, n->op_type);
    if (!n->schema) n->schema = kiln__plugin_schema_for_node(n); /* plugins (issue 4): no built-in op, maybe a plugin */
    if (n->schema) {
        const kiln_op_schema *sc = n->schema;
        if (n_inputs < sc->min_inputs || (sc->max_inputs >= 0 && n_inputs > sc->max_inputs))
            return net_fail(net, KILN_ERR_GRAPH, "node '%s' (%s): %d inputs, expected %d to %d", node_name, op_type, n_inputs, sc->min_inputs, sc->max_inputs);
        if (n_outputs < sc->min_outputs || (sc->max_outputs >= 0 && n_outputs > sc->max_outputs))
            return net_fail(net, KILN_ERR_GRAPH, "node '%s' (%s): %d outputs, expected %d to %d", node_name, op_type, n_outputs, sc->min_outputs, sc->max_outputs);
        /* "" means an omitted optional input; infer() gets NULL for it, so the required ones
         * (below min_inputs) are refused here, once for every op. */
        for (int i = 0; i < sc->min_inputs && i < n_inputs; i++)
            if (n->in[i] < 0)
                return net_fail(net, KILN_ERR_GRAPH, "node '%s' (%s): input %d is required but empty", node_name, op_type, i);
        n->params = kiln__calloc(1, sc->params_size);
        if (!n->params) goto oom;
        if (sc->parse_attrs) {
            kiln_err err = {{0}};
            kiln_status s = sc->parse_attrs(n, n->params, &err);
            if (s) return net_fail(net, s, "%s", err.msg[0] ? err.msg : "invalid attributes");
        }
    }
    return KILN_OK;
oom:
    return net_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory adding node '%s'", node_name);
}

int kiln_network_input_count(const kiln_network *net) { return net ? net->n_inputs : 0; }
int kiln_network_output_count(const kiln_network *net) { return net ? net->n_outputs : 0; }
int kiln_network_node_count(const kiln_network *net) { return net ? net->n_nodes : 0; }

const char *kiln_network_input_name(const kiln_network *net, int i)
{
    return (net && i >= 0 && i < net->n_inputs) ? net->tensors[net->inputs[i]].name : NULL;
}

const char *kiln_network_output_name(const kiln_network *net, int i)
{
    return (net && i >= 0 && i < net->n_outputs) ? net->tensors[net->outputs[i]].name : NULL;
}

kiln_status kiln_network_describe_tensor(const kiln_network *net, const char *name, char *buf, size_t len)
{
    if (!net || !name || !buf || !len) return KILN_ERR_INVALID_ARG;
    int t = kiln__net_find_tensor(net, name);
    if (t < 0) {
        snprintf(buf, len, "?");
        return KILN_ERR_NOT_FOUND;
    }
    char shape[512];
    kiln__shape_str(net, &net->tensors[t].v.shape, shape, sizeof shape);
    snprintf(buf, len, "%s%s", net->tensors[t].v.dtype ? kiln_dtype_name(net->tensors[t].v.dtype) : "?", shape);
    return KILN_OK;
}

const char *kiln_network_node_name(const kiln_network *net, int i)
{
    return (net && i >= 0 && i < net->n_nodes) ? net->nodes[i].name : NULL;
}

const char *kiln_network_node_op(const kiln_network *net, int i)
{
    return (net && i >= 0 && i < net->n_nodes) ? net->nodes[i].op_type : NULL;
}

const char *kiln_network_node_domain(const kiln_network *net, int i)
{
    return (net && i >= 0 && i < net->n_nodes) ? net->nodes[i].domain : NULL;
}

kiln_status kiln_network_input_shape(const kiln_network *net, int i, kiln_dtype *dt, int *rank,
                                     int64_t dims[KILN_MAX_DIMS])
{
    if (!net || i < 0 || i >= net->n_inputs) return KILN_ERR_INVALID_ARG;
    const kiln_value *v = &net->tensors[net->inputs[i]].v;
    *dt = v->dtype;
    *rank = v->shape.rank;
    for (int d = 0; d < v->shape.rank; d++)
        dims[d] = kiln__dim_is_const(v->shape.d[d]) ? v->shape.d[d].add : KILN_DIM_SYMBOLIC;
    return KILN_OK;
}

static bool is_float_type(kiln_dtype dt)
{
    return dt == KILN_DT_FLOAT || dt == KILN_DT_FLOAT16 || dt == KILN_DT_DOUBLE || dt == KILN_DT_BFLOAT16;
}

kiln_status kiln_network_mark_all_outputs(kiln_network *net, int *n_marked)
{
    if (n_marked) *n_marked = 0;
    if (!net) return KILN_ERR_INVALID_ARG;
    /* Types come from static inference; a graph it rejects cannot be compared tensor by tensor. */
    kiln_status s = kiln_network_infer_shapes(net);
    if (s) return s;
    kiln_err err = {{0}};
    int *order = NULL;
    s = kiln__net_toposort(net, &order, &err);
    if (s) return net_fail(net, s, "%s", err.msg);
    /* Values computed from constants only are folded away by optimizers; not worth comparing. */
    bool *from_const = kiln__calloc((size_t)net->n_tensors + 1, sizeof *from_const);
    if (!from_const) {
        free(order);
        return net_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int t = 0; t < net->n_tensors; t++) from_const[t] = net->tensors[t].kind == KILN_TENSOR_CONSTANT;
    int added = 0;
    for (int k = 0; k < net->n_nodes && !s; k++) {
        const kiln_node *nd = &net->nodes[order[k]];
        bool all_const = true;
        for (int j = 0; j < nd->n_in; j++)
            if (nd->in[j] >= 0 && !from_const[nd->in[j]]) all_const = false;
        for (int j = 0; j < nd->n_out; j++) {
            int t = nd->out[j];
            if (t < 0) continue;
            from_const[t] = all_const;
            kiln_tensor *tt = &net->tensors[t];
            if (all_const || tt->is_output || tt->kind != KILN_TENSOR_ACTIVATION || !is_float_type(tt->v.dtype)) continue;
            tt->is_output = true;
            if (!push_index(&net->outputs, &net->n_outputs, t)) s = net_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
            else added++;
        }
    }
    free(from_const);
    free(order);
    if (n_marked) *n_marked = added;
    return s;
}
