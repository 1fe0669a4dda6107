/* ty_store_t on etcd (common/etcd): one etcd txn per call, guarded by the
 * leader key's create revision. */
#include "master/store.h"

#include "common/err.h"
#include "common/etcd.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    ty_store_t base;
    ty_etcd_t *etcd;
    char *prefix;
    int64_t compact_every, compact_keep;
    int64_t compacted; /* the last revision compacted to (or the first seen) */
    int compacting;
    struct ty_req *pending; /* requests in flight: freed with the store */
} ty_store_etcd_t;

typedef struct ty_req {
    ty_store_etcd_t *s;
    struct ty_req *prev, *next;
    uint64_t epoch, seq;
    union {
        ty_store_txn_cb txn;
        ty_store_range_cb range;
        ty_store_lease_cb lease;
        ty_store_campaign_cb campaign;
    } cb;
    void *arg;
    int is_range; /* cb.range: answered TY_EUNREACH if the store goes first */
} ty_req_t;

static ty_req_t *ty_req(ty_store_etcd_t *s, void *arg) {
    ty_req_t *q = ty_xcalloc(1, sizeof *q);
    q->s = s;
    q->arg = arg;
    q->next = s->pending;
    if (s->pending)
        s->pending->prev = q;
    s->pending = q;
    return q;
}

/* A request answered (or never sent): off the pending list, freed. */
static void ty_req_free(ty_req_t *q) {
    if (q->prev)
        q->prev->next = q->next;
    else
        q->s->pending = q->next;
    if (q->next)
        q->next->prev = q->prev;
    free(q);
}

/* A txn whose compares failed read leader and leader.seq back: another
 * master leads, or this txn is in already (its first answer was lost), or
 * one before it is not. */
static int ty_txn_why(const ty_req_t *q, const ty_etcd_resp_t *resp) {
    size_t plen = strlen(q->s->prefix);
    int64_t created = 0, version = 0;
    for (size_t i = 0; i < resp->nkvs; i++) {
        const ty_etcd_kv_t *kv = &resp->kvs[i];
        if (kv->key_len < plen)
            continue;
        const char *k = (const char *)kv->key + plen;
        size_t n = kv->key_len - plen;
        if (n == 6 && memcmp(k, "leader", 6) == 0)
            created = kv->create_revision;
        else if (n == 10 && memcmp(k, "leader.seq", 10) == 0)
            version = kv->version;
    }
    if ((uint64_t)created != q->epoch)
        return TY_ESTALE;
    return (uint64_t)version >= q->seq ? 0 : TY_ECONFLICT;
}

static void ty_compacted(int status, const ty_etcd_resp_t *resp, void *arg) {
    (void)resp;
    ty_store_etcd_t *s = arg;
    s->compacting = 0;
    if (status != 0)
        ty_warn("etcd compaction failed: %s", ty_strerror(status));
}

/* History up to compact_keep revisions ago goes once compact_every passed. */
static void ty_maybe_compact(ty_store_etcd_t *s, int64_t revision) {
    if (!s->compacted) {
        s->compacted = revision;
        return;
    }
    if (s->compacting || revision - s->compacted < s->compact_every)
        return;
    int64_t to = revision - s->compact_keep;
    if (to <= s->compacted)
        return;
    s->compacting = 1;
    if (ty_etcd_compact(s->etcd, to, ty_compacted, s) != 0) {
        s->compacting = 0;
        return;
    }
    s->compacted = to;
    s->base.compactions++;
}

static void ty_txn_done(int status, const ty_etcd_resp_t *resp, void *arg) {
    ty_req_t *q = arg;
    if (status == 0 && resp->succeeded)
        ty_maybe_compact(q->s, resp->revision);
    if (status == 0 && !resp->succeeded)
        status = ty_txn_why(q, resp);
    q->cb.txn(status, q->arg);
    ty_req_free(q);
}

/* A txn that applies only while the leader key's create revision is epoch:
 * only the holder of this epoch's leader key may write. */
static ty_etcd_txn_t *ty_fenced_txn(ty_store_etcd_t *s, uint64_t epoch) {
    ty_etcd_txn_t *txn = NULL;
    ty_etcd_txn_create(&txn);
    char *leader = ty_xasprintf("%sleader", s->prefix);
    ty_etcd_txn_compare(txn, leader, strlen(leader), TY_ETCD_TGT_CREATE, TY_ETCD_CMP_EQUAL,
                        (int64_t)epoch);
    free(leader);
    return txn;
}

