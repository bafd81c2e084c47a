/*
 * GPU ops of the movement and shape families: every op here is a view of its
 * input (dims + strides + offset) copied into a view of its output by the
 * general strided copy of k_movement.cu. Transpose permutes strides, Slice
 * offsets and scales them (negative for reversed slices), Expand and Tile put
 * zeros on repeated axes, Concat and Split copy between an input and a slice
 * of the output (or the reverse; all the node's copies handed over together so
 * they share launches), DepthToSpace/SpaceToDepth are 6-D views (PixelShuffle
 * between packed NHWC tensors has its own kernel),
 * Reshape and friends walk both sides in logical order. Gather with host
 * indices in arithmetic progression (the usual scalar index) is a view too;
 * otherwise it reads its indices on the device. Pad has its own kernel.
 *
 * Elements move by byte size, so one path serves every dtype; views are taken
 * through the tensors' own strides, so row-major and NHWC both work.
 * Semantics follow the CPU kernels (src/cpu/cpu_movement.c, cpu_shape.c) and
 * reuse the rules of src/ir/ops_movement.c for Slice and Pad parameters.
 */
#include "cuda_backend.h"
#include "../ir/ops_movement.h"
#include <string.h>

/* k_movement.cu */
int kiln__km_copy(void *dst, const void *src, int es, int in_rank, const int64_t *in_dims,
                  const int64_t *in_str, int out_rank, const int64_t *out_dims, const int64_t *out_str,
                  void *stream);
int kiln__km_gather(void *dst, const void *src, int es, const void *idx, int idx_es, int rank,
                    const int64_t *dims, const int64_t *out_str, const int64_t *in_str,
                    const int64_t *idx_str, int64_t axis_stride, int64_t axis_len, void *stream);
int kiln__km_pad(void *dst, const void *src, int es, int rank, const int64_t *out_dims,
                 const int64_t *out_str, const int64_t *in_dims, const int64_t *in_str,
                 const int64_t *begin, int mode, const void *fill_host, const void *fill_dev,
                 void *stream);
int kiln__km_fill(void *dst, int es, int rank, const int64_t *dims, const int64_t *str,
                  const void *value, void *stream);
int kiln__km_copy_multi(int n_jobs, void *const *dsts, const void *const *srcs, int es, int rank,
                        const int64_t *dims, const int64_t *in_str, const int64_t *out_str, void *stream);
int kiln__km_d2s_crd_nhwc(void *dst, const void *src, int es, int64_t n, int64_t co, int64_t h, int64_t w,
                          int64_t b, void *stream);

/* Pad modes as k_movement.cu numbers them. */
enum { KM_PAD_CONSTANT, KM_PAD_REFLECT, KM_PAD_EDGE, KM_PAD_WRAP };

#define MAX_VIEW (2 * KILN_MAX_DIMS)

/* A strided view of a tensor: element `off` is its first element. */
typedef struct view {
    int rank;
    int64_t d[MAX_VIEW];
    int64_t s[MAX_VIEW];
    int64_t off;
} view;

/* ---- helpers ------------------------------------------------------------------ */

static kiln_status internal(const kiln_cuda_launch *l, const char *what, kiln_err *err)
{
    return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): %s", l->node->name,
                      l->node->op_type, what);
}

static bool size_ok(kiln_dtype dt)
{
    size_t s = kiln_dtype_size(dt);
    return dt != KILN_DT_STRING && (s == 1 || s == 2 || s == 4 || s == 8 || s == 16);
}

static kiln_status elem_size(const kiln_cuda_launch *l, kiln_dtype dt, int *es, kiln_err *err)
{
    if (!size_ok(dt))
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): type %s unsupported on the GPU",
                          l->node->name, l->node->op_type, kiln_dtype_name(dt));
    *es = (int)kiln_dtype_size(dt);
    return KILN_OK;
}

/* Element size of a data-moving op: input and output must agree on the type. */
static kiln_status data_size(const kiln_cuda_launch *l, const kiln_cuda_tensor *a,
                             const kiln_cuda_tensor *b, int *es, kiln_err *err)
{
    if (a->rank < 0 || a->rank > KILN_MAX_DIMS || b->rank < 0 || b->rank > KILN_MAX_DIMS)
        return internal(l, "tensor rank out of range", err);
    if (a->dtype != b->dtype)
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): input is %s on the GPU, output is %s",
                          l->node->name, l->node->op_type, kiln_dtype_name(a->dtype),
                          kiln_dtype_name(b->dtype));
    return elem_size(l, a->dtype, es, err);
}

