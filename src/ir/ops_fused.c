/*
 * Op schemas of the "fused" family: ops kiln's graph passes create, in the
 * "kiln" domain. They never come from ONNX files.
 *
 * kiln::FusedConv — a Conv with its epilogue:
 *   y = act(conv(X, W) + B) * out_scale + z_scale * Z
 * or, with act_after_residual = 1 (ResNet's relu(conv + b + z)):
 *   y = act((conv(X, W) + B) * out_scale + z_scale * Z)
 * Inputs:  X, W, B (optional), S (optional: PRelu slope, one value per output
 *          channel or a single value, any shape holding that many, e.g. [C] or
 *          [C,1,1]; indexed by channel), Z (optional residual, y's shape and type).
 * Attributes: every Conv attribute (auto_pad, dilations, group, kernel_shape,
 *          pads, strides) plus
 *   activation  STRING  "" (none), "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Clip"
 *   act_alpha   FLOAT   LeakyRelu slope (default 0.01), Clip min (default -inf)
 *   act_beta    FLOAT   Clip max (default +inf)
 *   out_scale   FLOAT   default 1
 *   z_scale     FLOAT   default 1
 *   act_after_residual INT  0 (default) or 1: where the activation applies, above
 *   fused_nodes STRING  the ONNX node names merged into it, comma separated (profiling)
 * LeakyRelu(x) = x >= 0 ? x : alpha*x; PRelu(x) = x < 0 ? S[c]*x : x;
 * Clip(x) = min(max(x, alpha), beta), NaN passing through.
 *
 * The params begin with the Conv schema's params (same layout), so a
 * FusedConv's params can be handed to anything that takes Conv's.
 */
#include "ir.h"
#include <math.h>
#include <stddef.h>
#include <string.h>

/* Room for the Conv schema's params; parse fails loudly if Conv's ever outgrow it. */
#define CONV_PARAMS_ROOM 2048

typedef struct fused_conv_params {
    _Alignas(max_align_t) unsigned char conv[CONV_PARAMS_ROOM];
    int activation; /* index into act_names */
    int after;      /* act_after_residual */
    float alpha, beta, out_scale, z_scale;
} fused_conv_params;

static const char *const act_names[] = {"", "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Clip"};
enum { ACT_NONE, ACT_RELU, ACT_LEAKY, ACT_PRELU, ACT_SIGMOID, ACT_TANH, ACT_CLIP, ACT_COUNT };

/* The node seen as a plain Conv: first three inputs, same attributes and name. */
static kiln_node conv_view(const kiln_node *node, char *conv_name)
{
    kiln_node c = *node;
    c.op_type = conv_name;
    c.n_in = node->n_in < 3 ? node->n_in : 3;
    return c;
}