static int ty_etcd_store_txn(ty_store_t *base, uint64_t epoch, uint64_t seq, const ty_put_t *puts,
                             size_t n, ty_store_txn_cb cb, void *arg) {
    ty_store_etcd_t *s = (ty_store_etcd_t *)base;
    if (seq == 0)
        return TY_EINVAL;
    ty_etcd_txn_t *txn = ty_fenced_txn(s, epoch);
    char *leader = ty_xasprintf("%sleader", s->prefix);
    char *chain = ty_xasprintf("%sleader.seq", s->prefix);
    /* the chain: every put of leader.seq adds one to its version */
    ty_etcd_txn_compare(txn, chain, strlen(chain), TY_ETCD_TGT_VERSION, TY_ETCD_CMP_EQUAL,
                        (int64_t)(seq - 1));
    for (size_t i = 0; i < n; i++) {
        char *key = ty_xasprintf("%s%s", s->prefix, puts[i].key);
        ty_etcd_txn_put(txn, 1, key, strlen(key), puts[i].val, puts[i].len, 0);
        free(key);
    }
    char num[24];
    int nl = snprintf(num, sizeof num, "%llu", (unsigned long long)seq);
    ty_etcd_txn_put(txn, 1, chain, strlen(chain), num, (size_t)nl, 0);
    /* when a compare fails: leader and leader.seq, to tell why */
    size_t elen;
    unsigned char *end = ty_etcd_prefix_end(leader, strlen(leader), &elen);
    ty_etcd_txn_range(txn, 0, leader, strlen(leader), end, elen);
    free(end);
    free(leader);
    free(chain);
    ty_req_t *q = ty_req(s, arg);
    q->epoch = epoch;
    q->seq = seq;
    q->cb.txn = cb;
    base->txns++;
    base->ops_written += n;
    int rc = ty_etcd_txn_commit(s->etcd, &txn, ty_txn_done, q);
    if (rc != 0) {
        ty_etcd_txn_destroy(&txn);
        ty_req_free(q);
    }
    return rc;
}

static void ty_range_done(int status, const ty_etcd_resp_t *resp, void *arg) {
    ty_req_t *q = arg;
    if (status != 0) {
        q->cb.range(status, NULL, 0, q->arg);
        ty_req_free(q);
        return;
    }
    size_t plen = strlen(q->s->prefix), n = 0;
    ty_store_kv_t *kvs = ty_xcalloc(resp->nkvs ? resp->nkvs : 1, sizeof *kvs);
    char **keys = ty_xcalloc(resp->nkvs ? resp->nkvs : 1, sizeof *keys);
    for (size_t i = 0; i < resp->nkvs; i++) {
        const ty_etcd_kv_t *kv = &resp->kvs[i];
        if (kv->key_len < plen || memcmp(kv->key, q->s->prefix, plen) != 0)
            continue;
        keys[n] = ty_xstrndup((const char *)kv->key + plen, kv->key_len - plen);
        kvs[n] = (ty_store_kv_t){keys[n], kv->value, kv->value_len};
        n++;
    }
    q->cb.range(0, kvs, n, q->arg);
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
    free(kvs);
    ty_req_free(q);
}

static int ty_etcd_store_range(ty_store_t *base, const char *prefix, ty_store_range_cb cb,
                               void *arg) {
    ty_store_etcd_t *s = (ty_store_etcd_t *)base;
    char *key = ty_xasprintf("%s%s", s->prefix, prefix);
    size_t elen;
    unsigned char *end = ty_etcd_prefix_end(key, strlen(key), &elen);
    ty_req_t *q = ty_req(s, arg); /* on the pending list: answered if the store goes first */
    q->cb.range = cb;
    q->is_range = 1;
    int rc = ty_etcd_range(s->etcd, key, strlen(key), end, elen, ty_range_done, q);
    if (rc != 0)
        ty_req_free(q);
    free(key);
    free(end);
    return rc;
}

static void ty_del_done(int status, const ty_etcd_resp_t *resp, void *arg) {
    ty_req_t *q = arg;
    if (status == 0 && !resp->succeeded)
        status = TY_ESTALE;
    q->cb.txn(status, q->arg);
    ty_req_free(q);
}

static int ty_etcd_store_del(ty_store_t *base, uint64_t epoch, const char *const *keys,
                             size_t nkeys, const char *const *prefixes, size_t nprefixes,
                             ty_store_txn_cb cb, void *arg) {
    ty_store_etcd_t *s = (ty_store_etcd_t *)base;
    ty_etcd_txn_t *txn = ty_fenced_txn(s, epoch);
    for (size_t i = 0; i < nkeys; i++) {
        char *key = ty_xasprintf("%s%s", s->prefix, keys[i]);
        ty_etcd_txn_delete(txn, 1, key, strlen(key), NULL, 0);
        free(key);
    }
    for (size_t i = 0; i < nprefixes; i++) {
        char *key = ty_xasprintf("%s%s", s->prefix, prefixes[i]);
        size_t elen;
        unsigned char *end = ty_etcd_prefix_end(key, strlen(key), &elen);
        ty_etcd_txn_delete(txn, 1, key, strlen(key), end, elen);
        free(end);
        free(key);
    }
    ty_req_t *q = ty_req(s, arg);
    q->cb.txn = cb;
    base->txns++;
    base->ops_written += nkeys + nprefixes;
    int rc = ty_etcd_txn_commit(s->etcd, &txn, ty_del_done, q);
    if (rc != 0)
        ty_req_free(q);
    return rc;
}

