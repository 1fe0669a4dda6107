/* The log writer thread: chunks land in their files in the order they were
 * handed over, the loop hears of each run whose log grew once the bytes are
 * on disk, and destroy writes what is still queued. */
#include "master/logw.h"

#include "common/tests/ty_test.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int heard_r1, heard_r2, nheard;

static void on_written(const char *run, void *arg) {
    uv_loop_t *loop = arg;
    heard_r1 += strcmp(run, "r1") == 0;
    heard_r2 += strcmp(run, "r2") == 0;
    nheard++;
    uv_stop(loop);
}

static void on_timeout(uv_timer_t *t) { uv_stop(t->loop); }

static char *slurp(const char *dir, const char *rel) {
    char *path = ty_xasprintf("%s/logs/%s", dir, rel);
    ty_buf_t b = {0};
    int rc = ty_read_file(path, &b);
    free(path);
    if (rc != 0) {
        ty_buf_free(&b);
        return NULL;
    }
    return b.data;
}

int main(void) {
    char dir[] = "/tmp/ty-logw-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    uv_loop_t loop;
    uv_loop_init(&loop);
    ty_logw_t *w = NULL;
    CHECK_EQ_INT(ty_logw_create(&w, &loop, dir, on_written, &loop), 0);
    for (int i = 0; i < 500; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "%d\n", i);
        ty_logw_append(w, "r1", "t", 1, line, (size_t)n);
    }
    ty_logw_append(w, "r2", "u", 2, "other\n", 6);
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    uv_timer_start(&guard, on_timeout, 10000, 0);
    while (ty_logw_pending(w) > 0 || !heard_r2) {
        if (uv_run(&loop, UV_RUN_ONCE) == 0 || !uv_is_active((uv_handle_t *)&guard))
            break;
    }
    CHECK_EQ_INT(ty_logw_pending(w), 0);
    CHECK(heard_r1 >= 1 && heard_r2 == 1); /* a run once per batch of writes */
    CHECK(nheard < 500);
    char *text = slurp(dir, "r1/t.1.log");
    ty_buf_t want = {0};
    for (int i = 0; i < 500; i++)
        ty_buf_printf(&want, "%d\n", i);
    CHECK_STR(text, want.data); /* every chunk, in order */
    free(text);
    text = slurp(dir, "r2/u.2.log");
    CHECK_STR(text, "other\n");
    free(text);
    /* what is queued at destroy is written */
    ty_logw_append(w, "r3", "v", 1, "last\n", 5);
    ty_logw_destroy(&w);
    CHECK(w == NULL);
    text = slurp(dir, "r3/v.1.log");
    CHECK_STR(text, "last\n");
    free(text);
    ty_buf_free(&want);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    char *cmd = ty_xasprintf("rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    free(cmd);
    TEST_DONE();
}
