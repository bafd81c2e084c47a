/*
 * Op schemas of the conv family: Conv, ConvTranspose, DeformConv.
 *
 * Output spatial sizes are computed with the kiln__dim_* helpers so that a
 * symbolic H or W (SR nets) stays symbolic through "same" convolutions.
 */
#include "ops_conv.h"
#include <string.h>

/* Kernel sizes, strides, dilations and pads above this are refused: they only
 * come from corrupt files and would overflow size arithmetic. */
#define ATTR_LIMIT ((int64_t)1 << 30)

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

static kiln_status conv_parse(const kiln_node *node, void *pp, kiln_err *err)
{
    kiln_conv_params *p = pp;
    kiln_status s;
    bool deform = !strcmp(node->op_type, "DeformConv");
    bool transpose = !strcmp(node->op_type, "ConvTranspose");
    if (deform) p->auto_pad = KILN_AUTO_PAD_NOTSET;
    else if ((s = kiln__ops_read_auto_pad(node, &p->auto_pad, err))) return s;
    if ((s = read_int(node, "group", 1, 1, ATTR_LIMIT, &p->group, err))) return s;
    p->offset_group = 1;
    if (deform && (s = read_int(node, "offset_group", 1, 1, ATTR_LIMIT, &p->offset_group, err))) return s;
    const int msp = KILN_MAX_SPATIAL;
    if ((s = kiln__ops_read_window_ints(node, "kernel_shape", msp, 1, ATTR_LIMIT, p->kernel, &p->n_kernel, err)))
        return s;
    if ((s = kiln__ops_read_window_ints(node, "strides", msp, 1, ATTR_LIMIT, p->strides, &p->n_strides, err))) return s;
    if ((s = kiln__ops_read_window_ints(node, "dilations", msp, 1, ATTR_LIMIT, p->dil, &p->n_dil, err))) return s;
    if ((s = kiln__ops_read_window_ints(node, "pads", 2 * msp, 0, ATTR_LIMIT, p->pads, &p->n_pads, err))) return s;
    p->n_outpad = p->n_outshape = -1;
    if (transpose) {
        if ((s = kiln__ops_read_window_ints(node, "output_padding", msp, 0, ATTR_LIMIT, p->outpad, &p->n_outpad, err)))
            return s;
        if ((s = kiln__ops_read_window_ints(node, "output_shape", KILN_MAX_DIMS, 0, (int64_t)1 << 40, p->outshape,
                                            &p->n_outshape, err)))
            return s;
    }
    /* Explicit pads only apply when auto_pad is NOTSET (ONNX forbids both). */
    if (p->auto_pad != KILN_AUTO_PAD_NOTSET) p->n_pads = -1;
    return KILN_OK;
}

static kiln_status guard_inputs(const kiln_node *node, const kiln_value *const *in, int n, kiln_err *err)
{
    static const char *const names[5] = {"X", "W", "input 2", "input 3", "input 4"};
    for (int i = 0; i < n && i < 5; i++) {
        if (!in[i] || in[i]->shape.rank < 0) continue;
        kiln_status s = kiln__ops_size_guard(node, &in[i]->shape, names[i], err);
        if (s) return s;
    }
    return KILN_OK;
}

