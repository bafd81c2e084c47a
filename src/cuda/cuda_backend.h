/*
 * The CUDA backend as the builder and runtime see it: a table of GPU ops
 * (host C, one file per op family, `cuda_ops_<family>.c`) whose launch
 * functions call `extern "C"` launchers in `.cu` files (`k_<family>.cu`).
 * Only host C includes this header; .cu files include cuda_tensor.h.
 */
#ifndef KILN_CUDA_BACKEND_H
#define KILN_CUDA_BACKEND_H

#include "../ir/ir.h"
#include "cuda_tensor.h"

/* Handles a launch needs; owned by the execution context. */
typedef struct kiln_cuda_exec {
    void *stream;   /* cudaStream_t */
    void *cudnn;    /* cudnnHandle_t, bound to stream */
    void *cublaslt; /* cublasLtHandle_t */
    void *workspace;
    size_t workspace_bytes;
    kiln_precision precision; /* of the engine: TF32 allowed unless FP32 */
} kiln_cuda_exec;

typedef struct kiln_cuda_launch {
    const kiln_node *node;
    const void *params;            /* the node's parsed attributes (schema params) */
    const kiln_cuda_tensor *in;    /* node->n_in entries; ptr NULL for an omitted input */
    const kiln_value *const *host; /* node->n_in entries: the host value when known on the
                                      host (constants, shape tensors), else NULL */
    kiln_cuda_tensor *out;         /* node->n_out entries, allocated by the runtime */
    void *state;                   /* from prepare, or NULL */
    int tactic;                    /* chosen by the builder, 0 when the op has one */
    const kiln_cuda_exec *ex;
    bool strict_fp32;              /* fp32 math without TF32 for this layer, whatever the
                                      engine's precision (the builder's accuracy rules) */
} kiln_cuda_launch;

typedef struct kiln_cuda_op {
    const char *op_type;
    const char *domain; /* "" default ONNX domain, "kiln" for fused ops */
    /* Optional (NULL: yes). Whether this node can run on the GPU given its
     * input/output types and shapes (host values for constant inputs). When it
     * says no, the runtime runs the node on the CPU with copies. */
    bool (*supports)(const kiln_node *node, const kiln_value *const *in, const kiln_value *out);
    /* Optional. Once per engine: turn constant inputs (weights; host[i] set)
     * into run-time form on the device for compute type `dt` (FLOAT or FLOAT16)
     * and layout, and return per-node state. */
    kiln_status (*prepare)(const kiln_node *node, const void *params, const kiln_value *const *host,
                           kiln_dtype dt, kiln_layout layout, void **state, kiln_err *err);
    void (*release)(void *state);
    /* Optional. Number of alternative implementations the builder may time (default 1). */
    int (*tactic_count)(const kiln_cuda_launch *l);
    /* Optional. Workspace bytes for this launch's shapes and tactic. */
    size_t (*workspace)(const kiln_cuda_launch *l);
    /* Enqueues the work on l->ex->stream; no synchronization, no allocation. */
    kiln_status (*launch)(const kiln_cuda_launch *l, kiln_err *err);
    /* true: every input and output must be row-major (the runtime never hands it NHWC). */
    bool row_major;
    /* --- weights in run-time form (issue 3, engine file v3; owner: wts) --- */
    /* Optional; the engine uses it instead of prepare. Constant inputs come already converted
     * (by the builder, stored so in the engine file) and on the device, in memory the engine
     * owns and every context shares (the op keeps the pointers, never frees them): dev[i] for
     * input i (ptr NULL when i is not constant) has dtype dt for a float constant (else its
     * own), row-major strides, or NHWC ones for a 4-D float constant when layout is NHWC and
     * the op is not row_major; dev[n_in + i] is the same form of 1 - x where the engine has
     * one (FusedConv's slope), else ptr NULL. host[i] is the original value when the engine
     * kept one, else NULL. */
    kiln_status (*prepare_packed)(const kiln_node *node, const void *params, const kiln_value *const *host,
                                  const kiln_cuda_tensor *dev, kiln_dtype dt, kiln_layout layout, void **state,
                                  kiln_err *err);
    /* --- end weights in run-time form --- */
} kiln_cuda_op;

const kiln_cuda_op *kiln__cuda_op_find(const char *domain, const char *op_type);

/* Per-family tables, each ending with a zeroed entry. */
extern const kiln_cuda_op kiln__cuda_ops_elementwise[];
extern const kiln_cuda_op kiln__cuda_ops_movement[];
extern const kiln_cuda_op kiln__cuda_ops_resize[];
extern const kiln_cuda_op kiln__cuda_ops_pool[];
extern const kiln_cuda_op kiln__cuda_ops_reduce[];
extern const kiln_cuda_op kiln__cuda_ops_norm[];
extern const kiln_cuda_op kiln__cuda_ops_conv[];
extern const kiln_cuda_op kiln__cuda_ops_gemm[];

/* Turns a CUDA runtime error code (from a launcher) into a status with context. */
kiln_status kiln__cuda_check(int cuda_error, const kiln_node *node, const char *what, kiln_err *err);

/* Row-major strides for dims; NHWC strides for a 4-D tensor. */
void kiln__cuda_strides(kiln_cuda_tensor *t, kiln_layout layout);

#endif
