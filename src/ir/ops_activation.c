/* Op schemas of the activation family. */
#include "ir.h"

const kiln_op_schema kiln__ops_activation[] = {
    {0},
};