static bool has_input(const kiln_node *node, int i) { return i < node->n_in && node->in[i] >= 0; }
static bool has_output(const kiln_node *node, int i) { return i < node->n_out && node->out[i] >= 0; }

/* Parameter inputs read on the host: present ones must be known there. */
static kiln_status need_host(const kiln_cuda_launch *l, int first, int last, kiln_err *err)
{
    for (int i = first; i <= last; i++)
        if (has_input(l->node, i) && !l->host[i])
            return kiln__fail(err, KILN_ERR_UNSUPPORTED,
                              "node '%s' (%s): input %d must be known on the host for the GPU kernel",
                              l->node->name, l->node->op_type, i);
    return KILN_OK;
}

static int64_t numel(const kiln_cuda_tensor *t)
{
    int64_t n = 1;
    for (int k = 0; k < t->rank; k++) n *= t->dims[k];
    return n;
}

static int64_t view_numel(const view *v)
{
    int64_t n = 1;
    for (int k = 0; k < v->rank; k++) n *= v->d[k];
    return n;
}

static view tensor_view(const kiln_cuda_tensor *t)
{
    view v;
    memset(&v, 0, sizeof v);
    v.rank = t->rank;
    for (int k = 0; k < t->rank; k++) {
        v.d[k] = t->dims[k];
        v.s[k] = t->strides[k];
    }
    return v;
}

/* Copies view `i` of src into view `o` of dst, both in logical row-major order. */
static kiln_status copy_views(const kiln_cuda_launch *l, void *dst, const view *o, const void *src,
                              const view *i, int es, kiln_err *err)
{
    if (view_numel(o) != view_numel(i)) return internal(l, "input and output sizes differ", err);
    if (view_numel(o) == 0) return KILN_OK;
    int rc = kiln__km_copy((char *)dst + o->off * es, (const char *)src + i->off * es, es, i->rank,
                           i->d, i->s, o->rank, o->d, o->s, l->ex->stream);
    return kiln__cuda_check(rc, l->node, "strided copy", err);
}

/* Copy of the input into the output, same dims (the input view given). */
static kiln_status copy_to_out(const kiln_cuda_launch *l, const view *in, int es, kiln_err *err)
{
    view o = tensor_view(&l->out[0]);
    if (in->rank != o.rank) return internal(l, "output rank", err);
    for (int k = 0; k < o.rank; k++)
        if (in->d[k] != o.d[k]) return internal(l, "output shape", err);
    return copy_views(l, l->out[0].ptr, &o, l->in[0].ptr, in, es, err);
}

/* The node's axis (parsed params; its default already applied) normalized for rank. */
static kiln_status norm_axis(const kiln_cuda_launch *l, int rank, int *axis, kiln_err *err)
{
    if (!l->params) return internal(l, "attributes not parsed", err);
    int64_t a = ((const kiln_axis_params *)l->params)->axis;
    if (a < 0) a += rank;
    if (a < 0 || a >= rank) return internal(l, "axis out of range", err);
    *axis = (int)a;
    return KILN_OK;
}

/* A value of one element converted to dtype dt (es bytes at out). */
static void value_bytes(kiln_dtype dt, const kiln_value *src, double def, void *out)
{
    kiln_value tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.dtype = dt;
    tmp.data = out;
    if (src && src->dtype == dt) {
        memcpy(out, src->data, kiln_dtype_size(dt));
    } else if (src && dt != KILN_DT_FLOAT && dt != KILN_DT_FLOAT16 && dt != KILN_DT_DOUBLE &&
               dt != KILN_DT_BFLOAT16) {
        kiln__value_set_i64(&tmp, 0, kiln__value_get_i64(src, 0));
    } else {
        kiln__value_set_f64(&tmp, 0, src ? kiln__value_get_f64(src, 0) : def);
    }
}

/* ---- supports ----------------------------------------------------------------- */

static bool known_on_host(const kiln_value *v) { return v && (v->data || v->symval_n > 0); }

static bool types_ok(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    if (!in[0] || !size_ok(in[0]->dtype)) return false;
    for (int i = 0; i < node->n_out; i++)
        if (has_output(node, i) && !size_ok(out[i].dtype)) return false;
    return true;
}

static bool supports_data(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    return types_ok(node, in, out);
}

static bool supports_concat(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    for (int i = 0; i < node->n_in; i++)
        if (!in[i] || !size_ok(in[i]->dtype)) return false;
    return types_ok(node, in, out);
}

