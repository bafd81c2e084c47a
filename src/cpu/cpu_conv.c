/*
 * CPU reference kernels of the conv family: Conv, ConvTranspose, DeformConv.
 *
 * Every op works on a geometry unified to three spatial dims (1-D and 2-D
 * get leading dims of size 1). Conv is im2col + GEMM per group, tiled over
 * output columns so the column buffer stays bounded (VGG-sized layers would
 * otherwise need hundreds of MiB); groups with few channels use a direct loop.
 * ConvTranspose is GEMM + col2im, DeformConv a bilinear im2col + GEMM (also
 * the built-in DeformConv plugin's host path, kiln__cpu_deform_conv_f32).
 * float16/bfloat16 run through float buffers; double runs in double.
 *
 * The type-generic kernels are written once: this file includes itself twice
 * (CONV_T = float, then double) below the common part.
 */
#ifndef CONV_T

#include "cpu_ops_util.h"
#include "cpu_gemm.h"
#include "../ir/ops_conv.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Column buffer budget in elements (32 MiB of floats). */
#define COL_LIMIT ((int64_t)1 << 23)

typedef struct conv_geom {
    int64_t n, c, m, g;   /* batch, input channels, output channels, groups */
    int64_t og;           /* DeformConv offset groups */
    int64_t in[3], out[3], k[3], s[3], d[3], pb[3];
    int64_t in_sz, out_sz, k_sz;
} conv_geom;

static int64_t dimv(const kiln_value *v, int i) { return v->shape.d[i].add; }

