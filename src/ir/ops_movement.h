/*
 * The movement family's parsed attributes and the rules its kernels share
 * with infer() (src/ir/ops_movement.c). Private to the schemas and the
 * backends.
 */
#ifndef KILN_OPS_MOVEMENT_H
#define KILN_OPS_MOVEMENT_H

#include "ir.h"

/*
 * Concat, Split, Gather, GatherElements: the 'axis' attribute, or the op's
 * default (Concat 1, the others 0). Not normalized: infer() checks it against
 * the rank; a negative axis counts from the end.
 */
typedef struct kiln_axis_params {
    int64_t axis;
} kiln_axis_params;

/* Transpose: the permutation; without 'perm' the dims are reversed. */
typedef struct kiln_transpose_params {
    int64_t n_perm;                /* entries of 'perm'; -1 when absent (reverse) */
    int64_t perm[KILN_MAX_DIMS];   /* the first min(n_perm, KILN_MAX_DIMS) entries */
} kiln_transpose_params;

/* DepthToSpace / SpaceToDepth. */
typedef struct kiln_depth_space_params {
    int64_t blocksize;  /* 1..1024 */
    bool crd;           /* DepthToSpace mode CRD (column, row, depth); false: DCR */
} kiln_depth_space_params;

/* Pad: how the border is filled. */
typedef enum kiln_pad_mode {
    KILN_PAD_CONSTANT,
    KILN_PAD_REFLECT,
    KILN_PAD_EDGE,
    KILN_PAD_WRAP,
} kiln_pad_mode;

typedef struct kiln_pad_params {
    kiln_pad_mode mode;
    bool attr_form;      /* opset < 11: pads and value are attributes, not inputs */
    float value;         /* attr_form: the constant fill ('value', default 0) */
    int64_t n_pads;      /* attr_form: entries of 'pads' (or 'paddings'); -1 when absent */
    int64_t pads[2 * KILN_MAX_DIMS]; /* the first min(n_pads, 2 * KILN_MAX_DIMS) entries */
} kiln_pad_params;

/*
 * Slice of a value with constant dims[rank], once starts/ends/axes/steps are
 * known (always at run time): per axis the first index, the step and the
 * element count. Fails on malformed starts/ends/axes/steps.
 */
kiln_status kiln__slice_resolve(const kiln_node *node, const kiln_value *const *in, int rank,
                                const int64_t *dims, int64_t *start, int64_t *step, int64_t *count,
                                kiln_err *err);

/* Pad's per-axis begin/end pads once known (always at run time); fails on malformed pads/axes. */
kiln_status kiln__pad_resolve(const kiln_node *node, const kiln_pad_params *p,
                              const kiln_value *const *in, int rank, int64_t *begin, int64_t *end,
                              kiln_err *err);

#endif
