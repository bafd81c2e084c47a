/*
 * Plugin nodes in the IR: the generic schema (parse_attrs creates the
 * instance from the node's attributes, infer asks the plugin for output types
 * and shapes and checks what it declares), instance lifetime, and the
 * serialized state the engine file stores.
 */
#include "plugin.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kiln_status kiln__plugin_fail(kiln_err *err, int rc, const kiln_node *n, const kiln_plugin_class *c, const char *what,
                              const char *msg)
{
    char id[512];
    kiln__plugin_id_str(c, id, sizeof id);
    kiln_status s;
    switch (rc) {
    case KILN_PLUGIN_ERR_OUT_OF_MEMORY: s = KILN_ERR_OUT_OF_MEMORY; break;
    case KILN_PLUGIN_ERR_UNSUPPORTED: s = KILN_ERR_UNSUPPORTED; break;
    case KILN_PLUGIN_ERR_SHAPE: s = KILN_ERR_SHAPE; break;
    case KILN_PLUGIN_ERR_DTYPE: s = KILN_ERR_DTYPE; break;
    case KILN_PLUGIN_ERR_BACKEND: s = KILN_ERR_BACKEND; break;
    case KILN_PLUGIN_ERR_INVALID_ARG: s = KILN_ERR_INVALID_ARG; break;
    default: s = KILN_ERR_BACKEND; break;
    }
    return kiln__fail(err, s, "node '%s' (plugin %s): %s failed (code %d): %s", n ? n->name : "?", id, what, rc,
                      msg && msg[0] ? msg : "no message");
}

/* --- attributes ---------------------------------------------------------- */

static kiln_plugin_attr *plugin_attrs(const kiln_node *n, int *count)
{
    kiln_plugin_attr *pa = kiln__calloc((size_t)n->n_attrs + 1, sizeof *pa);
    if (!pa) return NULL;
    int k = 0;
    for (int a = 0; a < n->n_attrs; a++) {
        const kiln_attr *at = &n->attrs[a];
        /* identity attributes are for the lookup, not the plugin */
        if (!strcmp(at->name, "plugin_version") || !strcmp(at->name, "plugin_namespace")) continue;
        kiln_plugin_attr *p = &pa[k++];
        p->name = at->name;
        p->type = (int32_t)at->type;
        p->i = at->i;
        p->f = at->f;
        p->s = at->s ? at->s : "";
        p->s_len = at->s_len;
        p->n = at->n;
        p->ints = at->ints;
        p->floats = at->floats;
        p->strings = (const char *const *)at->strings;
        if (at->type == KILN_ATTR_TENSOR && at->t) {
            p->t_dtype = (int32_t)at->t->dtype;
            p->t_rank = at->t->shape.rank;
            for (int d = 0; d < at->t->shape.rank && d < KILN_PLUGIN_MAX_DIMS; d++) p->t_dims[d] = at->t->shape.d[d].add;
            p->t_data = at->t->data;
            p->t_nbytes = at->t->nbytes;
        }
    }
    *count = k;
    return pa;
}

kiln_status kiln__plugin_create_for_node(const kiln_plugin_class *cls, const kiln_node *n, void **inst, kiln_err *err)
{
    *inst = NULL;
    int na = 0;
    kiln_plugin_attr *pa = plugin_attrs(n, &na);
    if (!pa) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    char msg[512] = "";
    int rc = cls->create(kiln__plugin_host(), pa, na, inst, msg, sizeof msg);
    msg[sizeof msg - 1] = 0;
    free(pa);
    if (rc != KILN_PLUGIN_OK) {
        if (*inst) cls->destroy(*inst);
        *inst = NULL;
        return kiln__plugin_fail(err, rc, n, cls, "create", msg);
    }
    if (!*inst) return kiln__plugin_fail(err, KILN_PLUGIN_ERR_INTERNAL, n, cls, "create", "returned success but no instance");
    return KILN_OK;
}

