/*
 * Graph optimization passes. A pass is a stand-alone unit {name, run} that
 * rewrites a kiln_network in place; kiln__passes_run applies the one ordered
 * list and calls back after each pass, so `--dump-graph-after=PASS` is a
 * callback that compares the name.
 *
 * Every pass leaves the network valid and tidy: nodes in topological order,
 * no node or tensor that nothing references (graph inputs and outputs are
 * always kept), tensors[*].producer and is_output consistent, the name hash
 * valid. Tensor shapes/types of activations are refreshed by static shape
 * inference where a pass needs them.
 *
 * The passes (in this order):
 *   eliminate_identity        Identity / inference Dropout removed, consumers rewired
 *   fold_constants            nodes whose inputs are all constant evaluated on the CPU
 *                             (and Shape/Size of fixed-shape tensors when shapes are static)
 *   remove_dead_nodes         nodes whose outputs reach no graph output; unused constants
 *   batch_branches            identical independent branches (same weights, e.g. EDVR's per-frame
 *                             alignment) run as one node at batch k*N (KILN_NO_BATCH_BRANCHES=1 skips)
 *   split_to_slice            Split whose outputs a Concat glues back -> Slices (DCNv2's offsets)
 *   fold_batchnorm_into_conv  Conv -> BatchNormalization folded into Conv's W and B
 *   fold_scale_into_conv      Conv -> Mul/Add/Sub by a per-channel constant folded into W and B
 *   hoist_activation          Conv -> DepthToSpace -> act becomes Conv -> act -> DepthToSpace
 *   fuse_conv_activation      Conv [+act] [+Mul scalar] [+Add/Sum Z] -> kiln::FusedConv
 */
#ifndef KILN_PASSES_H
#define KILN_PASSES_H

#include "../ir/ir.h"

/* Largest single folded constant by default (bytes). */
#define KILN_FOLD_MAX_BYTES_DEFAULT ((size_t)64 << 20)

/* What one pass did; filled by the pass, reported through kiln_pass_options.log. */
typedef struct kiln_pass_stats {
    int nodes_before, nodes_after; /* set by kiln__passes_run */
    int changes;                   /* rewrites done; 0 when the graph is unchanged */
    char summary[512];             /* one line for --verbose, e.g. "folded 53 BatchNormalization" */
} kiln_pass_stats;

typedef struct kiln_pass_options {
    /* Graph input shapes are fixed (no dynamic profile): Shape/Size of tensors whose
     * inferred shape is constant may fold. False keeps every shape computation. */
    bool static_shapes;
    /* Target precision. With KILN_PREC_FP16, folding (BatchNormalization or a scale)
     * into a conv whose folded weights would overflow float16 is skipped. */
    kiln_precision precision;
    /* Node names that keep their own layer: never folded, fused or rewired (a dead
     * pinned node is still removed). Caller owns the array. */
    const char *const *pinned;
    int n_pinned;
    /* Largest folded constant in bytes; 0 means KILN_FOLD_MAX_BYTES_DEFAULT. */
    size_t fold_max_bytes;
    /* Pass names to skip (e.g. to isolate a pass in a test). */
    const char *const *skip;
    int n_skip;
    /* Optional: called after each pass with what it did. */
    void (*log)(const char *pass, const kiln_pass_stats *stats, void *user);
    void *log_user;
} kiln_pass_options;

typedef struct kiln_pass {
    const char *name;
    kiln_status (*run)(kiln_network *net, const kiln_pass_options *opts, kiln_pass_stats *stats,
                       kiln_err *err);
} kiln_pass;

/* The ordered pass list; *count gets its length. */
const kiln_pass *kiln__passes(int *count);
/* A pass by name; NULL when there is none (the CLI validates --dump-graph-after with it). */
const kiln_pass *kiln__pass_find(const char *name);

/*
 * Runs every pass of the list in order on `net` (modified in place). `after`
 * (may be NULL) is called after each pass that ran, with the pass name. opts
 * may be NULL (defaults: dynamic shapes, tf32, nothing pinned). At the end
 * static shape inference runs on the result, so every activation carries its
 * type and shape. On failure err names the pass and the network may be partly
 * optimized but is valid.
 */
kiln_status kiln__passes_run(kiln_network *net, const kiln_pass_options *opts,
                             void (*after)(const char *pass, kiln_network *net, void *user), void *user,
                             kiln_err *err);

/* The passes themselves (one file each). */
kiln_status kiln__pass_eliminate_identity(kiln_network *net, const kiln_pass_options *opts,
                                          kiln_pass_stats *stats, kiln_err *err);
kiln_status kiln__pass_fold_constants(kiln_network *net, const kiln_pass_options *opts, kiln_pass_stats *stats,
                                      kiln_err *err);
kiln_status kiln__pass_remove_dead_nodes(kiln_network *net, const kiln_pass_options *opts,
                                         kiln_pass_stats *stats, kiln_err *err);
/* --- batch_branches (session 3) --- */
kiln_status kiln__pass_batch_branches(kiln_network *net, const kiln_pass_options *opts, kiln_pass_stats *stats,
                                      kiln_err *err);
