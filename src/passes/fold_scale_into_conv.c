/*
 * fold_scale_into_conv: a Conv followed by Mul, Add or Sub (conv output
 * first) with a constant holding one value per output channel, or a single
 * value, is folded into the conv's W and B:
 *   Mul by s:  W' = W*s, B' = B*s      Add a: B' = B + a      Sub a: B' = B - a
 * Repeated while the next node also fits (Caffe2 exports write BatchNorm as
 * BatchNormalization -> Mul -> Add; RRDB scales its residual branch by 0.2).
 * The constant must not broadcast the output to a larger shape: its dims are
 * 1 except, right-aligned, the channel axis. Same conditions on the conv
 * output as for fold_batchnorm_into_conv (one reader, not a graph output).
 */
#include "passes.h"
#include <stdlib.h>
#include <string.h>

/* Per-channel value of c for y (rank r, m channels) in k[] (m entries); false when c is not such a constant. */
static bool channel_values(const kiln_network *net, int t, kiln_dtype dt, const kiln_shape *ys, int64_t m, double *k)
{
    const kiln_value *c = kiln__graph_const(net, t);
    int r = ys->rank;
    if (!c || c->dtype != dt || r < 2 || c->shape.rank > r) return false;
    int off = r - c->shape.rank;
    for (int i = 0; i < c->shape.rank; i++) {
        int64_t d = c->shape.d[i].add;
        if (d != 1 && (off + i != 1 || d != m)) return false;
    }
    int64_t n = kiln__value_numel(c);
    for (int64_t ch = 0; ch < m; ch++) k[ch] = kiln__value_get_f64(c, n == 1 ? 0 : ch);
    return true;
}

kiln_status kiln__pass_fold_scale_into_conv(kiln_network *net, const kiln_pass_options *opts, kiln_pass_stats *stats,
                                            kiln_err *err)
{
    kiln_status s = kiln__net_infer_shapes(net, err);
    if (s) return s;
    int *order = NULL;
    if ((s = kiln__net_toposort(net, &order, err))) return s;
    kiln_graph_uses u = {0};
    bool *deleted = kiln__calloc((size_t)net->n_nodes + 1, sizeof(bool));
    double *k = NULL;
    if (!deleted) {
        free(order);
        return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    s = kiln__graph_uses_build(net, NULL, &u, err);
    int n_mul = 0, n_add = 0, fp16 = 0;
    for (int o = 0; o < net->n_nodes && !s; o++) {
        int ci = order[o];
        int64_t m;
        if (deleted[ci] || !kiln__conv_foldable(net, opts, &net->nodes[ci], &m)) continue;
        free(k);
        if (!(k = kiln__calloc((size_t)m, 2 * sizeof(double)))) {
            s = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
            break;
        }
        double *shift = k + m;
        for (;;) {
            int y = net->nodes[ci].out[0];
            const kiln_tensor *ty = &net->tensors[y];
            if (ty->is_output || kiln__graph_use_count(&u, y) != 1) break;
            int ni = u.node[u.start[y]], slot = u.slot[u.start[y]];
            const kiln_node *n = &net->nodes[ni];
            if (deleted[ni] || n->domain[0] || n->n_in != 2 || n->n_out != 1 || n->out[0] < 0 ||
                kiln__pass_pinned(opts, n->name))
                break;
            bool mul = !strcmp(n->op_type, "Mul"), add = !strcmp(n->op_type, "Add");
            bool sub = !strcmp(n->op_type, "Sub") && slot == 0;
            if (!mul && !add && !sub) break;
            if (!channel_values(net, n->in[1 - slot], ty->v.dtype, &ty->v.shape, m, mul ? k : shift)) break;
            for (int64_t c = 0; c < m; c++) {
                if (mul) shift[c] = 0;
                else k[c] = 1;
                if (sub) shift[c] = -shift[c];
            }
            bool refused;
            if ((s = kiln__conv_fold_affine(net, opts, &net->nodes[ci], k, shift, "scalefold", &refused, err))) break;
            if (refused) {
                fp16++;
                break;
            }
            if ((s = kiln__conv_absorb(net, ci, ni, deleted, err))) break;
            n_mul += mul;
            n_add += !mul;
        }
    }
    free(k);
    kiln__graph_uses_free(&u);
    free(order);
    stats->changes = n_mul + n_add;
    if (n_mul) kiln__pass_note(stats, "folded %d Mul into Conv weights", n_mul);
    if (n_add) kiln__pass_note(stats, "folded %d Add/Sub into Conv biases", n_add);
    if (fp16) kiln__pass_note(stats, "%d left because the folded weights would overflow float16", fp16);
    if (stats->changes) {
        kiln_err e2;
        kiln_status s2 = kiln__graph_compact(net, deleted, s ? &e2 : err);
        if (!s) s = s2;
    }
    free(deleted);
    return s;
}
