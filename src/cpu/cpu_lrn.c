/* CPU reference kernels of the lrn family. */
#include "cpu.h"

const kiln_cpu_kernel kiln__cpu_lrn[] = {
    {0},
};
