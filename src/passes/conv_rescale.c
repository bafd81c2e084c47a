/*
 * Per-output-channel affine folding into a Conv's constant W and B, shared by
 * fold_batchnorm_into_conv and fold_scale_into_conv:
 *   W'[c] = W[c] * k[c],  B'[c] = B[c] * k[c] + shift[c]   (B = 0 when absent).
 * The arithmetic is done in double and stored in W's type. New constants are
 * created (W may be shared with another conv); the old ones go when unused.
 * A conv without B stays without one when every shift is 0.
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

bool kiln__conv_foldable(const kiln_network *net, const kiln_pass_options *opts, const kiln_node *cv, int64_t *m)
{
    if (cv->domain[0] || strcmp(cv->op_type, "Conv") || kiln__pass_pinned(opts, cv->name)) return false;
    if (cv->n_in < 2 || cv->n_out != 1 || cv->out[0] < 0) return false;
    const kiln_value *w = kiln__graph_const(net, cv->in[1]);
    if (!w || !is_float(w->dtype) || w->shape.rank < 1) return false;
    *m = w->shape.d[0].add;
    if (*m <= 0 || kiln__value_numel(w) % *m) return false;
    if (cv->n_in > 2 && cv->in[2] >= 0) {
        const kiln_value *b = kiln__graph_const(net, cv->in[2]);
        if (!b || b->dtype != w->dtype || kiln__value_numel(b) != *m) return false;
    }
    return true;
}

kiln_status kiln__conv_fold_affine(kiln_network *net, const kiln_pass_options *opts, kiln_node *cv, const double *k,
                                   const double *shift, const char *suffix, bool *refused, kiln_err *err)
{
    *refused = false;
    const kiln_value *w = kiln__graph_const(net, cv->in[1]);
    const kiln_value *b = cv->n_in > 2 && cv->in[2] >= 0 ? kiln__graph_const(net, cv->in[2]) : NULL;
    int64_t m = w->shape.d[0].add, per = kiln__value_numel(w) / m;
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
    bool overflow16 = false, need_b = b != NULL;
    for (int64_t c = 0; c < m; c++) {
        need_b |= shift[c] != 0;
        double bias = (b ? kiln__value_get_f64(b, c) : 0.0) * k[c] + shift[c];
        kiln__value_set_f64(&nb, c, bias);
        overflow16 |= !(fabs(bias) <= 65504.0);
        for (int64_t i = 0; i < per; i++) {
            double v = kiln__value_get_f64(w, c * per + i) * k[c];
            kiln__value_set_f64(&nw, c * per + i, v);
            overflow16 |= !(fabs(v) <= 65504.0);
        }
    }
    if (overflow16 && opts->precision == KILN_PREC_FP16) {
        /* Folded values out of float16 range: the pair runs as it is. */
        free(nw.data);
        free(nb.data);
        *refused = true;
        return KILN_OK;
    }
    char base[300];
    snprintf(base, sizeof base, "%.270s_W_%s", cv->name, suffix);
    int tw = kiln__graph_add_constant(net, base, nw.dtype, &nw.shape, nw.data, nw.nbytes, err);
    if (tw < 0) {
        free(nb.data);
        return KILN_ERR_OUT_OF_MEMORY;
    }
    cv->in[1] = tw;
    if (!need_b) {
        free(nb.data);
        return KILN_OK;
    }
    snprintf(base, sizeof base, "%.270s_B_%s", cv->name, suffix);
    int tb = kiln__graph_add_constant(net, base, nb.dtype, &nb.shape, nb.data, nb.nbytes, err);
    if (tb < 0) return KILN_ERR_OUT_OF_MEMORY;
    kiln_status s = kiln__node_set_n_inputs(cv, 3, err);
    if (s) return s;
    cv->in[2] = tb;
    return KILN_OK;
}

kiln_status kiln__conv_absorb(kiln_network *net, int ci, int ni, bool *deleted, kiln_err *err)
{
    kiln_node *cv = &net->nodes[ci], *n = &net->nodes[ni];
    int y = cv->out[0], z = n->out[0];
    cv->out[0] = z;
    net->tensors[z].producer = ci;
    net->tensors[y].producer = -1;
    deleted[ni] = true;
    return kiln__node_add_fused_name(cv, n->name, err);
}
