/* Physical strides of a GPU tensor for a layout choice. */
#include "../cuda/cuda_backend.h"

void kiln__cuda_strides(kiln_cuda_tensor *t, kiln_layout layout)
{
    if (layout == KILN_LAYOUT_NHWC && t->rank == 4) {
        int64_t C = t->dims[1], H = t->dims[2], W = t->dims[3];
        t->strides[0] = H * W * C;
        t->strides[1] = 1;
        t->strides[2] = W * C;
        t->strides[3] = C;
        return;
    }
    int64_t s = 1;
    for (int i = t->rank - 1; i >= 0; i--) {
        t->strides[i] = s;
        s *= t->dims[i] > 0 ? t->dims[i] : 1;
    }
}