kiln_status kiln__plugin_parse_attrs(const kiln_node *node, void *params, kiln_err *err)
{
    kiln__plugin_params *p = params;
    /* node->schema is normally the plugin schema being parsed; a caller checking a candidate
     * node before installing the schema gets the same matching by op type and attributes */
    const kiln_plugin_class *cls = kiln__plugin_schema_class(node->schema);
    if (!cls) cls = kiln__plugin_class_for_node(node);
    if (!cls) return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s': not a plugin node", node->name);
    kiln_status s = kiln__plugin_create_for_node(cls, node, &p->inst, err);
    if (!s) p->cls = cls;
    return s;
}

/* --- instance lifetime --------------------------------------------------- */

void kiln__plugin_params_release(kiln_node *n)
{
    if (!n || !n->params || !kiln__plugin_schema_class(n->schema)) return;
    kiln__plugin_params *p = n->params;
    if (p->cls && p->inst) p->cls->destroy(p->inst);
    p->inst = NULL;
}

kiln_status kiln__plugin_params_copy(kiln_node *dst, const kiln_node *src, kiln_err *err)
{
    if (!kiln__plugin_schema_class(src->schema) || !kiln__plugin_schema_class(dst->schema) || !src->params || !dst->params) return KILN_OK;
    const kiln__plugin_params *ps = src->params;
    kiln__plugin_params *pd = dst->params;
    if (ps->cls != pd->cls || !ps->inst) return KILN_OK;
    void *inst = NULL;
    char msg[512] = "";
    int rc;
    if (ps->cls->clone) {
        rc = ps->cls->clone(kiln__plugin_host(), ps->inst, &inst, msg, sizeof msg);
        if (rc == KILN_PLUGIN_OK && !inst) rc = KILN_PLUGIN_ERR_INTERNAL, snprintf(msg, sizeof msg, "returned success but no instance");
        if (rc != KILN_PLUGIN_OK) {
            msg[sizeof msg - 1] = 0;
            return kiln__plugin_fail(err, rc, src, ps->cls, "clone", msg);
        }
    } else if (ps->cls->serialize) {
        /* the state may differ from what the attributes give (engine loaded): carry it over */
        uint8_t *data = NULL;
        size_t len = 0;
        kiln_status s = kiln__plugin_serialize(src, &data, &len, err);
        if (!s) s = kiln__plugin_deserialize(dst, data, len, err);
        free(data);
        return s;
    } else {
        return KILN_OK; /* create from the copied attributes already made an equal instance */
    }
    pd->cls->destroy(pd->inst);
    pd->inst = inst;
    return KILN_OK;
}

/* --- engine state -------------------------------------------------------- */

#define MAX_STATE_BYTES ((size_t)1 << 30)

kiln_status kiln__plugin_serialize(const kiln_node *n, uint8_t **data, size_t *len, kiln_err *err)
{
    *data = NULL;
    *len = 0;
    const kiln__plugin_params *p = n->params;
    if (!kiln__plugin_schema_class(n->schema) || !p || !p->inst || !p->cls->serialize) return KILN_OK;
    char msg[512] = "";
    size_t need = 0;
    int rc = p->cls->serialize(p->inst, NULL, 0, &need, msg, sizeof msg);
    msg[sizeof msg - 1] = 0;
    if (rc != KILN_PLUGIN_OK) return kiln__plugin_fail(err, rc, n, p->cls, "serialize (size)", msg);
    if (need > MAX_STATE_BYTES) return kiln__plugin_fail(err, KILN_PLUGIN_ERR_INTERNAL, n, p->cls, "serialize", "state over 1 GiB");
    if (!need) return KILN_OK;
    uint8_t *buf = kiln__malloc(need);
    if (!buf) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    size_t got = need;
    rc = p->cls->serialize(p->inst, buf, need, &got, msg, sizeof msg);
    msg[sizeof msg - 1] = 0;
    if (rc == KILN_PLUGIN_OK && got > need) rc = KILN_PLUGIN_ERR_INTERNAL, snprintf(msg, sizeof msg, "wrote %zu bytes into %zu", got, need);
    if (rc != KILN_PLUGIN_OK) {
        free(buf);
        return kiln__plugin_fail(err, rc, n, p->cls, "serialize", msg);
    }
    *data = buf;
    *len = got;
    return KILN_OK;
}

