/* The stores: the etcd one against a real etcd, and the in-memory one,
 * each through the same contract.  The etcd store against a real etcd: a txn commits only while the
 * leader key's create revision is the epoch it names (TY_ESTALE otherwise, and nothing is written)
 * and only as the next link of the chain (TY_ECONFLICT when one before it is missing; 0 again for
 * one that is in already: a lost answer's retry), and range returns the keys under a prefix,
 * relative and in key order. */
#include "master/store.h"

#include "common/err.h"
#include "common/etcd.h"
#include "common/log.h"
#include "common/tests/etcd_fixture.h"
#include "common/tests/ty_test.h"
#include "common/util.h"

static uv_loop_t loop;
static int got, status;
static ty_etcd_resp_t last;
static char keys[8][64];
static size_t nkeys;

static void on_timeout(uv_timer_t *t) { uv_stop(t->loop); }

static void wait_got(void) {
    uv_timer_t g;
    uv_timer_init(&loop, &g);
    uv_timer_start(&g, on_timeout, 10000, 0);
    while (!got && uv_is_active((uv_handle_t *)&g))
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&g, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(got);
    got = 0;
}

static void on_txn(int st, void *arg) {
    (void)arg;
    status = st;
    got = 1;
}

static void on_etcd(int st, const ty_etcd_resp_t *r, void *arg) {
    (void)arg;
    status = st;
    if (r)
        last = *r;
    last.kvs = NULL;
    got = 1;
}

static void on_range(int st, const ty_store_kv_t *kvs, size_t n, void *arg) {
    (void)arg;
    status = st;
    nkeys = 0;
    for (size_t i = 0; i < n && i < 8; i++)
        snprintf(keys[nkeys++], sizeof keys[0], "%s=%.*s", kvs[i].key, (int)kvs[i].len,
                 (const char *)kvs[i].val);
    got = 1;
}

