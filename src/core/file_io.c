/* Whole-file reads with a size cap, and atomic writes (temp file + rename). */
#include "core.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

kiln_status kiln__read_file(const char *path, uint64_t max_bytes, uint8_t **data, size_t *len,
                            kiln_err *err)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return kiln__fail(err, KILN_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return kiln__fail(err, KILN_ERR_IO, "'%s' is not a regular file", path);
    }
    if (max_bytes && (uint64_t)st.st_size > max_bytes) {
        fclose(f);
        return kiln__fail(err, KILN_ERR_LIMIT, "'%s' is %lld bytes, over the limit of %llu", path,
                          (long long)st.st_size, (unsigned long long)max_bytes);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = kiln__malloc(n);
    if (!buf) {
        fclose(f);
        return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory reading '%s'", path);
    }
    if (n && fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        return kiln__fail(err, KILN_ERR_IO, "short read on '%s'", path);
    }
    fclose(f);
    *data = buf;
    *len = n;
    return KILN_OK;
}

kiln_status kiln__write_file_atomic(const char *path, const void *data, size_t len, kiln_err *err)
{
    size_t plen = strlen(path);
    char *tmp = kiln__malloc(plen + 32);
    if (!tmp) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        kiln_status s = kiln__fail(err, KILN_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        free(tmp);
        return s;
    }
    bool ok = (len == 0 || fwrite(data, 1, len, f) == len);
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        kiln_status s = kiln__fail(err, KILN_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        remove(tmp);
        free(tmp);
        return s;
    }
    free(tmp);
    return KILN_OK;
}