static bool supports_slice(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    for (int i = 1; i < node->n_in; i++)
        if (in[i] && !known_on_host(in[i])) return false;
    return types_ok(node, in, out);
}

static bool supports_pad(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    if (node->n_in > 1 && in[1] && !known_on_host(in[1])) return false;
    if (node->n_in > 3 && in[3] && !known_on_host(in[3])) return false;
    return types_ok(node, in, out);
}

static bool supports_gather(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    if (!in[1] || (in[1]->dtype != KILN_DT_INT64 && in[1]->dtype != KILN_DT_INT32)) return false;
    return types_ok(node, in, out);
}

/* Inference only: training-mode Dropout with a non-zero ratio stays on the CPU (which refuses it). */
static bool supports_dropout(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    if (node->n_in > 2 && in[2]) {
        if (!in[2]->data) return false;
        if (kiln__value_get_i64(in[2], 0) != 0) {
            if (!in[1] || !in[1]->data || kiln__value_get_f64(in[1], 0) != 0) return false;
        }
    }
    return types_ok(node, in, out);
}

/* ---- Identity, Reshape, Flatten, Squeeze, Unsqueeze, Dropout -------------------- */

/* Same elements in logical row-major order; the output shape came from infer. */
static kiln_status launch_reshape(const kiln_cuda_launch *l, kiln_err *err)
{
    int es = 0;
    kiln_status st = data_size(l, &l->in[0], &l->out[0], &es, err);
    if (st) return st;
    if (numel(&l->in[0]) != numel(&l->out[0])) return internal(l, "element counts differ", err);
    view i = tensor_view(&l->in[0]), o = tensor_view(&l->out[0]);
    return copy_views(l, l->out[0].ptr, &o, l->in[0].ptr, &i, es, err);
}

static kiln_status launch_dropout(const kiln_cuda_launch *l, kiln_err *err)
{
    const kiln_node *node = l->node;
    kiln_status st = need_host(l, 2, 2, err);
    if (st) return st;
    if (has_input(node, 2) && kiln__value_get_i64(l->host[2], 0) != 0) {
        if ((st = need_host(l, 1, 1, err))) return st;
        double r = has_input(node, 1) ? kiln__value_get_f64(l->host[1], 0) : 0.5;
        if (r != 0)
            return kiln__fail(err, KILN_ERR_UNSUPPORTED,
                              "node '%s' (Dropout): training_mode is true with ratio %g; random "
                              "dropout is not supported (inference only)",
                              node->name, r);
    }
    st = launch_reshape(l, err);
    if (st || !has_output(node, 1) || !l->out[1].ptr) return st;
    /* The mask is all true. */
    int es = 0;
    if ((st = elem_size(l, l->out[1].dtype, &es, err))) return st;
    union {
        unsigned char b[16];
        int64_t i;
        double d;
    } one = {{0}};
    kiln_value tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.dtype = l->out[1].dtype;
    tmp.data = one.b;
    kiln__value_set_i64(&tmp, 0, 1);
    int rc = kiln__km_fill(l->out[1].ptr, es, l->out[1].rank, l->out[1].dims, l->out[1].strides, one.b,
                           l->ex->stream);
    return kiln__cuda_check(rc, node, "mask fill", err);
}

/* ---- Transpose ---------------------------------------------------------------- */

static kiln_status launch_transpose(const kiln_cuda_launch *l, kiln_err *err)
{
    int es = 0;
    kiln_status st = data_size(l, &l->in[0], &l->out[0], &es, err);
    if (st) return st;
    const kiln_cuda_tensor *x = &l->in[0];
    int R = x->rank;
    const kiln_transpose_params *tp = l->params;
    if (!tp) return internal(l, "attributes not parsed", err);
    const int64_t *perm = tp->perm;
    int64_t np = tp->n_perm;
    if (np >= 0 && np != R) return internal(l, "perm length", err);
    view v;
    memset(&v, 0, sizeof v);
    v.rank = R;
    bool seen[KILN_MAX_DIMS] = {false};
    for (int k = 0; k < R; k++) {
        int64_t p = np >= 0 ? perm[k] : R - 1 - k;
        if (p < 0 || p >= R || seen[p]) return internal(l, "perm", err);
        seen[p] = true;
        v.d[k] = x->dims[p];
        v.s[k] = x->strides[p];
    }
    return copy_to_out(l, &v, es, err);
}

/* ---- Slice ---------------------------------------------------------------------- */

