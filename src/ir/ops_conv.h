/*
 * The conv family's parsed attributes (src/ir/ops_conv.c): Conv,
 * ConvTranspose, DeformConv. Private to the schemas and the backends.
 */
#ifndef KILN_OPS_CONV_H
#define KILN_OPS_CONV_H

#include "ops_util.h"

/*
 * Window attributes as given. Each count is the attribute's entry count, -1
 * when it is absent (or empty): then the default applies (stride and
 * dilation 1, pads and output_padding 0, kernel from W's dims). infer()
 * checked every count against the spatial rank before any kernel runs.
 */
typedef struct kiln_conv_params {
    kiln_auto_pad auto_pad;   /* DeformConv has none: always NOTSET */
    int64_t group;            /* >= 1 */
    int64_t offset_group;     /* DeformConv; 1 for the others */
    int n_kernel, n_strides, n_dil, n_pads, n_outpad, n_outshape;
    int64_t kernel[KILN_MAX_SPATIAL];   /* kernel_shape */
    int64_t strides[KILN_MAX_SPATIAL];
    int64_t dil[KILN_MAX_SPATIAL];      /* dilations */
    int64_t pads[2 * KILN_MAX_SPATIAL]; /* all begins, then all ends; n_pads is -1 unless auto_pad is NOTSET */
    int64_t outpad[KILN_MAX_SPATIAL];   /* ConvTranspose output_padding */
    int64_t outshape[KILN_MAX_DIMS];    /* ConvTranspose output_shape: spatial dims, or N, C and spatial */
} kiln_conv_params;

#endif
