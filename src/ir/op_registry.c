/* Finds an op's schema across the per-family tables. */
#include "ir.h"
#include <string.h>

static const kiln_op_schema *const families[] = {
    kiln__ops_elementwise, kiln__ops_activation, kiln__ops_conv,   kiln__ops_pool,
    kiln__ops_matmul,      kiln__ops_shape,      kiln__ops_movement, kiln__ops_resize,
    kiln__ops_reduce,      kiln__ops_norm,       kiln__ops_sampling, kiln__ops_lrn, kiln__ops_indexing,
    kiln__ops_fused,
};

static bool same_domain(const char *a, const char *b)
{
    /* "ai.onnx" is the default domain spelled out. */
    if (!a || !strcmp(a, "ai.onnx")) a = "";
    if (!b || !strcmp(b, "ai.onnx")) b = "";
    return strcmp(a, b) == 0;
}

const kiln_op_schema *kiln__op_schema_find(const char *domain, const char *op_type)
{
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (const kiln_op_schema *s = families[f]; s->op_type; s++)
            if (!strcmp(s->op_type, op_type) && same_domain(s->domain, domain)) return s;
    return NULL;
}
