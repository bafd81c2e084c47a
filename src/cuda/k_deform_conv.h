/*
 * The deformable convolution launcher (k_deform_conv.cu) as its callers see
 * it (the DeformConv plugin, tests). Plain C, included by the .cu file too, so
 * the argument struct has one definition.
 *
 * ONNX DeformConv (opset 19), 2-D: X [N, C, H, W], W [M, C/group, kH, kW],
 * offset [N, offset_group*kH*kW*2, oH, oW] as (dy, dx) pairs per kernel tap,
 * optional mask [N, offset_group*kH*kW, oH, oW], optional B [M]. Samples
 * outside (-1, H) x (-1, W) read zero, as torchvision / mmcv.
 */
#ifndef KILN_K_DEFORM_CONV_H
#define KILN_K_DEFORM_CONV_H

#include <stdint.h>

enum { KDC_ACT_NONE = 0, KDC_ACT_RELU = 1, KDC_ACT_LEAKY = 2 };

typedef struct kdc_args {
    int dt; /* KILN_DT_FLOAT or KILN_DT_FLOAT16: every tensor has it */
    int64_t n, c, h, w;      /* X */
    int64_t m, oh, ow;       /* Y channels and spatial size */
    int64_t kh, kw;          /* kernel */
    int64_t sh, sw, ph, pw, dh, dw; /* strides, begin pads, dilations */
    int64_t group, offset_group;
    const void *x, *wt, *off, *mask, *bias; /* mask and bias may be NULL */
    void *y;
    /* strides in elements, in ONNX dim order (N, C, H, W); wts: (M, C/g, kH, kW) */
    int64_t xs[4], wts[4], offs[4], ms[4], ys[4];
    int64_t bs; /* bias stride */
    int act;    /* KDC_ACT_*: fused activation after the bias */
    float alpha; /* LeakyRelu slope */
    /* Tactic (0 .. KDC_TACTICS-1): 0: 64x128 tiles; 1: 64x64 tiles; 2: 64x64 tiles reading a
     * channel-contiguous copy of X made in the workspace first (when X is not NHWC already);
     * 3, 4, 5: as 0, 1, 2, software-pipelined (the next chunk's weights and offsets load while
     * this chunk is sampled and multiplied) with branch-free sampling (clamped addresses);
     * 6, 7, 8: the fast kernel for channel-contiguous X (NHWC; else X is copied to NHWC in the
     * workspace first), 64 output channels x 8x16 / 8x8 / 4x8 pixels per CTA, 1 / 2 / 4 taps per
     * K chunk (small tiles fill the GPU at small images), 16-byte corner loads, cp.async weights,
     * ldmatrix + mma.sync for fp16; 9, 10, 11: as 6, 7, 8, sampling from a copy of the X window
     * in shared memory (global memory for samples outside it); 12, 13: as 6, 7 and 14, 15: as
     * 9, 10, with the tile's offset and mask records staged in shared memory once (fp16, NHWC
     * records of at most 216 values, 16-byte aligned; else read as in 6-11); 16, 17, 18: as 9,
     * 10, 11 with the bilinear blend in half2 arithmetic for fp16 (as PyTorch's fp16 kernel;
     * fp32: as 9-11). Shapes the fast kernel does not take (channels per group or per offset
     * group not a multiple of 8 in fp16 / 4 in fp32, empty images) run tactic 3 or 4. */
    int tactic;
    void *ws; /* workspace, kiln__kdc_workspace(a) bytes, 16-byte aligned */
    size_t ws_bytes;
} kdc_args;

#define KDC_TACTICS 19

#ifdef __cplusplus
extern "C" {
#endif
/* Returns a cudaError_t as int (cudaErrorInvalidValue for arguments it refuses). */
int kiln__kdc_deform_conv(const kdc_args *a, void *stream);
/* Workspace bytes the launch needs for a's shapes, strides and tactic (pointers may be NULL). */
size_t kiln__kdc_workspace(const kdc_args *a);
/* cudaGetErrorString of a launcher result. */
const char *kiln__kdc_error_string(int rc);
/* A sticky CUDA error already pending before a launch (an earlier kernel's fault), else 0; clears a
 * non-sticky error an earlier call left behind. */
int kiln__kdc_pending_error(void);
#ifdef __cplusplus
}
#endif
#endif
