/* The artifact store's reads: ranges of a blob (BlobRead), whether a
 * result's outputs are stored, and garbage collection; each in the pool
 * (the *_run side) with its answer on the loop (the *_done side). */
#include "master/blobs_int.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void ty_blobs_read_run(ty_work_t *w) {
    struct stat st;
    int fd = open(w->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        w->rc = errno == ENOENT ? TY_ENOENT : TY_EIO;
        snprintf(w->err, sizeof w->err, "%s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    w->size = (uint64_t)st.st_size;
    uint64_t left = w->off < w->size ? w->size - w->off : 0;
    size_t want = left < w->len ? (size_t)left : w->len; /* w->data holds w->len */
    while (w->got < want) {
        ssize_t k = pread(fd, w->data + w->got, want - w->got, (off_t)(w->off + w->got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        w->got += (size_t)k;
    }
    if (w->got < want) {
        w->rc = TY_EIO;
        snprintf(w->err, sizeof w->err, "short read");
    }
    close(fd);
}

void ty_blobs_read_done(ty_blobs_t *b, ty_work_t *w) {
    if (w->rc != 0) {
        char *msg = w->rc == TY_ENOENT
                        ? ty_xasprintf("no artifact with sha256 %s in the store", w->sha)
                        : ty_xasprintf("reading artifact %s: %s", w->sha, w->err);
        ty_blobs_send_error(b, w->client, w->peer, w->peer_len, w->req_id, w->rc, msg);
        free(msg);
        return;
    }
    Ty__BlobData d = TY__BLOB_DATA__INIT;
    d.sha256 = w->sha;
    d.offset = w->off;
    d.data.data = w->data;
    d.data.len = w->got;
    d.size = w->size;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_BLOB_DATA;
    env.blob_data = &d;
    b->st.bytes_out += w->got;
    b->send(b->arg, w->client, w->peer, w->peer_len, w->req_id, &env); /* copied */
}

/* A range's buffer back to the few kept for the next (the loop's side):
 * transfers reuse them instead of making the allocator grow and shrink. */
void ty_blobs_read_release(ty_blobs_t *b, ty_work_t *w) {
    if (w->data && b->nrfree < (int)(sizeof b->rfree / sizeof b->rfree[0]))
        b->rfree[b->nrfree++] = w->data;
    else
        free(w->data);
    w->data = NULL;
}

void ty_blobs_on_read(ty_blobs_t *b, int client, const uint8_t *peer, size_t peer_len,
                      uint64_t req_id, const Ty__BlobRead *br) {
    if (!ty_sha256_hex_ok(br->sha256)) {
        ty_blobs_send_error(b, client, peer, peer_len, req_id, TY_EINVAL,
                            "bad sha256 (want 64 lower-case hex digits)");
        return;
    }
    ty_work_t *w = ty_blobs_work_new(b, TY_W_READ);
    w->client = client;
    w->peer = ty_xmalloc(peer_len ? peer_len : 1);
    memcpy(w->peer, peer, peer_len);
    w->peer_len = peer_len;
    w->req_id = req_id;
    snprintf(w->sha, sizeof w->sha, "%s", br->sha256);
    w->off = br->offset;
    w->len = br->length && br->length < TY_READ_MAX ? br->length : TY_READ_MAX;
    w->data = b->nrfree ? b->rfree[--b->nrfree] : ty_xmalloc(TY_READ_MAX);
    w->path = ty_blobs_path(b, br->sha256);
    ty_blobs_work_queue(w);
}

void ty_blobs_check_run(ty_work_t *w) {
    struct stat st;
    for (size_t i = 0; i < w->n; i++) {
        if (w->found[i])
            continue;
        char *p = ty_blobs_path(w->b, w->shas[i]);
        w->found[i] = stat(p, &st) == 0;
        free(p);
    }
}

void ty_blobs_check_done(ty_blobs_t *b, ty_work_t *w) {
    const char *missing = NULL;
    for (size_t i = 0; i < w->n; i++) {
        if (w->found[i])
            zhashx_update(b->known, w->shas[i], (void *)1);
        else if (!missing)
            missing = w->shas[i];
    }
    w->cb(w->cb_arg, missing);
    for (size_t i = 0; i < w->n; i++)
        free(w->shas[i]);
    free(w->shas);
    free(w->found);
}

void ty_blobs_check(ty_blobs_t *b, char *const *shas, size_t n, ty_blobs_check_fn cb, void *arg) {
    ty_work_t *w = ty_blobs_work_new(b, TY_W_CHECK);
    w->shas = ty_xcalloc(n ? n : 1, sizeof *w->shas);
    w->found = ty_xcalloc(n ? n : 1, sizeof *w->found);
    int all = 1;
    for (size_t i = 0; i < n; i++) {
        w->shas[i] = ty_xstrdup(shas[i]);
        w->found[i] = ty_sha256_hex_ok(shas[i]) && zhashx_lookup(b->known, shas[i]) != NULL;
        all &= w->found[i];
    }
    w->n = n;
    w->cb = cb;
    w->cb_arg = arg;
    if (!all) {
        ty_blobs_work_queue(w);
        return;
    }
    b->pending++; /* answered now, as the pool would */
    ty_blobs_work_done(&w->req, 0);
}

/* In the pool: every blob under sha256/ that keep does not name and that
 * was stored more than grace_ms ago goes (or is counted, dry_run). */
void ty_blobs_gc_run(ty_work_t *w) {
    char *top = ty_xasprintf("%s/sha256", w->b->dir);
    DIR *d = opendir(top);
    struct dirent *e;
    time_t now = time(NULL);
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *sub = ty_xasprintf("%s/%s", top, e->d_name);
        DIR *s = opendir(sub);
        struct dirent *f;
        while (s && (f = readdir(s))) {
            if (!ty_sha256_hex_ok(f->d_name))
                continue;
            char *p = ty_xasprintf("%s/%s", sub, f->d_name);
            struct stat st;
            if (stat(p, &st) == 0) {
                int young = (int64_t)(now - st.st_mtime) * 1000 < w->grace_ms;
                if (zhashx_lookup(w->keep, f->d_name) || young) {
                    w->gc.blobs_kept++;
                    w->gc.bytes_kept += (uint64_t)st.st_size;
                } else if (w->dry_run || unlink(p) == 0) {
                    w->gc.blobs_deleted++;
                    w->gc.bytes_freed += (uint64_t)st.st_size;
                    if (w->gc.n_deleted < 1000) {
                        w->gc.deleted = ty_xrealloc(w->gc.deleted,
                                                    (w->gc.n_deleted + 1) * sizeof *w->gc.deleted);
                        w->gc.deleted[w->gc.n_deleted++] = ty_xstrdup(f->d_name);
                    }
                }
            }
            free(p);
        }
        if (s)
            closedir(s);
        free(sub);
    }
    if (d)
        closedir(d);
    free(top);
}

void ty_blobs_gc_done(ty_blobs_t *b, ty_work_t *w) {
    if (!w->dry_run)
        for (size_t i = 0; i < w->gc.n_deleted; i++)
            zhashx_delete(b->known, w->gc.deleted[i]);
    if (!w->dry_run && w->gc.n_deleted < w->gc.blobs_deleted)
        zhashx_purge(b->known); /* some not listed: ask the disk again */
    w->gc_cb(w->cb_arg, &w->gc);
    for (size_t i = 0; i < w->gc.n_deleted; i++)
        free(w->gc.deleted[i]);
    free(w->gc.deleted);
    zhashx_destroy(&w->keep);
}

void ty_blobs_gc(ty_blobs_t *b, zhashx_t *keep, int64_t grace_ms, int dry_run, ty_blobs_gc_fn cb,
                 void *arg) {
    ty_work_t *w = ty_blobs_work_new(b, TY_W_GC);
    w->keep = keep;
    w->grace_ms = grace_ms;
    w->dry_run = dry_run;
    ty__gc_reply__init(&w->gc);
    w->gc.dry_run = dry_run;
    w->gc_cb = cb;
    w->cb_arg = arg;
    ty_blobs_work_queue(w);
}
