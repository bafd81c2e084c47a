/* Op schemas of the matmul family. */
#include "ir.h"

const kiln_op_schema kiln__ops_matmul[] = {
    {0},
};
