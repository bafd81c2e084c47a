/* GPU ops of the reduce family. */
#include "cuda_backend.h"

const kiln_cuda_op kiln__cuda_ops_reduce[] = {
    {0},
};
