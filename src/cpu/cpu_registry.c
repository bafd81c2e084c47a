/* Finds an op's CPU kernel across the per-family tables. */
#include "cpu.h"
#include <string.h>

static const kiln_cpu_kernel *const families[] = {
    kiln__cpu_elementwise, kiln__cpu_activation, kiln__cpu_conv,   kiln__cpu_pool,
    kiln__cpu_matmul,      kiln__cpu_shape,      kiln__cpu_movement, kiln__cpu_resize,
    kiln__cpu_reduce,      kiln__cpu_norm,       kiln__cpu_sampling, kiln__cpu_lrn, kiln__cpu_indexing,
    kiln__cpu_fused,
};

/* cpu_plugin.c: the generic kernel of plugin nodes (issue 4) */
const kiln_cpu_kernel *kiln__cpu_plugin_kernel_find(const char *op_type);

static bool same_domain(const char *a, const char *b)
{
    if (!a || !strcmp(a, "ai.onnx")) a = "";
    if (!b || !strcmp(b, "ai.onnx")) b = "";
    return strcmp(a, b) == 0;
}

const kiln_cpu_kernel *kiln__cpu_kernel_find(const char *domain, const char *op_type)
{
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (const kiln_cpu_kernel *k = families[f]; k->op_type; k++)
            if (!strcmp(k->op_type, op_type) && same_domain(k->domain, domain)) return k;
    /* --- plugins (issue 4): an op no family knows may be a plugin class --- */
    return kiln__cpu_plugin_kernel_find(op_type);
}
