#include "master/blobs.h"
#include "master/blobs_int.h"

#include "common/digest.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void ty_blobs_opts_default(ty_blobs_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->dir = "./.trainyard/master/store";
    o->max_artifact = 64ull << 30;
    o->chunk = 256u << 10;
    o->window = 8;
    o->max_uploads = 64;
    o->idle_ms = 60000;
}

char *ty_blobs_path(const ty_blobs_t *b, const char *sha) {
    return ty_xasprintf("%s/sha256/%.2s/%s", b->dir, sha, sha);
}

static void ty_sweep_cb(uv_timer_t *h) { ty_blobs_sweep(h->data); }

int ty_blobs_create(ty_blobs_t **out, uv_loop_t *loop, const ty_blobs_opts_t *o,
                    ty_blobs_send_fn send, void *arg) {
    ty_blobs_t *b = ty_xcalloc(1, sizeof *b);
    b->loop = loop;
    b->o = *o;
    b->dir = ty_xstrdup(o->dir);
    b->o.dir = b->dir;
    b->tmpdir = ty_xasprintf("%s/tmp", b->dir);
    char *shadir = ty_xasprintf("%s/sha256", b->dir);
    int rc = ty_mkdirs(shadir);
    if (rc == 0)
        rc = ty_mkdirs(b->tmpdir);
    free(shadir);
    if (rc != 0) {
        ty_error("artifact store %s: %s", b->dir, strerror(-rc));
        free(b->tmpdir);
        free(b->dir);
        free(b);
        return TY_EIO;
    }
    b->send = send;
    b->arg = arg;
    b->uploads = zhashx_new();
    b->known = zhashx_new();
    b->wq_tail = &b->wq;
    uv_timer_init(loop, &b->sweep);
    b->sweep.data = b;
    b->timer_open = 1;
    int64_t every = o->idle_ms / 4 > 0 ? o->idle_ms / 4 : 1;
    uv_timer_start(&b->sweep, ty_sweep_cb, (uint64_t)every, (uint64_t)every);
    uv_unref((uv_handle_t *)&b->sweep);
    *out = b;
    return 0;
}

/* ---- replies ---- */

void ty_blobs_send_ready(ty_blobs_t *b, const uint8_t *peer, size_t peer_len, const char *sha,
                         uint64_t offset, int stored, const char *error) {
    Ty__UploadReady r = TY__UPLOAD_READY__INIT;
    r.sha256 = (char *)sha;
    r.offset = offset;
    r.stored = stored;
    r.error = (char *)(error ? error : "");
    r.window = b->o.window;
    r.chunk = b->o.chunk;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_UPLOAD_READY;
    env.upload_ready = &r;
    b->send(b->arg, 0, peer, peer_len, 0, &env);
}

static void ty_send_ack(ty_upload_t *u, int rejected, const char *error) {
    Ty__UploadAck a = TY__UPLOAD_ACK__INIT;
    a.sha256 = u->sha;
    a.offset = rejected ? u->accepted : u->written;
    a.stored = u->committed;
    a.rejected = rejected;
    a.error = (char *)(error ? error : "");
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_UPLOAD_ACK;
    env.upload_ack = &a;
    u->b->send(u->b->arg, 0, u->peer, u->peer_len, 0, &env);
}

void ty_blobs_send_error(ty_blobs_t *b, int client, const uint8_t *peer, size_t peer_len,
                         uint64_t req_id, int code, const char *msg) {
    Ty__ErrorReply e = TY__ERROR_REPLY__INIT;
    e.code = code;
    e.message = (char *)msg;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_ERROR;
    env.error = &e;
    b->send(b->arg, client, peer, peer_len, req_id, &env);
}

/* ---- the thread pool ---- */

ty_work_t *ty_blobs_work_new(ty_blobs_t *b, int kind) {
    ty_work_t *w = ty_xcalloc(1, sizeof *w);
    w->req.data = w;
    w->kind = kind;
    w->b = b;
    return w;
}

static void ty_work_run(uv_work_t *req);
void ty_blobs_work_done(uv_work_t *req, int status);

void ty_blobs_work_queue(ty_work_t *w) {
    w->b->pending++;
    if (w->u)
        w->u->busy = 1;
    uv_queue_work(w->b->loop, &w->req, ty_work_run, ty_blobs_work_done);
}

int ty_blobs_fsync_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

