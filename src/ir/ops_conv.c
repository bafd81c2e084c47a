/*
 * Op schemas of the conv family: Conv, ConvTranspose, DeformConv.
 *
 * Output spatial sizes are computed with the kiln__dim_* helpers so that a
 * symbolic H or W (SR nets) stays symbolic through "same" convolutions.
 */
#include "ir.h"
#include <string.h>

#define MAX_SPATIAL (KILN_MAX_DIMS - 2)
/* Kernel sizes, strides, dilations and pads above this are refused: they only
 * come from corrupt files and would overflow size arithmetic. */
#define ATTR_LIMIT ((int64_t)1 << 30)

enum { AUTO_PAD_NOTSET, AUTO_PAD_SAME_UPPER, AUTO_PAD_SAME_LOWER, AUTO_PAD_VALID };

typedef struct conv_params {
    int auto_pad;
    int64_t group;
    int64_t offset_group;
    /* Counts are -1 when the attribute is absent (or empty). */
    int n_kernel, n_strides, n_dil, n_pads, n_outpad, n_outshape;
    int64_t kernel[MAX_SPATIAL];
    int64_t strides[MAX_SPATIAL];
    int64_t dil[MAX_SPATIAL];
    int64_t pads[2 * MAX_SPATIAL];
    int64_t outpad[MAX_SPATIAL];
    int64_t outshape[KILN_MAX_DIMS];
} conv_params;

static kiln_status read_ints(const kiln_node *node, const char *name, int maxn, int64_t lo,
                             int64_t hi, int64_t *dst, int *n, kiln_err *err)
{
    *n = -1;
    kiln_status s = kiln__attr_expect(node, name, KILN_ATTR_INTS, err);
    if (s) return s;
    const int64_t *v;
    int64_t cnt = kiln__attr_ints(node, name, &v);
    if (cnt <= 0) return KILN_OK;
    if (cnt > maxn)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): attribute '%s' has %lld entries, at most %d supported",
                          node->name, node->op_type, name, (long long)cnt, maxn);
    for (int64_t i = 0; i < cnt; i++) {
        if (v[i] < lo || v[i] > hi)
            return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): attribute '%s'[%lld] = %lld is out of range [%lld, %lld]",
                              node->name, node->op_type, name, (long long)i, (long long)v[i], (long long)lo, (long long)hi);
        dst[i] = v[i];
    }
    *n = (int)cnt;
    return KILN_OK;
}

static kiln_status read_int(const kiln_node *node, const char *name, int64_t def, int64_t lo,
                            int64_t hi, int64_t *dst, kiln_err *err)
{
    kiln_status s = kiln__attr_expect(node, name, KILN_ATTR_INT, err);
    if (s) return s;
    *dst = kiln__attr_int(node, name, def);
    if (*dst < lo || *dst > hi)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): attribute '%s' = %lld is out of range [%lld, %lld]",
                          node->name, node->op_type, name, (long long)*dst, (long long)lo, (long long)hi);
    return KILN_OK;
}

static kiln_status read_auto_pad(const kiln_node *node, int *auto_pad, kiln_err *err)
{
    kiln_status s = kiln__attr_expect(node, "auto_pad", KILN_ATTR_STRING, err);
    if (s) return s;
    const char *ap = kiln__attr_string(node, "auto_pad", "NOTSET");
    if (!ap || !ap[0] || !strcmp(ap, "NOTSET")) *auto_pad = AUTO_PAD_NOTSET;
    else if (!strcmp(ap, "SAME_UPPER")) *auto_pad = AUTO_PAD_SAME_UPPER;
    else if (!strcmp(ap, "SAME_LOWER")) *auto_pad = AUTO_PAD_SAME_LOWER;
    else if (!strcmp(ap, "VALID")) *auto_pad = AUTO_PAD_VALID;
    else
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): auto_pad '%s' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID",
                          node->name, node->op_type, ap);
    return KILN_OK;
}

