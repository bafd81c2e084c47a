/*
 * ONNX model -> kiln network, built only through the public network API
 * (kiln.h), so a hand-built network and an imported one are the same thing.
 * The protobuf structs live only inside this file's functions.
 *
 * Model-local functions (ModelProto.functions) are inlined: each call's body
 * nodes are added with their internal tensors renamed to names unique in the
 * network, and attribute references (ref_attr_name) replaced by the caller's
 * attributes or the function's defaults.
 */
#include "onnx_internal.h"
#include "../ir/ir.h" /* surgeon (issue 5): metadata fields for the writer */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_FILE_BYTES ((uint64_t)4 << 30)
/* ONNX IR versions are small integers (11 in 2025); far larger means garbage. */
#define MAX_IR_VERSION 64
#define MAX_OPSET 1000
#define MAX_FUNCTION_DEPTH 32
#define MAX_INLINED_NODES (1 << 22)

static const char *str_or_empty(const char *s) { return s ? s : ""; }

static bool is_default_domain(const char *d)
{
    return !d || !*d || !strcmp(d, "ai.onnx");
}

/* --- string map (owned keys and values) --------------------------------- */

typedef struct strmap {
    char **keys;
    char **vals;
    size_t cap, n;
} strmap;

static void map_free(strmap *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->keys[i]);
        free(m->vals[i]);
    }
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static size_t map_slot(const strmap *m, const char *key)
{
    size_t k = (size_t)kiln__hash_str(key) & (m->cap - 1);
    while (m->keys[k] && strcmp(m->keys[k], key)) k = (k + 1) & (m->cap - 1);
    return k;
}

static bool map_grow(strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    strmap nm = {kiln__calloc(cap, sizeof(char *)), kiln__calloc(cap, sizeof(char *)), cap, m->n};
    if (!nm.keys || !nm.vals) {
        free(nm.keys);
        free(nm.vals);
        return false;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) {
            size_t k = map_slot(&nm, m->keys[i]);
            nm.keys[k] = m->keys[i];
            nm.vals[k] = m->vals[i];
        }
    free(m->keys);
    free(m->vals);
    *m = nm;
    return true;
}

/* Looks a key up; NULL when absent, else its value ("" for a plain set member). */
static const char *map_get(const strmap *m, const char *key)
{
    if (!m->cap) return NULL;
    size_t k = map_slot(m, key);
    return m->keys[k] ? m->vals[k] : NULL;
}

/* Inserts or replaces; returns the stored value (stable until map_free), NULL on OOM. */
static const char *map_put(strmap *m, const char *key, const char *val)
{
    if ((m->n + 1) * 2 > m->cap && !map_grow(m)) return NULL;
    size_t k = map_slot(m, key);
    char *v = kiln__strdup(val ? val : "");
    if (!v) return NULL;
    if (m->keys[k]) {
        free(m->vals[k]);
    } else {
        m->keys[k] = kiln__strdup(key);
        if (!m->keys[k]) {
            free(v);
            return NULL;
        }
        m->n++;
    }
    m->vals[k] = v;
    return v;
}

/* --- per-node scratch memory -------------------------------------------- */

typedef struct scratch {
    void **ptrs;
    size_t n, cap;
    kiln_host_tensor *tensors[64];
    size_t n_tensors;
} scratch;

static void *scratch_keep(scratch *sc, void *p)
{
    if (!p) return NULL;
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 16;
        void **np = kiln__realloc(sc->ptrs, cap * sizeof *np);
        if (!np) {
            free(p);
            return NULL;
        }
        sc->ptrs = np;
        sc->cap = cap;
    }
    sc->ptrs[sc->n++] = p;
    return p;
}

static void scratch_free(scratch *sc)
{
    for (size_t i = 0; i < sc->n; i++) free(sc->ptrs[i]);
    free(sc->ptrs);
    for (size_t i = 0; i < sc->n_tensors; i++) {
        kiln_host_tensor_release(sc->tensors[i]);
        free(sc->tensors[i]);
    }
    memset(sc, 0, sizeof *sc);
}

/* --- importer state ----------------------------------------------------- */

typedef struct importer {
    kiln_network *net;
    const Kiln__Onnx__ModelProto *model;
    const char *path;
    char *base_dir;
    strmap taken_names; /* every tensor name of the main graph plus inlined ones (only with functions) */
    strmap dim_params;  /* names of symbolic input dims, so generated ones avoid them */
    int unk_counter;
    size_t inlined_nodes;
    kiln_err err;
} importer;

/* An attribute as it applies to a node: a name and the proto that holds the value. */
typedef struct attr_ref {
    const char *name;
    const Kiln__Onnx__AttributeProto *a;
} attr_ref;

/* One inlined call of a model-local function. */
typedef struct call_ctx {
    const Kiln__Onnx__FunctionProto *fn;
    const attr_ref *attrs; /* the caller's attributes, references already resolved */
    int n_attrs;
    strmap names;          /* body name -> network name */
    const char *prefix;    /* the caller node's name */
    const struct call_ctx *parent;
    int depth;
} call_ctx;

