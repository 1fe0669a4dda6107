/* The outputs of an attempt that exited 0 go to the master's artifact store
 * before its result does.  The declared outputs (paths and globs) and the
 * `artifact NAME PATH` report lines are resolved inside the attempt
 * directory (nothing outside it is read: `..`, absolute paths and symlinks
 * that leave it are refused), hashed in libuv's thread pool, and sent one
 * file at a time: UploadBegin, then chunks with their CRC-32, at most the
 * master's window unacknowledged, each read when it is sent (so a file of
 * any size costs window x chunk bytes here).  A file the master has
 * already is not sent.  A master that says nothing for TY_UP_SILENT_MS is
 * asked again (UploadBegin), and the upload resumes where the master's
 * file ends; after a failover it starts over with the new master.  The
 * attempt counts as running until its result leaves. */
#include "worker/worker.h"

#include "common/digest.h"
#include "common/log.h"
#include "common/report.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TY_UP_SILENT_MS 5000 /* no answer this long: begin the file again */
#define TY_UP_MAX_FILES 4096
#define TY_UP_WHOLE (64u << 10) /* a file this small goes whole with its UploadBegin */

typedef struct {
    char *name, *path;
    char sha[TY_SHA256_HEX];
    uint64_t size;
    ty_buf_t whole; /* a small file's bytes, read with its hash */
} ty_up_file_t;

struct ty_up {
    ty_wk_t *wk;
    ty_up_t *next;
    Ty__TaskResult *res; /* sent when every file is stored (or one failed) */
    char *dir;
    ty_up_file_t *files;
    size_t nfiles, cur;
    int hashing, begun, done;
    char *error; /* a file could not be hashed */
    int fd;
    uint64_t next_off, acked;
    uint32_t chunk, window;
    int64_t last; /* monotonic ms of the master's last answer (or our Begin) */
    int64_t t0;   /* monotonic ms when the hashing began */
    uv_work_t work;
    uint8_t *buf;
};

/* ---- which files ---- */

/* The real path of rel inside dir (whose real path is rdir), or NULL with
 * *why set: missing, a directory, or outside. */
static char *ty_inside(const char *dir, const char *rdir, const char *rel, char **why) {
    char *full = ty_xasprintf("%s/%s", dir, rel);
    char *real = realpath(full, NULL);
    free(full);
    struct stat st;
    size_t n = strlen(rdir);
    if (!real) {
        *why = ty_xasprintf("output %s not found", rel);
        return NULL;
    }
    if (strncmp(real, rdir, n) != 0 || real[n] != '/') {
        *why = ty_xasprintf("output %s is refused: it resolves outside the attempt directory", rel);
    } else if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
        *why = ty_xasprintf("output %s is not a regular file", rel);
    } else {
        return real;
    }
    free(real);
    return NULL;
}

static int ty_add_file(ty_up_t *u, const char *name, char *real, char **why) {
    for (size_t i = 0; i < u->nfiles; i++)
        if (strcmp(u->files[i].name, name) == 0) {
            free(real);
            *why = ty_xasprintf("two outputs are named %s", name);
            return -1;
        }
    if (u->nfiles >= TY_UP_MAX_FILES) {
        free(real);
        *why = ty_xasprintf("more than %d outputs", TY_UP_MAX_FILES);
        return -1;
    }
    u->files = ty_xrealloc(u->files, (u->nfiles + 1) * sizeof *u->files);
    ty_up_file_t *f = &u->files[u->nfiles++];
    memset(f, 0, sizeof *f);
    f->name = ty_xstrdup(name);
    f->path = real;
    return 0;
}

/* A declared output: a path, or a glob that must match at least one file. */
static int ty_add_declared(ty_up_t *u, const char *rdir, const char *pat, char **why) {
    const char *problem = ty_output_path_problem(pat);
    if (problem) {
        *why = ty_xasprintf("output %s is refused: it %s", pat, problem);
        return -1;
    }
    if (!strpbrk(pat, "*?[")) {
        char *real = ty_inside(u->dir, rdir, pat, why);
        return real ? ty_add_file(u, pat, real, why) : -1;
    }
    char *full = ty_xasprintf("%s/%s", u->dir, pat);
    glob_t g;
    int rc = glob(full, 0, NULL, &g);
    free(full);
    size_t off = strlen(u->dir) + 1, files = 0;
    for (size_t i = 0; rc == 0 && i < g.gl_pathc; i++) {
        const char *rel = g.gl_pathv[i] + off;
        struct stat st;
        if (stat(g.gl_pathv[i], &st) == 0 && S_ISDIR(st.st_mode))
            continue; /* a glob's directories are not outputs */
        char *real = ty_inside(u->dir, rdir, rel, why);
        if (!real || ty_add_file(u, rel, real, why) != 0) {
            globfree(&g);
            return -1;
        }
        files++;
    }
    if (rc == 0)
        globfree(&g);
    if (files == 0) {
        *why = ty_xasprintf("output %s not found", pat);
        return -1;
    }
    return 0;
}

