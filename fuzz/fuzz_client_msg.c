/* The request handler: each input is one client envelope, handed to the
 * handler (and through it the core, on the in-memory store) as from user
 * alice, bob or an admin, as the master's client socket does.  One handler
 * for the whole run: what earlier inputs submitted stays, as on a master. */
#include "common/log.h"
#include "common/wire.h"
#include "fuzz/fuzz_common.h"
#include "master/api.h"
#include "master/core/core_int.h"
#include "master/store.h"

#include <stdio.h>

static uv_loop_t loop;
static ty_core_t *core;
static ty_store_t *store;
static ty_api_t *api;
static ty_time_t clock_now = {1800000000000, 1000};
static int pending;

static ty_time_t fake_now(void) { return clock_now; }
static void effects(void *arg);

static void on_txn(int status, void *arg) {
    ty_ev_t ev = {.kind = TY_EV_TXN_DONE, .flight = (uint64_t)(uintptr_t)arg, .status = status};
    pending--;
    ty_core_step(core, &ev, clock_now);
    effects(NULL);
}

static void effects(void *arg) {
    (void)arg;
    ty_fx_t fx;
    while (ty_core_fx_pop(core, &fx)) {
        if (fx.kind == TY_FX_TXN) {
            pending++;
            if (ty_store_txn(store, fx.epoch, fx.seq, fx.puts, fx.nputs, on_txn,
                             (void *)(uintptr_t)fx.flight) != 0)
                abort();
        } else if (fx.kind == TY_FX_NOTIFY) {
            ty_api_notify(api, fx.run, 0, clock_now);
        }
        ty_fx_clear(&fx);
    }
}

static void setup(void) {
    ty_log_init("fuzz", TY_LOG_ERROR);
    uv_loop_init(&loop);
    static char dir[] = "/tmp/ty-fuzz-api-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    ty_core_opts_t o;
    ty_core_opts_default(&o);
    o.epoch = 3;
    o.retain_runs = 2;
    if (ty_core_create(&core, &o) != 0 || ty_store_mem_create(&store, &loop) != 0)
        abort();
    ty_store_mem_lead(store, 3);
    static ty_api_info_t info = {.epoch = 3, .node_id = "m1"};
    ty_api_shell_t shell = {store, fake_now, effects, NULL, TY_DAG_LIMITS_DEFAULT, NULL, 0, NULL};
    if (ty_api_create(&api, core, dir, &info, &shell) != 0)
        abort();
    ty_ev_t serve = {.kind = TY_EV_SERVE};
    ty_core_step(core, &serve, clock_now);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!api)
        setup();
    if (size < 1)
        return 0;
    static const char *const users[] = {"alice", "bob", "root", ""};
    ty_caller_t who = {.user = users[data[0] & 3], .addr = "127.0.0.1", .admin = data[0] >> 7};
    Ty__Envelope *env = NULL;
    if (ty_wire_decode(data + 1, size - 1, 1 << 20, &env) == 0) {
        ty_api_request(api, (const uint8_t *)who.user, strlen(who.user), env, &who, clock_now);
        ty_wire_free(&env);
    }
    effects(NULL);
    for (int i = 0; i < 10; i++) { /* the store answers, the tick ends */
        uv_run(&loop, UV_RUN_NOWAIT);
        ty_ev_t flush = {.kind = TY_EV_FLUSH};
        ty_core_step(core, &flush, clock_now);
        effects(NULL);
        if (!pending && ty_core_idle(core))
            break;
    }
    clock_now.mono_ms += 1000;
    clock_now.wall_ms += 1000;
    ty_api_expire(api, clock_now);
    return 0;
}
