/*
 * The reduce family's parsed attributes and the axis rule its kernels share
 * with infer() (src/ir/ops_reduce.c). Private to the schemas and the
 * backends.
 */
#ifndef KILN_OPS_REDUCE_H
#define KILN_OPS_REDUCE_H

#include "ir.h"

typedef enum kiln_reduce_op {
    KILN_REDUCE_SUM,
    KILN_REDUCE_MEAN,
    KILN_REDUCE_MAX,
    KILN_REDUCE_MIN,
    KILN_REDUCE_PROD,
    KILN_REDUCE_L1,
    KILN_REDUCE_L2,
    KILN_REDUCE_LOG_SUM,
    KILN_REDUCE_LOG_SUM_EXP,
    KILN_REDUCE_SUM_SQUARE,
    KILN_REDUCE_ARGMAX,
    KILN_REDUCE_ARGMIN,
} kiln_reduce_op;

/*
 * Reduce* and ArgMax/ArgMin. Reduce* take their axes from the 'axes'
 * attribute up to one opset and from an optional second input from then on
 * (ReduceSum: 13, the others: 18); ArgMax/ArgMin have one 'axis'.
 */
typedef struct kiln_reduce_params {
    kiln_reduce_op op;
    bool keepdims;               /* keep reduced axes as dims of 1 (default) */
    /* Reduce*: */
    bool axes_from_input;        /* the opset takes axes as input 1, not as an attribute */
    bool noop_with_empty_axes;   /* axes_from_input: no axes means no reduction, not all axes */
    int64_t n_axes;              /* attribute form: entries of 'axes' (0: all axes) */
    int64_t axes[KILN_MAX_DIMS]; /* the first min(n_axes, KILN_MAX_DIMS), as given (may be negative) */
    /* ArgMax / ArgMin: */
    int64_t axis;                /* as given (may be negative) */
    bool select_last_index;      /* ties go to the last index, not the first */
} kiln_reduce_params;

/*
 * Marks the axes a Reduce* node reduces for an input of rank r (-1:
 * unknown) in mask[]. *known is false when they come from an input whose
 * contents are not known (static inference); then *n_axes_hint is the axes
 * count when that is known, else -1. Always known at run time. Fails on
 * out-of-range or repeated axes.
 */
kiln_status kiln__reduce_axes(const kiln_node *node, const kiln_reduce_params *p,
                              const kiln_value *const *in, int r, bool mask[KILN_MAX_DIMS],
                              bool *known, int *n_axes_hint, kiln_err *err);

#endif