/* An `artifact NAME PATH` line: PATH relative to the attempt directory,
 * or absolute inside it. */
static int ty_add_reported(ty_up_t *u, const char *rdir, const char *name, const char *path,
                           char **why) {
    const char *problem = ty_output_path_problem(name);
    if (problem) {
        *why = ty_xasprintf("artifact name %s is refused: it %s", name, problem);
        return -1;
    }
    const char *rel = path;
    size_t n = strlen(u->dir), rn = strlen(rdir);
    if (path[0] == '/' && strncmp(path, u->dir, n) == 0 && path[n] == '/')
        rel = path + n + 1;
    else if (path[0] == '/' && strncmp(path, rdir, rn) == 0 && path[rn] == '/')
        rel = path + rn + 1;
    else if (path[0] == '/') {
        *why =
            ty_xasprintf("artifact %s is refused: %s is outside the attempt directory", name, path);
        return -1;
    }
    char *real = ty_inside(u->dir, rdir, rel, why);
    if (!real) {
        char *w = *why;
        *why = ty_xasprintf("artifact %s: %s", name, w);
        free(w);
        return -1;
    }
    return ty_add_file(u, name, real, why);
}

/* ---- the upload ---- */

static void ty_up_send(ty_up_t *u, Ty__Envelope *env) { ty_wk_send(u->wk, env); }

static void ty_begin(ty_up_t *u) {
    ty_up_file_t *f = &u->files[u->cur];
    Ty__UploadBegin b = TY__UPLOAD_BEGIN__INIT;
    b.ref = u->res->ref;
    b.name = f->name;
    b.sha256 = f->sha;
    b.size = f->size;
    if (f->whole.len == f->size && f->size <= TY_UP_WHOLE) {
        b.whole = 1;
        b.data.data = (uint8_t *)f->whole.data;
        b.data.len = f->whole.len;
        b.crc32 = ty_crc32c(f->whole.data, f->whole.len);
    }
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_UPLOAD_BEGIN;
    env.upload_begin = &b;
    u->begun = 1;
    u->last = ty_mono_ms();
    ty_up_send(u, &env);
}

static void ty_up_free(ty_up_t *u) {
    for (size_t i = 0; i < u->nfiles; i++) {
        free(u->files[i].name);
        free(u->files[i].path);
        ty_buf_free(&u->files[i].whole);
    }
    free(u->files);
    if (u->fd >= 0)
        close(u->fd);
    free(u->dir);
    free(u->error);
    free(u->buf);
    if (u->res)
        ty__task_result__free_unpacked(u->res, NULL);
    free(u);
}

/* The end: the result leaves, with the outputs or the reason they failed. */
static void ty_up_finish(ty_up_t *u, const char *error) {
    ty_wk_t *wk = u->wk;
    for (ty_up_t **pp = &wk->uploads; *pp; pp = &(*pp)->next)
        if (*pp == u) {
            *pp = u->next;
            break;
        }
    Ty__TaskResult *res = u->res;
    Ty__ArtifactRef *refs = NULL, **ptrs = NULL;
    char *unpacked_error = res->error; /* protobuf-c's to free (or its static "") */
    if (error) {
        ty_warn("task %s/%s#%u: %s", res->ref->run_id, res->ref->task, res->ref->attempt, error);
        res->error = (char *)error;
    } else {
        refs = ty_xcalloc(u->nfiles ? u->nfiles : 1, sizeof *refs);
        ptrs = ty_xcalloc(u->nfiles ? u->nfiles : 1, sizeof *ptrs);
        for (size_t i = 0; i < u->nfiles; i++) {
            ty__artifact_ref__init(&refs[i]);
            refs[i].name = u->files[i].name;
            refs[i].sha256 = u->files[i].sha;
            refs[i].size = u->files[i].size;
            ptrs[i] = &refs[i];
        }
        res->outputs = ptrs;
        res->n_outputs = u->nfiles;
        ty_info("task %s/%s#%u: %zu outputs stored", res->ref->run_id, res->ref->task,
                res->ref->attempt, u->nfiles);
    }
    res->finished_ms = ty_now_ms();
    ty_wk_result(wk, res); /* copied */
    res->error = unpacked_error;
    res->outputs = NULL;
    res->n_outputs = 0;
    free(refs);
    free(ptrs);
    if (u->hashing) { /* the pool still has it: freed when the work comes back */
        u->done = 1;
        return;
    }
    ty_up_free(u);
}

