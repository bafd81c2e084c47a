/* Convenience builders over kiln_network_add_node, for building networks by hand in C. */
#include "ir.h"
#include <stdio.h>

kiln_status kiln_network_add_conv(kiln_network *net, const char *name, const char *input,
                                  const char *weight, const char *bias, int kh, int kw, int stride,
                                  int pad, int dilation, int groups, const char *output)
{
    const char *in[3] = {input, weight, bias};
    int64_t ks[2] = {kh, kw}, st[2] = {stride, stride}, pads[4] = {pad, pad, pad, pad}, dil[2] = {dilation, dilation};
    kiln_attr_value attrs[5] = {
        {.name = "kernel_shape", .type = KILN_ATTR_INTS, .ints = ks, .n = 2},
        {.name = "strides", .type = KILN_ATTR_INTS, .ints = st, .n = 2},
        {.name = "pads", .type = KILN_ATTR_INTS, .ints = pads, .n = 4},
        {.name = "dilations", .type = KILN_ATTR_INTS, .ints = dil, .n = 2},
        {.name = "group", .type = KILN_ATTR_INT, .i = groups},
    };
    return kiln_network_add_node(net, name, "Conv", "", bias ? 3 : 2, in, 1, &output, 5, attrs);
}

kiln_status kiln_network_add_activation(kiln_network *net, const char *name, const char *input,
                                        kiln_activation act, float alpha, const char *output)
{
    kiln_attr_value a = {.name = "alpha", .type = KILN_ATTR_FLOAT, .f = alpha};
    switch (act) {
    case KILN_ACT_RELU: return kiln_network_add_node(net, name, "Relu", "", 1, &input, 1, &output, 0, NULL);
    case KILN_ACT_LEAKY_RELU: return kiln_network_add_node(net, name, "LeakyRelu", "", 1, &input, 1, &output, 1, &a);
    case KILN_ACT_SIGMOID: return kiln_network_add_node(net, name, "Sigmoid", "", 1, &input, 1, &output, 0, NULL);
    case KILN_ACT_TANH: return kiln_network_add_node(net, name, "Tanh", "", 1, &input, 1, &output, 0, NULL);
    case KILN_ACT_PRELU: break;
    }
    if (net) snprintf(net->last_error, sizeof net->last_error, "node '%s': PReLU needs a slope tensor: use kiln_network_add_prelu", name ? name : "");
    return KILN_ERR_INVALID_ARG;
}

kiln_status kiln_network_add_prelu(kiln_network *net, const char *name, const char *input,
                                   const char *slope, const char *output)
{
    const char *in[2] = {input, slope};
    return kiln_network_add_node(net, name, "PRelu", "", 2, in, 1, &output, 0, NULL);
}

kiln_status kiln_network_add_elementwise(kiln_network *net, const char *name, const char *op_type,
                                         const char *a, const char *b, const char *output)
{
    const char *in[2] = {a, b};
    return kiln_network_add_node(net, name, op_type, "", 2, in, 1, &output, 0, NULL);
}

kiln_status kiln_network_add_concat(kiln_network *net, const char *name, int n,
                                    const char *const *inputs, int axis, const char *output)
{
    kiln_attr_value a = {.name = "axis", .type = KILN_ATTR_INT, .i = axis};
    return kiln_network_add_node(net, name, "Concat", "", n, inputs, 1, &output, 1, &a);
}

kiln_status kiln_network_add_pixel_shuffle(kiln_network *net, const char *name, const char *input,
                                           int upscale, const char *output)
{
    /* PyTorch's PixelShuffle is DepthToSpace in CRD order. */
    kiln_attr_value a[2] = {{.name = "blocksize", .type = KILN_ATTR_INT, .i = upscale},
                            {.name = "mode", .type = KILN_ATTR_STRING, .s = "CRD", .s_len = 3}};
    return kiln_network_add_node(net, name, "DepthToSpace", "", 1, &input, 1, &output, 2, a);
}

kiln_status kiln_network_add_resize_nearest(kiln_network *net, const char *name, const char *input,
                                            float scale, const char *output)
{
    if (!net || !name) return KILN_ERR_INVALID_ARG;
    /* scales become a constant tensor named after the node */
    char sname[300];
    snprintf(sname, sizeof sname, "%s.scales", name);
    float scales[4] = {1, 1, scale, scale};
    int64_t dims[1] = {4};
    kiln_status s = kiln_network_add_constant(net, sname, KILN_DT_FLOAT, 1, dims, scales, sizeof scales);
    if (s) return s;
    const char *in[3] = {input, "", sname};
    kiln_attr_value a[2] = {{.name = "mode", .type = KILN_ATTR_STRING, .s = "nearest", .s_len = 7},
                            {.name = "coordinate_transformation_mode", .type = KILN_ATTR_STRING, .s = "asymmetric", .s_len = 10}};
    return kiln_network_add_node(net, name, "Resize", "", 3, in, 1, &output, 2, a);
}
