/* The log writer thread (logw.h). */
#include "master/logw.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct ty_chunk {
    char *run, *task; /* task NULL: remove the run's logs */
    unsigned attempt;
    int series; /* the metric history, not the log */
    void *data;
    size_t len;
    struct ty_chunk *next;
} ty_chunk_t;

struct ty_logw {
    char *data_dir;
    ty_logw_cb cb;
    void *arg;
    uv_async_t async;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ty_chunk_t *head, **tail; /* to write */
    size_t pending;
    char **done; /* runs whose bytes were written, for the loop */
    size_t ndone, cap_done;
    int stop;
};

static int ty_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        ty_warn("cannot remove %s: %s", path, strerror(errno));
    return 0;
}

static void ty_write_chunk(ty_logw_t *w, const ty_chunk_t *c) {
    if (!c->task) { /* the run left the history */
        char *dir = ty_xasprintf("%s/logs/%s", w->data_dir, c->run);
        nftw(dir, ty_rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(dir);
        return;
    }
    char *dir = ty_xasprintf("%s/logs/%s", w->data_dir, c->run);
    int rc = ty_mkdirs(dir);
    if (rc != 0)
        ty_warn("cannot create %s: %s", dir, ty_strerror(rc));
    free(dir);
    char *path = ty_xasprintf("%s/logs/%s/%s.%u.%s", w->data_dir, c->run, c->task, c->attempt,
                              c->series ? "metrics" : "log");
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        ty_warn("cannot open %s: %s", path, strerror(errno));
    } else {
        ssize_t n = write(fd, c->data, c->len);
        if (n != (ssize_t)c->len)
            ty_warn("short write to %s", path);
        close(fd);
    }
    free(path);
}

static void ty_chunk_free(ty_chunk_t *c) {
    free(c->run);
    free(c->task);
    free(c->data);
    free(c);
}

static void *ty_logw_main(void *arg) {
    ty_logw_t *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->head)
            break; /* stopping, and everything is written */
        ty_chunk_t *c = w->head;
        w->head = c->next;
        if (!w->head)
            w->tail = &w->head;
        pthread_mutex_unlock(&w->mu);
        ty_write_chunk(w, c);
        pthread_mutex_lock(&w->mu);
        w->pending -= c->len;
        if (w->ndone == w->cap_done) {
            w->cap_done = w->cap_done ? w->cap_done * 2 : 16;
            w->done = ty_xrealloc(w->done, w->cap_done * sizeof *w->done);
        }
        w->done[w->ndone++] = c->run;
        c->run = NULL;
        ty_chunk_free(c);
        uv_async_send(&w->async);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* On the loop: tell about the runs whose logs grew (each once). */
static void ty_logw_async_cb(uv_async_t *h) {
    ty_logw_t *w = h->data;
    pthread_mutex_lock(&w->mu);
    char **done = w->done;
    size_t n = w->ndone;
    w->done = NULL;
    w->ndone = w->cap_done = 0;
    pthread_mutex_unlock(&w->mu);
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        for (size_t k = 0; k < i && !seen; k++)
            seen = strcmp(done[k], done[i]) == 0;
        if (!seen && w->cb)
            w->cb(done[i], w->arg);
    }
    for (size_t i = 0; i < n; i++)
        free(done[i]);
    free(done);
}

int ty_logw_create(ty_logw_t **out, uv_loop_t *loop, const char *data_dir, ty_logw_cb cb,
                   void *arg) {
    if (!out || !loop || !data_dir)
        return TY_EINVAL;
    ty_logw_t *w = ty_xcalloc(1, sizeof *w);
    w->data_dir = ty_xstrdup(data_dir);
    w->cb = cb;
    w->arg = arg;
    w->tail = &w->head;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (uv_async_init(loop, &w->async, ty_logw_async_cb) != 0) {
        free(w->data_dir);
        free(w);
        return TY_EIO;
    }
    w->async.data = w;
    if (pthread_create(&w->thread, NULL, ty_logw_main, w) != 0) {
        uv_close((uv_handle_t *)&w->async, NULL);
        return TY_EIO; /* the handle is closed by the loop; w leaks with it */
    }
    *out = w;
    return 0;
}

void ty_logw_append(ty_logw_t *w, const char *run, const char *task, unsigned attempt,
                    const void *data, size_t len) {
    ty_logw_append_to(w, run, task, attempt, 0, data, len);
}

void ty_logw_append_to(ty_logw_t *w, const char *run, const char *task, unsigned attempt,
                       int series, const void *data, size_t len) {
    ty_chunk_t *c = ty_xcalloc(1, sizeof *c);
    c->series = series;
    c->run = ty_xstrdup(run);
    c->task = ty_xstrdup(task);
    c->attempt = attempt;
    c->data = ty_xmalloc(len ? len : 1);
    memcpy(c->data, data, len);
    c->len = len;
    pthread_mutex_lock(&w->mu);
    *w->tail = c;
    w->tail = &c->next;
    w->pending += len;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void ty_logw_remove(ty_logw_t *w, const char *run) {
    if (!*run || strchr(run, '/') || strcmp(run, ".") == 0 || strcmp(run, "..") == 0)
        return; /* never outside the logs directory */
    ty_chunk_t *c = ty_xcalloc(1, sizeof *c);
    c->run = ty_xstrdup(run);
    c->data = ty_xmalloc(1);
    pthread_mutex_lock(&w->mu);
    *w->tail = c;
    w->tail = &c->next;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

size_t ty_logw_pending(ty_logw_t *w) {
    pthread_mutex_lock(&w->mu);
    size_t n = w->pending;
    pthread_mutex_unlock(&w->mu);
    return n;
}

static void ty_logw_closed(uv_handle_t *h) {
    ty_logw_t *w = h->data;
    for (size_t i = 0; i < w->ndone; i++)
        free(w->done[i]);
    free(w->done);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->data_dir);
    free(w);
}

void ty_logw_destroy(ty_logw_t **wp) {
    ty_logw_t *w = wp ? *wp : NULL;
    if (!w)
        return;
    *wp = NULL;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL); /* everything queued is written first */
    uv_close((uv_handle_t *)&w->async, ty_logw_closed);
}
