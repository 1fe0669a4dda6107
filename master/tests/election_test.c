/* Leader election through the store, against a real etcd and against the
 * in-memory store: one leader, a standby that takes over when the leader's
 * lease goes, a higher epoch each time, a restarted node that reclaims its
 * own key at once, and a leader that finds its lease gone standing by
 * instead of exiting. */
#include "master/master.h"

#include "common/tests/etcd_fixture.h"
#include "common/tests/ty_test.h"
#include "common/log.h"
#include "common/util.h"

static char url[64];
static uv_loop_t loop;

static void on_timeout(uv_timer_t *t) { uv_stop(t->loop); }

static void run_until_leader(ty_master_t *m, int ms) {
    uv_timer_t g;
    uv_timer_init(&loop, &g);
    uv_timer_start(&g, on_timeout, (uint64_t)ms, 0);
    while (!m->leader && uv_is_active((uv_handle_t *)&g))
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&g, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static int elected_count;
static void on_elected(ty_master_t *m) {
    (void)m;
    elected_count++;
}

static ty_store_t *shared; /* NULL: each master its own etcd client and store */

static void init(ty_master_t *m, const char *node) {
    memset(m, 0, sizeof *m);
    m->o.node_id = (char *)node;
    m->o.prefix = "/el/";
    m->o.leader_ttl_s = 30;
    m->o.client_ep = "tcp://127.0.0.1:1";
    m->o.worker_ep = "tcp://127.0.0.1:2";
    m->loop = &loop;
    uv_timer_init(&loop, &m->keepalive);
    uv_timer_init(&loop, &m->retry);
    uv_timer_init(&loop, &m->stepdown);
    if (shared) {
        m->store = shared;
        return;
    }
    CHECK_EQ_INT(ty_etcd_create(&m->etcd, &loop, url), 0);
    CHECK_EQ_INT(ty_store_etcd_create(&m->store, m->etcd, m->o.prefix, 10000, 1000), 0);
}

static void fini(ty_master_t *m) {
    ty_election_stop(m);
    if (!shared) {
        ty_store_destroy(&m->store);
        ty_etcd_destroy(&m->etcd);
    }
    uv_close((uv_handle_t *)&m->keepalive, NULL);
    uv_close((uv_handle_t *)&m->retry, NULL);
    uv_close((uv_handle_t *)&m->stepdown, NULL);
    free(m->holder);
    m->holder = NULL;
}

static int revoked;
static void on_revoked(int status, void *arg) {
    (void)arg;
    revoked = status == 0 ? 1 : -1;
}

static void scenario(void) {
    ty_master_t a, b, c;
    init(&a, "node-a");
    init(&b, "node-b");
    ty_election_start(&a, on_elected);
    run_until_leader(&a, 10000);
    CHECK(a.leader);
    CHECK(a.epoch > 0);

    ty_election_start(&b, on_elected);
    run_until_leader(&b, 1000); /* must not win while a holds the key */
    CHECK(!b.leader);
    CHECK(b.leader_watch != NULL); /* standing by */

    /* a goes away (its lease ends): b takes over with a higher epoch */
    a.store->ops->lease_revoke(a.store, a.lease_id, on_revoked, NULL);
    run_until_leader(&b, 10000);
    CHECK(revoked == 1);
    CHECK(b.leader);
    CHECK(b.epoch > a.epoch);

    /* node-b restarts (a new process, same node id) and reclaims the key */
    init(&c, "node-b");
    ty_election_start(&c, on_elected);
    run_until_leader(&c, 10000);
    CHECK(c.leader);
    CHECK(c.epoch > b.epoch);
    CHECK_EQ_INT(elected_count, 3);

    fini(&a);
    fini(&b);
    fini(&c);
    uv_run(&loop, UV_RUN_DEFAULT);
}

int main(void) {
    int rc = ty_fx_start(url, sizeof url);
    if (rc)
        return rc;
    uv_loop_init(&loop);
    ty_log_init("election_test", TY_LOG_INFO);
    scenario();
    /* the same against the in-memory store */
    CHECK_EQ_INT(ty_store_mem_create(&shared, &loop), 0);
    elected_count = 0;
    revoked = 0;
    scenario();
    /* a leader that stops keeping its lease alive loses it: the standby
     * takes over once the TTL has passed (a fresh store) */
    ty_store_destroy(&shared);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(ty_store_mem_create(&shared, &loop), 0);
    ty_master_t a, b;
    init(&a, "node-x");
    init(&b, "node-y");
    a.o.leader_ttl_s = b.o.leader_ttl_s = 1;
    ty_election_start(&a, on_elected);
    run_until_leader(&a, 5000);
    ty_election_start(&b, on_elected);
    run_until_leader(&b, 300);
    CHECK(a.leader && !b.leader);
    uv_timer_stop(&a.keepalive); /* silent, as a stopped process is */
    run_until_leader(&b, 5000);
    CHECK(b.leader);
    CHECK(b.epoch > a.epoch);
    /* a resumes (SIGCONT): its next keep-alive finds the lease gone; it
     * stands down and stands by, naming b, instead of exiting */
    CHECK(a.leader);
    uv_timer_again(&a.keepalive);
    uv_timer_t g;
    uv_timer_init(&loop, &g);
    uv_timer_start(&g, on_timeout, 5000, 0);
    while (!(a.holder && strncmp(a.holder, "node-y\n", 7) == 0) && uv_is_active((uv_handle_t *)&g))
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&g, NULL);
    CHECK(!a.leader);
    CHECK(a.holder && strncmp(a.holder, "node-y\n", 7) == 0);
    CHECK(a.lease_id != 0); /* a new lease, kept alive while it stands by */
    CHECK(b.leader);
    fini(&a);
    fini(&b);
    ty_store_destroy(&shared);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    TEST_DONE();
}
