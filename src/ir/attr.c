/* Typed attribute lookup on nodes. */
#include "ir.h"
#include <string.h>

const kiln_attr *kiln__node_attr(const kiln_node *n, const char *name)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (!strcmp(n->attrs[i].name, name)) return &n->attrs[i];
    return NULL;
}

int64_t kiln__attr_int(const kiln_node *n, const char *name, int64_t def)
{
    const kiln_attr *a = kiln__node_attr(n, name);
    return (a && a->type == KILN_ATTR_INT) ? a->i : def;
}

float kiln__attr_float(const kiln_node *n, const char *name, float def)
{
    const kiln_attr *a = kiln__node_attr(n, name);
    if (a && a->type == KILN_ATTR_FLOAT) return a->f;
    if (a && a->type == KILN_ATTR_INT) return (float)a->i;
    return def;
}

const char *kiln__attr_string(const kiln_node *n, const char *name, const char *def)
{
    const kiln_attr *a = kiln__node_attr(n, name);
    return (a && a->type == KILN_ATTR_STRING) ? a->s : def;
}

int64_t kiln__attr_ints(const kiln_node *n, const char *name, const int64_t **vals)
{
    const kiln_attr *a = kiln__node_attr(n, name);
    if (!a || a->type != KILN_ATTR_INTS) {
        *vals = NULL;
        return -1;
    }
    *vals = a->ints;
    return a->n;
}

const char *kiln__attr_type_name(kiln_attr_type t)
{
    switch (t) {
    case KILN_ATTR_FLOAT: return "FLOAT";
    case KILN_ATTR_INT: return "INT";
    case KILN_ATTR_STRING: return "STRING";
    case KILN_ATTR_TENSOR: return "TENSOR";
    case KILN_ATTR_FLOATS: return "FLOATS";
    case KILN_ATTR_INTS: return "INTS";
    case KILN_ATTR_STRINGS: return "STRINGS";
    }
    return "?";
}

kiln_status kiln__attr_expect(const kiln_node *n, const char *name, kiln_attr_type t, kiln_err *err)
{
    const kiln_attr *a = kiln__node_attr(n, name);
    if (!a || a->type == t) return KILN_OK;
    return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): attribute '%s' must be %s, got %s",
                      n->name, n->op_type, name, kiln__attr_type_name(t), kiln__attr_type_name(a->type));
}
