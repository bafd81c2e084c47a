/*
 * Built-in deformable convolution, written as a plugin through the public ABI
 * (include/kiln_plugin.h) to show that the ABI is enough for a real op: three
 * classes share one implementation.
 *
 *   "DeformConv"                 ONNX opset 19: X, W, offset, [B], [mask];
 *                                attributes dilations, group, kernel_shape,
 *                                offset_group, pads, strides. kiln knows this op
 *                                natively (schema + CPU kernel), so the class is
 *                                what the GPU runs (enqueue).
 *   "ModulatedDeformConv2d",
 *   "MMCVModulatedDeformConv2d"  DCNv2 as mmcv / mmdeploy export it: input,
 *                                offset, mask, weight, [bias]; attributes
 *                                stride, padding, dilation, groups,
 *                                deform_groups (the ONNX spellings are accepted
 *                                too). Offsets use the same layout as ONNX
 *                                ((dy, dx) per tap, per offset group): mmcv's
 *                                ModulatedDeformConv2dPack splits and
 *                                re-concatenates its conv output in the graph,
 *                                before the op. These classes do everything
 *                                (shapes, CPU execute, GPU enqueue).
 *
 * GPU: src/cuda/k_deform_conv.cu (bilinear sampling fused with the GEMM), any
 * layout through strides, FLOAT and FLOAT16. supports_format accepts NHWC (and
 * mixes), so in NHWC engines the runtime hands the node NHWC tensors and no
 * reformats surround it; the builder times the tactics (0-5: strided kernels,
 * 6-18: the fast kernel for channel-contiguous X, see k_deform_conv.h). CPU:
 * kiln__cpu_deform_conv_f32 (src/cpu/cpu_conv.c: the code of kiln's DeformConv
 * CPU kernel) on row-major data.
 */
#include "kiln_plugin.h"
#include "../cpu/cpu.h"
#ifdef KILN_HAVE_CUDA
#include "../cuda/k_deform_conv.h"
#endif
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIMIT ((int64_t)1 << 30) /* attribute values and dims above this come from corrupt files */

enum { KIND_ONNX, KIND_MMCV };

typedef struct dc_inst {
    int kind;
    int n_kernel; /* 0: from W */
    int64_t kernel[2], stride[2], dil[2], pads[4]; /* pads: h begin, w begin, h end, w end */
    int64_t group, og;
} dc_inst;

/* Input positions of X, W, offset, bias, mask for a kind. */
typedef struct dc_pos {
    int x, w, off, b, mask;
} dc_pos;

static dc_pos positions(int kind)
{
    dc_pos p = {0, 1, 2, 3, 4};
    if (kind == KIND_MMCV) {
        p.x = 0;
        p.off = 1;
        p.mask = 2;
        p.w = 3;
        p.b = 4;
    }
    return p;
}