static int64_t floor_half(int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

/*
 * Spatial sizes, strides, dilations of X/Y/W, mapped to the last nsp of three
 * slots. infer() checked every attribute count against nsp (or absent: -1).
 */
static void geom_common(const kiln_conv_params *p, const kiln_value *x, const kiln_value *w, const kiln_value *y,
                        conv_geom *g)
{
    int nsp = x->shape.rank - 2;
    memset(g, 0, sizeof *g);
    g->n = dimv(x, 0);
    g->c = dimv(x, 1);
    g->m = dimv(y, 1);
    g->g = p->group;
    g->og = p->offset_group;
    for (int j = 0; j < 3; j++) {
        g->in[j] = g->out[j] = g->k[j] = g->s[j] = g->d[j] = 1;
        g->pb[j] = 0;
    }
    for (int i = 0; i < nsp; i++) {
        int j = 3 - nsp + i;
        g->in[j] = dimv(x, i + 2);
        g->out[j] = dimv(y, i + 2);
        g->k[j] = dimv(w, i + 2);
        g->s[j] = p->n_strides > 0 ? p->strides[i] : 1;
        g->d[j] = p->n_dil > 0 ? p->dil[i] : 1;
    }
    g->in_sz = g->in[0] * g->in[1] * g->in[2];
    g->out_sz = g->out[0] * g->out[1] * g->out[2];
    g->k_sz = g->k[0] * g->k[1] * g->k[2];
}

static void conv_geom_init(const kiln_conv_params *p, const kiln_value *x, const kiln_value *w, const kiln_value *y,
                           conv_geom *g)
{
    int nsp = x->shape.rank - 2;
    geom_common(p, x, w, y, g);
    for (int i = 0; i < nsp; i++) {
        int j = 3 - nsp + i;
        int64_t total = (g->out[j] - 1) * g->s[j] + g->d[j] * (g->k[j] - 1) + 1 - g->in[j];
        if (total < 0) total = 0;
        if (p->auto_pad == KILN_AUTO_PAD_NOTSET) g->pb[j] = p->n_pads > 0 ? p->pads[i] : 0;
        else if (p->auto_pad == KILN_AUTO_PAD_SAME_UPPER) g->pb[j] = total / 2;
        else if (p->auto_pad == KILN_AUTO_PAD_SAME_LOWER) g->pb[j] = total - total / 2;
    }
}

/* ConvTranspose: g->in is X's spatial size, g->out Y's; pb is the crop at the start of Y. */
static void convt_geom_init(const kiln_conv_params *p, const kiln_value *x, const kiln_value *w, const kiln_value *y,
                            conv_geom *g)
{
    int nsp = x->shape.rank - 2;
    geom_common(p, x, w, y, g);
    /* The parser drops explicit pads unless auto_pad is NOTSET. */
    bool has_pads = p->n_pads > 0, has_outshape = p->n_outshape > 0;
    for (int i = 0; i < nsp; i++) {
        int j = 3 - nsp + i;
        int64_t outpad = p->n_outpad > 0 ? p->outpad[i] : 0;
        int64_t total = g->s[j] * (g->in[j] - 1) + outpad + g->d[j] * (g->k[j] - 1) + 1 - g->out[j];
        if (has_pads) g->pb[j] = p->pads[i];
        else if (p->auto_pad == KILN_AUTO_PAD_SAME_UPPER) g->pb[j] = floor_half(total);
        else if (has_outshape || p->auto_pad == KILN_AUTO_PAD_SAME_LOWER) g->pb[j] = total - floor_half(total);
        else g->pb[j] = 0;
    }
}

/* Column tile width: the whole output when it fits the budget, else at least 256 columns. */
static int64_t tile_cols(int64_t rows, int64_t cols)
{
    int64_t nb = rows > 0 ? COL_LIMIT / rows : cols;
    if (nb < 256) nb = 256;
    return nb < cols ? nb : cols;
}

/* Valid range [lo, hi) of o such that o*s + off lies in [0, n), clipped to [0, limit). */
static void valid_range(int64_t off, int64_t s, int64_t n, int64_t limit, int64_t *lo, int64_t *hi)
{
    int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t h = n - off <= 0 ? 0 : (n - off + s - 1) / s;
    if (h > limit) h = limit;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

#define CONV_T float
#define CONV_FN(name) name##_f32
#define CONV_GEMM kiln__sgemm
#include "cpu_conv.c"
#undef CONV_T
#undef CONV_FN
#undef CONV_GEMM

#define CONV_T double
#define CONV_FN(name) name##_f64
#define CONV_GEMM kiln__dgemm
#include "cpu_conv.c"
#undef CONV_T
#undef CONV_FN
#undef CONV_GEMM

typedef kiln_status (*conv_f32_fn)(const conv_geom *g, const float *const *in, float *y, const kiln_node *node,
                                   kiln_err *err);
typedef kiln_status (*conv_f64_fn)(const conv_geom *g, const double *const *in, double *y, const kiln_node *node,
                                   kiln_err *err);

/* Runs a float or double kernel on the node's inputs; float16/bfloat16 through float copies. */
static kiln_status dispatch(const kiln_node *node, const kiln_value *const *in, int n_in, kiln_value *out,
                            const conv_geom *g, conv_f32_fn f32, conv_f64_fn f64, kiln_err *err)
{
    kiln_dtype dt = in[0]->dtype;
    if (dt == KILN_DT_DOUBLE) {
        const double *p[5] = {0};
        for (int i = 0; i < n_in; i++) p[i] = in[i] ? in[i]->data : NULL;
        return f64(g, p, out->data, node, err);
    }
    if (dt == KILN_DT_FLOAT) {
        const float *p[5] = {0};
        for (int i = 0; i < n_in; i++) p[i] = in[i] ? in[i]->data : NULL;
        return f32(g, p, out->data, node, err);
    }
    if (dt != KILN_DT_FLOAT16 && dt != KILN_DT_BFLOAT16)
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): type %s is not supported", node->name, node->op_type,
                          kiln_dtype_name(dt));
    float *bufs[5] = {0}, *y = NULL;
    kiln_status s = KILN_OK;
    for (int i = 0; i < n_in && !s; i++)
        if (in[i] && !(bufs[i] = kiln__cpu_half_to_f32(in[i]))) s = KILN_ERR_OUT_OF_MEMORY;
    if (!s && !(y = kiln__calloc((size_t)kiln__value_numel(out), sizeof *y))) s = KILN_ERR_OUT_OF_MEMORY;
    if (s) {
        s = kiln__fail(err, s, "node '%s' (%s): out of memory", node->name, node->op_type);
    } else {
        const float *p[5] = {bufs[0], bufs[1], bufs[2], bufs[3], bufs[4]};
        s = f32(g, p, y, node, err);
        if (!s) kiln__cpu_f32_to_half(out, y);
    }
    for (int i = 0; i < 5; i++) free(bufs[i]);
    free(y);
    return s;
}

