/*
 * Forward convolutions through cuDNN's backend ("graph") API, private to the
 * conv family (cuda_ops_conv.c uses it, cuda_conv_graph.c implements it).
 * See cuda_conv_graph.c for the tactic encoding and the plan cache.
 */
#ifndef KILN_CUDA_CONV_GRAPH_H
#define KILN_CUDA_CONV_GRAPH_H

#include "../ir/ir.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KILN_CG_MAX_ND 5

/* Epilogue activations (the conv family's codes, see cuda_ops_conv.c). */
enum { KILN_CG_ACT_NONE = 0, KILN_CG_ACT_RELU, KILN_CG_ACT_LEAKY, KILN_CG_ACT_PRELU, KILN_CG_ACT_SIGMOID,
       KILN_CG_ACT_TANH, KILN_CG_ACT_CLIP };

/* Everything the operation graphs are built from: packed X, W, Y (dims in
 * ONNX order N, C, spatial..., strides in elements) and the epilogue the fused
 * variant computes, y = act(conv + B) * out_scale + z_scale * Z, or with
 * `after`, act((conv + B) * out_scale + z_scale * Z). fuse false: only the
 * plain convolution is offered. Zero-fill before use (it is compared bytewise). */
typedef struct kiln_cg_spec {
    int nd, ns;
    int dt;      /* kiln_dtype of X, W, Y, B, S, Z: FLOAT or FLOAT16 */
    int strict;  /* FLOAT without TF32: no tensor-core engines */
    int64_t x[KILN_CG_MAX_ND], xs[KILN_CG_MAX_ND];
    int64_t w[KILN_CG_MAX_ND], ws[KILN_CG_MAX_ND];
    int64_t y[KILN_CG_MAX_ND], ys[KILN_CG_MAX_ND];
    int64_t pad[3], stride[3], dil[3];
    int fuse;
    int has_b, has_z, after, act;
    double alpha, beta; /* LeakyRelu slope; Clip bounds */
    float out_scale, z_scale;
    int64_t zs[KILN_CG_MAX_ND];
} kiln_cg_spec;

/* Device pointers of one execution (NULL where the spec has no such tensor).
 * slope1 (1 - slope per channel, still in engine files) is no longer read: the
 * fused PRelu computes relu(v) + s * (v - relu(v)), exact for v >= 0. */
typedef struct kiln_cg_ptrs {
    const void *x, *w, *b, *slope, *slope1, *z;
    void *y;
} kiln_cg_ptrs;

/* What a tactic resolved to. */
typedef struct kiln_cg_choice {
    int found;    /* a plan exists (or was built) for it */
    int fused;    /* the plan computes the whole epilogue */
    int code;     /* the stable tactic code it has */
    size_t ws;    /* its workspace bytes */
    int64_t gidx; /* engine global index */
} kiln_cg_choice;

/* Number of tactics for this spec (codes 0..n-1, see cuda_conv_graph.c), or 0
 * when the backend API offers no engine (the caller uses the legacy API). */
int kiln__cg_tactic_count(void *cudnn, const kiln_cg_spec *sp);

/* Workspace bytes the tactic's plan needs at this spec, building what is
 * missing (operation graphs, heuristics, the execution plan; never call this
 * inside a CUDA graph capture). c->found 0: no usable plan (the caller falls
 * back to the legacy API); KILN_ERR_UNSUPPORTED: timing is true (the node is
 * being timed at this spec) and the tactic is not a candidate. Without timing
 * an unknown tactic resolves to the default. */
kiln_status kiln__cg_resolve(void *cudnn, const kiln_cg_spec *sp, int tactic, bool timing, size_t ws_avail,
                             kiln_cg_choice *c);

/* Resolves the tactic as above and enqueues its plan on the handle's stream
 * (an execute error drops that plan and gives c->found 0 so the caller falls
 * back, or, while timing, KILN_ERR_UNSUPPORTED).
 * build false (inside a CUDA graph capture): only cached plans are used, and
 * c->found 0 says there is none. ws: ws_avail bytes of workspace. */
kiln_status kiln__cg_run(void *cudnn, const kiln_cg_spec *sp, int tactic, bool timing, bool build, void *ws,
                         size_t ws_avail, const kiln_cg_ptrs *p, kiln_cg_choice *c, const kiln_node *node, kiln_err *err);

/* The latest refusal by cuDNN (a graph, heuristics or plan it did not accept),
 * for diagnostics; "" when none. */
const char *kiln__cg_diag(void);

#endif
