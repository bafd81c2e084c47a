/*
 * CPU reference kernel of GridSample, any number of spatial dims. Follows the
 * ONNX reference (itself PyTorch's grid_sampler): grid coordinates are in
 * [-1, 1], listed innermost spatial dim first; out-of-range coordinates are
 * clamped (border) or mirrored (reflection) before sampling, and taps outside
 * the input read zero (zeros), the edge (border) or a mirrored pixel.
 */
#include "cpu_ops_util.h"
#include "cpu.h"
#include "../ir/ops_sampling.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GS_MAX_SPATIAL (KILN_MAX_DIMS - 2)

/* Mirrors x into [lo, hi] as many times as needed. */
static double reflect(double x, double lo, double hi)
{
    double rng = hi - lo;
    if (!(rng > 0)) return lo;
    if (x < lo) {
        double dx = lo - x, n = floor(dx / rng), r = dx - n * rng;
        return fmod(n, 2.0) == 0 ? lo + r : hi - r;
    }
    if (x > hi) {
        double dx = x - hi, n = floor(dx / rng), r = dx - n * rng;
        return fmod(n, 2.0) == 0 ? hi - r : lo + r;
    }
    return x;
}

static double cubic_w(double x, int j)
{
    const double a = -0.75;
    double t = j == 0 ? x + 1 : j == 1 ? x : j == 2 ? 1 - x : 2 - x;
    if (j == 1 || j == 2) return ((a + 2) * t - (a + 3)) * t * t + 1;
    return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
}

/* One tap index along an axis after padding: -1 when it reads zero. */
static int64_t tap_index(const kiln_gridsample_params *p, int64_t i, int64_t len, double lo, double hi)
{
    if (p->padding == KILN_GRIDSAMPLE_ZEROS) return (i >= 0 && i < len) ? i : -1;
    if (p->padding == KILN_GRIDSAMPLE_BORDER) return i < 0 ? 0 : i >= len ? len - 1 : i;
    double f = reflect((double)i, lo, hi);
    int64_t k = (int64_t)f; /* truncation, as the reference's int() */
    return k < 0 ? 0 : k >= len ? len - 1 : k;
}

