/* trainyard-worker: options, then the session (session.c) and the executor
 * (executor.c) on one libuv loop. */
#include "worker/worker.h"

#include "common/err.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/util.h"
#include "worker/orphans.h"
#include "worker/shmdir.h"

#include <float.h>
#include <getopt.h>
#include <malloc.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void ty_signal_cb(uv_signal_t *h, int sig) {
    ty_wk_t *wk = h->data;
    ty_info("signal %d: stopping", sig);
    wk->stopping = 1;
    uv_stop(wk->loop);
}

static void ty_close_walk(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Who the attempts run as: a root worker drops to run_as (default
 * trainyard) unless that is root itself; any other worker runs them as
 * itself. */
static int ty_run_as(ty_wk_t *wk, const char *run_as) {
    if (geteuid() != 0) {
        struct passwd *me = getpwuid(geteuid());
        if (run_as && (!me || strcmp(run_as, me->pw_name) != 0)) {
            fprintf(stderr,
                    "trainyard-worker: --run-as %s needs the worker to run as root (it runs as "
                    "%s)\n",
                    run_as, me ? me->pw_name : "?");
            return -1;
        }
        return 0;
    }
    const char *u = run_as ? run_as : "trainyard";
    struct passwd *pw = getpwnam(u);
    if (!pw) {
        fprintf(stderr,
                "trainyard-worker: no user '%s' to run tasks as (scripts/install-deps.sh "
                "creates 'trainyard'; --run-as USER picks another, --run-as root keeps root)\n",
                u);
        return -1;
    }
    if (pw->pw_uid == 0) {
        ty_warn("tasks run as root (--run-as %s): they can read the worker's key and signal it", u);
        return 0;
    }
    wk->run_user = ty_xstrdup(pw->pw_name);
    wk->run_home = ty_xstrdup(pw->pw_dir);
    wk->run_uid = pw->pw_uid;
    wk->run_gid = pw->pw_gid;
    ty_info("tasks run as %s (uid %u, gid %u, no supplementary groups)", u, (unsigned)pw->pw_uid,
            (unsigned)pw->pw_gid);
    return 0;
}

static void ty_usage(FILE *f) {
    fputs("usage: trainyard-worker [options]\n"
          "  --master EPS       the masters' worker endpoints, comma-separated; the worker\n"
          "                     follows the leader (default tcp://127.0.0.1:7001)\n"
          "  --id ID            worker id (default the host name)\n"
          "  --work-dir DIR     per-attempt work directories (default ./.trainyard/work)\n"
          "  --cpus N           override the probed CPU count\n"
          "  --mem-mb N         override the probed memory\n"
          "  --gpus N           override the GPU count found through NVML\n"
          "  --labels k=v[,k=v] node labels for placement\n"
          "  --kill-grace-ms N  TERM to KILL grace period (default 5000)\n"
          "  --key FILE         its CURVE certificate (trainyard keygen ID: ID.key_secret),\n"
          "                     named after its --id\n"
          "  --master-key FILE  the masters' public key (their NAME.key)\n"
          "  --run-as USER      a worker started as root runs every attempt as USER, with\n"
          "                     its primary group only (default trainyard; root: as root)\n"
          "  --address HOST     where the other workers reach this one: MPI gangs across\n"
          "                     workers start their ranks here by it (default the host name)\n"
          "  --mpi-if IFACE     the network interface MPI gangs across workers and\n"
          "                     torch.distributed use (Open MPI's btl/oob_tcp_if_include,\n"
          "                     GLOO_SOCKET_IFNAME, NCCL_SOCKET_IFNAME); default: their own\n"
          "                     choice\n"
          "  --log-level L      debug|info|warn|error\n",
          f);
}

/* trainyard-rsh, the rsh agent of gangs across workers: beside this
 * program (the build tree and an install alike), or on PATH. */
static char *ty_find_rsh(void) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            char *path = ty_xasprintf("%s/trainyard-rsh", self);
            if (access(path, X_OK) == 0)
                return path;
            free(path);
        }
    }
    return ty_xstrdup("trainyard-rsh");
}

static int ty_add_labels(ty_wk_t *wk, const char *spec) {
    char *s = ty_xstrdup(spec), *save = NULL;
    for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq || eq == tok) {
            fprintf(stderr, "trainyard-worker: bad label '%s' (want key=value)\n", tok);
            free(s);
            return -1;
        }
        *eq = '\0';
        Ty__KV *kv = ty_xmalloc(sizeof *kv);
        ty__kv__init(kv);
        kv->key = ty_xstrdup(tok);
        kv->value = ty_xstrdup(eq + 1);
        wk->labels = ty_xrealloc(wk->labels, (wk->nlabels + 1) * sizeof *wk->labels);
        wk->labels[wk->nlabels++] = kv;
    }
    free(s);
    return 0;
}

