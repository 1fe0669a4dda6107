/* The artifact store: blobs named by their SHA-256 under
 * DIR/sha256/<first two hex digits>/<64 hex digits>, one copy of equal
 * content.  Workers upload an output with UploadBegin and UploadChunk
 * messages (answered UploadReady and UploadAck, see proto/trainyard.proto);
 * each upload is written to DIR/tmp/<sha256>.<worker> and, once every byte
 * is in, its digest matched and the file fsynced, renamed into place (and
 * the directory fsynced).  Clients and workers read blobs by range
 * (BlobRead, answered BlobData).
 *
 * Every file operation (open, write, digest, fsync, rename, read, stat)
 * runs in libuv's thread pool; the loop only checks chunk CRCs and moves
 * messages.  Memory is bounded by the flow-control window: at most `window`
 * chunks of `chunk` bytes per upload are held, and at most max_uploads
 * uploads run at once.  Replies leave through the send callback. */
#ifndef TY_MASTER_BLOBS_H
#define TY_MASTER_BLOBS_H

#include "trainyard.pb-c.h"

#include <stddef.h>
#include <stdint.h>
#include <czmq.h>
#include <uv.h>

typedef struct ty_blobs ty_blobs_t;

/* Send env to peer (a worker's routing id, or a client's when client). */
typedef void (*ty_blobs_send_fn)(void *arg, int client, const uint8_t *peer, size_t peer_len,
                                 uint64_t req_id, Ty__Envelope *env);
/* A check is done: missing is the first sha256 not in the store, or NULL. */
typedef void (*ty_blobs_check_fn)(void *arg, const char *missing);

typedef struct {
    const char *dir;
    uint64_t max_artifact; /* bytes one artifact may have (0: no limit) */
    uint32_t chunk;        /* upload chunk size */
    uint32_t window;       /* chunks unacknowledged at once */
    uint32_t max_uploads;  /* uploads at once */
    int64_t idle_ms;       /* an upload silent this long is dropped, with its file */
} ty_blobs_opts_t;

void ty_blobs_opts_default(ty_blobs_opts_t *o);
/* Creates DIR/sha256 and DIR/tmp; TY_EIO when they cannot be made. */
int ty_blobs_create(ty_blobs_t **out, uv_loop_t *loop, const ty_blobs_opts_t *o,
                    ty_blobs_send_fn send, void *arg);
/* Runs the loop until the work in the thread pool is done: call it outside
 * the loop's callbacks (at exit). */
void ty_blobs_destroy(ty_blobs_t **b);

/* An UploadBegin or UploadChunk from a worker peer, or a BlobRead from a
 * client (client set) or worker.  Anything else is ignored. */
void ty_blobs_on_msg(ty_blobs_t *b, int client, const uint8_t *peer, size_t peer_len,
                     const Ty__Envelope *env);
/* Answer an UploadBegin with a refusal (the attempt fails with msg). */
void ty_blobs_refuse(ty_blobs_t *b, const uint8_t *peer, size_t peer_len, const char *sha256,
                     const char *msg);
/* Drop every upload of peer, with its file (a worker that registered
 * afresh: what its earlier process was sending will not come). */
void ty_blobs_drop_peer(ty_blobs_t *b, const uint8_t *peer, size_t peer_len);
/* Whether each of n digests names a stored blob (known ones are answered
 * at once, the others stat'ed in the pool); cb runs exactly once, perhaps
 * before this returns. */
void ty_blobs_check(ty_blobs_t *b, char *const *shas, size_t n, ty_blobs_check_fn cb, void *arg);
/* Drop every upload (and its temporary file): on becoming leader, when
 * what an earlier leader left in DIR/tmp is removed too. */
void ty_blobs_reset(ty_blobs_t *b);
/* Delete the stored blobs that keep (sha256 -> anything; taken) does not
 * name and that are older than grace_ms (or only count them: dry_run), in
 * the pool; cb(arg, reply) on the loop with what was deleted and kept. */
typedef void (*ty_blobs_gc_fn)(void *arg, const Ty__GcReply *reply);
void ty_blobs_gc(ty_blobs_t *b, zhashx_t *keep, int64_t grace_ms, int dry_run, ty_blobs_gc_fn cb,
                 void *arg);
/* Drop uploads idle past idle_ms; returns how many. */
size_t ty_blobs_sweep(ty_blobs_t *b);
/* The path of a stored blob (heap string). */
char *ty_blobs_path(const ty_blobs_t *b, const char *sha256);

typedef struct {
    uint64_t uploads, stored, deduplicated, bytes_in, bytes_out, rejected_chunks, active;
    uint64_t groups; /* durable writes of small files that came whole (several share one) */
} ty_blobs_stats_t;
void ty_blobs_stats(const ty_blobs_t *b, ty_blobs_stats_t *s);

#endif