/* ---- election ---- */

static void ty_lease_done(int status, const ty_etcd_resp_t *resp, void *arg) {
    ty_req_t *q = arg;
    q->cb.lease(status, status == 0 ? resp->lease_id : 0, status == 0 ? resp->ttl : 0, q->arg);
    ty_req_free(q);
}

static int ty_etcd_lease_grant_op(ty_store_t *base, int64_t ttl_s, ty_store_lease_cb cb,
                                  void *arg) {
    ty_req_t *q = ty_req((ty_store_etcd_t *)base, arg);
    q->cb.lease = cb;
    int rc = ty_etcd_lease_grant(q->s->etcd, ttl_s, ty_lease_done, q);
    if (rc != 0)
        ty_req_free(q);
    return rc;
}

static int ty_etcd_lease_keepalive_op(ty_store_t *base, int64_t lease, ty_store_lease_cb cb,
                                      void *arg) {
    ty_req_t *q = ty_req((ty_store_etcd_t *)base, arg);
    q->cb.lease = cb;
    int rc = ty_etcd_lease_keepalive(q->s->etcd, lease, ty_lease_done, q);
    if (rc != 0)
        ty_req_free(q);
    return rc;
}

static void ty_plain_done(int status, const ty_etcd_resp_t *resp, void *arg) {
    ty_req_t *q = arg;
    (void)resp;
    q->cb.txn(status, q->arg);
    ty_req_free(q);
}

static int ty_etcd_lease_revoke_op(ty_store_t *base, int64_t lease, ty_store_txn_cb cb, void *arg) {
    ty_req_t *q = ty_req((ty_store_etcd_t *)base, arg);
    q->cb.txn = cb;
    int rc = ty_etcd_lease_revoke(q->s->etcd, lease, ty_plain_done, q);
    if (rc != 0)
        ty_req_free(q);
    return rc;
}

static void ty_campaign_done(int status, const ty_etcd_resp_t *resp, void *arg) {
    ty_req_t *q = arg;
    ty_store_campaign_t r = {0};
    if (status == 0 && resp->succeeded) {
        r.won = 1;
        r.epoch = (uint64_t)resp->revision;
    } else if (status == 0 && resp->nkvs > 0) {
        r.holder = (const char *)resp->kvs[0].value;
        r.holder_len = resp->kvs[0].value_len;
        r.holder_rev = resp->kvs[0].mod_revision;
    }
    q->cb.campaign(status, status == 0 ? &r : NULL, q->arg);
    ty_req_free(q);
}

static int ty_etcd_campaign_op(ty_store_t *base, const char *node, int64_t lease,
                               ty_store_campaign_cb cb, void *arg) {
    ty_store_etcd_t *s = (ty_store_etcd_t *)base;
    char *key = ty_xasprintf("%sleader", s->prefix);
    ty_etcd_txn_t *t = NULL;
    ty_etcd_txn_create(&t);
    ty_etcd_txn_compare(t, key, strlen(key), TY_ETCD_TGT_CREATE, TY_ETCD_CMP_EQUAL, 0);
    ty_etcd_txn_put(t, 1, key, strlen(key), node, strlen(node), lease);
    ty_etcd_txn_range(t, 0, key, strlen(key), NULL, 0);
    free(key);
    ty_req_t *q = ty_req(s, arg);
    q->cb.campaign = cb;
    int rc = ty_etcd_txn_commit(s->etcd, &t, ty_campaign_done, q);
    if (rc != 0)
        ty_req_free(q);
    return rc;
}

static int ty_etcd_resign_op(ty_store_t *base, int64_t rev, ty_store_txn_cb cb, void *arg) {
    ty_store_etcd_t *s = (ty_store_etcd_t *)base;
    char *key = ty_xasprintf("%sleader", s->prefix);
    ty_etcd_txn_t *t = NULL;
    ty_etcd_txn_create(&t);
    ty_etcd_txn_compare(t, key, strlen(key), TY_ETCD_TGT_MOD, TY_ETCD_CMP_EQUAL, rev);
    ty_etcd_txn_delete(t, 1, key, strlen(key), NULL, 0);
    free(key);
    ty_req_t *q = ty_req(s, arg);
    q->cb.txn = cb;
    int rc = ty_etcd_txn_commit(s->etcd, &t, ty_del_done, q); /* a failed compare: TY_ESTALE */
    if (rc != 0)
        ty_req_free(q);
    return rc;
}

