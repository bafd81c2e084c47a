/*
 * TensorProto -> host tensor: every ONNX storage form (typed repeated fields,
 * raw_data, external files), checked against the declared dims before any
 * byte is trusted. Also the .pb test-data reader.
 */
/* realpath() is an X/Open interface. */
#define _XOPEN_SOURCE 700
#include "onnx_internal.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Test-data .pb files hold one tensor; this is far above any we read. */
#define PB_MAX_FILE_BYTES ((uint64_t)16 << 30)

const char *kiln__onnx_dtype_name(int32_t code, char *buf, size_t len)
{
    static const char *const names[] = {
        "undefined", "float32", "uint8", "int8", "uint16", "int16", "int32", "int64",
        "string", "bool", "float16", "float64", "uint32", "uint64", "complex64", "complex128",
        "bfloat16", "float8e4m3fn", "float8e4m3fnuz", "float8e5m2", "float8e5m2fnuz", "uint4",
        "int4", "float4e2m1", "float8e8m0", "uint2", "int2",
    };
    if (code >= 0 && (size_t)code < sizeof names / sizeof names[0]) return names[code];
    snprintf(buf, len, "type %d", (int)code);
    return buf;
}

static size_t elem_size(int32_t code)
{
    if (code <= KILN_DT_UNDEFINED || code > KILN_DT_BFLOAT16) return 0;
    return kiln_dtype_size((kiln_dtype)code);
}

kiln_status kiln__onnx_dtype(int32_t code, const char *what, kiln_dtype *out, kiln_err *err)
{
    char buf[32];
    if (elem_size(code) == 0) {
        if (code == KILN_DT_UNDEFINED)
            return kiln__fail(err, KILN_ERR_PARSE, "%s has no data type", what);
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "unsupported: %s has data type %s",
                          what, kiln__onnx_dtype_name(code, buf, sizeof buf));
    }
    *out = (kiln_dtype)code;
    return KILN_OK;
}

char *kiln__onnx_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return kiln__strdup(".");
    if (slash == path) return kiln__strdup("/");
    return kiln__strndup(path, (size_t)(slash - path));
}

static bool host_is_little_endian(void)
{
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* File data is little-endian; on a big-endian host swap each element in place. */
static void from_little_endian(uint8_t *data, size_t nbytes, size_t esize)
{
    if (esize == 1 || host_is_little_endian()) return;
    for (size_t off = 0; off + esize <= nbytes; off += esize)
        for (size_t i = 0; i < esize / 2; i++) {
            uint8_t t = data[off + i];
            data[off + i] = data[off + esize - 1 - i];
            data[off + esize - 1 - i] = t;
        }
}

/* Kernels rely on bool bytes being exactly 0 or 1. */
static void normalize_bool(kiln_dtype dt, uint8_t *data, size_t n)
{
    if (dt != KILN_DT_BOOL) return;
    for (size_t i = 0; i < n; i++) data[i] = data[i] != 0;
}

/* Strict decimal for external_data offset/length: digits only, no overflow. */
static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s) return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* A location must stay inside the model's folder: relative, with no ".." part. */
static bool location_is_safe(const char *loc)
{
    if (!*loc || loc[0] == '/' || loc[0] == '\\') return false;
    /* "C:..." would be absolute on Windows; refuse it everywhere for the same files. */
    if (((loc[0] >= 'a' && loc[0] <= 'z') || (loc[0] >= 'A' && loc[0] <= 'Z')) && loc[1] == ':')
        return false;
    const char *p = loc;
    while (*p) {
        size_t n = strcspn(p, "/\\");
        if (n == 2 && p[0] == '.' && p[1] == '.') return false;
        p += n;
        if (*p) p++;
    }
    return true;
}

/* Checks the location, the file and offset/length against the tensor's nbytes first, and only
 * then allocates *dst: dims that lie (petabytes) must give "file too short", not an allocation. */
