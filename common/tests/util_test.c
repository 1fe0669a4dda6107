#include "common/util.h"
#include "common/err.h"
#include "common/tests/ty_test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
    /* what may stand in mpirun's host list and options */
    CHECK(ty_host_token_ok("127.0.1.2") && ty_host_token_ok("gpu-1.cluster_a") &&
          ty_host_token_ok("eth0"));
    CHECK(!ty_host_token_ok("") && !ty_host_token_ok(NULL) && !ty_host_token_ok("a,b") &&
          !ty_host_token_ok("h:2") && !ty_host_token_ok("a b") && !ty_host_token_ok("$(x)"));
    char longest[256];
    memset(longest, 'a', 253);
    longest[253] = '\0';
    CHECK(ty_host_token_ok(longest));
    longest[253] = 'a';
    longest[254] = '\0';
    CHECK(!ty_host_token_ok(longest));
    const char *cases[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *e = ty_b64_encode(cases[i], strlen(cases[i]));
        CHECK_STR(e, want[i]);
        unsigned char *d;
        size_t n;
        CHECK_EQ_INT(ty_b64_decode(e, strlen(e), &d, &n), 0);
        CHECK_EQ_INT(n, strlen(cases[i]));
        CHECK(memcmp(d, cases[i], n) == 0);
        free(d);
        free(e);
    }
    unsigned char *d = NULL;
    size_t n;
    CHECK_EQ_INT(ty_b64_decode("Zm9*", 4, &d, &n), TY_EPARSE);

    /* strict numbers: whole string, finite, in range; *out untouched on error */
    double f = -1;
    CHECK_EQ_INT(ty_parse_f64("2.5e-1", 0, 1, &f), 0);
    CHECK(f == 0.25);
    const char *badf[] = {"", " 1", "1 ", "1x", "nan", "inf", "1e999", "2", "-0.5", NULL};
    for (int i = 0; badf[i]; i++) {
        f = -1;
        CHECK_EQ_INT(ty_parse_f64(badf[i], 0, 1, &f), TY_EINVAL);
        CHECK(f == -1);
    }
    CHECK_EQ_INT(ty_parse_f64(NULL, 0, 1, &f), TY_EINVAL);
    int64_t iv = -1;
    int64_t since = 0;
    CHECK_EQ_INT(ty_parse_since("30m", 10000000, &since), 0);
    CHECK_EQ_INT(since, 10000000 - 1800000);
    CHECK_EQ_INT(ty_parse_since("2026-01-02T03:04:05Z", 0, &since), 0);
    CHECK_EQ_INT(since, 1767323045000LL);
    CHECK_EQ_INT(ty_parse_since("2026-01-02T03:04:05", 0, &since), 0);
    CHECK_EQ_INT(ty_parse_since("yesterday", 0, &since), -1);
    CHECK_EQ_INT(ty_parse_since("3x", 0, &since), -1);
    CHECK_EQ_INT(ty_parse_i64("-7", -10, 10, &iv), 0);
    CHECK_EQ_INT(iv, -7);
    CHECK_EQ_INT(ty_parse_i64("9223372036854775807", 0, INT64_MAX, &iv), 0);
    CHECK(iv == INT64_MAX);
    const char *badi[] = {"", " 3", "3 ", "3.0", "0x10", "11", "9223372036854775808", NULL};
    for (int i = 0; badi[i]; i++) {
        iv = -1;
        CHECK_EQ_INT(ty_parse_i64(badi[i], -10, 10, &iv), TY_EINVAL);
        CHECK_EQ_INT(iv, -1);
    }

    char buf[40];
    ty_fmt_time(1767323045678LL, buf, sizeof buf); /* 2026-01-02T03:04:05.678Z */
    CHECK_STR(buf, "2026-01-02T03:04:05.678Z");
    ty_fmt_time(0, buf, sizeof buf);
    CHECK_STR(buf, "");

    ty_buf_t b = {0};
    ty_buf_printf(&b, "%d-%s", 42, "x");
    ty_buf_append(&b, "yz", 2);
    CHECK_STR(b.data, "42-xyz");
    ty_buf_consume(&b, 3);
    CHECK_STR(b.data, "xyz");
    ty_buf_free(&b);
    CHECK(ty_mono_ms() > 0);

    /* atomic write replaces the whole file; a bad directory is an error */
    char dir[] = "/tmp/ty-util-testXXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char *path = ty_xasprintf("%s/f", dir);
    CHECK_EQ_INT(ty_write_file_atomic(path, "first", 5), 0);
    CHECK_EQ_INT(ty_write_file_atomic(path, "second", 6), 0);
    ty_buf_t rb = {0};
    CHECK_EQ_INT(ty_read_file(path, &rb), 0);
    CHECK_STR(rb.data, "second");
    ty_buf_free(&rb);
    CHECK(ty_write_file_atomic("/nonexistent-dir/f", "x", 1) < 0);

    /* a stream written atomically: path keeps its old contents until the
     * rename, and an abandoned write leaves it (and no temporary) behind */
    FILE *fp;
    char *tmp;
    CHECK_EQ_INT(ty_atomic_open(path, &fp, &tmp), 0);
    fputs("third", fp);
    CHECK_EQ_INT(ty_atomic_close(fp, tmp, path, 0), 0);
    CHECK_EQ_INT(ty_read_file(path, &rb), 0);
    CHECK_STR(rb.data, "second");
    ty_buf_free(&rb);
    CHECK_EQ_INT(ty_atomic_open(path, &fp, &tmp), 0);
    fputs("third", fp);
    CHECK_EQ_INT(ty_read_file(path, &rb), 0);
    CHECK_STR(rb.data, "second");
    ty_buf_free(&rb);
    CHECK_EQ_INT(ty_atomic_close(fp, tmp, path, 1), 0);
    CHECK_EQ_INT(ty_read_file(path, &rb), 0);
    CHECK_STR(rb.data, "third");
    ty_buf_free(&rb);
    CHECK_EQ_INT(ty_atomic_open("/nonexistent-dir/f", &fp, &tmp), -ENOENT);

    /* writability, checked before the work: the file is left as it was */
    CHECK_EQ_INT(ty_check_writable(path), 0);
    CHECK_EQ_INT(ty_read_file(path, &rb), 0);
    CHECK_STR(rb.data, "third");
    ty_buf_free(&rb);
    char *fresh = ty_xasprintf("%s/new", dir);
    CHECK_EQ_INT(ty_check_writable(fresh), 0);
    CHECK(access(fresh, F_OK) != 0);
    free(fresh);
    CHECK_EQ_INT(ty_check_writable(dir), -EISDIR);
    CHECK_EQ_INT(ty_check_writable("/nonexistent-dir/f"), -ENOENT);
    char *under_file = ty_xasprintf("%s/f/x", dir);
    CHECK_EQ_INT(ty_check_writable(under_file), -ENOTDIR);
    free(under_file);
    CHECK(ty_check_writable("/proc/ty-no-such-file") < 0);
    /* one file by two names; two files; a name of nothing */
    char *alias = ty_xasprintf("%s/./f", dir);
    CHECK_EQ_INT(ty_same_file(path, alias), 1);
    CHECK_EQ_INT(ty_same_file(path, dir), 0);
    CHECK_EQ_INT(ty_same_file(path, "/nonexistent-dir/f"), 0);
    free(alias);
    /* a special file (a FIFO here; /dev/null alike) is written in place,
     * never replaced by a regular file */
    char *fifo = ty_xasprintf("%s/fifo", dir);
    CHECK_EQ_INT(mkfifo(fifo, 0600), 0);
    CHECK_EQ_INT(ty_is_special_file(fifo), 1);
    CHECK_EQ_INT(ty_is_special_file(path), 0);
    CHECK_EQ_INT(ty_is_special_file(dir), 0);
    CHECK_EQ_INT(ty_check_writable(fifo), 0); /* without opening it: no reader yet */
    int rd = open(fifo, O_RDONLY | O_NONBLOCK);
    CHECK(rd >= 0);
    CHECK_EQ_INT(ty_write_file_atomic(fifo, "in place", 8), 0);
    CHECK_EQ_INT(ty_atomic_open(fifo, &fp, &tmp), 0);
    CHECK(tmp == NULL);
    fputs(", twice", fp);
    CHECK_EQ_INT(ty_atomic_close(fp, tmp, fifo, 1), 0);
    char got[32] = {0};
    CHECK_EQ_INT((int)read(rd, got, sizeof got - 1), 15);
    CHECK_STR(got, "in place, twice");
    close(rd);
    struct stat st;
    CHECK(stat(fifo, &st) == 0 && S_ISFIFO(st.st_mode));
    unlink(fifo);
    free(fifo);
    DIR *dh = opendir(dir); /* nothing left beside the file */
    int entries = 0;
    for (struct dirent *e; dh && (e = readdir(dh));)
        entries += e->d_name[0] != '.';
    closedir(dh);
    CHECK_EQ_INT(entries, 1);
    unlink(path);
    rmdir(dir);
    free(path);
    /* splitmix64: the published sequence from state 0, and a seed replays */
    uint64_t sm = 0, again = 0;
    CHECK(ty_splitmix64(&sm) == 0xe220a8397b1dcdafULL);
    CHECK(ty_splitmix64(&sm) == 0x6e789e6aa1b965f4ULL);
    ty_splitmix64(&again);
    CHECK(ty_splitmix64(&again) == 0x6e789e6aa1b965f4ULL);
    TEST_DONE();
}
