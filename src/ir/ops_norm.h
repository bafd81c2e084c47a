/*
 * The norm family's parsed attributes (src/ir/ops_norm.c). Private to the
 * schemas and the backends.
 */
#ifndef KILN_OPS_NORM_H
#define KILN_OPS_NORM_H

#include "ir.h"

/*
 * One struct for BatchNormalization, InstanceNormalization,
 * LayerNormalization, GroupNormalization and LpNormalization; each op fills
 * the fields it has (the rest stay zero), with its opset's defaults applied.
 */
typedef struct kiln_norm_params {
    float epsilon;      /* added to the variance; >= 0, finite */
    float momentum;     /* BatchNormalization training: running = running * momentum + batch * (1 - momentum) */
    bool training;      /* BatchNormalization-14+: training_mode=1, normalize with batch statistics */
    bool spatial;       /* BatchNormalization: statistics per channel; false (before opset 9 only):
                           per (C, D1, ...) element */
    int64_t axis;       /* LayerNormalization (default -1), LpNormalization (default -1); not normalized */
    int64_t p;          /* LpNormalization: 1 or 2 */
    int64_t num_groups; /* GroupNormalization: >= 1 */
    int64_t stash_type; /* LayerNormalization / GroupNormalization: dtype of Mean / InvStdDev (a float type) */
    bool group_scale;   /* GroupNormalization-18: scale and bias per group, not per channel (21+) */
} kiln_norm_params;

#endif
