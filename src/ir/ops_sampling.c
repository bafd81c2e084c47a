/* Op schemas of the sampling family. */
#include "ir.h"

const kiln_op_schema kiln__ops_sampling[] = {
    {0},
};
