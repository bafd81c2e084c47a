/*
 * What a GPU kernel sees of a tensor: a device pointer, an element type, the
 * logical (ONNX) dims and the physical strides in elements. Layout is only a
 * choice of strides: NCHW is row-major; NHWC has stride 1 on C. Kernels index
 * through strides, so every op works in either layout and the builder can pick
 * NHWC for convolution-heavy graphs without inserting reformat layers.
 * Plain C, shared by host C files and .cu files.
 */
#ifndef KILN_CUDA_TENSOR_H
#define KILN_CUDA_TENSOR_H

#include "kiln.h"
#include <stdint.h>

typedef struct kiln_cuda_tensor {
    void *ptr;
    kiln_dtype dtype;
    int rank;
    int64_t dims[KILN_MAX_DIMS];
    int64_t strides[KILN_MAX_DIMS];
} kiln_cuda_tensor;

typedef enum kiln_layout { KILN_LAYOUT_ROW_MAJOR = 0, KILN_LAYOUT_NHWC = 1 } kiln_layout;

#endif