static kiln_status read_external(const Kiln__Onnx__TensorProto *tp, const char *base_dir,
                                 const char *what, size_t nbytes, uint8_t **dst, kiln_err *err)
{
    *dst = NULL;
    const char *location = NULL;
    uint64_t offset = 0, length = 0;
    bool has_length = false;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Kiln__Onnx__StringStringEntryProto *e = tp->external_data[i];
        const char *key = e->key ? e->key : "";
        const char *val = e->value ? e->value : "";
        if (!strcmp(key, "location")) {
            location = val;
        } else if (!strcmp(key, "offset")) {
            if (!parse_u64(val, &offset))
                return kiln__fail(err, KILN_ERR_PARSE, "%s: external data offset '%s' is not a number", what, val);
        } else if (!strcmp(key, "length")) {
            if (!parse_u64(val, &length))
                return kiln__fail(err, KILN_ERR_PARSE, "%s: external data length '%s' is not a number", what, val);
            has_length = true;
        }
    }
    if (!location || !*location)
        return kiln__fail(err, KILN_ERR_PARSE, "%s: external data has no location", what);
    if (!base_dir)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "%s: external data file '%s' cannot be located (no model folder)", what, location);
    if (!location_is_safe(location))
        return kiln__fail(err, KILN_ERR_PARSE, "%s: external data location '%s' leaves the model's folder", what, location);
    if (has_length && length != (uint64_t)nbytes)
        return kiln__fail(err, KILN_ERR_SHAPE, "%s: external data length %llu does not match its shape (%zu bytes)",
                          what, (unsigned long long)length, nbytes);

    size_t plen = strlen(base_dir) + strlen(location) + 2;
    char *path = kiln__malloc(plen);
    if (!path) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    snprintf(path, plen, "%s/%s", base_dir, location);

    kiln_status st = KILN_OK;
    char *real_dir = realpath(base_dir, NULL);
    char *real_file = realpath(path, NULL);
    FILE *f = NULL;
    if (!real_file) {
        st = kiln__fail(err, errno == ENOENT ? KILN_ERR_NOT_FOUND : KILN_ERR_IO,
                        "%s: external data file '%s' cannot be opened: %s", what, path, strerror(errno));
        goto done;
    }
    /* A symbolic link must not lead out of the folder either. */
    size_t dl = real_dir ? strlen(real_dir) : 0;
    if (!real_dir ||
        !(strncmp(real_file, real_dir, dl) == 0 && (real_file[dl] == '/' || (dl == 1 && real_dir[0] == '/')))) {
        st = kiln__fail(err, KILN_ERR_PARSE, "%s: external data file '%s' resolves outside the model's folder", what, path);
        goto done;
    }
    f = fopen(real_file, "rb");
    struct stat sb;
    if (!f || fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = kiln__fail(err, KILN_ERR_IO, "%s: external data file '%s' is not a readable file", what, path);
        goto done;
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    if (offset > fsize || fsize - offset < (uint64_t)nbytes) {
        st = kiln__fail(err, KILN_ERR_IO,
                        "%s: external data file '%s' is too short (%llu bytes; the tensor needs %zu at offset %llu)",
                        what, path, (unsigned long long)fsize, nbytes, (unsigned long long)offset);
        goto done;
    }
    if (offset > (uint64_t)LLONG_MAX || fseeko(f, (off_t)offset, SEEK_SET) != 0) {
        st = kiln__fail(err, KILN_ERR_IO, "%s: cannot seek in external data file '%s'", what, path);
        goto done;
    }
    *dst = kiln__malloc(nbytes);
    if (!*dst) {
        st = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu bytes from external data file '%s'",
                        what, nbytes, path);
        goto done;
    }
    if (nbytes && fread(*dst, 1, nbytes, f) != nbytes) {
        st = kiln__fail(err, KILN_ERR_IO, "%s: short read from external data file '%s'", what, path);
        free(*dst);
        *dst = NULL;
    }
done:
    if (f) fclose(f);
    free(real_dir);
    free(real_file);
    free(path);
    return st;
}

/* Which typed repeated field holds a given dtype (ONNX's rules). */
typedef enum { F_FLOAT, F_INT32, F_INT64, F_DOUBLE, F_UINT64 } typed_field;

static typed_field field_for(kiln_dtype dt)
{
    switch (dt) {
    case KILN_DT_FLOAT: return F_FLOAT;
    case KILN_DT_INT64: return F_INT64;
    case KILN_DT_DOUBLE: return F_DOUBLE;
    case KILN_DT_UINT32: case KILN_DT_UINT64: return F_UINT64;
    default: return F_INT32; /* int8/16/32, uint8/16, bool, float16, bfloat16 */
    }
}

static const char *const field_names[] = {"float_data", "int32_data", "int64_data", "double_data", "uint64_data"};