static kiln_status launch_slice(const kiln_cuda_launch *l, kiln_err *err)
{
    int es = 0;
    kiln_status st = data_size(l, &l->in[0], &l->out[0], &es, err);
    if (st) return st;
    if ((st = need_host(l, 1, l->node->n_in - 1, err))) return st;
    const kiln_cuda_tensor *x = &l->in[0];
    int R = x->rank;
    int64_t start[KILN_MAX_DIMS], step[KILN_MAX_DIMS], count[KILN_MAX_DIMS];
    st = kiln__slice_resolve(l->node, l->host, R, x->dims, start, step, count, err);
    if (st) return st;
    view v;
    memset(&v, 0, sizeof v);
    v.rank = R;
    for (int k = 0; k < R; k++) {
        v.d[k] = count[k];
        if (count[k] == 0) return numel(&l->out[0]) == 0 ? KILN_OK : internal(l, "output shape", err);
        v.off += start[k] * x->strides[k];
        /* A huge step only ever takes one element; keep step * stride from overflowing. */
        v.s[k] = count[k] > 1 ? step[k] * x->strides[k] : 0;
    }
    return copy_to_out(l, &v, es, err);
}

/* ---- Expand / Tile ---------------------------------------------------------------- */

static kiln_status launch_expand(const kiln_cuda_launch *l, kiln_err *err)
{
    int es = 0;
    kiln_status st = data_size(l, &l->in[0], &l->out[0], &es, err);
    if (st) return st;
    const kiln_cuda_tensor *x = &l->in[0], *y = &l->out[0];
    int R = y->rank, off = R - x->rank;
    if (off < 0) return internal(l, "input rank above output rank", err);
    view v;
    memset(&v, 0, sizeof v);
    v.rank = R;
    for (int k = 0; k < R; k++) {
        int64_t xd = k >= off ? x->dims[k - off] : 1;
        if (xd != y->dims[k] && xd != 1) return internal(l, "shapes do not broadcast", err);
        v.d[k] = y->dims[k];
        v.s[k] = xd == 1 ? 0 : x->strides[k - off];
    }
    return copy_to_out(l, &v, es, err);
}

static kiln_status launch_tile(const kiln_cuda_launch *l, kiln_err *err)
{
    int es = 0;
    kiln_status st = data_size(l, &l->in[0], &l->out[0], &es, err);
    if (st) return st;
    const kiln_cuda_tensor *x = &l->in[0], *y = &l->out[0];
    int R = x->rank;
    if (y->rank != R) return internal(l, "output rank", err);
    if (numel(y) == 0) return KILN_OK;
    /* Both sides seen as [rep0, d0, rep1, d1, ...]; the input repeats with stride 0. */
    view vi, vo;
    memset(&vi, 0, sizeof vi);
    memset(&vo, 0, sizeof vo);
    vi.rank = vo.rank = 2 * R;
    for (int k = 0; k < R; k++) {
        int64_t d = x->dims[k];
        if (d == 0 || y->dims[k] % d) return internal(l, "output shape", err);
        vi.d[2 * k] = vo.d[2 * k] = y->dims[k] / d;
        vi.d[2 * k + 1] = vo.d[2 * k + 1] = d;
        vi.s[2 * k] = 0;
        vi.s[2 * k + 1] = x->strides[k];
        vo.s[2 * k] = d * y->strides[k];
        vo.s[2 * k + 1] = y->strides[k];
    }
    return copy_views(l, y->ptr, &vo, x->ptr, &vi, es, err);
}

/* ---- DepthToSpace / SpaceToDepth -------------------------------------------------- */

/* A 4-D tensor stored as dense NHWC (strides of size-1 axes do not matter). */
static bool packed_nhwc(const kiln_cuda_tensor *t)
{
    if (t->rank != 4) return false;
    const int64_t *d = t->dims, *s = t->strides;
    int64_t want[4] = {d[1] * d[2] * d[3], 1, d[3] * d[1], d[1]};
    for (int k = 0; k < 4; k++)
        if (d[k] != 1 && s[k] != want[k]) return false;
    return true;
}

