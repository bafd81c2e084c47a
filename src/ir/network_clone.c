/* Deep copy of a network, rebuilt through the public network API. */
#include "ir.h"
#include "../plugin/plugin.h" /* plugin nodes (issue 4) */
#include <stdlib.h>
#include <string.h>

kiln_attr_value *kiln__node_attr_values(const kiln_node *n, kiln_host_tensor *tensors)
{
    kiln_attr_value *av = kiln__calloc((size_t)n->n_attrs + 1, sizeof *av);
    if (!av) return NULL;
    for (int a = 0; a < n->n_attrs; a++) {
        const kiln_attr *at = &n->attrs[a];
        av[a] = (kiln_attr_value){.name = at->name, .type = at->type, .i = at->i, .f = at->f, .s = at->s,
                                  .s_len = at->s_len, .ints = at->ints, .floats = at->floats,
                                  .strings = (const char *const *)at->strings, .n = at->n};
        if (at->type == KILN_ATTR_TENSOR && at->t) {
            kiln_host_tensor *h = &tensors[a];
            memset(h, 0, sizeof *h);
            h->dtype = at->t->dtype;
            h->rank = at->t->shape.rank;
            for (int d = 0; d < h->rank; d++) h->dims[d] = at->t->shape.d[d].add;
            h->data = at->t->data;
            h->nbytes = at->t->nbytes;
            av[a].t = h;
        }
    }
    return av;
}

static kiln_status copy_fail(kiln_network *dst, kiln_err *err, kiln_status s)
{
    kiln__fail(err, s, "copying network: %s", dst->last_error);
    kiln_network_free(dst);
    return s;
}

kiln_status kiln__net_clone(const kiln_network *src, kiln_network **out, kiln_err *err)
{
    *out = NULL;
    kiln_network *dst;
    if (kiln_network_create(&dst)) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    dst->opset = src->opset;
    kiln_status s;
    for (int i = 0; i < src->n_inputs; i++) {
        const kiln_tensor *t = &src->tensors[src->inputs[i]];
        int64_t dims[KILN_MAX_DIMS];
        const char *syms[KILN_MAX_DIMS];
        for (int d = 0; d < t->v.shape.rank; d++) {
            kiln_dim dd = t->v.shape.d[d];
            dims[d] = kiln__dim_is_const(dd) ? dd.add : KILN_DIM_SYMBOLIC;
            syms[d] = dd.sym >= 0 ? src->syms[dd.sym] : NULL;
        }
        if ((s = kiln_network_add_input(dst, t->name, t->v.dtype, t->v.shape.rank, dims, syms))) return copy_fail(dst, err, s);
    }
    for (int i = 0; i < src->n_tensors; i++) {
        const kiln_tensor *t = &src->tensors[i];
        if (t->kind != KILN_TENSOR_CONSTANT) continue;
        int64_t dims[KILN_MAX_DIMS];
        for (int d = 0; d < t->v.shape.rank; d++) dims[d] = t->v.shape.d[d].add;
        if ((s = kiln_network_add_constant(dst, t->name, t->v.dtype, t->v.shape.rank, dims, t->v.data, t->v.nbytes)))
            return copy_fail(dst, err, s);
    }
    for (int i = 0; i < src->n_nodes; i++) {
        const kiln_node *n = &src->nodes[i];
        const char **ins = kiln__calloc((size_t)n->n_in + 1, sizeof *ins);
        const char **outs = kiln__calloc((size_t)n->n_out + 1, sizeof *outs);
        kiln_host_tensor *ts = kiln__calloc((size_t)n->n_attrs + 1, sizeof *ts);
        kiln_attr_value *av = ts ? kiln__node_attr_values(n, ts) : NULL;
        if (!ins || !outs || !ts || !av) {
            free(ins);
            free(outs);
            free(ts);
            free(av);
            kiln_network_free(dst);
            return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        }
        for (int j = 0; j < n->n_in; j++) ins[j] = n->in[j] >= 0 ? src->tensors[n->in[j]].name : "";
        for (int j = 0; j < n->n_out; j++) outs[j] = n->out[j] >= 0 ? src->tensors[n->out[j]].name : "";
        int64_t saved = dst->opset;
        dst->opset = n->opset; /* a node keeps the opset its semantics follow */
        s = kiln_network_add_node(dst, n->name, n->op_type, n->domain, n->n_in, ins, n->n_out, outs, n->n_attrs, av);
        dst->opset = saved;
        free(ins);
        free(outs);
        free(ts);
        free(av);
        if (s) return copy_fail(dst, err, s);
        /* plugins (issue 4): the copy keeps the instance state (e.g. deserialized), not only the attributes */
        if ((s = kiln__plugin_params_copy(&dst->nodes[dst->n_nodes - 1], n, err))) {
            kiln_network_free(dst);
            return s;
        }
    }
    for (int i = 0; i < src->n_outputs; i++)
        if ((s = kiln_network_mark_output(dst, src->tensors[src->outputs[i]].name))) return copy_fail(dst, err, s);
    /* keep inferred types/shapes of activations */
    for (int i = 0; i < src->n_tensors; i++) {
        const kiln_tensor *t = &src->tensors[i];
        if (t->kind != KILN_TENSOR_ACTIVATION) continue;
        int d = kiln__net_find_tensor(dst, t->name);
        if (d >= 0) {
            dst->tensors[d].v.dtype = t->v.dtype;
            dst->tensors[d].v.shape = t->v.shape;
        }
    }
    /* --- surgeon (issue 5): ONNX metadata, declared types, doc strings --- */
    bool meta_ok = kiln__net_copy_meta(dst, src);
    for (int i = 0; meta_ok && i < src->n_tensors; i++) {
        const kiln_tensor *t = &src->tensors[i];
        if (!t->decl && !t->doc_string) continue;
        int d = kiln__net_find_tensor(dst, t->name);
        if (d < 0) continue;
        if (t->decl && !(dst->tensors[d].decl = kiln__tensor_decl_clone(t->decl))) meta_ok = false;
        if (t->doc_string && !(dst->tensors[d].doc_string = kiln__strdup(t->doc_string))) meta_ok = false;
    }
    for (int i = 0; meta_ok && i < src->n_nodes && i < dst->n_nodes; i++)
        if (src->nodes[i].doc_string && !(dst->nodes[i].doc_string = kiln__strdup(src->nodes[i].doc_string)))
            meta_ok = false;
    if (!meta_ok) {
        kiln_network_free(dst);
        return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    /* --- end surgeon --- */
    *out = dst;
    return KILN_OK;
}
