/* An attempt's inputs, fetched before it starts.  Each is an upstream
 * output named by its SHA-256: taken from this host's cache
 * (<work-dir>/.cache/sha256/<sha256>) or, the first time this host needs
 * it, read from the master range by range (BlobRead, one MiB at a time,
 * one request out), hashed as it arrives and put in the cache only when
 * its digest matches.  Then each is copied (copy_file_range, in libuv's
 * thread pool) to inputs/KEY/NAME in the attempt directory, so a task that
 * changes its input cannot change the cache, and the attempt starts.  A
 * master silent for TY_FETCH_SILENT_MS is asked again for the same range.
 * The attempt counts as running meanwhile. */
#include "worker/worker.h"

#include "common/digest.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TY_FETCH_SILENT_MS 5000
#define TY_FETCH_RANGE (1u << 20)

struct ty_fetch {
    ty_wk_t *wk;
    ty_fetch_t *next;
    Ty__Dispatch *d; /* unpacked copy */
    char *dir;       /* the attempt's */
    size_t cur;      /* the input being fetched */
    int fd;          /* its part file */
    char *part;
    uint64_t off, req;
    ty_sha256_t *h;
    int64_t last;
    int copying, dead;
    char *error; /* the copy's */
    uv_work_t work;
};

static char *ty_cache_path(const ty_wk_t *wk, const char *sha) {
    return ty_xasprintf("%s/.cache/sha256/%s", wk->workdir, sha);
}

static void ty_fetch_free(ty_fetch_t *f) {
    if (f->fd >= 0)
        close(f->fd);
    if (f->part)
        unlink(f->part);
    free(f->part);
    free(f->dir);
    free(f->error);
    ty_sha256_destroy(&f->h);
    if (f->d)
        ty__dispatch__free_unpacked(f->d, NULL);
    free(f);
}