static kiln_status net_error(importer *im, kiln_status st)
{
    return kiln__fail(&im->err, st, "%s", kiln_network_last_error(im->net));
}

static kiln_status oom(importer *im)
{
    return kiln__fail(&im->err, KILN_ERR_OUT_OF_MEMORY, "out of memory importing '%s'", im->path);
}

/*
 * The network name of tensor `name` as written inside ctx's function body:
 * formal inputs/outputs map to the caller's tensors, everything else gets a
 * fresh name "<caller>/<name>" unique in the network. NULL on OOM.
 */
static const char *map_name(importer *im, call_ctx *ctx, const char *name)
{
    if (!ctx || !*name) return name;
    const char *v = map_get(&ctx->names, name);
    if (v) return v;
    size_t len = strlen(ctx->prefix) + strlen(name) + 24;
    char *cand = kiln__malloc(len);
    if (!cand) return NULL;
    snprintf(cand, len, "%s/%s", ctx->prefix, name);
    for (unsigned k = 1; map_get(&im->taken_names, cand); k++)
        snprintf(cand, len, "%s/%s_%u", ctx->prefix, name, k);
    v = map_put(&im->taken_names, cand, "") ? map_put(&ctx->names, name, cand) : NULL;
    free(cand);
    return v;
}

/* --- attributes --------------------------------------------------------- */

static const char *attr_type_name(int32_t t)
{
    static const char *const names[] = {"UNDEFINED", "FLOAT", "INT", "STRING", "TENSOR", "GRAPH",
                                        "FLOATS", "INTS", "STRINGS", "TENSORS", "GRAPHS",
                                        "SPARSE_TENSOR", "SPARSE_TENSORS", "TYPE_PROTO", "TYPE_PROTOS"};
    return (t >= 0 && (size_t)t < sizeof names / sizeof names[0]) ? names[t] : "unknown";
}

/* IR version 1 files carry no type field: take it from whichever value is present. */
static int32_t attr_type(const Kiln__Onnx__AttributeProto *a)
{
    if (a->has_type && a->type != 0) return a->type;
    if (a->has_f) return KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    if (a->has_i) return KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    if (a->has_s) return KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
    if (a->t) return KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    if (a->n_floats) return KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
    if (a->n_ints) return KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    if (a->n_strings) return KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
    return 0;
}

static kiln_status convert_attr(importer *im, const char *node, const char *op, const attr_ref *r,
                                kiln_attr_value *v, scratch *sc)
{
    const Kiln__Onnx__AttributeProto *a = r->a;
    int32_t type = attr_type(a);
    memset(v, 0, sizeof *v);
    v->name = r->name;
    switch (type) {
    case KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT:
        v->type = KILN_ATTR_FLOAT;
        v->f = a->f;
        return KILN_OK;
    case KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT:
        v->type = KILN_ATTR_INT;
        v->i = a->i;
        return KILN_OK;
    case KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
        v->type = KILN_ATTR_STRING;
        v->s = scratch_keep(sc, kiln__strndup(a->s.data ? (const char *)a->s.data : "", a->s.data ? a->s.len : 0));
        v->s_len = a->s.data ? a->s.len : 0;
        return v->s ? KILN_OK : oom(im);
    case KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
        v->type = KILN_ATTR_FLOATS;
        v->floats = a->floats;
        v->n = (int64_t)a->n_floats;
        return KILN_OK;
    case KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
        v->type = KILN_ATTR_INTS;
        v->ints = a->ints;
        v->n = (int64_t)a->n_ints;
        return KILN_OK;
    case KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS: {
        v->type = KILN_ATTR_STRINGS;
        char **strs = scratch_keep(sc, kiln__calloc(a->n_strings, sizeof(char *)));
        if (!strs) return oom(im);
        for (size_t i = 0; i < a->n_strings; i++) {
            const ProtobufCBinaryData *b = &a->strings[i];
            strs[i] = scratch_keep(sc, kiln__strndup(b->data ? (const char *)b->data : "", b->data ? b->len : 0));
            if (!strs[i]) return oom(im);
        }
        v->strings = (const char *const *)strs;
        v->n = (int64_t)a->n_strings;
        return KILN_OK;
    }
    case KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: {
        v->type = KILN_ATTR_TENSOR;
        if (sc->n_tensors == sizeof sc->tensors / sizeof sc->tensors[0])
            return kiln__fail(&im->err, KILN_ERR_LIMIT, "node '%s' (%s): too many tensor attributes", node, op);
        kiln_host_tensor *t = kiln__calloc(1, sizeof *t);
        if (!t) return oom(im);
        char what[600];
        snprintf(what, sizeof what, "node '%.250s' (%.60s): attribute '%.250s'", node, op, r->name);
        kiln_status st = kiln__onnx_tensor_to_host(a->t, im->base_dir, what, t, &im->err);
        if (st) {
            free(t);
            return st;
        }
        sc->tensors[sc->n_tensors++] = t;
        v->t = t;
        return KILN_OK;
    }
    case KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH:
    case KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS:
        return kiln__fail(&im->err, KILN_ERR_UNSUPPORTED,
                          "unsupported: node '%s' (%s) has a subgraph attribute '%s'", node, op, r->name);
    case 0:
        return kiln__fail(&im->err, KILN_ERR_PARSE, "node '%s' (%s): attribute '%s' has no value", node, op,
                          r->name);
    default:
        return kiln__fail(&im->err, KILN_ERR_UNSUPPORTED,
                          "unsupported: node '%s' (%s): attribute '%s' has type %s", node, op, r->name,
                          attr_type_name(type));
    }
}

