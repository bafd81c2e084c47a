/*
 * CPU reference kernels of the "fused" family (ops created by graph passes).
 *
 * kiln::FusedConv runs the Conv kernel on X, W, B and then applies the
 * epilogue y = act(y) * out_scale + z_scale * Z in place, or with
 * act_after_residual = 1, y = act(y * out_scale + z_scale * Z) (see ops_fused.c
 * for the definition). The epilogue does the same float operations, in the same
 * order, as the separate Relu/Mul/Add kernels would, so an optimized graph
 * matches the original one bit for bit in float32.
 *
 * Attributes are read from the node, with the defaults the schema documents;
 * the schema's parse and infer validated them and the inputs' shapes.
 */
#include "cpu.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { ACT_NONE, ACT_RELU, ACT_LEAKY, ACT_PRELU, ACT_SIGMOID, ACT_TANH, ACT_CLIP };

typedef struct epilogue {
    int act;
    bool after; /* activation after the residual add */
    double alpha, beta, out_scale, z_scale;
    const kiln_value *slope, *z;
    int64_t n, c, inner; /* y as [n, c, inner] */
} epilogue;

static int act_code(const char *s)
{
    static const char *const names[] = {"", "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Clip"};
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

/* The activation formulas are those of cpu_activation.c, for float (T=float) and double. */
#define EPILOGUE_BODY(T, EXP, TANH)                                                                         \
    do {                                                                                                    \
        T alpha = (T)e->alpha, beta = (T)e->beta, os = (T)e->out_scale, zs = (T)e->z_scale;                \
        for (int64_t b = 0; b < e->n; b++)                                                                  \
            for (int64_t ch = 0; ch < e->c; ch++) {                                                         \
                int64_t off = (b * e->c + ch) * e->inner;                                                   \
                T *py = y + off;                                                                            \
                T sl = slope ? slope[slope_n == 1 ? 0 : ch] : (T)0;                                         \
                for (int64_t i = 0; i < e->inner; i++) {                                                    \
                    T v = py[i];                                                                            \
                    if (e->after) {                                                                         \
                        if (e->out_scale != 1.0) v = v * os;                                                \
                        if (z) v = e->z_scale == 1.0 ? v + z[off + i] : v + zs * z[off + i];                \
                    }                                                                                       \
                    switch (e->act) {                                                                       \
                    case ACT_RELU: v = v > 0 ? v : (T)0; break;                                             \
                    case ACT_LEAKY: v = v >= 0 ? v : alpha * v; break;                                      \
                    case ACT_PRELU: v = v < 0 ? v * sl : v; break;                                          \
                    case ACT_SIGMOID:                                                                       \
                        if (v >= 0) {                                                                       \
                            v = (T)1 / ((T)1 + EXP(-v));                                                    \
                        } else {                                                                            \
                            T ex = EXP(v);                                                                  \
                            v = ex / ((T)1 + ex);                                                           \
                        }                                                                                   \
                        break;                                                                              \
                    case ACT_TANH: v = TANH(v); break;                                                      \
                    case ACT_CLIP:                                                                          \
                        if (v < alpha) v = alpha;                                                           \
                        if (v > beta) v = beta;                                                             \
                        break;                                                                              \
                    default: break;                                                                         \
                    }                                                                                       \
                    if (!e->after) {                                                                        \
                        if (e->out_scale != 1.0) v = v * os;                                                \
                        if (z) v = e->z_scale == 1.0 ? v + z[off + i] : v + zs * z[off + i];                \
                    }                                                                                       \
                    py[i] = v;                                                                              \
                }                                                                                           \
            }                                                                                               \
    } while (0)

static void epilogue_f32(const epilogue *e, float *y, const float *slope, int64_t slope_n, const float *z)
{
    EPILOGUE_BODY(float, expf, tanhf);
}

static void epilogue_f64(const epilogue *e, double *y, const double *slope, int64_t slope_n, const double *z)
{
    EPILOGUE_BODY(double, exp, tanh);
}

/* float16 / bfloat16: through a float copy of y (and of S and Z), computing in float. */
static kiln_status epilogue_half(const epilogue *e, kiln_value *y, int64_t slope_n)
{
    int64_t n = kiln__value_numel(y);
    float *fy = kiln__calloc((size_t)n, sizeof(float));
    float *fs = e->slope ? kiln__calloc((size_t)slope_n, sizeof(float)) : NULL;
    float *fz = e->z ? kiln__calloc((size_t)n, sizeof(float)) : NULL;
    kiln_status s = KILN_OK;
    if (!fy || (e->slope && !fs) || (e->z && !fz)) {
        s = KILN_ERR_OUT_OF_MEMORY;
    } else {
        for (int64_t i = 0; i < n; i++) fy[i] = (float)kiln__value_get_f64(y, i);
        for (int64_t i = 0; fs && i < slope_n; i++) fs[i] = (float)kiln__value_get_f64(e->slope, i);
        for (int64_t i = 0; fz && i < n; i++) fz[i] = (float)kiln__value_get_f64(e->z, i);
        epilogue_f32(e, fy, fs, slope_n, fz);
        for (int64_t i = 0; i < n; i++) kiln__value_set_f64(y, i, fy[i]);
    }
    free(fy);
    free(fs);
    free(fz);
    return s;
}

static kiln_status run_fused_conv(const kiln_node *node, const void *params, const kiln_value *const *in,
                                  kiln_value *out, kiln_err *err)
{
    const kiln_cpu_kernel *conv = kiln__cpu_kernel_find("", "Conv");
    if (!conv) return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (FusedConv): no Conv kernel", node->name);
    /* The node seen as a plain Conv; the params begin with Conv's (see ops_fused.c). */
    char conv_name[] = "Conv";
    kiln_node c = *node;
    c.op_type = conv_name;
    c.n_in = node->n_in < 3 ? node->n_in : 3;
    kiln_status s = conv->run(&c, params, in, out, err);
    if (s) return s;

    kiln_value *y = &out[0];
    epilogue e;
    memset(&e, 0, sizeof e);
    e.act = act_code(kiln__attr_string(node, "activation", ""));
    if (e.act < 0)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (FusedConv): unknown activation '%s'", node->name,
                          kiln__attr_string(node, "activation", ""));
    e.alpha = kiln__attr_float(node, "act_alpha", e.act == ACT_CLIP ? -INFINITY : 0.01f);
    e.beta = kiln__attr_float(node, "act_beta", INFINITY);
    e.out_scale = kiln__attr_float(node, "out_scale", 1.0f);
    e.z_scale = kiln__attr_float(node, "z_scale", 1.0f);
    e.after = kiln__attr_int(node, "act_after_residual", 0) != 0;
    e.slope = node->n_in > 3 ? in[3] : NULL;
    e.z = node->n_in > 4 ? in[4] : NULL;
    int r = y->shape.rank;
    if (r < 2)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (FusedConv): output has %d dims", node->name, r);
    e.n = y->shape.d[0].add;
    e.c = y->shape.d[1].add;
    e.inner = 1;
    for (int i = 2; i < r; i++) e.inner *= y->shape.d[i].add;
    int64_t n = kiln__value_numel(y), slope_n = 0;
    size_t es = kiln_dtype_size(y->dtype);
    if (e.act == ACT_PRELU && !e.slope)
        return kiln__fail(err, KILN_ERR_GRAPH, "node '%s' (FusedConv): PRelu without slope S", node->name);
    if (e.act != ACT_PRELU) e.slope = NULL;
    if (e.slope) {
        slope_n = kiln__value_numel(e.slope);
        if (e.slope->dtype != y->dtype || (slope_n != 1 && slope_n != e.c) ||
            e.slope->nbytes < (size_t)slope_n * es)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (FusedConv): slope S has %lld values for %lld channels",
                              node->name, (long long)slope_n, (long long)e.c);
    }
    if (e.z && (e.z->dtype != y->dtype || kiln__value_numel(e.z) != n || e.z->nbytes < (size_t)n * es))
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (FusedConv): residual Z does not match the output", node->name);
    if (e.act == ACT_NONE && e.out_scale == 1.0 && !e.z) return KILN_OK;
    switch (y->dtype) {
    case KILN_DT_FLOAT:
        epilogue_f32(&e, y->data, e.slope ? e.slope->data : NULL, slope_n, e.z ? e.z->data : NULL);
        return KILN_OK;
    case KILN_DT_DOUBLE:
        epilogue_f64(&e, y->data, e.slope ? e.slope->data : NULL, slope_n, e.z ? e.z->data : NULL);
        return KILN_OK;
    case KILN_DT_FLOAT16:
    case KILN_DT_BFLOAT16:
        s = epilogue_half(&e, y, slope_n);
        if (s) return kiln__fail(err, s, "node '%s' (FusedConv): out of memory", node->name);
        return KILN_OK;
    default:
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (FusedConv): type %s is not supported", node->name,
                          kiln_dtype_name(y->dtype));
    }
}

const kiln_cpu_kernel kiln__cpu_fused[] = {
    {"FusedConv", "kiln", run_fused_conv},
    {0},
};