/* Input value's dtype must be a float type and agree with X (UNDEFINED: not known yet). */
static kiln_status check_dtype(const kiln_node *node, const kiln_value *v, const char *what, kiln_dtype want,
                               kiln_err *err)
{
    if (!v || v->dtype == KILN_DT_UNDEFINED) return KILN_OK;
    if (!kiln__dtype_is_float(v->dtype))
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

static kiln_status check_counts(const kiln_node *node, const kiln_conv_params *p, int nsp, kiln_err *err)
{
    kiln_status s;
    if ((s = check_count(node, "kernel_shape", p->n_kernel, nsp, err))) return s;
    if ((s = check_count(node, "strides", p->n_strides, nsp, err))) return s;
    if ((s = check_count(node, "dilations", p->n_dil, nsp, err))) return s;
    if ((s = check_count(node, "pads", p->n_pads, 2 * nsp, err))) return s;
    if ((s = check_count(node, "output_padding", p->n_outpad, nsp, err))) return s;
    return KILN_OK;
}

/* Output size of one spatial dim of a (deformable) convolution; k < 0 means the kernel size is not known yet. */
static kiln_status conv_out_dim(const kiln_node *node, const kiln_conv_params *p, int i, int nsp, kiln_dim in,
                                int64_t k, kiln_dim *out, kiln_err *err)
{
    if (k < 0) {
        *out = kiln__dim_unknown();
        return KILN_OK;
    }
    int64_t s = p->n_strides > 0 ? p->strides[i] : 1;
    int64_t d = p->n_dil > 0 ? p->dil[i] : 1;
    int64_t pb = p->n_pads > 0 ? p->pads[i] : 0, pe = p->n_pads > 0 ? p->pads[i + nsp] : 0;
    bool same = p->auto_pad == KILN_AUTO_PAD_SAME_UPPER || p->auto_pad == KILN_AUTO_PAD_SAME_LOWER;
    return kiln__ops_window_out_dim(node, i, in, k, s, d, pb, pe, same, false, out, err);
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
static kiln_status kernel_sizes(const kiln_node *node, const kiln_conv_params *p, const kiln_value *w, int nsp, int64_t *k,
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

/*
 * Checks every conv op starts with: input i's type (named names[i], n of
 * them; all like X's), size limits, rank. Sets os (zeroed) to the op's rank;
 * when that is unknown, types out and sets *done.
 */
static kiln_status conv_prologue(const kiln_node *node, const kiln_value *const *in, const char *const *names, int n,
                                 int max_spatial, kiln_shape *os, kiln_value *out, bool *done, kiln_err *err)
{
    const kiln_value *x = in[0], *w = in[1];
    kiln_status s;
    *done = false;
    for (int i = 0; i < n; i++)
        if ((s = check_dtype(node, opt_in(node, in, i), names[i], i ? x->dtype : KILN_DT_UNDEFINED, err))) return s;
    if ((s = guard_inputs(node, in, node->n_in, err))) return s;
    memset(os, 0, sizeof *os);
    os->rank = op_rank(x, w);
    if (os->rank < 0) {
        kiln__value_set_type(out, x->dtype, os);
        *done = true;
        return KILN_OK;
    }
    return check_rank(node, x, w, os->rank, max_spatial, err);
}

static kiln_status conv_infer(const kiln_node *node, const void *pp, const kiln_value *const *in, kiln_value *out,
                              kiln_err *err)
{
    const kiln_conv_params *p = pp;
    const kiln_value *x = in[0], *w = in[1], *b = opt_in(node, in, 2);
    static const char *const names[] = {"X", "W", "B"};
    kiln_shape os;
    bool done;
    kiln_status s = conv_prologue(node, in, names, 3, KILN_MAX_SPATIAL, &os, out, &done, err);
    if (s || done) return s;
    int nsp = os.rank - 2;
    if ((s = check_counts(node, p, nsp, err))) return s;
    int64_t c, wc, m;
    if (dim_value(shape_dim(x, 1), &c) && dim_value(shape_dim(w, 1), &wc) && c != wc * p->group)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Conv): X has %lld channels, weight expects %lld x group %lld",
                          node->name, (long long)c, (long long)wc, (long long)p->group);
    if (dim_value(shape_dim(w, 0), &m) && m % p->group != 0)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Conv): %lld output channels are not divisible by group %lld",
                          node->name, (long long)m, (long long)p->group);
    if ((s = check_bias(node, b, shape_dim(w, 0), err))) return s;
    int64_t k[KILN_MAX_SPATIAL];
    if ((s = kernel_sizes(node, p, w, nsp, k, err))) return s;
    os.d[0] = shape_dim(x, 0);
    os.d[1] = shape_dim(w, 0);
    for (int i = 0; i < nsp; i++)
        if ((s = conv_out_dim(node, p, i, nsp, shape_dim(x, i + 2), k[i], &os.d[i + 2], err))) return s;
    if ((s = kiln__ops_size_guard(node, &os, "output", err))) return s;
    kiln__value_set_type(out, x->dtype, &os);
    return KILN_OK;
}

