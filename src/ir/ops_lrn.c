/* Op schemas of the lrn family. */
#include "ir.h"

const kiln_op_schema kiln__ops_lrn[] = {
    {0},
};