static kiln_status conv_parse(const kiln_node *node, void *pp, kiln_err *err)
{
    conv_params *p = pp;
    kiln_status s;
    bool deform = !strcmp(node->op_type, "DeformConv");
    bool transpose = !strcmp(node->op_type, "ConvTranspose");
    if (deform) p->auto_pad = AUTO_PAD_NOTSET;
    else if ((s = read_auto_pad(node, &p->auto_pad, err))) return s;
    if ((s = read_int(node, "group", 1, 1, ATTR_LIMIT, &p->group, err))) return s;
    p->offset_group = 1;
    if (deform && (s = read_int(node, "offset_group", 1, 1, ATTR_LIMIT, &p->offset_group, err))) return s;
    if ((s = read_ints(node, "kernel_shape", MAX_SPATIAL, 1, ATTR_LIMIT, p->kernel, &p->n_kernel, err))) return s;
    if ((s = read_ints(node, "strides", MAX_SPATIAL, 1, ATTR_LIMIT, p->strides, &p->n_strides, err))) return s;
    if ((s = read_ints(node, "dilations", MAX_SPATIAL, 1, ATTR_LIMIT, p->dil, &p->n_dil, err))) return s;
    if ((s = read_ints(node, "pads", 2 * MAX_SPATIAL, 0, ATTR_LIMIT, p->pads, &p->n_pads, err))) return s;
    p->n_outpad = p->n_outshape = -1;
    if (transpose) {
        if ((s = read_ints(node, "output_padding", MAX_SPATIAL, 0, ATTR_LIMIT, p->outpad, &p->n_outpad, err))) return s;
        if ((s = read_ints(node, "output_shape", KILN_MAX_DIMS, 0, (int64_t)1 << 40, p->outshape, &p->n_outshape, err)))
            return s;
    }
    /* Explicit pads only apply when auto_pad is NOTSET (ONNX forbids both). */
    if (p->auto_pad != AUTO_PAD_NOTSET) p->n_pads = -1;
    return KILN_OK;
}

static bool is_float_type(kiln_dtype dt)
{
    return dt == KILN_DT_FLOAT || dt == KILN_DT_DOUBLE || dt == KILN_DT_FLOAT16 || dt == KILN_DT_BFLOAT16;
}

/* Input value's dtype must be a float type and agree with X (UNDEFINED: not known yet). */
static kiln_status check_dtype(const kiln_node *node, const kiln_value *v, const char *what, kiln_dtype want,
                               kiln_err *err)
{
    if (!v || v->dtype == KILN_DT_UNDEFINED) return KILN_OK;
    if (!is_float_type(v->dtype))
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): %s has type %s, expected a float type", node->name,
                          node->op_type, what, kiln_dtype_name(v->dtype));
    if (want != KILN_DT_UNDEFINED && v->dtype != want)
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): %s has type %s, X has %s", node->name, node->op_type,
                          what, kiln_dtype_name(v->dtype), kiln_dtype_name(want));
    return KILN_OK;
}

static bool dim_value(kiln_dim d, int64_t *v)
{
    if (!kiln__dim_is_const(d)) return false;
    *v = d.add;
    return true;
}

static kiln_dim shape_dim(const kiln_value *v, int i)
{
    if (!v || v->shape.rank <= i) return kiln__dim_unknown();
    return v->shape.d[i];
}

/* Checks an attribute's entry count against the number of spatial dims. */
static kiln_status check_count(const kiln_node *node, const char *name, int n, int want, kiln_err *err)
{
    if (n < 0 || n == want) return KILN_OK;
    return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): attribute '%s' has %d entries, expected %d for %d spatial dims",
                      node->name, node->op_type, name, n, want, !strcmp(name, "pads") ? want / 2 : want);
}

static kiln_status check_counts(const kiln_node *node, const conv_params *p, int nsp, kiln_err *err)
{
    kiln_status s;
    if ((s = check_count(node, "kernel_shape", p->n_kernel, nsp, err))) return s;
    if ((s = check_count(node, "strides", p->n_strides, nsp, err))) return s;
    if ((s = check_count(node, "dilations", p->n_dil, nsp, err))) return s;
    if ((s = check_count(node, "pads", p->n_pads, 2 * nsp, err))) return s;
    if ((s = check_count(node, "output_padding", p->n_outpad, nsp, err))) return s;
    return KILN_OK;
}

/*
 * Output size of one spatial dim of a (deformable) convolution; k < 0 means
 * the kernel size is not known yet. When `in` is constant the result is checked.
 */
