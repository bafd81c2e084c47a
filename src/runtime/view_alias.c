/*
 * Views without copies. Reshape, Flatten, Squeeze, Unsqueeze and Identity
 * only re-label elements; Gather with one host-known index and Slice with
 * positive steps pick a strided part of their input. When the output can be
 * described as dims + strides + offset over memory the input already has, its
 * rep becomes an alias of the input's rep (alias_of, as for Concat in place):
 * no step, no arena space. A consumer that wants another layout gets a
 * reformat from the alias through its strides, which is never more work than
 * the copy the view node did before (Cast walks any strides).
 *
 * The strides are found the way a tensor library decides whether `view` is
 * legal: the source's non-unit dims form chunks that are contiguous among
 * themselves (stride[d-1] == stride[d] * dims[d]); the output's dims must
 * split each chunk exactly, innermost first. So a 4-D NHWC (T,C,H,W) seen as
 * 5-D (1,T,C,H,W) gets strides (.., HWC, 1, WC, C), and selecting [:, i] from
 * that is a 4-D NHWC (1,C,H,W) at offset i*HWC: EDVR's per-frame select
 * feeds the next conv with neither copy nor reformat.
 *
 * Conservative rules: same dtype in and out; no zero-sized tensors; sources
 * are arena or caller-input reps (never constants, never caller outputs);
 * offsets keep the 256-byte grid the arena gives every tensor (kernels with
 * vector paths see the alignment they would see anyway); strides stay
 * positive. Unit dims get the strides of the packed layout they match, so a
 * kernel handed an alias sees exactly what it would see on a fresh rep.
 * Lifetimes: the root lives as long as its last alias (done for every alias
 * in kiln__context_alias_concats); Concat never moves a rep that has aliases
 * or is one, so a view's memory never changes owner behind it.
 * KILN_NO_VIEW_ALIAS=1 turns this off (A/B).
 */
#include "context.h"
#include "../ir/ops_movement.h"
#include <stdlib.h>
#include <string.h>

#define VIEW_ALIGN 256 /* byte alignment of an offset alias: what the arena gives every tensor */

static int64_t numel(const kiln_cuda_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->rank; d++) {
        if (t->dims[d] < 0) return -1;
        if (t->dims[d] && n > INT64_MAX / t->dims[d]) return -1;
        n *= t->dims[d];
    }
    return n;
}

/* Whether non-unit dims have the strides of `layout` (as the runtime compares reps). */
static bool packed_as(const kiln_cuda_tensor *t, kiln_layout layout)
{
    kiln_cuda_tensor want = *t;
    kiln__cuda_strides(&want, layout);
    for (int d = 0; d < t->rank; d++)
        if (t->dims[d] != 1 && want.strides[d] != t->strides[d]) return false;
    return true;
}

/* Unit dims (placeholders so far) get the strides of the packed layout the tensor matches,
 * `prefer` first; otherwise the stride a row-major tensor would give them there. */
static void canonical_strides(kiln_cuda_tensor *t, kiln_layout prefer)
{
    kiln_layout other = prefer == KILN_LAYOUT_NHWC ? KILN_LAYOUT_ROW_MAJOR : KILN_LAYOUT_NHWC;
    if (packed_as(t, prefer)) {
        kiln__cuda_strides(t, prefer);
        return;
    }
    if (packed_as(t, other)) {
        kiln__cuda_strides(t, other);
        return;
    }
    for (int d = t->rank - 1; d >= 0; d--)
        if (t->dims[d] == 1) t->strides[d] = d == t->rank - 1 ? 1 : t->strides[d + 1] * t->dims[d + 1];
}

