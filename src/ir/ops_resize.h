/*
 * The resize family's parsed attributes (Resize 10..19, Upsample 1/7/9) and
 * the geometry its kernels share with infer() (src/ir/ops_resize.c).
 * Private to the schemas and the backends.
 */
#ifndef KILN_OPS_RESIZE_H
#define KILN_OPS_RESIZE_H

#include "ir.h"

typedef enum kiln_resize_mode {
    KILN_RESIZE_NEAREST,
    KILN_RESIZE_LINEAR, /* also Upsample-1's "bilinear" */
    KILN_RESIZE_CUBIC,
} kiln_resize_mode;

/* coordinate_transformation_mode: how an output coordinate maps back to the input. */
typedef enum kiln_resize_ctm {
    KILN_RESIZE_CTM_HALF_PIXEL,
    KILN_RESIZE_CTM_HALF_PIXEL_SYMMETRIC,
    KILN_RESIZE_CTM_PYTORCH_HALF_PIXEL,
    KILN_RESIZE_CTM_ALIGN_CORNERS,
    KILN_RESIZE_CTM_ASYMMETRIC,
    KILN_RESIZE_CTM_TF_HALF_PIXEL_FOR_NN,
    KILN_RESIZE_CTM_TF_CROP_AND_RESIZE,
} kiln_resize_ctm;

/* nearest_mode: how a fractional input coordinate picks its pixel. */
typedef enum kiln_resize_nearest {
    KILN_RESIZE_NEAREST_ROUND_PREFER_FLOOR,
    KILN_RESIZE_NEAREST_ROUND_PREFER_CEIL,
    KILN_RESIZE_NEAREST_FLOOR,
    KILN_RESIZE_NEAREST_CEIL,
    KILN_RESIZE_NEAREST_SIMPLE, /* Resize-10 / Upsample: floor when upsampling, ceil when downsampling */
} kiln_resize_nearest;

/* keep_aspect_ratio_policy (Resize-18) for `sizes`. */
typedef enum kiln_resize_keep_aspect {
    KILN_RESIZE_STRETCH,
    KILN_RESIZE_NOT_LARGER,
    KILN_RESIZE_NOT_SMALLER,
} kiln_resize_keep_aspect;

/*
 * Resize and Upsample, with each opset's defaults already applied (e.g.
 * Resize-10 and Upsample are asymmetric with the legacy nearest rounding).
 */
typedef struct kiln_resize_params {
    bool upsample;               /* Upsample (no roi / sizes / cubic) rather than Resize */
    kiln_resize_mode mode;
    kiln_resize_ctm ctm;
    kiln_resize_nearest nearest;
    bool exclude_outside;        /* taps outside the input get weight 0, the rest renormalized */
    bool antialias;              /* linear/cubic filters widen by 1/scale when downscaling */
    kiln_resize_keep_aspect keep_aspect;
    float cubic_a;               /* cubic_coeff_a */
    float extrapolation;         /* tf_crop_and_resize: value outside the input */
    int n_axes;                  /* entries of 'axes' (Resize-18); 0: all axes */
    int64_t axes[KILN_MAX_DIMS]; /* as given: may be negative */
    int n_attr_scales;           /* Upsample-1/7: scales from attributes, one per dim; 0: none */
    float attr_scales[KILN_MAX_DIMS];
    int roi_input;               /* input positions of roi / scales / sizes for this op and opset; -1: none */
    int scales_input;
    int sizes_input;
} kiln_resize_params;

/*
 * Output dims, per-axis scale factors and region of interest (roi[0..r)
 * starts, roi[r..2r) ends, in normalized input coordinates) once X has
 * constant in_dims[r] and scales / sizes / roi have data (always at run
 * time). Used by infer() and the kernels so they agree exactly. Fails on
 * malformed scales/sizes/roi or absurd output sizes.
 */
kiln_status kiln__resize_geometry(const kiln_node *node, const kiln_resize_params *p,
                                  const kiln_value *const *in, int r, const int64_t *in_dims,
                                  int64_t *out_dims, double *scales, double *roi, kiln_err *err);

#endif
