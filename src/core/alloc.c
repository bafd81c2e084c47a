/* Allocation wrappers: size 0 is legal, overflow is checked, NULL means out of memory. */
#include "core.h"
#include <stdlib.h>
#include <string.h>

void *kiln__malloc(size_t n) { return malloc(n ? n : 1); }

void *kiln__calloc(size_t count, size_t size)
{
    size_t total;
    if (kiln__mul_overflow(count, size, &total)) return NULL;
    return calloc(total ? total : 1, 1);
}

void *kiln__realloc(void *p, size_t n) { return realloc(p, n ? n : 1); }

char *kiln__strdup(const char *s) { return kiln__strndup(s ? s : "", strlen(s ? s : "")); }

char *kiln__strndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

bool kiln__mul_overflow(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}

uint64_t kiln__hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}