static kiln_status launch_depth_space(const kiln_cuda_launch *l, kiln_err *err)
{
    int es = 0;
    kiln_status st = data_size(l, &l->in[0], &l->out[0], &es, err);
    if (st) return st;
    const kiln_cuda_tensor *x = &l->in[0], *y = &l->out[0];
    if (x->rank != 4 || y->rank != 4) return internal(l, "rank", err);
    const kiln_depth_space_params *dp = l->params;
    if (!dp || dp->blocksize < 1) return internal(l, "blocksize", err);
    int64_t b = dp->blocksize;
    const int64_t *xs = x->strides, *ys = y->strides;
    int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    view vi, vo;
    memset(&vi, 0, sizeof vi);
    memset(&vo, 0, sizeof vo);
    vi.rank = vo.rank = 6;
    if (!strcmp(l->node->op_type, "DepthToSpace")) {
        /* Walk (n, c, h, b1, w, b2); the input channel depends on the mode. */
        if (C % (b * b)) return internal(l, "channels", err);
        int64_t Co = C / (b * b);
        if (y->dims[0] != N || y->dims[1] != Co || y->dims[2] != H * b || y->dims[3] != W * b)
            return internal(l, "output shape", err);
        bool crd = dp->crd;
        if (crd && packed_nhwc(x) && packed_nhwc(y)) {
            /* PixelShuffle in NHWC: vectors of channel runs (-1: not a case the kernel has). */
            int rc = kiln__km_d2s_crd_nhwc(y->ptr, x->ptr, es, N, Co, H, W, b, l->ex->stream);
            if (rc >= 0) return kiln__cuda_check(rc, l->node, "depth to space", err);
        }
        int64_t d[6] = {N, Co, H, b, W, b};
        int64_t si[6] = {xs[0], crd ? b * b * xs[1] : xs[1], xs[2], crd ? b * xs[1] : b * Co * xs[1],
                         xs[3], crd ? xs[1] : Co * xs[1]};
        int64_t so[6] = {ys[0], ys[1], b * ys[2], ys[2], b * ys[3], ys[3]};
        memcpy(vi.d, d, sizeof d);
        memcpy(vo.d, d, sizeof d);
        memcpy(vi.s, si, sizeof si);
        memcpy(vo.s, so, sizeof so);
    } else {
        /* Walk (n, b1, b2, c, h', w'): output channel (b1*b + b2)*C + c. */
        if (H % b || W % b) return internal(l, "spatial dims", err);
        int64_t Ho = H / b, Wo = W / b;
        if (y->dims[0] != N || y->dims[1] != C * b * b || y->dims[2] != Ho || y->dims[3] != Wo)
            return internal(l, "output shape", err);
        int64_t d[6] = {N, b, b, C, Ho, Wo};
        int64_t si[6] = {xs[0], xs[2], xs[3], xs[1], b * xs[2], b * xs[3]};
        int64_t so[6] = {ys[0], b * C * ys[1], C * ys[1], ys[1], ys[2], ys[3]};
        memcpy(vi.d, d, sizeof d);
        memcpy(vo.d, d, sizeof d);
        memcpy(vi.s, si, sizeof si);
        memcpy(vo.s, so, sizeof so);
    }
    return copy_views(l, y->ptr, &vo, x->ptr, &vi, es, err);
}

/* ---- Concat / Split ------------------------------------------------------------------ */

/*
 * The copies of one Concat or Split, all of the node's rank and element
 * size, handed to the GPU together so that channel slices of NHWC tensors
 * share launches. Batches of MULTI_MAX.
 */
#define MULTI_MAX 16

typedef struct multi {
    int n, rank;
    void *dst[MULTI_MAX];
    const void *src[MULTI_MAX];
    int64_t d[MULTI_MAX * KILN_MAX_DIMS], is[MULTI_MAX * KILN_MAX_DIMS], os[MULTI_MAX * KILN_MAX_DIMS];
} multi;

static kiln_status multi_flush(const kiln_cuda_launch *l, multi *m, int es, kiln_err *err)
{
    if (m->n == 0) return KILN_OK;
    int rc = kiln__km_copy_multi(m->n, m->dst, m->src, es, m->rank, m->d, m->is, m->os, l->ex->stream);
    m->n = 0;
    return kiln__cuda_check(rc, l->node, "strided copies", err);
}

/* Queues the copy of view i of src into view o of dst (same dims, rank <= KILN_MAX_DIMS). */
static kiln_status multi_add(const kiln_cuda_launch *l, multi *m, void *dst, const view *o, const void *src,
                             const view *i, int es, kiln_err *err)
{
    if (o->rank != i->rank || o->rank > KILN_MAX_DIMS || (m->n && m->rank != o->rank))
        return internal(l, "copy ranks", err);
    for (int k = 0; k < o->rank; k++)
        if (o->d[k] != i->d[k]) return internal(l, "copy shapes", err);
    if (view_numel(o) == 0) return KILN_OK;
    if (m->n == MULTI_MAX) {
        kiln_status st = multi_flush(l, m, es, err);
        if (st) return st;
    }
    int t = m->n++, R = o->rank;
    m->rank = R;
    m->dst[t] = (char *)dst + o->off * es;
    m->src[t] = (const char *)src + i->off * es;
    for (int k = 0; k < R; k++) {
        m->d[t * R + k] = o->d[k];
        m->is[t * R + k] = i->s[k];
        m->os[t * R + k] = o->s[k];
    }
    return KILN_OK;
}

