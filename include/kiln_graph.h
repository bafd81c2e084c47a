/*
 * kiln — graph editing API (what onnx-graphsurgeon does in Python, in C).
 *
 * Works on the kiln_network of kiln.h (from kiln_onnx_parse or built by hand):
 * look nodes and tensors up, read their attributes and constant values, and
 * edit the graph: change ops and attributes, bypass or replace nodes, rewire
 * inputs, add constants and nodes, rename tensors, override input shapes,
 * clean up, sort, extract subgraphs. Write the result with kiln_onnx_write.
 *
 * Conventions
 * - Nodes are addressed by index (0 .. kiln_graph_node_count()-1); tensors by
 *   name. An edit may renumber nodes (removing, sorting, cleanup): indices
 *   are valid until the next edit, so look nodes up again by name afterwards.
 * - Strings and pointers returned by lookups point into the network and stay
 *   valid until the next edit of it (or kiln_network_free).
 * - Lookups take a const network and never write to it (several threads may
 *   read one network); their failures leave the reason in kiln_last_error().
 * - Every edit validates first: unknown node/tensor names, an input that
 *   nothing produces (dangling), a cycle (checked with the topological sort),
 *   a tensor name already taken, attributes the op's schema rejects. A refused
 *   edit returns an error status, leaves its reason in
 *   kiln_network_last_error(net) (and kiln_last_error()), and leaves the graph
 *   unchanged.
 * - Edits do not re-run shape inference (an edit made in several steps may be
 *   inconsistent in between); call kiln_network_infer_shapes() to refresh the
 *   types and shapes of activations, e.g. before kiln_graph_tensor_info_get.
 *   kiln_graph_set_input_shape and kiln_graph_extract do infer shapes.
 * - An op kiln does not know (a plugin, a custom domain) may be set on a node;
 *   the graph can then be edited and written, but not run on kiln's backends.
 */
#ifndef KILN_GRAPH_H
#define KILN_GRAPH_H

#include "kiln.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
 * Nodes
 * ------------------------------------------------------------------------ */

int kiln_graph_node_count(const kiln_network *net);
/* Index of the (first) node named `name`, or -1. */
int kiln_graph_find_node(const kiln_network *net, const char *name);
/* Name, op type and domain ("" for the default ONNX domain); NULL for a bad index. */
const char *kiln_graph_node_name(const kiln_network *net, int node);
const char *kiln_graph_node_op(const kiln_network *net, int node);
const char *kiln_graph_node_domain(const kiln_network *net, int node);
/* Input/output counts (-1 for a bad index) and the tensor names in each slot:
 * "" for an omitted optional input/output, NULL for a bad index or slot. */
int kiln_graph_node_input_count(const kiln_network *net, int node);
const char *kiln_graph_node_input(const kiln_network *net, int node, int slot);
int kiln_graph_node_output_count(const kiln_network *net, int node);
const char *kiln_graph_node_output(const kiln_network *net, int node, int slot);
/* 1 when kiln (or a loaded plugin) knows the node's op, so it can infer shapes and run; 0 otherwise
 * (an op set with kiln_graph_replace_op for another tool) or for a bad index. */
int kiln_graph_node_known(const kiln_network *net, int node);

/* ---------------------------------------------------------------------------
 * Attributes (read)
 * ------------------------------------------------------------------------ */

int kiln_graph_node_attr_count(const kiln_network *net, int node);
/* Name of attribute i of the node (NULL for a bad index). */
const char *kiln_graph_node_attr_name(const kiln_network *net, int node, int i);
/*
 * The attribute `name` of a node: type and value, pointers into the node (the
 * tensor of a TENSOR attribute is not given here: use kiln_graph_get_attr_tensor).
 * KILN_ERR_NOT_FOUND when the node has no such attribute.
 */
kiln_status kiln_graph_get_attr(const kiln_network *net, int node, const char *name, kiln_attr_value *out);
/* Typed getters: KILN_ERR_NOT_FOUND when absent, KILN_ERR_DTYPE when the attribute has another type. */
kiln_status kiln_graph_get_attr_int(const kiln_network *net, int node, const char *name, int64_t *v);
kiln_status kiln_graph_get_attr_float(const kiln_network *net, int node, const char *name, float *v);
/* *v points into the node (NUL-terminated); *len (may be NULL) gets its length. */
kiln_status kiln_graph_get_attr_string(const kiln_network *net, int node, const char *name, const char **v,
                                       size_t *len);
kiln_status kiln_graph_get_attr_ints(const kiln_network *net, int node, const char *name, const int64_t **v,
                                     int64_t *n);
kiln_status kiln_graph_get_attr_floats(const kiln_network *net, int node, const char *name, const float **v,
                                       int64_t *n);
