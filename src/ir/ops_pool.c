/* Op schemas of the pool family. */
#include "ir.h"

const kiln_op_schema kiln__ops_pool[] = {
    {0},
};
