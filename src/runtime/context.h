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
    int alias_of;        /* -1, or the rep whose memory holds this one (concat_alias.c) */
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
/* Runs the steps on a stream without capture (used for warm-up and timing). */
kiln_status kiln__context_run_steps(kiln_context *ctx, void *stream, kiln_err *err);

#endif