static const Kiln__Onnx__AttributeProto *find_attr_proto(Kiln__Onnx__AttributeProto *const *list, size_t n,
                                                         const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(str_or_empty(list[i]->name), name)) return list[i];
    return NULL;
}

/*
 * The attributes that apply to `node`: its own, with references to the
 * enclosing function's attributes replaced (the caller's value, else the
 * function's default, else the attribute is left out as ONNX specifies).
 */
static kiln_status resolve_attrs(importer *im, const Kiln__Onnx__NodeProto *node, const char *name,
                                 const call_ctx *ctx, attr_ref *refs, int *n_refs)
{
    int n = 0;
    for (size_t i = 0; i < node->n_attribute; i++) {
        const Kiln__Onnx__AttributeProto *a = node->attribute[i];
        const char *an = str_or_empty(a->name);
        if (!*an)
            return kiln__fail(&im->err, KILN_ERR_PARSE, "node '%s' (%s): attribute %zu has no name", name,
                              str_or_empty(node->op_type), i);
        const char *ref = str_or_empty(a->ref_attr_name);
        if (*ref) {
            if (!ctx)
                return kiln__fail(&im->err, KILN_ERR_PARSE,
                                  "node '%s' (%s): attribute '%s' refers to '%s' outside a function", name,
                                  str_or_empty(node->op_type), an, ref);
            const Kiln__Onnx__AttributeProto *val = NULL;
            for (int k = 0; k < ctx->n_attrs && !val; k++)
                if (!strcmp(ctx->attrs[k].name, ref)) val = ctx->attrs[k].a;
            if (!val) val = find_attr_proto(ctx->fn->attribute_proto, ctx->fn->n_attribute_proto, ref);
            if (!val) continue;
            if (*str_or_empty(val->ref_attr_name))
                return kiln__fail(&im->err, KILN_ERR_PARSE, "function '%s': default of attribute '%s' is a reference",
                                  str_or_empty(ctx->fn->name), ref);
            a = val;
        }
        for (int k = 0; k < n; k++)
            if (!strcmp(refs[k].name, an))
                return kiln__fail(&im->err, KILN_ERR_PARSE, "node '%s' (%s): attribute '%s' given twice", name,
                                  str_or_empty(node->op_type), an);
        refs[n].name = an;
        refs[n].a = a;
        n++;
    }
    *n_refs = n;
    return KILN_OK;
}

/* --- nodes -------------------------------------------------------------- */

static const Kiln__Onnx__FunctionProto *find_function(const importer *im, const Kiln__Onnx__NodeProto *node)
{
    const char *dom = str_or_empty(node->domain);
    for (size_t i = 0; i < im->model->n_functions; i++) {
        const Kiln__Onnx__FunctionProto *f = im->model->functions[i];
        const char *fdom = str_or_empty(f->domain);
        bool same_domain = is_default_domain(dom) ? is_default_domain(fdom) : !strcmp(dom, fdom);
        if (same_domain && !strcmp(str_or_empty(f->name), str_or_empty(node->op_type)) &&
            !strcmp(str_or_empty(f->overload), str_or_empty(node->overload)))
            return f;
    }
    return NULL;
}

static kiln_status emit_node(importer *im, const Kiln__Onnx__NodeProto *node, const char *name, call_ctx *ctx,
                             const attr_ref *refs, int n_refs)
{
    const char *op = str_or_empty(node->op_type);
    if (node->n_input > INT_MAX / 2 || node->n_output > INT_MAX / 2)
        return kiln__fail(&im->err, KILN_ERR_LIMIT, "node '%s' (%s): too many inputs or outputs", name, op);
    scratch sc = {0};
    kiln_status st = KILN_OK;
    const char **ins = scratch_keep(&sc, kiln__calloc(node->n_input, sizeof(char *)));
    const char **outs = scratch_keep(&sc, kiln__calloc(node->n_output, sizeof(char *)));
    kiln_attr_value *vals = scratch_keep(&sc, kiln__calloc((size_t)n_refs, sizeof *vals));
    if (!ins || !outs || !vals) {
        st = oom(im);
        goto done;
    }
    for (size_t i = 0; i < node->n_input; i++)
        if (!(ins[i] = map_name(im, ctx, node->input[i]))) {
            st = oom(im);
            goto done;
        }
    for (size_t i = 0; i < node->n_output; i++)
        if (!(outs[i] = map_name(im, ctx, node->output[i]))) {
            st = oom(im);
            goto done;
        }
    for (int i = 0; i < n_refs; i++)
        if ((st = convert_attr(im, name, op, &refs[i], &vals[i], &sc))) goto done;
    st = kiln_network_add_node(im->net, name, op, is_default_domain(node->domain) ? "" : node->domain,
                               (int)node->n_input, ins, (int)node->n_output, outs, n_refs, vals);
    if (st) net_error(im, st);
    /* surgeon (issue 5): the node's doc string, for the writer (top-level nodes only) */
    else if (!ctx && node->doc_string && *node->doc_string) {
        kiln_node *added = &im->net->nodes[im->net->n_nodes - 1];
        if (!(added->doc_string = kiln__strdup(node->doc_string))) st = oom(im);
    }
done:
    scratch_free(&sc);
    return st;
}

