/* The etcd client against a real etcd started for this test. */
#include "common/etcd.h"
#include "common/err.h"
#include "common/tests/etcd_fixture.h"
#include "common/tests/ty_test.h"

#include <string.h>

typedef struct {
    uv_loop_t *loop;
    int status;
    int done;
    ty_etcd_resp_t r; /* copied scalars */
    char value[256];
    size_t nkvs;
    int64_t lease_id;
} res_t;

static void on_resp(int status, const ty_etcd_resp_t *resp, void *arg) {
    res_t *r = arg;
    r->status = status;
    r->done = 1;
    r->r = *resp;
    r->r.kvs = NULL;
    r->nkvs = resp->nkvs;
    r->value[0] = '\0';
    if (resp->nkvs > 0) {
        size_t n = resp->kvs[0].value_len < 255 ? resp->kvs[0].value_len : 255;
        memcpy(r->value, resp->kvs[0].value, n);
        r->value[n] = '\0';
    }
}

static void on_timeout(uv_timer_t *t) { uv_stop(t->loop); }

/* Run the loop until *done, bounded by 10 s. */
static void wait_for(uv_loop_t *loop, int *done) {
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, on_timeout, 10000, 0);
    while (!*done) {
        uv_run(loop, UV_RUN_ONCE);
        if (!uv_is_active((uv_handle_t *)&t))
            break;
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

typedef struct {
    int created, events, deletes, ended, got_two;
    char last_key[64];
    ty_etcd_watch_t *w;
} watch_t;

static void on_watch(int status, const ty_etcd_event_t *ev, size_t n, int64_t rev, void *arg) {
    watch_t *w = arg;
    (void)rev;
    if (status != 0) {
        w->ended = 1;
        return;
    }
    if (n == 0)
        w->created = 1;
    for (size_t i = 0; i < n; i++) {
        w->events++;
        if (ev[i].type == TY_ETCD_EVENT_DELETE)
            w->deletes++;
        snprintf(w->last_key, sizeof w->last_key, "%.*s", (int)ev[i].kv.key_len,
                 (const char *)ev[i].kv.key);
    }
    w->got_two = w->events >= 2;
}

#define CALL(res, expr)                                                                            \
    do {                                                                                           \
        memset(&(res), 0, sizeof(res));                                                            \
        CHECK_EQ_INT((expr), 0);                                                                   \
        wait_for(&loop, &(res).done);                                                              \
        CHECK((res).done);                                                                         \
    } while (0)

int main(void) {
    char url[64];
    int rc = ty_fx_start(url, sizeof url);
    if (rc)
        return rc;
    uv_loop_t loop;
    uv_loop_init(&loop);
    ty_etcd_t *e = NULL;
    CHECK_EQ_INT(ty_etcd_create(&e, &loop, url), 0);
    res_t r;

    /* put / range */
    CALL(r, ty_etcd_put(e, "/t/a", 4, "one", 3, 0, on_resp, &r));
    CHECK_EQ_INT(r.status, 0);
    CHECK(r.r.revision > 1);
    int64_t rev_a = r.r.revision;
    CALL(r, ty_etcd_put(e, "/t/b", 4, "\0bin", 4, 0, on_resp, &r));
    CALL(r, ty_etcd_range(e, "/t/a", 4, NULL, 0, on_resp, &r));
    CHECK_EQ_INT(r.nkvs, 1);
    CHECK_STR(r.value, "one");
    size_t rlen;
    unsigned char *end = ty_etcd_prefix_end("/t/", 3, &rlen);
    CHECK(rlen == 3 && end[2] == '0');
    CALL(r, ty_etcd_range(e, "/t/", 3, end, rlen, on_resp, &r));
    CHECK_EQ_INT(r.nkvs, 2);
    CHECK_EQ_INT(r.r.count, 2);

    /* txn: guarded on the mod revision */
    ty_etcd_txn_t *t = NULL;
    ty_etcd_txn_create(&t);
    ty_etcd_txn_compare(t, "/t/a", 4, TY_ETCD_TGT_MOD, TY_ETCD_CMP_EQUAL, rev_a);
    ty_etcd_txn_put(t, 1, "/t/a", 4, "two", 3, 0);
    ty_etcd_txn_put(t, 1, "/t/c", 4, "three", 5, 0);
    ty_etcd_txn_range(t, 0, "/t/a", 4, NULL, 0);
    CHECK_EQ_INT(ty_etcd_txn_ops(t), 2);
    CALL(r, ty_etcd_txn_commit(e, &t, on_resp, &r));
    CHECK(t == NULL);
    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_INT(r.r.succeeded, 1);
    /* the same guard now fails and the failure branch returns the current value */
    ty_etcd_txn_create(&t);
    ty_etcd_txn_compare(t, "/t/a", 4, TY_ETCD_TGT_MOD, TY_ETCD_CMP_EQUAL, rev_a);
    ty_etcd_txn_put(t, 1, "/t/a", 4, "lost", 4, 0);
    ty_etcd_txn_range(t, 0, "/t/a", 4, NULL, 0);
    CALL(r, ty_etcd_txn_commit(e, &t, on_resp, &r));
    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_INT(r.r.succeeded, 0);
    CHECK_STR(r.value, "two");
    /* create-only: create_revision == 0 */
    ty_etcd_txn_create(&t);
    ty_etcd_txn_compare(t, "/t/c", 4, TY_ETCD_TGT_CREATE, TY_ETCD_CMP_EQUAL, 0);
    ty_etcd_txn_put(t, 1, "/t/c", 4, "again", 5, 0);
    CALL(r, ty_etcd_txn_commit(e, &t, on_resp, &r));
    CHECK_EQ_INT(r.r.succeeded, 0);

    /* watch a prefix, then change and delete under it */
    watch_t w = {0};
    CHECK_EQ_INT(ty_etcd_watch(e, "/t/", 3, end, rlen, 0, on_watch, &w, &w.w), 0);
    wait_for(&loop, &w.created);
    CHECK(w.created);
    CALL(r, ty_etcd_put(e, "/t/d", 4, "4", 1, 0, on_resp, &r));
    CALL(r, ty_etcd_delete(e, "/t/a", 4, NULL, 0, on_resp, &r));
    CHECK_EQ_INT(r.r.deleted, 1);
    wait_for(&loop, &w.got_two);
    CHECK_EQ_INT(w.events, 2);
    CHECK_EQ_INT(w.deletes, 1);
    CHECK_STR(w.last_key, "/t/a");
    ty_etcd_watch_cancel(&w.w);
    CHECK(w.w == NULL);

    /* leases: grant, attach, keep alive, revoke removes the key */
    CALL(r, ty_etcd_lease_grant(e, 30, on_resp, &r));
    CHECK_EQ_INT(r.status, 0);
    CHECK(r.r.lease_id != 0);
    CHECK_EQ_INT(r.r.ttl, 30);
    int64_t lease = r.r.lease_id;
    CALL(r, ty_etcd_put(e, "/t/leased", 9, "x", 1, lease, on_resp, &r));
    CALL(r, ty_etcd_lease_keepalive(e, lease, on_resp, &r));
    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_INT(r.r.ttl, 30);
    CALL(r, ty_etcd_lease_revoke(e, lease, on_resp, &r));
    CHECK_EQ_INT(r.status, 0);
    CALL(r, ty_etcd_range(e, "/t/leased", 9, NULL, 0, on_resp, &r));
    CHECK_EQ_INT(r.nkvs, 0);
    CALL(r, ty_etcd_lease_keepalive(e, lease, on_resp, &r));
    CHECK_EQ_INT(r.r.ttl, 0); /* gone */
    free(end);

    /* an unreachable endpoint reports TY_EUNREACH */
    ty_etcd_t *bad = NULL;
    char badurl[64];
    snprintf(badurl, sizeof badurl, "http://127.0.0.1:%d", ty_fx_free_port());
    CHECK_EQ_INT(ty_etcd_create(&bad, &loop, badurl), 0);
    CALL(r, ty_etcd_range(bad, "/t/a", 4, NULL, 0, on_resp, &r));
    CHECK_EQ_INT(r.status, TY_EUNREACH);
    ty_etcd_destroy(&bad);
    CHECK_EQ_INT(ty_etcd_create(&bad, &loop, ""), TY_EINVAL);

    ty_etcd_destroy(&e);
    CHECK(e == NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    TEST_DONE();
}
