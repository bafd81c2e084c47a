/* Op schemas of the norm family. */
#include "ir.h"

const kiln_op_schema kiln__ops_norm[] = {
    {0},
};