/* --- end batch_branches --- */
kiln_status kiln__pass_fold_batchnorm_into_conv(kiln_network *net, const kiln_pass_options *opts,
                                                kiln_pass_stats *stats, kiln_err *err);
kiln_status kiln__pass_fold_scale_into_conv(kiln_network *net, const kiln_pass_options *opts, kiln_pass_stats *stats,
                                            kiln_err *err);
kiln_status kiln__pass_split_to_slice(kiln_network *net, const kiln_pass_options *opts, kiln_pass_stats *stats,
                                      kiln_err *err);
kiln_status kiln__pass_hoist_activation(kiln_network *net, const kiln_pass_options *opts, kiln_pass_stats *stats,
                                        kiln_err *err);
kiln_status kiln__pass_fuse_conv_activation(kiln_network *net, const kiln_pass_options *opts,
                                            kiln_pass_stats *stats, kiln_err *err);

/* ---------------------------------------------------------------------------
 * Graph editing, for the pass implementations (src/passes/graph_edit.c).
 * ------------------------------------------------------------------------ */

/* Consumers of each tensor as CSR: node[start[t] .. start[t+1]) read tensor t at input slot[]. */
typedef struct kiln_graph_uses {
    int *start;
    int *node;
    int *slot;
} kiln_graph_uses;

/* Builds the consumer lists of the nodes not marked in `deleted` (may be NULL). */
kiln_status kiln__graph_uses_build(const kiln_network *net, const bool *deleted, kiln_graph_uses *u, kiln_err *err);
void kiln__graph_uses_free(kiln_graph_uses *u);
static inline int kiln__graph_use_count(const kiln_graph_uses *u, int t) { return u->start[t + 1] - u->start[t]; }

/* Appends one clause to stats->summary ("; " between clauses). */
void kiln__pass_note(kiln_pass_stats *stats, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* True when `name` is in opts' pinned list. */
bool kiln__pass_pinned(const kiln_pass_options *opts, const char *name);
/* The constant value of tensor t (kind CONSTANT with data), else NULL. */
const kiln_value *kiln__graph_const(const kiln_network *net, int t);

/* A new activation tensor named after `base` (suffixed to be unique); -1 on OOM. */
int kiln__graph_new_tensor(kiln_network *net, const char *base);
/* A new constant named after `base` (unique). Takes ownership of `data` (also on
 * failure). Returns the tensor index or -1 (OOM, err set). */
int kiln__graph_add_constant(kiln_network *net, const char *base, kiln_dtype dt, const kiln_shape *shape,
                             void *data, size_t nbytes, kiln_err *err);

/* Every input slot of a node not in `deleted` that reads `from` reads `to` instead. */
void kiln__graph_replace_uses(kiln_network *net, const bool *deleted, int from, int to);
/* Resizes a node's input list (new slots are -1, omitted). */
kiln_status kiln__node_set_n_inputs(kiln_node *n, int n_in, kiln_err *err);
/* Adds or replaces an attribute on a node (copies strings). */
kiln_status kiln__node_set_attr_float(kiln_node *n, const char *name, float v, kiln_err *err);
/* Drops a node's attribute `name` if it has one. */
void kiln__node_remove_attr(kiln_node *n, const char *name);
kiln_status kiln__node_set_attr_string(kiln_node *n, const char *name, const char *v, kiln_err *err);
/* Changes a node's op (op_type, domain), looks up its schema and re-parses its attributes. */
kiln_status kiln__node_set_op(kiln_node *n, const char *domain, const char *op_type, kiln_err *err);
/* Appends node names to the node's "fused_nodes" attribute (comma separated),
 * starting with the node's own name when the attribute is new. */
kiln_status kiln__node_add_fused_name(kiln_node *n, const char *fused, kiln_err *err);

/*
 * Folding into a Conv (src/passes/conv_rescale.c). kiln__conv_foldable: cv is a
 * plain, unpinned Conv with a constant float W and a constant B (or none);
 * *m gets its output channel count. kiln__conv_fold_affine replaces W and B by
 * new constants (named after the conv + suffix) W[c]*k[c] and B[c]*k[c] + shift[c];
 * with opts' precision fp16 it changes nothing and sets *refused when a value
 * would overflow float16. kiln__conv_absorb makes conv ci write node ni's
 * output instead of its own, marks ni deleted and records its name in fused_nodes.
 */
bool kiln__conv_foldable(const kiln_network *net, const kiln_pass_options *opts, const kiln_node *cv, int64_t *m);
kiln_status kiln__conv_fold_affine(kiln_network *net, const kiln_pass_options *opts, kiln_node *cv, const double *k,
                                   const double *shift, const char *suffix, bool *refused, kiln_err *err);
kiln_status kiln__conv_absorb(kiln_network *net, int ci, int ni, bool *deleted, kiln_err *err);

/*
 * Ends an edit: frees the nodes marked in `deleted` (NULL: none), drops tensors
 * nothing references (graph inputs/outputs stay), recomputes producers, puts
 * the nodes in topological order and rebuilds the name hash. Fails (graph
 * error) when the result is not a valid graph, e.g. a dangling input.
 */
kiln_status kiln__graph_compact(kiln_network *net, const bool *deleted, kiln_err *err);

#endif
