/*
 * kiln network -> ONNX ModelProto (kiln surgeon, issue 5).
 *
 * The protobuf structs are built over the network's own memory (names, constant
 * data) where possible; what has to be made (dims, type protos, strings of
 * symbolic dims) is kept in one list of allocations freed at the end.
 *
 * Types written: graph inputs from the network (so overridden shapes show);
 * outputs and value_info from the inferred type where known, else what the
 * file declared (kiln_tensor.decl), dims merged so symbolic names survive.
 */
#include "onnx_internal.h"
#include "../ir/ir.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_IR_VERSION 8
#define DEFAULT_THRESHOLD 1024
#define MAX_PROTO_BYTES ((size_t)INT32_MAX)

typedef struct writer {
    const kiln_network *net;
    kiln_err err;
    void **keep;
    size_t n_keep, cap_keep;
    /* external data */
    bool external;
    size_t threshold;
    const char *ext_name;
    const char *ext_path; /* opened (as a temporary beside it) at the first external tensor */
    char *ext_tmp;
    int ext_fd;
    uint64_t ext_off;
} writer;

static void *keep(writer *w, void *p)
{
    if (!p) return NULL;
    if (w->n_keep == w->cap_keep) {
        size_t cap = w->cap_keep ? w->cap_keep * 2 : 256;
        void **k = kiln__realloc(w->keep, cap * sizeof *k);
        if (!k) {
            free(p);
            return NULL;
        }
        w->keep = k;
        w->cap_keep = cap;
    }
    w->keep[w->n_keep++] = p;
    return p;
}

static void *wcalloc(writer *w, size_t n, size_t size) { return keep(w, kiln__calloc(n ? n : 1, size)); }

static char *wstrdup(writer *w, const char *s) { return keep(w, kiln__strdup(s ? s : "")); }

static kiln_status oom(writer *w) { return kiln__fail(&w->err, KILN_ERR_OUT_OF_MEMORY, "out of memory writing ONNX"); }

/* --- tensors ------------------------------------------------------------- */