/* A copy of a TENSOR attribute (e.g. Constant's "value"); release with kiln_host_tensor_release. */
kiln_status kiln_graph_get_attr_tensor(const kiln_network *net, int node, const char *name, kiln_host_tensor *out);

/* ---------------------------------------------------------------------------
 * Tensors
 * ------------------------------------------------------------------------ */

/* Every tensor the network knows (inputs, initializers, activations), by index. */
int kiln_graph_tensor_count(const kiln_network *net);
const char *kiln_graph_tensor_name(const kiln_network *net, int i);
/* Index of a tensor by name, or -1. Tensor indices are renumbered by edits too. */
int kiln_graph_find_tensor(const kiln_network *net, const char *name);

/* dims[] value of a dimension static inference could not determine. */
#define KILN_DIM_UNKNOWN (-2)

typedef struct kiln_graph_tensor_info {
    kiln_dtype dtype;  /* KILN_DT_UNDEFINED when not known (run kiln_network_infer_shapes) */
    int rank;          /* -1 when not known */
    /* >= 0: fixed; KILN_DIM_SYMBOLIC: depends on a named dim; KILN_DIM_UNKNOWN: not known */
    int64_t dims[KILN_MAX_DIMS];
    /* Each dim as text: "4", "height", "2*height", "?" */
    char dim_text[KILN_MAX_DIMS][64];
    int is_constant;     /* an initializer (kiln_graph_constant_data gives its value) */
    int is_graph_input;  /* listed in the graph's inputs */
    int is_graph_output; /* listed in the graph's outputs */
    int producer;        /* index of the node writing it, -1 for inputs/initializers */
    int n_consumers;     /* input slots of nodes reading it */
} kiln_graph_tensor_info;

kiln_status kiln_graph_tensor_info_get(const kiln_network *net, const char *name, kiln_graph_tensor_info *out);

/*
 * A copy of a constant's value: an initializer, or the output of a Constant
 * node. Release with kiln_host_tensor_release. KILN_ERR_INVALID_ARG when the
 * tensor is neither (kiln_graph_evaluate computes other values).
 */
kiln_status kiln_graph_constant_data(const kiln_network *net, const char *name, kiln_host_tensor *out);
/*
 * Computes a tensor whose value depends on constants only (initializers,
 * Constant nodes, and nodes over them: a shape computation, a Concat of
 * Unsqueezed constants...) with the CPU reference. Fails naming the graph
 * input it depends on otherwise. Release `out` with kiln_host_tensor_release.
 */
kiln_status kiln_graph_evaluate(const kiln_network *net, const char *name, kiln_host_tensor *out);

/* Node writing the tensor, or -1 (graph input, initializer, unknown name). */
int kiln_graph_producer(const kiln_network *net, const char *tensor);
/*
 * Nodes reading the tensor: returns how many input slots read it (-1 for an
 * unknown name) and writes up to `max` node indices (a node reading it in two
 * slots appears twice) into nodes[] (may be NULL when max is 0).
 */
int kiln_graph_consumers(const kiln_network *net, const char *tensor, int *nodes, int max);

/* ---------------------------------------------------------------------------
 * Node edits
 * ------------------------------------------------------------------------ */

/*
 * Changes a node's op type and domain (NULL or "" = default ONNX domain),
 * keeping its name, inputs, outputs and attributes; the op's schema is looked
 * up again and the attributes re-checked against it. An op kiln does not know
 * (e.g. a TensorRT plugin's name) is accepted.
 */
kiln_status kiln_graph_replace_op(kiln_network *net, int node, const char *op_type, const char *domain);

/* Adds or replaces an attribute; refused when the op's schema rejects the value. */
kiln_status kiln_graph_set_attr_int(kiln_network *net, int node, const char *name, int64_t v);
kiln_status kiln_graph_set_attr_float(kiln_network *net, int node, const char *name, float v);
kiln_status kiln_graph_set_attr_string(kiln_network *net, int node, const char *name, const char *v);
kiln_status kiln_graph_set_attr_ints(kiln_network *net, int node, const char *name, const int64_t *v, int64_t n);
kiln_status kiln_graph_set_attr_floats(kiln_network *net, int node, const char *name, const float *v, int64_t n);
/* Removes an attribute (KILN_ERR_NOT_FOUND when absent; refused when the schema requires it). */
kiln_status kiln_graph_remove_attr(kiln_network *net, int node, const char *name);

/* Renames a node (the new name must not be another node's). */
kiln_status kiln_graph_rename_node(kiln_network *net, int node, const char *new_name);

