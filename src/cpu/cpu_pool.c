/* CPU reference kernels of the pool family. */
#include "cpu.h"

const kiln_cpu_kernel kiln__cpu_pool[] = {
    {0},
};
