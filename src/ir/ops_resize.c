/*
 * Op schemas of the resize family: Resize (opsets 10..19) and Upsample (1, 7, 9).
 *
 * Both ops are one operation: every axis is resampled with a scale factor,
 * and each output coordinate maps back to an input coordinate. The geometry
 * (output dims, per-axis scales, region of interest) is computed here by
 * kiln__resize_geometry so the CPU kernel and shape inference agree exactly.
 */
#include "ops_resize.h"
#include "ops_util.h"
#include <math.h>
#include <string.h>

/* Largest output accepted: elements per dim and in all. */
#define RZ_MAX_DIM ((int64_t)1 << 31)
#define RZ_MAX_NUMEL ((int64_t)1 << 40)

/* Index in names[] of string attribute `attr` (default def) into *out; fails on other values. */
static kiln_status pick(const kiln_node *node, const char *attr, const char *def, const char *const *names,
                        int n, int *out, kiln_err *err)
{
    kiln_status s = kiln__attr_expect(node, attr, KILN_ATTR_STRING, err);
    if (s) return s;
    const char *v = kiln__attr_string(node, attr, def);
    for (int i = 0; i < n; i++)
        if (names[i] && !strcmp(v, names[i])) {
            *out = i;
            return KILN_OK;
        }
    return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): attribute %s='%s' is not supported", node->name,
                      node->op_type, attr, v);
}

static kiln_status parse_mode(const kiln_node *node, kiln_resize_params *p, kiln_err *err)
{
    /* Upsample-1 spells linear "bilinear"; accept it everywhere. */
    static const char *const modes[] = {"nearest", "linear", "cubic", "bilinear"};
    int m = 0;
    kiln_status s = pick(node, "mode", "nearest", modes, 4, &m, err);
    if (s) return s;
    p->mode = m == 3 ? KILN_RESIZE_LINEAR : (kiln_resize_mode)m;
    if (p->upsample && p->mode == KILN_RESIZE_CUBIC)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (Upsample): mode 'cubic' exists only in Resize", node->name);
    return KILN_OK;
}

/* Input positions of roi / scales / sizes for this op and opset (-1: none). */
static void input_slots(const kiln_node *node, kiln_resize_params *p)
{
    p->roi_input = p->scales_input = p->sizes_input = -1;
    if (p->upsample) {
        if (p->n_attr_scales == 0) p->scales_input = 1;
    } else if (node->opset == 10) {
        p->scales_input = 1;
    } else {
        p->roi_input = 1;
        p->scales_input = 2;
        p->sizes_input = 3;
    }
}

static kiln_status resize_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_resize_params *p = params;
    p->upsample = false;
    kiln_status s = parse_mode(node, p, err);
    if (s) return s;
    if (node->opset > 0 && node->opset < 10)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s': Resize needs opset >= 10, model has %lld", node->name,
                          (long long)node->opset);
    if (node->opset == 10) {
        /* Resize-10 had no transformation attributes: asymmetric, ONNX Runtime's legacy rounding. */
        p->ctm = KILN_RESIZE_CTM_ASYMMETRIC;
        p->nearest = KILN_RESIZE_NEAREST_SIMPLE;
        p->cubic_a = -0.75f;
        if (p->mode == KILN_RESIZE_CUBIC)
            return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (Resize-10): mode 'cubic' needs opset >= 11", node->name);
        input_slots(node, p);
        return KILN_OK;
    }
    static const char *const ctms[] = {"half_pixel",  "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                                       "asymmetric",  "tf_half_pixel_for_nn", "tf_crop_and_resize"};
    int v = 0;
    if ((s = pick(node, "coordinate_transformation_mode", "half_pixel", ctms, 7, &v, err))) return s;
    p->ctm = (kiln_resize_ctm)v;
    static const char *const nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    if ((s = pick(node, "nearest_mode", "round_prefer_floor", nms, 4, &v, err))) return s;
    p->nearest = (kiln_resize_nearest)v;
    static const char *const kas[] = {"stretch", "not_larger", "not_smaller"};
    if ((s = pick(node, "keep_aspect_ratio_policy", "stretch", kas, 3, &v, err))) return s;
    p->keep_aspect = (kiln_resize_keep_aspect)v;
    if ((s = kiln__attr_expect(node, "cubic_coeff_a", KILN_ATTR_FLOAT, err))) return s;
    if ((s = kiln__attr_expect(node, "extrapolation_value", KILN_ATTR_FLOAT, err))) return s;
    if ((s = kiln__attr_expect(node, "exclude_outside", KILN_ATTR_INT, err))) return s;
    if ((s = kiln__attr_expect(node, "antialias", KILN_ATTR_INT, err))) return s;
    if ((s = kiln__attr_expect(node, "axes", KILN_ATTR_INTS, err))) return s;
    p->cubic_a = kiln__attr_float(node, "cubic_coeff_a", -0.75f);
    p->extrapolation = kiln__attr_float(node, "extrapolation_value", 0.0f);
    if (!isfinite(p->cubic_a))
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (Resize): cubic_coeff_a is not finite", node->name);
    p->exclude_outside = kiln__attr_int(node, "exclude_outside", 0) != 0;
    /* Antialiasing only changes linear and cubic filters; nearest ignores it. */
    p->antialias = kiln__attr_int(node, "antialias", 0) != 0 && p->mode != KILN_RESIZE_NEAREST;
    const int64_t *axes;
    int64_t na = kiln__attr_ints(node, "axes", &axes);
    if (na > KILN_MAX_DIMS)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (Resize): axes has %lld entries, at most %d allowed",
                          node->name, (long long)na, KILN_MAX_DIMS);
    if (na == 0)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (Resize): axes is empty", node->name);
    if (na > 0) {
        p->n_axes = (int)na;
        for (int i = 0; i < p->n_axes; i++) p->axes[i] = axes[i];
    }
    input_slots(node, p);
    return KILN_OK;
}

