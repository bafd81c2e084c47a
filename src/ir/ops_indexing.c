/* Op schemas of the indexing family. */
#include "ir.h"

const kiln_op_schema kiln__ops_indexing[] = {
    {0},
};
