/* Tiny assertion helpers shared by the C tests. */
#ifndef ALGALON_TEST_CHECK_H
#define ALGALON_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include "algalon.h"

static int failures = 0;

#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                        \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

#define EXPECT_RESULT(call, want)                                                                  \
    do {                                                                                           \
        algalon_result got_ = (call);                                                              \
        if (got_ != (want)) {                                                                      \
            char msg_[512] = "";                                                                   \
            size_t n_ = 0;                                                                         \
            algalon_last_error(msg_, sizeof msg_, &n_);                                            \
            fprintf(stderr, "FAIL %s:%d: %s = %u, want %s (%u); last error: %s\n", __FILE__,       \
                    __LINE__, #call, (unsigned)got_, #want, (unsigned)(want), msg_);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* Fatal: the rest of the test cannot run. */
#define REQUIRE_OK(call)                                                                           \
    do {                                                                                           \
        algalon_result got_ = (call);                                                              \
        if (got_ != ALGALON_RESULT_OK) {                                                           \
            char msg_[512] = "";                                                                   \
            size_t n_ = 0;                                                                         \
            algalon_last_error(msg_, sizeof msg_, &n_);                                            \
            fprintf(stderr, "FATAL %s:%d: %s = %u: %s\n", __FILE__, __LINE__, #call,               \
                    (unsigned)got_, msg_);                                                         \
            exit(2);                                                                               \
        }                                                                                          \
    } while (0)

static int finish(const char *name) {
    if (failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, failures);
        return 1;
    }
    printf("%s: ok\n", name);
    return 0;
}

#endif
