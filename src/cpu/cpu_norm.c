/* CPU reference kernels of the norm family. */
#include "cpu.h"

const kiln_cpu_kernel kiln__cpu_norm[] = {
    {0},
};
