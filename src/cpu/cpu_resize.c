/*
 * CPU reference kernels of the resize family (Resize, Upsample).
 *
 * Every axis maps output coordinates back to the input independently, so the
 * kernel builds one table of taps (input index, weight) per axis and applies
 * the axes one after another (separable filtering, in double). Nearest mode
 * is a plain gather and copies elements bit-exactly for every dtype. The
 * coefficients follow the ONNX reference implementation, including its
 * edge-clamped neighbourhoods and antialiasing filters.
 */
#include "cpu.h"
#include "../ir/ops_resize.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Taps of one axis: for output index o, taps [o*n, o*n+cnt[o]) of idx / w. */
typedef struct axis_taps {
    int64_t in_len, out_len;
    int n;            /* max taps per output */
    int64_t *idx;
    double *w;
    int *cnt;
    uint8_t *outside; /* tf_crop_and_resize: coordinate outside the input */
    bool identity;
    bool any_outside;
} axis_taps;

static void taps_free(axis_taps *t)
{
    free(t->idx);
    free(t->w);
    free(t->cnt);
    free(t->outside);
}

/* Input coordinate of output index x along one axis; *outside for tf_crop_and_resize. */
static double original_coord(const kiln_resize_params *p, int64_t x, double scale, int64_t in_len, int64_t out_len,
                             double roi_s, double roi_e, bool *outside)
{
    double out_w = scale * (double)in_len; /* the ONNX reference uses the unrounded output length */
    double xf = (double)x, v;
    *outside = false;
    switch (p->ctm) {
    case KILN_RESIZE_CTM_ALIGN_CORNERS:
        v = out_w == 1.0 ? 0.0 : xf * (double)(in_len - 1) / (out_w - 1.0);
        break;
    case KILN_RESIZE_CTM_ASYMMETRIC: v = xf / scale; break;
    case KILN_RESIZE_CTM_TF_HALF_PIXEL_FOR_NN: v = (xf + 0.5) / scale; break;
    case KILN_RESIZE_CTM_TF_CROP_AND_RESIZE:
        if (out_w == 1.0) v = (roi_e - roi_s) * (double)(in_len - 1) / 2.0;
        else v = xf * (roi_e - roi_s) * (double)(in_len - 1) / (out_w - 1.0);
        v += roi_s * (double)(in_len - 1);
        if (v < 0 || v > (double)(in_len - 1)) *outside = true;
        break;
    case KILN_RESIZE_CTM_PYTORCH_HALF_PIXEL: v = out_w == 1.0 ? -0.5 : (xf + 0.5) / scale - 0.5; break;
    case KILN_RESIZE_CTM_HALF_PIXEL_SYMMETRIC: {
        double adjustment = (double)out_len / out_w;
        double offset = (double)in_len / 2.0 * (1.0 - adjustment);
        v = offset + (xf + 0.5) / scale - 0.5;
        break;
    }
    default: v = (xf + 0.5) / scale - 0.5; break;
    }
    return v;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Coordinates this far out are nonsense (NaN scales are rejected earlier); keep integer casts defined. */
static double clampd(double v)
{
    if (isnan(v)) return 0;
    return v < -1e15 ? -1e15 : v > 1e15 ? 1e15 : v;
}

static int64_t nearest_index(const kiln_resize_params *p, double x, double scale)
{
    double f = floor(x);
    double r = x - f;
    int64_t i = (int64_t)f;
    if (r == 0) return i;
    switch (p->nearest) {
    case KILN_RESIZE_NEAREST_ROUND_PREFER_CEIL: return r < 0.5 ? i : i + 1;
    case KILN_RESIZE_NEAREST_FLOOR: return i;
    case KILN_RESIZE_NEAREST_CEIL: return i + 1;
    case KILN_RESIZE_NEAREST_SIMPLE: return scale < 1.0 ? i + 1 : i;
    default: return r <= 0.5 ? i : i + 1;
    }
}

static double cubic_weight(double x, double a)
{
    x = fabs(x);
    if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    return 0;
}

/*
 * Filter taps for a fractional position `ratio` in (0, 1] after the base
 * index: c[j] weighs input base + start + j. Returns the tap count.
 */
static int filter_taps(const kiln_resize_params *p, double ratio, double scale, int *start, double *c, int cap)
{
    if (p->mode == KILN_RESIZE_LINEAR && !p->antialias) {
        *start = 0;
        c[0] = 1 - ratio;
        c[1] = ratio;
        return 2;
    }
    if (p->mode == KILN_RESIZE_CUBIC && !p->antialias) {
        double a = p->cubic_a, t = ratio;
        *start = -1;
        c[0] = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a;
        c[1] = ((a + 2) * t - (a + 3)) * t * t + 1;
        c[2] = ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1;
        c[3] = ((a * ((1 - t) + 1) - 5 * a) * ((1 - t) + 1) + 8 * a) * ((1 - t) + 1) - 4 * a;
        return 4;
    }
    /* Antialiasing stretches the filter by 1/scale when downscaling. */
    double s = scale < 1.0 ? scale : 1.0;
    double support = p->mode == KILN_RESIZE_LINEAR ? 1.0 : 2.0;
    int st = (int)floor(-support / s) + 1;
    int n = 2 - 2 * st;
    if (n > cap) n = cap; /* cap is sized from the same formula; this only guards */
    double sum = 0;
    for (int j = 0; j < n; j++) {
        double arg = ((double)(st + j) - ratio) * s;
        double v = p->mode == KILN_RESIZE_LINEAR ? 1 - fabs(arg) : cubic_weight(arg, p->cubic_a);
        if (p->mode == KILN_RESIZE_LINEAR && v < 0) v = 0;
        c[j] = v;
        sum += v;
    }
    if (sum != 0)
        for (int j = 0; j < n; j++) c[j] /= sum;
    *start = st;
    return n;
}

static int max_taps(const kiln_resize_params *p, double scale)
{
    if (p->mode == KILN_RESIZE_NEAREST) return 1;
    if (!p->antialias) return p->mode == KILN_RESIZE_LINEAR ? 2 : 4;
    double s = scale < 1.0 ? scale : 1.0;
    double support = p->mode == KILN_RESIZE_LINEAR ? 1.0 : 2.0;
    double st = floor(-support / s) + 1;
    return (int)(2 - 2 * st);
}

static kiln_status build_taps(const kiln_node *node, const kiln_resize_params *p, double scale, int64_t in_len,
                              int64_t out_len, double roi_s, double roi_e, axis_taps *t, kiln_err *err)
{
    memset(t, 0, sizeof *t);
    t->in_len = in_len;
    t->out_len = out_len;
    double nt = p->mode != KILN_RESIZE_NEAREST && p->antialias
                    ? 2.0 * ceil((p->mode == KILN_RESIZE_LINEAR ? 1.0 : 2.0) / (scale < 1.0 ? scale : 1.0)) + 2
                    : 4;
    if (nt > 4096 || nt * (double)out_len > (double)((int64_t)1 << 32))
        return kiln__fail(err, KILN_ERR_LIMIT, "node '%s' (%s): antialias filter for scale %g is too wide", node->name,
                          node->op_type, scale);
    t->n = max_taps(p, scale);
    size_t no = (size_t)(out_len ? out_len : 1), cells = no * (size_t)t->n;
    t->idx = malloc(cells * sizeof *t->idx);
    t->w = malloc(cells * sizeof *t->w);
    t->cnt = calloc(no, sizeof *t->cnt);
    t->outside = calloc(no, 1);
    if (!t->idx || !t->w || !t->cnt || !t->outside) {
        taps_free(t);
        return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s': out of memory for resize tables", node->name);
    }
    double c[4096 + 8];
    t->identity = in_len == out_len;
    for (int64_t o = 0; o < out_len; o++) {
        bool outside;
        double x = clampd(original_coord(p, o, scale, in_len, out_len, roi_s, roi_e, &outside));
        int64_t *ix = t->idx + o * t->n;
        double *w = t->w + o * t->n;
        if (outside) {
            /* extrapolation_value is written for these; keep the tap defined for the nearest gather */
            t->outside[o] = 1;
            t->any_outside = true;
            t->identity = false;
            t->cnt[o] = 0;
            ix[0] = 0;
            w[0] = 0;
            continue;
        }
        if (p->mode == KILN_RESIZE_NEAREST) {
            ix[0] = clamp64(nearest_index(p, x, scale), 0, in_len - 1);
            w[0] = 1;
            t->cnt[o] = 1;
            if (ix[0] != o) t->identity = false;
            continue;
        }
        /* The reference picks the neighbours left of x: ratio lies in (0, 1]. */
        double f = floor(x);
        double ratio = x - f;
        int64_t base = (int64_t)f;
        if (ratio == 0) {
            ratio = 1;
            base -= 1;
        }
        int start;
        int n = filter_taps(p, ratio, scale, &start, c, t->n);
        /* Its neighbourhood lies in the input padded by ceil(n/2) on each side (edge values). */
        int64_t pad = (n + 1) / 2, lo = base + start;
        if (lo < -pad) lo = -pad;
        if (lo + n - 1 > in_len - 1 + pad) lo = in_len - 1 + pad - (n - 1);
        if (p->exclude_outside) {
            double sum = 0;
            for (int j = 0; j < n; j++) {
                int64_t i = lo + j;
                if (i < 0 || i >= in_len) c[j] = 0;
                sum += c[j];
            }
            if (sum != 0)
                for (int j = 0; j < n; j++) c[j] /= sum;
        }
        int k = 0;
        for (int j = 0; j < n; j++) {
            if (c[j] == 0) continue;
            int64_t i = clamp64(lo + j, 0, in_len - 1);
            /* Edge clamping can repeat an index: merge its weights. */
            if (k > 0 && ix[k - 1] == i) {
                w[k - 1] += c[j];
                continue;
            }
            ix[k] = i;
            w[k] = c[j];
            k++;
        }
        t->cnt[o] = k;
        if (!(k == 1 && ix[0] == o && w[0] == 1.0)) t->identity = false;
    }
    return KILN_OK;
}

/* acc[k] += w * src[off + k] for k < n, reading any dtype. */
static void accumulate(const kiln_value *v, const double *buf, int64_t off, int64_t n, double w, double *acc)
{
    if (buf) {
        const double *s = buf + off;
        for (int64_t k = 0; k < n; k++) acc[k] += w * s[k];
        return;
    }
    switch (v->dtype) {
    case KILN_DT_FLOAT: {
        const float *s = (const float *)v->data + off;
        for (int64_t k = 0; k < n; k++) acc[k] += w * (double)s[k];
        break;
    }
    case KILN_DT_DOUBLE: {
        const double *s = (const double *)v->data + off;
        for (int64_t k = 0; k < n; k++) acc[k] += w * s[k];
        break;
    }
    default:
        for (int64_t k = 0; k < n; k++) acc[k] += w * kiln__value_get_f64(v, off + k);
        break;
    }
}

static void store_row(kiln_value *v, int64_t off, int64_t n, const double *row)
{
    switch (v->dtype) {
    case KILN_DT_FLOAT: {
        float *d = (float *)v->data + off;
        for (int64_t k = 0; k < n; k++) d[k] = (float)row[k];
        break;
    }
    case KILN_DT_DOUBLE: memcpy((double *)v->data + off, row, (size_t)n * sizeof(double)); break;
    default:
        for (int64_t k = 0; k < n; k++) kiln__value_set_f64(v, off + k, row[k]);
        break;
    }
}

/*
 * One separable pass along `axis`: src (input value or double buffer) with
 * dims `dims` -> dst (output value or double buffer), dims[axis] becoming
 * t->out_len.
 */
static kiln_status resample_axis(const kiln_value *src_v, const double *src_b, int r, const int64_t *dims, int axis,
                                 const axis_taps *t, kiln_value *dst_v, double *dst_b, kiln_err *err)
{
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; i++) outer *= dims[i];
    for (int i = axis + 1; i < r; i++) inner *= dims[i];
    if (inner == 1) {
        /* Innermost axis: load each source row once, then one dot product per output. */
        double *srow = malloc((size_t)(t->in_len + 1) * sizeof *srow), *drow = malloc((size_t)(t->out_len + 1) * sizeof *drow);
        if (!srow || !drow) {
            free(srow);
            free(drow);
            return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory in resize");
        }
        for (int64_t a = 0; a < outer; a++) {
            const double *sr = srow;
            if (src_b) {
                sr = src_b + a * t->in_len;
            } else {
                memset(srow, 0, (size_t)t->in_len * sizeof *srow);
                accumulate(src_v, NULL, a * t->in_len, t->in_len, 1.0, srow);
            }
            double *dr = dst_b ? dst_b + a * t->out_len : drow;
            for (int64_t o = 0; o < t->out_len; o++) {
                const int64_t *ix = t->idx + o * t->n;
                const double *w = t->w + o * t->n;
                double acc = 0;
                for (int j = 0; j < t->cnt[o]; j++) acc += w[j] * sr[ix[j]];
                dr[o] = acc;
            }
            if (!dst_b) store_row(dst_v, a * t->out_len, t->out_len, drow);
        }
        free(srow);
        free(drow);
        return KILN_OK;
    }
    double *row = NULL;
    if (!dst_b) {
        row = malloc((size_t)(inner ? inner : 1) * sizeof *row);
        if (!row) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory in resize");
    }
    for (int64_t a = 0; a < outer; a++) {
        for (int64_t o = 0; o < t->out_len; o++) {
            int64_t doff = (a * t->out_len + o) * inner;
            double *acc = dst_b ? dst_b + doff : row;
            memset(acc, 0, (size_t)inner * sizeof *acc);
            const int64_t *ix = t->idx + o * t->n;
            const double *w = t->w + o * t->n;
            for (int j = 0; j < t->cnt[o]; j++)
                accumulate(src_v, src_b, (a * t->in_len + ix[j]) * inner, inner, w[j], acc);
            if (!dst_b) store_row(dst_v, doff, inner, acc);
        }
    }
    free(row);
    return KILN_OK;
}