/* The contract every store keeps (store.h), with epoch leading. */
static void contract(ty_store_t *s, uint64_t epoch, int etcd) {
    ty_put_t puts[2] = {{"runs/b", (uint8_t *)"2", 1}, {"runs/a", (uint8_t *)"1", 1}};
    CHECK_EQ_INT(ty_store_txn(s, epoch, 1, puts, 2, on_txn, NULL), 0);
    wait_got();
    CHECK_EQ_INT(status, 0);
    /* a stale epoch writes nothing */
    ty_put_t stale = {"runs/c", (uint8_t *)"3", 1};
    CHECK_EQ_INT(ty_store_txn(s, epoch - 1, 2, &stale, 1, on_txn, NULL), 0);
    wait_got();
    CHECK_EQ_INT(status, TY_ESTALE);
    /* txn 3 cannot go in before txn 2 */
    CHECK_EQ_INT(ty_store_txn(s, epoch, 3, &stale, 1, on_txn, NULL), 0);
    wait_got();
    CHECK_EQ_INT(status, TY_ECONFLICT);
    /* txn 1 again (its answer was lost): it is in, nothing is written twice */
    ty_put_t again = {"runs/a", (uint8_t *)"9", 1};
    CHECK_EQ_INT(ty_store_txn(s, epoch, 1, &again, 1, on_txn, NULL), 0);
    wait_got();
    CHECK_EQ_INT(status, 0);
    CHECK_EQ_INT(ty_store_range(s, "runs/", on_range, NULL), 0);
    wait_got();
    CHECK_EQ_INT(status, 0);
    CHECK_EQ_INT(nkeys, 2);
    CHECK_STR(keys[0], "runs/a=1");
    CHECK_STR(keys[1], "runs/b=2");
    CHECK_EQ_INT(s->txns, 4);
    CHECK_EQ_INT(s->ops_written, 5);
    /* enough txns for the history to be compacted (every 3 revisions) */
    for (uint64_t k = 2; k <= 8; k++) {
        CHECK_EQ_INT(ty_store_txn(s, epoch, k, &again, 1, on_txn, NULL), 0);
        wait_got();
        CHECK_EQ_INT(status, 0);
    }
    CHECK(!etcd || s->compactions >= 1);
    CHECK_EQ_INT(ty_store_range(s, "runs/", on_range, NULL), 0);
    wait_got(); /* the latest values stay */
    CHECK_EQ_INT(nkeys, 2);
    CHECK_STR(keys[0], "runs/a=9");
    CHECK_EQ_INT(ty_store_range(s, "leader.seq", on_range, NULL), 0);
    wait_got();
    CHECK_EQ_INT(nkeys, 1);
    CHECK_STR(keys[0], "leader.seq=8");
    /* keys only, from (in) to before (out), a page at a time */
    ty_put_t idx[4] = {{"done/3/c", (uint8_t *)"x", 1},
                       {"done/1/a", (uint8_t *)"x", 1},
                       {"done/2/b", (uint8_t *)"x", 1},
                       {"done/9/z", (uint8_t *)"x", 1}};
    CHECK_EQ_INT(ty_store_txn(s, epoch, 9, idx, 4, on_txn, NULL), 0);
    wait_got();
    CHECK_EQ_INT(ty_store_range_keys(s, "done/", "done/9", 2, on_range, NULL), 0);
    wait_got();
    CHECK_EQ_INT(nkeys, 2);
    CHECK_STR(keys[0], "done/1/a=");
    CHECK_STR(keys[1], "done/2/b=");
    CHECK_EQ_INT(ty_store_range_keys(s, "done/2/b\x01", "done/9", 2, on_range, NULL), 0);
    wait_got();
    CHECK_EQ_INT(nkeys, 1);
    CHECK_STR(keys[0], "done/3/c=");
    /* a fenced delete of keys and of everything under a prefix */
    const char *del[1] = {"done/1/a"}, *under[1] = {"runs/"};
    CHECK_EQ_INT(ty_store_del(s, epoch - 1, del, 1, under, 1, on_txn, NULL), 0);
    wait_got();
    CHECK_EQ_INT(status, TY_ESTALE);
    CHECK_EQ_INT(ty_store_del(s, epoch, del, 1, under, 1, on_txn, NULL), 0);
    wait_got();
    CHECK_EQ_INT(status, 0);
    CHECK_EQ_INT(ty_store_range(s, "runs/", on_range, NULL), 0);
    wait_got();
    CHECK_EQ_INT(nkeys, 0);
    CHECK_EQ_INT(ty_store_range_keys(s, "done/", "done/9", 0, on_range, NULL), 0);
    wait_got();
    CHECK_EQ_INT(nkeys, 2);
}

int main(void) {
    char url[64];
    int rc = ty_fx_start(url, sizeof url);
    if (rc)
        return rc;
    ty_log_init("store_test", TY_LOG_WARN);
    uv_loop_init(&loop);
    ty_etcd_t *etcd = NULL;
    CHECK_EQ_INT(ty_etcd_create(&etcd, &loop, url), 0);
    ty_store_t *s = NULL;
    CHECK_EQ_INT(ty_store_etcd_create(&s, etcd, "/st/", 3, 1), 0);

    /* the leader key: its create revision is the epoch */
    ty_etcd_put(etcd, "/st/leader", 10, "me", 2, 0, on_etcd, NULL);
    wait_got();
    CHECK_EQ_INT(status, 0);
    uint64_t epoch = (uint64_t)last.revision;

    contract(s, epoch, 1);

    ty_store_destroy(&s);
    ty_etcd_destroy(&etcd);
    uv_run(&loop, UV_RUN_DEFAULT);

    /* the in-memory store keeps the same contract */
    CHECK_EQ_INT(ty_store_mem_create(&s, &loop), 0);
    ty_store_mem_lead(s, 42);
    contract(s, 42, 0);
    ty_store_destroy(&s);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    TEST_DONE();
}