static void ty_next_file(ty_up_t *u) {
    if (u->fd >= 0)
        close(u->fd);
    u->fd = -1;
    u->begun = 0;
    if (++u->cur >= u->nfiles) {
        ty_up_finish(u, NULL);
        return;
    }
    ty_begin(u);
}

/* Send chunks while the window has room. */
static void ty_pump(ty_up_t *u) {
    ty_up_file_t *f = &u->files[u->cur];
    uint64_t room = (uint64_t)u->window * u->chunk;
    while (u->next_off < f->size && u->next_off - u->acked < room) {
        uint64_t left = f->size - u->next_off;
        size_t n = left < u->chunk ? (size_t)left : u->chunk;
        size_t got = 0;
        while (got < n) {
            ssize_t k = pread(u->fd, u->buf + got, n - got, (off_t)(u->next_off + got));
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                break;
            got += (size_t)k;
        }
        if (got < n) {
            char *why =
                ty_xasprintf("output %s changed while it was uploaded (short read)", f->name);
            ty_up_finish(u, why);
            free(why);
            return;
        }
        Ty__UploadChunk c = TY__UPLOAD_CHUNK__INIT;
        c.sha256 = f->sha;
        c.offset = u->next_off;
        c.data.data = u->buf;
        c.data.len = n;
        c.crc32 = ty_crc32c(u->buf, n);
        Ty__Envelope env = TY__ENVELOPE__INIT;
        env.body_case = TY__ENVELOPE__BODY_UPLOAD_CHUNK;
        env.upload_chunk = &c;
        ty_up_send(u, &env);
        u->next_off += n;
    }
}

static ty_up_t *ty_up_for(ty_wk_t *wk, const char *sha) {
    for (ty_up_t *u = wk->uploads; u; u = u->next)
        if (u->begun && !u->hashing && strcmp(u->files[u->cur].sha, sha) == 0)
            return u;
    return NULL;
}

static void ty_on_ready(ty_wk_t *wk, const Ty__UploadReady *r) {
    ty_up_t *u = ty_up_for(wk, r->sha256);
    if (!u)
        return;
    u->last = ty_mono_ms();
    ty_up_file_t *f = &u->files[u->cur];
    if (*r->error) {
        char *why = ty_xasprintf("output %s: %s", f->name, r->error);
        ty_up_finish(u, why);
        free(why);
        return;
    }
    if (r->stored) {
        ty_debug("output %s (%.12s...) is in the store already", f->name, f->sha);
        ty_next_file(u);
        return;
    }
    u->chunk = r->chunk ? r->chunk : 256u << 10;
    u->window = r->window ? r->window : 4;
    free(u->buf);
    u->buf = ty_xmalloc(u->chunk);
    if (u->fd < 0)
        u->fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (u->fd < 0) {
        char *why = ty_xasprintf("output %s: %s", f->name, strerror(errno));
        ty_up_finish(u, why);
        free(why);
        return;
    }
    u->next_off = u->acked = r->offset;
    ty_pump(u);
}

static void ty_on_ack(ty_wk_t *wk, const Ty__UploadAck *a) {
    ty_up_t *u = ty_up_for(wk, a->sha256);
    if (!u || u->fd < 0)
        return;
    u->last = ty_mono_ms();
    if (*a->error) {
        char *why = ty_xasprintf("output %s: %s", u->files[u->cur].name, a->error);
        ty_up_finish(u, why);
        free(why);
        return;
    }
    if (a->stored) {
        ty_next_file(u);
        return;
    }
    if (a->rejected && a->offset < u->next_off)
        u->next_off = a->offset; /* a chunk failed its CRC or was out of order */
    else if (a->offset > u->acked)
        u->acked = a->offset;
    ty_pump(u);
}

void ty_up_on_msg(ty_wk_t *wk, const Ty__Envelope *env) {
    if (env->body_case == TY__ENVELOPE__BODY_UPLOAD_READY)
        ty_on_ready(wk, env->upload_ready);
    else if (env->body_case == TY__ENVELOPE__BODY_UPLOAD_ACK)
        ty_on_ack(wk, env->upload_ack);
}

void ty_up_tick(ty_wk_t *wk) {
    int64_t now = ty_mono_ms();
    for (ty_up_t *u = wk->uploads; u; u = u->next)
        if (u->begun && !u->hashing && now - u->last > TY_UP_SILENT_MS) {
            ty_info("upload of %s: no answer for %d s; asking the master again",
                    u->files[u->cur].name, TY_UP_SILENT_MS / 1000);
            ty_begin(u); /* resume where the master's copy ends */
        }
}