/* Nearest: gather whole elements (bit-exact for every dtype). */
static void gather_nearest(const kiln_value *x, kiln_value *y, int r, const int64_t *in_dims, const int64_t *out_dims,
                           const axis_taps *taps)
{
    size_t es = kiln_dtype_size(x->dtype);
    int64_t in_stride[KILN_MAX_DIMS];
    int64_t s = 1;
    for (int i = r - 1; i >= 0; i--) {
        in_stride[i] = s;
        s *= in_dims[i];
    }
    int64_t total = 1;
    for (int i = 0; i < r; i++) total *= out_dims[i];
    if (total == 0) return;
    int64_t last = out_dims[r - 1];
    const axis_taps *tl = &taps[r - 1];
    int64_t pos[KILN_MAX_DIMS] = {0};
    const uint8_t *src = x->data;
    uint8_t *dst = y->data;
    for (int64_t done = 0; done < total; done += last) {
        int64_t base = 0;
        for (int i = 0; i < r - 1; i++) base += taps[i].idx[pos[i] * taps[i].n] * in_stride[i];
        uint8_t *d = dst + (size_t)done * es;
        switch (es) {
        case 1:
            for (int64_t k = 0; k < last; k++) d[k] = src[base + tl->idx[k * tl->n]];
            break;
        case 2:
            for (int64_t k = 0; k < last; k++) ((uint16_t *)d)[k] = ((const uint16_t *)src)[base + tl->idx[k * tl->n]];
            break;
        case 4:
            for (int64_t k = 0; k < last; k++) ((uint32_t *)d)[k] = ((const uint32_t *)src)[base + tl->idx[k * tl->n]];
            break;
        case 8:
            for (int64_t k = 0; k < last; k++) ((uint64_t *)d)[k] = ((const uint64_t *)src)[base + tl->idx[k * tl->n]];
            break;
        default:
            for (int64_t k = 0; k < last; k++)
                memcpy(d + (size_t)k * es, src + (size_t)(base + tl->idx[k * tl->n]) * es, es);
            break;
        }
        for (int i = r - 2; i >= 0; i--) {
            if (++pos[i] < out_dims[i]) break;
            pos[i] = 0;
        }
    }
}

