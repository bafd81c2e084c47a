/*
 * Which layers of an fp16 build keep fp32: "fp16 with fp32 fallback for
 * layers that need range". kiln has no calibration data at build time, so the
 * rule is static and conservative, from what the graph itself says:
 *   - a constant float input holds a value beyond fp16's range (|v| > 65504),
 *     e.g. a -1e9 attention mask or a large scale; storing it would make inf;
 *   - the op's result can grow without bound from well-scaled inputs: Exp, Pow
 *     (unless the exponent is a constant 0.5, 1 or 2), CumSum, division or
 *     Reciprocal by a computed (non-constant) tensor, and sums/products over
 *     many elements (ReduceSum, ReduceSumSquare, ReduceL1/L2, ReduceProd,
 *     ReduceLogSumExp) where more than REDUCE_LIMIT elements are reduced.
 * Everything else (convolutions, GEMMs, normalizations, softmax) accumulates in
 * fp32 registers and stores a value whose range the fp16 input bounds.
 * --layerPrecisions pins override this rule in both directions.
 */
#include "engine.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define FP16_MAX 65504.0
#define REDUCE_LIMIT 4096

static bool is_float(kiln_dtype t) { return t == KILN_DT_FLOAT || t == KILN_DT_FLOAT16 || t == KILN_DT_DOUBLE || t == KILN_DT_BFLOAT16; }

/* Largest finite |v| of a host-known float value, or -1 when not known. */
static double max_abs(const kiln_value *v)
{
    if (!v || !v->data || !is_float(v->dtype)) return -1;
    int64_t n = kiln__value_numel(v);
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = fabs(kiln__value_get_f64(v, i));
        if (isfinite(x) && x > m) m = x;
    }
    return m;
}

static bool known(const kiln_value *v) { return v && v->data; }

static int64_t reduced_count(const kiln_node *nd, const kiln_value *const *in, const kiln_value *out)
{
    int64_t nin = in[0] ? kiln__value_numel(in[0]) : -1, nout = out ? kiln__value_numel(out) : -1;
    (void)nd;
    return nin > 0 && nout > 0 ? nin / nout : -1;
}

bool kiln__fp16_needs_fp32(const kiln_node *nd, const kiln_value *const *in, const kiln_value *out, char *why, size_t n)
{
    for (int j = 0; j < nd->n_in; j++) {
        double m = max_abs(in[j]);
        if (m > FP16_MAX) {
            snprintf(why, n, "constant input %d holds |values| up to %g, beyond fp16's 65504", j, m);
            return true;
        }
    }
    const char *op = nd->op_type;
    if (nd->domain && *nd->domain) return false;
    if (!strcmp(op, "Exp") || !strcmp(op, "CumSum")) {
        snprintf(why, n, "%s can overflow fp16", op);
        return true;
    }
    if (!strcmp(op, "Pow")) {
        double e = nd->n_in > 1 && known(in[1]) && kiln__value_numel(in[1]) == 1 ? kiln__value_get_f64(in[1], 0) : NAN;
        if (e == 0.5 || e == 1 || e == 2) return false;
        snprintf(why, n, "Pow with a %s exponent can overflow fp16", isnan(e) ? "computed" : "large");
        return true;
    }
    if ((!strcmp(op, "Div") && nd->n_in > 1 && !known(in[1])) || !strcmp(op, "Reciprocal")) {
        if (!strcmp(op, "Reciprocal") && known(in[0])) return false;
        snprintf(why, n, "%s by a computed tensor can overflow fp16 near zero", op);
        return true;
    }
    static const char *const sums[] = {"ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceProd", "ReduceLogSumExp"};
    for (size_t k = 0; k < sizeof sums / sizeof sums[0]; k++) {
        if (strcmp(op, sums[k])) continue;
        int64_t c = reduced_count(nd, in, out);
        if (c > REDUCE_LIMIT || !strcmp(op, "ReduceProd")) {
            snprintf(why, n, "%s over %lld elements can overflow fp16", op, (long long)c);
            return true;
        }
    }
    return false;
}