static kiln_status launch_concat(const kiln_cuda_launch *l, kiln_err *err)
{
    const kiln_cuda_tensor *y = &l->out[0];
    int R = y->rank, axis = 0, es = 0;
    kiln_status st = norm_axis(l, R, &axis, err);
    if (st) return st;
    int64_t at = 0;
    multi m;
    memset(&m, 0, sizeof m);
    for (int i = 0; i < l->node->n_in; i++) {
        const kiln_cuda_tensor *x = &l->in[i];
        if ((st = data_size(l, x, y, &es, err))) return st;
        if (x->rank != R) return internal(l, "input rank", err);
        for (int k = 0; k < R; k++)
            if (k != axis && x->dims[k] != y->dims[k]) return internal(l, "input shape", err);
        if (x->dims[axis] > y->dims[axis] - at) return internal(l, "input sizes", err);
        /* The slice of the output that input i fills. */
        view vo = tensor_view(y), vi = tensor_view(x);
        vo.d[axis] = x->dims[axis];
        vo.off = at * y->strides[axis];
        at += x->dims[axis];
        if ((st = multi_add(l, &m, y->ptr, &vo, x->ptr, &vi, es, err))) return st;
    }
    if (at != y->dims[axis]) return internal(l, "input sizes", err);
    return multi_flush(l, &m, es, err);
}

static kiln_status launch_split(const kiln_cuda_launch *l, kiln_err *err)
{
    const kiln_cuda_tensor *x = &l->in[0];
    int R = x->rank, axis = 0, es = 0;
    kiln_status st = data_size(l, x, x, &es, err);
    if (!st) st = norm_axis(l, R, &axis, err);
    if (st) return st;
    int64_t at = 0;
    multi m;
    memset(&m, 0, sizeof m);
    for (int i = 0; i < l->node->n_out; i++) {
        const kiln_cuda_tensor *y = &l->out[i];
        if (y->rank != R) {
            if (!has_output(l->node, i)) return internal(l, "omitted output of unknown size", err);
            return internal(l, "output rank", err);
        }
        for (int k = 0; k < R; k++)
            if (k != axis && x->dims[k] != y->dims[k]) return internal(l, "output shape", err);
        if (y->dims[axis] > x->dims[axis] - at) return internal(l, "output sizes", err);
        view vi = tensor_view(x), vo = tensor_view(y);
        vi.d[axis] = y->dims[axis];
        vi.off = at * x->strides[axis];
        at += y->dims[axis];
        if (!has_output(l->node, i) || !y->ptr) continue;
        if ((st = data_size(l, x, y, &es, err))) return st;
        if ((st = multi_add(l, &m, y->ptr, &vo, x->ptr, &vi, es, err))) return st;
    }
    return multi_flush(l, &m, es, err);
}

/* ---- Gather / GatherElements ------------------------------------------------------------ */

static kiln_status index_size(const kiln_cuda_launch *l, int *ies, kiln_err *err)
{
    kiln_dtype dt = l->in[1].dtype;
    if (dt != KILN_DT_INT64 && dt != KILN_DT_INT32)
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): indices are %s, need int32/int64",
                          l->node->name, l->node->op_type, kiln_dtype_name(dt));
    if (!l->in[1].ptr)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): indices are not on the device",
                          l->node->name, l->node->op_type);
    *ies = dt == KILN_DT_INT64 ? 8 : 4;
    return KILN_OK;
}

/* Host indices must lie in [-len, len). */
static kiln_status check_indices(const kiln_cuda_launch *l, const kiln_value *idx, int64_t len,
                                 kiln_err *err)
{
    int64_t n = kiln__value_numel(idx);
    for (int64_t i = 0; i < n; i++) {
        int64_t v = kiln__value_get_i64(idx, i);
        if (v < -len || v >= len)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): index %lld out of range for size %lld",
                              l->node->name, l->node->op_type, (long long)v, (long long)len);
    }
    return KILN_OK;
}

