/* CPU reference kernels of the reduce family. */
#include "cpu.h"

const kiln_cpu_kernel kiln__cpu_reduce[] = {
    {0},
};