bool kiln__view_reshape(const kiln_cuda_tensor *src, kiln_cuda_tensor *out)
{
    int64_t n = numel(src);
    if (n <= 0 || numel(out) != n || src->rank > KILN_MAX_DIMS || out->rank > KILN_MAX_DIMS) return false;
    /* chunks of the source, innermost first: element k of chunk c sits at base[c] * k */
    int64_t size[KILN_MAX_DIMS], base[KILN_MAX_DIMS];
    int nc = 0;
    for (int d = src->rank - 1; d >= 0; d--) {
        if (src->dims[d] == 1) continue;
        if (src->strides[d] <= 0) return false;
        if (nc > 0 && src->strides[d] == base[nc - 1] * size[nc - 1]) {
            size[nc - 1] *= src->dims[d];
        } else {
            base[nc] = src->strides[d];
            size[nc] = src->dims[d];
            nc++;
        }
    }
    /* the output's non-unit dims, innermost first, must split every chunk exactly */
    int c = 0;
    int64_t acc = 1;
    for (int d = out->rank - 1; d >= 0; d--) {
        int64_t k = out->dims[d];
        out->strides[d] = 0;
        if (k == 1) continue;
        if (c >= nc || k > size[c] / acc) return false;
        out->strides[d] = base[c] * acc;
        acc *= k;
        if (size[c] % acc) return false; /* this dim would straddle two chunks */
        if (acc == size[c]) {
            c++;
            acc = 1;
        }
    }
    return c == nc;
}

bool kiln__view_select(const kiln_cuda_tensor *src, int axis, int64_t index, int n_unit, kiln_cuda_tensor *out,
                       int64_t *elem_off)
{
    int R = src->rank;
    if (axis < 0 || axis >= R || n_unit < 0 || out->rank != R - 1 + n_unit || numel(src) <= 0) return false;
    if (index < 0) index += src->dims[axis];
    if (index < 0 || index >= src->dims[axis]) return false;
    for (int k = 0; k < out->rank; k++) {
        int from = k < axis ? k : k < axis + n_unit ? -1 : k - n_unit + 1;
        if (from < 0) {
            if (out->dims[k] != 1) return false;
            out->strides[k] = 0;
            continue;
        }
        if (out->dims[k] != src->dims[from] || (out->dims[k] != 1 && src->strides[from] <= 0)) return false;
        out->strides[k] = src->strides[from];
    }
    *elem_off = index * src->strides[axis];
    return *elem_off >= 0;
}

bool kiln__view_slice(const kiln_cuda_tensor *src, const int64_t *start, const int64_t *step, const int64_t *count,
                      kiln_cuda_tensor *out, int64_t *elem_off)
{
    if (out->rank != src->rank || numel(src) <= 0) return false;
    int64_t off = 0;
    for (int k = 0; k < src->rank; k++) {
        if (count[k] != out->dims[k] || count[k] <= 0 || start[k] < 0 || start[k] >= src->dims[k]) return false;
        out->strides[k] = 0;
        if (count[k] == 1) {
            off += start[k] * src->strides[k];
            continue;
        }
        /* reversed slices would need negative strides, which reformats refuse */
        if (step[k] < 1 || src->strides[k] <= 0 || start[k] + (count[k] - 1) * step[k] >= src->dims[k]) return false;
        out->strides[k] = step[k] * src->strides[k];
        off += start[k] * src->strides[k];
    }
    *elem_off = off;
    return true;
}

/* Which of the view ops a node is: 'r' reshape-like, 'g' Gather, 's' Slice, 0 none. */
static char view_kind(const kiln_node *nd)
{
    if ((nd->domain && *nd->domain) || nd->n_out != 1 || nd->n_in < 1) return 0;
    static const char *const reshapes[] = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"};
    for (size_t i = 0; i < sizeof reshapes / sizeof reshapes[0]; i++)
        if (!strcmp(nd->op_type, reshapes[i])) return 'r';
    if (!strcmp(nd->op_type, "Gather")) return 'g';
    if (!strcmp(nd->op_type, "Slice")) return 's';
    return 0;
}