/* Whether host indices form v0 + delta*j (normalized); true for one or no index. */
static bool progression(const kiln_value *idx, int64_t len, int64_t *v0, int64_t *delta)
{
    int64_t n = kiln__value_numel(idx), prev = 0;
    *v0 = 0;
    *delta = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t v = kiln__value_get_i64(idx, i);
        if (v < 0) v += len;
        if (i == 0) *v0 = v;
        else if (i == 1) *delta = v - prev;
        else if (v - prev != *delta) return false;
        prev = v;
    }
    return true;
}

static kiln_status launch_gather(const kiln_cuda_launch *l, kiln_err *err)
{
    int es = 0;
    kiln_status st = data_size(l, &l->in[0], &l->out[0], &es, err);
    if (st) return st;
    const kiln_cuda_tensor *x = &l->in[0], *ix = &l->in[1], *y = &l->out[0];
    const kiln_value *h = l->host[1];
    /* The index shape: from the host value when there is one (the device copy may be absent). */
    int64_t idims[KILN_MAX_DIMS];
    int R = x->rank, q = h ? h->shape.rank : ix->rank, axis = 0;
    if (q < 0 || q > KILN_MAX_DIMS) return internal(l, "indices rank", err);
    for (int k = 0; k < q; k++) idims[k] = h ? h->shape.d[k].add : ix->dims[k];
    if ((st = norm_axis(l, R, &axis, err))) return st;
    if (y->rank != R - 1 + q) return internal(l, "output rank", err);
    int64_t len = x->dims[axis];
    /* Output axes: x's before axis, the index axes, x's after axis. */
    view v;
    memset(&v, 0, sizeof v);
    v.rank = y->rank;
    for (int k = 0; k < y->rank; k++) {
        v.d[k] = y->dims[k];
        if (k < axis) {
            if (y->dims[k] != x->dims[k]) return internal(l, "output shape", err);
            v.s[k] = x->strides[k];
        } else if (k < axis + q) {
            if (y->dims[k] != idims[k - axis]) return internal(l, "output shape", err);
        } else {
            if (y->dims[k] != x->dims[k - q + 1]) return internal(l, "output shape", err);
            v.s[k] = x->strides[k - q + 1];
        }
    }
    if (numel(y) == 0) return KILN_OK;
    if (h) {
        int64_t v0 = 0, delta = 0;
        if ((st = check_indices(l, h, len, err))) return st;
        if (progression(h, len, &v0, &delta)) {
            /* Index j (row-major over the index axes) reads v0 + delta*j. */
            int64_t rm = 1;
            for (int k = axis + q - 1; k >= axis; k--) {
                v.s[k] = delta * rm * x->strides[axis];
                rm *= v.d[k];
            }
            v.off = v0 * x->strides[axis];
            return copy_to_out(l, &v, es, err);
        }
    }
    int ies = 0;
    if ((st = index_size(l, &ies, err))) return st;
    if (ix->rank != q) return internal(l, "indices rank", err);
    int64_t xs_idx[KILN_MAX_DIMS] = {0};
    for (int k = 0; k < q; k++) {
        if (ix->dims[k] != idims[k]) return internal(l, "indices shape", err);
        xs_idx[axis + k] = ix->strides[k];
    }
    int rc = kiln__km_gather(y->ptr, x->ptr, es, ix->ptr, ies, y->rank, y->dims, y->strides, v.s, xs_idx,
                             x->strides[axis], len, l->ex->stream);
    return kiln__cuda_check(rc, l->node, "gather", err);
}

static kiln_status launch_gather_elements(const kiln_cuda_launch *l, kiln_err *err)
{
    int es = 0, ies = 0;
    kiln_status st = data_size(l, &l->in[0], &l->out[0], &es, err);
    if (st) return st;
    const kiln_cuda_tensor *x = &l->in[0], *ix = &l->in[1], *y = &l->out[0];
    int R = x->rank, axis = 0;
    if ((st = norm_axis(l, R, &axis, err))) return st;
    if (ix->rank != R || y->rank != R) return internal(l, "rank", err);
    int64_t s[KILN_MAX_DIMS];
    for (int k = 0; k < R; k++) {
        if (y->dims[k] != ix->dims[k] || (k != axis && ix->dims[k] > x->dims[k]))
            return internal(l, "shape", err);
        s[k] = k == axis ? 0 : x->strides[k];
    }
    if (numel(y) == 0) return KILN_OK;
    if (l->host[1] && (st = check_indices(l, l->host[1], x->dims[axis], err))) return st;
    if ((st = index_size(l, &ies, err))) return st;
    int rc = kiln__km_gather(y->ptr, x->ptr, es, ix->ptr, ies, R, y->dims, y->strides, s, ix->strides,
                             x->strides[axis], x->dims[axis], l->ex->stream);
    return kiln__cuda_check(rc, l->node, "gather", err);
}