static kiln_status import_node(importer *im, const Kiln__Onnx__NodeProto *node, size_t index, call_ctx *ctx);

static kiln_status inline_function(importer *im, const Kiln__Onnx__NodeProto *node, const char *name,
                                   const Kiln__Onnx__FunctionProto *fn, const attr_ref *refs, int n_refs,
                                   call_ctx *parent)
{
    const char *fname = str_or_empty(fn->name);
    int depth = parent ? parent->depth + 1 : 1;
    if (depth > MAX_FUNCTION_DEPTH)
        return kiln__fail(&im->err, KILN_ERR_LIMIT, "node '%s': functions nest more than %d deep", name,
                          MAX_FUNCTION_DEPTH);
    for (const call_ctx *c = parent; c; c = c->parent)
        if (c->fn == fn)
            return kiln__fail(&im->err, KILN_ERR_GRAPH, "node '%s': function '%s' calls itself", name, fname);
    if (node->n_input > fn->n_input || node->n_output > fn->n_output)
        return kiln__fail(&im->err, KILN_ERR_GRAPH,
                          "node '%s' (%s): %zu inputs and %zu outputs, the function has %zu and %zu", name, fname,
                          node->n_input, node->n_output, fn->n_input, fn->n_output);
    im->inlined_nodes += fn->n_node;
    if (im->inlined_nodes > MAX_INLINED_NODES)
        return kiln__fail(&im->err, KILN_ERR_LIMIT, "inlining model functions gives more than %d nodes",
                          MAX_INLINED_NODES);

    call_ctx ctx = {.fn = fn, .attrs = refs, .n_attrs = n_refs, .prefix = name, .parent = parent, .depth = depth};
    kiln_status st = KILN_OK;
    for (size_t i = 0; i < fn->n_input && !st; i++) {
        const char *actual = i < node->n_input ? map_name(im, parent, node->input[i]) : "";
        if (!actual || !map_put(&ctx.names, fn->input[i], actual)) st = oom(im);
    }
    for (size_t i = 0; i < fn->n_output && !st; i++) {
        /* An output the caller omits still needs a name inside the body. */
        const char *actual = i < node->n_output && *node->output[i] ? map_name(im, parent, node->output[i]) : NULL;
        if (actual ? !map_put(&ctx.names, fn->output[i], actual) : !map_name(im, &ctx, fn->output[i]))
            st = oom(im);
    }
    for (size_t i = 0; i < fn->n_node && !st; i++) st = import_node(im, fn->node[i], i, &ctx);
    map_free(&ctx.names);
    return st;
}

static kiln_status import_node(importer *im, const Kiln__Onnx__NodeProto *node, size_t index, call_ctx *ctx)
{
    const char *op = str_or_empty(node->op_type);
    char gen[160];
    const char *base = str_or_empty(node->name);
    if (!*base) {
        snprintf(gen, sizeof gen, "%.120s_%zu", op, index);
        base = gen;
    }
    char *name = NULL;
    if (ctx) {
        size_t len = strlen(ctx->prefix) + strlen(base) + 2;
        name = kiln__malloc(len);
        if (!name) return oom(im);
        snprintf(name, len, "%s/%s", ctx->prefix, base);
    } else {
        name = kiln__strdup(base);
        if (!name) return oom(im);
    }
    kiln_status st = KILN_OK;
    attr_ref *refs = NULL;
    int n_refs = 0;
    if (!*op) {
        st = kiln__fail(&im->err, KILN_ERR_PARSE, "node '%s' has no op_type", name);
        goto done;
    }
    if (node->n_attribute > 4096) {
        st = kiln__fail(&im->err, KILN_ERR_LIMIT, "node '%s' (%s): %zu attributes", name, op, node->n_attribute);
        goto done;
    }
    refs = kiln__calloc(node->n_attribute, sizeof *refs);
    if (!refs) {
        st = oom(im);
        goto done;
    }
    if ((st = resolve_attrs(im, node, name, ctx, refs, &n_refs))) goto done;
    const Kiln__Onnx__FunctionProto *fn = im->model->n_functions ? find_function(im, node) : NULL;
    st = fn ? inline_function(im, node, name, fn, refs, n_refs, ctx) : emit_node(im, node, name, ctx, refs, n_refs);
done:
    free(refs);
    free(name);
    return st;
}