static kiln_status upsample_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_resize_params *p = params;
    p->upsample = true;
    kiln_status s = parse_mode(node, p, err);
    if (s) return s;
    p->ctm = KILN_RESIZE_CTM_ASYMMETRIC;
    p->nearest = KILN_RESIZE_NEAREST_SIMPLE;
    p->cubic_a = -0.75f;
    if (node->opset > 0 && node->opset < 7) {
        /* Upsample-1: 4-D NCHW with height_scale / width_scale. */
        if ((s = kiln__attr_expect(node, "height_scale", KILN_ATTR_FLOAT, err))) return s;
        if ((s = kiln__attr_expect(node, "width_scale", KILN_ATTR_FLOAT, err))) return s;
        if (!kiln__node_attr(node, "height_scale") || !kiln__node_attr(node, "width_scale"))
            return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (Upsample-1): height_scale and width_scale are required",
                              node->name);
        p->n_attr_scales = 4;
        p->attr_scales[0] = p->attr_scales[1] = 1.0f;
        p->attr_scales[2] = kiln__attr_float(node, "height_scale", 1.0f);
        p->attr_scales[3] = kiln__attr_float(node, "width_scale", 1.0f);
    } else if (node->opset > 0 && node->opset < 9) {
        if ((s = kiln__attr_expect(node, "scales", KILN_ATTR_FLOATS, err))) return s;
        const kiln_attr *a = kiln__node_attr(node, "scales");
        if (!a)
            return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (Upsample-7): attribute 'scales' is required", node->name);
        if (a->n < 1 || a->n > KILN_MAX_DIMS)
            return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (Upsample-7): scales has %lld entries", node->name,
                              (long long)a->n);
        p->n_attr_scales = (int)a->n;
        for (int i = 0; i < p->n_attr_scales; i++) p->attr_scales[i] = a->floats[i];
    } else if (node->n_in < 2 || node->in[1] < 0) {
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (Upsample-%lld): input 'scales' is required", node->name,
                          (long long)node->opset);
    }
    for (int i = 0; i < p->n_attr_scales; i++)
        if (!(p->attr_scales[i] > 0) || !isfinite(p->attr_scales[i]))
            return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (Upsample): scale %d is %g, must be > 0", node->name, i,
                              (double)p->attr_scales[i]);
    input_slots(node, p);
    return KILN_OK;
}

static const kiln_value *opt_in(const kiln_node *node, const kiln_value *const *in, int i)
{
    return (i >= 0 && i < node->n_in) ? in[i] : NULL;
}

/* A value counts as given when present and not statically known to be empty. */
static bool given(const kiln_value *v)
{
    if (!v) return false;
    if (v->shape.rank >= 0 && kiln__shape_is_const(&v->shape) && kiln__shape_numel(&v->shape) == 0) return false;
    return true;
}