static const kiln_value *opt_in(const kiln_node *node, const kiln_value *const *in, int i)
{
    return node->n_in > i ? in[i] : NULL;
}

static kiln_status conv_run(const kiln_node *node, const void *params, const kiln_value *const *in, kiln_value *out,
                            kiln_err *err)
{
    conv_geom g;
    conv_geom_init(params, in[0], in[1], &out[0], &g);
    const kiln_value *ins[3] = {in[0], in[1], opt_in(node, in, 2)};
    return dispatch(node, ins, 3, &out[0], &g, conv_f32, conv_f64, err);
}

static kiln_status convt_run(const kiln_node *node, const void *params, const kiln_value *const *in,
                             kiln_value *out, kiln_err *err)
{
    conv_geom g;
    convt_geom_init(params, in[0], in[1], &out[0], &g);
    const kiln_value *ins[3] = {in[0], in[1], opt_in(node, in, 2)};
    return dispatch(node, ins, 3, &out[0], &g, convt_f32, convt_f64, err);
}

static kiln_status deform_run(const kiln_node *node, const void *params, const kiln_value *const *in,
                              kiln_value *out, kiln_err *err)
{
    conv_geom g;
    conv_geom_init(params, in[0], in[1], &out[0], &g);
    const kiln_value *ins[5] = {in[0], in[1], in[2], opt_in(node, in, 3), opt_in(node, in, 4)};
    return dispatch(node, ins, 5, &out[0], &g, deform_f32, deform_f64, err);
}

/* The built-in DeformConv plugin's host path: its 2-D geometry mapped onto conv_geom. */
int kiln__cpu_deform_conv_f32(const kiln__deform_geom *dg, const float *x, const float *w, const float *off,
                              const float *mask, const float *bias, float *y)
{
    conv_geom g = {
        .n = dg->n, .c = dg->c, .m = dg->m, .g = dg->group, .og = dg->offset_group,
        .in = {1, dg->h, dg->w}, .out = {1, dg->oh, dg->ow}, .k = {1, dg->kh, dg->kw},
        .s = {1, dg->sh, dg->sw}, .d = {1, dg->dh, dg->dw}, .pb = {0, dg->ph, dg->pw},
        .in_sz = dg->h * dg->w, .out_sz = dg->oh * dg->ow, .k_sz = dg->kh * dg->kw,
    };
    return deform_raw_f32(&g, x, w, off, mask, bias, y) ? 0 : -1;
}

const kiln_cpu_kernel kiln__cpu_conv[] = {
    {"Conv", "", conv_run},
    {"ConvTranspose", "", convt_run},
    {"DeformConv", "", deform_run},
    {0},
};

#else /* CONV_T: type-generic kernels */

