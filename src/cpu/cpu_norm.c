/*
 * CPU reference kernels of the norm family. Statistics are accumulated in
 * double whatever the stash type: the reference result is then at least as
 * accurate as ONNX's float computation.
 */
#include "cpu_ops_util.h"
#include "../ir/ops_norm.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>


static int64_t prod(const kiln_value *v, int from, int to)
{
    int64_t n = 1;
    for (int i = from; i < to; i++) n *= v->shape.d[i].add;
    return n;
}

/* Mean and population variance of n values starting at off, `stride` apart. */
static void moments(const kiln_value *x, int64_t off, int64_t n, int64_t stride, double *mean, double *var)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += kiln__cpu_load_f64(x, off + i * stride);
    double m = n ? s / (double)n : 0;
    double q = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = kiln__cpu_load_f64(x, off + i * stride) - m;
        q += d * d;
    }
    *mean = m;
    *var = n ? q / (double)n : 0;
}

static kiln_status run_batchnorm(const kiln_node *node, const void *params, const kiln_value *const *in,
                                 kiln_value *out, kiln_err *err)
{
    const kiln_norm_params *p = params;
    const kiln_value *x = in[0], *sc = in[1], *b = in[2], *mean = in[3], *var = in[4];
    int r = x->shape.rank;
    int64_t n = x->shape.d[0].add, c = x->shape.d[1].add, sp = prod(x, 2, r);
    if (!p->spatial) {
        c *= sp;
        sp = 1;
    }
    if (kiln__value_numel(sc) != c || kiln__value_numel(b) != c || kiln__value_numel(mean) != c ||
        kiln__value_numel(var) != c)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (BatchNormalization): scale, B, mean and var need %lld values",
                          node->name, (long long)c);
    for (int64_t ch = 0; ch < c; ch++) {
        double m = kiln__cpu_load_f64(mean, ch), v = kiln__cpu_load_f64(var, ch);
        if (p->training) {
            /* Batch statistics over N and the spatial dims. */
            double sum = 0, q = 0;
            int64_t cnt = n * sp;
            for (int64_t i = 0; i < n; i++)
                for (int64_t k = 0; k < sp; k++) sum += kiln__cpu_load_f64(x, (i * c + ch) * sp + k);
            double bm = cnt ? sum / (double)cnt : 0;
            for (int64_t i = 0; i < n; i++)
                for (int64_t k = 0; k < sp; k++) {
                    double d = kiln__cpu_load_f64(x, (i * c + ch) * sp + k) - bm;
                    q += d * d;
                }
            double bv = cnt ? q / (double)cnt : 0;
            double mom = p->momentum;
            if (node->n_out > 1 && out[1].data) kiln__cpu_store_f64(&out[1], ch, m * mom + bm * (1 - mom));
            if (node->n_out > 2 && out[2].data) kiln__cpu_store_f64(&out[2], ch, v * mom + bv * (1 - mom));
            m = bm;
            v = bv;
        }
        double k = kiln__cpu_load_f64(sc, ch) / sqrt(v + (double)p->epsilon), bias = kiln__cpu_load_f64(b, ch);
        for (int64_t i = 0; i < n; i++) {
            int64_t off = (i * c + ch) * sp;
            for (int64_t j = 0; j < sp; j++)
                kiln__cpu_store_f64(&out[0], off + j, (kiln__cpu_load_f64(x, off + j) - m) * k + bias);
        }
    }
    return KILN_OK;
}

static kiln_status run_instnorm(const kiln_node *node, const void *params, const kiln_value *const *in,
                                kiln_value *out, kiln_err *err)
{
    const kiln_norm_params *p = params;
    const kiln_value *x = in[0], *sc = in[1], *b = in[2];
    int r = x->shape.rank;
    int64_t n = x->shape.d[0].add, c = x->shape.d[1].add, sp = prod(x, 2, r);
    if (kiln__value_numel(sc) != c || kiln__value_numel(b) != c)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (InstanceNormalization): scale and B need %lld values", node->name,
                          (long long)c);
    for (int64_t i = 0; i < n; i++)
        for (int64_t ch = 0; ch < c; ch++) {
            int64_t off = (i * c + ch) * sp;
            double m, v;
            moments(x, off, sp, 1, &m, &v);
            double k = kiln__cpu_load_f64(sc, ch) / sqrt(v + (double)p->epsilon), bias = kiln__cpu_load_f64(b, ch);
            for (int64_t j = 0; j < sp; j++)
                kiln__cpu_store_f64(&out[0], off + j, (kiln__cpu_load_f64(x, off + j) - m) * k + bias);
        }
    return KILN_OK;
}

/* Strides that read `v` broadcast (right-aligned) to x's shape: 0 along broadcast dims. */
static void broadcast_strides(const kiln_value *v, const kiln_value *x, int64_t *bs)
{
    int r = x->shape.rank, vr = v->shape.rank;
    int64_t s = 1;
    for (int i = r - 1; i >= 0; i--) {
        int vi = i - (r - vr);
        if (vi < 0) {
            bs[i] = 0;
            continue;
        }
        int64_t d = v->shape.d[vi].add;
        bs[i] = d == 1 ? 0 : s;
        s *= d;
    }
}

