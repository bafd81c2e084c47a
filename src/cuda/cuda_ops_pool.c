/*
 * GPU ops of the pool family. MaxPool and AveragePool run the window kernel
 * of k_pool.cu on a geometry unified to three spatial dims (as the CPU
 * reference, src/cpu/cpu_pool.c, builds it, auto_pad included);
 * GlobalAveragePool and GlobalMaxPool are mean / max reductions over the
 * spatial axes through the reduction engine of k_reduce.cu.
 */
#include "cuda_backend.h"
#include "../ir/ops_pool.h"
#include "k_pool.h"
#include "k_reduce.h"
#include <string.h>

static bool is_float(kiln_dtype t) { return t == KILN_DT_FLOAT || t == KILN_DT_FLOAT16; }

static kiln_status fail_internal(const kiln_cuda_launch *l, const char *what, kiln_err *err)
{
    return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): %s", l->node->name, l->node->op_type, what);
}

/* Float X and Y of equal type, rank 3..5 (1..3 spatial dims); no Indices output. */
static bool supports_pool(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    const kiln_pool_params *p = node->params;
    if (!p || !in[0] || !is_float(in[0]->dtype) || out[0].dtype != in[0]->dtype) return false;
    if (p->nsp < 1 || p->nsp > 3) return false;
    if (in[0]->shape.rank >= 0 && in[0]->shape.rank != p->nsp + 2) return false;
    for (int i = 1; i < node->n_out; i++)
        if (node->out[i] >= 0) return false;
    return true;
}

static kiln_status launch_pool(const kiln_cuda_launch *l, kiln_err *err)
{
    const kiln_node *node = l->node;
    const kiln_pool_params *p = l->params;
    const kiln_cuda_tensor *x = &l->in[0], *y = &l->out[0];
    if (!p) return fail_internal(l, "attributes not parsed", err);
    for (int i = 1; i < node->n_out; i++)
        if (node->out[i] >= 0)
            return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (MaxPool): the Indices output runs on the CPU",
                              node->name);
    int nsp = x->rank - 2;
    if (nsp < 1 || nsp > 3 || nsp != p->nsp || y->rank != x->rank)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): %d-D input not supported on the GPU", node->name,
                          node->op_type, x->rank);
    if (!is_float(x->dtype) || y->dtype != x->dtype)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): type %s not supported on the GPU", node->name,
                          node->op_type, kiln_dtype_name(x->dtype));
    if (y->dims[0] != x->dims[0] || y->dims[1] != x->dims[1]) return fail_internal(l, "output N or C differs", err);
    kp_args a;
    memset(&a, 0, sizeof a);
    a.max = !strcmp(node->op_type, "MaxPool");
    a.count_include_pad = p->count_include_pad;
    a.dt = x->dtype;
    a.x = x->ptr;
    a.y = y->ptr;
    a.n = x->dims[0];
    a.c = x->dims[1];
    a.xs[0] = x->strides[0];
    a.xs[1] = x->strides[1];
    a.ys[0] = y->strides[0];
    a.ys[1] = y->strides[1];
    bool upper = p->auto_pad == KILN_AUTO_PAD_SAME_UPPER, lower = p->auto_pad == KILN_AUTO_PAD_SAME_LOWER;
    bool valid = p->auto_pad == KILN_AUTO_PAD_VALID;
    for (int j = 0; j < 3; j++) a.in[j] = a.out[j] = a.k[j] = a.s[j] = a.d[j] = 1;
    /* Spatial dim i sits at unified position 3 - nsp + i (as the CPU reference). */
    for (int i = 0; i < nsp; i++) {
        int j = 3 - nsp + i;
        int64_t k = p->kernel[i], s = p->n_strides > 0 ? p->strides[i] : 1, d = p->n_dil > 0 ? p->dil[i] : 1;
        a.in[j] = x->dims[i + 2];
        a.out[j] = y->dims[i + 2];
        a.k[j] = k;
        a.s[j] = s;
        a.d[j] = d;
        a.xs[2 + j] = x->strides[i + 2];
        a.ys[2 + j] = y->strides[i + 2];
        if (upper || lower) {
            int64_t total = (a.out[j] - 1) * s + d * (k - 1) + 1 - a.in[j];
            if (total < 0) total = 0;
            a.pb[j] = upper ? total / 2 : total - total / 2;
            a.pe[j] = total - a.pb[j];
        } else if (!valid && p->n_pads > 0) {
            a.pb[j] = p->pads[i];
            a.pe[j] = p->pads[i + nsp];
        }
    }
    return kiln__cuda_check(kiln__kp_pool(&a, l->ex->stream), node, "pool kernel", err);
}

/* ---- GlobalAveragePool / GlobalMaxPool ---- */

static bool supports_global(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    (void)node;
    return in[0] && is_float(in[0]->dtype) && out[0].dtype == in[0]->dtype && in[0]->shape.rank <= KILN_MAX_DIMS;
}

static uint32_t spatial_mask(int rank)
{
    uint32_t m = 0;
    for (int i = 2; i < rank; i++) m |= 1u << i;
    return m;
}

static size_t global_workspace(const kiln_cuda_launch *l)
{
    const kiln_cuda_tensor *x = &l->in[0];
    if (x->rank < 3 || x->rank > KILN_MAX_DIMS) return 0;
    return kiln__kr_workspace(x->rank, x->dims, spatial_mask(x->rank));
}

static kiln_status launch_global(const kiln_cuda_launch *l, kiln_err *err)
{
    const kiln_node *node = l->node;
    const kiln_cuda_tensor *x = &l->in[0], *y = &l->out[0];
    if (x->rank < 3 || x->rank > KILN_MAX_DIMS || y->rank != x->rank || !is_float(x->dtype) || y->dtype != x->dtype)
        return fail_internal(l, "bad input or output", err);
    bool is_max = !strcmp(node->op_type, "GlobalMaxPool");
    int64_t sp = 1;
    for (int i = 2; i < x->rank; i++) {
        if (y->dims[i] != 1) return fail_internal(l, "output spatial dims must be 1", err);
        sp *= x->dims[i];
    }
    if (sp == 0 && is_max)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (GlobalMaxPool): empty spatial dims run on the CPU",
                          node->name);
    kr_args a;
    memset(&a, 0, sizeof a);
    a.op = is_max ? KR_MAX : KR_MEAN;
    a.rank = x->rank;
    a.x = x->ptr;
    a.xdt = x->dtype;
    a.y = y->ptr;
    a.ydt = y->dtype;
    a.mask = spatial_mask(x->rank);
    a.ws = l->ex->workspace;
    a.ws_bytes = l->ex->workspace_bytes;
    for (int i = 0; i < x->rank; i++) {
        if (i < 2 && y->dims[i] != x->dims[i]) return fail_internal(l, "output N or C differs", err);
        a.dims[i] = x->dims[i];
        a.xstr[i] = x->strides[i];
        a.ystr[i] = i < 2 ? y->strides[i] : 0;
    }
    return kiln__cuda_check(kiln__kr_run(&a, l->ex->stream), node, "global pool kernel", err);
}

const kiln_cuda_op kiln__cuda_ops_pool[] = {
    {.op_type = "MaxPool", .domain = "", .supports = supports_pool, .launch = launch_pool},
    {.op_type = "AveragePool", .domain = "", .supports = supports_pool, .launch = launch_pool},
    {.op_type = "GlobalAveragePool", .domain = "", .supports = supports_global, .workspace = global_workspace,
     .launch = launch_global},
    {.op_type = "GlobalMaxPool", .domain = "", .supports = supports_global, .workspace = global_workspace,
     .launch = launch_global},
    {0},
};