/* ---- Pad ------------------------------------------------------------------------------------ */

static kiln_status launch_pad(const kiln_cuda_launch *l, kiln_err *err)
{
    const kiln_node *node = l->node;
    int es = 0;
    kiln_status st = data_size(l, &l->in[0], &l->out[0], &es, err);
    if (st) return st;
    if ((st = need_host(l, 1, 1, err)) || (st = need_host(l, 3, 3, err))) return st;
    const kiln_cuda_tensor *x = &l->in[0], *y = &l->out[0];
    const kiln_pad_params *pp = l->params;
    if (!pp) return internal(l, "attributes not parsed", err);
    int R = x->rank, mode = KM_PAD_CONSTANT;
    switch (pp->mode) {
    case KILN_PAD_CONSTANT: mode = KM_PAD_CONSTANT; break;
    case KILN_PAD_REFLECT: mode = KM_PAD_REFLECT; break;
    case KILN_PAD_EDGE: mode = KM_PAD_EDGE; break;
    case KILN_PAD_WRAP: mode = KM_PAD_WRAP; break;
    default: return internal(l, "pad mode", err);
    }
    if (y->rank != R) return internal(l, "output rank", err);
    int64_t begin[KILN_MAX_DIMS], end[KILN_MAX_DIMS];
    if ((st = kiln__pad_resolve(node, pp, l->host, R, begin, end, err))) return st;
    for (int k = 0; k < R; k++) {
        if (y->dims[k] != x->dims[k] + begin[k] + end[k]) return internal(l, "output shape", err);
        if (mode != KM_PAD_CONSTANT && x->dims[k] == 0 && y->dims[k] > 0)
            return internal(l, "empty dim", err);
    }
    if (numel(y) == 0) return KILN_OK;

    /* The fill value in the data's device type: host value, device value or attribute. */
    union {
        unsigned char b[16];
        int64_t i;
        double d;
    } fill = {{0}};
    const void *fill_dev = NULL;
    if (mode == KM_PAD_CONSTANT) {
        if (has_input(node, 2)) {
            const kiln_value *h = l->host[2];
            if (h) {
                if (kiln__value_numel(h) > 0) value_bytes(x->dtype, h, 0.0, fill.b);
            } else if (numel(&l->in[2]) > 0) {
                if (l->in[2].dtype != x->dtype || !l->in[2].ptr)
                    return kiln__fail(err, KILN_ERR_UNSUPPORTED,
                                      "node '%s' (Pad): constant_value is %s on the device, data is %s",
                                      node->name, kiln_dtype_name(l->in[2].dtype),
                                      kiln_dtype_name(x->dtype));
                fill_dev = l->in[2].ptr;
            }
        } else if (pp->attr_form) {
            value_bytes(x->dtype, NULL, pp->value, fill.b);
        }
    }
    int rc = kiln__km_pad(y->ptr, x->ptr, es, R, y->dims, y->strides, x->dims, x->strides, begin, mode,
                          fill.b, fill_dev, l->ex->stream);
    return kiln__cuda_check(rc, node, "pad", err);
}

/* ---- table ------------------------------------------------------------------------------- */

#define OP(name, sup, fn) {.op_type = name, .domain = "", .supports = sup, .launch = fn}

const kiln_cuda_op kiln__cuda_ops_movement[] = {
    OP("Identity", supports_data, launch_reshape),
    OP("Reshape", supports_data, launch_reshape),
    OP("Flatten", supports_data, launch_reshape),
    OP("Squeeze", supports_data, launch_reshape),
    OP("Unsqueeze", supports_data, launch_reshape),
    OP("Dropout", supports_dropout, launch_dropout),
    OP("Transpose", supports_data, launch_transpose),
    OP("Slice", supports_slice, launch_slice),
    OP("Expand", supports_data, launch_expand),
    OP("Tile", supports_data, launch_tile),
    OP("DepthToSpace", supports_data, launch_depth_space),
    OP("SpaceToDepth", supports_data, launch_depth_space),
    OP("Concat", supports_concat, launch_concat),
    OP("Split", supports_data, launch_split),
    OP("Gather", supports_gather, launch_gather),
    OP("GatherElements", supports_gather, launch_gather_elements),
    OP("Pad", supports_pad, launch_pad),
    {0},
};
