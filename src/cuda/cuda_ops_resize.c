/* GPU ops of the resize family. */
#include "cuda_backend.h"

const kiln_cuda_op kiln__cuda_ops_resize[] = {
    {0},
};
