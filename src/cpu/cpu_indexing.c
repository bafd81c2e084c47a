/* CPU reference kernels of the indexing family. */
#include "cpu.h"

const kiln_cpu_kernel kiln__cpu_indexing[] = {
    {0},
};