kiln_status kiln__plugin_deserialize(kiln_node *n, const void *data, size_t len, kiln_err *err)
{
    kiln__plugin_params *p = n->params;
    if (!kiln__plugin_schema_class(n->schema) || !p || !p->cls) return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s': not a plugin node", n->name);
    if (!p->cls->deserialize) {
        if (len == 0) return KILN_OK;
        return kiln__plugin_fail(err, KILN_PLUGIN_ERR_INVALID_ARG, n, p->cls, "deserialize", "the engine holds state but the class has no deserialize");
    }
    void *inst = NULL;
    char msg[512] = "";
    static const uint8_t empty[1] = {0};
    int rc = p->cls->deserialize(kiln__plugin_host(), data ? data : empty, len, &inst, msg, sizeof msg);
    msg[sizeof msg - 1] = 0;
    if (rc == KILN_PLUGIN_OK && !inst) rc = KILN_PLUGIN_ERR_INTERNAL, snprintf(msg, sizeof msg, "returned success but no instance");
    if (rc != KILN_PLUGIN_OK) {
        if (inst) p->cls->destroy(inst);
        return kiln__plugin_fail(err, rc, n, p->cls, "deserialize", msg);
    }
    if (p->inst) p->cls->destroy(p->inst);
    p->inst = inst;
    return KILN_OK;
}

/* --- shape inference ----------------------------------------------------- */

static kiln_plugin_dim to_pdim(kiln_dim d)
{
    kiln_plugin_dim r = {d.sym, 0, d.mul, d.add, d.div};
    if (d.sym < KILN_SYM_UNKNOWN) r = kiln_plugin_dim_unknown();
    return r;
}

