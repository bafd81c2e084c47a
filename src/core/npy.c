/*
 * NumPy .npy files: read format 1.0/2.0/3.0, write 1.0. C order, little
 * endian, the numeric dtypes kiln holds. The header is a Python dict literal;
 * we parse just that subset (strings, True/False, tuples of integers).
 */
#include "core.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPY_MAX_FILE_BYTES ((uint64_t)16 << 30)
#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6

static bool host_is_little_endian(void)
{
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void swap_elements(uint8_t *data, size_t nbytes, size_t esize)
{
    for (size_t off = 0; off + esize <= nbytes; off += esize)
        for (size_t i = 0; i < esize / 2; i++) {
            uint8_t t = data[off + i];
            data[off + i] = data[off + esize - 1 - i];
            data[off + esize - 1 - i] = t;
        }
}

/* --- header parsing ------------------------------------------------------ */

typedef struct cursor {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static bool eat(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* A quoted Python string without escapes (all npy keys and descrs are plain). */
static bool parse_str(cursor *c, const char **s, size_t *n)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return false;
    char q = *c->p++;
    const char *start = c->p;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\') return false;
        c->p++;
    }
    if (c->p >= c->end) return false;
    *s = start;
    *n = (size_t)(c->p - start);
    c->p++;
    return true;
}

static bool parse_word(cursor *c, const char *w)
{
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) >= n && !memcmp(c->p, w, n)) {
        c->p += n;
        return true;
    }
    return false;
}

static bool parse_shape(cursor *c, int *rank, int64_t *dims, kiln_err *err, const char *path,
                        kiln_status *st)
{
    *st = KILN_ERR_PARSE;
    if (!eat(c, '(')) return false;
    *rank = 0;
    for (;;) {
        if (eat(c, ')')) return true;
        skip_ws(c);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9') return false;
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            int d = *c->p++ - '0';
            if (v > (INT64_MAX - d) / 10) {
                *st = KILN_ERR_LIMIT;
                kiln__fail(err, KILN_ERR_LIMIT, "'%s': .npy shape dimension is too large", path);
                return false;
            }
            v = v * 10 + d;
        }
        if (c->p < c->end && *c->p == 'L') c->p++; /* Python 2 long literals */
        if (*rank == KILN_MAX_DIMS) {
            *st = KILN_ERR_UNSUPPORTED;
            kiln__fail(err, KILN_ERR_UNSUPPORTED, "unsupported: '%s' has more than %d dimensions", path, KILN_MAX_DIMS);
            return false;
        }
        dims[(*rank)++] = v;
        if (eat(c, ',')) continue;
        if (eat(c, ')')) return true;
        return false;
    }
}

/* '<f4' etc. to a kiln dtype; *swap set when the data is big-endian. */
static bool descr_dtype(const char *s, size_t n, kiln_dtype *dt, bool *swap)
{
    if (n < 3) return false;
    char order = s[0], kind = s[1];
    if (order != '<' && order != '>' && order != '|' && order != '=') return false;
    size_t size = 0;
    for (size_t i = 2; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || size > 64) return false;
        size = size * 10 + (size_t)(s[i] - '0');
    }
    kiln_dtype d = KILN_DT_UNDEFINED;
    switch (kind) {
    case 'f': d = size == 2 ? KILN_DT_FLOAT16 : size == 4 ? KILN_DT_FLOAT : size == 8 ? KILN_DT_DOUBLE : d; break;
    case 'i':
        d = size == 1 ? KILN_DT_INT8 : size == 2 ? KILN_DT_INT16 : size == 4 ? KILN_DT_INT32 : size == 8 ? KILN_DT_INT64 : d;
        break;
    case 'u':
        d = size == 1 ? KILN_DT_UINT8 : size == 2 ? KILN_DT_UINT16 : size == 4 ? KILN_DT_UINT32 : size == 8 ? KILN_DT_UINT64 : d;
        break;
    case 'b': d = size == 1 ? KILN_DT_BOOL : d; break;
    default: break;
    }
    if (d == KILN_DT_UNDEFINED) return false;
    bool big = order == '>' || (order == '=' && !host_is_little_endian());
    *swap = size > 1 && big != !host_is_little_endian();
    *dt = d;
    return true;
}

