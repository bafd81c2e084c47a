/*
 * The sampling family's parsed attributes (src/ir/ops_sampling.c). Private
 * to the schemas and the backends.
 */
#ifndef KILN_OPS_SAMPLING_H
#define KILN_OPS_SAMPLING_H

#include "ir.h"

/* GridSample's interpolation ("bilinear"/"bicubic" in opset 16, "linear"/"cubic" from 20). */
typedef enum kiln_gridsample_mode {
    KILN_GRIDSAMPLE_NEAREST,
    KILN_GRIDSAMPLE_LINEAR,
    KILN_GRIDSAMPLE_CUBIC,
} kiln_gridsample_mode;

/* What taps outside the input read. */
typedef enum kiln_gridsample_padding {
    KILN_GRIDSAMPLE_ZEROS,
    KILN_GRIDSAMPLE_BORDER,     /* the nearest edge value */
    KILN_GRIDSAMPLE_REFLECTION, /* mirrored at the borders */
} kiln_gridsample_padding;

typedef struct kiln_gridsample_params {
    kiln_gridsample_mode mode;
    kiln_gridsample_padding padding;
    bool align_corners; /* -1 and 1 are the centers of the corner pixels, not their outer edges */
} kiln_gridsample_params;

#endif