bool kiln__view_of(const kiln_node *nd, const kiln_value *const *host, const kiln_cuda_tensor *src, kiln_layout prefer,
                   kiln_cuda_tensor *out, int64_t *elem_off)
{
    *elem_off = 0;
    if (src->dtype != out->dtype || src->rank < 0 || src->rank > KILN_MAX_DIMS || out->rank < 0 ||
        out->rank > KILN_MAX_DIMS)
        return false;
    bool ok = false;
    switch (view_kind(nd)) {
    case 'r':
        ok = kiln__view_reshape(src, out);
        break;
    case 'g': {
        const kiln_value *ix = nd->n_in == 2 ? host[1] : NULL;
        if (!ix || !ix->data || (ix->dtype != KILN_DT_INT64 && ix->dtype != KILN_DT_INT32) ||
            kiln__value_numel(ix) != 1 || ix->shape.rank < 0 || ix->shape.rank > KILN_MAX_DIMS)
            return false;
        int64_t axis = nd->params ? ((const kiln_axis_params *)nd->params)->axis : 0;
        if (axis < 0) axis += src->rank;
        if (axis < 0 || axis >= src->rank) return false;
        ok = kiln__view_select(src, (int)axis, kiln__value_get_i64(ix, 0), ix->shape.rank, out, elem_off);
        break;
    }
    case 's': {
        if (nd->opset >= 10 && nd->n_in < 3) return false;
        for (int j = 1; j < nd->n_in; j++)
            if (nd->in[j] >= 0 && (!host[j] || !host[j]->data)) return false;
        if (src->rank < 1) return false;
        int64_t start[KILN_MAX_DIMS], step[KILN_MAX_DIMS], count[KILN_MAX_DIMS];
        kiln_err err = {{0}};
        if (kiln__slice_resolve(nd, host, src->rank, src->dims, start, step, count, &err)) return false;
        ok = kiln__view_slice(src, start, step, count, out, elem_off);
        break;
    }
    default:
        return false;
    }
    if (!ok) return false;
    canonical_strides(out, prefer);
    return true;
}

/* Root rep of r and r's byte offset in it. */
static int root_of(const kiln_context *ctx, int r, size_t *off)
{
    *off = 0;
    for (int guard = 0; ctx->reps[r].alias_of >= 0 && guard < ctx->n_reps; guard++) {
        *off += ctx->reps[r].alias_off;
        r = ctx->reps[r].alias_of;
    }
    return r;
}

bool kiln__view_alias_enabled(void)
{
    const char *e = getenv("KILN_NO_VIEW_ALIAS");
    return !(e && *e && strcmp(e, "0"));
}

bool kiln__view_alias_candidate(const kiln_context *ctx, const kiln_node *nd)
{
    return view_kind(nd) && nd->out[0] >= 0 && nd->in[0] >= 0 && !ctx->host_known[nd->in[0]] && kiln__view_alias_enabled();
}

bool kiln__context_view_has_source(const kiln_context *ctx, int tensor, kiln_dtype dt)
{
    for (int q = 0; q < ctx->n_reps; q++)
        if (ctx->reps[q].tensor == tensor && ctx->reps[q].t.dtype == dt &&
            (ctx->reps[q].where == REP_ARENA || ctx->reps[q].where == REP_USER_IN))
            return true;
    return false;
}

bool kiln__context_view_alias(kiln_context *ctx, int node, int r)
{
    const kiln_node *nd = &ctx->net->nodes[node];
    if (!view_kind(nd) || !kiln__view_alias_enabled() || nd->n_in > 64) return false;
    int t0 = nd->in[0];
    if (t0 < 0 || nd->out[0] != ctx->reps[r].tensor) return false;
    const kiln_value *host[64];
    for (int j = 0; j < nd->n_in; j++) host[j] = nd->in[j] >= 0 && ctx->host_known[nd->in[j]] ? &ctx->vals[nd->in[j]] : NULL;
    /* the layout the runtime gave the output rep (exact strides, unit dims included) */
    kiln_cuda_tensor nhwc = ctx->reps[r].t;
    kiln__cuda_strides(&nhwc, KILN_LAYOUT_NHWC);
    kiln_layout prefer = nhwc.rank == 4 && !memcmp(nhwc.strides, ctx->reps[r].t.strides, sizeof(int64_t) * 4)
                             ? KILN_LAYOUT_NHWC
                             : KILN_LAYOUT_ROW_MAJOR;
    int best = -1, best_score = -1;
    int64_t best_off = 0;
    kiln_cuda_tensor best_t = ctx->reps[r].t;
    for (int q = 0; q < r; q++) {
        const kiln_rep *x = &ctx->reps[q];
        if (x->tensor != t0 || x->t.dtype != ctx->reps[r].t.dtype) continue;
        size_t root_off;
        const kiln_rep *rt = &ctx->reps[root_of(ctx, q, &root_off)];
        if (!(rt->where == REP_USER_IN || (rt->where == REP_ARENA && rt->first >= 0))) continue;
        kiln_cuda_tensor o = ctx->reps[r].t;
        int64_t off = 0;
        if (!kiln__view_of(nd, host, &x->t, prefer, &o, &off)) continue;
        size_t bytes = (size_t)off * kiln_dtype_size(o.dtype);
        if ((root_off + bytes) % VIEW_ALIGN) continue;
        /* a caller's buffer is only known at enqueue: no offsets into it (its address may be unset here) */
        if (rt->where == REP_USER_IN && root_off + bytes) continue;
        int score = packed_as(&o, prefer) ? 2 : (packed_as(&o, KILN_LAYOUT_ROW_MAJOR) || (o.rank == 4 && packed_as(&o, KILN_LAYOUT_NHWC))) ? 1 : 0;
        if (score > best_score) {
            best = q;
            best_score = score;
            best_off = off;
            best_t = o;
        }
    }
    if (best < 0) return false;
    kiln_rep *v = &ctx->reps[r];
    v->t = best_t;
    v->alias_of = best;
    v->alias_off = (size_t)best_off * kiln_dtype_size(best_t.dtype);
    v->where = REP_ARENA;
    v->first = v->last = ctx->reps[best].first >= 0 ? ctx->reps[best].first : -1;
    return true;
}