kiln_status kiln_tensor_read_npy(const char *path, kiln_host_tensor *out)
{
    kiln_err err = {{0}};
    kiln_status st;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (!out || !path) {
        kiln__set_last_error("kiln_tensor_read_npy: NULL argument");
        return KILN_ERR_INVALID_ARG;
    }
    memset(out, 0, sizeof *out);
    st = kiln__read_file(path, NPY_MAX_FILE_BYTES, &buf, &len, &err);
    if (st) goto fail;

    if (len < NPY_MAGIC_LEN + 4 || memcmp(buf, NPY_MAGIC, NPY_MAGIC_LEN) != 0) {
        st = kiln__fail(&err, KILN_ERR_PARSE, "'%s' is not a .npy file (bad magic)", path);
        goto fail;
    }
    uint8_t major = buf[6];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) {
            st = kiln__fail(&err, KILN_ERR_PARSE, "'%s': truncated .npy header", path);
            goto fail;
        }
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        hstart = 12;
    } else {
        st = kiln__fail(&err, KILN_ERR_UNSUPPORTED, "unsupported: '%s' is .npy format version %u.%u", path,
                        major, buf[7]);
        goto fail;
    }
    if (hlen > len - hstart) {
        st = kiln__fail(&err, KILN_ERR_PARSE, "'%s': .npy header runs past the end of the file", path);
        goto fail;
    }

    cursor c = {(const char *)buf + hstart, (const char *)buf + hstart + hlen};
    const char *descr = NULL;
    size_t descr_len = 0;
    bool fortran = false, have_order = false, have_shape = false;
    int rank = 0;
    int64_t dims[KILN_MAX_DIMS];
    st = KILN_ERR_PARSE;
    if (!eat(&c, '{')) goto bad_header;
    while (!eat(&c, '}')) {
        const char *key;
        size_t klen;
        if (!parse_str(&c, &key, &klen) || !eat(&c, ':')) goto bad_header;
        if (klen == 5 && !memcmp(key, "descr", 5)) {
            if (!parse_str(&c, &descr, &descr_len)) {
                st = kiln__fail(&err, KILN_ERR_UNSUPPORTED, "unsupported: '%s' holds a structured dtype", path);
                goto fail;
            }
        } else if (klen == 13 && !memcmp(key, "fortran_order", 13)) {
            if (parse_word(&c, "True")) fortran = true;
            else if (parse_word(&c, "False")) fortran = false;
            else goto bad_header;
            have_order = true;
        } else if (klen == 5 && !memcmp(key, "shape", 5)) {
            if (!parse_shape(&c, &rank, dims, &err, path, &st)) {
                if (st != KILN_ERR_PARSE) goto fail;
                goto bad_header;
            }
            have_shape = true;
        } else {
            goto bad_header;
        }
        if (!eat(&c, ',')) {
            if (!eat(&c, '}')) goto bad_header;
            break;
        }
    }
    if (!descr || !have_order || !have_shape) goto bad_header;

    kiln_dtype dt;
    bool swap;
    if (!descr_dtype(descr, descr_len, &dt, &swap)) {
        st = kiln__fail(&err, KILN_ERR_UNSUPPORTED, "unsupported: '%s' has dtype '%.*s'", path,
                        (int)(descr_len > 32 ? 32 : descr_len), descr);
        goto fail;
    }
    int nontrivial = 0;
    for (int i = 0; i < rank; i++) nontrivial += dims[i] != 1;
    if (fortran && nontrivial > 1) {
        st = kiln__fail(&err, KILN_ERR_UNSUPPORTED, "unsupported: '%s' is stored in Fortran order", path);
        goto fail;
    }
    /* The non-zero dims' product must fit int64 even when another dim is 0 (an empty tensor of
     * shape (0, 2**62, 2**62) would overflow every later numel computation). */
    int64_t nz = 1;
    bool has_zero = false;
    for (int i = 0; i < rank; i++) {
        if (dims[i] == 0) {
            has_zero = true;
            continue;
        }
        if (nz > INT64_MAX / dims[i]) {
            st = kiln__fail(&err, KILN_ERR_LIMIT, "'%s': .npy shape is too large (element count overflows)", path);
            goto fail;
        }
        nz *= dims[i];
    }
    /* Bytes from the element count, so a 0 anywhere gives 0 bytes (as the .pb reader does). */
    size_t esize = kiln_dtype_size(dt), nbytes = 0;
    if (!has_zero && ((uint64_t)nz > SIZE_MAX || kiln__mul_overflow((size_t)nz, esize, &nbytes))) {
        st = kiln__fail(&err, KILN_ERR_LIMIT, "'%s': .npy shape is too large", path);
        goto fail;
    }
    size_t avail = len - hstart - hlen;
    if (avail != nbytes) {
        st = kiln__fail(&err, KILN_ERR_SHAPE, "'%s': .npy data has %zu bytes, its shape needs %zu", path, avail,
                        nbytes);
        goto fail;
    }
    /* Reuse the file buffer: move the data to its start. */
    memmove(buf, buf + hstart + hlen, nbytes);
    if (swap) swap_elements(buf, nbytes, esize);
    if (dt == KILN_DT_BOOL)
        for (size_t i = 0; i < nbytes; i++) buf[i] = buf[i] != 0;
    out->dtype = dt;
    out->rank = rank;
    for (int i = 0; i < rank; i++) out->dims[i] = dims[i];
    out->data = buf;
    out->nbytes = nbytes;
    return KILN_OK;

bad_header:
    st = kiln__fail(&err, KILN_ERR_PARSE, "'%s': malformed .npy header", path);
