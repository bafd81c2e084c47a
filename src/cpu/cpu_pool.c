/*
 * CPU reference kernels of the pool family. Values are pooled in double
 * (exact for every input type MaxPool takes; averages round once at the end).
 * Windows work on a geometry unified to three spatial dims.
 */
#include "cpu.h"
#include "../ir/ops_pool.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct pool_geom {
    int64_t planes; /* N * C */
    int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
    int64_t in_sz, out_sz;
} pool_geom;

static int64_t dimv(const kiln_value *v, int i) { return v->shape.d[i].add; }

/* infer() checked that X has p->nsp spatial dims. */
static void pool_geom_init(const kiln_pool_params *p, const kiln_value *x, const kiln_value *y, pool_geom *g)
{
    int nsp = x->shape.rank - 2;
    int64_t k[KILN_MAX_DIMS], s[KILN_MAX_DIMS], d[KILN_MAX_DIMS];
    for (int i = 0; i < nsp; i++) {
        k[i] = p->kernel[i];
        s[i] = p->n_strides > 0 ? p->strides[i] : 1;
        d[i] = p->n_dil > 0 ? p->dil[i] : 1;
    }
    bool upper = p->auto_pad == KILN_AUTO_PAD_SAME_UPPER, lower = p->auto_pad == KILN_AUTO_PAD_SAME_LOWER;
    bool valid = p->auto_pad == KILN_AUTO_PAD_VALID;
    memset(g, 0, sizeof *g);
    g->planes = dimv(x, 0) * dimv(x, 1);
    for (int j = 0; j < 3; j++) g->in[j] = g->out[j] = g->k[j] = g->s[j] = g->d[j] = 1;
    for (int i = 0; i < nsp; i++) {
        int j = 3 - nsp + i;
        g->in[j] = dimv(x, i + 2);
        g->out[j] = dimv(y, i + 2);
        g->k[j] = k[i];
        g->s[j] = s[i];
        g->d[j] = d[i];
        if (upper || lower) {
            int64_t total = (g->out[j] - 1) * s[i] + d[i] * (k[i] - 1) + 1 - g->in[j];
            if (total < 0) total = 0;
            g->pb[j] = upper ? total / 2 : total - total / 2;
            g->pe[j] = total - g->pb[j];
        } else if (!valid && p->n_pads > 0) {
            g->pb[j] = p->pads[i];
            g->pe[j] = p->pads[i + nsp];
        }
    }
    g->in_sz = g->in[0] * g->in[1] * g->in[2];
    g->out_sz = g->out[0] * g->out[1] * g->out[2];
}

/* Whole value as doubles (the caller frees). */
static double *load_f64(const kiln_value *v)
{
    int64_t n = kiln__value_numel(v);
    double *buf = kiln__malloc((size_t)n * sizeof *buf);
    if (!buf) return NULL;
    if (v->dtype == KILN_DT_FLOAT) {
        const float *f = v->data;
        for (int64_t i = 0; i < n; i++) buf[i] = f[i];
    } else if (v->dtype == KILN_DT_DOUBLE) {
        memcpy(buf, v->data, (size_t)n * sizeof *buf);
    } else {
        for (int64_t i = 0; i < n; i++) buf[i] = kiln__value_get_f64(v, i);
    }
    return buf;
}

static void store_f64(kiln_value *v, int64_t i, double x)
{
    if (v->dtype == KILN_DT_FLOAT) ((float *)v->data)[i] = (float)x;
    else if (v->dtype == KILN_DT_DOUBLE) ((double *)v->data)[i] = x;
    else kiln__value_set_f64(v, i, x);
}

