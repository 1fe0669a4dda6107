/* ty_store_t in memory, for tests and single-process use: the same contract
 * as the etcd store (the epoch's compare, the chain of txns, ranges in key
 * order), answers delivered later on the loop, as etcd's are. */
#include "master/store.h"

#include "common/err.h"
#include "common/util.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

typedef struct ty_mem_answer {
    int status;
    ty_store_txn_cb txn;
    ty_store_range_cb range;
    ty_store_lease_cb lease;
    ty_store_campaign_cb campaign;
    ty_store_gone_cb gone;
    int64_t lease_id, ttl;
    ty_store_campaign_t won; /* campaign: holder points at holder_copy */
    char *holder_copy;
    ty_store_kv_t *kvs; /* range: copies */
    size_t nkvs;
    void *arg;
    struct ty_mem_answer *next;
} ty_mem_answer_t;

typedef struct {
    int64_t id, ttl_ms;
    uint64_t expires; /* uv_now */
} ty_mem_lease_t;

struct ty_store_watch {
    ty_store_gone_cb cb;
    void *arg;
    struct ty_store_watch *next;
};

typedef struct {
    ty_store_t base;
    uv_idle_t idle;
    uv_timer_t expiry; /* leases */
    uv_loop_t *loop;
    zhashx_t *kv; /* key -> zchunk_t* */
    uint64_t epoch, chain;
    ty_mem_answer_t *head, **tail;
    int closing, closed;
    /* election: leases and the leader key */
    ty_mem_lease_t *leases;
    size_t nleases;
    int64_t next_lease, rev;
    char *leader; /* NULL: no leader key */
    int64_t leader_lease, leader_create, leader_mod;
    ty_store_watch_t *watches;
} ty_store_mem_t;

static void ty_chunk_free(void **item) { zchunk_destroy((zchunk_t **)item); }

static void ty_answer_free(ty_mem_answer_t *a) {
    free(a->holder_copy);
    for (size_t i = 0; i < a->nkvs; i++) {
        free((char *)a->kvs[i].key);
        free((uint8_t *)a->kvs[i].val);
    }
    free(a->kvs);
    free(a);
}

static void ty_mem_deliver(uv_idle_t *h) {
    ty_store_mem_t *s = h->data;
    uv_idle_stop(h);
    ty_mem_answer_t *a = s->head;
    s->head = NULL;
    s->tail = &s->head;
    while (a) { /* in the order asked */
        ty_mem_answer_t *next = a->next;
        if (a->txn)
            a->txn(a->status, a->arg);
        else if (a->range)
            a->range(a->status, a->kvs, a->nkvs, a->arg);
        else if (a->lease)
            a->lease(a->status, a->lease_id, a->ttl, a->arg);
        else if (a->campaign)
            a->campaign(a->status, &a->won, a->arg);
        else if (a->gone)
            a->gone(a->status, a->arg);
        ty_answer_free(a);
        a = next;
    }
}

static void ty_mem_queue(ty_store_mem_t *s, ty_mem_answer_t *a) {
    *s->tail = a;
    s->tail = &a->next;
    uv_idle_start(&s->idle, ty_mem_deliver);
}

static int ty_mem_txn(ty_store_t *base, uint64_t epoch, uint64_t seq, const ty_put_t *puts,
                      size_t n, ty_store_txn_cb cb, void *arg) {
    ty_store_mem_t *s = (ty_store_mem_t *)base;
    if (s->closing || seq == 0)
        return TY_EINVAL;
    ty_mem_answer_t *a = ty_xcalloc(1, sizeof *a);
    a->txn = cb;
    a->arg = arg;
    base->txns++; /* counted as sent, as the etcd store does */
    base->ops_written += n;
    if (epoch != s->epoch) {
        a->status = TY_ESTALE;
    } else if (s->chain != seq - 1) {
        a->status = s->chain >= seq ? 0 : TY_ECONFLICT;
    } else {
        for (size_t i = 0; i < n; i++)
            zhashx_update(s->kv, puts[i].key, zchunk_new(puts[i].val, puts[i].len));
        s->chain = seq;
    }
    ty_mem_queue(s, a);
    return 0;
}