/* Resolves `axes` (attribute) against rank r into 0..r-1; identity when absent. */
static kiln_status resolve_axes(const kiln_node *node, const kiln_resize_params *p, int r, int *axes, int *n, kiln_err *err)
{
    if (!p->n_axes) {
        for (int i = 0; i < r; i++) axes[i] = i;
        *n = r;
        return KILN_OK;
    }
    bool seen[KILN_MAX_DIMS] = {false};
    for (int i = 0; i < p->n_axes; i++) {
        int64_t a = p->axes[i];
        if (a < -r || a >= r)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): axes[%d]=%lld is out of range for rank %d", node->name,
                              node->op_type, i, (long long)a, r);
        if (a < 0) a += r;
        if (seen[a])
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): axis %lld appears twice in axes", node->name,
                              node->op_type, (long long)a);
        seen[a] = true;
        axes[i] = (int)a;
    }
    *n = p->n_axes;
    return KILN_OK;
}

static kiln_status check_out_dim(const kiln_node *node, int axis, double v, int64_t *out, kiln_err *err)
{
    if (!(v >= 0) || v >= (double)RZ_MAX_DIM)
        return kiln__fail(err, KILN_ERR_LIMIT, "node '%s' (%s): output dim %d would be %g", node->name, node->op_type, axis, v);
    *out = (int64_t)v;
    return KILN_OK;
}

kiln_status kiln__resize_geometry(const kiln_node *node, const kiln_resize_params *p,
                                  const kiln_value *const *in, int r, const int64_t *in_dims,
                                  int64_t *out_dims, double *scales, double *roi, kiln_err *err)
{
    int axes[KILN_MAX_DIMS], na;
    kiln_status s = resolve_axes(node, p, r, axes, &na, err);
    if (s) return s;
    const kiln_value *vroi = opt_in(node, in, p->roi_input), *vsc = opt_in(node, in, p->scales_input),
                     *vsz = opt_in(node, in, p->sizes_input);
    if (!given(vsc)) vsc = NULL;
    if (!given(vsz)) vsz = NULL;
    if (!given(vroi)) vroi = NULL;
    for (int i = 0; i < r; i++) {
        out_dims[i] = in_dims[i];
        scales[i] = 1.0;
        roi[i] = 0.0;
        roi[r + i] = 1.0;
    }
    if (p->n_attr_scales) {
        if (p->n_attr_scales != r)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): %d scales for a %d-D input", node->name, node->op_type,
                              p->n_attr_scales, r);
        for (int i = 0; i < r; i++) scales[i] = p->attr_scales[i];
    } else if (vsc && vsz) {
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): both scales and sizes are given; give only one",
                          node->name, node->op_type);
    } else if (vsc) {
        if (!vsc->data) return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s': scales has no data", node->name);
        int64_t n = kiln__value_numel(vsc);
        if (vsc->shape.rank != 1 || n != na)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): scales has %lld values, expected %d", node->name,
                              node->op_type, (long long)n, na);
        for (int i = 0; i < na; i++) {
            double v = kiln__value_get_f64(vsc, i);
            if (!(v > 0) || !isfinite(v))
                return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): scales[%d]=%g, must be > 0", node->name,
                                  node->op_type, i, v);
            scales[axes[i]] = v;
        }
    } else if (vsz) {
        if (!vsz->data) return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s': sizes has no data", node->name);
        int64_t n = kiln__value_numel(vsz);
        if (vsz->shape.rank != 1 || n != na)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Resize): sizes has %lld values, expected %d", node->name,
                              (long long)n, na);
        int64_t sz[KILN_MAX_DIMS];
        for (int i = 0; i < na; i++) {
            sz[i] = kiln__value_get_i64(vsz, i);
            int a = axes[i];
            if (sz[i] < 0 || sz[i] >= RZ_MAX_DIM)
                return kiln__fail(err, sz[i] < 0 ? KILN_ERR_INVALID_ARG : KILN_ERR_LIMIT,
                                  "node '%s' (Resize): sizes[%d]=%lld", node->name, i, (long long)sz[i]);
            if (in_dims[a] == 0 && sz[i] != 0)
                return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Resize): input dim %d is 0, cannot resize it to %lld",
                                  node->name, a, (long long)sz[i]);
        }
        if (p->keep_aspect == KILN_RESIZE_STRETCH) {
            for (int i = 0; i < na; i++) {
                int a = axes[i];
                out_dims[a] = sz[i];
                scales[a] = in_dims[a] ? (double)sz[i] / (double)in_dims[a] : 1.0;
            }
        } else {
            double sc = 0;
            for (int i = 0; i < na; i++) {
                int a = axes[i];
                if (!in_dims[a])
                    return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Resize): keep_aspect_ratio_policy with input dim %d of 0",
                                      node->name, a);
                double v = (double)sz[i] / (double)in_dims[a];
                if (i == 0 || (p->keep_aspect == KILN_RESIZE_NOT_LARGER ? v < sc : v > sc)) sc = v;
            }
            for (int i = 0; i < na; i++) {
                int a = axes[i];
                scales[a] = sc;
                /* Rounds half up, as the ONNX reference does. */
                if ((s = check_out_dim(node, a, floor(sc * (double)in_dims[a] + 0.5), &out_dims[a], err))) return s;
            }
            goto done;
        }
        goto done;
    } else {
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): neither scales nor sizes is given", node->name,
                          node->op_type);
    }
    for (int i = 0; i < r; i++)
        if ((s = check_out_dim(node, i, floor(scales[i] * (double)in_dims[i]), &out_dims[i], err))) return s;
