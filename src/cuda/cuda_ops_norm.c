/* GPU ops of the norm family. */
#include "cuda_backend.h"

const kiln_cuda_op kiln__cuda_ops_norm[] = {
    {0},
};
