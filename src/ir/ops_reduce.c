/* Op schemas of the reduce family. */
#include "ir.h"

const kiln_op_schema kiln__ops_reduce[] = {
    {0},
};
