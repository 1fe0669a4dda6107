/* Asynchronous etcd v3 client over the HTTP/JSON gateway (etcd 3.4: /v3/...),
 * driven by curl's multi interface on a libuv loop.
 *
 * Every call returns 0 once the request is queued, or a negative TY_E* code.
 * The callback then runs exactly once on the loop thread with status 0 or
 * TY_EETCD (etcd answered with an error) / TY_EUNREACH (no answer) and a
 * response that is valid only during the callback.  A txn whose compares fail
 * completes with status 0 and resp->succeeded == 0.  Keys and values are byte
 * strings.  Not thread-safe: use from the loop thread only.
 *
 * ty_etcd_destroy() drops pending requests without calling their callbacks;
 * run the loop afterwards so libuv can finish closing handles. */
#ifndef TY_COMMON_ETCD_H
#define TY_COMMON_ETCD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct ty_etcd ty_etcd_t;
typedef struct ty_etcd_txn ty_etcd_txn_t;
typedef struct ty_etcd_watch ty_etcd_watch_t;

typedef struct {
    unsigned char *key;
    size_t key_len;
    unsigned char *value;
    size_t value_len;
    int64_t create_revision, mod_revision, version, lease;
} ty_etcd_kv_t;

typedef struct {
    int64_t revision;  /* header revision */
    int succeeded;     /* txn: compares held */
    ty_etcd_kv_t *kvs; /* range, or the first range response of a txn */
    size_t nkvs;
    int64_t count;    /* range: total matching keys */
    int64_t lease_id; /* lease grant / keep-alive */
    int64_t ttl;      /* lease grant / keep-alive; 0 = lease gone */
    int64_t deleted;  /* delete range */
} ty_etcd_resp_t;

typedef void (*ty_etcd_cb)(int status, const ty_etcd_resp_t *resp, void *arg);

typedef enum { TY_ETCD_EVENT_PUT = 0, TY_ETCD_EVENT_DELETE = 1 } ty_etcd_event_type_t;
typedef struct {
    ty_etcd_event_type_t type;
    ty_etcd_kv_t kv;
} ty_etcd_event_t;
/* Called for each batch of events (n > 0), once with n == 0 when the watch is
 * established, and once with status != 0 if the stream ends; no call follows
 * an error.  The handle stays valid until ty_etcd_watch_cancel(). */
typedef void (*ty_etcd_watch_cb)(int status, const ty_etcd_event_t *ev, size_t n, int64_t revision,
                                 void *arg);

/* endpoints: comma-separated base URLs ("http://127.0.0.1:2379,..."); tried in
 * turn when one does not answer. */
int ty_etcd_create(ty_etcd_t **out, uv_loop_t *loop, const char *endpoints);
void ty_etcd_destroy(ty_etcd_t **e);
/* TLS with a client certificate (etcd's --client-cert-auth): the server is
 * checked against cacert; every request then goes over https only.  0, or
 * TY_EINVAL with *why (heap) when a file cannot be read or an endpoint is
 * not https://. */
int ty_etcd_set_tls(ty_etcd_t *e, const char *cacert, const char *cert, const char *key,
                    char **why);
/* Requests issued and not yet completed. */
size_t ty_etcd_pending(const ty_etcd_t *e);

/* range_end NULL = single key.  ty_etcd_prefix_end() fills the range end for
 * "every key starting with key" into a new heap buffer. */
unsigned char *ty_etcd_prefix_end(const void *key, size_t klen, size_t *rlen);

int ty_etcd_range(ty_etcd_t *e, const void *key, size_t klen, const void *range_end, size_t rlen,
                  ty_etcd_cb cb, void *arg);
/* Keys only (values empty), in key order, at most limit of them (0: all). */
int ty_etcd_range_keys(ty_etcd_t *e, const void *key, size_t klen, const void *range_end,
                       size_t rlen, int64_t limit, ty_etcd_cb cb, void *arg);
int ty_etcd_put(ty_etcd_t *e, const void *key, size_t klen, const void *val, size_t vlen,
                int64_t lease, ty_etcd_cb cb, void *arg);
int ty_etcd_delete(ty_etcd_t *e, const void *key, size_t klen, const void *range_end, size_t rlen,
                   ty_etcd_cb cb, void *arg);

/* Transactions. */
typedef enum {
    TY_ETCD_CMP_EQUAL,
    TY_ETCD_CMP_GREATER,
    TY_ETCD_CMP_LESS,
    TY_ETCD_CMP_NOT_EQUAL
} ty_etcd_cmp_t;
typedef enum {
    TY_ETCD_TGT_VERSION,
    TY_ETCD_TGT_CREATE,
    TY_ETCD_TGT_MOD,
    TY_ETCD_TGT_LEASE
} ty_etcd_target_t;

int ty_etcd_txn_create(ty_etcd_txn_t **out);
void ty_etcd_txn_destroy(ty_etcd_txn_t **t);
void ty_etcd_txn_compare(ty_etcd_txn_t *t, const void *key, size_t klen, ty_etcd_target_t target,
                         ty_etcd_cmp_t op, int64_t value);
/* on_success: 1 = success branch, 0 = failure branch. */
void ty_etcd_txn_put(ty_etcd_txn_t *t, int on_success, const void *key, size_t klen,
                     const void *val, size_t vlen, int64_t lease);
void ty_etcd_txn_delete(ty_etcd_txn_t *t, int on_success, const void *key, size_t klen,
                        const void *range_end, size_t rlen);
void ty_etcd_txn_range(ty_etcd_txn_t *t, int on_success, const void *key, size_t klen,
                       const void *range_end, size_t rlen);
/* Operations in the larger branch (etcd caps a txn at 128 by default). */
size_t ty_etcd_txn_ops(const ty_etcd_txn_t *t);
/* Takes ownership of *t (cleared) whatever the outcome. */
int ty_etcd_txn_commit(ty_etcd_t *e, ty_etcd_txn_t **t, ty_etcd_cb cb, void *arg);

/* Leases. */
int ty_etcd_lease_grant(ty_etcd_t *e, int64_t ttl_s, ty_etcd_cb cb, void *arg);
int ty_etcd_lease_keepalive(ty_etcd_t *e, int64_t id, ty_etcd_cb cb, void *arg);
int ty_etcd_lease_revoke(ty_etcd_t *e, int64_t id, ty_etcd_cb cb, void *arg);
/* Drop the history of every key before revision (its latest value stays). */
int ty_etcd_compact(ty_etcd_t *e, int64_t revision, ty_etcd_cb cb, void *arg);

/* Watch a key or range from start_rev (0 = now). */
int ty_etcd_watch(ty_etcd_t *e, const void *key, size_t klen, const void *range_end, size_t rlen,
                  int64_t start_rev, ty_etcd_watch_cb cb, void *arg, ty_etcd_watch_t **out);
void ty_etcd_watch_cancel(ty_etcd_watch_t **w);

#endif
