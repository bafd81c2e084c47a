/* CPU reference kernels of the conv family. */
#include "cpu.h"

const kiln_cpu_kernel kiln__cpu_conv[] = {
    {0},
};
