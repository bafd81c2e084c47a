/* Op schemas of the matmul family: MatMul (numpy semantics) and Gemm. */
#include "ops_matmul.h"
#include "ops_util.h"
#include <string.h>

static bool mm_dtype_ok(kiln_dtype dt)
{
    switch (dt) {
    case KILN_DT_UNDEFINED:
    case KILN_DT_FLOAT:
    case KILN_DT_DOUBLE:
    case KILN_DT_FLOAT16:
    case KILN_DT_BFLOAT16:
    case KILN_DT_INT32:
    case KILN_DT_INT64:
    case KILN_DT_UINT32:
    case KILN_DT_UINT64:
        return true;
    default:
        return false;
    }
}

static kiln_status check_types(const kiln_node *node, const kiln_value *const *in, int n, kiln_err *err)
{
    for (int i = 0; i < n; i++) {
        if (!in[i]) continue;
        if (in[i]->shape.rank >= 0) {
            kiln_status s = kiln__ops_size_guard(node, &in[i]->shape, i == 0 ? "A" : i == 1 ? "B" : "C", err);
            if (s) return s;
        }
        if (!mm_dtype_ok(in[i]->dtype))
            return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): input %d has type %s, which is not supported",
                              node->name, node->op_type, i, kiln_dtype_name(in[i]->dtype));
        if (i > 0 && in[0]->dtype != KILN_DT_UNDEFINED && in[i]->dtype != KILN_DT_UNDEFINED &&
            in[i]->dtype != in[0]->dtype)
            return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): input %d has type %s, input 0 has %s", node->name,
                              node->op_type, i, kiln_dtype_name(in[i]->dtype), kiln_dtype_name(in[0]->dtype));
    }
    return KILN_OK;
}

static bool dim_value(kiln_dim d, int64_t *v)
{
    if (!kiln__dim_is_const(d)) return false;
    *v = d.add;
    return true;
}

static kiln_status check_inner(const kiln_node *node, kiln_dim ka, kiln_dim kb, kiln_err *err)
{
    int64_t a, b;
    if (dim_value(ka, &a) && dim_value(kb, &b) && a != b)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): inner dims differ: A has %lld, B has %lld", node->name,
                          node->op_type, (long long)a, (long long)b);
    return KILN_OK;
}

static kiln_status matmul_infer(const kiln_node *node, const void *pp, const kiln_value *const *in, kiln_value *out,
                                kiln_err *err)
{
    const kiln_value *a = in[0], *b = in[1];
    kiln_status s = check_types(node, in, 2, err);
    if (s) return s;
    kiln_shape os;
    memset(&os, 0, sizeof os);
    int ra = a->shape.rank, rb = b->shape.rank;
    if (ra == 0 || rb == 0)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (MatMul): inputs must have at least 1 dim, got ranks %d and %d",
                          node->name, ra, rb);
    if (ra < 0 || rb < 0) {
        os.rank = -1;
        kiln__value_set_type(out, a->dtype, &os);
        return KILN_OK;
    }
    /* 1-D operands are promoted to matrices (A: 1 x K, B: K x 1); the added dim is dropped after. */
    kiln_dim ka = a->shape.d[ra - 1], kb = b->shape.d[rb == 1 ? 0 : rb - 2];
    if ((s = check_inner(node, ka, kb, err))) return s;
    int ba = ra > 2 ? ra - 2 : 0, bb = rb > 2 ? rb - 2 : 0, nb = ba > bb ? ba : bb;
    int rank = nb + (ra > 1) + (rb > 1);
    if (rank > KILN_MAX_DIMS)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (MatMul): result would have %d dims", node->name, rank);
    os.rank = rank;
    for (int i = 0; i < nb; i++) {
        int ia = i - (nb - ba), ib = i - (nb - bb);
        kiln_dim da = ia >= 0 ? a->shape.d[ia] : kiln__dim_const(1);
        kiln_dim db = ib >= 0 ? b->shape.d[ib] : kiln__dim_const(1);
        bool ok;
        os.d[i] = kiln__dim_broadcast(da, db, &ok);
        if (!ok)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (MatMul): batch dims %lld and %lld do not broadcast",
                              node->name, (long long)da.add, (long long)db.add);
    }
    int r = nb;
    if (ra > 1) os.d[r++] = a->shape.d[ra - 2];
    if (rb > 1) os.d[r++] = b->shape.d[rb - 1];
    if ((s = kiln__ops_size_guard(node, &os, "output", err))) return s;
    kiln__value_set_type(out, a->dtype, &os);
    return KILN_OK;
}