kiln_status kiln__plugin_infer(const kiln_node *node, const void *params, const kiln_value *const *in, kiln_value *out,
                               kiln_err *err)
{
    const kiln__plugin_params *p = params;
    if (!p || !p->cls || !p->inst) return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s': plugin instance missing", node->name);
    const kiln_plugin_class *c = p->cls;
    int ni = node->n_in, no = node->n_out;
    kiln_plugin_shape_input *si = kiln__calloc((size_t)ni + 1, sizeof *si);
    int32_t *idt = kiln__calloc((size_t)ni + 1, sizeof *idt);
    int32_t *odt = kiln__calloc((size_t)no + 1, sizeof *odt);
    kiln_plugin_shape *os = kiln__calloc((size_t)no + 1, sizeof *os);
    kiln_status s = KILN_OK;
    if (!si || !idt || !odt || !os) {
        s = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    bool concrete = true; /* every present input fully known: the run-time situation */
    for (int i = 0; i < ni; i++) {
        if (!in[i]) continue;
        si[i].present = 1;
        si[i].dtype = idt[i] = (int32_t)in[i]->dtype;
        int r = in[i]->shape.rank;
        si[i].shape.rank = r > KILN_PLUGIN_MAX_DIMS ? -1 : r;
        for (int d = 0; d < si[i].shape.rank; d++) {
            si[i].shape.d[d] = to_pdim(in[i]->shape.d[d]);
            if (!kiln__dim_is_const(in[i]->shape.d[d])) concrete = false;
        }
        if (r < 0) concrete = false;
        si[i].host_data = in[i]->data;
        si[i].nbytes = in[i]->data ? in[i]->nbytes : 0;
    }
    char msg[512] = "";
    int rc = c->get_output_types(p->inst, idt, ni, odt, no, msg, sizeof msg);
    msg[sizeof msg - 1] = 0;
    if (rc != KILN_PLUGIN_OK) {
        s = kiln__plugin_fail(err, rc, node, c, "get_output_types", msg);
        goto done;
    }
    rc = c->get_output_shapes(p->inst, si, ni, os, no, msg, sizeof msg);
    msg[sizeof msg - 1] = 0;
    if (rc != KILN_PLUGIN_OK) {
        s = kiln__plugin_fail(err, rc, node, c, "get_output_shapes", msg);
        goto done;
    }
    for (int j = 0; j < no; j++) {
        char why[256] = "";
        kiln_dtype dt = (kiln_dtype)odt[j];
        if (dt == KILN_DT_UNDEFINED && !concrete) {
            /* statically unknown types are allowed (inputs not typed yet) */
        } else if (kiln_dtype_size(dt) == 0 || dt == KILN_DT_STRING) {
            snprintf(why, sizeof why, "output %d has data type %d, which kiln does not support", j, (int)odt[j]);
        }
        const kiln_plugin_shape *sh = &os[j];
        if (!why[0] && (sh->rank < -1 || sh->rank > KILN_PLUGIN_MAX_DIMS))
            snprintf(why, sizeof why, "output %d has rank %d (allowed -1 to %d)", j, (int)sh->rank, KILN_PLUGIN_MAX_DIMS);
        if (!why[0] && sh->rank < 0 && concrete) snprintf(why, sizeof why, "output %d has no rank for concrete inputs", j);
        for (int d = 0; !why[0] && d < sh->rank; d++) {
            kiln_plugin_dim pd = sh->d[d];
            if (pd.sym == KILN_PLUGIN_SYM_CONST) {
                if (pd.add < 0) snprintf(why, sizeof why, "output %d dim %d is %lld", j, d, (long long)pd.add);
            } else if (concrete) {
                snprintf(why, sizeof why, "output %d dim %d is not a constant although every input shape is", j, d);
            } else if (pd.sym >= 0) {
                /* a symbol must come from an input (its number indexes the network's symbols) */
                bool seen = false;
                for (int i = 0; i < ni && !seen; i++)
                    for (int e = 0; in[i] && e < in[i]->shape.rank && e < KILN_MAX_DIMS; e++) seen |= in[i]->shape.d[e].sym == pd.sym;
                if (!seen || pd.div < 1 || pd.mul < 0 || kiln_plugin__big(pd.mul) || kiln_plugin__big(pd.add) || kiln_plugin__big(pd.div))
                    snprintf(why, sizeof why, "output %d dim %d is a malformed symbolic dim (symbol %d, mul %lld, add %lld, div %lld)", j, d,
                             (int)pd.sym, (long long)pd.mul, (long long)pd.add, (long long)pd.div);
            } else if (pd.sym != KILN_PLUGIN_SYM_UNKNOWN) {
                snprintf(why, sizeof why, "output %d dim %d has a bad symbol number %d", j, d, (int)pd.sym);
            }
        }
        if (why[0]) {
            char id[512];
            kiln__plugin_id_str(c, id, sizeof id);
            s = kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (plugin %s): the plugin declares a bad output: %s", node->name, id, why);
            goto done;
        }
        kiln_shape ks;
        memset(&ks, 0, sizeof ks);
        ks.rank = sh->rank;
        for (int d = 0; d < sh->rank; d++) {
            kiln_plugin_dim pd = sh->d[d];
            ks.d[d] = pd.sym == KILN_PLUGIN_SYM_CONST ? kiln__dim_const(pd.add)
                      : pd.sym == KILN_PLUGIN_SYM_UNKNOWN ? kiln__dim_unknown()
                                                          : (kiln_dim){pd.sym, pd.mul, pd.add, pd.div};
        }
        kiln__value_set_type(&out[j], dt, &ks);
    }
done:
    free(si);
    free(idt);
    free(odt);
    free(os);
    return s;
}
