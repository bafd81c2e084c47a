/* Finds a node's GPU op across the per-family tables. */
#include "cuda_backend.h"
#include <string.h>

static const kiln_cuda_op *const families[] = {
    kiln__cuda_ops_elementwise, kiln__cuda_ops_movement, kiln__cuda_ops_resize, kiln__cuda_ops_pool,
    kiln__cuda_ops_reduce,      kiln__cuda_ops_norm,     kiln__cuda_ops_conv,   kiln__cuda_ops_gemm,
};

/* cuda_ops_plugin.c: the generic GPU op of plugin classes (issue 4) */
const kiln_cuda_op *kiln__cuda_plugin_op_find(const char *op_type);

static bool same_domain(const char *a, const char *b)
{
    if (!a || !strcmp(a, "ai.onnx")) a = "";
    if (!b || !strcmp(b, "ai.onnx")) b = "";
    return strcmp(a, b) == 0;
}

const kiln_cuda_op *kiln__cuda_op_find(const char *domain, const char *op_type)
{
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (const kiln_cuda_op *o = families[f]; o->op_type; o++)
            if (!strcmp(o->op_type, op_type) && same_domain(o->domain, domain)) return o;
    /* --- plugins (issue 4): an op with no GPU op here may be a plugin class (cuda_ops_plugin.c) --- */
    return kiln__cuda_plugin_op_find(op_type);
}