/*
 * The other direction: a producer laid out for the view that reads it. An
 * Expand whose only reader is a reshape-like view with a 4-D NHWC output
 * (EDVR's prob.unsqueeze(2).expand(b, t, c, h, w).reshape(b, t * c, h, w))
 * writes its 5-D output with the strides under which that view is packed
 * NHWC: the reshape becomes an alias and its reader (a Mul in NHWC) needs no
 * reformat. Expand writes through its output's strides (the movement copy
 * orders its writes by destination stride), so only its memory order changes.
 */
static bool wants_nhwc(const kiln_context *ctx, int tensor)
{
    /* as layout_for() in context.c */
    const kiln_value *v = &ctx->vals[tensor];
    return ctx->eng && ctx->eng->hdr.layout == KILN_LAYOUT_NHWC && v->shape.rank == 4 &&
           (v->dtype == KILN_DT_FLOAT || v->dtype == KILN_DT_FLOAT16);
}

bool kiln__view_producer_strides(const kiln_cuda_tensor *view_out, kiln_cuda_tensor *prod)
{
    kiln_cuda_tensor p = *prod;
    if (!kiln__view_reshape(view_out, &p)) return false;
    canonical_strides(&p, KILN_LAYOUT_ROW_MAJOR);
    memcpy(prod->strides, p.strides, sizeof p.strides);
    return true;
}

void kiln__context_view_producer_layout(kiln_context *ctx, int node, int r)
{
    const kiln_network *net = ctx->net;
    const kiln_node *nd = &net->nodes[node];
    if (!kiln__view_alias_enabled() || strcmp(nd->op_type, "Expand") || (nd->domain && *nd->domain) || nd->n_out != 1)
        return;
    int t = ctx->reps[r].tensor;
    if (t < 0 || nd->out[0] != t || net->tensors[t].is_output || ctx->reps[r].where != REP_ARENA) return;
    /* exactly one reading slot in the whole graph: input 0 of a reshape-like node on the GPU */
    int reader = -1, slots = 0;
    for (int k = 0; k < net->n_nodes; k++)
        for (int j = 0; j < net->nodes[k].n_in; j++)
            if (net->nodes[k].in[j] == t) {
                slots++;
                reader = j == 0 ? k : -1;
            }
    if (slots != 1 || reader < 0) return;
    const kiln_node *v = &net->nodes[reader];
    if (view_kind(v) != 'r' || v->out[0] < 0 || !ctx->eng->plan || !ctx->eng->plan[reader].on_gpu ||
        !kiln__cuda_op_find(v->domain, v->op_type) || !wants_nhwc(ctx, v->out[0]))
        return;
    /* the view's rep takes the reader's compute dtype: only then can it alias this one */
    if ((kiln_dtype)ctx->eng->plan[reader].compute != ctx->reps[r].t.dtype) return;
    kiln_cuda_tensor u;
    memset(&u, 0, sizeof u);
    u.dtype = ctx->reps[r].t.dtype;
    u.rank = 4;
    for (int d = 0; d < 4; d++) u.dims[d] = ctx->vals[v->out[0]].shape.d[d].add;
    kiln__cuda_strides(&u, KILN_LAYOUT_NHWC);
    (void)kiln__view_producer_strides(&u, &ctx->reps[r].t);
}
