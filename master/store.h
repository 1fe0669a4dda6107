/* Persistence behind an interface: the core's TXN effects, the rebuild's
 * reads, old runs' deletion and the election go through a ty_store_t, so
 * the master runs on etcd and tests on the in-memory store.
 *
 * A txn puts every key it names only if the leader key's create revision
 * is still `epoch` (fencing) and it is next in the chain: the version of
 * `leader.seq` is seq - 1 (core.h); it then puts `leader.seq` too.  cb gets
 * 0 when txn seq is in the store (now, or earlier: its answer was lost),
 * TY_ESTALE when another master leads, TY_ECONFLICT when an earlier txn is
 * not in yet, another code when the store did not answer (the core sends
 * it again).  range calls cb once with
 * every key under prefix, in key order; keys passed to and from a store
 * are relative to its prefix.  Callbacks run later, on the caller's loop,
 * exactly once each. */
#ifndef TY_MASTER_STORE_H
#define TY_MASTER_STORE_H

#include "master/core/core.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct {
    const char *key; /* relative, NUL-terminated */
    const uint8_t *val;
    size_t len;
} ty_store_kv_t;

typedef void (*ty_store_txn_cb)(int status, void *arg);
typedef void (*ty_store_range_cb)(int status, const ty_store_kv_t *kvs, size_t n, void *arg);

/* Election (master/election.c): a lease, the leader key under it. */
typedef void (*ty_store_lease_cb)(int status, int64_t lease, int64_t ttl,
                                  void *arg); /* ttl 0: gone */
typedef struct {
    int won;
    uint64_t epoch;     /* won: the leader key's create revision */
    const char *holder; /* lost: who holds it (not NUL-terminated) */
    size_t holder_len;
    int64_t holder_rev; /* lost: its mod revision; 0: it went meanwhile */
} ty_store_campaign_t;
typedef void (*ty_store_campaign_cb)(int status, const ty_store_campaign_t *r, void *arg);
/* Once: the leader key went (or the watch broke: status != 0). */
typedef void (*ty_store_gone_cb)(int status, void *arg);
typedef struct ty_store_watch ty_store_watch_t;

typedef struct ty_store ty_store_t;
typedef struct {
    int (*txn)(ty_store_t *s, uint64_t epoch, uint64_t seq, const ty_put_t *puts, size_t n,
               ty_store_txn_cb cb, void *arg);
    int (*range)(ty_store_t *s, const char *prefix, ty_store_range_cb cb, void *arg);
    /* Keys only (values empty), in key order: from (included) to before
     * (excluded), at most limit of them. */
    int (*range_keys)(ty_store_t *s, const char *from, const char *before, size_t limit,
                      ty_store_range_cb cb, void *arg);
    /* Delete keys and every key under prefixes, if epoch still leads (not
     * part of the chain: only for records nothing writes any more). */
    int (*del)(ty_store_t *s, uint64_t epoch, const char *const *keys, size_t nkeys,
               const char *const *prefixes, size_t nprefixes, ty_store_txn_cb cb, void *arg);
    /* leases: granted for ttl_s seconds, kept alive, revoked (which
     * deletes the keys under them) */
    int (*lease_grant)(ty_store_t *s, int64_t ttl_s, ty_store_lease_cb cb, void *arg);
    int (*lease_keepalive)(ty_store_t *s, int64_t lease, ty_store_lease_cb cb, void *arg);
    int (*lease_revoke)(ty_store_t *s, int64_t lease, ty_store_txn_cb cb, void *arg);
    /* put leader = node under lease if there is no leader key */
    int (*campaign)(ty_store_t *s, const char *node, int64_t lease, ty_store_campaign_cb cb,
                    void *arg);
    /* delete the leader key if its mod revision is still rev */
    int (*resign)(ty_store_t *s, int64_t rev, ty_store_txn_cb cb, void *arg);
    /* hear once when the leader key goes after revision from_rev */
    int (*watch_leader)(ty_store_t *s, int64_t from_rev, ty_store_gone_cb cb, void *arg,
                        ty_store_watch_t **out);
    void (*watch_cancel)(ty_store_t *s, ty_store_watch_t **w);
    void (*destroy)(ty_store_t *s);
} ty_store_ops_t;

struct ty_store {
    const ty_store_ops_t *ops;
    uint64_t txns, ops_written; /* counters */
    uint64_t compactions;       /* history dropped (etcd) */
};

static inline int ty_store_txn(ty_store_t *s, uint64_t epoch, uint64_t seq, const ty_put_t *puts,
                               size_t n, ty_store_txn_cb cb, void *arg) {
    return s->ops->txn(s, epoch, seq, puts, n, cb, arg);
}
static inline int ty_store_range(ty_store_t *s, const char *prefix, ty_store_range_cb cb,
                                 void *arg) {
    return s->ops->range(s, prefix, cb, arg);
}
static inline int ty_store_range_keys(ty_store_t *s, const char *from, const char *before,
                                      size_t limit, ty_store_range_cb cb, void *arg) {
    return s->ops->range_keys(s, from, before, limit, cb, arg);
}
static inline int ty_store_del(ty_store_t *s, uint64_t epoch, const char *const *keys, size_t nkeys,
                               const char *const *prefixes, size_t nprefixes, ty_store_txn_cb cb,
                               void *arg) {
    return s->ops->del(s, epoch, keys, nkeys, prefixes, nprefixes, cb, arg);
}
static inline void ty_store_destroy(ty_store_t **s) {
    if (s && *s) {
        (*s)->ops->destroy(*s);
        *s = NULL;
    }
}

/* The etcd store: keys under prefix ("/trainyard/"), the fencing compare on
 * prefix + "leader".  etcd is borrowed, not owned.  Every txn leaves a
 * revision behind in etcd's history; once compact_every revisions have
 * passed since the last compaction, the store compacts etcd up to
 * compact_keep revisions ago, so its database stops growing with
 * superseded values (the latest value of every key stays). */
typedef struct ty_etcd ty_etcd_t;
int ty_store_etcd_create(ty_store_t **out, ty_etcd_t *etcd, const char *prefix,
                         int64_t compact_every, int64_t compact_keep);

/* The in-memory store (tests, single-process use); answers come on loop.
 * ty_store_mem_lead sets the epoch txns are compared with (the leader
 * key's create revision in etcd).  Destroy, then run the loop. */
int ty_store_mem_create(ty_store_t **out, uv_loop_t *loop);
void ty_store_mem_lead(ty_store_t *s, uint64_t epoch);

#endif