static kiln_status run_layernorm(const kiln_node *node, const void *params, const kiln_value *const *in,
                                 kiln_value *out, kiln_err *err)
{
    const kiln_norm_params *p = params;
    const kiln_value *x = in[0], *w = in[1], *b = node->n_in > 2 ? in[2] : NULL;
    int r = x->shape.rank;
    int axis = (int)(p->axis < 0 ? p->axis + r : p->axis);
    int64_t rows = prod(x, 0, axis), cols = prod(x, axis, r);
    int64_t ws[KILN_MAX_DIMS], bs[KILN_MAX_DIMS], pos[KILN_MAX_DIMS] = {0};
    broadcast_strides(w, x, ws);
    if (b) broadcast_strides(b, x, bs);
    kiln_value *mo = node->n_out > 1 && out[1].data ? &out[1] : NULL;
    kiln_value *io = node->n_out > 2 && out[2].data ? &out[2] : NULL;
    int64_t wi = 0, bi = 0;
    for (int64_t row = 0; row < rows; row++) {
        int64_t off = row * cols;
        double m, v;
        moments(x, off, cols, 1, &m, &v);
        double inv = 1.0 / sqrt(v + (double)p->epsilon);
        if (mo) kiln__cpu_store_f64(mo, row, m);
        if (io) kiln__cpu_store_f64(io, row, inv);
        for (int64_t j = 0; j < cols; j++) {
            double y = (kiln__cpu_load_f64(x, off + j) - m) * inv * kiln__cpu_load_f64(w, wi);
            if (b) y += kiln__cpu_load_f64(b, bi);
            kiln__cpu_store_f64(&out[0], off + j, y);
            /* Advance the broadcast read positions with an odometer over x's dims. */
            for (int d = r - 1; d >= 0; d--) {
                wi += ws[d];
                if (b) bi += bs[d];
                if (++pos[d] < x->shape.d[d].add) break;
                wi -= ws[d] * pos[d];
                if (b) bi -= bs[d] * pos[d];
                pos[d] = 0;
            }
        }
    }
    return KILN_OK;
}

static kiln_status run_groupnorm(const kiln_node *node, const void *params, const kiln_value *const *in,
                                 kiln_value *out, kiln_err *err)
{
    const kiln_norm_params *p = params;
    const kiln_value *x = in[0], *sc = in[1], *b = in[2];
    int r = x->shape.rank;
    int64_t n = x->shape.d[0].add, c = x->shape.d[1].add, sp = prod(x, 2, r), g = p->num_groups;
    if (c % g)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (GroupNormalization): %lld channels, %lld groups", node->name,
                          (long long)c, (long long)g);
    int64_t want = p->group_scale ? g : c;
    if (kiln__value_numel(sc) != want || kiln__value_numel(b) != want)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (GroupNormalization): scale and bias need %lld values", node->name,
                          (long long)want);
    int64_t cg = c / g;
    for (int64_t i = 0; i < n; i++)
        for (int64_t gi = 0; gi < g; gi++) {
            int64_t off = (i * c + gi * cg) * sp;
            double m, v;
            moments(x, off, cg * sp, 1, &m, &v);
            double inv = 1.0 / sqrt(v + (double)p->epsilon);
            for (int64_t k = 0; k < cg; k++) {
                int64_t ch = gi * cg + k, si = p->group_scale ? gi : ch;
                double a = kiln__cpu_load_f64(sc, si), bias = kiln__cpu_load_f64(b, si);
                int64_t o = off + k * sp;
                for (int64_t j = 0; j < sp; j++)
                    kiln__cpu_store_f64(&out[0], o + j, (kiln__cpu_load_f64(x, o + j) - m) * inv * a + bias);
            }
        }
    return KILN_OK;
}

static kiln_status run_lpnorm(const kiln_node *node, const void *params, const kiln_value *const *in, kiln_value *out,
                              kiln_err *err)
{
    const kiln_norm_params *p = params;
    const kiln_value *x = in[0];
    int r = x->shape.rank;
    int axis = (int)(p->axis < 0 ? p->axis + r : p->axis);
    int64_t outer = prod(x, 0, axis), len = x->shape.d[axis].add, inner = prod(x, axis + 1, r);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < inner; k++) {
            int64_t base = o * len * inner + k;
            double acc = 0;
            for (int64_t j = 0; j < len; j++) {
                double v = kiln__cpu_load_f64(x, base + j * inner);
                acc += p->p == 1 ? fabs(v) : v * v;
            }
            double norm = p->p == 1 ? acc : sqrt(acc);
            /* A zero vector stays zero (ONNX's test data expects 0, not NaN). */
            for (int64_t j = 0; j < len; j++)
                kiln__cpu_store_f64(&out[0], base + j * inner, norm == 0 ? 0.0 : kiln__cpu_load_f64(x, base + j * inner) / norm);
        }
    return KILN_OK;
}

const kiln_cpu_kernel kiln__cpu_norm[] = {
    {"BatchNormalization", "", run_batchnorm},
    {"InstanceNormalization", "", run_instnorm},
    {"LayerNormalization", "", run_layernorm},
    {"GroupNormalization", "", run_groupnorm},
    {"LpNormalization", "", run_lpnorm},
    {0},
};
