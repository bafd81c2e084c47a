/*
 * CPU reference kernels of the movement family. Every kernel moves elements
 * by their byte size, so one code path serves every dtype. Most are one
 * strided copy: the output walked in order, the input through per-axis
 * strides (negative for reversed slices, 0 for repeats).
 */
#include "cpu_ops_util.h"
#include "../ir/ops_movement.h"
#include <stdlib.h>
#include <string.h>

static kiln_status internal(const kiln_node *node, const char *what, kiln_err *err)
{
    return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): %s", node->name, node->op_type, what);
}

/* Dims and row-major element strides of a value with constant shape. */
static void dims_strides(const kiln_value *v, int64_t *dims, int64_t *str)
{
    int64_t s = 1;
    for (int k = v->shape.rank - 1; k >= 0; k--) {
        dims[k] = v->shape.d[k].add;
        str[k] = s;
        s *= dims[k];
    }
}

static int64_t prod(const int64_t *d, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++) p *= d[i];
    return p;
}

/* The parsed axis of Concat/Split/Gather/GatherElements made non-negative. */
static int64_t param_axis(const void *params, int rank)
{
    int64_t a = ((const kiln_axis_params *)params)->axis;
    return a < 0 ? a + rank : a;
}

/* ---- Concat / Split ------------------------------------------------------- */

static kiln_status run_concat(const kiln_node *node, const void *params,
                              const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    size_t es;
    kiln_status st = kiln__cpu_elem_size(node, out[0].dtype, &es, err);
    if (st) return st;
    int R = out[0].shape.rank;
    int64_t axis = param_axis(params, R);
    int64_t od[KILN_MAX_DIMS], os[KILN_MAX_DIMS];
    if (axis < 0 || axis >= R) return internal(node, "axis", err);
    dims_strides(&out[0], od, os);
    int64_t outer = prod(od, 0, (int)axis), inner = prod(od, (int)axis + 1, R);
    size_t out_row = (size_t)(od[axis] * inner) * es, off = 0;
    for (int i = 0; i < node->n_in; i++) {
        if (in[i]->shape.rank != R) return internal(node, "rank", err);
        size_t in_row = (size_t)(in[i]->shape.d[axis].add * inner) * es;
        if (off + in_row > out_row) return internal(node, "sizes", err);
        if (in_row == 0) continue;
        for (int64_t o = 0; o < outer; o++)
            memcpy((char *)out[0].data + (size_t)o * out_row + off,
                   (const char *)in[i]->data + (size_t)o * in_row, in_row);
        off += in_row;
    }
    return KILN_OK;
}

static kiln_status run_split(const kiln_node *node, const void *params,
                             const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    size_t es;
    kiln_status st = kiln__cpu_elem_size(node, in[0]->dtype, &es, err);
    if (st) return st;
    int R = in[0]->shape.rank;
    int64_t axis = param_axis(params, R);
    int64_t xd[KILN_MAX_DIMS], xs[KILN_MAX_DIMS];
    if (axis < 0 || axis >= R) return internal(node, "axis", err);
    dims_strides(in[0], xd, xs);
    int64_t outer = prod(xd, 0, (int)axis), inner = prod(xd, (int)axis + 1, R);
    size_t in_row = (size_t)(xd[axis] * inner) * es, off = 0;
    for (int i = 0; i < node->n_out; i++) {
        if (!out[i].data && out[i].nbytes) continue;
        if (out[i].shape.rank != R) return internal(node, "rank", err);
        size_t row = (size_t)(out[i].shape.d[axis].add * inner) * es;
        if (off + row > in_row) return internal(node, "sizes", err);
        if (row == 0) continue;
        for (int64_t o = 0; o < outer; o++)
            memcpy((char *)out[i].data + (size_t)o * row,
                   (const char *)in[0]->data + (size_t)o * in_row + off, row);
        off += row;
    }
    return KILN_OK;
}

/* ---- Slice ---------------------------------------------------------------- */