fail:
    free(buf);
    memset(out, 0, sizeof *out);
    kiln__set_last_error(err.msg);
    return st;
}

static const char *npy_descr(kiln_dtype dt)
{
    switch (dt) {
    case KILN_DT_FLOAT: return "<f4";
    case KILN_DT_DOUBLE: return "<f8";
    case KILN_DT_FLOAT16: return "<f2";
    case KILN_DT_INT8: return "|i1";
    case KILN_DT_INT16: return "<i2";
    case KILN_DT_INT32: return "<i4";
    case KILN_DT_INT64: return "<i8";
    case KILN_DT_UINT8: return "|u1";
    case KILN_DT_UINT16: return "<u2";
    case KILN_DT_UINT32: return "<u4";
    case KILN_DT_UINT64: return "<u8";
    case KILN_DT_BOOL: return "|b1";
    default: return NULL; /* bfloat16 has no NumPy dtype; string/complex are not held */
    }
}

kiln_status kiln_tensor_write_npy(const char *path, const kiln_host_tensor *t)
{
    kiln_err err = {{0}};
    kiln_status st;
    if (!path || !t) {
        kiln__set_last_error("kiln_tensor_write_npy: NULL argument");
        return KILN_ERR_INVALID_ARG;
    }
    const char *descr = npy_descr(t->dtype);
    if (!descr) {
        st = kiln__fail(&err, KILN_ERR_UNSUPPORTED, "unsupported: cannot write %s tensor '%s' as .npy",
                        kiln_dtype_name(t->dtype), t->name);
        kiln__set_last_error(err.msg);
        return st;
    }
    if (t->rank < 0 || t->rank > KILN_MAX_DIMS) {
        kiln__fail(&err, KILN_ERR_INVALID_ARG, "tensor '%s': rank %d is outside 0..%d", t->name, t->rank, KILN_MAX_DIMS);
        kiln__set_last_error(err.msg);
        return KILN_ERR_INVALID_ARG;
    }
    for (int i = 0; i < t->rank; i++)
        if (t->dims[i] < 0) {
            kiln__fail(&err, KILN_ERR_SHAPE, "tensor '%s': bad dimension %d (%lld)", t->name, i, (long long)t->dims[i]);
            kiln__set_last_error(err.msg);
            return KILN_ERR_SHAPE;
        }
    /* From the element count, as the readers do: a 0 anywhere means 0 bytes. */
    int64_t numel = kiln_host_tensor_numel(t);
    size_t esize = kiln_dtype_size(t->dtype), nbytes = 0;
    if (numel < 0 || (uint64_t)numel > SIZE_MAX || kiln__mul_overflow((size_t)numel, esize, &nbytes)) {
        kiln__fail(&err, KILN_ERR_SHAPE, "tensor '%s': element count overflows", t->name);
        kiln__set_last_error(err.msg);
        return KILN_ERR_SHAPE;
    }
    if (nbytes != t->nbytes || (nbytes && !t->data)) {
        kiln__fail(&err, KILN_ERR_INVALID_ARG, "tensor '%s': %zu bytes of data, its shape needs %zu", t->name,
                   t->nbytes, nbytes);
        kiln__set_last_error(err.msg);
        return KILN_ERR_INVALID_ARG;
    }

    /* Dict text, then spaces and '\n' so that data starts on a 64-byte boundary. */
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < t->rank; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld%s", (long long)t->dims[i],
                      (t->rank == 1 || i + 1 < t->rank) ? ", " : "");
    if (t->rank == 1) n -= 1; /* "(5,)" rather than "(5, )" */
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    size_t header = 10 + (size_t)n + 1;
    size_t padded = (header + 63) / 64 * 64;
    size_t hlen = padded - 10;
    size_t total;
    if (__builtin_add_overflow(padded, nbytes, &total)) {
        kiln__set_last_error("tensor too large to write");
        return KILN_ERR_LIMIT;
    }
    uint8_t *buf = kiln__malloc(total);
    if (!buf) {
        kiln__fail(&err, KILN_ERR_OUT_OF_MEMORY, "out of memory writing '%s'", path);
        kiln__set_last_error(err.msg);
        return KILN_ERR_OUT_OF_MEMORY;
    }
    memcpy(buf, NPY_MAGIC, NPY_MAGIC_LEN);
    buf[6] = 1;
    buf[7] = 0;
    buf[8] = (uint8_t)(hlen & 0xff);
    buf[9] = (uint8_t)(hlen >> 8);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', hlen - (size_t)n - 1);
    buf[padded - 1] = '\n';
    if (nbytes) memcpy(buf + padded, t->data, nbytes);
    if (!host_is_little_endian()) swap_elements(buf + padded, nbytes, esize);
    st = kiln__write_file_atomic(path, buf, total, &err);
    free(buf);
    if (st) kiln__set_last_error(err.msg);
    return st;
}
