/* A master without election for module tests: its own loop, a real etcd
 * (started by the etcd fixture), both ROUTER sockets on inproc, the per-tick
 * schedule-and-flush on a check handle.  epoch 0 makes the fencing compare
 * "no leader key", which holds in a fresh etcd. */
#ifndef TY_MASTER_FIXTURE_H
#define TY_MASTER_FIXTURE_H

#include "master/master.h"

#include "common/tests/etcd_fixture.h"
#include "common/tests/ty_test.h"
#include "common/util.h"

#include <sys/stat.h>

static ty_master_t M;
static uv_loop_t loop;
static uv_check_t mf_check;
static char mf_dir[] = "/tmp/ty-master-testXXXXXX";

static void mf_tick(uv_check_t *h) {
    (void)h;
    if (M.need_schedule)
        ty_sched_pass(&M);
    for (ty_task_t *t = M.open.tasks; t; t = t->dirty_next)
        ty_api_notify(&M, t->run, 0);
    ty_state_flush(&M);
}

/* Returns 0, or the etcd fixture's status (77 = skip). */
static int mf_start(const char *name) {
    char url[64];
    int rc = ty_fx_start(url, sizeof url);
    if (rc)
        return rc;
    zsys_init();
    zsys_set_linger(0);
    uv_loop_init(&loop);
    if (!mkdtemp(mf_dir))
        return 1;
    char *logs = ty_xasprintf("%s/logs", mf_dir);
    mkdir(logs, 0755);
    free(logs);
    memset(&M, 0, sizeof M);
    M.o.prefix = ty_xasprintf("/%s/", name);
    M.o.data_dir = mf_dir;
    M.o.max_frame = 4096;
    M.o.lost_limit = 5;
    M.o.heartbeat_ms = 100;
    M.o.worker_lease_ms = 1000;
    M.loop = &loop;
    M.runs = zhashx_new();
    M.workers = zhashx_new();
    M.serving = 1;
    ty_state_init(&M);
    CHECK_EQ_INT(ty_etcd_create(&M.etcd, &loop, url), 0);
    uv_timer_init(&loop, &M.retry);
    uv_timer_init(&loop, &M.delay);
    M.retry.data = M.delay.data = &M;
    char *ep = ty_xasprintf("inproc://%s-w", name);
    M.wsock = zsock_new_router(ep);
    free(ep);
    ep = ty_xasprintf("inproc://%s-c", name);
    M.csock = zsock_new_router(ep);
    free(ep);
    ty_wire_poll_create(&M.wpoll, &loop, M.wsock, ty_workers_on_message, &M);
    ty_wire_poll_create(&M.cpoll, &loop, M.csock, ty_api_on_message, &M);
    uv_check_init(&loop, &mf_check);
    uv_check_start(&mf_check, mf_tick);
    return 0;
}

static void mf_stop(void) {
    uv_check_stop(&mf_check);
    uv_close((uv_handle_t *)&mf_check, NULL);
    ty_wire_poll_destroy(&M.wpoll);
    ty_wire_poll_destroy(&M.cpoll);
    ty_etcd_destroy(&M.etcd);
    ty_state_fini(&M);
    uv_close((uv_handle_t *)&M.retry, NULL);
    uv_close((uv_handle_t *)&M.delay, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    for (size_t i = 0; i < M.nruns; i++)
        ty_sched_run_free(M.order[i]);
    free(M.order);
    free(M.heap);
    free(M.delayed);
    for (ty_worker_t *w = zhashx_first(M.workers); w; w = zhashx_next(M.workers))
        ty_workers_free(w);
    zhashx_destroy(&M.runs);
    zhashx_destroy(&M.workers);
    zsock_destroy(&M.csock);
    zsock_destroy(&M.wsock);
    free(M.o.prefix);
    char *cmd = ty_xasprintf("rm -rf '%s'", mf_dir);
    CHECK(system(cmd) == 0);
    free(cmd);
}

static void mf_on_timeout(uv_timer_t *t) { uv_stop(t->loop); }

/* Run the loop until a message of `want` (or any, with NOT_SET) arrives on
 * peer, bounded by ms; returns it or NULL. */
static Ty__Envelope *mf_expect(zsock_t *peer, Ty__Envelope__BodyCase want, int ms) {
    uv_timer_t g;
    uv_timer_init(&loop, &g);
    uv_timer_start(&g, mf_on_timeout, (uint64_t)ms, 0);
    Ty__Envelope *env = NULL;
    while (uv_is_active((uv_handle_t *)&g)) {
        uv_run(&loop, UV_RUN_NOWAIT);
        if (ty_wire_recv(peer, 0, 1u << 24, NULL, &env) == 0) {
            if (want == TY__ENVELOPE__BODY__NOT_SET || env->body_case == want)
                break;
            ty_wire_free(&env);
            continue;
        }
        zclock_sleep(2);
    }
    uv_close((uv_handle_t *)&g, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return env;
}

#endif