done:
    if (p->ctm == KILN_RESIZE_CTM_TF_CROP_AND_RESIZE && !p->upsample) {
        if (!vroi)
            return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (Resize): tf_crop_and_resize needs a non-empty roi",
                              node->name);
        if (!vroi->data) return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s': roi has no data", node->name);
        int64_t n = kiln__value_numel(vroi);
        if (n != 2 * na)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Resize): roi has %lld values, expected %d", node->name,
                              (long long)n, 2 * na);
        for (int i = 0; i < na; i++) {
            roi[axes[i]] = kiln__value_get_f64(vroi, i);
            roi[r + axes[i]] = kiln__value_get_f64(vroi, na + i);
            if (!isfinite(roi[axes[i]]) || !isfinite(roi[r + axes[i]]))
                return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (Resize): roi is not finite", node->name);
        }
    }
    int64_t numel = 1;
    for (int i = 0; i < r; i++)
        if (__builtin_mul_overflow(numel, out_dims[i], &numel) || numel > RZ_MAX_NUMEL)
            return kiln__fail(err, KILN_ERR_LIMIT, "node '%s' (%s): output would have more than %lld elements", node->name,
                              node->op_type, (long long)RZ_MAX_NUMEL);
    return KILN_OK;
}

/* floor(d * s) for a symbolic d, kept symbolic when s or 1/s is an integer. */
static kiln_dim scale_dim(kiln_dim d, double s)
{
    if (s == 1.0) return d;
    if (s > 1.0 && s == floor(s) && s < 65536) return kiln__dim_mul(d, (int64_t)s);
    if (s < 1.0 && s > 0) {
        double k = 1.0 / s;
        /* Only exact reciprocals (powers of two), so floor(d*s) == floor(d/k) for every d. */
        if (k == floor(k) && k < 65536 && (1.0 / k) == s && ((int64_t)k & ((int64_t)k - 1)) == 0)
            return kiln__dim_div(d, (int64_t)k);
    }
    return kiln__dim_unknown();
}