static int ty_key_cmp(const void *x, const void *y) {
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static int ty_mem_range(ty_store_t *base, const char *prefix, ty_store_range_cb cb, void *arg) {
    ty_store_mem_t *s = (ty_store_mem_t *)base;
    if (s->closing)
        return TY_EINVAL;
    size_t plen = strlen(prefix), n = 0;
    const char **keys = ty_xcalloc(zhashx_size(s->kv) + 2, sizeof *keys);
    for (zchunk_t *c = zhashx_first(s->kv); c; c = zhashx_next(s->kv)) {
        const char *k = zhashx_cursor(s->kv);
        if (strncmp(k, prefix, plen) == 0)
            keys[n++] = k;
    }
    int want_seq = strncmp("leader.seq", prefix, plen) == 0 && s->chain;
    char seqv[24];
    int sl = snprintf(seqv, sizeof seqv, "%llu", (unsigned long long)s->chain);
    if (want_seq)
        keys[n++] = "leader.seq";
    qsort(keys, n, sizeof *keys, ty_key_cmp);
    ty_mem_answer_t *a = ty_xcalloc(1, sizeof *a);
    a->range = cb;
    a->arg = arg;
    a->kvs = ty_xcalloc(n ? n : 1, sizeof *a->kvs);
    for (size_t i = 0; i < n; i++) {
        zchunk_t *c = zhashx_lookup(s->kv, keys[i]);
        const void *v = c ? (const void *)zchunk_data(c) : (const void *)seqv;
        size_t len = c ? zchunk_size(c) : (size_t)sl;
        uint8_t *copy = ty_xmalloc(len ? len : 1);
        memcpy(copy, v, len);
        a->kvs[i] = (ty_store_kv_t){ty_xstrdup(keys[i]), copy, len};
    }
    a->nkvs = n;
    free(keys);
    ty_mem_queue(s, a);
    return 0;
}

static int ty_mem_del(ty_store_t *base, uint64_t epoch, const char *const *keys, size_t nkeys,
                      const char *const *prefixes, size_t nprefixes, ty_store_txn_cb cb,
                      void *arg) {
    ty_store_mem_t *s = (ty_store_mem_t *)base;
    if (s->closing)
        return TY_EINVAL;
    ty_mem_answer_t *a = ty_xcalloc(1, sizeof *a);
    a->txn = cb;
    a->arg = arg;
    base->txns++;
    base->ops_written += nkeys + nprefixes;
    if (epoch != s->epoch) {
        a->status = TY_ESTALE;
    } else {
        for (size_t i = 0; i < nkeys; i++)
            zhashx_delete(s->kv, keys[i]);
        zlistx_t *gone = zlistx_new();
        for (zchunk_t *c = zhashx_first(s->kv); c; c = zhashx_next(s->kv)) {
            const char *k = zhashx_cursor(s->kv);
            for (size_t i = 0; i < nprefixes; i++)
                if (strncmp(k, prefixes[i], strlen(prefixes[i])) == 0) {
                    zlistx_add_end(gone, ty_xstrdup(k));
                    break;
                }
        }
        for (char *k = zlistx_first(gone); k; k = zlistx_next(gone)) {
            zhashx_delete(s->kv, k);
            free(k);
        }
        zlistx_destroy(&gone);
    }
    ty_mem_queue(s, a);
    return 0;
}

/* ---- election ---- */

static ty_mem_answer_t *ty_answer(ty_mem_answer_t init) {
    ty_mem_answer_t *a = ty_xcalloc(1, sizeof *a);
    *a = init;
    return a;
}

/* The leader key goes: every watch hears of it (once). */
static void ty_leader_gone(ty_store_mem_t *s) {
    free(s->leader);
    s->leader = NULL;
    s->rev++;
    while (s->watches) { /* unlinked; the caller frees each with watch_cancel */
        ty_store_watch_t *w = s->watches;
        s->watches = w->next;
        w->next = NULL;
        ty_mem_queue(s, ty_answer((ty_mem_answer_t){.gone = w->cb, .arg = w->arg}));
    }
}

static void ty_lease_end(ty_store_mem_t *s, size_t i) {
    int64_t id = s->leases[i].id;
    s->leases[i] = s->leases[--s->nleases];
    if (s->leader && s->leader_lease == id)
        ty_leader_gone(s);
}

static void ty_expiry_cb(uv_timer_t *h) {
    ty_store_mem_t *s = h->data;
    uint64_t now = uv_now(s->loop);
    for (size_t i = 0; i < s->nleases;)
        if (s->leases[i].expires <= now)
            ty_lease_end(s, i);
        else
            i++;
}

static ty_mem_lease_t *ty_lease_find(ty_store_mem_t *s, int64_t id) {
    for (size_t i = 0; i < s->nleases; i++)
        if (s->leases[i].id == id)
            return &s->leases[i];
    return NULL;
}

static int ty_mem_lease_grant(ty_store_t *base, int64_t ttl_s, ty_store_lease_cb cb, void *arg) {
    ty_store_mem_t *s = (ty_store_mem_t *)base;
    if (s->closing || ttl_s <= 0)
        return TY_EINVAL;
    s->leases = ty_xrealloc(s->leases, (s->nleases + 1) * sizeof *s->leases);
    ty_mem_lease_t *l = &s->leases[s->nleases++];
    l->id = ++s->next_lease;
    l->ttl_ms = ttl_s * 1000;
    l->expires = uv_now(s->loop) + (uint64_t)l->ttl_ms;
    ty_mem_queue(
        s, ty_answer((ty_mem_answer_t){.lease = cb, .arg = arg, .lease_id = l->id, .ttl = ttl_s}));
    return 0;
}

static int ty_mem_lease_keepalive(ty_store_t *base, int64_t id, ty_store_lease_cb cb, void *arg) {
    ty_store_mem_t *s = (ty_store_mem_t *)base;
    if (s->closing)
        return TY_EINVAL;
    ty_mem_lease_t *l = ty_lease_find(s, id);
    if (l)
        l->expires = uv_now(s->loop) + (uint64_t)l->ttl_ms;
    ty_mem_queue(s, ty_answer((ty_mem_answer_t){
                        .lease = cb, .arg = arg, .lease_id = id, .ttl = l ? l->ttl_ms / 1000 : 0}));
    return 0;
}

static int ty_mem_lease_revoke(ty_store_t *base, int64_t id, ty_store_txn_cb cb, void *arg) {
    ty_store_mem_t *s = (ty_store_mem_t *)base;
    if (s->closing)
        return TY_EINVAL;
    ty_mem_lease_t *l = ty_lease_find(s, id);
    if (l)
        ty_lease_end(s, (size_t)(l - s->leases));
    ty_mem_queue(s, ty_answer((ty_mem_answer_t){.txn = cb, .arg = arg}));
    return 0;
}

static int ty_mem_campaign(ty_store_t *base, const char *node, int64_t lease,
                           ty_store_campaign_cb cb, void *arg) {
    ty_store_mem_t *s = (ty_store_mem_t *)base;
    if (s->closing)
        return TY_EINVAL;
    ty_mem_answer_t *a = ty_answer((ty_mem_answer_t){.campaign = cb, .arg = arg});
    if (!ty_lease_find(s, lease)) {
        a->status = TY_ENOENT; /* as etcd: "requested lease not found" */
    } else if (!s->leader) {
        s->leader = ty_xstrdup(node);
        s->leader_lease = lease;
        s->leader_create = s->leader_mod = ++s->rev;
        s->epoch = (uint64_t)s->leader_create; /* the fencing compare */
        a->won.won = 1;
        a->won.epoch = s->epoch;
    } else {
        a->holder_copy = ty_xstrdup(s->leader);
        a->won.holder = a->holder_copy;
        a->won.holder_len = strlen(s->leader);
        a->won.holder_rev = s->leader_mod;
    }
    ty_mem_queue(s, a);
    return 0;
}

static int ty_mem_resign(ty_store_t *base, int64_t rev, ty_store_txn_cb cb, void *arg) {
    ty_store_mem_t *s = (ty_store_mem_t *)base;
    if (s->closing)
        return TY_EINVAL;
    int ok = s->leader && s->leader_mod == rev;
    if (ok)
        ty_leader_gone(s);
    ty_mem_queue(s,
                 ty_answer((ty_mem_answer_t){.txn = cb, .arg = arg, .status = ok ? 0 : TY_ESTALE}));
    return 0;
}

static int ty_mem_watch(ty_store_t *base, int64_t from_rev, ty_store_gone_cb cb, void *arg,
                        ty_store_watch_t **out) {
    ty_store_mem_t *s = (ty_store_mem_t *)base;
    if (s->closing)
        return TY_EINVAL;
    ty_store_watch_t *w = ty_xcalloc(1, sizeof *w);
    w->cb = cb;
    w->arg = arg;
    if (!s->leader || s->leader_mod < from_rev - 1) { /* gone already: w is never linked */
        ty_mem_queue(s, ty_answer((ty_mem_answer_t){.gone = cb, .arg = arg}));
        *out = w;
        return 0;
    }
    w->next = s->watches;
    s->watches = w;
    *out = w;
    return 0;
}

static void ty_mem_watch_cancel(ty_store_t *base, ty_store_watch_t **wp) {
    ty_store_mem_t *s = (ty_store_mem_t *)base;
    ty_store_watch_t *w = wp ? *wp : NULL;
    if (!w)
        return;
    *wp = NULL;
    for (ty_store_watch_t **pp = &s->watches; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    free(w);
}

static int ty_mem_range_keys(ty_store_t *base, const char *from, const char *before, size_t limit,
                             ty_store_range_cb cb, void *arg) {
    ty_store_mem_t *s = (ty_store_mem_t *)base;
    if (s->closing)
        return TY_EINVAL;
    size_t n = 0;
    const char **keys = ty_xcalloc(zhashx_size(s->kv) + 1, sizeof *keys);
    for (zchunk_t *c = zhashx_first(s->kv); c; c = zhashx_next(s->kv)) {
        const char *k = zhashx_cursor(s->kv);
        if (strcmp(k, from) >= 0 && strcmp(k, before) < 0)
            keys[n++] = k;
    }
    qsort(keys, n, sizeof *keys, ty_key_cmp);
    if (limit && n > limit)
        n = limit;
    ty_mem_answer_t *a = ty_xcalloc(1, sizeof *a);
    a->range = cb;
    a->arg = arg;
    a->kvs = ty_xcalloc(n ? n : 1, sizeof *a->kvs);
    for (size_t i = 0; i < n; i++)
        a->kvs[i] = (ty_store_kv_t){ty_xstrdup(keys[i]), ty_xmalloc(1), 0};
    a->nkvs = n;
    free(keys);
    ty_mem_queue(s, a);
    return 0;
}

static void ty_mem_closed(uv_handle_t *h) {
    ty_store_mem_t *s = h->data;
    if (++s->closed < 2)
        return; /* the other handle first */
    ty_mem_answer_t *a = s->head;
    while (a) { /* never answered: the store is gone */
        ty_mem_answer_t *next = a->next;
        ty_answer_free(a);
        a = next;
    }
    zhashx_destroy(&s->kv);
    while (s->watches) {
        ty_store_watch_t *w = s->watches;
        s->watches = w->next;
        free(w);
    }
    free(s->leases);
    free(s->leader);
    free(s);
}

static void ty_mem_destroy(ty_store_t *base) {
    ty_store_mem_t *s = (ty_store_mem_t *)base;
    s->closing = 1;
    uv_close((uv_handle_t *)&s->idle, ty_mem_closed);
    uv_close((uv_handle_t *)&s->expiry, ty_mem_closed);
}

static const ty_store_ops_t ty_mem_ops = {
    .txn = ty_mem_txn,
    .range = ty_mem_range,
    .range_keys = ty_mem_range_keys,
    .del = ty_mem_del,
    .lease_grant = ty_mem_lease_grant,
    .lease_keepalive = ty_mem_lease_keepalive,
    .lease_revoke = ty_mem_lease_revoke,
    .campaign = ty_mem_campaign,
    .resign = ty_mem_resign,
    .watch_leader = ty_mem_watch,
    .watch_cancel = ty_mem_watch_cancel,
    .destroy = ty_mem_destroy,
};

int ty_store_mem_create(ty_store_t **out, uv_loop_t *loop) {
    if (!out || !loop)
        return TY_EINVAL;
    ty_store_mem_t *s = ty_xcalloc(1, sizeof *s);
    s->base.ops = &ty_mem_ops;
    s->kv = zhashx_new();
    zhashx_set_destructor(s->kv, ty_chunk_free);
    s->tail = &s->head;
    uv_idle_init(loop, &s->idle);
    s->idle.data = s;
    s->loop = loop;
    uv_timer_init(loop, &s->expiry);
    s->expiry.data = s;
    uv_timer_start(&s->expiry, ty_expiry_cb, 100, 100);
    uv_unref((uv_handle_t *)&s->expiry); /* leases alone do not keep a loop running */
    *out = &s->base;
    return 0;
}

void ty_store_mem_lead(ty_store_t *base, uint64_t epoch) {
    ((ty_store_mem_t *)base)->epoch = epoch;
}