struct ty_store_watch {
    ty_etcd_watch_t *w;
    ty_store_gone_cb cb;
    void *arg;
    int fired;
};

static void ty_watch_cb(int status, const ty_etcd_event_t *ev, size_t n, int64_t rev, void *arg) {
    ty_store_watch_t *w = arg;
    (void)rev;
    int gone = status != 0;
    for (size_t i = 0; i < n; i++)
        gone = gone || ev[i].type == TY_ETCD_EVENT_DELETE;
    if (gone && !w->fired) {
        w->fired = 1;
        w->cb(status, w->arg);
    }
}

static int ty_etcd_watch_op(ty_store_t *base, int64_t from_rev, ty_store_gone_cb cb, void *arg,
                            ty_store_watch_t **out) {
    ty_store_etcd_t *s = (ty_store_etcd_t *)base;
    ty_store_watch_t *w = ty_xcalloc(1, sizeof *w);
    w->cb = cb;
    w->arg = arg;
    char *key = ty_xasprintf("%sleader", s->prefix);
    int rc = ty_etcd_watch(s->etcd, key, strlen(key), NULL, 0, from_rev, ty_watch_cb, w, &w->w);
    free(key);
    if (rc != 0) {
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

static void ty_etcd_watch_cancel_op(ty_store_t *base, ty_store_watch_t **wp) {
    (void)base;
    ty_store_watch_t *w = wp ? *wp : NULL;
    if (!w)
        return;
    *wp = NULL;
    ty_etcd_watch_cancel(&w->w);
    free(w);
}

static int ty_etcd_store_range_keys(ty_store_t *base, const char *from, const char *before,
                                    size_t limit, ty_store_range_cb cb, void *arg) {
    ty_store_etcd_t *s = (ty_store_etcd_t *)base;
    char *key = ty_xasprintf("%s%s", s->prefix, from);
    char *end = ty_xasprintf("%s%s", s->prefix, before);
    ty_req_t *q = ty_req(s, arg);
    q->cb.range = cb;
    q->is_range = 1;
    int rc = ty_etcd_range_keys(s->etcd, key, strlen(key), end, strlen(end), (int64_t)limit,
                                ty_range_done, q);
    if (rc != 0)
        ty_req_free(q);
    free(key);
    free(end);
    return rc;
}

static void ty_etcd_store_destroy(ty_store_t *base) {
    ty_store_etcd_t *s = (ty_store_etcd_t *)base;
    /* requests still out are dropped with the etcd client; a read is
     * answered (TY_EUNREACH), so that whoever waits for it frees what it
     * holds, the others go unanswered */
    while (s->pending) {
        ty_req_t *q = s->pending;
        if (q->is_range && q->cb.range) {
            q->is_range = 0;
            q->cb.range(TY_EUNREACH, NULL, 0, q->arg);
        }
        if (s->pending == q)
            ty_req_free(q);
    }
    free(s->prefix);
    free(s);
}

static const ty_store_ops_t ty_etcd_store_ops = {
    .txn = ty_etcd_store_txn,
    .range = ty_etcd_store_range,
    .range_keys = ty_etcd_store_range_keys,
    .del = ty_etcd_store_del,
    .lease_grant = ty_etcd_lease_grant_op,
    .lease_keepalive = ty_etcd_lease_keepalive_op,
    .lease_revoke = ty_etcd_lease_revoke_op,
    .campaign = ty_etcd_campaign_op,
    .resign = ty_etcd_resign_op,
    .watch_leader = ty_etcd_watch_op,
    .watch_cancel = ty_etcd_watch_cancel_op,
    .destroy = ty_etcd_store_destroy,
};

int ty_store_etcd_create(ty_store_t **out, ty_etcd_t *etcd, const char *prefix,
                         int64_t compact_every, int64_t compact_keep) {
    if (!out || !etcd || !prefix || compact_every <= 0 || compact_keep < 0)
        return TY_EINVAL;
    ty_store_etcd_t *s = ty_xcalloc(1, sizeof *s);
    s->compact_every = compact_every;
    s->compact_keep = compact_keep;
    s->base.ops = &ty_etcd_store_ops;
    s->etcd = etcd;
    s->prefix = ty_xstrdup(prefix);
    *out = &s->base;
    return 0;
}
