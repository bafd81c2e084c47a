/*
 * fold_batchnorm_into_conv: Conv -> BatchNormalization (inference) becomes
 * one Conv with W' = W * k and B' = (B - mean) * k + beta, where
 * k = gamma / sqrt(var + epsilon), per output channel.
 *
 * Conditions: W (and B if given) and the four BatchNormalization inputs are
 * constants with one value per output channel; the conv output is read only
 * by the BatchNormalization and is not a graph output; the BatchNormalization
 * is in inference mode (one output, spatial). See conv_rescale.c for how W
 * and B are rewritten.
 */
#include "passes.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool bn_inference(const kiln_node *bn)
{
    if (bn->n_in != 5 || bn->n_out < 1 || bn->out[0] < 0 || bn->in[0] < 0) return false;
    for (int j = 1; j < bn->n_out; j++)
        if (bn->out[j] >= 0) return false;
    if (bn->opset >= 14 && kiln__attr_int(bn, "training_mode", 0) != 0) return false;
    if (bn->opset < 9 && kiln__attr_int(bn, "spatial", 1) == 0) return false;
    return true;
}

/* Per-channel vector of m float values (any shape holding exactly m), else NULL. */
static const kiln_value *channel_vec(const kiln_network *net, int t, int64_t m)
{
    const kiln_value *v = kiln__graph_const(net, t);
    if (!v || kiln__value_numel(v) != m) return NULL;
    kiln_dtype dt = v->dtype;
    if (dt != KILN_DT_FLOAT && dt != KILN_DT_DOUBLE && dt != KILN_DT_FLOAT16 && dt != KILN_DT_BFLOAT16) return NULL;
    return v;
}

typedef enum { FOLD_OK, FOLD_NO, FOLD_FP16_RANGE } fold_result;

/* Checks the pattern for the BatchNormalization node bi and folds it; *res says what happened. */
static kiln_status try_fold(kiln_network *net, const kiln_pass_options *opts, const kiln_graph_uses *u,
                            bool *deleted, int bi, fold_result *res, kiln_err *err)
{
    *res = FOLD_NO;
    kiln_node *bn = &net->nodes[bi];
    if (!bn_inference(bn) || kiln__pass_pinned(opts, bn->name)) return KILN_OK;
    int y = bn->in[0];
    const kiln_tensor *ty = &net->tensors[y];
    int ci = ty->producer;
    int64_t m;
    if (ci < 0 || deleted[ci] || ty->is_output || kiln__graph_use_count(u, y) != 1) return KILN_OK;
    if (!kiln__conv_foldable(net, opts, &net->nodes[ci], &m)) return KILN_OK;
    const kiln_value *gamma = channel_vec(net, bn->in[1], m), *beta = channel_vec(net, bn->in[2], m);
    const kiln_value *mean = channel_vec(net, bn->in[3], m), *var = channel_vec(net, bn->in[4], m);
    if (!gamma || !beta || !mean || !var) return KILN_OK;
    double eps = kiln__attr_float(bn, "epsilon", 1e-5f);
    double *k = kiln__calloc((size_t)m, 2 * sizeof(double));
    if (!k) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    double *shift = k + m;
    for (int64_t c = 0; c < m; c++) {
        k[c] = kiln__value_get_f64(gamma, c) / sqrt(kiln__value_get_f64(var, c) + eps);
        shift[c] = kiln__value_get_f64(beta, c) - kiln__value_get_f64(mean, c) * k[c];
    }
    bool refused;
    kiln_status s = kiln__conv_fold_affine(net, opts, &net->nodes[ci], k, shift, "bnfold", &refused, err);
    free(k);
    if (s) return s;
    if (refused) {
        *res = FOLD_FP16_RANGE;
        return KILN_OK;
    }
    *res = FOLD_OK;
    return kiln__conv_absorb(net, ci, bi, deleted, err);
}

kiln_status kiln__pass_fold_batchnorm_into_conv(kiln_network *net, const kiln_pass_options *opts,
                                                kiln_pass_stats *stats, kiln_err *err)
{
    kiln_graph_uses u = {0};
    bool *deleted = kiln__calloc((size_t)net->n_nodes + 1, sizeof(bool));
    if (!deleted) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    kiln_status s = kiln__graph_uses_build(net, NULL, &u, err);
    int folded = 0, fp16 = 0, bns = 0;
    for (int i = 0; i < net->n_nodes && !s; i++) {
        kiln_node *n = &net->nodes[i];
        if (n->domain[0] || strcmp(n->op_type, "BatchNormalization")) continue;
        bns++;
        fold_result r;
        s = try_fold(net, opts, &u, deleted, i, &r, err);
        folded += r == FOLD_OK;
        fp16 += r == FOLD_FP16_RANGE;
    }
    kiln__graph_uses_free(&u);
    stats->changes = folded;
    if (bns) kiln__pass_note(stats, "folded %d of %d BatchNormalization into Conv", folded, bns);
    if (fp16) kiln__pass_note(stats, "%d left because the folded weights would overflow float16", fp16);
    if (folded) {
        kiln_err e2;
        kiln_status s2 = kiln__graph_compact(net, deleted, s ? &e2 : err);
        if (!s) s = s2;
    }
    free(deleted);
    return s;
}
