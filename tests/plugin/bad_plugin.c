/*
 * Deliberately broken plugin libraries, one per BAD_* macro (CMake builds
 * this file once per variant). Each registers (or tries to) a "ScaledTanh"
 * class so the example model reaches it. kiln must answer every one with a
 * clear error and no crash.
 */
#include "kiln_plugin.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define U __attribute__((unused))

U static int create(const kiln_plugin_host *h, const kiln_plugin_attr *a, int n, void **inst, char *err, size_t len)
{
#ifdef BAD_CREATE_ERROR
    snprintf(err, len, "create refuses on purpose");
    return KILN_PLUGIN_ERR_INVALID_ARG;
#endif
    *inst = malloc(1);
    return *inst ? KILN_PLUGIN_OK : KILN_PLUGIN_ERR_OUT_OF_MEMORY;
}
U static void destroy(void *inst) { free(inst); }
U static int types(const void *inst, const int32_t *in, int n_in, int32_t *out, int n_out, char *err, size_t len)
{
#ifdef BAD_TYPES
    out[0] = 999;
#else
    out[0] = in[0];
#endif
    return KILN_PLUGIN_OK;
}
U static int shapes(const void *inst, const kiln_plugin_shape_input *in, int n_in, kiln_plugin_shape *out, int n_out, char *err,
                  size_t len)
{
    out[0] = in[0].shape;
#ifdef BAD_SHAPE_RANK
    out[0].rank = 99;
#endif
#ifdef BAD_SHAPE_NEG
    if (out[0].rank > 0) out[0].d[0] = kiln_plugin_dim_const(-5);
#endif
#ifdef BAD_SHAPE_SYM
    if (out[0].rank > 0) out[0].d[0].sym = 12345; /* a symbol no input has */
#endif
#ifdef BAD_SHAPE_ERROR
    snprintf(err, len, "shape function fails on purpose");
    return KILN_PLUGIN_ERR_SHAPE;
#endif
    return KILN_PLUGIN_OK;
}
U static int execute(const void *inst, const kiln_plugin_tensor *in, int n_in, const kiln_plugin_tensor *out, int n_out, char *err,
                   size_t len)
{
#ifdef BAD_EXECUTE_ERROR
    snprintf(err, len, "execute fails on purpose");
    return KILN_PLUGIN_ERR_INTERNAL;
#endif
    return KILN_PLUGIN_OK;
}
U static int enqueue(const void *inst, const kiln_plugin_tensor *in, int n_in, const kiln_plugin_tensor *out, int n_out, void *ws,
                   size_t wsb, int tactic, void *stream, char *err, size_t len)
{
    snprintf(err, len, "enqueue fails on purpose");
    return KILN_PLUGIN_ERR_BACKEND;
}

U static int supports(const void *inst, int pos, const kiln_plugin_format *f, int n_in, int n_out)
{
    return f[pos].dtype == KILN_PLUGIN_DT_FLOAT || f[pos].dtype == KILN_PLUGIN_DT_FLOAT16;
}

U static const kiln_plugin_class cls = {
#ifdef BAD_CLASS_ABI
    .abi_version = 99,
#else
    .abi_version = KILN_PLUGIN_ABI_VERSION,
#endif
#ifdef BAD_STRUCT_SIZE
    .struct_size = 0,
#else
    .struct_size = sizeof(kiln_plugin_class),
#endif
    .name = "ScaledTanh",
    .version = "1",
    .min_inputs = 1,
    .max_inputs = 1,
    .min_outputs = 1,
    .max_outputs = 1,
    .create = create,
    .destroy = destroy,
    .get_output_types = types,
#ifndef BAD_NULL_CALLBACK
    .get_output_shapes = shapes,
#endif
    .execute = execute,
#ifdef BAD_ENQUEUE_ONLY
    .enqueue = enqueue,
#endif
};
#ifdef BAD_ENQUEUE_ONLY
/* GPU-only: the CPU path must say there is no host execute */
U static const kiln_plugin_class cls_gpu_only = {
    .abi_version = KILN_PLUGIN_ABI_VERSION, .struct_size = sizeof(kiln_plugin_class), .name = "ScaledTanh", .version = "1",
    .min_inputs = 1, .max_inputs = 1, .min_outputs = 1, .max_outputs = 1, .create = create, .destroy = destroy,
    .get_output_types = types, .get_output_shapes = shapes, .supports_format = supports, .enqueue = enqueue,
};
U static const kiln_plugin_class *const classes[] = {&cls_gpu_only};
#elif defined(BAD_DUPLICATE)
U static const kiln_plugin_class *const classes[] = {&cls, &cls};
#else
U static const kiln_plugin_class *const classes[] = {&cls};
#endif

#ifdef BAD_NO_SYMBOL
KILN_PLUGIN_EXPORT int not_the_entry(void);
KILN_PLUGIN_EXPORT int not_the_entry(void) { return 0; }
#else
KILN_PLUGIN_EXPORT int kiln_plugin_entry(uint32_t host_abi, const kiln_plugin_class *const **out, int *count, char *err, size_t len)
{
#ifdef BAD_ENTRY_ABI
    if (host_abi < 42) {
        snprintf(err, len, "needs kiln plugin ABI 42, got %u", host_abi);
        return KILN_PLUGIN_ERR_ABI;
    }
#endif
#ifdef BAD_ENTRY_ERROR
    snprintf(err, len, "entry point fails on purpose");
    return KILN_PLUGIN_ERR_INTERNAL;
#endif
#ifdef BAD_COUNT
    *out = classes;
    *count = 0;
    return KILN_PLUGIN_OK;
#endif
    *out = classes;
    *count = (int)(sizeof classes / sizeof classes[0]);
    return KILN_PLUGIN_OK;
}
#endif
