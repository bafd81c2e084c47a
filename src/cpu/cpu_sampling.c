/* CPU reference kernels of the sampling family. */
#include "cpu.h"

const kiln_cpu_kernel kiln__cpu_sampling[] = {
    {0},
};
