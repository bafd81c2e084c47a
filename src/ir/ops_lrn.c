/*
 * Op schema of the lrn family: LRN (local response normalization across
 * channels, as in AlexNet and GoogLeNet).
 */
#include "ir.h"
#include <math.h>

/* The same layout is declared in src/cpu/cpu_lrn.c (checked via kiln__lrn_params_size). */
typedef struct lrn_params {
    int64_t size;
    float alpha;
    float beta;
    float bias;
} lrn_params;

const size_t kiln__lrn_params_size = sizeof(lrn_params);

static kiln_status lrn_parse(const kiln_node *node, void *params, kiln_err *err)
{
    lrn_params *p = params;
    static const char *const floats[] = {"alpha", "beta", "bias"};
    for (int i = 0; i < 3; i++) {
        kiln_status st = kiln__attr_expect(node, floats[i], KILN_ATTR_FLOAT, err);
        if (st) return st;
    }
    kiln_status st = kiln__attr_expect(node, "size", KILN_ATTR_INT, err);
    if (st) return st;
    if (!kiln__node_attr(node, "size"))
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (LRN): attribute 'size' is required",
                          node->name);
    p->size = kiln__attr_int(node, "size", 0);
    p->alpha = kiln__attr_float(node, "alpha", 1e-4f);
    p->beta = kiln__attr_float(node, "beta", 0.75f);
    p->bias = kiln__attr_float(node, "bias", 1.0f);
    /* A window larger than any channel count we could hold is as good as an error. */
    if (p->size < 1 || p->size > ((int64_t)1 << 30))
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (LRN): size is %lld, must be >= 1",
                          node->name, (long long)p->size);
    if (!isfinite(p->alpha) || !isfinite(p->beta) || !isfinite(p->bias))
        return kiln__fail(err, KILN_ERR_INVALID_ARG,
                          "node '%s' (LRN): alpha %g, beta %g, bias %g must be finite", node->name,
                          (double)p->alpha, (double)p->beta, (double)p->bias);
    return KILN_OK;
}

static kiln_status lrn_infer(const kiln_node *node, const void *params,
                             const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    const kiln_value *x = in[0];
    kiln_dtype dt = x->dtype;
    if (dt != KILN_DT_UNDEFINED && dt != KILN_DT_FLOAT && dt != KILN_DT_DOUBLE &&
        dt != KILN_DT_FLOAT16 && dt != KILN_DT_BFLOAT16)
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (LRN): input must be a float type, got %s",
                          node->name, kiln_dtype_name(dt));
    if (x->shape.rank >= 0 && x->shape.rank < 2)
        return kiln__fail(err, KILN_ERR_SHAPE,
                          "node '%s' (LRN): input must be N x C x ..., got rank %d", node->name,
                          x->shape.rank);
    for (int i = 0; i < node->n_out; i++) out[i].symval_n = 0;
    kiln__value_set_type(&out[0], dt, &x->shape);
    return KILN_OK;
}

const kiln_op_schema kiln__ops_lrn[] = {
    {"LRN", "", 1, 1, 1, 1, 1, sizeof(lrn_params), lrn_parse, lrn_infer},
    {0},
};
