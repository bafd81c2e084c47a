/* Execution context internals, shared by the runtime files and the builder's tactic timing. */
#ifndef KILN_CONTEXT_H
#define KILN_CONTEXT_H

#include "../build/engine.h"

typedef enum step_kind {
    STEP_LAUNCH,   /* a GPU op */
    STEP_REFORMAT, /* dtype and/or layout change (a Cast launch through strides) */
    STEP_UPLOAD,   /* a host-known value copied to the device */
    STEP_CPU       /* a node the GPU cannot run: inputs to the host, CPU kernel, outputs back */
} step_kind;

typedef struct kiln_step {
    step_kind kind;
    int node;        /* node index (LAUNCH, CPU) */
    int src, dst;    /* rep indices (REFORMAT, UPLOAD: dst only, src = tensor index) */
    int *in_reps;    /* LAUNCH/CPU: rep index per node input, -1 if omitted */
    int *out_reps;   /* LAUNCH/CPU: rep index per node output, -1 if omitted */
    size_t workspace;
    float last_ms;
    bool skip;       /* nothing to do: a Concat whose inputs were written in place */
} kiln_step;

/* A device representation of a tensor: one tensor may have several (fp16 NHWC for
 * a conv, fp32 row-major for the user). */
typedef struct kiln_rep {
    int tensor;
    kiln_cuda_tensor t;  /* ptr set after memory planning */
    int where;           /* REP_ARENA, REP_USER_IN, REP_USER_OUT, REP_CONST */
    int first, last;     /* steps that write / last read it (arena lifetime) */
    size_t offset;
    int alias_of;        /* -1, or the rep whose memory holds this one (concat_alias.c, view_alias.c) */
    size_t alias_off;    /* byte offset inside alias_of */
} kiln_rep;

enum { REP_ARENA, REP_USER_IN, REP_USER_OUT, REP_CONST };

struct kiln_context {
    kiln_engine *eng;
    kiln_network *net;
    /* bindings, by graph input/output order */
    int64_t (*in_dims)[KILN_MAX_DIMS];
    int *in_rank;
    void **in_ptr, **out_ptr;
    /* resolution for the current input shapes */
    bool resolved;
    kiln_value *vals; /* per tensor: type, concrete shape, host data when known */
    bool *host_known, *owned;
    kiln_rep *reps;
    int n_reps, cap_reps;
    kiln_step *steps;
    int n_steps, cap_steps;
    bool needs_sync;  /* a CPU step: no graph capture */
    void *arena;
    size_t arena_bytes, arena_cap, arena_lower_bound;
    void *workspace;
    size_t workspace_cap;
    kiln_cuda_exec ex;
    bool ex_ready;
    void *reformat_stream;
    /* CUDA graph of the current resolution + addresses */
    void *graph;
    void *graph_stream;
    bool use_graph;
    bool profiling;
    void **events; /* 2 per step when profiling */
    int n_events;
    kiln_network *cast_net; /* one Cast node per target dtype, for reformats */
    char last_error[1024];
};

/* Resolves every tensor's shape (and host values) for the bound input shapes; no device work. */
kiln_status kiln__context_resolve_shapes(kiln_context *ctx, kiln_err *err);
/* Resolves shapes and builds the step list for the bound input shapes. */
kiln_status kiln__context_resolve(kiln_context *ctx, kiln_err *err);
/* The device tensors and host values a launch step sees (arrays of the node's input/output counts). */
void kiln__context_step_tensors(const kiln_context *ctx, const kiln_step *st, kiln_cuda_tensor *din,
                                kiln_cuda_tensor *dout, const kiln_value **host);
/* Places Concat inputs inside the Concat's output (concat_alias.c); before memory planning. */
void kiln__context_alias_concats(kiln_context *ctx);
/* Sets the pointers of aliased reps from their roots; after memory planning. */
void kiln__context_place_aliases(kiln_context *ctx);
/* ---- begin: view aliases (view_alias.c, helper alias) ---- */
/* Strides showing src's elements (row-major order) with out's rank/dims: a reshape without a copy.
 * Unit dims get 0 (placeholders). False when no strides can. */
bool kiln__view_reshape(const kiln_cuda_tensor *src, kiln_cuda_tensor *out);
/* src[..., index, ...] on `axis` as a view; n_unit unit dims stand where the axis was (the index's rank). */
bool kiln__view_select(const kiln_cuda_tensor *src, int axis, int64_t index, int n_unit, kiln_cuda_tensor *out,
                       int64_t *elem_off);
/* A Slice (per axis first index, step, count) as a view; positive steps only. */
bool kiln__view_slice(const kiln_cuda_tensor *src, const int64_t *start, const int64_t *step, const int64_t *count,
                      kiln_cuda_tensor *out, int64_t *elem_off);
/* The decision: the output of view node nd (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Gather with one
 * host index, Slice) as strides over src's memory plus an element offset. out: dtype, rank, dims set by the
 * caller; strides written (unit dims as in `prefer` when it matches). host[j]: input j's host value or NULL. */
bool kiln__view_of(const kiln_node *nd, const kiln_value *const *host, const kiln_cuda_tensor *src, kiln_layout prefer,
                   kiln_cuda_tensor *out, int64_t *elem_off);
/* false when KILN_NO_VIEW_ALIAS is set (and not "0"). */
bool kiln__view_alias_enabled(void);
/* Whether node nd is a view op this runtime may turn into an alias (input not a host value). */
bool kiln__view_alias_candidate(const kiln_context *ctx, const kiln_node *nd);
/* Whether `tensor` has an arena or caller-input rep of dtype dt. */
bool kiln__context_view_has_source(const kiln_context *ctx, int tensor, kiln_dtype dt);
/* Makes rep r (node's output; dims and dtype set) an alias of a rep of the node's data input:
 * strides, alias_of/alias_off, first/last. False: the node must copy. Before memory planning. */
bool kiln__context_view_alias(kiln_context *ctx, int node, int r);
/* Strides for a reshape's source `prod` (dims set) under which the reshape to view_out (dims and
 * strides set) is exactly view_out's layout; false when none. */
bool kiln__view_producer_strides(const kiln_cuda_tensor *view_out, kiln_cuda_tensor *prod);
/* For node's new output rep r: an Expand read only by a reshape-like view whose output the runtime
 * wants NHWC gets the strides that make that view a packed NHWC alias. */
void kiln__context_view_producer_layout(kiln_context *ctx, int node, int r);
/* ---- end: view aliases ---- */
/* Runs the steps on a stream without capture (used for warm-up and timing). */
kiln_status kiln__context_run_steps(kiln_context *ctx, void *stream, kiln_err *err);

#endif