static int ty_open_tmp(ty_upload_t *u) {
    if (u->fd >= 0)
        return 0;
    u->fd = open(u->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    return u->fd < 0 ? -errno : 0;
}

/* In the pool: the temporary file is complete; check, sync, move into place. */
static void ty_commit(ty_work_t *w) {
    ty_upload_t *u = w->u;
    int rc = ty_open_tmp(u);
    if (rc != 0) {
        snprintf(w->err, sizeof w->err, "cannot create %s: %s", u->tmp, strerror(-rc));
        w->rc = TY_EIO;
        return;
    }
    char got[TY_SHA256_HEX];
    ty_sha256_final(u->h, got);
    if (strcmp(got, u->sha) != 0) {
        snprintf(w->err, sizeof w->err,
                 "the content's sha256 is %.12s..., not %.12s... as declared", got, u->sha);
        w->rc = TY_EINVAL;
        return;
    }
    int64_t t0 = ty_mono_ms();
    if (fsync(u->fd) != 0) {
        snprintf(w->err, sizeof w->err, "fsync %s: %s", u->tmp, strerror(errno));
        w->rc = TY_EIO;
        return;
    }
    close(u->fd);
    u->fd = -1;
    char *final = ty_blobs_path(w->b, u->sha);
    char *sub = ty_xasprintf("%s/sha256/%.2s", w->b->dir, u->sha);
    rc = ty_mkdirs(sub);
    struct stat st;
    if (rc == 0 && stat(final, &st) == 0 && (uint64_t)st.st_size == u->size) {
        unlink(u->tmp); /* stored meanwhile by another upload: one copy */
    } else if (rc == 0 && rename(u->tmp, final) != 0) {
        rc = -errno;
    } else if (rc == 0) {
        rc = ty_blobs_fsync_dir(sub);
    }
    if (rc != 0) {
        snprintf(w->err, sizeof w->err, "storing %s: %s", final, strerror(-rc));
        w->rc = TY_EIO;
    }
    u->sync_ms = ty_mono_ms() - t0;
    free(sub);
    free(final);
}

static void ty_work_run(uv_work_t *req) {
    ty_work_t *w = req->data;
    ty_upload_t *u = w->u;
    struct stat st;
    switch (w->kind) {
    case TY_W_WRITE: /* every chunk queued when it started, in order */
        for (ty_chunk_t *c = w->c; c && w->rc == 0; c = c->next) {
            int rc = ty_open_tmp(u);
            if (rc == 0)
                rc = ty_pwrite_all(u->fd, c->data, c->len, c->off);
            if (rc != 0) {
                snprintf(w->err, sizeof w->err, "writing %s: %s", u->tmp, strerror(-rc));
                w->rc = TY_EIO;
                break;
            }
            /* start the write-back now: the fsync at the end then has little left */
            sync_file_range(u->fd, (off_t)c->off, (off_t)c->len, SYNC_FILE_RANGE_WRITE);
            ty_sha256_update(u->h, c->data, c->len);
            w->got += c->len;
        }
        break;
    case TY_W_COMMIT:
        ty_commit(w);
        break;
    case TY_W_READ:
        ty_blobs_read_run(w);
        break;
    case TY_W_STAT:
        w->rc = stat(w->path, &st) == 0 ? 0 : TY_ENOENT;
        break;
    case TY_W_CHECK:
        ty_blobs_check_run(w);
        break;
    case TY_W_CLEAN: {
        DIR *d = opendir(w->path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char *p = ty_xasprintf("%s/%s", w->path, e->d_name);
            if (unlink(p) == 0)
                w->got++;
            free(p);
        }
        if (d)
            closedir(d);
        break;
    }
    case TY_W_UNLINK:
        if (u->fd >= 0)
            close(u->fd);
        u->fd = -1;
        unlink(u->tmp);
        break;
    case TY_W_GC:
        ty_blobs_gc_run(w);
        break;
    case TY_W_GROUP:
        ty_blobs_group_run(w);
        break;
    }
}

static void ty_upload_free(ty_upload_t *u) {
    while (u->q) {
        ty_chunk_t *c = u->q;
        u->q = c->next;
        free(c->data);
        free(c);
    }
    ty_sha256_destroy(&u->h);
    free(u->key);
    free(u->peer);
    free(u->tmp);
    free(u);
}

/* Forget u: its file goes (in the pool), then u itself. */
static void ty_upload_drop(ty_upload_t *u) {
    ty_blobs_t *b = u->b;
    if (zhashx_lookup(b->uploads, u->key) == u)
        zhashx_delete(b->uploads, u->key);
    u->dead = 1;
    if (u->busy)
        return; /* ty_work_done carries on */
    if (u->committed || (u->fd < 0 && u->written == 0)) {
        if (u->fd >= 0)
            close(u->fd);
        ty_upload_free(u);
        return;
    }
    ty_work_t *w = ty_blobs_work_new(b, TY_W_UNLINK);
    w->u = u;
    ty_blobs_work_queue(w);
}

static void ty_kick(ty_upload_t *u);

static void ty_upload_failed(ty_upload_t *u, const char *why) {
    ty_warn("upload %.12s... (%llu bytes) failed: %s", u->sha, (unsigned long long)u->size, why);
    ty_send_ack(u, 0, why);
    ty_upload_drop(u);
}

static unsigned ty_fnv1a(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* An UploadBegin's look in the store came back (w->name is the key). */
static void ty_stat_done(ty_blobs_t *b, ty_work_t *w) {
    ty_upload_t *have = zhashx_lookup(b->uploads, w->name);
    if (w->rc == 0) { /* stored already: nothing to send */
        zhashx_update(b->known, w->sha, (void *)1);
        b->st.deduplicated++;
        ty_blobs_send_ready(b, w->peer, w->peer_len, w->sha, w->size, 1, NULL);
        return;
    }
    if (have) { /* a repeated Begin made it meanwhile */
        ty_blobs_send_ready(b, w->peer, w->peer_len, w->sha, have->accepted, 0, NULL);
        return;
    }
    ty_upload_t *n = ty_xcalloc(1, sizeof *n);
    n->b = b;
    n->key = w->name;
    w->name = NULL;
    n->peer = ty_xmalloc(w->peer_len ? w->peer_len : 1);
    memcpy(n->peer, w->peer, w->peer_len);
    n->peer_len = w->peer_len;
    memcpy(n->sha, w->sha, sizeof n->sha);
    n->size = w->size;
    n->fd = -1;
    n->qtail = &n->q;
    ty_sha256_create(&n->h);
    n->tmp = ty_xasprintf("%s/%s.%08x", b->tmpdir, w->sha, ty_fnv1a(n->key));
    n->last = n->begun = ty_mono_ms();
    zhashx_insert(b->uploads, n->key, n);
    b->st.uploads++;
    ty_blobs_send_ready(b, w->peer, w->peer_len, w->sha, 0, 0, NULL);
    ty_kick(n); /* an empty file is complete already */
}

void ty_blobs_work_done(uv_work_t *req, int status) {
    ty_work_t *w = req->data;
    ty_blobs_t *b = w->b;
    ty_upload_t *u = w->u;
    b->pending--;
    int dropped = 0; /* u was dropped while this work ran: finish that */
    if (u) {
        u->busy = 0;
        dropped = u->dead;
    }
    switch (w->kind) {
    case TY_W_WRITE:
        if (!dropped && w->rc == 0) {
            u->written += w->got;
            b->st.bytes_in += w->got;
            ty_send_ack(u, 0, NULL);
        } else if (!dropped) {
            ty_upload_failed(u, w->err);
            u = NULL;
        }
        while (w->c) {
            ty_chunk_t *c = w->c;
            w->c = c->next;
            free(c->data);
            free(c);
        }
        break;
    case TY_W_COMMIT:
        if (!dropped && w->rc == 0) {
            u->committed = 1;
            b->st.stored++;
            zhashx_update(b->known, u->sha, (void *)1);
            ty_info("stored %s (%llu bytes in %lld ms, of which %lld ms fsync and rename)", u->sha,
                    (unsigned long long)u->size, (long long)(ty_mono_ms() - u->begun),
                    (long long)u->sync_ms);
            ty_send_ack(u, 0, NULL);
            ty_upload_drop(u);
            u = NULL;
        } else if (!dropped) {
            ty_upload_failed(u, w->err);
            u = NULL;
        }
        break;
    case TY_W_READ:
        ty_blobs_read_done(b, w);
        ty_blobs_read_release(b, w);
        break;
    case TY_W_STAT:
        ty_stat_done(b, w);
        break;
    case TY_W_CHECK:
        ty_blobs_check_done(b, w);
        break;
    case TY_W_CLEAN:
        if (w->got)
            ty_info("artifact store: removed %zu unfinished uploads an earlier master left",
                    w->got);
        break;
    case TY_W_UNLINK:
        ty_upload_free(u);
        u = NULL;
        break;
    case TY_W_GC:
        ty_blobs_gc_done(b, w);
        break;
    case TY_W_GROUP:
        ty_blobs_group_done(b, w);
        break;
    }
    (void)status;
    free(w->peer);
    free(w->path);
    free(w->name);
    free(w->data);
    free(w);
    if (u && dropped)
        ty_upload_drop(u);
    else if (u)
        ty_kick(u);
}

/* Start u's next piece of work: the chunks queued (written in order), or the commit
 * once every byte is written. */
static void ty_kick(ty_upload_t *u) {
    if (u->busy || u->dead || u->committed)
        return;
    if (u->q) { /* all that is queued, in one piece of work: one ack for them */
        ty_work_t *w = ty_blobs_work_new(u->b, TY_W_WRITE);
        w->u = u;
        w->c = u->q;
        u->q = NULL;
        u->qtail = &u->q;
        ty_blobs_work_queue(w);
    } else if (u->written == u->size) {
        ty_work_t *w = ty_blobs_work_new(u->b, TY_W_COMMIT);
        w->u = u;
        ty_blobs_work_queue(w);
    }
}

/* ---- messages ---- */

static char *ty_upload_key(const uint8_t *peer, size_t peer_len, const char *sha) {
    char *hex = ty_xmalloc(peer_len * 2 + 1);
    for (size_t i = 0; i < peer_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", peer[i]);
    hex[2 * peer_len] = '\0';
    char *key = ty_xasprintf("%s/%s", hex, sha);
    free(hex);
    return key;
}

static void ty_on_begin(ty_blobs_t *b, const uint8_t *peer, size_t peer_len,
                        const Ty__UploadBegin *ub) {
    if (!ty_sha256_hex_ok(ub->sha256)) {
        ty_blobs_send_ready(b, peer, peer_len, "", 0, 0,
                            "bad sha256 (want 64 lower-case hex digits)");
        return;
    }
    const char *why = ty_output_path_problem(ub->name);
    if (why) {
        char *msg = ty_xasprintf("artifact name '%.200s' %s", ub->name, why);
        ty_blobs_send_ready(b, peer, peer_len, ub->sha256, 0, 0, msg);
        free(msg);
        return;
    }
    if (b->o.max_artifact && ub->size > b->o.max_artifact) {
        char *msg = ty_xasprintf("artifact %s is %llu bytes, over the master's "
                                 "--max-artifact-bytes %llu",
                                 ub->name, (unsigned long long)ub->size,
                                 (unsigned long long)b->o.max_artifact);
        ty_blobs_send_ready(b, peer, peer_len, ub->sha256, 0, 0, msg);
        free(msg);
        return;
    }
    char *key = ty_upload_key(peer, peer_len, ub->sha256);
    ty_upload_t *u = zhashx_lookup(b->uploads, key);
    if (u) { /* resumed (a dropped connection, a lost answer): go on from here */
        u->last = ty_mono_ms();
        ty_blobs_send_ready(b, peer, peer_len, u->sha, u->accepted, 0, NULL);
        free(key);
        return;
    }
    if (zhashx_lookup(b->known, ub->sha256)) {
        b->st.deduplicated++;
        ty_blobs_send_ready(b, peer, peer_len, ub->sha256, ub->size, 1, NULL);
        free(key);
        return;
    }
    if (ub->whole && ty_blobs_whole_add(b, peer, peer_len, ub) == 0) {
        free(key); /* answered when its group is durable */
        return;
    }
    if (zhashx_size(b->uploads) >= b->o.max_uploads) {
        char *msg = ty_xasprintf("the master has %u uploads running (its limit)", b->o.max_uploads);
        ty_blobs_send_ready(b, peer, peer_len, ub->sha256, 0, 0, msg);
        free(msg);
        free(key);
        return;
    }
    ty_work_t *w = ty_blobs_work_new(b, TY_W_STAT);
    w->path = ty_blobs_path(b, ub->sha256);
    w->name = key;
    w->peer = ty_xmalloc(peer_len ? peer_len : 1);
    memcpy(w->peer, peer, peer_len);
    w->peer_len = peer_len;
    snprintf(w->sha, sizeof w->sha, "%s", ub->sha256);
    w->size = ub->size;
    ty_blobs_work_queue(w);
}

static void ty_on_chunk(ty_blobs_t *b, const uint8_t *peer, size_t peer_len,
                        const Ty__UploadChunk *uc) {
    if (!ty_sha256_hex_ok(uc->sha256))
        return;
    char *key = ty_upload_key(peer, peer_len, uc->sha256);
    ty_upload_t *u = zhashx_lookup(b->uploads, key);
    free(key);
    if (!u || u->dead)
        return; /* unknown (a restarted master): the worker begins again */
    u->last = ty_mono_ms();
    size_t len = uc->data.len;
    if (uc->offset + len <= u->accepted && len > 0)
        return; /* sent again after a rewind: already here */
    if (uc->offset != u->accepted || len == 0 || len > b->o.chunk) {
        ty_send_ack(u, 1, NULL); /* out of order: go on from what is accepted */
        return;
    }
    if (uc->offset + len > u->size) {
        ty_upload_failed(u, "more bytes than the declared size");
        return;
    }
    if (ty_crc32c(uc->data.data, len) != uc->crc32) {
        b->st.rejected_chunks++;
        ty_warn("upload %.12s...: the chunk at %llu failed its CRC-32; asked again", u->sha,
                (unsigned long long)uc->offset);
        if (++u->crc_bad > TY_CRC_FAILURES)
            ty_upload_failed(u, "too many chunks failed their CRC-32");
        else
            ty_send_ack(u, 1, NULL);
        return;
    }
    ty_chunk_t *c = ty_xcalloc(1, sizeof *c);
    c->off = uc->offset;
    c->len = len;
    c->data = ty_xmalloc(len);
    memcpy(c->data, uc->data.data, len);
    *u->qtail = c;
    u->qtail = &c->next;
    u->accepted += len;
    ty_kick(u);
}

void ty_blobs_on_msg(ty_blobs_t *b, int client, const uint8_t *peer, size_t peer_len,
                     const Ty__Envelope *env) {
    switch (env->body_case) {
    case TY__ENVELOPE__BODY_UPLOAD_BEGIN:
        if (!client)
            ty_on_begin(b, peer, peer_len, env->upload_begin);
        break;
    case TY__ENVELOPE__BODY_UPLOAD_CHUNK:
        if (!client)
            ty_on_chunk(b, peer, peer_len, env->upload_chunk);
        break;
    case TY__ENVELOPE__BODY_BLOB_READ:
        ty_blobs_on_read(b, client, peer, peer_len, env->req_id, env->blob_read);
        break;
    default:
        break;
    }
}

void ty_blobs_refuse(ty_blobs_t *b, const uint8_t *peer, size_t peer_len, const char *sha256,
                     const char *msg) {
    ty_blobs_send_ready(b, peer, peer_len, sha256, 0, 0, msg);
}

void ty_blobs_drop_peer(ty_blobs_t *b, const uint8_t *peer, size_t peer_len) {
    zlistx_t *all = zhashx_values(b->uploads);
    for (ty_upload_t *u = zlistx_first(all); u; u = zlistx_next(all))
        if (u->peer_len == peer_len && memcmp(u->peer, peer, peer_len) == 0) {
            ty_info("upload %.12s... dropped: its worker registered afresh", u->sha);
            ty_upload_drop(u);
        }
    zlistx_destroy(&all);
}

void ty_blobs_reset(ty_blobs_t *b) {
    zlistx_t *all = zhashx_values(b->uploads);
    for (ty_upload_t *u = zlistx_first(all); u; u = zlistx_next(all))
        ty_upload_drop(u);
    zlistx_destroy(&all);
    ty_work_t *w = ty_blobs_work_new(b, TY_W_CLEAN);
    w->path = ty_xstrdup(b->tmpdir);
    ty_blobs_work_queue(w);
}

size_t ty_blobs_sweep(ty_blobs_t *b) {
    int64_t now = ty_mono_ms();
    size_t n = 0;
    zlistx_t *all = zhashx_values(b->uploads);
    for (ty_upload_t *u = zlistx_first(all); u; u = zlistx_next(all))
        if (now - u->last > b->o.idle_ms) {
            ty_info("upload %.12s... from a silent worker dropped after %lld ms", u->sha,
                    (long long)(now - u->last));
            ty_upload_drop(u);
            n++;
        }
    zlistx_destroy(&all);
    return n;
}

void ty_blobs_stats(const ty_blobs_t *b, ty_blobs_stats_t *s) {
    *s = b->st;
    s->active = zhashx_size(b->uploads);
}

static void ty_timer_closed(uv_handle_t *h) {
    ty_blobs_t *b = h->data;
    b->timer_open = 0;
}

void ty_blobs_destroy(ty_blobs_t **bp) {
    ty_blobs_t *b = bp ? *bp : NULL;
    if (!b)
        return;
    zlistx_t *all = zhashx_values(b->uploads);
    for (ty_upload_t *u = zlistx_first(all); u; u = zlistx_next(all))
        ty_upload_drop(u);
    zlistx_destroy(&all);
    ty_blobs_whole_free_all(b);
    uv_close((uv_handle_t *)&b->sweep, ty_timer_closed);
    while (b->pending > 0 || b->timer_open)
        uv_run(b->loop, UV_RUN_ONCE);
    zhashx_destroy(&b->uploads);
    zhashx_destroy(&b->known);
    while (b->nrfree > 0)
        free(b->rfree[--b->nrfree]);
    free(b->tmpdir);
    free(b->dir);
    free(b);
    *bp = NULL;
}
