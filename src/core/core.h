/* Core helpers shared by every layer: error text, allocation, float16, hashing. */
#ifndef KILN_CORE_H
#define KILN_CORE_H

#include "kiln.h"
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Error text travels with the status: functions take a kiln_err* and fill it. */
typedef struct kiln_err {
    char msg[1024];
} kiln_err;

/* Formats msg into err (if non-NULL) and returns s, so callers write
 * `return kiln__fail(err, KILN_ERR_SHAPE, "node '%s': ...", name);` */
kiln_status kiln__fail(kiln_err *err, kiln_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends "prefix: " to an existing message (adds context while unwinding). */
void kiln__err_prefix(kiln_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sets the thread-local text read by kiln_last_error(). */
void kiln__set_last_error(const char *msg);

/* Allocation that never returns NULL for size 0 and checks overflow. */
void *kiln__malloc(size_t n);
void *kiln__calloc(size_t count, size_t size);
void *kiln__realloc(void *p, size_t n);
char *kiln__strdup(const char *s);
char *kiln__strndup(const char *s, size_t n);
/* a*b into *out; returns true when it overflows. */
bool kiln__mul_overflow(size_t a, size_t b, size_t *out);

/* Float16 / bfloat16 conversion (round to nearest even). */
float kiln__f16_to_f32(uint16_t h);
uint16_t kiln__f32_to_f16(float f);
float kiln__bf16_to_f32(uint16_t h);
uint16_t kiln__f32_to_bf16(float f);

/* Whole-file read; *data owned by caller (free). Fails on files over max_bytes. */
kiln_status kiln__read_file(const char *path, uint64_t max_bytes, uint8_t **data, size_t *len,
                            kiln_err *err);
/* Writes atomically: a temporary file beside `path`, renamed at the end. */
kiln_status kiln__write_file_atomic(const char *path, const void *data, size_t len, kiln_err *err);

/* FNV-1a 64-bit hash of a string. */
uint64_t kiln__hash_str(const char *s);

#endif
