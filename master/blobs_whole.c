/* Small files that come whole with their UploadBegin (at most
 * TY_WHOLE_MAX bytes): one message each way instead of Begin, Ready,
 * chunk, ack and commit, and their durable writes grouped.  The files
 * that arrive while a group is in the pool wait for the next one, as
 * etcd writes wait for the next txn: a group writes every file to tmp/,
 * fsyncs them, renames them into place and fsyncs each directory it
 * touched once.  Each file still goes through its own digest check and
 * is answered only once durable (UploadReady stored). */
#include "master/blobs_int.h"

#include "common/digest.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int64_t ty_mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void ty_group_start(ty_blobs_t *b) {
    if (b->group_busy || !b->wq)
        return;
    ty_work_t *w = ty_blobs_work_new(b, TY_W_GROUP);
    w->group = b->wq;
    b->wq = NULL;
    b->wq_tail = &b->wq;
    b->wq_bytes = 0;
    b->group_busy = 1;
    b->st.groups++;
    ty_blobs_work_queue(w);
}

int ty_blobs_whole_add(ty_blobs_t *b, const uint8_t *peer, size_t peer_len,
                       const Ty__UploadBegin *ub) {
    size_t len = ub->data.len;
    if (len != ub->size || len > TY_WHOLE_MAX || b->wq_bytes + len > TY_WHOLE_QUEUED)
        return -1;
    if (ty_crc32c(ub->data.data, len) != ub->crc32) {
        b->st.rejected_chunks++;
        ty_warn("upload %.12s...: the whole file failed its CRC-32; asked for chunks", ub->sha256);
        return -1;
    }
    for (ty_whole_t *q = b->wq; q; q = q->next)
        if (q->peer_len == peer_len && memcmp(q->peer, peer, peer_len) == 0 &&
            strcmp(q->sha, ub->sha256) == 0)
            return 0; /* asked again while it waits: answered once it is stored */
    ty_whole_t *x = ty_xcalloc(1, sizeof *x);
    x->peer = ty_xmalloc(peer_len ? peer_len : 1);
    memcpy(x->peer, peer, peer_len);
    x->peer_len = peer_len;
    snprintf(x->sha, sizeof x->sha, "%s", ub->sha256);
    x->data = ty_xmalloc(len ? len : 1);
    memcpy(x->data, ub->data.data, len);
    x->len = len;
    x->fd = -1;
    x->tmp = ty_xasprintf("%s/%s.w%u", b->tmpdir, x->sha, ++b->tmp_seq);
    if (!b->wq_tail)
        b->wq_tail = &b->wq;
    *b->wq_tail = x;
    b->wq_tail = &x->next;
    b->wq_bytes += len;
    b->st.uploads++;
    b->st.bytes_in += len;
    ty_group_start(b);
    return 0;
}

static void ty_whole_free(ty_whole_t *x) {
    if (x->fd >= 0)
        close(x->fd);
    free(x->peer);
    free(x->data);
    free(x->tmp);
    free(x);
}

void ty_blobs_whole_free_all(ty_blobs_t *b) {
    while (b->wq) {
        ty_whole_t *x = b->wq;
        b->wq = x->next;
        ty_whole_free(x);
    }
    b->wq_tail = &b->wq;
    b->wq_bytes = 0;
}

/* x failed (in the pool): the reason kept, its temporary file gone. */
static void __attribute__((format(printf, 2, 3))) ty_fail(ty_whole_t *x, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err, sizeof x->err, fmt, ap);
    va_end(ap);
    if (x->fd >= 0)
        close(x->fd);
    x->fd = -1;
    unlink(x->tmp);
}

/* The data (and metadata) of every file still open in the group made
 * durable: one fsync for one file; for more, one syncfs of the store's
 * file system (one journal commit and one cache flush for all of them,
 * where an fsync each costs a flush each).  0 or -errno. */
static int ty_sync_files(ty_whole_t *group, size_t open_files) {
    for (ty_whole_t *x = group; x; x = x->next) {
        if (x->fd < 0)
            continue;
        if (open_files == 1)
            return fsync(x->fd) == 0 ? 0 : -errno;
        return syncfs(x->fd) == 0 ? 0 : -errno;
    }
    return 0;
}

