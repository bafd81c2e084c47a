/* A tiny test harness: CHECK records a failure and goes on; main prints the totals. */
#ifndef KILN_TEST_MAIN_H
#define KILN_TEST_MAIN_H
#include <stdio.h>

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
#endif
