/*
 * CPU reference backend: plain C kernels, float32 math for float types
 * (float16/bfloat16 converted on load/store), exact integer math for integers.
 */
#ifndef KILN_CPU_H
#define KILN_CPU_H

#include "../ir/ir.h"

/*
 * A kernel runs one node. in[i] (NULL for omitted optional inputs) have data
 * and constant shapes; out[i] already carry the dtype and shape from the
 * schema's infer() and a zeroed buffer of out[i].nbytes (NULL entries for
 * omitted optional outputs). The kernel fills out[i].data.
 */
typedef kiln_status (*kiln_cpu_kernel_fn)(const kiln_node *node, const void *params,
                                          const kiln_value *const *in, kiln_value *out,
                                          kiln_err *err);

typedef struct kiln_cpu_kernel {
    const char *op_type;
    const char *domain;
    kiln_cpu_kernel_fn run;
} kiln_cpu_kernel;

const kiln_cpu_kernel *kiln__cpu_kernel_find(const char *domain, const char *op_type);

/* Runs one node: infer, allocate out[i].data (zeroed), kernel. out[] must be zeroed. */
kiln_status kiln__cpu_run_node(const kiln_node *node, const kiln_value *const *in, kiln_value *out, kiln_err *err);

/* Static shape inference that also folds nodes whose inputs are all constant. */
kiln_status kiln__cpu_infer_and_fold(kiln_network *net, kiln_err *err);

/* Each op family file exports a table ending with a zeroed entry. */
extern const kiln_cpu_kernel kiln__cpu_elementwise[];
extern const kiln_cpu_kernel kiln__cpu_activation[];
extern const kiln_cpu_kernel kiln__cpu_conv[];
extern const kiln_cpu_kernel kiln__cpu_pool[];
extern const kiln_cpu_kernel kiln__cpu_matmul[];
extern const kiln_cpu_kernel kiln__cpu_shape[];
extern const kiln_cpu_kernel kiln__cpu_movement[];
extern const kiln_cpu_kernel kiln__cpu_resize[];
extern const kiln_cpu_kernel kiln__cpu_reduce[];
extern const kiln_cpu_kernel kiln__cpu_norm[];
extern const kiln_cpu_kernel kiln__cpu_sampling[];
extern const kiln_cpu_kernel kiln__cpu_lrn[];
extern const kiln_cpu_kernel kiln__cpu_indexing[];
extern const kiln_cpu_kernel kiln__cpu_fused[];

/* ---- DeformConv for the built-in DeformConv plugin (src/cpu/cpu_conv.c) ---- */
/* 2-D deformable convolution geometry, ONNX DeformConv semantics (begin pads only matter). */
typedef struct kiln__deform_geom {
    int64_t n, c, h, w;      /* X */
    int64_t m, oh, ow;       /* Y channels, spatial size */
    int64_t kh, kw, sh, sw, ph, pw, dh, dw;
    int64_t group, offset_group;
} kiln__deform_geom;
/* Row-major contiguous float data; mask and bias may be NULL; y is overwritten. Runs the
 * DeformConv CPU kernel's own code (bilinear im2col + GEMM). Returns 0, or -1 when out of
 * memory. The caller has validated the geometry (divisibility, sizes, group >= 1). */
int kiln__cpu_deform_conv_f32(const kiln__deform_geom *g, const float *x, const float *w, const float *off,
                              const float *mask, const float *bias, float *y);
/* ---- end DeformConv plugin ---- */

#endif
