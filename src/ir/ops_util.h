/*
 * Helpers shared by the op schema families (src/ir/ops_*.c): reading small
 * integer shape tensors, carrying their contents as `symval`, checking output
 * sizes and axes, and dim arithmetic that cannot overflow. Private to the
 * ops files and the backends' kernels; not part of ir.h because only op code
 * needs them.
 */
#ifndef KILN_OPS_UTIL_H
#define KILN_OPS_UTIL_H

#include "ir.h"

/* Largest element count an op may create from shape data; guards against absurd sizes. */
#define KILN_OPS_MAX_NUMEL ((int64_t)1 << 32)

/* float32, float64, float16 or bfloat16. */
static inline bool kiln__dtype_is_float(kiln_dtype dt)
{
    return dt == KILN_DT_FLOAT || dt == KILN_DT_DOUBLE || dt == KILN_DT_FLOAT16 || dt == KILN_DT_BFLOAT16;
}

/* Drops the symval of every output of the node (infer starts from a clean slate). */
void kiln__ops_clear_symval(const kiln_node *node, kiln_value *out);
/* Sets out's symval to d[0..n); clears it when n is 0 or over KILN_SYMVAL_MAX. */
void kiln__ops_set_symval(kiln_value *out, const kiln_dim *d, int n);

/*
 * Reads a small integer tensor (rank <= 1) as dims: from data when set (always
 * at run time), else from symval. *known is false when the contents are not
 * known statically. Fails when the tensor has more than `max` entries or is
 * not an int64/int32 vector; `what` names it in errors.
 */
kiln_status kiln__ops_read_ints(const kiln_node *node, const kiln_value *v, const char *what,
                                kiln_dim *out, int max, int *n, bool *known, kiln_err *err);
/* Entry count of a rank-1 value when its length is a known constant, else -1. */
int64_t kiln__ops_const_len(const kiln_value *v);
/* Fails on a negative constant dim or more than KILN_OPS_MAX_NUMEL elements; unknown dims pass. */
kiln_status kiln__ops_check_numel(const kiln_node *node, const kiln_shape *s, kiln_err *err);
/* Axis in [-rank, rank) made non-negative into *out; fails when out of range. */
kiln_status kiln__ops_norm_axis(const kiln_node *node, int64_t axis, int rank, int64_t *out,
                                kiln_err *err);

/*
 * d + c, d * c and floor(d / c) that cannot overflow, whatever dims a model
 * declares: a constant result that would overflow, or a symbolic form with
 * factors too large to combine safely, becomes unknown. Real run-time dims are
 * far below these bounds, so run-time shapes stay exact.
 */
kiln_dim kiln__ops_dim_add(kiln_dim d, int64_t c);
kiln_dim kiln__ops_dim_mul(kiln_dim d, int64_t c);
kiln_dim kiln__ops_dim_div(kiln_dim d, int64_t c);

/*
 * Largest product of (nonzero) dims conv, pool and matmul accept: keeps every
 * size product in their kernels far from int64 overflow even when a zero dim
 * makes the tensor itself empty.
 */
#define KILN_OPS_SIZE_LIMIT ((int64_t)1 << 50)
/* Fails (naming `what`) on a negative constant dim or constant dims whose product passes the limit. */
kiln_status kiln__ops_size_guard(const kiln_node *node, const kiln_shape *s, const char *what, kiln_err *err);

/* ---- Window attributes of the conv and pool families ---- */

/* Spatial dims a conv or pool window may have: a tensor's dims less N and C. */
#define KILN_MAX_SPATIAL (KILN_MAX_DIMS - 2)

/* 'auto_pad': explicit pads, or pads chosen so the output is ceil(in / stride) ("SAME"), or none. */
typedef enum kiln_auto_pad {
    KILN_AUTO_PAD_NOTSET,
    KILN_AUTO_PAD_SAME_UPPER, /* the odd pad goes at the end */
    KILN_AUTO_PAD_SAME_LOWER, /* the odd pad goes at the start */
    KILN_AUTO_PAD_VALID,
} kiln_auto_pad;

/* Reads 'auto_pad' (default NOTSET; "" counts as NOTSET); fails on other strings. */
kiln_status kiln__ops_read_auto_pad(const kiln_node *node, kiln_auto_pad *auto_pad, kiln_err *err);

/*
 * Reads INTS attribute `name` into dst: at most maxn entries, each in [lo, hi]
 * (else fails). *n is the count, -1 when the attribute is absent or empty.
 */
kiln_status kiln__ops_read_window_ints(const kiln_node *node, const char *name, int maxn, int64_t lo,
                                       int64_t hi, int64_t *dst, int *n, kiln_err *err);

/*
 * Output length along spatial dim i (0-based, for messages) of a window of k
 * taps, stride s, dilation d and pads pb/pe swept over an input of length
 * `in` (symbolic H/W stay symbolic where the arithmetic allows). `same`:
 * auto_pad SAME_UPPER/SAME_LOWER (ceil(in / s), pads ignored). ceil_mode
 * (pools) rounds up but drops a last window that would start in the end
 * padding. Fails when a constant input is too small for the window.
 */
kiln_status kiln__ops_window_out_dim(const kiln_node *node, int i, kiln_dim in, int64_t k, int64_t s, int64_t d,
                                     int64_t pb, int64_t pe, bool same, bool ceil_mode, kiln_dim *out,
                                     kiln_err *err);

#endif