/* Whether x is the first live file of the group in its directory. */
static int ty_first_in_dir(ty_whole_t *group, ty_whole_t *x) {
    for (ty_whole_t *y = group; y != x; y = y->next)
        if (!y->dup && !y->err[0] && strncmp(y->sha, x->sha, 2) == 0)
            return 0;
    return 1;
}

/* In the pool: write every file of the group to tmp/, make them durable
 * together, rename them into place, and make the renames durable
 * together (the directories' fsyncs, or one syncfs when the group
 * touched several). */
void ty_blobs_group_run(ty_work_t *w) {
    ty_blobs_t *b = w->b;
    struct stat st;
    size_t open_files = 0, dirs = 0;
    w->off = (uint64_t)ty_mono_us();
    for (ty_whole_t *x = w->group; x; x = x->next) {
        char *final = ty_blobs_path(b, x->sha);
        int have = stat(final, &st) == 0 && (uint64_t)st.st_size == x->len;
        free(final);
        if (have) {
            x->dup = 1;
            continue;
        }
        char got[TY_SHA256_HEX];
        ty_sha256_t *h;
        ty_sha256_create(&h);
        ty_sha256_update(h, x->data, x->len);
        ty_sha256_final(h, got);
        ty_sha256_destroy(&h);
        if (strcmp(got, x->sha) != 0) {
            ty_fail(x, "the content's sha256 is %.12s..., not %.12s... as declared", got, x->sha);
            continue;
        }
        x->fd = open(x->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        int rc = x->fd < 0 ? -errno : ty_write_all(x->fd, x->data, x->len);
        if (rc != 0)
            ty_fail(x, "cannot write %s: %s", x->tmp, strerror(-rc));
        else
            open_files++;
    }
    int rc = ty_sync_files(w->group, open_files);
    for (ty_whole_t *x = w->group; x; x = x->next) {
        if (x->fd < 0)
            continue;
        if (rc != 0) {
            ty_fail(x, "fsync %s: %s", x->tmp, strerror(-rc));
            continue;
        }
        close(x->fd);
        x->fd = -1;
        char *final = ty_blobs_path(b, x->sha);
        char *sub = ty_xasprintf("%s/sha256/%.2s", b->dir, x->sha);
        int r = ty_mkdirs(sub);
        if (r == 0 && rename(x->tmp, final) != 0)
            r = -errno;
        if (r != 0)
            ty_fail(x, "storing %s: %s", final, strerror(-r));
        free(sub);
        free(final);
    }
    for (ty_whole_t *x = w->group; x; x = x->next)
        if (!x->dup && !x->err[0] && ty_first_in_dir(w->group, x))
            dirs++;
    char *top = ty_xasprintf("%s/sha256", b->dir);
    for (ty_whole_t *x = w->group; x && dirs; x = x->next) {
        if (x->dup || x->err[0] || !ty_first_in_dir(w->group, x))
            continue;
        char *sub = ty_xasprintf("%s/sha256/%.2s", b->dir, x->sha);
        int fd = open(dirs == 1 ? sub : top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int r = fd < 0 ? -errno : (dirs == 1 ? fsync(fd) : syncfs(fd)) == 0 ? 0 : -errno;
        if (fd >= 0)
            close(fd);
        for (ty_whole_t *y = x; r != 0 && y; y = y->next)
            if (!y->dup && !y->err[0])
                snprintf(y->err, sizeof y->err, "fsync %s: %s", sub, strerror(-r));
        free(sub);
        break; /* one directory, or one syncfs for all of them */
    }
    free(top);
}

void ty_blobs_group_done(ty_blobs_t *b, ty_work_t *w) {
    size_t n = 0;
    while (w->group) {
        ty_whole_t *x = w->group;
        w->group = x->next;
        n++;
        if (x->err[0]) {
            ty_warn("upload %.12s...: %s", x->sha, x->err);
            ty_blobs_send_ready(b, x->peer, x->peer_len, x->sha, 0, 0, x->err);
        } else {
            zhashx_update(b->known, x->sha, (void *)1);
            if (x->dup)
                b->st.deduplicated++;
            else
                b->st.stored++;
            ty_blobs_send_ready(b, x->peer, x->peer_len, x->sha, x->len, 1, NULL);
        }
        ty_whole_free(x);
    }
    ty_debug("artifact store: a group of %zu small files stored in %lld us", n,
             (long long)(ty_mono_us() - (int64_t)w->off));
    b->group_busy = 0;
    ty_group_start(b);
}
