/* The artifact store's internals, shared by master/blobs.c (uploads, the
 * pool's work) and master/blobs_read.c (reads, checks, garbage collection). */
#ifndef TY_MASTER_BLOBS_INT_H
#define TY_MASTER_BLOBS_INT_H

#include "master/blobs.h"

#include "common/digest.h"

#define TY_READ_MAX (1u << 20)      /* bytes of one BlobData */
#define TY_CRC_FAILURES 16          /* chunks failing their CRC before an upload is given up */
#define TY_WHOLE_MAX (64u << 10)    /* a file this small may come whole with its UploadBegin */
#define TY_WHOLE_QUEUED (64u << 20) /* bytes of such files waiting to be written */

/* A small file that came whole with its UploadBegin, waiting for (or in)
 * the group of such files that is written and made durable together. */
typedef struct ty_whole {
    struct ty_whole *next;
    uint8_t *peer;
    size_t peer_len;
    char sha[TY_SHA256_HEX];
    uint8_t *data;
    size_t len;
    char *tmp;
    int fd, dup;
    char err[200]; /* empty: stored */
} ty_whole_t;

typedef struct ty_chunk {
    uint64_t off;
    uint8_t *data;
    size_t len;
    struct ty_chunk *next;
} ty_chunk_t;

typedef struct ty_upload {
    ty_blobs_t *b;
    char *key; /* peer (hex) "/" sha256 */
    uint8_t *peer;
    size_t peer_len;
    char sha[TY_SHA256_HEX];
    uint64_t size;
    uint64_t written;  /* bytes in the temporary file */
    uint64_t accepted; /* written, and queued to be */
    ty_chunk_t *q, **qtail;
    int busy;      /* a work item of it is in the pool */
    int dead;      /* dropped while busy: freed when the work comes back */
    int committed; /* renamed into place */
    int fd;
    ty_sha256_t *h;
    char *tmp;
    int64_t last;    /* monotonic ms of the last message */
    int64_t begun;   /* monotonic ms when it began */
    int64_t sync_ms; /* the commit's fsync, rename and directory fsync */
    unsigned crc_bad;
} ty_upload_t;

struct ty_blobs {
    uv_loop_t *loop;
    ty_blobs_opts_t o;
    char *dir, *tmpdir;
    ty_blobs_send_fn send;
    void *arg;
    zhashx_t *uploads; /* key -> ty_upload_t* */
    zhashx_t *known;   /* sha256 -> 1: stored, seen by this process */
    uv_timer_t sweep;
    ty_whole_t *wq, **wq_tail; /* whole files waiting for the next group */
    size_t wq_bytes;
    int group_busy; /* a group of whole files is in the pool */
    unsigned tmp_seq;
    uint8_t *rfree[4]; /* read buffers (TY_READ_MAX bytes) kept: trainyard get asks 4 at once */
    int nrfree;
    int pending; /* work items in the pool */
    int timer_open;
    ty_blobs_stats_t st;
};

enum {
    TY_W_WRITE,
    TY_W_COMMIT,
    TY_W_READ,
    TY_W_STAT,
    TY_W_CHECK,
    TY_W_CLEAN,
    TY_W_UNLINK,
    TY_W_GC,
    TY_W_GROUP
};

typedef struct {
    uv_work_t req;
    int kind;
    ty_blobs_t *b;
    ty_upload_t *u;
    ty_chunk_t *c;
    ty_whole_t *group; /* GROUP */
    int rc;
    char err[200];
    /* READ, STAT: who asked */
    int client;
    uint8_t *peer;
    size_t peer_len;
    uint64_t req_id;
    char sha[TY_SHA256_HEX];
    uint64_t off, size;
    uint32_t len;
    uint8_t *data;
    size_t got;
    char *path; /* READ, STAT, UNLINK */
    char *name; /* STAT: the UploadBegin's */
    /* CHECK */
    char **shas;
    size_t n;
    int *found;
    ty_blobs_check_fn cb;
    void *cb_arg;
    /* GC */
    zhashx_t *keep;
    int64_t grace_ms;
    int dry_run;
    Ty__GcReply gc;
    ty_blobs_gc_fn gc_cb;
} ty_work_t;

ty_work_t *ty_blobs_work_new(ty_blobs_t *b, int kind);
void ty_blobs_work_queue(ty_work_t *w); /* to the pool; ty_blobs_work_done after */
void ty_blobs_work_done(uv_work_t *req, int status);
void ty_blobs_send_error(ty_blobs_t *b, int client, const uint8_t *peer, size_t peer_len,
                         uint64_t req_id, int code, const char *msg);
/* blobs_read.c: the pool's side (run) and the loop's (done) of each kind */
void ty_blobs_read_run(ty_work_t *w);
void ty_blobs_read_done(ty_blobs_t *b, ty_work_t *w);
void ty_blobs_read_release(ty_blobs_t *b, ty_work_t *w);
void ty_blobs_check_run(ty_work_t *w);
void ty_blobs_check_done(ty_blobs_t *b, ty_work_t *w);
void ty_blobs_gc_run(ty_work_t *w);
void ty_blobs_gc_done(ty_blobs_t *b, ty_work_t *w);
/* blobs_whole.c: small files that come whole (UploadBegin.whole) */
int ty_blobs_whole_add(ty_blobs_t *b, const uint8_t *peer, size_t peer_len,
                       const Ty__UploadBegin *ub); /* -1: not taken, send chunks */
void ty_blobs_group_run(ty_work_t *w);
void ty_blobs_group_done(ty_blobs_t *b, ty_work_t *w);
void ty_blobs_whole_free_all(ty_blobs_t *b);
void ty_blobs_send_ready(ty_blobs_t *b, const uint8_t *peer, size_t peer_len, const char *sha,
                         uint64_t offset, int stored, const char *error);
int ty_blobs_fsync_dir(const char *path);
void ty_blobs_on_read(ty_blobs_t *b, int client, const uint8_t *peer, size_t peer_len,
                      uint64_t req_id, const Ty__BlobRead *br);

#endif
