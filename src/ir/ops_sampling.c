/*
 * Op schemas of the sampling family: GridSample (opset 16: 4-D; opset 20:
 * N-D with the modes renamed linear / cubic).
 */
#include "ops_sampling.h"
#include "ops_util.h"
#include <string.h>

static kiln_status gridsample_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_gridsample_params *p = params;
    kiln_status s;
    if ((s = kiln__attr_expect(node, "mode", KILN_ATTR_STRING, err))) return s;
    if ((s = kiln__attr_expect(node, "padding_mode", KILN_ATTR_STRING, err))) return s;
    if ((s = kiln__attr_expect(node, "align_corners", KILN_ATTR_INT, err))) return s;
    /* Opset 16 says bilinear / bicubic, opset 20 linear / cubic; accept both spellings. */
    const char *def = node->opset > 0 && node->opset < 20 ? "bilinear" : "linear";
    const char *m = kiln__attr_string(node, "mode", def);
    if (!strcmp(m, "nearest")) p->mode = KILN_GRIDSAMPLE_NEAREST;
    else if (!strcmp(m, "linear") || !strcmp(m, "bilinear")) p->mode = KILN_GRIDSAMPLE_LINEAR;
    else if (!strcmp(m, "cubic") || !strcmp(m, "bicubic")) p->mode = KILN_GRIDSAMPLE_CUBIC;
    else
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (GridSample): mode '%s' is not supported", node->name, m);
    const char *pm = kiln__attr_string(node, "padding_mode", "zeros");
    if (!strcmp(pm, "zeros")) p->padding = KILN_GRIDSAMPLE_ZEROS;
    else if (!strcmp(pm, "border")) p->padding = KILN_GRIDSAMPLE_BORDER;
    else if (!strcmp(pm, "reflection")) p->padding = KILN_GRIDSAMPLE_REFLECTION;
    else
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (GridSample): padding_mode '%s' is not supported",
                          node->name, pm);
    p->align_corners = kiln__attr_int(node, "align_corners", 0) != 0;
    return KILN_OK;
}

static kiln_status gridsample_infer(const kiln_node *node, const void *params, const kiln_value *const *in,
                                    kiln_value *out, kiln_err *err)
{
    const kiln_value *x = in[0], *g = in[1];
    if (!x || !g)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (GridSample): inputs X and grid are required", node->name);
    if (x->dtype == KILN_DT_STRING || x->dtype == KILN_DT_COMPLEX64 || x->dtype == KILN_DT_COMPLEX128)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (GridSample): X type %s is not supported", node->name,
                          kiln_dtype_name(x->dtype));
    if (g->dtype && !kiln__dtype_is_float(g->dtype))
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (GridSample): grid must be a float type, got %s", node->name,
                          kiln_dtype_name(g->dtype));
    int r = x->shape.rank >= 0 ? x->shape.rank : g->shape.rank;
    if (x->shape.rank >= 0 && x->shape.rank < 3)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (GridSample): X has %d dims, needs at least 3 (N, C, D1...)",
                          node->name, x->shape.rank);
    if (g->shape.rank >= 0 && g->shape.rank < 3)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (GridSample): grid has %d dims, needs at least 3", node->name,
                          g->shape.rank);
    if (r > KILN_MAX_DIMS) r = -1;
    if (node->opset > 0 && node->opset < 20 && x->shape.rank >= 0 && x->shape.rank != 4)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (GridSample-%lld): X must be 4-D, got %d dims", node->name,
                          (long long)node->opset, x->shape.rank);
    if (x->shape.rank >= 0 && g->shape.rank >= 0) {
        if (g->shape.rank != x->shape.rank)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (GridSample): grid has %d dims, X has %d", node->name,
                              g->shape.rank, x->shape.rank);
        kiln_dim last = g->shape.d[r - 1];
        if (kiln__dim_is_const(last) && last.add != r - 2)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (GridSample): grid's last dim is %lld, expected %d",
                              node->name, (long long)last.add, r - 2);
        kiln_dim a = x->shape.d[0], b = g->shape.d[0];
        if (kiln__dim_is_const(a) && kiln__dim_is_const(b) && a.add != b.add)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (GridSample): batch of X is %lld, of grid %lld", node->name,
                              (long long)a.add, (long long)b.add);
    }
    kiln_shape os;
    memset(&os, 0, sizeof os);
    os.rank = r;
    if (r >= 0) {
        if (x->shape.rank >= 0) {
            os.d[0] = x->shape.d[0];
            os.d[1] = x->shape.d[1];
        } else {
            os.d[0] = g->shape.d[0];
            os.d[1] = kiln__dim_unknown();
        }
        for (int i = 2; i < r; i++) os.d[i] = g->shape.rank >= 0 ? g->shape.d[i - 1] : kiln__dim_unknown();
    }
    kiln__value_set_type(&out[0], x->dtype, &os);
    return KILN_OK;
}

const kiln_op_schema kiln__ops_sampling[] = {
    {"GridSample", "", 16, 2, 2, 1, 1, sizeof(kiln_gridsample_params), gridsample_parse, gridsample_infer},
    {0},
};