static kiln_status gemm_parse(const kiln_node *node, void *pp, kiln_err *err)
{
    kiln_gemm_params *p = pp;
    kiln_status s;
    if ((s = kiln__attr_expect(node, "transA", KILN_ATTR_INT, err))) return s;
    if ((s = kiln__attr_expect(node, "transB", KILN_ATTR_INT, err))) return s;
    const kiln_attr *al = kiln__node_attr(node, "alpha"), *be = kiln__node_attr(node, "beta");
    if ((al && al->type != KILN_ATTR_FLOAT && al->type != KILN_ATTR_INT) ||
        (be && be->type != KILN_ATTR_FLOAT && be->type != KILN_ATTR_INT))
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (Gemm): alpha and beta must be FLOAT", node->name);
    p->alpha = kiln__attr_float(node, "alpha", 1.0f);
    p->beta = kiln__attr_float(node, "beta", 1.0f);
    p->trans_a = kiln__attr_int(node, "transA", 0) != 0;
    p->trans_b = kiln__attr_int(node, "transB", 0) != 0;
    return KILN_OK;
}

static kiln_status gemm_infer(const kiln_node *node, const void *pp, const kiln_value *const *in, kiln_value *out,
                              kiln_err *err)
{
    const kiln_gemm_params *p = pp;
    const kiln_value *a = in[0], *b = in[1], *c = node->n_in > 2 ? in[2] : NULL;
    const kiln_value *chk[3] = {a, b, c};
    kiln_status s = check_types(node, chk, 3, err);
    if (s) return s;
    if ((a->shape.rank >= 0 && a->shape.rank != 2) || (b->shape.rank >= 0 && b->shape.rank != 2))
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Gemm): A and B must be 2-D, got %d and %d dims", node->name,
                          a->shape.rank, b->shape.rank);
    kiln_dim m = kiln__dim_unknown(), n = kiln__dim_unknown(), ka = kiln__dim_unknown(), kb = kiln__dim_unknown();
    if (a->shape.rank == 2) {
        m = a->shape.d[p->trans_a ? 1 : 0];
        ka = a->shape.d[p->trans_a ? 0 : 1];
    }
    if (b->shape.rank == 2) {
        n = b->shape.d[p->trans_b ? 0 : 1];
        kb = b->shape.d[p->trans_b ? 1 : 0];
    }
    if ((s = check_inner(node, ka, kb, err))) return s;
    if (c && c->shape.rank >= 0) {
        /* C broadcasts one way to (M, N). */
        if (c->shape.rank > 2)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Gemm): C has %d dims, at most 2 allowed", node->name,
                              c->shape.rank);
        kiln_dim want[2] = {m, n};
        for (int i = 0; i < c->shape.rank; i++) {
            int64_t cv, wv;
            kiln_dim wd = want[2 - c->shape.rank + i];
            if (dim_value(c->shape.d[i], &cv) && cv != 1 && dim_value(wd, &wv) && cv != wv)
                return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Gemm): C dim %d is %lld, cannot broadcast to %lld",
                                  node->name, i, (long long)cv, (long long)wv);
        }
    }
    kiln_shape os;
    memset(&os, 0, sizeof os);
    os.rank = 2;
    os.d[0] = m;
    os.d[1] = n;
    kiln__value_set_type(out, a->dtype, &os);
    return KILN_OK;
}

const kiln_op_schema kiln__ops_matmul[] = {
    {"MatMul", "", 1, 2, 2, 1, 1, 0, NULL, matmul_infer},
    {"Gemm", "", 1, 2, 3, 1, 1, sizeof(kiln_gemm_params), gemm_parse, gemm_infer},
    {0},
};