static kiln_status run_slice(const kiln_node *node, const void *params,
                             const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    size_t es;
    kiln_status st = kiln__cpu_elem_size(node, in[0]->dtype, &es, err);
    if (st) return st;
    int R = in[0]->shape.rank;
    int64_t xd[KILN_MAX_DIMS], xs[KILN_MAX_DIMS], start[KILN_MAX_DIMS], step[KILN_MAX_DIMS],
        count[KILN_MAX_DIMS], sstr[KILN_MAX_DIMS], base = 0;
    dims_strides(in[0], xd, xs);
    st = kiln__slice_resolve(node, in, R, xd, start, step, count, err);
    if (st) return st;
    for (int k = 0; k < R; k++) {
        if (count[k] != out[0].shape.d[k].add) return internal(node, "output shape", err);
        base += start[k] * xs[k];
        /* A huge step only ever takes one element; keep step * stride from overflowing. */
        sstr[k] = count[k] > 1 ? step[k] * xs[k] : 0;
    }
    if (kiln__value_numel(&out[0]) == 0) return KILN_OK;
    kiln__cpu_strided_copy(out[0].data, in[0]->data, base, R, count, sstr, es);
    return KILN_OK;
}

/* ---- Gather / GatherElements ---------------------------------------------- */

static kiln_status bad_index(const kiln_node *node, int64_t v, int64_t d, kiln_err *err)
{
    return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): index %lld out of range for size %lld",
                      node->name, node->op_type, (long long)v, (long long)d);
}

static kiln_status run_gather(const kiln_node *node, const void *params,
                              const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    size_t es;
    kiln_status st = kiln__cpu_elem_size(node, in[0]->dtype, &es, err);
    if (st) return st;
    int R = in[0]->shape.rank;
    int64_t axis = param_axis(params, R);
    int64_t xd[KILN_MAX_DIMS], xs[KILN_MAX_DIMS];
    if (axis < 0 || axis >= R) return internal(node, "axis", err);
    dims_strides(in[0], xd, xs);
    int64_t outer = prod(xd, 0, (int)axis), inner = prod(xd, (int)axis + 1, R), d = xd[axis];
    int64_t ni = kiln__value_numel(in[1]);
    if (kiln__value_numel(&out[0]) != outer * ni * inner) return internal(node, "output size", err);
    size_t row = (size_t)inner * es;
    if (row == 0 || outer == 0) return KILN_OK;
    char *o = out[0].data;
    const char *x = in[0]->data;
    for (int64_t i = 0; i < ni; i++) {
        int64_t v = kiln__value_get_i64(in[1], i);
        if (v < -d || v >= d) return bad_index(node, v, d, err);
    }
    for (int64_t a = 0; a < outer; a++)
        for (int64_t i = 0; i < ni; i++) {
            int64_t v = kiln__value_get_i64(in[1], i);
            if (v < 0) v += d;
            memcpy(o, x + (size_t)((a * d + v) * inner) * es, row);
            o += row;
        }
    return KILN_OK;
}

static kiln_status run_gather_elements(const kiln_node *node, const void *params,
                                       const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    size_t es;
    kiln_status st = kiln__cpu_elem_size(node, in[0]->dtype, &es, err);
    if (st) return st;
    int R = in[0]->shape.rank;
    int64_t axis = param_axis(params, R);
    int64_t xd[KILN_MAX_DIMS], xs[KILN_MAX_DIMS], id[KILN_MAX_DIMS], is[KILN_MAX_DIMS];
    if (axis < 0 || axis >= R || in[1]->shape.rank != R) return internal(node, "rank", err);
    dims_strides(in[0], xd, xs);
    dims_strides(in[1], id, is);
    for (int k = 0; k < R; k++)
        if (k != axis && id[k] > xd[k]) return internal(node, "shape", err);
    int64_t n = kiln__value_numel(in[1]), idx[KILN_MAX_DIMS] = {0}, off = 0, d = xd[axis];
    char *o = out[0].data;
    const char *x = in[0]->data;
    /* off tracks the source offset of every coordinate but the gathered one. */
    for (int64_t i = 0; i < n; i++) {
        int64_t v = kiln__value_get_i64(in[1], i);
        if (v < -d || v >= d) return bad_index(node, v, d, err);
        if (v < 0) v += d;
        kiln__cpu_copy_elem(o + (size_t)i * es, x + (size_t)(off + v * xs[axis]) * es, es);
        for (int k = R - 1; k >= 0; k--) {
            if (k != axis) off += xs[k];
            if (++idx[k] < id[k]) break;
            if (k != axis) off -= xs[k] * id[k];
            idx[k] = 0;
        }
    }
    return KILN_OK;
}

/* ---- Transpose / Tile / DepthToSpace / SpaceToDepth ------------------------ */

