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
    ty_store_kv_t *kvs; /* range: copies */
    size_t nkvs;
    void *arg;
    struct ty_mem_answer *next;
} ty_mem_answer_t;

typedef struct {
    ty_store_t base;
    uv_idle_t idle;
    zhashx_t *kv; /* key -> zchunk_t* */
    uint64_t epoch, chain;
    ty_mem_answer_t *head, **tail;
    int closing;
} ty_store_mem_t;

static void ty_chunk_free(void **item) { zchunk_destroy((zchunk_t **)item); }

static void ty_answer_free(ty_mem_answer_t *a) {
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
        else
            a->range(a->status, a->kvs, a->nkvs, a->arg);
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

static void ty_mem_closed(uv_handle_t *h) {
    ty_store_mem_t *s = h->data;
    ty_mem_answer_t *a = s->head;
    while (a) { /* never answered: the store is gone */
        ty_mem_answer_t *next = a->next;
        ty_answer_free(a);
        a = next;
    }
    zhashx_destroy(&s->kv);
    free(s);
}

static void ty_mem_destroy(ty_store_t *base) {
    ty_store_mem_t *s = (ty_store_mem_t *)base;
    s->closing = 1;
    uv_close((uv_handle_t *)&s->idle, ty_mem_closed);
}

static const ty_store_ops_t ty_mem_ops = {ty_mem_txn, ty_mem_range, ty_mem_del, ty_mem_destroy};

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
    *out = &s->base;
    return 0;
}

void ty_store_mem_lead(ty_store_t *base, uint64_t epoch) {
    ((ty_store_mem_t *)base)->epoch = epoch;
}