static kiln_status conv_out_dim(const kiln_node *node, const conv_params *p, int i, int nsp, kiln_dim in,
                                int64_t k, kiln_dim *out, kiln_err *err)
{
    int64_t s = p->n_strides > 0 ? p->strides[i] : 1;
    int64_t d = p->n_dil > 0 ? p->dil[i] : 1;
    int64_t pb = p->n_pads > 0 ? p->pads[i] : 0, pe = p->n_pads > 0 ? p->pads[i + nsp] : 0;
    if (k < 0 || in.sym == KILN_SYM_UNKNOWN) {
        *out = kiln__dim_unknown();
        return KILN_OK;
    }
    int64_t eff = d * (k - 1) + 1;
    if (p->auto_pad == AUTO_PAD_SAME_UPPER || p->auto_pad == AUTO_PAD_SAME_LOWER)
        *out = kiln__dim_div(kiln__dim_add(in, s - 1), s);
    else
        *out = kiln__dim_div(kiln__dim_add(in, pb + pe - eff + s), s);
    int64_t iv, ov;
    if (dim_value(in, &iv) && dim_value(*out, &ov) && ov < 1)
        return kiln__fail(err, KILN_ERR_SHAPE,
                          "node '%s' (%s): spatial dim %d of size %lld is too small for kernel %lld (dilation %lld, pads %lld+%lld)",
                          node->name, node->op_type, i, (long long)iv, (long long)k, (long long)d, (long long)pb,
                          (long long)pe);
    return KILN_OK;
}

/* Rank of the op: X's if known, else W's; -1 if neither is known. */
static int op_rank(const kiln_value *x, const kiln_value *w)
{
    if (x && x->shape.rank >= 0) return x->shape.rank;
    if (w && w->shape.rank >= 0) return w->shape.rank;
    return -1;
}

static kiln_status check_rank(const kiln_node *node, const kiln_value *x, const kiln_value *w, int r, int max_spatial,
                              kiln_err *err)
{
    if (r < 3)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): X has %d dims, expected at least 3 (N, C, spatial...)",
                          node->name, node->op_type, r);
    if (r - 2 > max_spatial)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): %d spatial dims, at most %d supported", node->name,
                          node->op_type, r - 2, max_spatial);
    if (x->shape.rank >= 0 && w && w->shape.rank >= 0 && w->shape.rank != x->shape.rank)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): weight has %d dims, X has %d", node->name, node->op_type,
                          w->shape.rank, x->shape.rank);
    return KILN_OK;
}

/* Kernel spatial sizes: from kernel_shape or W's dims; -1 where unknown. */
static kiln_status kernel_sizes(const kiln_node *node, const conv_params *p, const kiln_value *w, int nsp, int64_t *k,
                                kiln_err *err)
{
    for (int i = 0; i < nsp; i++) {
        int64_t wk = -1;
        if (w->shape.rank == nsp + 2 && dim_value(w->shape.d[i + 2], &wk) && (wk < 1 || wk > ATTR_LIMIT))
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): weight spatial dim %d is %lld", node->name,
                              node->op_type, i, (long long)wk);
        if (p->n_kernel > 0 && wk >= 0 && wk != p->kernel[i])
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): kernel_shape[%d] = %lld but weight has %lld", node->name,
                              node->op_type, i, (long long)p->kernel[i], (long long)wk);
        k[i] = p->n_kernel > 0 ? p->kernel[i] : wk;
    }
    return KILN_OK;
}

static kiln_status check_bias(const kiln_node *node, const kiln_value *b, kiln_dim m, kiln_err *err)
{
    int64_t bv, mv;
    if (!b || b->shape.rank < 0) return KILN_OK;
    if (b->shape.rank != 1)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): bias has %d dims, expected 1", node->name, node->op_type,
                          b->shape.rank);
    if (dim_value(b->shape.d[0], &bv) && dim_value(m, &mv) && bv != mv)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): bias has %lld entries, output has %lld channels",
                          node->name, node->op_type, (long long)bv, (long long)mv);
    return KILN_OK;
}

static const kiln_value *opt_in(const kiln_node *node, const kiln_value *const *in, int i)
{
    return node->n_in > i ? in[i] : NULL;
}

