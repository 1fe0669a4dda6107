#include "common/config.h"
#include "common/err.h"
#include "common/tests/ty_test.h"

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
    TEST_DONE();
}
