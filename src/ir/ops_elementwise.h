/*
 * The elementwise family's parsed attributes and the rules its kernels share
 * with infer() (src/ir/ops_elementwise.c). Private to the schemas and the
 * backends.
 */
#ifndef KILN_OPS_ELEMENTWISE_H
#define KILN_OPS_ELEMENTWISE_H

#include "ir.h"

/* The schema's own description of the op (kind, accepted types); opaque outside ops_elementwise.c. */
struct kiln_ew_desc;

typedef struct kiln_ew_params {
    const struct kiln_ew_desc *desc;
    kiln_dtype to;          /* Cast, BitCast: the target type */
    bool legacy_bcast;      /* before opset 7 with broadcast=1: B lines up with A at `axis` */
    bool has_axis;          /* legacy_bcast: 'axis' given; without it B lines up with A's trailing dims */
    int64_t axis;           /* legacy_bcast: 'axis' as given (may be negative) */
    bool fmod;              /* Mod: fmod=1, C's fmod (sign of the dividend), not Python's mod */
    bool shift_left;        /* BitShift: direction LEFT, else RIGHT */
    bool detect_negative;   /* IsInf: -inf counts (default) */
    bool detect_positive;   /* IsInf: +inf counts (default) */
} kiln_ew_params;

/*
 * B's shape as it broadcasts against A's: B itself, or under legacy_bcast
 * B's dims placed at `axis` of A's rank with ones around them, so the numpy
 * rule applies afterwards. Fails when B does not fit into A there.
 */
kiln_status kiln__ew_b_shape(const kiln_node *node, const kiln_ew_params *p, const kiln_shape *a,
                             const kiln_shape *b, kiln_shape *eff, kiln_err *err);

#endif
