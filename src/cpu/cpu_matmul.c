/* CPU reference kernels of the matmul family. */
#include "cpu.h"

const kiln_cpu_kernel kiln__cpu_matmul[] = {
    {0},
};