/* --- graph inputs, initializers, outputs -------------------------------- */

static kiln_status import_initializers(importer *im, const Kiln__Onnx__GraphProto *g, strmap *init_names)
{
    if (g->n_sparse_initializer)
        return kiln__fail(&im->err, KILN_ERR_UNSUPPORTED, "unsupported: the graph has %zu sparse initializer(s)",
                          g->n_sparse_initializer);
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Kiln__Onnx__TensorProto *tp = g->initializer[i];
        const char *name = str_or_empty(tp->name);
        if (!*name) return kiln__fail(&im->err, KILN_ERR_PARSE, "initializer %zu has no name", i);
        char what[300];
        snprintf(what, sizeof what, "initializer '%.270s'", name);
        kiln_host_tensor t;
        kiln_status st = kiln__onnx_tensor_to_host(tp, im->base_dir, what, &t, &im->err);
        if (st) return st;
        st = kiln_network_add_constant(im->net, name, t.dtype, t.rank, t.dims, t.data, t.nbytes);
        kiln_host_tensor_release(&t);
        if (st) return net_error(im, st);
        if (!map_put(init_names, name, "")) return oom(im);
    }
    return KILN_OK;
}

static kiln_status import_input(importer *im, const Kiln__Onnx__ValueInfoProto *vi)
{
    const char *name = str_or_empty(vi->name);
    const Kiln__Onnx__TypeProto *type = vi->type;
    if (!type) return kiln__fail(&im->err, KILN_ERR_PARSE, "graph input '%s' has no type", name);
    if (type->value_case == KILN__ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE)
        return kiln__fail(&im->err, KILN_ERR_UNSUPPORTED, "unsupported: graph input '%s' is a sparse tensor", name);
    if (type->value_case != KILN__ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
        return kiln__fail(&im->err, KILN_ERR_UNSUPPORTED,
                          "unsupported: graph input '%s' is not a tensor (a sequence, map, optional or opaque value)",
                          name);
    const Kiln__Onnx__TypeProto__Tensor *tt = type->tensor_type;
    char what[300];
    snprintf(what, sizeof what, "graph input '%.270s'", name);
    kiln_dtype dt;
    int32_t code = tt->has_elem_type ? tt->elem_type : 0;
    kiln_status st = KILN_OK;
    if (code == KILN_DT_STRING) dt = KILN_DT_STRING; /* the network keeps string inputs; backends refuse them */
    else if ((st = kiln__onnx_dtype(code, what, &dt, &im->err))) return st;
    if (!tt->shape)
        return kiln__fail(&im->err, KILN_ERR_UNSUPPORTED, "unsupported: %s has no shape (its rank is unknown)", what);
    if (tt->shape->n_dim > KILN_MAX_DIMS)
        return kiln__fail(&im->err, KILN_ERR_UNSUPPORTED, "unsupported: %s has %zu dims (at most %d)", what,
                          tt->shape->n_dim, KILN_MAX_DIMS);
    int rank = (int)tt->shape->n_dim;
    int64_t dims[KILN_MAX_DIMS];
    const char *syms[KILN_MAX_DIMS] = {0};
    char gen[KILN_MAX_DIMS][32];
    for (int i = 0; i < rank; i++) {
        const Kiln__Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        if (d->value_case == KILN__ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (d->dim_value < 0)
                return kiln__fail(&im->err, KILN_ERR_SHAPE, "%s: dimension %d is negative (%lld)", what, i,
                                  (long long)d->dim_value);
            dims[i] = d->dim_value;
            continue;
        }
        dims[i] = KILN_DIM_SYMBOLIC;
        if (d->value_case == KILN__ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && *str_or_empty(d->dim_param)) {
            syms[i] = d->dim_param;
            continue;
        }
        /* A dimension with neither value nor name: a fresh symbol, distinct from every named one. */
        do snprintf(gen[i], sizeof gen[i], "unk__%d", im->unk_counter++);
        while (map_get(&im->dim_params, gen[i]) && im->unk_counter < INT_MAX);
        syms[i] = gen[i];
    }
    st = kiln_network_add_input(im->net, name, dt, rank, dims, syms);
    return st ? net_error(im, st) : KILN_OK;
}

static kiln_status import_inputs(importer *im, const Kiln__Onnx__GraphProto *g, const strmap *init_names)
{
    for (size_t i = 0; i < g->n_input; i++) {
        const Kiln__Onnx__ValueInfoProto *vi = g->input[i];
        const Kiln__Onnx__TypeProto *type = vi->type;
        if (type && type->value_case == KILN__ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && type->tensor_type->shape)
            for (size_t k = 0; k < type->tensor_type->shape->n_dim; k++) {
                const Kiln__Onnx__TensorShapeProto__Dimension *d = type->tensor_type->shape->dim[k];
                if (d->value_case == KILN__ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && d->dim_param &&
                    !map_put(&im->dim_params, d->dim_param, ""))
                    return oom(im);
            }
    }
    for (size_t i = 0; i < g->n_input; i++) {
        const char *name = str_or_empty(g->input[i]->name);
        if (!*name) return kiln__fail(&im->err, KILN_ERR_PARSE, "graph input %zu has no name", i);
        /* An initializer of the same name makes the input a constant with an overridable default;
         * kiln treats it as the constant. */
        if (map_get(init_names, name)) continue;
        kiln_status st = import_input(im, g->input[i]);
        if (st) return st;
    }
    return KILN_OK;
}

static kiln_status import_outputs(importer *im, const Kiln__Onnx__GraphProto *g)
{
    for (size_t i = 0; i < g->n_output; i++) {
        const Kiln__Onnx__ValueInfoProto *vi = g->output[i];
        const char *name = str_or_empty(vi->name);
        if (!*name) return kiln__fail(&im->err, KILN_ERR_PARSE, "graph output %zu has no name", i);
        if (vi->type && vi->type->value_case != KILN__ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
            return kiln__fail(&im->err, KILN_ERR_UNSUPPORTED, "unsupported: graph output '%s' is not a dense tensor",
                              name);
        kiln_status st = kiln_network_mark_output(im->net, name);
        if (st) return net_error(im, st);
    }
    return KILN_OK;
}

/* --- model -------------------------------------------------------------- */

static kiln_status import_opset(importer *im)
{
    const Kiln__Onnx__ModelProto *m = im->model;
    int64_t opset = 0;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Kiln__Onnx__OperatorSetIdProto *o = m->opset_import[i];
        if (!is_default_domain(o->domain)) continue; /* other domains' versions are not needed by kiln's ops */
        if (!o->has_version || o->version < 1 || o->version > MAX_OPSET)
            return kiln__fail(&im->err, KILN_ERR_PARSE, "opset_import of the ONNX domain has version %lld",
                              (long long)o->version);
        if (opset && opset != o->version)
            return kiln__fail(&im->err, KILN_ERR_PARSE, "the ONNX domain is imported twice (opsets %lld and %lld)",
                              (long long)opset, (long long)o->version);
        opset = o->version;
    }
    if (!opset) {
        /* Before IR version 3 there was no opset_import and opset 1 was implied. */
        if (m->ir_version < 3) {
            opset = 1;
        } else {
            for (size_t i = 0; i < m->graph->n_node; i++)
                if (is_default_domain(m->graph->node[i]->domain) && !find_function(im, m->graph->node[i]))
                    return kiln__fail(&im->err, KILN_ERR_PARSE,
                                      "the model uses ONNX operators but imports no opset for the ONNX domain");
            return KILN_OK;
        }
    }
    kiln_status st = kiln_network_set_opset(im->net, opset);
    return st ? net_error(im, st) : KILN_OK;
}

/* Names of the main graph, so names invented while inlining functions never collide. */
static kiln_status collect_names(importer *im, const Kiln__Onnx__GraphProto *g)
{
    for (size_t i = 0; i < g->n_initializer; i++)
        if (!map_put(&im->taken_names, str_or_empty(g->initializer[i]->name), "")) return oom(im);
    for (size_t i = 0; i < g->n_input; i++)
        if (!map_put(&im->taken_names, str_or_empty(g->input[i]->name), "")) return oom(im);
    for (size_t i = 0; i < g->n_output; i++)
        if (!map_put(&im->taken_names, str_or_empty(g->output[i]->name), "")) return oom(im);
    for (size_t i = 0; i < g->n_node; i++) {
        const Kiln__Onnx__NodeProto *n = g->node[i];
        for (size_t k = 0; k < n->n_input; k++)
            if (!map_put(&im->taken_names, n->input[k], "")) return oom(im);
        for (size_t k = 0; k < n->n_output; k++)
            if (!map_put(&im->taken_names, n->output[k], "")) return oom(im);
    }
    return KILN_OK;
}

/* --- surgeon (issue 5): metadata the writer gives back -------------------- */

static bool set_str(char **dst, const char *src)
{
    free(*dst);
    *dst = NULL;
    return !src || !*src || (*dst = kiln__strdup(src)) != NULL;
}

/* The declared type of a value_info / graph output, kept on its tensor. */
static kiln_status import_decl(importer *im, const Kiln__Onnx__ValueInfoProto *vi)
{
    int t = kiln__net_find_tensor(im->net, str_or_empty(vi->name));
    if (t < 0) return KILN_OK; /* value_info of a name no node uses: nothing to keep */
    kiln_tensor *tt = &im->net->tensors[t];
    if (vi->doc_string && *vi->doc_string && !set_str(&tt->doc_string, vi->doc_string)) return oom(im);
    if (!vi->type || vi->type->value_case != KILN__ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || tt->decl) return KILN_OK;
    const Kiln__Onnx__TypeProto__Tensor *tp = vi->type->tensor_type;
    if (tp->shape && tp->shape->n_dim > KILN_MAX_DIMS) return KILN_OK;
    kiln_tensor_decl *d = kiln__calloc(1, sizeof *d);
    if (!d) return oom(im);
    d->elem_type = tp->has_elem_type ? tp->elem_type : 0;
    d->rank = tp->shape ? (int)tp->shape->n_dim : -1;
    for (int i = 0; i < d->rank; i++) {
        const Kiln__Onnx__TensorShapeProto__Dimension *dm = tp->shape->dim[i];
        d->dims[i] = -1;
        if (dm->value_case == KILN__ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) d->dims[i] = dm->dim_value;
        else if (dm->value_case == KILN__ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && dm->dim_param &&
                 *dm->dim_param && !(d->names[i] = kiln__strdup(dm->dim_param))) {
            kiln__tensor_decl_free(d);
            return oom(im);
        }
    }
    tt->decl = d;
    return KILN_OK;
}

static kiln_status import_meta(importer *im)
{
    const Kiln__Onnx__ModelProto *m = im->model;
    const Kiln__Onnx__GraphProto *g = m->graph;
    kiln_network *net = im->net;
    net->ir_version = m->ir_version;
    net->model_version = m->has_model_version ? m->model_version : 0;
    if (!set_str(&net->producer_name, m->producer_name) || !set_str(&net->producer_version, m->producer_version) ||
        !set_str(&net->model_doc, m->doc_string) || !set_str(&net->model_domain, m->domain) ||
        !set_str(&net->graph_name, g->name) || !set_str(&net->graph_doc, g->doc_string))
        return oom(im);
    if (m->n_metadata_props) {
        net->meta_keys = kiln__calloc(m->n_metadata_props, sizeof(char *));
        net->meta_values = kiln__calloc(m->n_metadata_props, sizeof(char *));
        if (!net->meta_keys || !net->meta_values) return oom(im);
        for (size_t i = 0; i < m->n_metadata_props; i++) {
            net->n_meta = (int)i + 1;
            net->meta_keys[i] = kiln__strdup(str_or_empty(m->metadata_props[i]->key));
            net->meta_values[i] = kiln__strdup(str_or_empty(m->metadata_props[i]->value));
            if (!net->meta_keys[i] || !net->meta_values[i]) return oom(im);
        }
    }
    if (m->n_opset_import) {
        net->opset_domains = kiln__calloc(m->n_opset_import, sizeof(char *));
        net->opset_versions = kiln__calloc(m->n_opset_import, sizeof(int64_t));
        if (!net->opset_domains || !net->opset_versions) return oom(im);
        for (size_t i = 0; i < m->n_opset_import; i++) {
            net->n_opsets = (int)i + 1;
            net->opset_versions[i] = m->opset_import[i]->version;
            if (!(net->opset_domains[i] = kiln__strdup(str_or_empty(m->opset_import[i]->domain)))) return oom(im);
        }
    }
    kiln_status st = KILN_OK;
    for (size_t i = 0; i < g->n_output && !st; i++) st = import_decl(im, g->output[i]);
    for (size_t i = 0; i < g->n_value_info && !st; i++) st = import_decl(im, g->value_info[i]);
    for (size_t i = 0; i < g->n_input && !st; i++) {
        const Kiln__Onnx__ValueInfoProto *vi = g->input[i];
        int t = vi->doc_string && *vi->doc_string ? kiln__net_find_tensor(net, str_or_empty(vi->name)) : -1;
        if (t >= 0 && !set_str(&net->tensors[t].doc_string, vi->doc_string)) st = oom(im);
    }
    for (size_t i = 0; i < g->n_initializer && !st; i++) {
        const Kiln__Onnx__TensorProto *tp = g->initializer[i];
        int t = tp->doc_string && *tp->doc_string ? kiln__net_find_tensor(net, str_or_empty(tp->name)) : -1;
        if (t >= 0 && !set_str(&net->tensors[t].doc_string, tp->doc_string)) st = oom(im);
    }
    return st;
}

static kiln_status import_model(importer *im)
{
    const Kiln__Onnx__ModelProto *m = im->model;
    if (!m->has_ir_version)
        return kiln__fail(&im->err, KILN_ERR_PARSE, "'%s' is not a valid ONNX model: it has no ir_version", im->path);
    if (m->ir_version < 1 || m->ir_version > MAX_IR_VERSION)
        return kiln__fail(&im->err, KILN_ERR_PARSE, "'%s' is not a valid ONNX model: ir_version %lld is not 1..%d",
                          im->path, (long long)m->ir_version, MAX_IR_VERSION);
    const Kiln__Onnx__GraphProto *g = m->graph;
    if (!g) return kiln__fail(&im->err, KILN_ERR_PARSE, "'%s' is not a valid ONNX model: it has no graph", im->path);
    kiln_status st = import_opset(im);
    if (st) return st;
    if (m->n_functions && (st = collect_names(im, g))) return st;

    strmap init_names = {0};
    st = import_initializers(im, g, &init_names);
    if (!st) st = import_inputs(im, g, &init_names);
    map_free(&init_names);
    if (st) return st;
    for (size_t i = 0; i < g->n_node; i++)
        if ((st = import_node(im, g->node[i], i, NULL))) return st;
    st = import_outputs(im, g);
    return st ? st : import_meta(im);
}

/* --- NUL bytes in names -------------------------------------------------- */

static bool wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (int s = 0; s < 64 && *p < end; s += 7) {
        uint8_t c = *(*p)++;
        r |= (uint64_t)(c & 0x7f) << s;
        if (!(c & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

/* Metadata strings are not names; a NUL in them is harmless truncation. */
static bool is_metadata(const ProtobufCMessageDescriptor *desc, const ProtobufCFieldDescriptor *fd)
{
    return desc == &kiln__onnx__model_proto__descriptor || !strcmp(fd->name, "denotation") ||
           !strcmp(fd->name, "doc_string") || desc == &kiln__onnx__string_string_entry_proto__descriptor;
}

/*
 * protobuf-c hands string fields over as C strings, so a name "x\0y" would silently become "x"
 * (and two different names the same one). The bytes protobuf-c already accepted are walked once
 * more with the generated descriptors to refuse such names up front. The schema is not recursive,
 * so neither is this walk beyond its fixed depth.
 */
kiln_status kiln__onnx_check_names(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                                   const char *what, kiln_err *err)
{
    const uint8_t *p = buf, *end = buf + len;
    while (p < end) {
        uint64_t key, v;
        /* Anything malformed was refused by the unpacker already: stop quietly. */
        if (!wire_varint(&p, end, &key)) return KILN_OK;
        switch (key & 7) {
        case 0:
            if (!wire_varint(&p, end, &v)) return KILN_OK;
            continue;
        case 1:
            if (end - p < 8) return KILN_OK;
            p += 8;
            continue;
        case 5:
            if (end - p < 4) return KILN_OK;
            p += 4;
            continue;
        case 2: break;
        default: return KILN_OK;
        }
        if (!wire_varint(&p, end, &v) || v > (uint64_t)(end - p)) return KILN_OK;
        const uint8_t *field = p;
        p += v;
        const ProtobufCFieldDescriptor *fd =
            (key >> 3) <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(desc, (unsigned)(key >> 3)) : NULL;
        if (!fd) continue;
        if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
            kiln_status st = kiln__onnx_check_names(fd->descriptor, field, (size_t)v, what, err);
            if (st) return st;
        } else if (fd->type == PROTOBUF_C_TYPE_STRING && memchr(field, 0, (size_t)v) && !is_metadata(desc, fd)) {
            /* The part before the NUL, printable ASCII only: the message stays one line. */
            char shown[81];
            size_t n = 0;
            for (; n < v && n + 1 < sizeof shown && field[n]; n++)
                shown[n] = field[n] >= 0x20 && field[n] < 0x7f ? (char)field[n] : '?';
            shown[n] = 0;
            return kiln__fail(err, KILN_ERR_PARSE, "%s: %s.%s '%s\\0...' contains a NUL byte", what,
                              desc->short_name, fd->name, shown);
        }
    }
    return KILN_OK;
}

kiln_status kiln_onnx_parse(const char *path, const kiln_onnx_options *opts, kiln_network **out)
{
    if (!out) {
        kiln__set_last_error("kiln_onnx_parse: out is NULL");
        return KILN_ERR_INVALID_ARG;
    }
    *out = NULL;
    if (!path) {
        kiln__set_last_error("kiln_onnx_parse: path is NULL");
        return KILN_ERR_INVALID_ARG;
    }
    importer im = {.path = path};
    uint64_t max_bytes = opts && opts->max_file_bytes ? opts->max_file_bytes : DEFAULT_MAX_FILE_BYTES;
    uint8_t *bytes = NULL;
    size_t len = 0;
    Kiln__Onnx__ModelProto *model = NULL;
    kiln_status st = kiln__read_file(path, max_bytes, &bytes, &len, &im.err);
    if (st) goto done;
    model = kiln__onnx__model_proto__unpack(NULL, len, bytes);
    if (!model) {
        free(bytes);
        st = kiln__fail(&im.err, KILN_ERR_PARSE, "'%s' is not a valid ONNX model: protobuf parse failed", path);
        goto done;
    }
    char what[600];
    snprintf(what, sizeof what, "'%.500s' is not a valid ONNX model", path);
    st = kiln__onnx_check_names(&kiln__onnx__model_proto__descriptor, bytes, len, what, &im.err);
    free(bytes);
    if (st) goto done;
    im.model = model;
    im.base_dir = kiln__onnx_dirname(path);
    if (!im.base_dir) {
        st = oom(&im);
        goto done;
    }
    if ((st = kiln_network_create(&im.net))) {
        kiln__fail(&im.err, st, "%s", kiln_last_error());
        goto done;
    }
    st = import_model(&im);
done:
    if (model) kiln__onnx__model_proto__free_unpacked(model, NULL);
    free(im.base_dir);
    map_free(&im.taken_names);
    map_free(&im.dim_params);
    if (st) {
        kiln_network_free(im.net);
        kiln__set_last_error(im.err.msg);
        return st;
    }
    *out = im.net;
    return KILN_OK;
}
