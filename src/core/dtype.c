/* Element type names and sizes. */
#include "core.h"

const char *kiln_dtype_name(kiln_dtype dt)
{
    switch (dt) {
    case KILN_DT_FLOAT: return "float32";
    case KILN_DT_UINT8: return "uint8";
    case KILN_DT_INT8: return "int8";
    case KILN_DT_UINT16: return "uint16";
    case KILN_DT_INT16: return "int16";
    case KILN_DT_INT32: return "int32";
    case KILN_DT_INT64: return "int64";
    case KILN_DT_STRING: return "string";
    case KILN_DT_BOOL: return "bool";
    case KILN_DT_FLOAT16: return "float16";
    case KILN_DT_DOUBLE: return "float64";
    case KILN_DT_UINT32: return "uint32";
    case KILN_DT_UINT64: return "uint64";
    case KILN_DT_COMPLEX64: return "complex64";
    case KILN_DT_COMPLEX128: return "complex128";
    case KILN_DT_BFLOAT16: return "bfloat16";
    case KILN_DT_UNDEFINED: break;
    }
    return "undefined";
}

size_t kiln_dtype_size(kiln_dtype dt)
{
    switch (dt) {
    case KILN_DT_FLOAT: case KILN_DT_INT32: case KILN_DT_UINT32: return 4;
    case KILN_DT_UINT8: case KILN_DT_INT8: case KILN_DT_BOOL: return 1;
    case KILN_DT_UINT16: case KILN_DT_INT16: case KILN_DT_FLOAT16: case KILN_DT_BFLOAT16: return 2;
    case KILN_DT_INT64: case KILN_DT_DOUBLE: case KILN_DT_UINT64: return 8;
    default: return 0; /* string/complex: not supported by any backend */
    }
}
