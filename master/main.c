/* trainyard-master: leader election, rebuild from etcd, then serve workers
 * and clients on one libuv loop. */
#include "master/master.h"

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void ty_usage(FILE *f) {
    fputs("usage: trainyard-master [options]\n"
          "  --etcd URLS            etcd endpoints (default $TRAINYARD_ETCD or "
          "http://127.0.0.1:2379)\n"
          "  --prefix P             etcd key prefix (default /trainyard/)\n"
          "  --node-id ID           this master's id (default the host name)\n"
          "  --worker-bind EP       ZeroMQ endpoint for workers (default tcp://127.0.0.1:7001)\n"
          "  --client-bind EP       ZeroMQ endpoint for clients (default tcp://127.0.0.1:7000)\n"
          "  --data-dir DIR         logs and blobs (default ./.trainyard/master)\n"
          "  --heartbeat-ms N       worker heartbeat interval (default 1000)\n"
          "  --worker-lease-ms N    a silent worker is lost after this (default 5000)\n"
          "  --leader-ttl S         leader lease TTL in seconds (default 10)\n"
          "  --max-frame BYTES      largest accepted message (default 4194304)\n"
          "  --config FILE          key = value file with the same option names\n"
          "  --log-level L          debug|info|warn|error (default info)\n",
          f);
}

static void ty_tick(ty_master_t *m) {
    if (m->need_schedule)
        ty_sched_pass(m);
    /* long-polling clients see every change of this tick once it is durable */
    for (ty_task_t *t = m->open.tasks; t; t = t->dirty_next)
        ty_api_notify(m, t->run, 0);
    for (ty_run_t *r = m->open.runs; r; r = r->dirty_next)
        ty_api_notify(m, r, 0);
    ty_state_flush(m);
}

static void ty_check_cb(uv_check_t *h) { ty_tick(h->data); }
static void ty_prepare_cb(uv_prepare_t *h) { ty_tick(h->data); }

static void ty_sweep_cb(uv_timer_t *h) {
    ty_master_t *m = h->data;
    ty_workers_sweep(m);
    ty_api_expire_waiters(m);
}

static void ty_serve(ty_master_t *m) {
    m->wsock = zsock_new(ZMQ_ROUTER);
    m->csock = zsock_new(ZMQ_ROUTER);
    zsock_set_router_handover(m->wsock, 1); /* a restarted worker takes its id over */
    zsock_set_maxmsgsize(m->wsock, (int64_t)m->o.max_frame * 4);
    zsock_set_maxmsgsize(m->csock, (int64_t)m->o.max_frame * 4);
    zsock_set_sndhwm(m->wsock, 100000);
    zsock_set_rcvhwm(m->wsock, 100000);
    if (zsock_bind(m->wsock, "%s", m->o.worker_ep) < 0 ||
        zsock_bind(m->csock, "%s", m->o.client_ep) < 0) {
        ty_error("cannot bind %s / %s: %s", m->o.worker_ep, m->o.client_ep,
                 zmq_strerror(zmq_errno()));
        exit(1);
    }
    ty_wire_poll_create(&m->wpoll, m->loop, m->wsock, ty_workers_on_message, m);
    ty_wire_poll_create(&m->cpoll, m->loop, m->csock, ty_api_on_message, m);
    m->serving = 1;
    m->grace_until = ty_mono_ms() + m->o.worker_lease_ms;
    uint64_t every = (uint64_t)(m->o.heartbeat_ms / 2 > 0 ? m->o.heartbeat_ms / 2 : 1);
    uv_timer_start(&m->sweep, ty_sweep_cb, every, every);
    ty_info("serving workers on %s and clients on %s", m->o.worker_ep, m->o.client_ep);
    m->need_schedule = 1;
}

static void ty_rebuilt(ty_master_t *m, int status) {
    if (status != 0) {
        ty_error("cannot load state from etcd: %s", ty_strerror(status));
        exit(1);
    }
    ty_sched_recover(m);
    ty_info("state rebuilt: %zu runs, %zu workers known", m->nruns, zhashx_size(m->workers));
    ty_serve(m);
}

static void ty_elected(ty_master_t *m) { ty_state_rebuild(m, ty_rebuilt); }

static void ty_stop_cb(int status, const ty_etcd_resp_t *resp, void *arg) {
    (void)status;
    (void)resp;
    uv_stop(arg);
}