static kiln_status conv_infer(const kiln_node *node, const void *pp, const kiln_value *const *in, kiln_value *out,
                              kiln_err *err)
{
    const conv_params *p = pp;
    const kiln_value *x = in[0], *w = in[1], *b = opt_in(node, in, 2);
    kiln_status s;
    if ((s = check_dtype(node, x, "X", KILN_DT_UNDEFINED, err))) return s;
    if ((s = check_dtype(node, w, "W", x->dtype, err))) return s;
    if ((s = check_dtype(node, b, "B", x->dtype, err))) return s;
    kiln_shape os;
    memset(&os, 0, sizeof os);
    os.rank = op_rank(x, w);
    if (os.rank < 0) {
        kiln__value_set_type(out, x->dtype, &os);
        return KILN_OK;
    }
    int nsp = os.rank - 2;
    if ((s = check_rank(node, x, w, os.rank, MAX_SPATIAL, err))) return s;
    if ((s = check_counts(node, p, nsp, err))) return s;
    int64_t c, wc, m;
    if (dim_value(shape_dim(x, 1), &c) && dim_value(shape_dim(w, 1), &wc) && c != wc * p->group)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Conv): X has %lld channels, weight expects %lld x group %lld",
                          node->name, (long long)c, (long long)wc, (long long)p->group);
    if (dim_value(shape_dim(w, 0), &m) && m % p->group != 0)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Conv): %lld output channels are not divisible by group %lld",
                          node->name, (long long)m, (long long)p->group);
    if ((s = check_bias(node, b, shape_dim(w, 0), err))) return s;
    int64_t k[MAX_SPATIAL];
    if ((s = kernel_sizes(node, p, w, nsp, k, err))) return s;
    os.d[0] = shape_dim(x, 0);
    os.d[1] = shape_dim(w, 0);
    for (int i = 0; i < nsp; i++)
        if ((s = conv_out_dim(node, p, i, nsp, shape_dim(x, i + 2), k[i], &os.d[i + 2], err))) return s;
    kiln__value_set_type(out, x->dtype, &os);
    return KILN_OK;
}

static kiln_status convt_infer(const kiln_node *node, const void *pp, const kiln_value *const *in, kiln_value *out,
                               kiln_err *err)
{
    const conv_params *p = pp;
    const kiln_value *x = in[0], *w = in[1], *b = opt_in(node, in, 2);
    kiln_status s;
    if ((s = check_dtype(node, x, "X", KILN_DT_UNDEFINED, err))) return s;
    if ((s = check_dtype(node, w, "W", x->dtype, err))) return s;
    if ((s = check_dtype(node, b, "B", x->dtype, err))) return s;
    kiln_shape os;
    memset(&os, 0, sizeof os);
    os.rank = op_rank(x, w);
    if (os.rank < 0) {
        kiln__value_set_type(out, x->dtype, &os);
        return KILN_OK;
    }
    int nsp = os.rank - 2;
    if ((s = check_rank(node, x, w, os.rank, MAX_SPATIAL, err))) return s;
    if ((s = check_counts(node, p, nsp, err))) return s;
    if (p->n_outshape > 0 && p->n_outshape != nsp && p->n_outshape != nsp + 2)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (ConvTranspose): output_shape has %d entries, expected %d",
                          node->name, p->n_outshape, nsp);
    int64_t c, wc;
    if (dim_value(shape_dim(w, 0), &wc) && wc % p->group != 0)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (ConvTranspose): weight dim 0 (%lld) is not divisible by group %lld",
                          node->name, (long long)wc, (long long)p->group);
    if (dim_value(shape_dim(x, 1), &c) && dim_value(shape_dim(w, 0), &wc) && c != wc)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (ConvTranspose): X has %lld channels, weight has %lld",
                          node->name, (long long)c, (long long)wc);
    kiln_dim m = kiln__dim_mul(shape_dim(w, 1), p->group);
    if ((s = check_bias(node, b, m, err))) return s;
    int64_t k[MAX_SPATIAL];
    if ((s = kernel_sizes(node, p, w, nsp, k, err))) return s;
    os.d[0] = shape_dim(x, 0);
    os.d[1] = m;
    for (int i = 0; i < nsp; i++) {
        kiln_dim xin = shape_dim(x, i + 2), od;
        int64_t st = p->n_strides > 0 ? p->strides[i] : 1;
        int64_t d = p->n_dil > 0 ? p->dil[i] : 1;
        int64_t op = p->n_outpad > 0 ? p->outpad[i] : 0;
        int64_t pb = p->n_pads > 0 ? p->pads[i] : 0, pe = p->n_pads > 0 ? p->pads[i + nsp] : 0;
        if (p->n_outshape > 0) {
            od = kiln__dim_const(p->outshape[p->n_outshape - nsp + i]);
        } else if (p->auto_pad == AUTO_PAD_SAME_UPPER || p->auto_pad == AUTO_PAD_SAME_LOWER) {
            od = kiln__dim_mul(xin, st);
        } else if (k[i] < 0) {
            od = kiln__dim_unknown();
        } else {
            int64_t eff = d * (k[i] - 1) + 1;
            od = kiln__dim_add(kiln__dim_mul(xin, st), op + eff - pb - pe - st);
        }
        int64_t iv, ov;
        if (dim_value(xin, &iv) && iv < 1)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (ConvTranspose): spatial dim %d of X is %lld", node->name, i,
                              (long long)iv);
        if (dim_value(od, &ov) && ov < 1)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (ConvTranspose): output spatial dim %d would be %lld",
                              node->name, i, (long long)ov);
        os.d[i + 2] = od;
    }
    kiln__value_set_type(out, x->dtype, &os);
    return KILN_OK;
}

