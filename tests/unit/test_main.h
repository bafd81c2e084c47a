/* A tiny test harness: CHECK records a failure and goes on; main prints the totals. slurp/spit
 * read and write whole files (damaged-file tests). */
#ifndef KILN_TEST_MAIN_H
#define KILN_TEST_MAIN_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int t_failed, t_checks;
#define CHECK(cond)                                                                 \
    do {                                                                            \
        t_checks++;                                                                 \
        if (!(cond)) {                                                              \
            t_failed++;                                                             \
            printf("%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);         \
        }                                                                           \
    } while (0)
#define TEST_SUMMARY(name)                                                          \
    (printf("%s: %d checks, %d failed\n", name, t_checks, t_failed), t_failed ? 1 : 0)

/* A whole file into a malloc'd buffer (*len bytes), or NULL. */
static inline uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Writes n bytes to path (a damaged copy for a test); failures show up when it is read. */
static inline void spit(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(b, 1, n, f);
    fclose(f);
}
#endif