/* Column rows (c, kd, kh, kw) x output positions o0..o0+nb of one group's input. */
static void CONV_FN(im2col)(const CONV_T *x, const conv_geom *g, int64_t cg, int64_t o0, int64_t nb, CONV_T *col)
{
    int64_t plane = g->out[1] * g->out[2];
    CONV_T *dst = col;
    for (int64_t c = 0; c < cg; c++)
        for (int64_t kd = 0; kd < g->k[0]; kd++)
            for (int64_t kh = 0; kh < g->k[1]; kh++)
                for (int64_t kw = 0; kw < g->k[2]; kw++, dst += nb) {
                    int64_t offd = kd * g->d[0] - g->pb[0], offh = kh * g->d[1] - g->pb[1];
                    int64_t offw = kw * g->d[2] - g->pb[2], lo, hi;
                    valid_range(offw, g->s[2], g->in[2], g->out[2], &lo, &hi);
                    int64_t od = o0 / plane, oh = (o0 % plane) / g->out[2], ow = o0 % g->out[2];
                    for (int64_t j = 0; j < nb;) {
                        int64_t run = g->out[2] - ow < nb - j ? g->out[2] - ow : nb - j;
                        int64_t id = od * g->s[0] + offd, ih = oh * g->s[1] + offh;
                        CONV_T *o = dst + j; /* o[t - ow] for output column t in [ow, ow + run) */
                        if (id < 0 || id >= g->in[0] || ih < 0 || ih >= g->in[1]) {
                            for (int64_t t = 0; t < run; t++) o[t] = 0;
                        } else {
                            const CONV_T *row = x + ((c * g->in[0] + id) * g->in[1] + ih) * g->in[2];
                            int64_t e = ow + run, v0 = lo < ow ? ow : (lo > e ? e : lo), v1 = hi > e ? e : hi;
                            if (v1 < v0) v1 = v0;
                            for (int64_t t = ow; t < v0; t++) o[t - ow] = 0;
                            if (g->s[2] == 1)
                                for (int64_t t = v0; t < v1; t++) o[t - ow] = row[t + offw];
                            else
                                for (int64_t t = v0; t < v1; t++) o[t - ow] = row[t * g->s[2] + offw];
                            for (int64_t t = v1; t < e; t++) o[t - ow] = 0;
                        }
                        j += run;
                        ow = 0;
                        if (++oh == g->out[1]) {
                            oh = 0;
                            od++;
                        }
                    }
                }
}

/* One output plane of a convolution, by accumulating each kernel tap over the plane. */
static void CONV_FN(direct_plane)(const CONV_T *x, const CONV_T *wm, const conv_geom *g, int64_t cg, CONV_T *y)
{
    for (int64_t c = 0; c < cg; c++)
        for (int64_t kd = 0; kd < g->k[0]; kd++)
            for (int64_t kh = 0; kh < g->k[1]; kh++)
                for (int64_t kw = 0; kw < g->k[2]; kw++) {
                    CONV_T wv = *wm++;
                    int64_t offd = kd * g->d[0] - g->pb[0], offh = kh * g->d[1] - g->pb[1];
                    int64_t offw = kw * g->d[2] - g->pb[2], lo, hi;
                    valid_range(offw, g->s[2], g->in[2], g->out[2], &lo, &hi);
                    for (int64_t od = 0; od < g->out[0]; od++) {
                        int64_t id = od * g->s[0] + offd;
                        if (id < 0 || id >= g->in[0]) continue;
                        for (int64_t oh = 0; oh < g->out[1]; oh++) {
                            int64_t ih = oh * g->s[1] + offh;
                            if (ih < 0 || ih >= g->in[1]) continue;
                            const CONV_T *row = x + ((c * g->in[0] + id) * g->in[1] + ih) * g->in[2];
                            CONV_T *yr = y + (od * g->out[1] + oh) * g->out[2];
                            if (g->s[2] == 1)
                                for (int64_t ow = lo; ow < hi; ow++) yr[ow] += wv * row[ow + offw];
                            else
                                for (int64_t ow = lo; ow < hi; ow++) yr[ow] += wv * row[ow * g->s[2] + offw];
                        }
                    }
                }
}