/*
 * Removes a node by bypassing it: the node must have exactly one data input
 * X (inputs that are initializers or Constant-node outputs do not count, e.g.
 * Dropout's ratio) and one used output Y (its other outputs unread). Readers
 * of Y read X instead. When Y is a graph output, the name is kept if X is an
 * intermediate tensor used nowhere else as a graph output (X's producer then
 * writes Y); otherwise the graph output becomes X. Refused with the reason
 * otherwise (e.g. "node 'add' (Add) has 2 data inputs").
 */
kiln_status kiln_graph_remove_node(kiln_network *net, int node);

/*
 * Puts a new node in place of `node`: new op, domain, inputs, outputs and
 * attributes (copied); name NULL keeps the node's name. Inputs must be
 * existing tensors ("" = omitted); outputs may be the node's old outputs or
 * new names. Refused when a reader of an old output would be left dangling,
 * when it creates a cycle, or when the schema rejects it.
 */
kiln_status kiln_graph_replace_node(kiln_network *net, int node, const char *name, const char *op_type,
                                    const char *domain, int n_inputs, const char *const *inputs, int n_outputs,
                                    const char *const *outputs, int n_attrs, const kiln_attr_value *attrs);

/*
 * Sets input `slot` of a node to an existing tensor (slot == input count
 * appends one). tensor "" or NULL omits an optional input. Refused for an
 * unknown or dangling tensor, a cycle, or a slot the op does not have.
 */
kiln_status kiln_graph_set_node_input(kiln_network *net, int node, int slot, const char *tensor);

/*
 * Adds a node (appended to the node list). Unlike kiln_network_add_node it
 * refuses a node name already used, inputs that do not exist yet, outputs
 * already defined and cycles, and leaves the graph unchanged when refused.
 */
kiln_status kiln_graph_add_node(kiln_network *net, const char *name, const char *op_type, const char *domain,
                                int n_inputs, const char *const *inputs, int n_outputs, const char *const *outputs,
                                int n_attrs, const kiln_attr_value *attrs);

/* ---------------------------------------------------------------------------
 * Tensor and graph edits
 * ------------------------------------------------------------------------ */

/* Adds an initializer (data copied). name NULL or "" takes t->name. The name must be new, or
 * a name nodes read that nothing defines yet (the constant then feeds them). */
kiln_status kiln_graph_add_constant(kiln_network *net, const char *name, const kiln_host_tensor *t);
/* Renames a tensor everywhere (nodes, graph inputs/outputs); the new name must be new. */
kiln_status kiln_graph_rename_tensor(kiln_network *net, const char *old_name, const char *new_name);
/*
 * Overrides a graph input's shape (dtype kept): dims >= 0 fixed,
 * KILN_DIM_SYMBOLIC named by sym_names[i] (may be NULL). Shapes are inferred
 * again; refused (shape restored) when the model's shapes then contradict.
 */
kiln_status kiln_graph_set_input_shape(kiln_network *net, const char *input, int rank, const int64_t *dims,
                                       const char *const *sym_names);
/* Replaces the list of graph outputs with existing, defined tensors (no repeats). */
kiln_status kiln_graph_set_outputs(kiln_network *net, int n, const char *const *names);

/* kiln_graph_cleanup flags */
#define KILN_GRAPH_CLEANUP_INPUTS 1u /* also drop graph inputs no node reads (not outputs) */

/*
 * Removes nodes none of whose outputs reaches a graph output, initializers no
 * node reads and, with KILN_GRAPH_CLEANUP_INPUTS, unused graph inputs. Nodes
 * end in topological order. *removed_nodes and *removed_tensors (may be NULL)
 * get what was removed.
 */
kiln_status kiln_graph_cleanup(kiln_network *net, unsigned flags, int *removed_nodes, int *removed_tensors);
/* Puts the nodes in topological order; fails (unchanged) on a cycle or a dangling input. */
kiln_status kiln_graph_toposort(kiln_network *net);

/*
 * A new network: the subgraph that computes `outputs` from `inputs` (tensor
 * names of `net`). Shapes are inferred on `net`'s copy first; each input
 * becomes a graph input with its inferred type and shape (its dtype and rank
 * must be known). Constants the subgraph reads are copied. Fails naming the
 * tensor when an output is not reachable from the inputs and constants (it
 * needs a graph input or tensor not listed), when an input is an
 * initializer, or when a listed input is written by a node the outputs need
 * anyway. n_inputs may be 0 (a value computed from constants). Model
 * metadata (opsets, producer, doc strings) is kept. `net` is not modified.
 * Free *out with kiln_network_free.
 */
kiln_status kiln_graph_extract(const kiln_network *net, const char *const *inputs, int n_inputs,
                               const char *const *outputs, int n_outputs, kiln_network **out);

#ifdef __cplusplus
}
#endif
#endif