static kiln_status resize_infer(const kiln_node *node, const void *params, const kiln_value *const *in, kiln_value *out,
                                kiln_err *err)
{
    const kiln_resize_params *p = params;
    const kiln_value *x = in[0];
    if (!x) return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): input X is missing", node->name, node->op_type);
    if (x->dtype == KILN_DT_STRING || x->dtype == KILN_DT_COMPLEX64 || x->dtype == KILN_DT_COMPLEX128)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): input type %s is not supported", node->name,
                          node->op_type, kiln_dtype_name(x->dtype));
    const kiln_value *vroi = opt_in(node, in, p->roi_input), *vsc = opt_in(node, in, p->scales_input),
                     *vsz = opt_in(node, in, p->sizes_input);
    if (vsc && vsc->dtype && !kiln__dtype_is_float(vsc->dtype))
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): scales must be float, got %s", node->name, node->op_type,
                          kiln_dtype_name(vsc->dtype));
    if (vsz && vsz->dtype && vsz->dtype != KILN_DT_INT64)
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (Resize): sizes must be int64, got %s", node->name,
                          kiln_dtype_name(vsz->dtype));
    if (vroi && vroi->dtype && !kiln__dtype_is_float(vroi->dtype))
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (Resize): roi must be float, got %s", node->name,
                          kiln_dtype_name(vroi->dtype));

    kiln_shape os;
    memset(&os, 0, sizeof os);
    int r = x->shape.rank;
    if (r < 0) {
        /* Rank still follows from scales / sizes when there are no axes. */
        os.rank = -1;
        if (!p->n_axes) {
            if (p->n_attr_scales) os.rank = p->n_attr_scales;
            else if (vsz && vsz->shape.rank == 1 && kiln__dim_is_const(vsz->shape.d[0]) && vsz->shape.d[0].add > 0)
                os.rank = (int)vsz->shape.d[0].add;
            else if (vsc && vsc->shape.rank == 1 && kiln__dim_is_const(vsc->shape.d[0]) && vsc->shape.d[0].add > 0)
                os.rank = (int)vsc->shape.d[0].add;
            if (os.rank > KILN_MAX_DIMS) os.rank = -1;
        }
        for (int i = 0; i < os.rank; i++) os.d[i] = kiln__dim_unknown();
        kiln__value_set_type(&out[0], x->dtype, &os);
        return KILN_OK;
    }
    if (r == 0)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): input X is a scalar", node->name, node->op_type);
    os.rank = r;

    /* Data known for everything the geometry needs: the exact path (always so at run time). */
    bool x_const = kiln__shape_is_const(&x->shape);
    bool sc_ready = !vsc || vsc->data || (vsc->shape.rank >= 0 && !given(vsc));
    bool sz_ready = !vsz || vsz->data || (vsz->shape.rank >= 0 && !given(vsz));
    bool roi_ready = !vroi || vroi->data || (vroi->shape.rank >= 0 && !given(vroi)) || p->ctm != KILN_RESIZE_CTM_TF_CROP_AND_RESIZE;
    if (x_const && sc_ready && sz_ready && roi_ready) {
        int64_t in_dims[KILN_MAX_DIMS], od[KILN_MAX_DIMS];
        double scales[KILN_MAX_DIMS], roi[2 * KILN_MAX_DIMS];
        for (int i = 0; i < r; i++) in_dims[i] = x->shape.d[i].add;
        kiln_status s = kiln__resize_geometry(node, p, in, r, in_dims, od, scales, roi, err);
        if (s) return s;
        for (int i = 0; i < r; i++) os.d[i] = kiln__dim_const(od[i]);
        kiln__value_set_type(&out[0], x->dtype, &os);
        return KILN_OK;
    }

    /* Static, partly unknown: keep what can be kept symbolically. */
    for (int i = 0; i < r; i++) os.d[i] = kiln__dim_unknown();
    int axes[KILN_MAX_DIMS], na;
    kiln_err tmp;
    if (resolve_axes(node, p, r, axes, &na, &tmp)) {
        kiln__value_set_type(&out[0], x->dtype, &os);
        return KILN_OK;
    }
    bool in_axes[KILN_MAX_DIMS] = {false};
    for (int i = 0; i < na; i++) in_axes[axes[i]] = true;
    for (int i = 0; i < r; i++)
        if (!in_axes[i]) os.d[i] = x->shape.d[i];
    if (p->n_attr_scales == r) {
        for (int i = 0; i < r; i++) os.d[i] = scale_dim(x->shape.d[i], p->attr_scales[i]);
    } else if (given(vsc) && vsc->data && kiln__value_numel(vsc) == na) {
        for (int i = 0; i < na; i++) os.d[axes[i]] = scale_dim(x->shape.d[axes[i]], kiln__value_get_f64(vsc, i));
    } else if (given(vsz) && p->keep_aspect == KILN_RESIZE_STRETCH) {
        if (vsz->data && kiln__value_numel(vsz) == na) {
            for (int i = 0; i < na; i++) {
                int64_t v = kiln__value_get_i64(vsz, i);
                if (v >= 0) os.d[axes[i]] = kiln__dim_const(v);
            }
        } else if (vsz->symval_n == na) {
            for (int i = 0; i < na; i++) os.d[axes[i]] = vsz->symval[i];
        }
    }
    kiln__value_set_type(&out[0], x->dtype, &os);
    return KILN_OK;
}

const kiln_op_schema kiln__ops_resize[] = {
    {"Resize", "", 10, 1, 4, 1, 1, sizeof(kiln_resize_params), resize_parse, resize_infer},
    {"Upsample", "", 1, 1, 2, 1, 1, sizeof(kiln_resize_params), upsample_parse, resize_infer},
    {0},
};