static size_t field_count(const Kiln__Onnx__TensorProto *tp, typed_field f)
{
    switch (f) {
    case F_FLOAT: return tp->n_float_data;
    case F_INT32: return tp->n_int32_data;
    case F_INT64: return tp->n_int64_data;
    case F_DOUBLE: return tp->n_double_data;
    case F_UINT64: return tp->n_uint64_data;
    }
    return 0;
}

static void copy_typed(const Kiln__Onnx__TensorProto *tp, kiln_dtype dt, uint8_t *dst, size_t n)
{
    if (n == 0) return; /* the field's array may be NULL */
    switch (dt) {
    case KILN_DT_FLOAT: memcpy(dst, tp->float_data, n * sizeof(float)); return;
    case KILN_DT_INT64: memcpy(dst, tp->int64_data, n * sizeof(int64_t)); return;
    case KILN_DT_DOUBLE: memcpy(dst, tp->double_data, n * sizeof(double)); return;
    case KILN_DT_UINT64: memcpy(dst, tp->uint64_data, n * sizeof(uint64_t)); return;
    case KILN_DT_INT32: memcpy(dst, tp->int32_data, n * sizeof(int32_t)); return;
    case KILN_DT_UINT32:
        for (size_t i = 0; i < n; i++) {
            uint32_t v = (uint32_t)tp->uint64_data[i];
            memcpy(dst + 4 * i, &v, 4);
        }
        return;
    case KILN_DT_UINT8: case KILN_DT_INT8:
        for (size_t i = 0; i < n; i++) dst[i] = (uint8_t)(uint32_t)tp->int32_data[i];
        return;
    case KILN_DT_BOOL:
        for (size_t i = 0; i < n; i++) dst[i] = tp->int32_data[i] != 0;
        return;
    default: /* 16-bit types: the low 16 bits of each int32 (bit patterns for float16/bfloat16) */
        for (size_t i = 0; i < n; i++) {
            uint16_t v = (uint16_t)(uint32_t)tp->int32_data[i];
            memcpy(dst + 2 * i, &v, 2);
        }
        return;
    }
}

kiln_status kiln__onnx_tensor_to_host(const Kiln__Onnx__TensorProto *tp, const char *base_dir,
                                      const char *what, kiln_host_tensor *out, kiln_err *err)
{
    memset(out, 0, sizeof *out);
    if (!tp) return kiln__fail(err, KILN_ERR_PARSE, "%s: missing tensor", what);
    if (tp->segment)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "unsupported: %s is stored in segments", what);
    kiln_dtype dt;
    kiln_status st = kiln__onnx_dtype(tp->has_data_type ? tp->data_type : 0, what, &dt, err);
    if (st) return st;
    size_t esize = elem_size(dt);
    if (tp->n_dims > KILN_MAX_DIMS)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "unsupported: %s has %zu dims (at most %d)", what,
                          tp->n_dims, KILN_MAX_DIMS);
    /* The product of the non-zero dims must fit int64 even when another dim is 0: every later
     * size computation (kiln_host_tensor_numel, shape inference) multiplies them all. */
    int64_t nz = 1;
    bool has_zero = false;
    for (size_t i = 0; i < tp->n_dims; i++) {
        int64_t d = tp->dims[i];
        if (d < 0)
            return kiln__fail(err, KILN_ERR_SHAPE, "%s: dimension %zu is negative (%lld)", what, i, (long long)d);
        if (d == 0) {
            has_zero = true;
            continue;
        }
        if (nz > INT64_MAX / d) {
            char dims[KILN_MAX_DIMS * 22] = "";
            size_t pos = 0;
            for (size_t k = 0; k < tp->n_dims && pos < sizeof dims; k++)
                pos += (size_t)snprintf(dims + pos, sizeof dims - pos, "%s%lld", k ? "," : "", (long long)tp->dims[k]);
            return kiln__fail(err, KILN_ERR_LIMIT, "%s: element count overflows (dims [%s])", what, dims);
        }
        nz *= d;
    }
    if (!has_zero && (uint64_t)nz > SIZE_MAX)
        return kiln__fail(err, KILN_ERR_LIMIT, "%s: element count overflows", what);
    size_t numel = has_zero ? 0 : (size_t)nz;
    size_t nbytes;
    if (kiln__mul_overflow(numel, esize, &nbytes) || nbytes > (size_t)INT64_MAX)
        return kiln__fail(err, KILN_ERR_LIMIT, "%s: byte size overflows", what);

    bool external = tp->has_data_location && tp->data_location == KILN__ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    if (tp->has_data_location && tp->data_location != 0 && !external)
        return kiln__fail(err, KILN_ERR_PARSE, "%s: unknown data_location %d", what, (int)tp->data_location);

    /* Where the data is, checked against the dims before allocating anything. */
    typed_field want = field_for(dt);
    bool use_raw = tp->has_raw_data && (tp->raw_data.len > 0 || field_count(tp, want) == 0);
    if (!external) {
        for (int f = F_FLOAT; f <= F_UINT64; f++)
            if ((typed_field)f != want && field_count(tp, (typed_field)f) > 0)
                return kiln__fail(err, KILN_ERR_PARSE, "%s: has %s but its data type is %s", what,
                                  field_names[f], kiln_dtype_name(dt));
        if (use_raw) {
            if (tp->raw_data.len != nbytes)
                return kiln__fail(err, KILN_ERR_SHAPE, "%s: raw_data has %zu bytes, its shape needs %zu",
                                  what, tp->raw_data.len, nbytes);
        } else if (field_count(tp, want) != numel) {
            if (field_count(tp, want) == 0)
                return kiln__fail(err, KILN_ERR_PARSE, "%s: has no data (its shape needs %zu elements)", what, numel);
            return kiln__fail(err, KILN_ERR_SHAPE, "%s: %s has %zu elements, its shape needs %zu", what,
                              field_names[want], field_count(tp, want), numel);
        }
    }

    uint8_t *data = NULL;
    if (external) {
        st = read_external(tp, base_dir, what, nbytes, &data, err);
        if (st) return st;
        from_little_endian(data, nbytes, esize);
    } else if (!(data = kiln__malloc(nbytes))) {
        return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu bytes", what, nbytes);
    } else if (use_raw) {
        if (nbytes) memcpy(data, tp->raw_data.data, nbytes);
        from_little_endian(data, nbytes, esize);
    } else {
        copy_typed(tp, dt, data, numel);
    }
    normalize_bool(dt, data, nbytes);

    snprintf(out->name, sizeof out->name, "%s", tp->name ? tp->name : "");
    out->dtype = dt;
    out->rank = (int)tp->n_dims;
    for (size_t i = 0; i < tp->n_dims; i++) out->dims[i] = tp->dims[i];
    out->data = data;
    out->nbytes = nbytes;
    return KILN_OK;
}

