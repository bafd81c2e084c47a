/* Op schemas of the movement family. */
#include "ir.h"

const kiln_op_schema kiln__ops_movement[] = {
    {0},
};
