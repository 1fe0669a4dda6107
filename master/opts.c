/* trainyard-master's options: defaults, the command line and --config,
 * checked; its usage text. */
#include "master/master.h"

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/wire.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void ty_usage(FILE *f) {
    fputs("usage: trainyard-master [options]\n"
          "  --etcd URLS            etcd endpoints (default $TRAINYARD_ETCD or "
          "http://127.0.0.1:2379)\n"
          "  --prefix P             etcd key prefix (default /trainyard/)\n"
          "  --etcd-cacert FILE     etcd over TLS: the CA that signed etcd's certificate;\n"
          "  --etcd-cert FILE       with the master's client certificate and\n"
          "  --etcd-key FILE        its key; every --etcd URL must then be https://\n"
          "  --node-id ID           this master's id (default the host name)\n"
          "  --worker-bind EP       ZeroMQ endpoint for workers (default tcp://127.0.0.1:7001)\n"
          "  --client-bind EP       ZeroMQ endpoint for clients (default tcp://127.0.0.1:7000)\n"
          "  --data-dir DIR         logs and blobs (default ./.trainyard/master)\n"
          "  --heartbeat-ms N       worker heartbeat interval (default 1000)\n"
          "  --worker-lease-ms N    a silent worker is lost after this (default 8000); keep it\n"
          "                         above the leader TTL + 2 s so tasks survive a failover\n"
          "  --leader-ttl S         leader lease TTL in seconds (default 5)\n"
          "  --store DIR            the artifact store, by SHA-256 (default <data-dir>/store);\n"
          "                         a shared mount lets a standby on another host serve it\n"
          "  --max-artifact-bytes N largest artifact accepted (default 68719476736: 64 GiB)\n"
          "  --max-run-artifact-bytes N  what one run's outputs may add up to (default 0:\n"
          "                         no limit)\n"
          "  --gc-grace-s S         `trainyard gc` keeps blobs stored less than S seconds ago\n"
          "                         (default 3600: their results may not be committed yet)\n"
          "  --store-stall-ms N     refuse submits (nothing stored) while etcd has not\n"
          "                         answered for this long (default 2000)\n"
          "  --max-frame BYTES      largest accepted message (default 4194304)\n"
          "  --retain-runs N        finished runs kept in memory (default 100)\n"
          "  --retain-tasks N       ... and at most this many of their tasks (default 5000)\n"
          "  --retain-age S         ... for at most S seconds (default 600); older ones are\n"
          "                         read back from etcd when asked for\n"
          "  --backfill-window S    a queued task that does not fit lets smaller ones behind\n"
          "                         it run for S seconds, then they wait for it (default 300;\n"
          "                         0: always)\n"
          "  --keep-history S       delete runs from etcd (and their logs) S seconds after\n"
          "                         they ended; 0 keeps them forever (default 2592000: 30 days)\n"
          "  --compact-every N      compact etcd's history every N revisions, keeping the\n"
          "                         last N/10 (default 10000)\n"
          "  --max-pipeline-bytes N a submitted pipeline file's size (default 4194304), and\n"
          "                         separately what its aliases may add\n"
          "  --max-pipeline-depth N nesting of its mappings and lists (default 32)\n"
          "  --max-pipeline-tasks N its tasks (default 20000)\n"
          "  --max-mapping-keys N   keys in any one of its mappings (default 1000)\n"
          "  --key FILE             the master's CURVE certificate (trainyard keygen's\n"
          "                         NAME.key_secret): both sockets encrypt and authenticate\n"
          "  --client-keys DIR      public keys (*.key) of the users allowed to connect\n"
          "  --worker-keys DIR      public keys of the workers allowed to connect; a worker's\n"
          "                         key must be named after its --id\n"
          "  --admin-keys DIR       public keys of users who may also cancel others' runs and\n"
          "                         change others' schedules (let in as users too)\n"
          "  --insecure             no keys: plaintext, and only on loopback addresses\n"
          "  --http-bind HOST:PORT  the HTTP API, metrics and web UI (default 127.0.0.1:7080,\n"
          "                         skipped with a warning when in use; off: none)\n"
          "  --http-tokens FILE     lines of USER TOKEN [admin]: HTTP requests that change\n"
          "                         something need one (all of them off loopback); read again\n"
          "                         on SIGHUP\n"
          "  --http-cert FILE       a certificate (PEM) with --http-key FILE: HTTPS (needed\n"
          "                         beyond loopback)\n"
          "  --config FILE          key = value file with the same option names\n"
          "  --log-level L          debug|info|warn|error (default info)\n",
          f);
}

