/* CPU reference kernels of the resize family. */
#include "cpu.h"

const kiln_cpu_kernel kiln__cpu_resize[] = {
    {0},
};