static kiln_status run_gridsample(const kiln_node *node, const void *params, const kiln_value *const *in,
                                  kiln_value *out, kiln_err *err)
{
    const kiln_gridsample_params *p = params;
    const kiln_value *x = in[0], *g = in[1];
    kiln_value *y = &out[0];
    int r = x->shape.rank, D = r - 2;
    if (D < 1 || D > GS_MAX_SPATIAL || g->shape.rank != r || g->shape.d[r - 1].add != D)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (GridSample): X and grid shapes do not match", node->name);
    int64_t N = x->shape.d[0].add, C = x->shape.d[1].add;
    if (g->shape.d[0].add != N)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (GridSample): batch of X is %lld, of grid %lld", node->name,
                          (long long)N, (long long)g->shape.d[0].add);
    int64_t len[GS_MAX_SPATIAL], in_sp = 1, out_sp = 1;
    for (int i = 0; i < D; i++) {
        len[i] = x->shape.d[2 + i].add;
        in_sp *= len[i];
        out_sp *= g->shape.d[1 + i].add;
    }
    if (kiln__value_numel(y) == 0) return KILN_OK;
    double lo[GS_MAX_SPATIAL], hi[GS_MAX_SPATIAL];
    for (int i = 0; i < D; i++) {
        lo[i] = p->align_corners ? 0.0 : -0.5;
        hi[i] = p->align_corners ? (double)len[i] - 1.0 : (double)len[i] - 0.5;
    }
    int taps = p->mode == KILN_GRIDSAMPLE_NEAREST ? 1 : p->mode == KILN_GRIDSAMPLE_LINEAR ? 2 : 4;
    int64_t combos = 1;
    for (int i = 0; i < D; i++) combos *= taps;
    int64_t *coff = malloc((size_t)combos * sizeof *coff);
    double *cw = malloc((size_t)combos * sizeof *cw);
    if (!coff || !cw) {
        free(coff);
        free(cw);
        return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s': out of memory", node->name);
    }
    int64_t stride[GS_MAX_SPATIAL];
    int64_t s = 1;
    for (int i = D - 1; i >= 0; i--) {
        stride[i] = s;
        s *= len[i];
    }
    for (int64_t n = 0; n < N; n++) {
        for (int64_t o = 0; o < out_sp; o++) {
            int64_t gbase = (n * out_sp + o) * D;
            int64_t tidx[GS_MAX_SPATIAL][4];
            double tw[GS_MAX_SPATIAL][4];
            bool empty = false;
            for (int i = 0; i < D; i++) {
                /* grid lists the innermost spatial dim first. */
                double gn = kiln__cpu_load_f64(g, gbase + (D - 1 - i));
                double l = (double)len[i];
                float xf = p->align_corners ? (float)((gn + 1) / 2.0 * (l - 1)) : (float)(((gn + 1) * l - 1) / 2.0);
                double c = xf;
                if (isnan(c)) c = -1e9;
                c = c < -1e9 ? -1e9 : c > 1e9 ? 1e9 : c;
                /* Half to even in every rank: ONNX's volumetric test data was made that way. */
                if (p->mode == KILN_GRIDSAMPLE_NEAREST) c = nearbyint(c);
                if (c < lo[i] || c > hi[i]) {
                    if (p->padding == KILN_GRIDSAMPLE_BORDER) c = c < 0 ? 0 : c > l - 1 ? l - 1 : c;
                    else if (p->padding == KILN_GRIDSAMPLE_REFLECTION) c = reflect(c, lo[i], hi[i]);
                }
                if (p->mode == KILN_GRIDSAMPLE_NEAREST) {
                    tidx[i][0] = tap_index(p, (int64_t)c, len[i], lo[i], hi[i]);
                    tw[i][0] = 1;
                } else {
                    double f = floor(c), t = c - f;
                    int64_t i0 = (int64_t)f;
                    if (p->mode == KILN_GRIDSAMPLE_LINEAR) {
                        tidx[i][0] = tap_index(p, i0, len[i], lo[i], hi[i]);
                        tidx[i][1] = tap_index(p, i0 + 1, len[i], lo[i], hi[i]);
                        tw[i][0] = 1 - t;
                        tw[i][1] = t;
                    } else {
                        for (int j = 0; j < 4; j++) {
                            tidx[i][j] = tap_index(p, i0 - 1 + j, len[i], lo[i], hi[i]);
                            tw[i][j] = cubic_w(t, j);
                        }
                    }
                }
                bool any = false;
                for (int j = 0; j < taps; j++) any |= tidx[i][j] >= 0;
                if (!any) empty = true;
            }
            int64_t nc = 0;
            if (!empty) {
                for (int64_t k = 0; k < combos; k++) {
                    int64_t rem = k, off = 0;
                    double w = 1;
                    bool valid = true;
                    for (int i = D - 1; i >= 0; i--) {
                        int j = (int)(rem % taps);
                        rem /= taps;
                        if (tidx[i][j] < 0) {
                            valid = false;
                            break;
                        }
                        off += tidx[i][j] * stride[i];
                        w *= tw[i][j];
                    }
                    if (!valid) continue;
                    coff[nc] = off;
                    cw[nc] = w;
                    nc++;
                }
            }
            for (int64_t c = 0; c < C; c++) {
                int64_t xb = (n * C + c) * in_sp;
                double acc = 0;
                for (int64_t k = 0; k < nc; k++) acc += cw[k] * kiln__cpu_load_f64(x, xb + coff[k]);
                kiln__cpu_store_f64(y, (n * C + c) * out_sp + o, acc);
            }
        }
    }
    free(coff);
    free(cw);
    return KILN_OK;
}

const kiln_cpu_kernel kiln__cpu_sampling[] = {
    {"GridSample", "", run_gridsample},
    {0},
};