static int ty_opt_i64(const char *name, const char *v, int64_t *out) {
    if (ty_parse_i64(v, 1, INT64_MAX, out) != 0) {
        fprintf(stderr, "trainyard-master: --%s needs a positive integer, got '%s'\n", name, v);
        return -1;
    }
    return 0;
}

int ty_master_opts_free(ty_master_opts_t *o, int rc) {
    free(o->etcd);
    free(o->prefix);
    free(o->node_id);
    free(o->worker_ep);
    free(o->client_ep);
    free(o->data_dir);
    free(o->store_dir);
    free(o->key);
    free(o->client_keys);
    free(o->admin_keys);
    free(o->etcd_cacert);
    free(o->etcd_cert);
    free(o->etcd_key);
    free(o->worker_keys);
    free(o->http_bind);
    free(o->http_tokens);
    free(o->http_cert);
    free(o->http_key);
    memset(o, 0, sizeof *o);
    return rc;
}

int ty_master_opts_parse(ty_master_opts_t *o, int argc, char **argv, ty_log_level_t *lvl_out) {
    ty_log_level_t lvl = TY_LOG_INFO;
    char host[256] = "master";
    gethostname(host, sizeof host - 1);
    const char *env_etcd = getenv("TRAINYARD_ETCD");
    o->etcd = ty_xstrdup(env_etcd ? env_etcd : "http://127.0.0.1:2379");
    o->prefix = ty_xstrdup("/trainyard/");
    o->node_id = ty_xstrdup(host);
    o->worker_ep = ty_xstrdup("tcp://127.0.0.1:7001");
    o->client_ep = ty_xstrdup("tcp://127.0.0.1:7000");
    o->data_dir = ty_xstrdup("./.trainyard/master");
    o->heartbeat_ms = 1000;
    o->worker_lease_ms = 8000;
    o->leader_ttl_s = 5;
    o->store_stall_ms = 2000;
    o->max_artifact = 64LL << 30;
    o->gc_grace_s = 3600;
    o->max_frame = TY_WIRE_MAX_DEFAULT;
    o->lost_limit = 5;
    o->retain_runs = 100;
    o->retain_tasks = 5000;
    o->retain_s = 600;
    o->backfill_s = 300;
    o->compact_every = 10000;
    o->history_s = 30LL * 24 * 3600;
    ty_dag_limits_t deflim = TY_DAG_LIMITS_DEFAULT;
    o->max_pl_bytes = (int64_t)deflim.max_bytes;
    o->max_pl_depth = deflim.max_depth;
    o->max_pl_tasks = deflim.max_tasks;
    o->max_map_keys = deflim.max_keys;

    static const struct option opts[] = {{"etcd", 1, 0, 'e'},
                                         {"prefix", 1, 0, 'p'},
                                         {"node-id", 1, 0, 'n'},
                                         {"worker-bind", 1, 0, 'w'},
                                         {"client-bind", 1, 0, 'c'},
                                         {"data-dir", 1, 0, 'd'},
                                         {"heartbeat-ms", 1, 0, 'H'},
                                         {"worker-lease-ms", 1, 0, 'L'},
                                         {"leader-ttl", 1, 0, 'T'},
                                         {"store-stall-ms", 1, 0, 'S'},
                                         {"store", 1, 0, 'o'},
                                         {"max-artifact-bytes", 1, 0, 'x'},
                                         {"max-run-artifact-bytes", 1, 0, 'X'},
                                         {"gc-grace-s", 1, 0, 'G'},
                                         {"max-frame", 1, 0, 'M'},
                                         {"config", 1, 0, 'C'},
                                         {"log-level", 1, 0, 'l'},
                                         {"retain-runs", 1, 0, 'R'},
                                         {"retain-tasks", 1, 0, 'K'},
                                         {"retain-age", 1, 0, 'A'},
                                         {"backfill-window", 1, 0, 1009},
                                         {"compact-every", 1, 0, 'E'},
                                         {"keep-history", 1, 0, 'Y'},
                                         {"max-pipeline-bytes", 1, 0, 'B'},
                                         {"max-pipeline-depth", 1, 0, 'D'},
                                         {"max-pipeline-tasks", 1, 0, 'N'},
                                         {"max-mapping-keys", 1, 0, 'k'},
                                         {"key", 1, 0, 1001},
                                         {"client-keys", 1, 0, 1002},
                                         {"worker-keys", 1, 0, 1003},
                                         {"insecure", 0, 0, 1004},
                                         {"admin-keys", 1, 0, 1005},
                                         {"etcd-cacert", 1, 0, 1006},
                                         {"etcd-cert", 1, 0, 1007},
                                         {"etcd-key", 1, 0, 1008},
                                         {"http-bind", 1, 0, 1010},
                                         {"http-tokens", 1, 0, 1011},
                                         {"http-cert", 1, 0, 1012},
                                         {"http-key", 1, 0, 1013},
                                         {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    /* a config file is read first so flags override it */
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--config") == 0) {
            ty_config_t *cfg = NULL;
            char *err = NULL;
            int rc = ty_config_load(&cfg, argv[i + 1], &err);
            if (rc != 0) {
                fprintf(stderr, "trainyard-master: %s\n", err ? err : ty_strerror(rc));
                return ty_master_opts_free(o, 2);
            }
            const char *v;
            if ((v = ty_config_get(cfg, "etcd")))
                free(o->etcd), o->etcd = ty_xstrdup(v);
            if ((v = ty_config_get(cfg, "worker-bind")))
                free(o->worker_ep), o->worker_ep = ty_xstrdup(v);
            if ((v = ty_config_get(cfg, "client-bind")))
                free(o->client_ep), o->client_ep = ty_xstrdup(v);
            if ((v = ty_config_get(cfg, "data-dir")))
                free(o->data_dir), o->data_dir = ty_xstrdup(v);
            if ((v = ty_config_get(cfg, "node-id")))
                free(o->node_id), o->node_id = ty_xstrdup(v);
            const struct {
                const char *name;
                char **dst;
            } keys[] = {{"key", &o->key},
                        {"client-keys", &o->client_keys},
                        {"worker-keys", &o->worker_keys},
                        {"admin-keys", &o->admin_keys},
                        {"etcd-cacert", &o->etcd_cacert},
                        {"etcd-cert", &o->etcd_cert},
                        {"etcd-key", &o->etcd_key},
                        {"http-bind", &o->http_bind},
                        {"http-tokens", &o->http_tokens},
                        {"http-cert", &o->http_cert},
                        {"http-key", &o->http_key}};
            for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
                if ((v = ty_config_get(cfg, keys[k].name)))
                    free(*keys[k].dst), *keys[k].dst = ty_xstrdup(v);
            ty_config_destroy(&cfg);
        }
    int c, idx = 0;
    while ((c = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
        char **dst = NULL;
        int64_t *num = NULL;
        switch (c) {
        case 'e':
            dst = &o->etcd;
            break;
        case 'p':
            dst = &o->prefix;
            break;
        case 'n':
            dst = &o->node_id;
            break;
        case 'w':
            dst = &o->worker_ep;
            break;
        case 'c':
            dst = &o->client_ep;
            break;
        case 'd':
            dst = &o->data_dir;
            break;
        case 'H':
            num = &o->heartbeat_ms;
            break;
        case 'L':
            num = &o->worker_lease_ms;
            break;
        case 'T':
            num = &o->leader_ttl_s;
            break;
        case 'S':
            num = &o->store_stall_ms;
            break;
        case 'o':
            dst = &o->store_dir;
            break;
        case 1001:
            dst = &o->key;
            break;
        case 1002:
            dst = &o->client_keys;
            break;
        case 1003:
            dst = &o->worker_keys;
            break;
        case 1004:
            o->insecure = 1;
            break;
        case 1005:
            dst = &o->admin_keys;
            break;
        case 1006:
            dst = &o->etcd_cacert;
            break;
        case 1007:
            dst = &o->etcd_cert;
            break;
        case 1008:
            dst = &o->etcd_key;
            break;
        case 1010:
            dst = &o->http_bind;
            break;
        case 1011:
            dst = &o->http_tokens;
            break;
        case 1012:
            dst = &o->http_cert;
            break;
        case 1013:
            dst = &o->http_key;
            break;
        case 'x':
            num = &o->max_artifact;
            break;
        case 'G': /* 0: none */
            if (ty_parse_i64(optarg, 0, INT64_MAX / 1000, &o->gc_grace_s) != 0) {
                fprintf(stderr,
                        "trainyard-master: --gc-grace-s needs seconds (0 or more), got '%s'\n",
                        optarg);
                return ty_master_opts_free(o, 2);
            }
            break;
        case 'X': /* 0: no limit */
            if (ty_parse_i64(optarg, 0, INT64_MAX, &o->max_run_artifacts) != 0) {
                fprintf(stderr,
                        "trainyard-master: --max-run-artifact-bytes needs bytes (0 or more), "
                        "got '%s'\n",
                        optarg);
                return ty_master_opts_free(o, 2);
            }
            break;
        case 'M': {
            int64_t v;
            if (ty_opt_i64("max-frame", optarg, &v) < 0)
                return ty_master_opts_free(o, 2);
            o->max_frame = (size_t)v;
            break;
        }
        case 'R':
            num = &o->retain_runs;
            break;
        case 'K':
            num = &o->retain_tasks;
            break;
        case 1009: /* 0 is allowed: backfill always */
            if (ty_parse_i64(optarg, 0, INT64_MAX / 1000, &o->backfill_s) != 0) {
                fprintf(stderr,
                        "trainyard-master: --backfill-window needs seconds (0 or more), "
                        "got '%s'\n",
                        optarg);
                return ty_master_opts_free(o, 2);
            }
            break;
        case 'A':
            num = &o->retain_s;
            break;
        case 'E':
            num = &o->compact_every;
            break;
        case 'Y': /* 0 is allowed: keep forever */
            if (ty_parse_i64(optarg, 0, INT64_MAX / 1000, &o->history_s) != 0) {
                fprintf(stderr,
                        "trainyard-master: --keep-history needs seconds (0 or more), "
                        "got '%s'\n",
                        optarg);
                return ty_master_opts_free(o, 2);
            }
            break;
        case 'B':
            num = &o->max_pl_bytes;
            break;
        case 'D':
            num = &o->max_pl_depth;
            break;
        case 'N':
            num = &o->max_pl_tasks;
            break;
        case 'k':
            num = &o->max_map_keys;
            break;
        case 'C':
            break;
        case 'l':
            if (ty_log_parse_level(optarg, &lvl) < 0) {
                fprintf(stderr, "trainyard-master: bad --log-level '%s'\n", optarg);
                return ty_master_opts_free(o, 2);
            }
            break;
        case 'h':
            ty_usage(stdout);
            return ty_master_opts_free(o, 0);
        default:
            ty_usage(stderr);
            return ty_master_opts_free(o, 2);
        }
        if (dst) {
            free(*dst);
            *dst = ty_xstrdup(optarg);
        }
        if (num && ty_opt_i64(opts[idx].name, optarg, num) < 0)
            return ty_master_opts_free(o, 2);
    }
    if (optind < argc) {
        fprintf(stderr, "trainyard-master: unexpected argument '%s'\n", argv[optind]);
        return ty_master_opts_free(o, 2);
    }
    if (o->key && (!o->client_keys || !o->worker_keys)) {
        fprintf(stderr, "trainyard-master: --key needs --client-keys DIR and --worker-keys DIR "
                        "(the public keys allowed in)\n");
        return ty_master_opts_free(o, 2);
    }
    if (!o->key && !o->insecure) {
        fprintf(stderr, "trainyard-master: no --key: give the master a key (trainyard keygen) "
                        "with --client-keys and --worker-keys, or --insecure for loopback-only "
                        "development\n");
        return ty_master_opts_free(o, 2);
    }
    if (!o->key && (!ty_wire_loopback(o->worker_ep) || !ty_wire_loopback(o->client_ep))) {
        fprintf(stderr,
                "trainyard-master: --insecure binds loopback addresses only (127.0.0.0/8, "
                "::1), not %s\n",
                ty_wire_loopback(o->worker_ep) ? o->client_ep : o->worker_ep);
        return ty_master_opts_free(o, 2);
    }
    if (o->max_pl_depth > TY_DAG_MAX_DEPTH || o->max_pl_tasks > 10000000 ||
        o->max_map_keys > 10000000) {
        fprintf(stderr, "trainyard-master: --max-pipeline-depth is at most 4096, "
                        "--max-pipeline-tasks and --max-mapping-keys at most 10000000\n");
        return ty_master_opts_free(o, 2);
    }
    if (o->prefix[strlen(o->prefix) - 1] != '/') {
        char *p = ty_xasprintf("%s/", o->prefix);
        free(o->prefix);
        o->prefix = p;
    }
    *lvl_out = lvl;
    return -1;
}