static kiln_status fused_parse(const kiln_node *node, void *pp, kiln_err *err)
{
    fused_conv_params *p = pp;
    const kiln_op_schema *conv = kiln__op_schema_find("", "Conv");
    if (!conv || conv->params_size > sizeof p->conv)
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (FusedConv): the Conv schema is missing or too large", node->name);
    char conv_name[] = "Conv";
    kiln_node c = conv_view(node, conv_name);
    kiln_status s = conv->parse_attrs ? conv->parse_attrs(&c, p->conv, err) : KILN_OK;
    if (s) return s;
    static const char *const floats[] = {"act_alpha", "act_beta", "out_scale", "z_scale"};
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++)
        if ((s = kiln__attr_expect(node, floats[i], KILN_ATTR_FLOAT, err))) return s;
    if ((s = kiln__attr_expect(node, "activation", KILN_ATTR_STRING, err))) return s;
    if ((s = kiln__attr_expect(node, "fused_nodes", KILN_ATTR_STRING, err))) return s;
    if ((s = kiln__attr_expect(node, "act_after_residual", KILN_ATTR_INT, err))) return s;
    int64_t after = kiln__attr_int(node, "act_after_residual", 0);
    if (after != 0 && after != 1)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (FusedConv): act_after_residual is %lld, must be 0 or 1",
                          node->name, (long long)after);
    p->after = (int)after;
    const char *act = kiln__attr_string(node, "activation", "");
    p->activation = -1;
    for (int i = 0; i < ACT_COUNT; i++)
        if (!strcmp(act, act_names[i])) p->activation = i;
    if (p->activation < 0)
        return kiln__fail(err, KILN_ERR_INVALID_ARG,
                          "node '%s' (FusedConv): activation '%s' is not one of \"\", Relu, LeakyRelu, PRelu, Sigmoid, "
                          "Tanh, Clip",
                          node->name, act);
    float alpha_def = p->activation == ACT_CLIP ? -INFINITY : 0.01f;
    p->alpha = kiln__attr_float(node, "act_alpha", alpha_def);
    p->beta = kiln__attr_float(node, "act_beta", INFINITY);
    p->out_scale = kiln__attr_float(node, "out_scale", 1.0f);
    p->z_scale = kiln__attr_float(node, "z_scale", 1.0f);
    bool has_s = node->n_in > 3 && node->in[3] >= 0;
    if ((p->activation == ACT_PRELU) != has_s)
        return kiln__fail(err, KILN_ERR_GRAPH, "node '%s' (FusedConv): %s", node->name,
                          has_s ? "input S (slope) is given but activation is not PRelu"
                                : "activation PRelu needs input S (slope)");
    return KILN_OK;
}

static kiln_status fused_infer(const kiln_node *node, const void *pp, const kiln_value *const *in, kiln_value *out,
                               kiln_err *err)
{
    const fused_conv_params *p = pp;
    const kiln_op_schema *conv = kiln__op_schema_find("", "Conv");
    if (!conv) return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (FusedConv): no Conv schema", node->name);
    char conv_name[] = "Conv";
    kiln_node c = conv_view(node, conv_name);
    kiln_status s = conv->infer(&c, p->conv, in, out, err);
    if (s) return s;
    const kiln_value *y = &out[0];
    const kiln_value *sl = node->n_in > 3 ? in[3] : NULL, *z = node->n_in > 4 ? in[4] : NULL;
    if (sl) {
        if (sl->dtype && y->dtype && sl->dtype != y->dtype)
            return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (FusedConv): slope S is %s, output is %s", node->name,
                              kiln_dtype_name(sl->dtype), kiln_dtype_name(y->dtype));
        int64_t ns = kiln__shape_numel(&sl->shape);
        kiln_dim ch = y->shape.rank >= 2 ? y->shape.d[1] : kiln__dim_unknown();
        if (ns >= 0 && ns != 1 && kiln__dim_is_const(ch) && ns != ch.add)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (FusedConv): slope S has %lld values, output has %lld channels",
                              node->name, (long long)ns, (long long)ch.add);
    }
    if (z) {
        if (z->dtype && y->dtype && z->dtype != y->dtype)
            return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (FusedConv): residual Z is %s, output is %s", node->name,
                              kiln_dtype_name(z->dtype), kiln_dtype_name(y->dtype));
        if (z->shape.rank >= 0 && y->shape.rank >= 0) {
            if (z->shape.rank != y->shape.rank)
                return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (FusedConv): residual Z has %d dims, output %d", node->name,
                                  z->shape.rank, y->shape.rank);
            for (int i = 0; i < y->shape.rank; i++) {
                kiln_dim a = z->shape.d[i], b = y->shape.d[i];
                if (kiln__dim_is_const(a) && kiln__dim_is_const(b) && a.add != b.add)
                    return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (FusedConv): residual Z dim %d is %lld, output's is %lld",
                                      node->name, i, (long long)a.add, (long long)b.add);
            }
        }
    }
    return KILN_OK;
}

const kiln_op_schema kiln__ops_fused[] = {
    {"FusedConv", "kiln", 1, 2, 5, 1, 1, sizeof(fused_conv_params), fused_parse, fused_infer},
    {0},
};
