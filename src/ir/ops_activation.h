/*
 * The activation family's parsed attributes and the rules its kernels share
 * with infer() (src/ir/ops_activation.c). Private to the schemas and the
 * backends.
 */
#ifndef KILN_OPS_ACTIVATION_H
#define KILN_OPS_ACTIVATION_H

#include "ir.h"

/*
 * One struct for every activation op, with the op's defaults applied; each
 * op reads the fields it has.
 */
typedef struct kiln_act_params {
    float alpha;          /* LeakyRelu 0.01, Elu 1, Selu 1.6732632, Celu 1, HardSigmoid 0.2, ThresholdedRelu 1 */
    float beta;           /* HardSigmoid 0.5 */
    float gamma;          /* Selu 1.050701 */
    float lambd;          /* Shrink 0.5 */
    float bias;           /* Shrink 0 */
    bool gelu_tanh;       /* Gelu approximate="tanh" rather than the erf form */
    /* Softmax, LogSoftmax, Hardmax: */
    int64_t axis;         /* 'axis': default 1 before opset 13, -1 from 13; not normalized */
    bool coerce_2d;       /* before opset 13: rows are [prod(dims[:axis]), prod(dims[axis:])], not dims[axis] */
    /* Clip: */
    bool clip_attrs;      /* before opset 11: the bounds are attributes, not inputs */
    float clip_min;       /* clip_attrs: 'min', default -FLT_MAX */
    float clip_max;       /* clip_attrs: 'max', default FLT_MAX */
    /* PRelu: */
    bool prelu_legacy;    /* before opset 7: a 1-D slope as long as dim 1 lies along the channels */
} kiln_act_params;

/*
 * PRelu: whether the slope lies along X's axis 1 (the pre-opset-7 per-channel
 * form) rather than broadcasting from the trailing dims. Works on symbolic
 * shapes (then says false unless the lengths are known to match).
 */
bool kiln__prelu_slope_on_channels(const kiln_act_params *p, const kiln_shape *x, const kiln_shape *slope);

#endif