static int fail(char *err, size_t len, int rc, const char *fmt, ...)
{
    if (err && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* ---- attributes ---------------------------------------------------------- */

static const kiln_plugin_attr *find_attr(const kiln_plugin_attr *a, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (a[i].name && !strcmp(a[i].name, name)) return &a[i];
    return NULL;
}

/*
 * Reads an INT or INTS attribute into dst[0..want): one value is repeated
 * when `repeat` (mmcv's stride=2 means 2 x 2); else exactly `want` values.
 * Absent: dst keeps its default, *found 0.
 */
static int read_ints(const kiln_plugin_attr *attrs, int n, const char *name, int want, bool repeat, int64_t lo,
                     int64_t *dst, int *found, char *err, size_t len)
{
    const kiln_plugin_attr *a = find_attr(attrs, n, name);
    if (found) *found = 0;
    if (!a) return KILN_PLUGIN_OK;
    int64_t v[4];
    int64_t cnt;
    if (a->type == KILN_PLUGIN_ATTR_INT) {
        cnt = 1;
        v[0] = a->i;
    } else if (a->type == KILN_PLUGIN_ATTR_INTS) {
        cnt = a->n;
        if (cnt < 0 || cnt > 4 || (cnt > 0 && !a->ints))
            return fail(err, len, KILN_PLUGIN_ERR_INVALID_ARG, "attribute '%s' has %lld values, expected %d", name,
                        (long long)cnt, want);
        for (int64_t i = 0; i < cnt; i++) v[i] = a->ints[i];
    } else {
        return fail(err, len, KILN_PLUGIN_ERR_INVALID_ARG, "attribute '%s' must be an int or ints", name);
    }
    if (cnt == 0) return KILN_PLUGIN_OK; /* empty list: the default */
    if (!(cnt == want || (repeat && cnt == 1)))
        return fail(err, len, KILN_PLUGIN_ERR_INVALID_ARG, "attribute '%s' has %lld values, expected %d", name,
                    (long long)cnt, want);
    for (int i = 0; i < want; i++) {
        int64_t x = v[cnt == 1 ? 0 : i];
        if (x < lo || x > LIMIT)
            return fail(err, len, KILN_PLUGIN_ERR_INVALID_ARG, "attribute '%s' value %lld is out of range [%lld, %lld]",
                        name, (long long)x, (long long)lo, (long long)LIMIT);
        dst[i] = x;
    }
    if (found) *found = 1;
    return KILN_PLUGIN_OK;
}

static int create_kind(int kind, const kiln_plugin_attr *attrs, int n, void **inst, char *err, size_t len)
{
    dc_inst t;
    memset(&t, 0, sizeof t);
    t.kind = kind;
    t.stride[0] = t.stride[1] = t.dil[0] = t.dil[1] = 1;
    t.group = t.og = 1;
    int rc, found;
    /* ONNX spellings */
    if ((rc = read_ints(attrs, n, "kernel_shape", 2, false, 1, t.kernel, &found, err, len))) return rc;
    t.n_kernel = found ? 2 : 0;
    if ((rc = read_ints(attrs, n, "strides", 2, kind == KIND_MMCV, 1, t.stride, NULL, err, len))) return rc;
    if ((rc = read_ints(attrs, n, "dilations", 2, kind == KIND_MMCV, 1, t.dil, NULL, err, len))) return rc;
    if ((rc = read_ints(attrs, n, "pads", 4, false, 0, t.pads, NULL, err, len))) return rc;
    if ((rc = read_ints(attrs, n, "group", 1, false, 1, &t.group, NULL, err, len))) return rc;
    if ((rc = read_ints(attrs, n, "offset_group", 1, false, 1, &t.og, NULL, err, len))) return rc;
    /* mmcv spellings (symmetric padding) */
    if (kind == KIND_MMCV) {
        int64_t pad[2] = {t.pads[0], t.pads[1]};
        if ((rc = read_ints(attrs, n, "stride", 2, true, 1, t.stride, NULL, err, len))) return rc;
        if ((rc = read_ints(attrs, n, "dilation", 2, true, 1, t.dil, NULL, err, len))) return rc;
        if ((rc = read_ints(attrs, n, "padding", 2, true, 0, pad, &found, err, len))) return rc;
        if (found) {
            t.pads[0] = t.pads[2] = pad[0];
            t.pads[1] = t.pads[3] = pad[1];
        }
        if ((rc = read_ints(attrs, n, "groups", 1, false, 1, &t.group, NULL, err, len))) return rc;
        if ((rc = read_ints(attrs, n, "deform_groups", 1, false, 1, &t.og, NULL, err, len))) return rc;
        if ((rc = read_ints(attrs, n, "deformable_groups", 1, false, 1, &t.og, NULL, err, len))) return rc;
    }
    dc_inst *p = malloc(sizeof *p);
    if (!p) return fail(err, len, KILN_PLUGIN_ERR_OUT_OF_MEMORY, "out of memory");
    *p = t;
    *inst = p;
    return KILN_PLUGIN_OK;
}

static int create_onnx(const kiln_plugin_host *host, const kiln_plugin_attr *attrs, int n, void **inst, char *err,
                       size_t len)
{
    (void)host;
    return create_kind(KIND_ONNX, attrs, n, inst, err, len);
}

static int create_mmcv(const kiln_plugin_host *host, const kiln_plugin_attr *attrs, int n, void **inst, char *err,
                       size_t len)
{
    (void)host;
    return create_kind(KIND_MMCV, attrs, n, inst, err, len);
}

static void destroy(void *inst) { free(inst); }

/* ---- types and shapes ---------------------------------------------------- */

static int output_types(const void *inst, const int32_t *in, int n_in, int32_t *out, int n_out, char *err, size_t len)
{
    (void)inst;
    if (n_in < 1 || n_out != 1) return fail(err, len, KILN_PLUGIN_ERR_INVALID_ARG, "expects one output");
    int32_t dt = in[0];
    if (dt && dt != KILN_PLUGIN_DT_FLOAT && dt != KILN_PLUGIN_DT_FLOAT16)
        return fail(err, len, KILN_PLUGIN_ERR_DTYPE, "input type %d is not supported (FLOAT or FLOAT16)", (int)dt);
    for (int i = 1; i < n_in; i++)
        if (dt && in[i] && in[i] != dt)
            return fail(err, len, KILN_PLUGIN_ERR_DTYPE, "input %d has type %d, input 0 has %d", i, (int)in[i], (int)dt);
    out[0] = dt;
    return KILN_PLUGIN_OK;
}

static bool cdim(const kiln_plugin_shape_input *v, int d, int64_t *val)
{
    if (!v || !v->present || v->shape.rank <= d || !kiln_plugin_dim_is_const(v->shape.d[d])) return false;
    *val = v->shape.d[d].add;
    return true;
}

static int output_shapes(const void *vinst, const kiln_plugin_shape_input *in, int n_in, kiln_plugin_shape *out,
                         int n_out, char *err, size_t len)
{
    const dc_inst *t = vinst;
    dc_pos ps = positions(t->kind);
    if (n_out != 1 || n_in < 3) return fail(err, len, KILN_PLUGIN_ERR_INVALID_ARG, "expects at least 3 inputs, 1 output");
    const kiln_plugin_shape_input *x = &in[ps.x], *w = &in[ps.w], *off = &in[ps.off];
    const kiln_plugin_shape_input *b = ps.b < n_in && in[ps.b].present ? &in[ps.b] : NULL;
    const kiln_plugin_shape_input *mk = ps.mask < n_in && in[ps.mask].present ? &in[ps.mask] : NULL;
    if (!x->present || !w->present || !off->present)
        return fail(err, len, KILN_PLUGIN_ERR_INVALID_ARG, "inputs X, weight and offset are required");
    const kiln_plugin_shape_input *r4[4] = {x, w, off, mk};
    static const char *const names[4] = {"X", "weight", "offset", "mask"};
    for (int i = 0; i < 4; i++)
        if (r4[i] && r4[i]->shape.rank >= 0 && r4[i]->shape.rank != 4)
            return fail(err, len, KILN_PLUGIN_ERR_SHAPE, "%s has %d dims, expected 4 (2-D deformable convolution)",
                        names[i], (int)r4[i]->shape.rank);
    if (b && b->shape.rank >= 0 && b->shape.rank != 1)
        return fail(err, len, KILN_PLUGIN_ERR_SHAPE, "bias has %d dims, expected 1", (int)b->shape.rank);
    int64_t c, wc, m, k[2] = {-1, -1}, v;
    if (cdim(x, 1, &c) && cdim(w, 1, &wc) && c != wc * t->group)
        return fail(err, len, KILN_PLUGIN_ERR_SHAPE, "X has %lld channels, weight expects %lld x group %lld", (long long)c,
                    (long long)wc, (long long)t->group);
    if (cdim(x, 1, &c) && c % t->og)
        return fail(err, len, KILN_PLUGIN_ERR_SHAPE, "%lld channels are not divisible by offset_group %lld", (long long)c,
                    (long long)t->og);
    if (cdim(w, 0, &m) && m % t->group)
        return fail(err, len, KILN_PLUGIN_ERR_SHAPE, "%lld output channels are not divisible by group %lld",
                    (long long)m, (long long)t->group);
    if (b && cdim(w, 0, &m) && cdim(b, 0, &v) && v != m)
        return fail(err, len, KILN_PLUGIN_ERR_SHAPE, "bias has %lld values, weight %lld output channels", (long long)v,
                    (long long)m);
    for (int i = 0; i < 2; i++) {
        if (t->n_kernel) k[i] = t->kernel[i];
        if (cdim(w, 2 + i, &v)) {
            if (t->n_kernel && v != k[i])
                return fail(err, len, KILN_PLUGIN_ERR_SHAPE, "kernel_shape[%d] is %lld, weight has %lld", i,
                            (long long)k[i], (long long)v);
            k[i] = v;
        }
    }
    kiln_plugin_shape *o = &out[0];
    o->rank = 4;
    o->d[0] = x->shape.rank == 4 ? x->shape.d[0] : kiln_plugin_dim_unknown();
    o->d[1] = w->shape.rank == 4 ? w->shape.d[0] : kiln_plugin_dim_unknown();
    for (int i = 0; i < 2; i++) {
        if (x->shape.rank != 4 || k[i] < 1) {
            o->d[2 + i] = kiln_plugin_dim_unknown();
            continue;
        }
        int64_t span = t->dil[i] * (k[i] - 1) + 1;
        kiln_plugin_dim d = kiln_plugin_dim_add(x->shape.d[2 + i], t->pads[i] + t->pads[i + 2] - span);
        d = kiln_plugin_dim_add(kiln_plugin_dim_div(d, t->stride[i]), 1);
        if (kiln_plugin_dim_is_const(d) && d.add < 1)
            return fail(err, len, KILN_PLUGIN_ERR_SHAPE, "output %s would be %lld (input %lld, kernel %lld)",
                        i ? "width" : "height", (long long)d.add, (long long)x->shape.d[2 + i].add, (long long)k[i]);
        o->d[2 + i] = d;
    }
    /* offset: [N, og*kh*kw*2, oH, oW]; mask: [N, og*kh*kw, oH, oW] */
    const kiln_plugin_shape_input *chk[2] = {off, mk};
    for (int j = 0; j < 2; j++) {
        if (!chk[j] || chk[j]->shape.rank != 4) continue;
        for (int d = 0; d < 4; d++) {
            int64_t want;
            bool known;
            if (d == 1) {
                known = k[0] >= 1 && k[1] >= 1;
                want = t->og * k[0] * k[1] * (j ? 1 : 2);
            } else {
                known = kiln_plugin_dim_is_const(o->d[d]);
                want = o->d[d].add;
            }
            if (known && cdim(chk[j], d, &v) && v != want)
                return fail(err, len, KILN_PLUGIN_ERR_SHAPE, "%s dim %d is %lld, expected %lld", j ? "mask" : "offset", d,
                            (long long)v, (long long)want);
        }
    }
    return KILN_PLUGIN_OK;
}

/* ---- concrete geometry (execute / enqueue) -------------------------------- */

typedef struct dc_run {
    kiln__deform_geom g;
    const kiln_plugin_tensor *x, *w, *off, *b, *mask, *y;
    int32_t dt;
} dc_run;

static bool dims_are(const kiln_plugin_tensor *t, int rank, const int64_t *want)
{
    if (t->rank != rank) return false;
    for (int i = 0; i < rank; i++)
        if (t->dims[i] != want[i]) return false;
    return true;
}

static int geometry(const dc_inst *t, const kiln_plugin_tensor *in, int n_in, const kiln_plugin_tensor *out, int n_out,
                    dc_run *r, char *err, size_t len)
{
    dc_pos ps = positions(t->kind);
    memset(r, 0, sizeof *r);
    if (n_out != 1 || n_in < 3 || n_in < (t->kind == KIND_MMCV ? 4 : 3))
        return fail(err, len, KILN_PLUGIN_ERR_INVALID_ARG, "wrong number of inputs or outputs");
    r->x = &in[ps.x];
    r->w = &in[ps.w];
    r->off = &in[ps.off];
    r->b = ps.b < n_in && in[ps.b].present ? &in[ps.b] : NULL;
    r->mask = ps.mask < n_in && in[ps.mask].present ? &in[ps.mask] : NULL;
    r->y = &out[0];
    if (!r->x->present || !r->w->present || !r->off->present)
        return fail(err, len, KILN_PLUGIN_ERR_INVALID_ARG, "inputs X, weight and offset are required");
    r->dt = r->x->dtype;
    if (r->dt != KILN_PLUGIN_DT_FLOAT && r->dt != KILN_PLUGIN_DT_FLOAT16)
        return fail(err, len, KILN_PLUGIN_ERR_DTYPE, "type %d is not supported (FLOAT or FLOAT16)", (int)r->dt);
    const kiln_plugin_tensor *all[6] = {r->x, r->w, r->off, r->b, r->mask, r->y};
    for (int i = 0; i < 6; i++) {
        if (!all[i]) continue;
        if (all[i]->dtype != r->dt)
            return fail(err, len, KILN_PLUGIN_ERR_DTYPE, "inputs and output must share one float type");
        if (all[i]->rank < 1 || all[i]->rank > KILN_PLUGIN_MAX_DIMS)
            return fail(err, len, KILN_PLUGIN_ERR_SHAPE, "tensor of rank %d", (int)all[i]->rank);
        for (int d = 0; d < all[i]->rank; d++)
            if (all[i]->dims[d] < 0 || all[i]->dims[d] > LIMIT || all[i]->strides[d] < 0)
                return fail(err, len, KILN_PLUGIN_ERR_SHAPE, "dim %lld is out of range", (long long)all[i]->dims[d]);
    }
    if (r->x->rank != 4 || r->w->rank != 4)
        return fail(err, len, KILN_PLUGIN_ERR_SHAPE, "X and weight must be 4-D");
    kiln__deform_geom *g = &r->g;
    g->n = r->x->dims[0];
    g->c = r->x->dims[1];
    g->h = r->x->dims[2];
    g->w = r->x->dims[3];
    g->m = r->w->dims[0];
    g->kh = r->w->dims[2];
    g->kw = r->w->dims[3];
    g->sh = t->stride[0];
    g->sw = t->stride[1];
    g->dh = t->dil[0];
    g->dw = t->dil[1];
    g->ph = t->pads[0];
    g->pw = t->pads[1];
    g->group = t->group;
    g->offset_group = t->og;
    if (g->c % g->group || r->w->dims[1] * g->group != g->c || g->m % g->group || g->c % g->offset_group)
        return fail(err, len, KILN_PLUGIN_ERR_SHAPE,
                    "channels do not match: X %lld, weight %lld x %lld, group %lld, offset_group %lld", (long long)g->c,
                    (long long)g->m, (long long)r->w->dims[1], (long long)g->group, (long long)g->offset_group);
    if (g->kh < 1 || g->kw < 1 || (t->n_kernel && (t->kernel[0] != g->kh || t->kernel[1] != g->kw)))
        return fail(err, len, KILN_PLUGIN_ERR_SHAPE, "kernel %lld x %lld does not match kernel_shape", (long long)g->kh,
                    (long long)g->kw);
    int64_t o[2];
    const int64_t ins[2] = {g->h, g->w}, ks[2] = {g->kh, g->kw};
    for (int i = 0; i < 2; i++) {
        int64_t num = ins[i] + t->pads[i] + t->pads[i + 2] - (t->dil[i] * (ks[i] - 1) + 1);
        o[i] = num < 0 ? 0 : num / t->stride[i] + 1;
    }
    g->oh = o[0];
    g->ow = o[1];
    int64_t taps = g->kh * g->kw;
    const int64_t yd[4] = {g->n, g->m, g->oh, g->ow}, od[4] = {g->n, g->offset_group * taps * 2, g->oh, g->ow};
    const int64_t md[4] = {g->n, g->offset_group * taps, g->oh, g->ow}, bd[1] = {g->m};
    if (!dims_are(r->y, 4, yd)) return fail(err, len, KILN_PLUGIN_ERR_SHAPE, "output shape does not match the inputs");
    if (!dims_are(r->off, 4, od)) return fail(err, len, KILN_PLUGIN_ERR_SHAPE, "offset shape does not match");
    if (r->mask && !dims_are(r->mask, 4, md)) return fail(err, len, KILN_PLUGIN_ERR_SHAPE, "mask shape does not match");
    if (r->b && !dims_are(r->b, 1, bd)) return fail(err, len, KILN_PLUGIN_ERR_SHAPE, "bias shape does not match");
    /* element counts must stay far from overflow: every dim <= 2^30 was checked, bound the products */
    const kiln_plugin_tensor *chk[5] = {r->x, r->w, r->off, r->mask, r->y};
    for (int i = 0; i < 5; i++) {
        if (!chk[i]) continue;
        double ne = 1;
        for (int d = 0; d < chk[i]->rank; d++) ne *= (double)chk[i]->dims[d];
        if (ne > (double)((int64_t)1 << 40)) return fail(err, len, KILN_PLUGIN_ERR_UNSUPPORTED, "tensor too large");
    }
    return KILN_PLUGIN_OK;
}

/* ---- CPU ------------------------------------------------------------------ */

static int64_t numel(const kiln_plugin_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->dims[i];
    return n;
}

static bool row_major(const kiln_plugin_tensor *t)
{
    int64_t s = 1;
    for (int i = t->rank - 1; i >= 0; i--) {
        if (t->dims[i] != 1 && t->strides[i] != s) return false;
        s *= t->dims[i];
    }
    return true;
}

/* IEEE half <-> float, round to nearest even (kept here so the class needs nothing but the ABI). */
static float h2f(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (e == 0) {
        float v = ldexpf((float)mant, -24);
        return sign ? -v : v;
    }
    if (e == 31) bits = sign | 0x7f800000u | (mant << 13);
    else bits = sign | ((e + 112) << 23) | (mant << 13);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint16_t f2h(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00; /* NaN */
    if (ax >= 0x477ff000u) return sign | 0x7c00; /* rounds to inf */
    if (ax < 0x38800000u) { /* subnormal half or zero */
        float a;
        memcpy(&a, &ax, sizeof a);
        return sign | (uint16_t)lrintf(a * 16777216.0f);
    }
    uint32_t mant = ax & 0x7fffff, e = (ax >> 23) - 112;
    uint32_t h = (e << 10) | (mant >> 13), rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return sign | (uint16_t)h;
}

static float *as_float(const kiln_plugin_tensor *t, bool *owned)
{
    static float empty; /* stands in for the data of an empty tensor (never read) */
    *owned = false;
    if (!t) return NULL;
    int64_t n = numel(t);
    if (n == 0) return &empty;
    if (t->dtype == KILN_PLUGIN_DT_FLOAT) return t->data;
    float *f = malloc((size_t)(n > 0 ? n : 1) * sizeof *f);
    if (!f) return NULL;
    const uint16_t *h = t->data;
    for (int64_t i = 0; i < n; i++) f[i] = h2f(h[i]);
    *owned = true;
    return f;
}

static int execute(const void *vinst, const kiln_plugin_tensor *in, int n_in, const kiln_plugin_tensor *out, int n_out,
                   char *err, size_t len)
{
    dc_run r;
    int rc = geometry(vinst, in, n_in, out, n_out, &r, err, len);
    if (rc) return rc;
    const kiln_plugin_tensor *ts[6] = {r.x, r.w, r.off, r.b, r.mask, r.y};
    for (int i = 0; i < 6; i++)
        if (ts[i] && (!row_major(ts[i]) || (!ts[i]->data && numel(ts[i]) > 0)))
            return fail(err, len, KILN_PLUGIN_ERR_INVALID_ARG, "execute needs row-major host tensors");
    if (numel(r.y) == 0) return KILN_PLUGIN_OK;
    bool own[6] = {false};
    float *f[6] = {NULL};
    bool oom = false;
    for (int i = 0; i < 5; i++) {
        if (!ts[i]) continue;
        f[i] = as_float(ts[i], &own[i]);
        if (!f[i]) oom = true;
    }
    if (r.dt == KILN_PLUGIN_DT_FLOAT) {
        f[5] = r.y->data;
    } else if (!oom) {
        f[5] = malloc((size_t)numel(r.y) * sizeof(float));
        own[5] = true;
        if (!f[5]) oom = true;
    }
    if (!oom && kiln__cpu_deform_conv_f32(&r.g, f[0], f[1], f[2], f[4], f[3], f[5])) oom = true;
    if (!oom && r.dt == KILN_PLUGIN_DT_FLOAT16) {
        uint16_t *h = r.y->data;
        for (int64_t i = 0; i < numel(r.y); i++) h[i] = f2h(f[5][i]);
    }
    for (int i = 0; i < 6; i++)
        if (own[i]) free(f[i]);
    return oom ? fail(err, len, KILN_PLUGIN_ERR_OUT_OF_MEMORY, "out of memory") : KILN_PLUGIN_OK;
}

/* ---- GPU ------------------------------------------------------------------ */

#ifdef KILN_HAVE_CUDA
static int supports_format(const void *inst, int pos, const kiln_plugin_format *f, int n_in, int n_out)
{
    (void)inst;
    if (pos < 0 || pos >= n_in + n_out) return 0;
    if (f[pos].dtype != KILN_PLUGIN_DT_FLOAT && f[pos].dtype != KILN_PLUGIN_DT_FLOAT16) return 0;
    if (f[pos].layout != KILN_PLUGIN_LAYOUT_ROW_MAJOR && f[pos].layout != KILN_PLUGIN_LAYOUT_NHWC) return 0;
    /* one float type for every position; any layout, NHWC included (the kernels index through strides;
     * the fast ones want X channel-contiguous and copy it otherwise) */
    return pos == 0 || f[pos].dtype == f[0].dtype;
}

static void copy4(int64_t *dst, const kiln_plugin_tensor *t)
{
    for (int i = 0; i < 4; i++) dst[i] = t && t->rank == 4 ? t->strides[i] : 0;
}

static void fill_args(const dc_run *r, kdc_args *a)
{
    memset(a, 0, sizeof *a);
    a->dt = r->dt;
    a->n = r->g.n;
    a->c = r->g.c;
    a->h = r->g.h;
    a->w = r->g.w;
    a->m = r->g.m;
    a->oh = r->g.oh;
    a->ow = r->g.ow;
    a->kh = r->g.kh;
    a->kw = r->g.kw;
    a->sh = r->g.sh;
    a->sw = r->g.sw;
    a->ph = r->g.ph;
    a->pw = r->g.pw;
    a->dh = r->g.dh;
    a->dw = r->g.dw;
    a->group = r->g.group;
    a->offset_group = r->g.offset_group;
    a->x = r->x->data;
    a->wt = r->w->data;
    a->off = r->off->data;
    a->mask = r->mask ? r->mask->data : NULL;
    a->bias = r->b ? r->b->data : NULL;
    a->y = r->y->data;
    copy4(a->xs, r->x);
    copy4(a->wts, r->w);
    copy4(a->offs, r->off);
    copy4(a->ms, r->mask);
    copy4(a->ys, r->y);
    a->bs = r->b ? r->b->strides[0] : 0;
    a->act = KDC_ACT_NONE;
}

static int tactic_count(const void *inst, const kiln_plugin_tensor *in, int n_in, const kiln_plugin_tensor *out,
                        int n_out)
{
    (void)inst;
    (void)in;
    (void)n_in;
    (void)out;
    (void)n_out;
    /* KILN_DEFORM_TACTICS=n limits the builder to the first n tactics (A/B checks on the device) */
    const char *e = getenv("KILN_DEFORM_TACTICS");
    int n = e ? atoi(e) : 0;
    return n >= 1 && n <= KDC_TACTICS ? n : KDC_TACTICS;
}

static size_t workspace_size(const void *vinst, const kiln_plugin_tensor *in, int n_in, const kiln_plugin_tensor *out,
                             int n_out, int tactic)
{
    dc_run r;
    char msg[8];
    if (geometry(vinst, in, n_in, out, n_out, &r, msg, sizeof msg)) return 0; /* enqueue reports the error */
    kdc_args a;
    fill_args(&r, &a);
    a.tactic = tactic >= 0 && tactic < KDC_TACTICS ? tactic : 0;
    return kiln__kdc_workspace(&a);
}

static int enqueue(const void *vinst, const kiln_plugin_tensor *in, int n_in, const kiln_plugin_tensor *out, int n_out,
                   void *ws, size_t ws_bytes, int tactic, void *stream, char *err, size_t len)
{
    dc_run r;
    int rc = geometry(vinst, in, n_in, out, n_out, &r, err, len);
    if (rc) return rc;
    if (numel(r.y) == 0) return KILN_PLUGIN_OK;
    const kiln_plugin_tensor *need[4] = {r.x, r.w, r.off, r.y};
    for (int i = 0; i < 4; i++)
        if (!need[i]->data && numel(need[i]) > 0)
            return fail(err, len, KILN_PLUGIN_ERR_INVALID_ARG, "a required tensor has no device memory");
    if (tactic < 0 || tactic >= KDC_TACTICS)
        return fail(err, len, KILN_PLUGIN_ERR_INVALID_ARG, "tactic %d out of range [0, %d)", tactic, KDC_TACTICS);
    kdc_args a;
    fill_args(&r, &a);
    a.tactic = tactic;
    a.ws = ws;
    a.ws_bytes = ws_bytes;
    size_t need_ws = kiln__kdc_workspace(&a);
    if (need_ws > ws_bytes || (need_ws && !ws)) {
        /* less workspace than asked for (a caller that skipped workspace_size): the tactics without it */
        a.tactic = 1;
        a.ws = NULL;
        a.ws_bytes = 0;
    }
    /* a fault of an earlier kernel is sticky and would surface as this launch's error: say so */
    int pend = kiln__kdc_pending_error();
    if (pend)
        return fail(err, len, KILN_PLUGIN_ERR_BACKEND, "a CUDA error is pending from an earlier launch (before this node): %s",
                    kiln__kdc_error_string(pend));
    int cr = kiln__kdc_deform_conv(&a, stream);
    if (cr) return fail(err, len, KILN_PLUGIN_ERR_BACKEND, "deform conv kernel: %s", kiln__kdc_error_string(cr));
    return KILN_PLUGIN_OK;
}
#define DC_SUPPORTS supports_format
#define DC_ENQUEUE enqueue
#define DC_TACTICS tactic_count
#define DC_WORKSPACE workspace_size
#else
#define DC_SUPPORTS NULL
#define DC_ENQUEUE NULL
#define DC_TACTICS NULL
#define DC_WORKSPACE NULL
#endif

/* ---- the classes ---------------------------------------------------------- */

#define DC_CLASS(sym, nm, create_fn, min_in)                                                                    \
    const kiln_plugin_class sym = {                                                                            \
        .abi_version = KILN_PLUGIN_ABI_VERSION,                                                                \
        .struct_size = sizeof(kiln_plugin_class),                                                              \
        .name = nm,                                                                                            \
        .version = "1",                                                                                        \
        .plugin_namespace = "",                                                                                \
        .min_inputs = min_in,                                                                                  \
        .max_inputs = 5,                                                                                       \
        .min_outputs = 1,                                                                                      \
        .max_outputs = 1,                                                                                      \
        .create = create_fn,                                                                                   \
        .destroy = destroy,                                                                                    \
        .get_output_types = output_types,                                                                      \
        .get_output_shapes = output_shapes,                                                                    \
        .supports_format = DC_SUPPORTS,                                                                        \
        .tactic_count = DC_TACTICS,                                                                            \
        .workspace_size = DC_WORKSPACE,                                                                        \
        .enqueue = DC_ENQUEUE,                                                                                 \
        .execute = execute,                                                                                    \
    }

DC_CLASS(kiln__plugin_deform_conv, "DeformConv", create_onnx, 3);
DC_CLASS(kiln__plugin_modulated_deform_conv2d, "ModulatedDeformConv2d", create_mmcv, 4);
DC_CLASS(kiln__plugin_mmcv_modulated_deform_conv2d, "MMCVModulatedDeformConv2d", create_mmcv, 4);

const kiln_plugin_class *const kiln__plugin_deform_conv_classes[] = {
    &kiln__plugin_deform_conv,
    &kiln__plugin_modulated_deform_conv2d,
    &kiln__plugin_mmcv_modulated_deform_conv2d,
    NULL,
};