static kiln_status run_transpose(const kiln_node *node, const void *params,
                                 const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    size_t es;
    kiln_status st = kiln__cpu_elem_size(node, in[0]->dtype, &es, err);
    if (st) return st;
    int R = in[0]->shape.rank;
    const kiln_transpose_params *tp = params;
    const int64_t *perm = tp->perm;
    int64_t np = tp->n_perm;
    int64_t xd[KILN_MAX_DIMS], xs[KILN_MAX_DIMS], od[KILN_MAX_DIMS], ss[KILN_MAX_DIMS];
    dims_strides(in[0], xd, xs);
    for (int k = 0; k < R; k++) {
        int64_t p = np >= 0 ? perm[k] : R - 1 - k;
        if (p < 0 || p >= R) return internal(node, "perm", err);
        od[k] = xd[p];
        ss[k] = xs[p];
    }
    kiln__cpu_strided_copy(out[0].data, in[0]->data, 0, R, od, ss, es);
    return KILN_OK;
}

static kiln_status run_tile(const kiln_node *node, const void *params, const kiln_value *const *in,
                            kiln_value *out, kiln_err *err)
{
    size_t es;
    kiln_status st = kiln__cpu_elem_size(node, in[0]->dtype, &es, err);
    if (st) return st;
    int R = in[0]->shape.rank;
    int64_t xd[KILN_MAX_DIMS], xs[KILN_MAX_DIMS], vd[KILN_CPU_MAX_VIEW], vs[KILN_CPU_MAX_VIEW];
    dims_strides(in[0], xd, xs);
    if (kiln__value_numel(&out[0]) == 0) return KILN_OK;
    /* The output seen as [rep0, d0, rep1, d1, ...]: repeats have stride 0. */
    for (int k = 0; k < R; k++) {
        int64_t o = out[0].shape.d[k].add;
        if (xd[k] == 0 || o % xd[k]) return internal(node, "shape", err);
        vd[2 * k] = o / xd[k];
        vs[2 * k] = 0;
        vd[2 * k + 1] = xd[k];
        vs[2 * k + 1] = xs[k];
    }
    kiln__cpu_strided_copy(out[0].data, in[0]->data, 0, 2 * R, vd, vs, es);
    return KILN_OK;
}

static kiln_status run_depth_space(const kiln_node *node, const void *params,
                                   const kiln_value *const *in, kiln_value *out, kiln_err *err)
{
    size_t es;
    kiln_status st = kiln__cpu_elem_size(node, in[0]->dtype, &es, err);
    if (st) return st;
    if (in[0]->shape.rank != 4) return internal(node, "rank", err);
    const kiln_depth_space_params *p = params;
    int64_t b = p->blocksize;
    int64_t xd[4], xs[4];
    dims_strides(in[0], xd, xs);
    int64_t N = xd[0], C = xd[1], H = xd[2], W = xd[3];
    int64_t vd[6], vs[6];
    if (!strcmp(node->op_type, "DepthToSpace")) {
        /* Output (n, c, h, b1, w, b2); the input channel depends on the mode. */
        int64_t Co = C / (b * b), HW = H * W;
        bool crd = p->crd;
        int64_t s_c = crd ? b * b * HW : HW;
        int64_t s_b1 = crd ? b * HW : b * Co * HW;
        int64_t s_b2 = crd ? HW : Co * HW;
        int64_t d[6] = {N, Co, H, b, W, b}, s[6] = {C * HW, s_c, W, s_b1, 1, s_b2};
        memcpy(vd, d, sizeof d);
        memcpy(vs, s, sizeof s);
    } else {
        /* Output (n, b1, b2, c, h', w') with channel (b1*b + b2)*C + c. */
        int64_t Ho = H / b, Wo = W / b;
        int64_t d[6] = {N, b, b, C, Ho, Wo}, s[6] = {C * H * W, W, 1, H * W, b * W, b};
        memcpy(vd, d, sizeof d);
        memcpy(vs, s, sizeof s);
    }
    if (prod(vd, 0, 6) != kiln__value_numel(&out[0])) return internal(node, "output size", err);
    kiln__cpu_strided_copy(out[0].data, in[0]->data, 0, 6, vd, vs, es);
    return KILN_OK;
}

/* ---- Pad ------------------------------------------------------------------ */

