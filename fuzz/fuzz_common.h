/* libFuzzer harnesses (fuzz/README in docs/fuzzing.md): each file defines
 * LLVMFuzzerTestOneInput for one parser or message handler, built with
 * -fsanitize=fuzzer,address,undefined by the fuzz preset. */
#ifndef TY_FUZZ_COMMON_H
#define TY_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* data as a NUL-terminated string (NULs inside stay, cutting it short). */
static inline char *fz_str(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