static kiln_status deform_infer(const kiln_node *node, const void *pp, const kiln_value *const *in, kiln_value *out,
                                kiln_err *err)
{
    const conv_params *p = pp;
    const kiln_value *x = in[0], *w = in[1], *off = in[2];
    const kiln_value *b = opt_in(node, in, 3), *mask = opt_in(node, in, 4);
    kiln_status s;
    if ((s = check_dtype(node, x, "X", KILN_DT_UNDEFINED, err))) return s;
    if ((s = check_dtype(node, w, "W", x->dtype, err))) return s;
    if ((s = check_dtype(node, off, "offset", x->dtype, err))) return s;
    if ((s = check_dtype(node, b, "B", x->dtype, err))) return s;
    if ((s = check_dtype(node, mask, "mask", x->dtype, err))) return s;
    kiln_shape os;
    memset(&os, 0, sizeof os);
    os.rank = op_rank(x, w);
    if (os.rank < 0) {
        kiln__value_set_type(out, x->dtype, &os);
        return KILN_OK;
    }
    int nsp = os.rank - 2;
    /* Only 2-D deformable convolution is defined by the reference and torchvision. */
    if ((s = check_rank(node, x, w, os.rank, 2, err))) return s;
    if (os.rank != 4)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (DeformConv): only 2-D inputs are supported, got %d dims",
                          node->name, os.rank);
    if ((s = check_counts(node, p, nsp, err))) return s;
    int64_t c, wc, m;
    if (dim_value(shape_dim(x, 1), &c) && dim_value(shape_dim(w, 1), &wc) && c != wc * p->group)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (DeformConv): X has %lld channels, weight expects %lld x group %lld",
                          node->name, (long long)c, (long long)wc, (long long)p->group);
    if (dim_value(shape_dim(x, 1), &c) && c % p->offset_group != 0)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (DeformConv): %lld channels not divisible by offset_group %lld",
                          node->name, (long long)c, (long long)p->offset_group);
    if (dim_value(shape_dim(w, 0), &m) && m % p->group != 0)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (DeformConv): %lld output channels are not divisible by group %lld",
                          node->name, (long long)m, (long long)p->group);
    if ((s = check_bias(node, b, shape_dim(w, 0), err))) return s;
    int64_t k[MAX_SPATIAL];
    if ((s = kernel_sizes(node, p, w, nsp, k, err))) return s;
    os.d[0] = shape_dim(x, 0);
    os.d[1] = shape_dim(w, 0);
    for (int i = 0; i < nsp; i++)
        if ((s = conv_out_dim(node, p, i, nsp, shape_dim(x, i + 2), k[i], &os.d[i + 2], err))) return s;
    /* offset: (N, offset_group * kh * kw * 2, oh, ow); mask: (N, offset_group * kh * kw, oh, ow). */
    const kiln_value *chk[2] = {off, mask};
    for (int j = 0; j < 2; j++) {
        const kiln_value *v = chk[j];
        if (!v || v->shape.rank < 0) continue;
        const char *what = j ? "mask" : "offset";
        if (v->shape.rank != 4)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (DeformConv): %s has %d dims, expected 4", node->name, what,
                              v->shape.rank);
        int64_t want[4], got;
        bool known[4] = {dim_value(os.d[0], &want[0]), k[0] >= 0 && k[1] >= 0, dim_value(os.d[2], &want[2]),
                         dim_value(os.d[3], &want[3])};
        want[1] = known[1] ? p->offset_group * k[0] * k[1] * (j ? 1 : 2) : 0;
        for (int d = 0; d < 4; d++)
            if (known[d] && dim_value(v->shape.d[d], &got) && got != want[d])
                return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (DeformConv): %s dim %d is %lld, expected %lld",
                                  node->name, what, d, (long long)got, (long long)want[d]);
    }
    kiln__value_set_type(out, x->dtype, &os);
    return KILN_OK;
}

const kiln_op_schema kiln__ops_conv[] = {
    {"Conv", "", 1, 2, 3, 1, 1, sizeof(conv_params), conv_parse, conv_infer},
    {"ConvTranspose", "", 1, 2, 3, 1, 1, sizeof(conv_params), conv_parse, convt_infer},
    {"DeformConv", "", 19, 3, 5, 1, 1, sizeof(conv_params), conv_parse, deform_infer},
    {0},
};