static void CONV_FN(add_bias)(const conv_geom *g, const CONV_T *b, CONV_T *y)
{
    if (!b) return;
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t m = 0; m < g->m; m++) {
            CONV_T *p = y + (n * g->m + m) * g->out_sz, bv = b[m];
            for (int64_t i = 0; i < g->out_sz; i++) p[i] += bv;
        }
}

static kiln_status CONV_FN(oom)(const kiln_node *node, kiln_err *err)
{
    return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s' (%s): out of memory for the column buffer", node->name,
                      node->op_type);
}

/* in: X, W, optional B. */
static kiln_status CONV_FN(conv)(const conv_geom *g, const CONV_T *const *in, CONV_T *y, const kiln_node *node,
                                 kiln_err *err)
{
    const CONV_T *x = in[0], *w = in[1];
    int64_t cg = g->c / g->g, mg = g->m / g->g, kg = cg * g->k_sz;
    if (g->out_sz == 0 || g->n == 0 || g->m == 0) return KILN_OK;
    if (g->g > 1 && kg <= 64) {
        /* Depthwise-like groups: a GEMM per group would be tiny; accumulate directly. */
        int64_t planes = g->n * g->m;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 4) if (planes * g->out_sz * kg > 65536)
#endif
        for (int64_t p = 0; p < planes; p++) {
            int64_t n = p / g->m, m = p % g->m, grp = m / mg;
            CONV_FN(direct_plane)(x + (n * g->c + grp * cg) * g->in_sz, w + m * kg, g, cg, y + p * g->out_sz);
        }
        CONV_FN(add_bias)(g, in[2], y);
        return KILN_OK;
    }
    bool pointwise = true;
    for (int j = 0; j < 3; j++)
        if (g->k[j] != 1 || g->s[j] != 1 || g->pb[j] != 0 || g->in[j] != g->out[j]) pointwise = false;
    int64_t nb = tile_cols(kg, g->out_sz);
    CONV_T *col = NULL;
    if (!pointwise && !(col = kiln__malloc((size_t)kg * (size_t)nb * sizeof *col))) return CONV_FN(oom)(node, err);
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t grp = 0; grp < g->g; grp++) {
            const CONV_T *xg = x + (n * g->c + grp * cg) * g->in_sz, *wg = w + grp * mg * kg;
            CONV_T *yg = y + (n * g->m + grp * mg) * g->out_sz;
            bool ok = true;
            if (pointwise) {
                ok = CONV_GEMM(false, false, mg, g->out_sz, cg, 1, wg, kg, xg, g->in_sz, 0, yg, g->out_sz);
            } else {
                for (int64_t o0 = 0; o0 < g->out_sz && ok; o0 += nb) {
                    int64_t cur = g->out_sz - o0 < nb ? g->out_sz - o0 : nb;
                    CONV_FN(im2col)(xg, g, cg, o0, cur, col);
                    ok = CONV_GEMM(false, false, mg, cur, kg, 1, wg, kg, col, cur, 0, yg + o0, g->out_sz);
                }
            }
            if (!ok) {
                free(col);
                return CONV_FN(oom)(node, err);
            }
        }
    free(col);
    CONV_FN(add_bias)(g, in[2], y);
    return KILN_OK;
}

