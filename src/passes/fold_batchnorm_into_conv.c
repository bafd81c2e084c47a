/*
 * fold_batchnorm_into_conv: Conv -> BatchNormalization (inference) becomes
 * one Conv with W' = W * k and B' = (B - mean) * k + beta, where
 * k = gamma / sqrt(var + epsilon), per output channel.
 *
 * Conditions: W (and B if given) and the four BatchNormalization inputs are
 * constants with one value per output channel; the conv output is read only
 * by the BatchNormalization and is not a graph output; the BatchNormalization
 * is in inference mode (one output, spatial). New constants are created for
 * W' and B' (W may be shared with another conv); the old ones go when unused.
 * The arithmetic is done in double and stored in W's type.
 */
#include "passes.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_float(kiln_dtype dt)
{
    return dt == KILN_DT_FLOAT || dt == KILN_DT_DOUBLE || dt == KILN_DT_FLOAT16 || dt == KILN_DT_BFLOAT16;
}

static bool bn_inference(const kiln_node *bn)
{
    if (bn->n_in != 5 || bn->n_out < 1 || bn->out[0] < 0) return false;
    for (int j = 1; j < bn->n_out; j++)
        if (bn->out[j] >= 0) return false;
    if (bn->opset >= 14 && kiln__attr_int(bn, "training_mode", 0) != 0) return false;
    if (bn->opset < 9 && kiln__attr_int(bn, "spatial", 1) == 0) return false;
    return true;
}

/* Per-channel vector of m values (any shape holding exactly m), else NULL. */
static const kiln_value *channel_vec(const kiln_network *net, int t, int64_t m)
{
    const kiln_value *v = kiln__graph_const(net, t);
    if (!v || !is_float(v->dtype) || kiln__value_numel(v) != m) return NULL;
    return v;
}

typedef enum { FOLD_OK, FOLD_NO, FOLD_FP16_RANGE } fold_result;

/* Checks the pattern for the BatchNormalization node bi and folds it; *res says what happened. */
static kiln_status try_fold(kiln_network *net, const kiln_pass_options *opts, const kiln_graph_uses *u,
                            bool *deleted, int bi, fold_result *res, kiln_err *err)
{
    *res = FOLD_NO;
    kiln_node *bn = &net->nodes[bi];
    if (!bn_inference(bn) || kiln__pass_pinned(opts, bn->name) || bn->in[0] < 0) return KILN_OK;
    int y = bn->in[0];
    const kiln_tensor *ty = &net->tensors[y];
    int ci = ty->producer;
    if (ci < 0 || deleted[ci] || ty->is_output || kiln__graph_use_count(u, y) != 1) return KILN_OK;
    kiln_node *cv = &net->nodes[ci];
    if (cv->domain[0] || strcmp(cv->op_type, "Conv") || kiln__pass_pinned(opts, cv->name)) return KILN_OK;
    if (cv->n_in < 2 || cv->n_out != 1 || cv->out[0] != y) return KILN_OK;
    const kiln_value *w = kiln__graph_const(net, cv->in[1]);
    if (!w || !is_float(w->dtype) || w->shape.rank < 1) return KILN_OK;
    int64_t m = w->shape.d[0].add, numel = kiln__value_numel(w);
    if (m <= 0 || numel % m) return KILN_OK;
    const kiln_value *b = NULL;
    if (cv->n_in > 2 && cv->in[2] >= 0) {
        b = kiln__graph_const(net, cv->in[2]);
        if (!b || b->dtype != w->dtype || kiln__value_numel(b) != m) return KILN_OK;
    }
    const kiln_value *gamma = channel_vec(net, bn->in[1], m), *beta = channel_vec(net, bn->in[2], m);
    const kiln_value *mean = channel_vec(net, bn->in[3], m), *var = channel_vec(net, bn->in[4], m);
    if (!gamma || !beta || !mean || !var) return KILN_OK;
    double eps = kiln__attr_float(bn, "epsilon", 1e-5f);
    int64_t per = numel / m;

    size_t es = kiln_dtype_size(w->dtype);
    kiln_value nw = {.dtype = w->dtype, .shape = w->shape, .nbytes = w->nbytes};
    kiln_value nb = {.dtype = w->dtype, .shape = kiln__shape_of(1, &m), .nbytes = (size_t)m * es};
    nw.data = kiln__malloc(nw.nbytes);
    nb.data = kiln__malloc(nb.nbytes);
    if (!nw.data || !nb.data) {
        free(nw.data);
        free(nb.data);
        return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    bool overflow16 = false;
    for (int64_t c = 0; c < m; c++) {
        double k = kiln__value_get_f64(gamma, c) / sqrt(kiln__value_get_f64(var, c) + eps);
        double bias = ((b ? kiln__value_get_f64(b, c) : 0.0) - kiln__value_get_f64(mean, c)) * k +
                      kiln__value_get_f64(beta, c);
        kiln__value_set_f64(&nb, c, bias);
        overflow16 |= !(fabs(bias) <= 65504.0);
        for (int64_t i = 0; i < per; i++) {
            double v = kiln__value_get_f64(w, c * per + i) * k;
            kiln__value_set_f64(&nw, c * per + i, v);
            overflow16 |= !(fabs(v) <= 65504.0);
        }
    }
    if (overflow16 && opts->precision == KILN_PREC_FP16) {
        /* Folded weights out of float16 range: leave the pair to run as it is. */
        free(nw.data);
        free(nb.data);
        *res = FOLD_FP16_RANGE;
        return KILN_OK;
    }
    char base[300];
    snprintf(base, sizeof base, "%.280s_W_bnfold", cv->name);
    int tw = kiln__graph_add_constant(net, base, nw.dtype, &nw.shape, nw.data, nw.nbytes, err);
    if (tw < 0) {
        free(nb.data);
        return KILN_ERR_OUT_OF_MEMORY;
    }
    snprintf(base, sizeof base, "%.280s_B_bnfold", cv->name);
    int tb = kiln__graph_add_constant(net, base, nb.dtype, &nb.shape, nb.data, nb.nbytes, err);
    if (tb < 0) return KILN_ERR_OUT_OF_MEMORY;
    kiln_status s = kiln__node_set_n_inputs(cv, 3, err);
    if (s) return s;
    cv->in[1] = tw;
    cv->in[2] = tb;
    /* The conv now writes the BatchNormalization's output tensor. */
    int z = bn->out[0];
    cv->out[0] = z;
    net->tensors[z].producer = ci;
    net->tensors[y].producer = -1;
    deleted[bi] = true;
    if ((s = kiln__node_add_fused_name(cv, bn->name, err))) return s;
    *res = FOLD_OK;
    return KILN_OK;
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
