/*
 * Internal side of the plugin ABI (include/kiln_plugin.h): the process-wide
 * registry of plugin classes, the generic op schema that plugin nodes get,
 * and helpers the CPU/CUDA backends and the engine file share.
 */
#ifndef KILN_PLUGIN_INTERNAL_H
#define KILN_PLUGIN_INTERNAL_H

#include "../ir/ir.h"
#include "kiln_plugin.h"

/* node->params of a node whose schema is a plugin schema. */
typedef struct kiln__plugin_params {
    const kiln_plugin_class *cls;
    void *inst;
} kiln__plugin_params;

/* The plugin schema matching a node with no built-in schema (by op_type and
 * the plugin_version / plugin_namespace attributes, domain as fallback
 * namespace); NULL when none matches. */
const kiln_op_schema *kiln__plugin_schema_for_node(const kiln_node *n);
/* The class behind a plugin schema, or NULL when s is not a plugin schema. */
const kiln_plugin_class *kiln__plugin_schema_class(const kiln_op_schema *s);
/* Class for a node by op_type and its attributes, whatever its schema (used by
 * the GPU op for nodes with a built-in schema, e.g. DeformConv). */
const kiln_plugin_class *kiln__plugin_class_for_node(const kiln_node *n);
/* Any class registered under this name (op_type). */
bool kiln__plugin_name_registered(const char *name);
/* Exact identity lookup (engine files). */
const kiln_plugin_class *kiln__plugin_find_exact(const char *name, const char *version, const char *ns);
/* "A/1, mmcv::B/2" or "no plugins loaded", into buf. */
void kiln__plugin_list_str(char *buf, size_t len);
/* Identity text "name (version v, namespace 'ns')". */
void kiln__plugin_id_str(const kiln_plugin_class *c, char *buf, size_t len);
const char *kiln__plugin_version(const kiln_plugin_class *c);
const char *kiln__plugin_namespace(const kiln_plugin_class *c);

/* The error for a node no schema and no plugin covers: names op, node and the loaded plugins. */
kiln_status kiln__plugin_unknown_op(kiln_err *err, const kiln_node *n);

/* Instance lifetime for node params (network free, node removal, copies). */
void kiln__plugin_params_release(kiln_node *n);
/* After kiln_network_add_node re-created a node from a copy's attributes: replace the
 * instance by a clone of src's (keeps deserialized state). */
kiln_status kiln__plugin_params_copy(kiln_node *dst, const kiln_node *src, kiln_err *err);
/* Creates an instance of cls from a node's attributes (caller destroys with cls->destroy). */
kiln_status kiln__plugin_create_for_node(const kiln_plugin_class *cls, const kiln_node *n, void **inst, kiln_err *err);

/* Serialized state of a plugin node (malloc'd, *len may be 0 with *data NULL). */
kiln_status kiln__plugin_serialize(const kiln_node *n, uint8_t **data, size_t *len, kiln_err *err);
/* Replaces a plugin node's instance by one deserialized from data. */
kiln_status kiln__plugin_deserialize(kiln_node *n, const void *data, size_t len, kiln_err *err);

/* Converts a plugin callback's status + message into a kiln error naming node and plugin. */
kiln_status kiln__plugin_fail(kiln_err *err, int rc, const kiln_node *n, const kiln_plugin_class *c, const char *what,
                              const char *msg);
const kiln_plugin_host *kiln__plugin_host(void);

/* Built-in classes (src/plugin/builtin.c), NULL-terminated. */
extern const kiln_plugin_class *const kiln__plugin_builtin_classes[];

#endif