static int ty_num_arg(const char *name, const char *v, double *out) {
    if (ty_parse_f64(v, 0, DBL_MAX, out) != 0) {
        fprintf(stderr, "trainyard-worker: --%s needs a non-negative number, got '%s'\n", name, v);
        return -1;
    }
    return 0;
}

/* Leaving before the loop started: what the options allocated, freed. */
static int ty_wk_quit(ty_wk_t *wk, int rc) {
    ty_dag_kvs_free(wk->labels, wk->nlabels);
    free(wk->id);
    free(wk->hostname);
    free(wk->master_ep);
    free(wk->workdir);
    free(wk->run_user);
    free(wk->run_home);
    free(wk->address);
    free(wk->mpi_if);
    free(wk->rsh_path);
    return rc;
}

int main(int argc, char **argv) {
    ty_wk_t wk;
    memset(&wk, 0, sizeof wk);
    char host[256] = "worker";
    gethostname(host, sizeof host - 1);
    wk.hostname = ty_xstrdup(host);
    wk.id = ty_xstrdup(host);
    wk.master_ep = ty_xstrdup("tcp://127.0.0.1:7001");
    wk.workdir = ty_xstrdup("./.trainyard/work");
    wk.kill_grace_ms = 5000;
    const char *key = NULL, *master_key = NULL, *run_as = NULL;
    wk.heartbeat_ms = 1000;
    wk.lease_ms = 8000;
    ty_probe_t probe;
    ty_probe(&probe);
    wk.cpus = probe.cpus;
    wk.mem_mb = probe.mem_mb;
    wk.gpus = probe.gpus;
    ty_log_level_t lvl = TY_LOG_INFO;
    static const struct option opts[] = {{"master", 1, 0, 'm'},      {"id", 1, 0, 'i'},
                                         {"work-dir", 1, 0, 'w'},    {"cpus", 1, 0, 'c'},
                                         {"mem-mb", 1, 0, 'M'},      {"gpus", 1, 0, 'g'},
                                         {"labels", 1, 0, 'l'},      {"kill-grace-ms", 1, 0, 'k'},
                                         {"log-level", 1, 0, 'L'},   {"key", 1, 0, 1001},
                                         {"master-key", 1, 0, 1002}, {"run-as", 1, 0, 1003},
                                         {"address", 1, 0, 1004},    {"mpi-if", 1, 0, 1005},
                                         {"help", 0, 0, 'h'},        {0, 0, 0, 0}};
    int c, idx = 0;
    double v;
    while ((c = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
        switch (c) {
        case 'm':
            free(wk.master_ep);
            wk.master_ep = ty_xstrdup(optarg);
            break;
        case 'i':
            free(wk.id);
            wk.id = ty_xstrdup(optarg);
            break;
        case 'w':
            free(wk.workdir);
            wk.workdir = ty_xstrdup(optarg);
            break;
        case 'c':
            if (ty_num_arg("cpus", optarg, &v) < 0 || v <= 0)
                return ty_wk_quit(&wk, 2);
            wk.cpus = v;
            break;
        case 'M':
            if (ty_num_arg("mem-mb", optarg, &v) < 0)
                return ty_wk_quit(&wk, 2);
            wk.mem_mb = (uint64_t)v;
            break;
        case 'g':
            if (ty_num_arg("gpus", optarg, &v) < 0 || v > 64)
                return ty_wk_quit(&wk, 2);
            wk.gpus = (uint32_t)v;
            break;
        case 'l':
            if (ty_add_labels(&wk, optarg) < 0)
                return ty_wk_quit(&wk, 2);
            break;
        case 'k':
            if (ty_num_arg("kill-grace-ms", optarg, &v) < 0)
                return ty_wk_quit(&wk, 2);
            wk.kill_grace_ms = (int64_t)v;
            break;
        case 'L':
            if (ty_log_parse_level(optarg, &lvl) < 0) {
                fprintf(stderr, "trainyard-worker: bad --log-level '%s'\n", optarg);
                return ty_wk_quit(&wk, 2);
            }
            break;
        case 1001:
            key = optarg;
            break;
        case 1002:
            master_key = optarg;
            break;
        case 1003:
            run_as = optarg;
            break;
        case 1004:
            if (!ty_host_token_ok(optarg)) {
                fprintf(stderr,
                        "trainyard-worker: --address needs a host name or IPv4 address, "
                        "got '%s'\n",
                        optarg);
                return ty_wk_quit(&wk, 2);
            }
            free(wk.address);
            wk.address = ty_xstrdup(optarg);
            break;
        case 1005:
            if (!ty_host_token_ok(optarg)) {
                fprintf(stderr, "trainyard-worker: --mpi-if needs an interface name, got '%s'\n",
                        optarg);
                return ty_wk_quit(&wk, 2);
            }
            free(wk.mpi_if);
            wk.mpi_if = ty_xstrdup(optarg);
            break;
        case 'h':
            ty_usage(stdout);
            return ty_wk_quit(&wk, 0);
        default:
            ty_usage(stderr);
            return ty_wk_quit(&wk, 2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "trainyard-worker: unexpected argument '%s'\n", argv[optind]);
        return ty_wk_quit(&wk, 2);
    }
    ty_log_init("worker", lvl);
    wk.rsh_path = ty_find_rsh();
    if (ty_run_as(&wk, run_as) != 0)
        return ty_wk_quit(&wk, 2);
    if (wk.workdir[0] != '/') { /* tasks run in other directories */
        char cwd[4096];
        if (getcwd(cwd, sizeof cwd)) {
            char *abs = ty_xasprintf("%s/%s", cwd, wk.workdir);
            free(wk.workdir);
            wk.workdir = abs;
        }
    }
    /* before registering: what an earlier run of this worker, killed
     * outright, left running (the master re-queues it), then the MPI
     * attempts' directories nobody holds any more: orphans.h, shmdir.h */
    ty_orphans_end(wk.id, wk.workdir, wk.kill_grace_ms);
    ty_shmdir_sweep("/dev/shm");
    /* Transfer buffers (256 KiB chunks, 1 MiB ranges) are allocated in the
     * thread pool and freed on the loop: a fixed mmap threshold gives each
     * back to the system when freed, instead of letting glibc raise the
     * threshold and keep them in per-thread arenas (RSS during transfers). */
    mallopt(M_MMAP_THRESHOLD, 512 * 1024);
    zsys_init();
    zsys_set_linger(100);
    zsys_handler_set(NULL);
    wk.loop = uv_default_loop();
    wk.sock = zsock_new(ZMQ_DEALER);
    zsock_set_identity(wk.sock, wk.id);
    if (key || master_key) { /* CURVE: the master knows this worker by its key */
        char *why = NULL;
        if (!key || !master_key) {
            fprintf(stderr, "trainyard-worker: --key and --master-key go together\n");
            return 2;
        }
        if (ty_keys_client(wk.sock, key, master_key, &why) != 0) {
            fprintf(stderr, "trainyard-worker: %s\n", why);
            free(why);
            return 2;
        }
    }
    zsock_set_sndhwm(wk.sock, 100000);
    zsock_set_rcvhwm(wk.sock, 100000);
    zsock_set_reconnect_ivl(wk.sock, 100);
    zsock_set_reconnect_ivl_max(wk.sock, 1000);
    if (ty_wk_connect(&wk) != 0)
        return 2;
    ty_wk_start(&wk);
    uv_signal_init(wk.loop, &wk.sigint);
    uv_signal_init(wk.loop, &wk.sigterm);
    wk.sigint.data = wk.sigterm.data = &wk;
    uv_signal_start(&wk.sigint, ty_signal_cb, SIGINT);
    uv_signal_start(&wk.sigterm, ty_signal_cb, SIGTERM);
    ty_info("worker %s: %g cpus, %llu MiB, %u gpus%s; master %s", wk.id, wk.cpus,
            (unsigned long long)wk.mem_mb, wk.gpus, probe.nvml ? " (NVML)" : "", wk.master_ep);
    uv_run(wk.loop, UV_RUN_DEFAULT);

    /* stopping: say goodbye first, so the master re-queues our attempts and
     * places nothing more here; then end their process groups */
    wk.stopping = 1;
    ty_wk_deregister(&wk, "worker stopped");
    ty_exec_kill_all(&wk, "worker stopped");
    for (int i = 0; i < 200 && ty_exec_running(&wk) > 0; i++)
        uv_run(wk.loop, UV_RUN_ONCE); /* exits arrive as events */
    ty_wire_poll_destroy(&wk.poll);
    uv_walk(wk.loop, ty_close_walk, NULL);
    uv_run(wk.loop, UV_RUN_DEFAULT);
    uv_loop_close(wk.loop);
    zsock_destroy(&wk.sock);
    ty_wk_clear_unacked(&wk);
    ty_wk_forget_masters(&wk);
    return ty_wk_quit(&wk, 0);
}
