/* CPU reference kernels of the movement family. */
#include "cpu.h"

const kiln_cpu_kernel kiln__cpu_movement[] = {
    {0},
};