/* Source index along one axis for output index o, or -1 for the constant. */
static int64_t pad_src(kiln_pad_mode mode, int64_t o, int64_t begin, int64_t d)
{
    int64_t i = o - begin;
    if (i >= 0 && i < d) return i;
    switch (mode) {
    case KILN_PAD_EDGE: return i < 0 ? 0 : d - 1;
    case KILN_PAD_WRAP: return ((i % d) + d) % d;
    case KILN_PAD_REFLECT: {
        if (d == 1) return 0;
        int64_t m = 2 * (d - 1);
        i = ((i % m) + m) % m;
        return i < d ? i : m - i;
    }
    default: return -1;
    }
}

static kiln_status run_pad(const kiln_node *node, const void *params, const kiln_value *const *in,
                           kiln_value *out, kiln_err *err)
{
    size_t es;
    kiln_status st = kiln__cpu_elem_size(node, in[0]->dtype, &es, err);
    if (st) return st;
    const kiln_pad_params *pp = params;
    int R = in[0]->shape.rank;
    kiln_pad_mode mode = pp->mode;
    int64_t xd[KILN_MAX_DIMS], xs[KILN_MAX_DIMS], od[KILN_MAX_DIMS], os[KILN_MAX_DIMS];
    int64_t begin[KILN_MAX_DIMS], end[KILN_MAX_DIMS];
    dims_strides(in[0], xd, xs);
    dims_strides(&out[0], od, os);
    st = kiln__pad_resolve(node, pp, in, R, begin, end, err);
    if (st) return st;
    int64_t total = kiln__value_numel(&out[0]);
    if (total == 0) return KILN_OK;

    /* The fill value in the data's own type. */
    unsigned char fill[16] = {0};
    if (mode == KILN_PAD_CONSTANT) {
        if (node->n_in > 2 && in[2] && kiln__value_numel(in[2]) > 0) {
            if (in[2]->dtype != in[0]->dtype) return internal(node, "constant_value type", err);
            memcpy(fill, in[2]->data, es);
        } else if (pp->attr_form) {
            kiln_value tmp = {.dtype = in[0]->dtype, .data = fill};
            kiln__value_set_f64(&tmp, 0, pp->value);
        }
    }
    if (R == 0) {
        memcpy(out[0].data, in[0]->data, es);
        return KILN_OK;
    }

    /* Per-axis maps from output index to source index. */
    int64_t map_len = 0, *maps[KILN_MAX_DIMS];
    for (int k = 0; k < R; k++) {
        if (od[k] != xd[k] + begin[k] + end[k]) return internal(node, "output shape", err);
        if (mode != KILN_PAD_CONSTANT && xd[k] == 0) return internal(node, "empty dim", err);
        map_len += od[k];
    }
    int64_t *buf = kiln__malloc(sizeof(int64_t) * (size_t)map_len), *p = buf;
    if (!buf) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s' (Pad): out of memory", node->name);
    for (int k = 0; k < R; k++) {
        maps[k] = p;
        for (int64_t o = 0; o < od[k]; o++) p[o] = pad_src(mode, o, begin[k], xd[k]);
        p += od[k];
    }
    /* Walk output rows (every axis but the last); a row off the input in any axis is all fill. */
    int64_t inner = od[R - 1], rows = total / inner, idx[KILN_MAX_DIMS] = {0};
    const int64_t *last = maps[R - 1];
    char *dst = out[0].data;
    const char *x = in[0]->data;
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = 0;
        bool fill_row = false;
        for (int k = 0; k < R - 1 && !fill_row; k++) {
            int64_t s = maps[k][idx[k]];
            if (s < 0) fill_row = true;
            else off += s * xs[k];
        }
        for (int64_t o = 0; o < inner; o++) {
            int64_t s = fill_row ? -1 : last[o];
            kiln__cpu_copy_elem(dst + (size_t)o * es, s < 0 ? (const char *)fill : x + (size_t)(off + s) * es, es);
        }
        dst += (size_t)inner * es;
        for (int k = R - 2; k >= 0; k--) {
            if (++idx[k] < od[k]) break;
            idx[k] = 0;
        }
    }
    free(buf);
    return KILN_OK;
}

const kiln_cpu_kernel kiln__cpu_movement[] = {
    {"Concat", "", run_concat},
    {"Split", "", run_split},
    {"Slice", "", run_slice},
    {"Gather", "", run_gather},
    {"GatherElements", "", run_gather_elements},
    {"Transpose", "", run_transpose},
    {"Tile", "", run_tile},
    {"DepthToSpace", "", run_depth_space},
    {"SpaceToDepth", "", run_depth_space},
    {"Pad", "", run_pad},
    {0},
};