static void ty_stop_timer_cb(uv_timer_t *h) { uv_stop(h->loop); }

static void ty_signal_cb(uv_signal_t *h, int sig) {
    ty_master_t *m = h->data;
    ty_info("signal %d: shutting down", sig);
    uv_signal_stop(&m->sigint);
    uv_signal_stop(&m->sigterm);
    /* hand leadership over at once; give etcd two seconds */
    uv_timer_start(&m->retry, ty_stop_timer_cb, 2000, 0);
    if (!m->leader || ty_etcd_lease_revoke(m->etcd, m->lease_id, ty_stop_cb, m->loop) != 0)
        uv_stop(m->loop);
}

static void ty_close_walk(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int ty_opt_i64(const char *name, const char *v, int64_t *out) {
    if (ty_parse_i64(v, 1, INT64_MAX, out) != 0) {
        fprintf(stderr, "trainyard-master: --%s needs a positive integer, got '%s'\n", name, v);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    ty_master_t m;
    memset(&m, 0, sizeof m);
    char host[256] = "master";
    gethostname(host, sizeof host - 1);
    const char *env_etcd = getenv("TRAINYARD_ETCD");
    m.o.etcd = ty_xstrdup(env_etcd ? env_etcd : "http://127.0.0.1:2379");
    m.o.prefix = ty_xstrdup("/trainyard/");
    m.o.node_id = ty_xstrdup(host);
    m.o.worker_ep = ty_xstrdup("tcp://127.0.0.1:7001");
    m.o.client_ep = ty_xstrdup("tcp://127.0.0.1:7000");
    m.o.data_dir = ty_xstrdup("./.trainyard/master");
    m.o.heartbeat_ms = 1000;
    m.o.worker_lease_ms = 5000;
    m.o.leader_ttl_s = 10;
    m.o.max_frame = TY_WIRE_MAX_DEFAULT;
    m.o.lost_limit = 5;
    ty_log_level_t lvl = TY_LOG_INFO;

    static const struct option opts[] = {
        {"etcd", 1, 0, 'e'},         {"prefix", 1, 0, 'p'},
        {"node-id", 1, 0, 'n'},      {"worker-bind", 1, 0, 'w'},
        {"client-bind", 1, 0, 'c'},  {"data-dir", 1, 0, 'd'},
        {"heartbeat-ms", 1, 0, 'H'}, {"worker-lease-ms", 1, 0, 'L'},
        {"leader-ttl", 1, 0, 'T'},   {"max-frame", 1, 0, 'M'},
        {"config", 1, 0, 'C'},       {"log-level", 1, 0, 'l'},
        {"help", 0, 0, 'h'},         {0, 0, 0, 0}};
    /* a config file is read first so flags override it */
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--config") == 0) {
            ty_config_t *cfg = NULL;
            char *err = NULL;
            int rc = ty_config_load(&cfg, argv[i + 1], &err);
            if (rc != 0) {
                fprintf(stderr, "trainyard-master: %s\n", err ? err : ty_strerror(rc));
                return 2;
            }
            const char *v;
            if ((v = ty_config_get(cfg, "etcd")))
                free(m.o.etcd), m.o.etcd = ty_xstrdup(v);
            if ((v = ty_config_get(cfg, "worker-bind")))
                free(m.o.worker_ep), m.o.worker_ep = ty_xstrdup(v);
            if ((v = ty_config_get(cfg, "client-bind")))
                free(m.o.client_ep), m.o.client_ep = ty_xstrdup(v);
            if ((v = ty_config_get(cfg, "data-dir")))
                free(m.o.data_dir), m.o.data_dir = ty_xstrdup(v);
            if ((v = ty_config_get(cfg, "node-id")))
                free(m.o.node_id), m.o.node_id = ty_xstrdup(v);
            ty_config_destroy(&cfg);
        }
    int c, idx = 0;
    while ((c = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
        char **dst = NULL;
        int64_t *num = NULL;
        switch (c) {
        case 'e':
            dst = &m.o.etcd;
            break;
        case 'p':
            dst = &m.o.prefix;
            break;
        case 'n':
            dst = &m.o.node_id;
            break;
        case 'w':
            dst = &m.o.worker_ep;
            break;
        case 'c':
            dst = &m.o.client_ep;
            break;
        case 'd':
            dst = &m.o.data_dir;
            break;
        case 'H':
            num = &m.o.heartbeat_ms;
            break;
        case 'L':
            num = &m.o.worker_lease_ms;
            break;
        case 'T':
            num = &m.o.leader_ttl_s;
            break;
        case 'M': {
            int64_t v;
            if (ty_opt_i64("max-frame", optarg, &v) < 0)
                return 2;
            m.o.max_frame = (size_t)v;
            break;
        }
        case 'C':
            break;
        case 'l':
            if (ty_log_parse_level(optarg, &lvl) < 0) {
                fprintf(stderr, "trainyard-master: bad --log-level '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h':
            ty_usage(stdout);
            return 0;
        default:
            ty_usage(stderr);
            return 2;
        }
        if (dst) {
            free(*dst);
            *dst = ty_xstrdup(optarg);
        }
        if (num && ty_opt_i64(opts[idx].name, optarg, num) < 0)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "trainyard-master: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (m.o.prefix[strlen(m.o.prefix) - 1] != '/') {
        char *p = ty_xasprintf("%s/", m.o.prefix);
        free(m.o.prefix);
        m.o.prefix = p;
    }
    ty_log_init("master", lvl);
    char *logs = ty_xasprintf("%s/logs", m.o.data_dir);
    int rc = ty_mkdirs(logs);
    free(logs);
    if (rc != 0) {
        ty_error("cannot create %s/logs: %s", m.o.data_dir, ty_strerror(rc));
        return 1;
    }

    zsys_init();
    zsys_set_linger(100);
    zsys_handler_set(NULL); /* libuv handles signals */
    m.loop = uv_default_loop();
    if (ty_etcd_create(&m.etcd, m.loop, m.o.etcd) != 0) {
        ty_error("bad --etcd '%s'", m.o.etcd);
        return 2;
    }
    m.runs = zhashx_new();
    m.workers = zhashx_new();
    ty_state_init(&m);
    uv_check_init(m.loop, &m.check);
    uv_prepare_t prepare;
    uv_prepare_init(m.loop, &prepare);
    m.check.data = prepare.data = &m;
    uv_check_start(&m.check, ty_check_cb);
    uv_prepare_start(&prepare, ty_prepare_cb);
    uv_timer_init(m.loop, &m.sweep);
    uv_timer_init(m.loop, &m.delay);
    uv_timer_init(m.loop, &m.keepalive);
    uv_timer_init(m.loop, &m.retry);
    m.sweep.data = m.delay.data = m.keepalive.data = m.retry.data = &m;
    uv_signal_init(m.loop, &m.sigint);
    uv_signal_init(m.loop, &m.sigterm);
    m.sigint.data = m.sigterm.data = &m;
    uv_signal_start(&m.sigint, ty_signal_cb, SIGINT);
    uv_signal_start(&m.sigterm, ty_signal_cb, SIGTERM);

    ty_info("starting as %s, etcd %s, prefix %s", m.o.node_id, m.o.etcd, m.o.prefix);
    ty_election_start(&m, ty_elected);
    uv_run(m.loop, UV_RUN_DEFAULT);

    /* teardown */
    ty_election_stop(&m);
    ty_wire_poll_destroy(&m.wpoll);
    ty_wire_poll_destroy(&m.cpoll);
    ty_etcd_destroy(&m.etcd);
    ty_state_fini(&m);
    uv_walk(m.loop, ty_close_walk, NULL);
    uv_run(m.loop, UV_RUN_DEFAULT);
    uv_loop_close(m.loop);
    for (size_t i = 0; i < m.nruns; i++)
        ty_sched_run_free(m.order[i]);
    free(m.order);
    for (ty_worker_t *w = zhashx_first(m.workers); w; w = zhashx_next(m.workers))
        ty_workers_free(w);
    zhashx_destroy(&m.runs);
    zhashx_destroy(&m.workers);
    free(m.heap);
    free(m.delayed);
    zsock_destroy(&m.wsock);
    zsock_destroy(&m.csock);
    ty_info("stopped");
    free(m.o.etcd);
    free(m.o.prefix);
    free(m.o.node_id);
    free(m.o.worker_ep);
    free(m.o.client_ep);
    free(m.o.data_dir);
    return 0;
}
