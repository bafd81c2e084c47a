/* CPU reference kernels of the activation family. */
#include "cpu.h"

const kiln_cpu_kernel kiln__cpu_activation[] = {
    {0},
};