/* Scatter-adds column rows (m, kd, kh, kw) x input positions i0..i0+nb into one group's output. */
static void CONV_FN(col2im)(const CONV_T *col, const conv_geom *g, int64_t mg, int64_t i0, int64_t nb, CONV_T *y)
{
    int64_t plane = g->in[1] * g->in[2];
    const CONV_T *src = col;
    for (int64_t m = 0; m < mg; m++)
        for (int64_t kd = 0; kd < g->k[0]; kd++)
            for (int64_t kh = 0; kh < g->k[1]; kh++)
                for (int64_t kw = 0; kw < g->k[2]; kw++, src += nb) {
                    int64_t offd = kd * g->d[0] - g->pb[0], offh = kh * g->d[1] - g->pb[1];
                    int64_t offw = kw * g->d[2] - g->pb[2], lo, hi;
                    valid_range(offw, g->s[2], g->out[2], g->in[2], &lo, &hi);
                    int64_t id = i0 / plane, ih = (i0 % plane) / g->in[2], iw = i0 % g->in[2];
                    for (int64_t j = 0; j < nb;) {
                        int64_t run = g->in[2] - iw < nb - j ? g->in[2] - iw : nb - j;
                        int64_t od = id * g->s[0] + offd, oh = ih * g->s[1] + offh;
                        if (od >= 0 && od < g->out[0] && oh >= 0 && oh < g->out[1]) {
                            const CONV_T *s = src + j;
                            CONV_T *row = y + ((m * g->out[0] + od) * g->out[1] + oh) * g->out[2];
                            int64_t e = iw + run, v0 = lo < iw ? iw : (lo > e ? e : lo), v1 = hi > e ? e : hi;
                            for (int64_t t = v0; t < v1; t++) row[t * g->s[2] + offw] += s[t - iw];
                        }
                        j += run;
                        iw = 0;
                        if (++ih == g->in[1]) {
                            ih = 0;
                            id++;
                        }
                    }
                }
}

/* in: X, W (C x M/group x k...), optional B. */
static kiln_status CONV_FN(convt)(const conv_geom *g, const CONV_T *const *in, CONV_T *y, const kiln_node *node,
                                  kiln_err *err)
{
    const CONV_T *x = in[0], *w = in[1];
    int64_t cg = g->c / g->g, mg = g->m / g->g, kc = mg * g->k_sz;
    if (g->in_sz == 0 || g->n == 0 || g->m == 0 || g->out_sz == 0) return KILN_OK;
    int64_t nb = tile_cols(kc, g->in_sz);
    CONV_T *col = kiln__malloc((size_t)kc * (size_t)nb * sizeof *col);
    if (!col) return CONV_FN(oom)(node, err);
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t grp = 0; grp < g->g; grp++) {
            const CONV_T *xg = x + (n * g->c + grp * cg) * g->in_sz, *wg = w + grp * cg * kc;
            CONV_T *yg = y + (n * g->m + grp * mg) * g->out_sz;
            for (int64_t i0 = 0; i0 < g->in_sz; i0 += nb) {
                int64_t cur = g->in_sz - i0 < nb ? g->in_sz - i0 : nb;
                if (!CONV_GEMM(true, false, kc, cur, cg, 1, wg, kc, xg + i0, g->in_sz, 0, col, cur)) {
                    free(col);
                    return CONV_FN(oom)(node, err);
                }
                CONV_FN(col2im)(col, g, mg, i0, cur, yg);
            }
        }
    free(col);
    CONV_FN(add_bias)(g, in[2], y);
    return KILN_OK;
}

/* Bilinear sample of an h x w image at (py, px); corners outside the image count as zero. */
static CONV_T CONV_FN(bilinear)(const CONV_T *img, int64_t h, int64_t w, CONV_T py, CONV_T px)
{
    if (!(py > -1 && py < (CONV_T)h && px > -1 && px < (CONV_T)w)) return 0;
    CONV_T fy = (CONV_T)floor((double)py), fx = (CONV_T)floor((double)px);
    int64_t y0 = (int64_t)fy, x0 = (int64_t)fx, y1 = y0 + 1, x1 = x0 + 1;
    CONV_T ly = py - fy, lx = px - fx, hy = 1 - ly, hx = 1 - lx, v = 0;
    if (y0 >= 0 && x0 >= 0) v += hy * hx * img[y0 * w + x0];
    if (y0 >= 0 && x1 < w) v += hy * lx * img[y0 * w + x1];
    if (y1 < h && x0 >= 0) v += ly * hx * img[y1 * w + x0];
    if (y1 < h && x1 < w) v += ly * lx * img[y1 * w + x1];
    return v;
}

