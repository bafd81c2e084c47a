/* Shared between the ONNX importer's files: TensorProto decoding. */
#ifndef KILN_ONNX_INTERNAL_H
#define KILN_ONNX_INTERNAL_H

#include "../core/core.h"
#include "kiln_onnx.pb-c.h"

/* Name of an ONNX data type code for messages ("float8e4m3fn", "int64", "type 99"). */
const char *kiln__onnx_dtype_name(int32_t code, char *buf, size_t len);

/*
 * Maps an ONNX data type code to a kiln dtype whose elements kiln can hold
 * (every numeric type except complex; not string). Fails naming `what`
 * ("input 'x'", "initializer 'w'") and the type when it is not one of them.
 */
kiln_status kiln__onnx_dtype(int32_t code, const char *what, kiln_dtype *out, kiln_err *err);

/*
 * Decodes a TensorProto into out: dtype, dims and a freshly allocated,
 * little-endian-decoded, row-major data buffer (caller releases it with
 * kiln_host_tensor_release). External data is read from files under
 * base_dir; base_dir NULL refuses external data. `what` names the tensor in
 * errors ("initializer 'conv.weight'"). On failure out is zeroed.
 */
kiln_status kiln__onnx_tensor_to_host(const Kiln__Onnx__TensorProto *tp, const char *base_dir,
                                      const char *what, kiln_host_tensor *out, kiln_err *err);

/*
 * Refuses a string field with a NUL byte in the protobuf bytes `buf` (already accepted by the
 * unpacker for `desc`), naming the field: protobuf-c would truncate such a name silently.
 * `what` begins the message ("'m.onnx' is not a valid ONNX model").
 */
kiln_status kiln__onnx_check_names(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                                   const char *what, kiln_err *err);

/* Folder part of a file path ("." when there is none); caller frees. NULL on OOM. */
char *kiln__onnx_dirname(const char *path);

#endif
