/* GPU ops of the pool family. */
#include "cuda_backend.h"

const kiln_cuda_op kiln__cuda_ops_pool[] = {
    {0},
};