/* Deformable column rows (c, kh, kw) of group grp x output positions o0..o0+nb (2-D only). */
static void CONV_FN(deform_im2col)(const CONV_T *x, const CONV_T *off, const CONV_T *mask, const conv_geom *g,
                                   int64_t og, int64_t grp, int64_t cg, int64_t o0, int64_t nb, CONV_T *col)
{
    int64_t kh = g->k[1], kw = g->k[2], cpo = g->c / og;
    CONV_T *dst = col;
    for (int64_t cl = 0; cl < cg; cl++) {
        int64_t c = grp * cg + cl, ogi = c / cpo;
        const CONV_T *img = x + c * g->in_sz;
        for (int64_t i = 0; i < kh; i++)
            for (int64_t j = 0; j < kw; j++, dst += nb) {
                int64_t tap = (ogi * kh + i) * kw + j;
                const CONV_T *dy = off + 2 * tap * g->out_sz, *dx = dy + g->out_sz;
                const CONV_T *mk = mask ? mask + tap * g->out_sz : NULL;
                for (int64_t t = 0; t < nb; t++) {
                    int64_t o = o0 + t, oh = o / g->out[2], ow = o % g->out[2];
                    CONV_T py = (CONV_T)(oh * g->s[1] - g->pb[1] + i * g->d[1]) + dy[o];
                    CONV_T px = (CONV_T)(ow * g->s[2] - g->pb[2] + j * g->d[2]) + dx[o];
                    CONV_T v = CONV_FN(bilinear)(img, g->in[1], g->in[2], py, px);
                    dst[t] = mk ? v * mk[o] : v;
                }
            }
    }
}

/*
 * Deformable convolution on raw row-major arrays (mask and b may be NULL); false
 * when out of memory. y is overwritten. The DeformConv kernel and the built-in
 * DeformConv plugin's host execute (kiln__cpu_deform_conv_f32) both run this.
 */
static bool CONV_FN(deform_raw)(const conv_geom *g, const CONV_T *x, const CONV_T *w, const CONV_T *off,
                                const CONV_T *mask, const CONV_T *b, CONV_T *y)
{
    int64_t og = g->og;
    int64_t cg = g->c / g->g, mg = g->m / g->g, kg = cg * g->k_sz;
    int64_t taps = og * g->k_sz;
    if (g->out_sz == 0 || g->n == 0 || g->m == 0) return true;
    int64_t nb = tile_cols(kg, g->out_sz);
    CONV_T *col = kiln__malloc((size_t)kg * (size_t)nb * sizeof *col);
    if (!col) return false;
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t grp = 0; grp < g->g; grp++) {
            const CONV_T *wg = w + grp * mg * kg;
            CONV_T *yg = y + (n * g->m + grp * mg) * g->out_sz;
            for (int64_t o0 = 0; o0 < g->out_sz; o0 += nb) {
                int64_t cur = g->out_sz - o0 < nb ? g->out_sz - o0 : nb;
                CONV_FN(deform_im2col)(x + n * g->c * g->in_sz, off + n * 2 * taps * g->out_sz,
                                       mask ? mask + n * taps * g->out_sz : NULL, g, og, grp, cg, o0, cur, col);
                /* kg == 0 (no input channels): beta 0 still writes zeros */
                if (!CONV_GEMM(false, false, mg, cur, kg, 1, wg, kg, col, cur, 0, yg + o0, g->out_sz)) {
                    free(col);
                    return false;
                }
            }
        }
    free(col);
    CONV_FN(add_bias)(g, b, y);
    return true;
}

/* in: X, W, offset, optional B, optional mask. */
static kiln_status CONV_FN(deform)(const conv_geom *g, const CONV_T *const *in, CONV_T *y, const kiln_node *node,
                                   kiln_err *err)
{
    if (!CONV_FN(deform_raw)(g, in[0], in[1], in[2], in[4], in[3], y)) return CONV_FN(oom)(node, err);
    return KILN_OK;
}

#endif