/* Taps t in [*lo, *hi) of a window starting at `start` that land inside [0, n). */
static void tap_range(int64_t start, int64_t d, int64_t k, int64_t n, int64_t *lo, int64_t *hi)
{
    int64_t l = start >= 0 ? 0 : (-start + d - 1) / d;
    int64_t h = n - start <= 0 ? 0 : (n - start + d - 1) / d;
    if (h > k) h = k;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

static kiln_status oom(const kiln_node *node, kiln_err *err)
{
    return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s' (%s): out of memory", node->name, node->op_type);
}

static kiln_status pool_run(const kiln_node *node, const void *params, const kiln_value *const *in, kiln_value *out,
                            kiln_err *err)
{
    const kiln_pool_params *pp = params;
    pool_geom g;
    pool_geom_init(pp, in[0], &out[0], &g);
    bool is_max = !strcmp(node->op_type, "MaxPool");
    bool cip = pp->count_include_pad;
    bool colmajor = pp->storage_order;
    int64_t *idx = is_max && node->n_out > 1 && node->out[1] >= 0 ? out[1].data : NULL;
    double *x = load_f64(in[0]);
    if (!x) return oom(node, err);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (g.planes * g.out_sz > 16384)
#endif
    for (int64_t p = 0; p < g.planes; p++) {
        const double *xp = x + p * g.in_sz;
        int64_t o = p * g.out_sz;
        for (int64_t od = 0; od < g.out[0]; od++)
            for (int64_t oh = 0; oh < g.out[1]; oh++)
                for (int64_t ow = 0; ow < g.out[2]; ow++, o++) {
                    int64_t start[3] = {od * g.s[0] - g.pb[0], oh * g.s[1] - g.pb[1], ow * g.s[2] - g.pb[2]};
                    int64_t lo[3], hi[3];
                    for (int j = 0; j < 3; j++) tap_range(start[j], g.d[j], g.k[j], g.in[j], &lo[j], &hi[j]);
                    double best = -INFINITY, sum = 0;
                    int64_t arg = -1, count = 0;
                    for (int64_t a = lo[0]; a < hi[0]; a++) {
                        int64_t i0 = start[0] + a * g.d[0];
                        for (int64_t b = lo[1]; b < hi[1]; b++) {
                            int64_t i1 = start[1] + b * g.d[1];
                            const double *row = xp + (i0 * g.in[1] + i1) * g.in[2];
                            for (int64_t c = lo[2]; c < hi[2]; c++) {
                                int64_t i2 = start[2] + c * g.d[2];
                                double v = row[i2];
                                if (is_max) {
                                    if (arg < 0 || v > best) {
                                        best = v;
                                        arg = colmajor ? i0 + i1 * g.in[0] + i2 * g.in[0] * g.in[1]
                                                       : (i0 * g.in[1] + i1) * g.in[2] + i2;
                                    }
                                } else {
                                    sum += v;
                                    count++;
                                }
                            }
                        }
                    }
                    if (is_max) {
                        /* A window entirely in the padding has no value; 0 as the ONNX reference. */
                        store_f64(&out[0], o, arg < 0 ? 0 : best);
                        if (idx) idx[o] = arg < 0 ? -1 : p * g.in_sz + arg;
                        continue;
                    }
                    if (cip) {
                        /* Pads count, but not window taps past the end padding (ceil_mode). */
                        count = 1;
                        for (int j = 0; j < 3; j++) {
                            int64_t l, h;
                            tap_range(start[j] + g.pb[j], g.d[j], g.k[j], g.in[j] + g.pb[j] + g.pe[j], &l, &h);
                            count *= h - l;
                        }
                    }
                    store_f64(&out[0], o, count > 0 ? sum / (double)count : NAN);
                }
    }
    free(x);
    return KILN_OK;
}

static kiln_status global_pool_run(const kiln_node *node, const void *params, const kiln_value *const *in,
                                   kiln_value *out, kiln_err *err)
{
    const kiln_value *xv = in[0];
    bool is_max = !strcmp(node->op_type, "GlobalMaxPool");
    int64_t planes = dimv(xv, 0) * dimv(xv, 1), sz = 1;
    for (int i = 2; i < xv->shape.rank; i++) sz *= dimv(xv, i);
    double *x = load_f64(xv);
    if (!x) return oom(node, err);
    for (int64_t p = 0; p < planes; p++) {
        const double *xp = x + p * sz;
        double acc = is_max ? -INFINITY : 0;
        for (int64_t i = 0; i < sz; i++) {
            if (is_max) acc = xp[i] > acc ? xp[i] : acc;
            else acc += xp[i];
        }
        if (sz == 0) acc = is_max ? 0 : NAN;
        else if (!is_max) acc /= (double)sz;
        store_f64(&out[0], p, acc);
    }
    free(x);
    return KILN_OK;
}

const kiln_cpu_kernel kiln__cpu_pool[] = {
    {"MaxPool", "", pool_run},
    {"AveragePool", "", pool_run},
    {"GlobalAveragePool", "", global_pool_run},
    {"GlobalMaxPool", "", global_pool_run},
    {0},
};