/* ---- hashing, in the pool ---- */

static void ty_hash_run(uv_work_t *req) {
    ty_up_t *u = req->data;
    for (size_t i = 0; i < u->nfiles && !u->error; i++) {
        ty_up_file_t *f = &u->files[i];
        int rc = ty_sha256_file(f->path, f->sha, &f->size);
        if (rc == 0 && f->size <= TY_UP_WHOLE && ty_read_file(f->path, &f->whole) != 0)
            ty_buf_free(&f->whole); /* sent in chunks, then */
        if (rc != 0)
            u->error = ty_xasprintf("output %s: %s", u->files[i].name, strerror(-rc));
    }
}

static void ty_hash_done(uv_work_t *req, int status) {
    ty_up_t *u = req->data;
    u->hashing = 0;
    if (u->done) { /* cancelled meanwhile */
        ty_up_free(u);
        return;
    }
    if (status != 0 || u->error) {
        char *why = u->error ? ty_xstrdup(u->error) : ty_xstrdup("outputs could not be hashed");
        ty_up_finish(u, why);
        free(why);
        return;
    }
    u->cur = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < u->nfiles; i++)
        bytes += u->files[i].size;
    ty_debug("%zu outputs (%llu bytes) hashed in %lld ms", u->nfiles, (unsigned long long)bytes,
             (long long)(ty_mono_ms() - u->t0));
    ty_begin(u);
}

void ty_up_start(ty_wk_t *wk, const char *dir, char *const *declared, size_t ndeclared,
                 const Ty__ReportItem *const *reported, size_t nreported,
                 const Ty__TaskResult *res) {
    ty_up_t *u = ty_xcalloc(1, sizeof *u);
    u->wk = wk;
    u->fd = -1;
    u->dir = ty_xstrdup(dir);
    size_t len = ty__task_result__get_packed_size(res);
    uint8_t *buf = ty_xmalloc(len ? len : 1);
    ty__task_result__pack(res, buf);
    u->res = ty__task_result__unpack(NULL, len, buf);
    free(buf);
    u->next = wk->uploads;
    wk->uploads = u;
    char *why = NULL;
    char *rdir = realpath(dir, NULL);
    if (!rdir)
        why = ty_xasprintf("attempt directory %s: %s", dir, strerror(errno));
    for (size_t i = 0; !why && i < ndeclared; i++)
        ty_add_declared(u, rdir, declared[i], &why);
    for (size_t i = 0; !why && i < nreported; i++)
        ty_add_reported(u, rdir, reported[i]->name, reported[i]->text, &why);
    free(rdir);
    if (why) {
        ty_up_finish(u, why);
        free(why);
        return;
    }
    if (u->nfiles == 0) {
        ty_up_finish(u, NULL);
        return;
    }
    u->hashing = 1;
    u->t0 = ty_mono_ms();
    u->work.data = u;
    uv_queue_work(wk->loop, &u->work, ty_hash_run, ty_hash_done);
}

int ty_up_cancel(ty_wk_t *wk, const Ty__TaskRef *ref) {
    for (ty_up_t *u = wk->uploads; u; u = u->next) {
        const Ty__TaskRef *r = u->res->ref;
        if (r->attempt == ref->attempt && strcmp(r->run_id, ref->run_id) == 0 &&
            strcmp(r->task, ref->task) == 0) {
            u->res->cancelled = 1;
            ty_up_finish(u, "cancelled while its outputs were uploaded");
            return 1;
        }
    }
    return 0;
}

int ty_up_has(const ty_wk_t *wk, const Ty__TaskRef *ref) {
    for (const ty_up_t *u = wk->uploads; u; u = u->next) {
        const Ty__TaskRef *r = u->res->ref;
        if (r->attempt == ref->attempt && strcmp(r->run_id, ref->run_id) == 0 &&
            strcmp(r->task, ref->task) == 0)
            return 1;
    }
    return 0;
}

void ty_up_stop_all(ty_wk_t *wk, const char *why) {
    while (wk->uploads) {
        wk->uploads->res->interrupted = 1;
        ty_up_finish(wk->uploads, why);
    }
}

size_t ty_up_count(const ty_wk_t *wk) {
    size_t n = 0;
    for (const ty_up_t *u = wk->uploads; u; u = u->next)
        n++;
    return n;
}

size_t ty_up_refs(ty_wk_t *wk, Ty__TaskRef **out) {
    size_t n = 0;
    for (ty_up_t *u = wk->uploads; u; u = u->next)
        out[n++] = u->res->ref;
    return n;
}
