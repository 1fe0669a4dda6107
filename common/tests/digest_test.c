#include "common/digest.h"
#include "common/tests/ty_test.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void) {
    char hex[TY_SHA256_HEX];
    ty_sha256_t *h;
    ty_sha256_create(&h);
    ty_sha256_final(h, hex); /* the empty string (FIPS 180-2 test vectors) */
    CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ty_sha256_update(h, "ab", 2); /* in pieces */
    ty_sha256_update(h, "c", 1);
    ty_sha256_final(h, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ty_sha256_destroy(&h);
    CHECK(ty_sha256_hex_ok(hex));
    CHECK(!ty_sha256_hex_ok("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
    CHECK(!ty_sha256_hex_ok("abc"));
    CHECK(!ty_sha256_hex_ok(NULL));

    /* a file of 3 MiB + 5 bytes of 'a': more than one read block */
    char path[] = "/tmp/ty-digest-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    size_t n = (3u << 20) + 5;
    char *buf = ty_xmalloc(n);
    memset(buf, 'a', n);
    CHECK_EQ_INT(write(fd, buf, n), (ssize_t)n);
    close(fd);
    char want[TY_SHA256_HEX], got[TY_SHA256_HEX];
    ty_sha256_create(&h);
    ty_sha256_update(h, buf, n);
    ty_sha256_final(h, want);
    ty_sha256_destroy(&h);
    uint64_t size = 0;
    CHECK_EQ_INT(ty_sha256_file(path, got, &size), 0);
    CHECK_STR(got, want);
    CHECK_EQ_INT(size, n);
    unlink(path);
    CHECK(ty_sha256_file(path, got, &size) < 0);
    free(buf);

    CHECK_EQ_INT(ty_crc32("123456789", 9), 0xcbf43926u);  /* the CRC-32 check value */
    CHECK_EQ_INT(ty_crc32c("123456789", 9), 0xe3069283u); /* and CRC-32C's (RFC 3720) */
    CHECK_EQ_INT(ty_crc32c("", 0), 0);
    uint8_t zeros[32] = {0}, ones[32];
    memset(ones, 0xff, sizeof ones);
    CHECK_EQ_INT(ty_crc32c(zeros, 32), 0x8a9136aau); /* RFC 3720 B.4 */
    CHECK_EQ_INT(ty_crc32c(ones, 32), 0x62a8ab43u);

    CHECK(ty_output_path_problem("fashion.model") == NULL);
    CHECK(ty_output_path_problem("plots/*.png") == NULL);
    CHECK(ty_output_path_problem("a/.hidden/b") == NULL);
    CHECK(ty_output_path_problem("") != NULL);
    CHECK(ty_output_path_problem("/etc/passwd") != NULL);
    CHECK(ty_output_path_problem("../x") != NULL);
    CHECK(ty_output_path_problem("a/../../x") != NULL);
    CHECK(ty_output_path_problem("a/./b") != NULL);
    CHECK(ty_output_path_problem("a//b") != NULL);
    CHECK(ty_output_path_problem("a/") != NULL);
    CHECK(ty_output_path_problem("..") != NULL);
    CHECK(ty_output_path_problem("a\nb") != NULL);
    TEST_DONE();
}