kiln_status kiln_tensor_read_pb(const char *path, kiln_host_tensor *out)
{
    kiln_err err = {{0}};
    if (!out) {
        kiln__set_last_error("kiln_tensor_read_pb: out is NULL");
        return KILN_ERR_INVALID_ARG;
    }
    memset(out, 0, sizeof *out);
    if (!path) {
        kiln__set_last_error("kiln_tensor_read_pb: path is NULL");
        return KILN_ERR_INVALID_ARG;
    }
    uint8_t *bytes = NULL;
    size_t len = 0;
    kiln_status st = kiln__read_file(path, PB_MAX_FILE_BYTES, &bytes, &len, &err);
    if (st) {
        kiln__set_last_error(err.msg);
        return st;
    }
    Kiln__Onnx__TensorProto *tp = kiln__onnx__tensor_proto__unpack(NULL, len, bytes);
    if (!tp) {
        free(bytes);
        kiln__fail(&err, KILN_ERR_PARSE, "'%s' is not a valid TensorProto file: protobuf parse failed", path);
        kiln__set_last_error(err.msg);
        return KILN_ERR_PARSE;
    }
    char what[512];
    snprintf(what, sizeof what, "'%.480s' is not a valid TensorProto file", path);
    st = kiln__onnx_check_names(&kiln__onnx__tensor_proto__descriptor, bytes, len, what, &err);
    free(bytes);
    if (st) {
        kiln__onnx__tensor_proto__free_unpacked(tp, NULL);
        kiln__set_last_error(err.msg);
        return st;
    }
    char *dir = kiln__onnx_dirname(path);
    snprintf(what, sizeof what, "tensor '%.200s' in '%.200s'", tp->name ? tp->name : "", path);
    st = dir ? kiln__onnx_tensor_to_host(tp, dir, what, out, &err)
             : kiln__fail(&err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    free(dir);
    kiln__onnx__tensor_proto__free_unpacked(tp, NULL);
    if (st) kiln__set_last_error(err.msg);
    return st;
}
