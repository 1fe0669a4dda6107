#include "common/config.h"
#include "common/err.h"
#include "common/tests/ty_test.h"
#include "common/util.h"

#include <unistd.h>

int main(void) {
    char path[] = "/tmp/ty_config_testXXXXXX";
    int fd = mkstemp(path);
    const char *text =
        "# comment\nmaster = tcp://127.0.0.1:5555\n\n  etcd=http://x:1 \nmaster=tcp://b:1\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    ty_config_t *c = NULL;
    CHECK_EQ_INT(ty_config_load(&c, path, NULL), 0);
    CHECK_STR(ty_config_get(c, "master"), "tcp://b:1");
    CHECK_STR(ty_config_get(c, "etcd"), "http://x:1");
    CHECK(ty_config_get(c, "nope") == NULL);
    ty_config_destroy(&c);
    CHECK(c == NULL);

    FILE *f = fopen(path, "w");
    fputs("ok = 1\nbroken line\n", f);
    fclose(f);
    char *err = NULL;
    CHECK_EQ_INT(ty_config_load(&c, path, &err), TY_EPARSE);
    CHECK_CONTAINS(err, ":2: expected");
    free(err);
    unlink(path);
    CHECK_EQ_INT(ty_config_load(&c, path, NULL), TY_ENOENT);

    /* from memory: a NUL byte and an overlong line are refused with the line */
    static const char mem[] = "a = 1\nb = 2\0x\n";
    CHECK_EQ_INT(ty_config_parse(&c, mem, 6, "mem", &err), 0);
    CHECK_STR(ty_config_get(c, "a"), "1");
    ty_config_destroy(&c);
    CHECK_EQ_INT(ty_config_parse(&c, mem, sizeof mem - 1, "mem", &err), TY_EPARSE);
    CHECK_STR(err, "mem:2: a NUL byte");
    free(err);
    char *big = ty_xcalloc(5000, 1);
    memset(big, 'k', 4999);
    big[2] = '=';
    CHECK_EQ_INT(ty_config_parse(&c, big, 4999, "mem", &err), TY_EPARSE);
    CHECK_STR(err, "mem:1: a line longer than 4096 bytes");
    free(err);
    free(big);
    TEST_DONE();
}