static kiln_status convt_infer(const kiln_node *node, const void *pp, const kiln_value *const *in, kiln_value *out,
                               kiln_err *err)
{
    const kiln_conv_params *p = pp;
    const kiln_value *x = in[0], *w = in[1], *b = opt_in(node, in, 2);
    static const char *const names[] = {"X", "W", "B"};
    kiln_shape os;
    bool done;
    kiln_status s = conv_prologue(node, in, names, 3, KILN_MAX_SPATIAL, &os, out, &done, err);
    if (s || done) return s;
    int nsp = os.rank - 2;
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
    if (dim_value(shape_dim(w, 1), &wc) && wc > KILN_OPS_SIZE_LIMIT / p->group)
        return kiln__fail(err, KILN_ERR_LIMIT, "node '%s' (ConvTranspose): %lld x group %lld output channels is too many",
                          node->name, (long long)wc, (long long)p->group);
    kiln_dim m = kiln__dim_mul(shape_dim(w, 1), p->group);
    if ((s = check_bias(node, b, m, err))) return s;
    int64_t k[KILN_MAX_SPATIAL];
    if ((s = kernel_sizes(node, p, w, nsp, k, err))) return s;
    os.d[0] = shape_dim(x, 0);
    os.d[1] = m;
    for (int i = 0; i < nsp; i++) {
        kiln_dim xin = shape_dim(x, i + 2), od;
        int64_t iv, ov;
        int64_t st = p->n_strides > 0 ? p->strides[i] : 1;
        int64_t d = p->n_dil > 0 ? p->dil[i] : 1;
        int64_t op = p->n_outpad > 0 ? p->outpad[i] : 0;
        int64_t pb = p->n_pads > 0 ? p->pads[i] : 0, pe = p->n_pads > 0 ? p->pads[i + nsp] : 0;
        if (dim_value(xin, &iv) && iv > KILN_OPS_SIZE_LIMIT / st)
            return kiln__fail(err, KILN_ERR_LIMIT, "node '%s' (ConvTranspose): spatial dim %d (%lld) x stride %lld is too large",
                              node->name, i, (long long)iv, (long long)st);
        if (p->n_outshape > 0) {
            od = kiln__dim_const(p->outshape[p->n_outshape - nsp + i]);
        } else if (p->auto_pad == KILN_AUTO_PAD_SAME_UPPER || p->auto_pad == KILN_AUTO_PAD_SAME_LOWER) {
            od = kiln__dim_mul(xin, st);
        } else if (k[i] < 0) {
            od = kiln__dim_unknown();
        } else {
            int64_t eff = d * (k[i] - 1) + 1;
            od = kiln__dim_add(kiln__dim_mul(xin, st), op + eff - pb - pe - st);
        }
        if (dim_value(xin, &iv) && iv < 1)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (ConvTranspose): spatial dim %d of X is %lld", node->name, i,
                              (long long)iv);
        if (dim_value(od, &ov) && ov < 1)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (ConvTranspose): output spatial dim %d would be %lld",
                              node->name, i, (long long)ov);
        os.d[i + 2] = od;
    }
    if ((s = kiln__ops_size_guard(node, &os, "output", err))) return s;
    kiln__value_set_type(out, x->dtype, &os);
    return KILN_OK;
}

static kiln_status deform_infer(const kiln_node *node, const void *pp, const kiln_value *const *in, kiln_value *out,
                                kiln_err *err)
{
    const kiln_conv_params *p = pp;
    const kiln_value *x = in[0], *w = in[1], *off = in[2];
    const kiln_value *b = opt_in(node, in, 3), *mask = opt_in(node, in, 4);
    static const char *const names[] = {"X", "W", "offset", "B", "mask"};
    kiln_shape os;
    bool done;
    /* Only 2-D deformable convolution is defined by the reference and torchvision. */
    kiln_status s = conv_prologue(node, in, names, 5, 2, &os, out, &done, err);
    if (s || done) return s;
    int nsp = os.rank - 2;
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
    int64_t k[KILN_MAX_SPATIAL];
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
    if ((s = kiln__ops_size_guard(node, &os, "output", err))) return s;
    kiln__value_set_type(out, x->dtype, &os);
    return KILN_OK;
}

const kiln_op_schema kiln__ops_conv[] = {
    {"Conv", "", 1, 2, 3, 1, 1, sizeof(kiln_conv_params), conv_parse, conv_infer},
    {"ConvTranspose", "", 1, 2, 3, 1, 1, sizeof(kiln_conv_params), conv_parse, convt_infer},
    {"DeformConv", "", 19, 3, 5, 1, 1, sizeof(kiln_conv_params), conv_parse, deform_infer},
    {0},
};
