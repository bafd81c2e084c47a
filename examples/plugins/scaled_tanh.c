/*
 * Example kiln plugin: ScaledTanh, y = alpha * tanh(beta * x), elementwise.
 * Built as a separate shared library that uses only include/kiln_plugin.h:
 *   kiln run --plugins=libkiln_scaled_tanh.so model.onnx
 * ONNX node: op_type "ScaledTanh" (any domain), attributes alpha and beta
 * (FLOAT, default 1). FLOAT or FLOAT16, any shape, row-major or NHWC.
 * The host `execute` serves the CPU path; `enqueue` (scaled_tanh_cuda.cu,
 * when built with CUDA) the GPU path.
 */
#include "kiln_plugin.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct st_inst {
    float alpha, beta;
} st_inst;

#ifdef EXAMPLE_HAVE_CUDA
/* scaled_tanh_cuda.cu: returns a cudaError_t (0 = success); msg gets its text. */
int example_scaled_tanh_launch(const kiln_plugin_tensor *in, const kiln_plugin_tensor *out, float alpha, float beta, int tactic,
                               void *stream, char *msg, size_t len);
#endif

static int fail(char *err, size_t len, int code, const char *what)
{
    snprintf(err, len, "%s", what);
    return code;
}

static int st_create(const kiln_plugin_host *host, const kiln_plugin_attr *attrs, int n_attrs, void **inst, char *err, size_t len)
{
    st_inst v = {1.0f, 1.0f};
    for (int i = 0; i < n_attrs; i++) {
        const kiln_plugin_attr *a = &attrs[i];
        float *dst = !strcmp(a->name, "alpha") ? &v.alpha : !strcmp(a->name, "beta") ? &v.beta : NULL;
        if (!dst) {
            snprintf(err, len, "unknown attribute '%s' (ScaledTanh takes alpha, beta)", a->name);
            return KILN_PLUGIN_ERR_INVALID_ARG;
        }
        if (a->type != KILN_PLUGIN_ATTR_FLOAT) {
            snprintf(err, len, "attribute '%s' must be a FLOAT", a->name);
            return KILN_PLUGIN_ERR_INVALID_ARG;
        }
        if (!isfinite(a->f)) return fail(err, len, KILN_PLUGIN_ERR_INVALID_ARG, "alpha and beta must be finite");
        *dst = a->f;
    }
    st_inst *p = malloc(sizeof *p);
    if (!p) return fail(err, len, KILN_PLUGIN_ERR_OUT_OF_MEMORY, "out of memory");
    *p = v;
    *inst = p;
    return KILN_PLUGIN_OK;
}

static void st_destroy(void *inst) { free(inst); }

static int st_clone(const kiln_plugin_host *host, const void *inst, void **out, char *err, size_t len)
{
    st_inst *p = malloc(sizeof *p);
    if (!p) return fail(err, len, KILN_PLUGIN_ERR_OUT_OF_MEMORY, "out of memory");
    *p = *(const st_inst *)inst;
    *out = p;
    return KILN_PLUGIN_OK;
}

static int st_types(const void *inst, const int32_t *in, int n_in, int32_t *out, int n_out, char *err, size_t len)
{
    if (in[0] != 0 && in[0] != KILN_PLUGIN_DT_FLOAT && in[0] != KILN_PLUGIN_DT_FLOAT16)
        return fail(err, len, KILN_PLUGIN_ERR_DTYPE, "input must be float32 or float16");
    out[0] = in[0];
    return KILN_PLUGIN_OK;
}

static int st_shapes(const void *inst, const kiln_plugin_shape_input *in, int n_in, kiln_plugin_shape *out, int n_out, char *err,
                     size_t len)
{
    out[0] = in[0].shape; /* elementwise: same (possibly symbolic) shape */
    return KILN_PLUGIN_OK;
}

static int st_supports(const void *inst, int pos, const kiln_plugin_format *f, int n_in, int n_out)
{
    if (f[pos].dtype != KILN_PLUGIN_DT_FLOAT && f[pos].dtype != KILN_PLUGIN_DT_FLOAT16) return 0;
    /* the output has the input's type (any layout: the kernel indexes through strides) */
    return pos == 0 || f[pos].dtype == f[0].dtype;
}

static int st_tactics(const void *inst, const kiln_plugin_tensor *in, int n_in, const kiln_plugin_tensor *out, int n_out)
{
    return 2; /* two block sizes; the builder times them */
}

static int st_enqueue(const void *inst, const kiln_plugin_tensor *in, int n_in, const kiln_plugin_tensor *out, int n_out, void *ws,
                      size_t ws_bytes, int tactic, void *stream, char *err, size_t len)
{
#ifdef EXAMPLE_HAVE_CUDA
    const st_inst *p = inst;
    int rc = example_scaled_tanh_launch(&in[0], &out[0], p->alpha, p->beta, tactic, stream, err, len);
    return rc ? KILN_PLUGIN_ERR_BACKEND : KILN_PLUGIN_OK;
#else
    return fail(err, len, KILN_PLUGIN_ERR_UNSUPPORTED, "built without CUDA");
#endif
}

