/* Minimal test harness: CHECK records a failure and carries on; the test's
 * exit status is the number of failures (capped), 77 = skipped. */
#ifndef TY_TEST_H
#define TY_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ty_test_failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            ty_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
        if (va_ != vb_) {                                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", __FILE__, __LINE__,  \
                    #a, #b, va_, vb_);                                                             \
            ty_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *sa_ = (a), *sb_ = (b);                                                         \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s == \"%s\" (got \"%s\")\n", __FILE__,          \
                    __LINE__, #a, sb_ ? sb_ : "(null)", sa_ ? sa_ : "(null)");                     \
            ty_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

#define CHECK_CONTAINS(hay, needle)                                                                \
    do {                                                                                           \
        const char *h_ = (hay);                                                                    \
        if (!h_ || !strstr(h_, (needle))) {                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: \"%s\" contains \"%s\"\n", __FILE__, __LINE__,   \
                    h_ ? h_ : "(null)", (needle));                                                 \
            ty_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

#define TEST_DONE()                                                                                \
    do {                                                                                           \
        if (ty_test_failures)                                                                      \
            fprintf(stderr, "%d check(s) failed\n", ty_test_failures);                             \
        return ty_test_failures > 50 ? 50 : ty_test_failures;                                      \
    } while (0)

#endif