/* Writes len bytes to fd, all of them. */
static bool write_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len) {
        ssize_t n = write(fd, p, len > (1u << 30) ? (1u << 30) : len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static int open_temp(const char *path, char **tmp_out, kiln_err *err);

static kiln_status make_tensor(writer *w, const char *name, const kiln_value *v, bool allow_external,
                               Kiln__Onnx__TensorProto **out)
{
    Kiln__Onnx__TensorProto *tp = wcalloc(w, 1, sizeof *tp);
    if (!tp) return oom(w);
    kiln__onnx__tensor_proto__init(tp);
    if (v->shape.rank < 0 || !kiln__shape_is_const(&v->shape))
        return kiln__fail(&w->err, KILN_ERR_INTERNAL, "tensor '%s': constant without a fixed shape", name ? name : "");
    tp->n_dims = (size_t)v->shape.rank;
    tp->dims = wcalloc(w, tp->n_dims, sizeof(int64_t));
    if (!tp->dims) return oom(w);
    for (int i = 0; i < v->shape.rank; i++) tp->dims[i] = v->shape.d[i].add;
    tp->has_data_type = 1;
    tp->data_type = (int32_t)v->dtype;
    if (name) tp->name = (char *)name;
    if (allow_external && w->external && v->nbytes >= w->threshold) {
        if (w->ext_fd < 0 && (w->ext_fd = open_temp(w->ext_path, &w->ext_tmp, &w->err)) < 0) return KILN_ERR_IO;
        /* 64-byte alignment lets readers map the data file directly. */
        uint64_t off = (w->ext_off + 63) & ~(uint64_t)63;
        static const uint8_t zeros[64];
        if (off > w->ext_off && !write_all(w->ext_fd, zeros, (size_t)(off - w->ext_off)))
            return kiln__fail(&w->err, KILN_ERR_IO, "cannot write external data '%s': %s", w->ext_name, strerror(errno));
        if (!write_all(w->ext_fd, v->data, v->nbytes))
            return kiln__fail(&w->err, KILN_ERR_IO, "cannot write external data '%s': %s", w->ext_name, strerror(errno));
        w->ext_off = off + v->nbytes;
        Kiln__Onnx__StringStringEntryProto **e = wcalloc(w, 3, sizeof *e);
        Kiln__Onnx__StringStringEntryProto *es = wcalloc(w, 3, sizeof *es);
        char *offs = wcalloc(w, 1, 32), *lens = wcalloc(w, 1, 32);
        if (!e || !es || !offs || !lens) return oom(w);
        snprintf(offs, 32, "%llu", (unsigned long long)off);
        snprintf(lens, 32, "%llu", (unsigned long long)v->nbytes);
        const char *keys[3] = {"location", "offset", "length"};
        const char *vals[3] = {w->ext_name, offs, lens};
        for (int i = 0; i < 3; i++) {
            kiln__onnx__string_string_entry_proto__init(&es[i]);
            es[i].key = (char *)keys[i];
            es[i].value = (char *)vals[i];
            e[i] = &es[i];
        }
        tp->n_external_data = 3;
        tp->external_data = e;
        tp->has_data_location = 1;
        tp->data_location = KILN__ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    } else {
        tp->has_raw_data = 1;
        tp->raw_data.len = v->nbytes;
        tp->raw_data.data = v->nbytes ? v->data : NULL;
    }
    *out = tp;
    return KILN_OK;
}

/* --- types --------------------------------------------------------------- */

static bool dim_is_pure_sym(kiln_dim d) { return d.sym >= 0 && d.mul == 1 && d.add == 0 && d.div == 1; }

/*
 * One dim: a constant from inference wins; else the declared value or name; else
 * a pure symbol's name; else the symbolic expression as text (consistent names
 * for equal expressions); else unknown.
 */
static kiln_status set_dim(writer *w, Kiln__Onnx__TensorShapeProto__Dimension *dm, const kiln_dim *d,
                           const kiln_tensor_decl *decl, int i)
{
    kiln__onnx__tensor_shape_proto__dimension__init(dm);
    if (d && kiln__dim_is_const(*d)) {
        dm->value_case = KILN__ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        dm->dim_value = d->add;
        return KILN_OK;
    }
    if (decl && decl->names[i]) {
        dm->value_case = KILN__ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
        dm->dim_param = decl->names[i];
        return KILN_OK;
    }
    if (decl && decl->dims[i] >= 0 && (!d || d->sym == KILN_SYM_UNKNOWN)) {
        dm->value_case = KILN__ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        dm->dim_value = decl->dims[i];
        return KILN_OK;
    }
    if (d && d->sym >= 0 && d->sym < w->net->n_syms) {
        dm->value_case = KILN__ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
        if (dim_is_pure_sym(*d)) {
            dm->dim_param = w->net->syms[d->sym];
        } else {
            char buf[256];
            kiln__dim_str(w->net, *d, buf, sizeof buf);
            if (!(dm->dim_param = wstrdup(w, buf))) return oom(w);
        }
    }
    return KILN_OK;
}

/* ValueInfoProto for tensor t; *out NULL when nothing is known of its type. */
static kiln_status make_value_info(writer *w, const kiln_tensor *t, bool from_net_only, Kiln__Onnx__ValueInfoProto **out)
{
    *out = NULL;
    const kiln_tensor_decl *decl = from_net_only ? NULL : t->decl;
    int32_t elem = t->v.dtype ? (int32_t)t->v.dtype : decl ? decl->elem_type : 0;
    if (!elem) return KILN_OK;
    int rank = t->v.shape.rank;
    if (decl && rank >= 0 && decl->rank != rank) decl = NULL; /* the tensor changed: its declaration is stale */
    if (decl && t->v.dtype && decl->elem_type && decl->elem_type != (int32_t)t->v.dtype) decl = NULL;
    if (rank < 0 && decl) rank = decl->rank;
    Kiln__Onnx__ValueInfoProto *vi = wcalloc(w, 1, sizeof *vi);
    Kiln__Onnx__TypeProto *tp = wcalloc(w, 1, sizeof *tp);
    Kiln__Onnx__TypeProto__Tensor *tt = wcalloc(w, 1, sizeof *tt);
    if (!vi || !tp || !tt) return oom(w);
    kiln__onnx__value_info_proto__init(vi);
    kiln__onnx__type_proto__init(tp);
    kiln__onnx__type_proto__tensor__init(tt);
    vi->name = t->name;
    if (t->doc_string) vi->doc_string = t->doc_string;
    vi->type = tp;
    tp->value_case = KILN__ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = elem;
    if (rank >= 0) {
        Kiln__Onnx__TensorShapeProto *sp = wcalloc(w, 1, sizeof *sp);
        Kiln__Onnx__TensorShapeProto__Dimension **dl = wcalloc(w, (size_t)rank, sizeof *dl);
        Kiln__Onnx__TensorShapeProto__Dimension *ds = wcalloc(w, (size_t)rank, sizeof *ds);
        if (!sp || !dl || !ds) return oom(w);
        kiln__onnx__tensor_shape_proto__init(sp);
        sp->n_dim = (size_t)rank;
        sp->dim = dl;
        for (int i = 0; i < rank; i++) {
            dl[i] = &ds[i];
            kiln_status s = set_dim(w, &ds[i], t->v.shape.rank >= 0 ? &t->v.shape.d[i] : NULL, decl, i);
            if (s) return s;
        }
        tt->shape = sp;
    }
    *out = vi;
    return KILN_OK;
}

/* --- nodes --------------------------------------------------------------- */

static kiln_status make_attr(writer *w, const kiln_node *n, const kiln_attr *a, Kiln__Onnx__AttributeProto **out)
{
    Kiln__Onnx__AttributeProto *ap = wcalloc(w, 1, sizeof *ap);
    if (!ap) return oom(w);
    kiln__onnx__attribute_proto__init(ap);
    ap->name = a->name;
    ap->has_type = 1;
    switch (a->type) {
    case KILN_ATTR_FLOAT:
        ap->type = KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
        ap->has_f = 1;
        ap->f = a->f;
        break;
    case KILN_ATTR_INT:
        ap->type = KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
        ap->has_i = 1;
        ap->i = a->i;
        break;
    case KILN_ATTR_STRING:
        ap->type = KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
        ap->has_s = 1;
        ap->s.data = (uint8_t *)a->s;
        ap->s.len = a->s ? a->s_len : 0;
        break;
    case KILN_ATTR_FLOATS:
        ap->type = KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
        ap->n_floats = (size_t)a->n;
        ap->floats = a->floats;
        break;
    case KILN_ATTR_INTS:
        ap->type = KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
        ap->n_ints = (size_t)a->n;
        ap->ints = a->ints;
        break;
    case KILN_ATTR_STRINGS: {
        ap->type = KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
        ProtobufCBinaryData *b = wcalloc(w, (size_t)a->n, sizeof *b);
        if (!b) return oom(w);
        for (int64_t i = 0; i < a->n; i++) {
            b[i].data = (uint8_t *)a->strings[i];
            b[i].len = a->strings[i] ? strlen(a->strings[i]) : 0;
        }
        ap->n_strings = (size_t)a->n;
        ap->strings = b;
        break;
    }
    case KILN_ATTR_TENSOR: {
        ap->type = KILN__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
        if (!a->t)
            return kiln__fail(&w->err, KILN_ERR_INTERNAL, "node '%s': attribute '%s' has no tensor", n->name, a->name);
        kiln_status s = make_tensor(w, NULL, a->t, false, &ap->t);
        if (s) return s;
        break;
    }
    default:
        return kiln__fail(&w->err, KILN_ERR_UNSUPPORTED,
                          "node '%s' (%s): attribute '%s' has a type the ONNX writer does not support (%d)", n->name,
                          n->op_type, a->name, (int)a->type);
    }
    *out = ap;
    return KILN_OK;
}

static kiln_status make_node(writer *w, const kiln_node *n, Kiln__Onnx__NodeProto **out)
{
    const kiln_network *net = w->net;
    Kiln__Onnx__NodeProto *np = wcalloc(w, 1, sizeof *np);
    char **ins = wcalloc(w, (size_t)n->n_in, sizeof(char *));
    char **outs = wcalloc(w, (size_t)n->n_out, sizeof(char *));
    Kiln__Onnx__AttributeProto **attrs = wcalloc(w, (size_t)n->n_attrs, sizeof *attrs);
    if (!np || !ins || !outs || !attrs) return oom(w);
    kiln__onnx__node_proto__init(np);
    static char empty[] = "";
    for (int j = 0; j < n->n_in; j++) ins[j] = n->in[j] >= 0 ? net->tensors[n->in[j]].name : empty;
    for (int j = 0; j < n->n_out; j++) outs[j] = n->out[j] >= 0 ? net->tensors[n->out[j]].name : empty;
    np->n_input = (size_t)n->n_in;
    np->input = ins;
    np->n_output = (size_t)n->n_out;
    np->output = outs;
    np->name = n->name;
    np->op_type = n->op_type;
    if (n->domain && *n->domain) np->domain = n->domain;
    if (n->doc_string) np->doc_string = n->doc_string;
    for (int a = 0; a < n->n_attrs; a++) {
        kiln_status s = make_attr(w, n, &n->attrs[a], &attrs[a]);
        if (s) return s;
    }
    np->n_attribute = (size_t)n->n_attrs;
    np->attribute = attrs;
    *out = np;
    return KILN_OK;
}

/* --- model --------------------------------------------------------------- */

static bool is_default_domain(const char *d) { return !d || !*d || !strcmp(d, "ai.onnx"); }

static kiln_status make_opsets(writer *w, Kiln__Onnx__ModelProto *m)
{
    const kiln_network *net = w->net;
    int cap = net->n_opsets + net->n_nodes + 1;
    Kiln__Onnx__OperatorSetIdProto **list = wcalloc(w, (size_t)cap, sizeof *list);
    Kiln__Onnx__OperatorSetIdProto *os = wcalloc(w, (size_t)cap, sizeof *os);
    if (!list || !os) return oom(w);
    int n = 0;
    bool have_default = false;
    for (int i = 0; i < net->n_opsets; i++) {
        kiln__onnx__operator_set_id_proto__init(&os[n]);
        os[n].domain = net->opset_domains[i];
        os[n].has_version = 1;
        os[n].version = net->opset_versions[i];
        have_default |= is_default_domain(net->opset_domains[i]);
        list[n] = &os[n];
        n++;
    }
    if (!have_default) {
        kiln__onnx__operator_set_id_proto__init(&os[n]);
        os[n].domain = (char *)"";
        os[n].has_version = 1;
        os[n].version = net->opset;
        list[n] = &os[n];
        n++;
    }
    /* Every other domain a node uses needs an import (kiln's fused ops: domain "kiln"). */
    for (int i = 0; i < net->n_nodes; i++) {
        const char *d = net->nodes[i].domain;
        if (is_default_domain(d)) continue;
        bool found = false;
        for (int k = 0; k < n && !found; k++) found = os[k].domain && !strcmp(os[k].domain, d);
        if (found) continue;
        kiln__onnx__operator_set_id_proto__init(&os[n]);
        os[n].domain = (char *)d;
        os[n].has_version = 1;
        os[n].version = 1;
        list[n] = &os[n];
        n++;
    }
    m->n_opset_import = (size_t)n;
    m->opset_import = list;
    return KILN_OK;
}

static kiln_status make_model(writer *w, Kiln__Onnx__ModelProto *m, Kiln__Onnx__GraphProto *g)
{
    const kiln_network *net = w->net;
    kiln__onnx__model_proto__init(m);
    kiln__onnx__graph_proto__init(g);
    m->has_ir_version = 1;
    m->ir_version = net->ir_version > 0 ? net->ir_version : DEFAULT_IR_VERSION;
    static char producer[] = "kiln";
    static char version[32];
    snprintf(version, sizeof version, "%d.%d.%d", KILN_VERSION_MAJOR, KILN_VERSION_MINOR, KILN_VERSION_PATCH);
    m->producer_name = net->producer_name ? net->producer_name : producer;
    m->producer_version = net->producer_name ? net->producer_version : version;
    m->domain = net->model_domain;
    if (net->model_version) {
        m->has_model_version = 1;
        m->model_version = net->model_version;
    }
    m->doc_string = net->model_doc;
    if (net->n_meta) {
        Kiln__Onnx__StringStringEntryProto **l = wcalloc(w, (size_t)net->n_meta, sizeof *l);
        Kiln__Onnx__StringStringEntryProto *e = wcalloc(w, (size_t)net->n_meta, sizeof *e);
        if (!l || !e) return oom(w);
        for (int i = 0; i < net->n_meta; i++) {
            kiln__onnx__string_string_entry_proto__init(&e[i]);
            e[i].key = net->meta_keys[i];
            e[i].value = net->meta_values[i];
            l[i] = &e[i];
        }
        m->n_metadata_props = (size_t)net->n_meta;
        m->metadata_props = l;
    }
    kiln_status s = make_opsets(w, m);
    if (s) return s;
    m->graph = g;
    static char gname[] = "kiln";
    g->name = net->graph_name ? net->graph_name : gname;
    g->doc_string = net->graph_doc;

    g->node = wcalloc(w, (size_t)net->n_nodes, sizeof *g->node);
    if (!g->node) return oom(w);
    for (int i = 0; i < net->n_nodes; i++)
        if ((s = make_node(w, &net->nodes[i], &g->node[i]))) return s;
    g->n_node = (size_t)net->n_nodes;

    int n_const = 0;
    for (int t = 0; t < net->n_tensors; t++) n_const += net->tensors[t].kind == KILN_TENSOR_CONSTANT;
    g->initializer = wcalloc(w, (size_t)n_const, sizeof *g->initializer);
    if (!g->initializer) return oom(w);
    for (int t = 0; t < net->n_tensors; t++) {
        const kiln_tensor *tt = &net->tensors[t];
        if (tt->kind != KILN_TENSOR_CONSTANT) continue;
        Kiln__Onnx__TensorProto *tp;
        if ((s = make_tensor(w, tt->name, &tt->v, true, &tp))) return s;
        if (tt->doc_string) tp->doc_string = tt->doc_string;
        g->initializer[g->n_initializer++] = tp;
    }

    /* Before IR version 4 every initializer had to be a graph input too. */
    bool init_inputs = m->ir_version < 4;
    g->input = wcalloc(w, (size_t)(net->n_inputs + (init_inputs ? n_const : 0)), sizeof *g->input);
    if (!g->input) return oom(w);
    for (int i = 0; i < net->n_inputs; i++) {
        const kiln_tensor *tt = &net->tensors[net->inputs[i]];
        Kiln__Onnx__ValueInfoProto *vi;
        if ((s = make_value_info(w, tt, true, &vi))) return s;
        if (!vi) return kiln__fail(&w->err, KILN_ERR_INTERNAL, "graph input '%s' has no type", tt->name);
        g->input[g->n_input++] = vi;
    }
    for (int t = 0; init_inputs && t < net->n_tensors; t++) {
        const kiln_tensor *tt = &net->tensors[t];
        if (tt->kind != KILN_TENSOR_CONSTANT) continue;
        Kiln__Onnx__ValueInfoProto *vi;
        if ((s = make_value_info(w, tt, true, &vi))) return s;
        if (vi) g->input[g->n_input++] = vi;
    }

    g->output = wcalloc(w, (size_t)net->n_outputs, sizeof *g->output);
    if (!g->output) return oom(w);
    for (int i = 0; i < net->n_outputs; i++) {
        const kiln_tensor *tt = &net->tensors[net->outputs[i]];
        Kiln__Onnx__ValueInfoProto *vi;
        if ((s = make_value_info(w, tt, false, &vi))) return s;
        if (!vi) {
            /* Nothing known of its type: a name only (allowed by the format, readers infer it). */
            vi = wcalloc(w, 1, sizeof *vi);
            if (!vi) return oom(w);
            kiln__onnx__value_info_proto__init(vi);
            vi->name = tt->name;
        }
        g->output[g->n_output++] = vi;
    }

    g->value_info = wcalloc(w, (size_t)net->n_tensors, sizeof *g->value_info);
    if (!g->value_info) return oom(w);
    for (int t = 0; t < net->n_tensors; t++) {
        const kiln_tensor *tt = &net->tensors[t];
        /* Initializers keep the value_info the file gave them (PyTorch's dynamo exporter writes it). */
        bool computed = tt->kind == KILN_TENSOR_ACTIVATION && tt->producer >= 0;
        if (tt->is_output || !(computed || (tt->kind == KILN_TENSOR_CONSTANT && tt->decl))) continue;
        Kiln__Onnx__ValueInfoProto *vi;
        if ((s = make_value_info(w, tt, false, &vi))) return s;
        if (vi) g->value_info[g->n_value_info++] = vi;
    }
    return KILN_OK;
}

/* --- atomic files ---------------------------------------------------------- */

/* A temporary file beside `path` (same folder, so rename is atomic); -1 with err set. */
static int open_temp(const char *path, char **tmp_out, kiln_err *err)
{
    static unsigned counter;
    size_t len = strlen(path) + 48;
    char *tmp = kiln__malloc(len);
    if (!tmp) {
        kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        return -1;
    }
    int fd = -1;
    for (int tries = 0; tries < 100 && fd < 0; tries++) {
        snprintf(tmp, len, "%s.tmp%ld.%u", path, (long)getpid(), counter++);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        kiln__fail(err, KILN_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    *tmp_out = tmp;
    return fd;
}

/* fsync + close; false (errno set) on failure. fd is closed either way. */
static bool finish_fd(int fd)
{
    bool ok = fsync(fd) == 0;
    int e = errno;
    if (close(fd) != 0 && ok) return false;
    errno = e;
    return ok;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

kiln_status kiln_onnx_write(const kiln_network *net, const char *path, const kiln_onnx_write_options *opts)
{
    if (!net || !path || !*path) {
        kiln__set_last_error("kiln_onnx_write: network or path missing");
        return KILN_ERR_INVALID_ARG;
    }
    if (opts && opts->struct_size != sizeof *opts) {
        kiln__set_last_error("kiln_onnx_write: options struct_size does not match this library");
        return KILN_ERR_INVALID_ARG;
    }
    writer w;
    memset(&w, 0, sizeof w);
    w.net = net;
    /* Outputs need a type in ONNX; when the network has not been through shape inference
     * and the file declared none, infer on a copy (the caller's network stays const). */
    kiln_network *inferred = NULL;
    for (int i = 0; i < net->n_outputs; i++) {
        const kiln_tensor *t = &net->tensors[net->outputs[i]];
        if (t->v.dtype || (t->decl && t->decl->elem_type)) continue;
        kiln_err e;
        if (!kiln__net_clone(net, &inferred, &e)) {
            kiln__net_infer_shapes(inferred, &e); /* best effort: what it cannot type stays untyped */
            w.net = inferred;
        }
        break;
    }
    w.ext_fd = -1;
    kiln_status s = KILN_OK;
    char *tmp = NULL, *ext_path = NULL, *ext_name = NULL;
    uint8_t *buf = NULL;
    int fd = -1;
    if (opts && opts->external_data) {
        w.external = true;
        w.threshold = opts->external_threshold ? opts->external_threshold : DEFAULT_THRESHOLD;
        const char *bn = base_name(path);
        size_t len = strlen(bn) + 8;
        ext_name = kiln__malloc(len);
        if (!ext_name) {
            s = oom(&w);
            goto done;
        }
        if (opts->external_file && *opts->external_file) {
            free(ext_name);
            ext_name = kiln__strdup(opts->external_file);
        } else {
            snprintf(ext_name, len, "%s.data", bn);
        }
        if (!ext_name) {
            s = oom(&w);
            goto done;
        }
        if (strchr(ext_name, '/') || !strcmp(ext_name, "..") || !strcmp(ext_name, ".")) {
            s = kiln__fail(&w.err, KILN_ERR_INVALID_ARG, "external data file '%s' must be a plain file name", ext_name);
            goto done;
        }
        char *dir = kiln__onnx_dirname(path);
        size_t plen = (dir ? strlen(dir) : 0) + strlen(ext_name) + 2;
        ext_path = dir ? kiln__malloc(plen) : NULL;
        if (!ext_path) {
            free(dir);
            s = oom(&w);
            goto done;
        }
        snprintf(ext_path, plen, "%s/%s", dir, ext_name);
        free(dir);
        w.ext_name = ext_name;
        w.ext_path = ext_path;
    }
    Kiln__Onnx__ModelProto m;
    Kiln__Onnx__GraphProto g;
    if ((s = make_model(&w, &m, &g))) goto done;
    size_t len = protobuf_c_message_get_packed_size(&m.base);
    if (len > MAX_PROTO_BYTES) {
        s = kiln__fail(&w.err, KILN_ERR_LIMIT,
                       "'%s': the model would be %zu bytes, over protobuf's 2 GiB: write the weights as external data",
                       path, len);
        goto done;
    }
    if (!(buf = kiln__malloc(len))) {
        s = oom(&w);
        goto done;
    }
    protobuf_c_message_pack(&m.base, buf);
    if ((fd = open_temp(path, &tmp, &w.err)) < 0) {
        s = KILN_ERR_IO;
        goto done;
    }
    if (!write_all(fd, buf, len) || !finish_fd(fd)) {
        fd = -1;
        s = kiln__fail(&w.err, KILN_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        goto done;
    }
    fd = -1;
    bool ext_written = w.ext_fd >= 0;
    if (w.ext_fd >= 0) {
        int efd = w.ext_fd;
        w.ext_fd = -1;
        if (!finish_fd(efd) || rename(w.ext_tmp, ext_path) != 0) {
            s = kiln__fail(&w.err, KILN_ERR_IO, "cannot write '%s': %s", ext_path, strerror(errno));
            goto done;
        }
        free(w.ext_tmp);
        w.ext_tmp = NULL;
    }
    if (rename(tmp, path) != 0) {
        s = kiln__fail(&w.err, KILN_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        if (ext_written) remove(ext_path); /* the data file belongs to a model that was not written */
        goto done;
    }
done:
    if (fd >= 0) close(fd);
    if (w.ext_fd >= 0) close(w.ext_fd);
    if (tmp) {
        if (s) remove(tmp);
        free(tmp);
    }
    if (w.ext_tmp) {
        remove(w.ext_tmp);
        free(w.ext_tmp);
    }
    free(ext_path);
    free(ext_name);
    free(buf);
    for (size_t i = 0; i < w.n_keep; i++) free(w.keep[i]);
    free(w.keep);
    kiln_network_free(inferred);
    if (s) kiln__set_last_error(w.err.msg);
    return s;
}