/* tf_crop_and_resize: every output whose coordinate is outside on some axis gets the extrapolation value. */
static void apply_extrapolation(kiln_value *y, int r, const int64_t *out_dims, const axis_taps *taps, double value)
{
    int64_t total = 1;
    for (int i = 0; i < r; i++) total *= out_dims[i];
    int64_t pos[KILN_MAX_DIMS] = {0};
    for (int64_t e = 0; e < total; e++) {
        bool out = false;
        for (int i = 0; i < r && !out; i++) out = taps[i].outside[pos[i]] != 0;
        if (out) kiln__value_set_f64(y, e, value);
        for (int i = r - 1; i >= 0; i--) {
            if (++pos[i] < out_dims[i]) break;
            pos[i] = 0;
        }
    }
}

static kiln_status run_resize(const kiln_node *node, const void *params, const kiln_value *const *in, kiln_value *out,
                              kiln_err *err)
{
    const kiln_resize_params *p = params;
    const kiln_value *x = in[0];
    kiln_value *y = &out[0];
    int r = x->shape.rank;
    if (r < 1 || r > KILN_MAX_DIMS)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): input has %d dims", node->name, node->op_type, r);
    int64_t in_dims[KILN_MAX_DIMS] = {0}, out_dims[KILN_MAX_DIMS] = {0};
    double scales[KILN_MAX_DIMS], roi[2 * KILN_MAX_DIMS];
    for (int i = 0; i < r; i++) in_dims[i] = x->shape.d[i].add;
    kiln_status s = kiln__resize_geometry(node, p, in, r, in_dims, out_dims, scales, roi, err);
    if (s) return s;
    for (int i = 0; i < r; i++)
        if (y->shape.d[i].add != out_dims[i])
            return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s': output dim %d is %lld, geometry says %lld", node->name, i,
                              (long long)y->shape.d[i].add, (long long)out_dims[i]);
    if (kiln__value_numel(y) == 0) return KILN_OK;
    for (int i = 0; i < r; i++)
        if (in_dims[i] == 0)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): input dim %d is 0", node->name, node->op_type, i);

    axis_taps taps[KILN_MAX_DIMS];
    int built = 0;
    double *bufs[2] = {NULL, NULL};
    for (; built < r; built++) {
        s = build_taps(node, p, scales[built], in_dims[built], out_dims[built], roi[built], roi[r + built], &taps[built],
                       err);
        if (s) goto done;
    }
    bool any_outside = false;
    for (int i = 0; i < r; i++) any_outside |= taps[i].any_outside;

    if (p->mode == KILN_RESIZE_NEAREST) {
        gather_nearest(x, y, r, in_dims, out_dims, taps);
    } else {
        /* Shrinking axes first keeps the intermediate tensors small. */
        int order[KILN_MAX_DIMS], n = 0;
        for (int i = 0; i < r; i++)
            if (!taps[i].identity) order[n++] = i;
        for (int i = 1; i < n; i++)
            for (int j = i; j > 0; j--) {
                double a = (double)out_dims[order[j]] / (double)in_dims[order[j]];
                double b = (double)out_dims[order[j - 1]] / (double)in_dims[order[j - 1]];
                if (a >= b) break;
                int tmp = order[j];
                order[j] = order[j - 1];
                order[j - 1] = tmp;
            }
        if (n == 0) {
            memcpy(y->data, x->data, y->nbytes < x->nbytes ? y->nbytes : x->nbytes);
        } else {
            int64_t dims[KILN_MAX_DIMS];
            memcpy(dims, in_dims, sizeof(int64_t) * (size_t)r);
            const double *src_b = NULL;
            int cur = 0;
            for (int k = 0; k < n; k++) {
                int axis = order[k];
                int64_t nd[KILN_MAX_DIMS];
                memcpy(nd, dims, sizeof nd);
                nd[axis] = out_dims[axis];
                double *dst_b = NULL;
                if (k < n - 1) {
                    int64_t cnt = 1;
                    for (int i = 0; i < r; i++) cnt *= nd[i];
                    free(bufs[cur]);
                    bufs[cur] = malloc((size_t)(cnt ? cnt : 1) * sizeof(double));
                    if (!bufs[cur]) {
                        s = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s': out of memory for resize", node->name);
                        goto done;
                    }
                    dst_b = bufs[cur];
                }
                s = resample_axis(k == 0 ? x : NULL, src_b, r, dims, axis, &taps[axis], y, dst_b, err);
                if (s) goto done;
                src_b = dst_b;
                cur ^= 1;
                memcpy(dims, nd, sizeof dims);
            }
        }
    }
    if (any_outside) apply_extrapolation(y, r, out_dims, taps, p->extrapolation);
    s = KILN_OK;
done:
    for (int i = 0; i < built; i++) taps_free(&taps[i]);
    free(bufs[0]);
    free(bufs[1]);
    return s;
}

const kiln_cpu_kernel kiln__cpu_resize[] = {
    {"Resize", "", run_resize},
    {"Upsample", "", run_resize},
    {0},
};