static void ty_unlink_fetch(ty_fetch_t *f) {
    for (ty_fetch_t **pp = &f->wk->fetches; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
}

/* The attempt ends before it starts, with why (cancelled, or interrupted
 * by the worker, or failed). */
static void ty_fetch_end(ty_fetch_t *f, const char *why, int cancelled, int interrupted) {
    ty_unlink_fetch(f);
    const Ty__TaskRef *ref = f->d->ref;
    ty_warn("task %s/%s#%u: %s", ref->run_id, ref->task, ref->attempt, why);
    Ty__TaskResult res = TY__TASK_RESULT__INIT;
    res.ref = (Ty__TaskRef *)ref;
    res.error = (char *)why;
    res.cancelled = cancelled;
    res.interrupted = interrupted;
    res.started_ms = res.finished_ms = ty_now_ms();
    ty_wk_result(f->wk, &res);
    if (f->copying) {
        f->dead = 1; /* freed when the pool gives it back */
        return;
    }
    ty_fetch_free(f);
}

static void ty_fetch_fail(ty_fetch_t *f, const char *why) { ty_fetch_end(f, why, 0, 0); }

static void ty_send_read(ty_fetch_t *f) {
    const Ty__InputRef *in = f->d->inputs[f->cur];
    Ty__BlobRead br = TY__BLOB_READ__INIT;
    br.sha256 = in->sha256;
    br.offset = f->off;
    br.length = TY_FETCH_RANGE;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_BLOB_READ;
    env.blob_read = &br;
    env.req_id = f->req = ++f->wk->next_req;
    f->last = ty_mono_ms();
    ty_wk_send(f->wk, &env);
}

/* ---- copying into the attempt directory, in the pool ---- */

static int ty_copy_file(const char *from, const char *to) {
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -errno;
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        int e = -errno;
        close(in);
        return e;
    }
    int rc = 0;
    for (;;) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
    }
    close(in);
    if (close(out) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

static void ty_copy_run(uv_work_t *req) {
    ty_fetch_t *f = req->data;
    for (size_t i = 0; i < f->d->n_inputs && !f->error; i++) {
        const Ty__InputRef *in = f->d->inputs[i];
        char *dest = ty_xasprintf("%s/%s", f->dir, in->path);
        char *tmp = ty_xstrdup(dest);
        int rc = ty_mkdirs(dirname(tmp));
        char *src = ty_cache_path(f->wk, in->sha256);
        if (rc == 0)
            rc = ty_copy_file(src, dest);
        if (rc != 0)
            f->error =
                ty_xasprintf("input %s: cannot copy it to %s: %s", in->key, dest, strerror(-rc));
        free(src);
        free(tmp);
        free(dest);
    }
}

static void ty_copy_done(uv_work_t *req, int status) {
    ty_fetch_t *f = req->data;
    f->copying = 0;
    if (f->dead) {
        ty_fetch_free(f);
        return;
    }
    if (status != 0 || f->error) {
        char *why = ty_xstrdup(f->error ? f->error : "inputs could not be copied");
        ty_fetch_fail(f, why);
        free(why);
        return;
    }
    ty_unlink_fetch(f);
    ty_exec_start(f->wk, f->d);
    ty_fetch_free(f);
}

/* ---- downloading into the cache ---- */

static void ty_next_input(ty_fetch_t *f) {
    while (f->cur < f->d->n_inputs) {
        const Ty__InputRef *in = f->d->inputs[f->cur];
        if (!ty_sha256_hex_ok(in->sha256)) {
            char *why = ty_xasprintf("input %s: %s has no stored content", in->key, in->source);
            ty_fetch_fail(f, why);
            free(why);
            return;
        }
        char *cache = ty_cache_path(f->wk, in->sha256);
        struct stat st;
        int have = stat(cache, &st) == 0 && (uint64_t)st.st_size == in->size;
        free(cache);
        if (!have)
            break;
        f->cur++; /* on this host already */
    }
    if (f->cur == f->d->n_inputs) {
        f->copying = 1;
        f->work.data = f;
        uv_queue_work(f->wk->loop, &f->work, ty_copy_run, ty_copy_done);
        return;
    }
    const Ty__InputRef *in = f->d->inputs[f->cur];
    char *dir = ty_xasprintf("%s/.cache/sha256", f->wk->workdir);
    int rc = ty_mkdirs(dir);
    free(dir);
    free(f->part);
    char *cache = ty_cache_path(f->wk, in->sha256);
    f->part = ty_xasprintf("%s.part.%d", cache, (int)getpid());
    free(cache);
    f->fd = rc == 0 ? open(f->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
    if (f->fd < 0) {
        char *why = ty_xasprintf("input %s: cannot create %s: %s", in->key, f->part,
                                 strerror(rc ? -rc : errno));
        ty_fetch_fail(f, why);
        free(why);
        return;
    }
    f->off = 0;
    ty_info("fetching input %s (%s, %llu bytes) from the master", in->key, in->source,
            (unsigned long long)in->size);
    ty_send_read(f);
}

static void ty_on_data(ty_fetch_t *f, const Ty__BlobData *bd) {
    const Ty__InputRef *in = f->d->inputs[f->cur];
    if (bd->offset != f->off)
        return; /* an answer to a range asked before */
    f->last = ty_mono_ms();
    char *why = NULL;
    if (bd->size != in->size || (bd->data.len == 0 && f->off < in->size))
        why = ty_xasprintf("input %s: the master's copy is %llu bytes, not %llu", in->key,
                           (unsigned long long)bd->size, (unsigned long long)in->size);
    else if (ty_write_all(f->fd, bd->data.data, bd->data.len) != 0)
        why = ty_xasprintf("input %s: writing %s: %s", in->key, f->part, strerror(errno));
    if (why) {
        ty_fetch_fail(f, why);
        free(why);
        return;
    }
    ty_sha256_update(f->h, bd->data.data, bd->data.len);
    f->off += bd->data.len;
    if (f->off < in->size) {
        ty_send_read(f);
        return;
    }
    char hex[TY_SHA256_HEX];
    ty_sha256_final(f->h, hex);
    int rc = fsync(f->fd) == 0 ? 0 : -errno;
    close(f->fd);
    f->fd = -1;
    char *cache = ty_cache_path(f->wk, in->sha256);
    if (strcmp(hex, in->sha256) != 0)
        why = ty_xasprintf("input %s: the bytes received hash to %.12s..., not %.12s...", in->key,
                           hex, in->sha256);
    else if (rc != 0 || rename(f->part, cache) != 0)
        why = ty_xasprintf("input %s: cannot keep it in %s: %s", in->key, cache,
                           strerror(rc ? -rc : errno));
    free(cache);
    if (why) {
        ty_fetch_fail(f, why);
        free(why);
        return;
    }
    free(f->part);
    f->part = NULL;
    f->cur++;
    ty_next_input(f);
}

void ty_fetch_on_msg(ty_wk_t *wk, const Ty__Envelope *env) {
    for (ty_fetch_t *f = wk->fetches; f; f = f->next) {
        if (f->copying || f->fd < 0 || env->req_id != f->req)
            continue;
        if (env->body_case == TY__ENVELOPE__BODY_BLOB_DATA) {
            ty_on_data(f, env->blob_data);
        } else if (env->body_case == TY__ENVELOPE__BODY_ERROR) {
            char *why =
                ty_xasprintf("input %s: %s", f->d->inputs[f->cur]->key, env->error->message);
            ty_fetch_fail(f, why);
            free(why);
        }
        return;
    }
}

void ty_fetch_tick(ty_wk_t *wk) {
    int64_t now = ty_mono_ms();
    for (ty_fetch_t *f = wk->fetches; f; f = f->next)
        if (!f->copying && f->fd >= 0 && now - f->last > TY_FETCH_SILENT_MS)
            ty_send_read(f); /* the same range again */
}

void ty_fetch_start(ty_wk_t *wk, const Ty__Dispatch *d) {
    ty_fetch_t *f = ty_xcalloc(1, sizeof *f);
    f->wk = wk;
    f->fd = -1;
    size_t len = ty__dispatch__get_packed_size(d);
    uint8_t *buf = ty_xmalloc(len ? len : 1);
    ty__dispatch__pack(d, buf);
    f->d = ty__dispatch__unpack(NULL, len, buf);
    free(buf);
    f->dir =
        ty_xasprintf("%s/%s/%s/%u", wk->workdir, d->ref->run_id, d->ref->task, d->ref->attempt);
    ty_sha256_create(&f->h);
    f->next = wk->fetches;
    wk->fetches = f;
    ty_next_input(f);
}

static ty_fetch_t *ty_fetch_find(ty_wk_t *wk, const Ty__TaskRef *ref) {
    for (ty_fetch_t *f = wk->fetches; f; f = f->next) {
        const Ty__TaskRef *r = f->d->ref;
        if (r->attempt == ref->attempt && strcmp(r->run_id, ref->run_id) == 0 &&
            strcmp(r->task, ref->task) == 0)
            return f;
    }
    return NULL;
}

int ty_fetch_has(ty_wk_t *wk, const Ty__TaskRef *ref) { return ty_fetch_find(wk, ref) != NULL; }

int ty_fetch_cancel(ty_wk_t *wk, const Ty__TaskRef *ref, const char *why) {
    ty_fetch_t *f = ty_fetch_find(wk, ref);
    if (!f)
        return 0;
    ty_fetch_end(f, why, 1, 0);
    return 1;
}

void ty_fetch_stop_all(ty_wk_t *wk, const char *why) {
    while (wk->fetches)
        ty_fetch_end(wk->fetches, why, 0, 1);
}

size_t ty_fetch_refs(ty_wk_t *wk, Ty__TaskRef **out) {
    size_t n = 0;
    for (ty_fetch_t *f = wk->fetches; f; f = f->next) {
        if (out)
            out[n] = f->d->ref;
        n++;
    }
    return n;
}