static float h2f(uint16_t h)
{
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023, u;
    if (e == 0) {
        float f = (float)m / 16777216.0f; /* subnormal: m * 2^-24 */
        return s ? -f : f;
    }
    if (e == 31) u = s | 0x7f800000u | (m << 13);
    else u = s | ((e + 112) << 23) | (m << 13);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t f2h(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t s = (u >> 16) & 0x8000u;
    if ((u & 0x7fffffffu) >= 0x7f800000u) return (uint16_t)(s | 0x7c00u | ((u & 0x7fffffu) ? 0x200u : 0));
    float a = fabsf(f);
    if (a >= 65520.0f) return (uint16_t)(s | 0x7c00u);
    if (a < 6.103515625e-05f) return (uint16_t)(s | (uint16_t)lrintf(a * 16777216.0f)); /* subnormal, rounds to even */
    uint32_t e = ((u >> 23) & 255) - 112, m = u & 0x7fffffu;
    uint32_t h = (e << 10) | (m >> 13), rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1))) h++;
    return (uint16_t)(s | h);
}

static int st_execute(const void *inst, const kiln_plugin_tensor *in, int n_in, const kiln_plugin_tensor *out, int n_out, char *err,
                      size_t len)
{
    const st_inst *p = inst;
    int64_t n = 1;
    for (int d = 0; d < in[0].rank; d++) n *= in[0].dims[d];
    if (in[0].dtype == KILN_PLUGIN_DT_FLOAT) {
        const float *x = in[0].data;
        float *y = out[0].data;
        for (int64_t i = 0; i < n; i++) y[i] = p->alpha * tanhf(p->beta * x[i]);
    } else if (in[0].dtype == KILN_PLUGIN_DT_FLOAT16) {
        const uint16_t *x = in[0].data;
        uint16_t *y = out[0].data;
        for (int64_t i = 0; i < n; i++) y[i] = f2h(p->alpha * tanhf(p->beta * h2f(x[i])));
    } else {
        return fail(err, len, KILN_PLUGIN_ERR_DTYPE, "unsupported data type");
    }
    return KILN_PLUGIN_OK;
}

/* State in the engine file: "STH1", alpha, beta (little-endian floats). */
static int st_serialize(const void *inst, void *buf, size_t cap, size_t *size, char *err, size_t len)
{
    *size = 12;
    if (!buf) return KILN_PLUGIN_OK;
    if (cap < 12) return fail(err, len, KILN_PLUGIN_ERR_INVALID_ARG, "buffer too small");
    const st_inst *p = inst;
    memcpy(buf, "STH1", 4);
    memcpy((char *)buf + 4, &p->alpha, 4);
    memcpy((char *)buf + 8, &p->beta, 4);
    return KILN_PLUGIN_OK;
}

static int st_deserialize(const kiln_plugin_host *host, const void *data, size_t size, void **inst, char *err, size_t len)
{
    if (size != 12 || memcmp(data, "STH1", 4)) return fail(err, len, KILN_PLUGIN_ERR_INVALID_ARG, "state is not 12 bytes starting with STH1");
    st_inst v;
    memcpy(&v.alpha, (const char *)data + 4, 4);
    memcpy(&v.beta, (const char *)data + 8, 4);
    if (!isfinite(v.alpha) || !isfinite(v.beta)) return fail(err, len, KILN_PLUGIN_ERR_INVALID_ARG, "alpha/beta not finite");
    st_inst *p = malloc(sizeof *p);
    if (!p) return fail(err, len, KILN_PLUGIN_ERR_OUT_OF_MEMORY, "out of memory");
    *p = v;
    *inst = p;
    return KILN_PLUGIN_OK;
}

static const kiln_plugin_class scaled_tanh = {
    .abi_version = KILN_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(kiln_plugin_class),
    .name = "ScaledTanh",
    .version = "1",
    .plugin_namespace = "",
    .min_inputs = 1,
    .max_inputs = 1,
    .min_outputs = 1,
    .max_outputs = 1,
    .create = st_create,
    .destroy = st_destroy,
    .clone = st_clone,
    .get_output_types = st_types,
    .get_output_shapes = st_shapes,
    .supports_format = st_supports,
    .tactic_count = st_tactics,
    .enqueue = st_enqueue,
    .execute = st_execute,
    .serialize = st_serialize,
    .deserialize = st_deserialize,
};

static const kiln_plugin_class *const classes[] = {&scaled_tanh};

KILN_PLUGIN_EXPORT int kiln_plugin_entry(uint32_t host_abi_version, const kiln_plugin_class *const **out, int *count, char *err,
                                         size_t len)
{
    if (host_abi_version < 1) return fail(err, len, KILN_PLUGIN_ERR_ABI, "needs kiln plugin ABI 1 or newer");
    *out = classes;
    *count = 1;
    return KILN_PLUGIN_OK;
}
