/*
 * Concat without copies. When a Concat's output is row-major and every dim
 * before the axis is 1 (N = 1 on the channel axis, the dense blocks of RRDB
 * and DenseNet), each input is one contiguous slice of the output. Such an
 * input's rep is then placed inside the output's memory ("aliased" to it), so
 * its producer writes straight into the slice and the Concat has nothing left
 * to copy; the step is skipped when all its inputs are in place.
 *
 * Concats are visited latest first, so in RRDB's chain
 *     c1 = cat(x, x1), c2 = cat(x, x1, x2), ..., c4 = cat(x, x1, ..., x4)
 * c4 takes x..x4 first, and c3 (whose inputs already sit in c4 in the same
 * order) becomes an alias of c4's prefix, and so on down to c1: one buffer.
 *
 * An input shared by two places can live in one only; where it is not in
 * place the Concat copies it as before. A partly aliased Concat still runs
 * whole: an in-place input is then copied onto itself, element by element to
 * the same address, which is harmless.
 */
#include "context.h"
#include "../ir/ops_movement.h"
#include <string.h>

#define ALIAS_ALIGN 256 /* byte alignment of a slice: what the arena gives every tensor */

static bool packed_row_major(const kiln_cuda_tensor *t)
{
    int64_t s = 1;
    for (int d = t->rank - 1; d >= 0; d--) {
        if (t->dims[d] != 1 && t->strides[d] != s) return false;
        s *= t->dims[d];
    }
    return true;
}

/* Root rep and byte offset inside it. */
static int root_of(const kiln_context *ctx, int r, size_t *off)
{
    *off = 0;
    for (int guard = 0; ctx->reps[r].alias_of >= 0 && guard < ctx->n_reps; guard++) {
        *off += ctx->reps[r].alias_off;
        r = ctx->reps[r].alias_of;
    }
    return r;
}

static size_t elems(const kiln_cuda_tensor *t)
{
    size_t n = 1;
    for (int d = 0; d < t->rank; d++) n *= (size_t)t->dims[d];
    return n;
}

static bool aliasable(const kiln_context *ctx, int r, const kiln_rep *o, int axis)
{
    const kiln_rep *x = &ctx->reps[r];
    if (x->where != REP_ARENA || x->alias_of >= 0 || x->first < 0) return false;
    if (x->t.dtype != o->t.dtype || x->t.rank != o->t.rank || !packed_row_major(&x->t)) return false;
    for (int d = 0; d < o->t.rank; d++)
        if (d != axis && x->t.dims[d] != o->t.dims[d]) return false;
    /* a rep that holds the root of others cannot move into a third one here */
    for (int q = 0; q < ctx->n_reps; q++)
        if (ctx->reps[q].alias_of == r) return false;
    return true;
}

void kiln__context_alias_concats(kiln_context *ctx)
{
    const kiln_network *net = ctx->net;
    for (int s = ctx->n_steps - 1; s >= 0; s--) {
        kiln_step *st = &ctx->steps[s];
        if (st->kind != STEP_LAUNCH) continue;
        const kiln_node *nd = &net->nodes[st->node];
        if (strcmp(nd->op_type, "Concat") || (nd->domain && *nd->domain) || nd->n_out != 1 || st->out_reps[0] < 0) continue;
        int orep = st->out_reps[0];
        kiln_rep *o = &ctx->reps[orep];
        if (o->where != REP_ARENA || !packed_row_major(&o->t) || o->t.rank < 1) continue;
        int64_t axis = nd->params ? ((const kiln_axis_params *)nd->params)->axis : 1;
        if (axis < 0) axis += o->t.rank;
        if (axis < 0 || axis >= o->t.rank) continue;
        bool unit = true;
        for (int d = 0; d < axis; d++) unit = unit && o->t.dims[d] == 1;
        if (!unit) continue;
        size_t inner = kiln_dtype_size(o->t.dtype);
        for (int d = (int)axis + 1; d < o->t.rank; d++) inner *= (size_t)o->t.dims[d];

        /* Already in place in one root, in this Concat's order? Then this output is
         * that stretch of the root and the step has nothing to do. */
        size_t base = 0, pos = 0;
        int root = -1;
        bool chain = o->alias_of < 0;
        for (int j = 0; j < nd->n_in && chain; j++) {
            int r = st->in_reps[j];
            if (r < 0 || ctx->reps[r].alias_of < 0) {
                chain = false;
                break;
            }
            size_t off;
            int rt = root_of(ctx, r, &off);
            if (j == 0) {
                root = rt;
                base = off;
            }
            chain = rt == root && rt != orep && off == base + pos;
            pos += (size_t)ctx->reps[r].t.dims[axis] * inner;
        }
        if (chain && nd->n_in > 0 && base % ALIAS_ALIGN == 0) {
            o->alias_of = root;
            o->alias_off = base;
            st->skip = true;
            continue;
        }

        /* Otherwise put every input that can go there into this output's slices. */
        bool all = true;
        pos = 0;
        for (int j = 0; j < nd->n_in; j++) {
            int r = st->in_reps[j];
            if (r < 0) {
                all = false;
                continue;
            }
            size_t bytes = (size_t)ctx->reps[r].t.dims[axis] * inner;
            bool dup = false;
            for (int k = 0; k < j; k++) dup = dup || st->in_reps[k] == r;
            if (!dup && pos % ALIAS_ALIGN == 0 && aliasable(ctx, r, o, (int)axis) && elems(&ctx->reps[r].t) > 0) {
                ctx->reps[r].alias_of = orep;
                ctx->reps[r].alias_off = pos;
            } else {
                all = false;
            }
            pos += bytes;
        }
        if (all) st->skip = true;
    }
    /* a root lives as long as everything placed in it */
    for (int r = 0; r < ctx->n_reps; r++) {
        if (ctx->reps[r].alias_of < 0) continue;
        size_t off;
        kiln_rep *rt = &ctx->reps[root_of(ctx, r, &off)];
        const kiln_rep *x = &ctx->reps[r];
        if (x->first >= 0 && (rt->first < 0 || x->first < rt->first)) rt->first = x->first;
        if (x->last > rt->last) rt->last = x->last;
    }
}

void kiln__context_place_aliases(kiln_context *ctx)
{
    for (int r = 0; r < ctx->n_reps; r++) {
        if (ctx->reps[r].alias_of < 0) continue;
        size_t off;
        int rt = root_of(ctx, r, &off);
        ctx->reps[r].t.ptr = (char *)ctx->reps[rt].t.ptr + off;
    }
}
