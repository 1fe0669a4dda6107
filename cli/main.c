/* trainyard: the command-line client. */
#include "cli/cli.h"
#include "cli/output.h"

#include "common/config.h"
#include "common/dag.h"
#include "common/err.h"
#include "common/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int ty_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("trainyard: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

static const char *ty_master_ep(const char *flag, ty_config_t **cfg) {
    if (flag)
        return flag;
    if (getenv("TRAINYARD_MASTER") && *getenv("TRAINYARD_MASTER"))
        return getenv("TRAINYARD_MASTER");
    char *path = getenv("TRAINYARD_CONFIG") ? ty_xstrdup(getenv("TRAINYARD_CONFIG"))
                 : getenv("HOME") ? ty_xasprintf("%s/.config/trainyard/config", getenv("HOME"))
                                  : NULL;
    const char *v = NULL;
    char *err = NULL;
    if (path && ty_config_load(cfg, path, &err) == 0)
        v = ty_config_get(*cfg, "master");
    else if (err) {
        fprintf(stderr, "trainyard: %s\n", err);
        free(err);
    }
    free(path);
    return v ? v : "tcp://127.0.0.1:7000";
}

/* Call the master; on failure print one clear line.  Returns 0 or 1. */
static int ty_check_reply(ty_client_t *c, Ty__Envelope **reply, Ty__Envelope__BodyCase want);

/* --connect-timeout, or $TRAINYARD_CONNECT_TIMEOUT (seconds): how long a
 * call waits for a connection to a master before it says none answers. */
static int64_t ty_connect_ms = 2000;

/* The run a request names, if it names one by id. */
static char **ty_run_field(Ty__Envelope *req) {
    switch (req->body_case) {
    case TY__ENVELOPE__BODY_STATUS:
        return &req->status->run_id;
    case TY__ENVELOPE__BODY_LOGS:
        return &req->logs->run_id;
    case TY__ENVELOPE__BODY_CANCEL:
        return &req->cancel->run_id;
    case TY__ENVELOPE__BODY_METRICS:
        return &req->metrics->run_id;
    case TY__ENVELOPE__BODY_PIN:
        return &req->pin->run_id;
    case TY__ENVELOPE__BODY_RETRY:
        return &req->retry->run_id;
    default:
        return NULL;
    }
}

int ty_call(ty_client_t *c, Ty__Envelope *req, int timeout_ms, Ty__Envelope **reply,
            Ty__Envelope__BodyCase want) {
    char **run = ty_run_field(req); /* a short prefix of its id will do */
    if (run && ty_resolve_run(c, timeout_ms, run) != 0)
        return 1;
    int rc = ty_client_call(c, req, timeout_ms, reply);
    if (rc == TY_ETIMEOUT && ty_client_reason(c))
        return ty_die("no answer within %ds: %s", (timeout_ms + 999) / 1000, ty_client_reason(c));
    if (rc == TY_ETIMEOUT)
        return ty_die("no answer from the master at %s within %ds (is it running?)",
                      ty_client_list(c), (timeout_ms + 999) / 1000);
    if (rc == TY_EUNREACH)
        return ty_die("no answer from the master at %s: no connection within %.1fs (is it "
                      "running? with keys: are they the master's, and is yours let in?)",
                      ty_client_list(c), (double)ty_connect_ms / 1000);
    if (rc != 0)
        return ty_die("talking to the master at %s: %s", ty_client_endpoint(c), ty_strerror(rc));
    return ty_check_reply(c, reply, want);
}

/* An ErrorReply is printed; another body than want is an error.  0 or 1. */
static int ty_check_reply(ty_client_t *c, Ty__Envelope **reply, Ty__Envelope__BodyCase want) {
    (void)c;
    if ((*reply)->body_case == TY__ENVELOPE__BODY_ERROR) {
        const char *msg = (*reply)->error->message;
        size_t n = strlen(msg);
        while (n > 0 && msg[n - 1] == '\n')
            n--;
        fprintf(stderr, "trainyard: %.*s\n", (int)n, msg);
        ty_wire_free(reply);
        return 1;
    }
    if ((*reply)->body_case != want) {
        ty_wire_free(reply);
        return ty_die("unexpected reply from the master");
    }
    return 0;
}

static int ty_cmd_validate(ty_cli_t *cli) {
    if (cli->argc != 2)
        return ty_die("usage: trainyard validate FILE");
    Ty__PipelineSpec *spec = NULL;
    char *err = NULL;
    ty_dag_limits_t lim = TY_DAG_LIMITS_LOCAL;
    int rc = ty_dag_load_file_lim(cli->argv[1], &lim, &spec, &err);
    if (rc != 0) {
        fputs(err, stderr);
        free(err);
        return 1;
    }
    if (cli->json) {
        json_t *o = json_object();
        json_object_set_new(o, "file", json_string(cli->argv[1]));
        json_object_set_new(o, "pipeline", json_string(spec->name));
        json_object_set_new(o, "tasks", json_integer((json_int_t)spec->n_tasks));
        json_object_set_new(o, "valid", json_true());
        ty_out_json_print(o);
    } else {
        printf("%s: ok (pipeline %s, %zu tasks)\n", cli->argv[1], spec->name, spec->n_tasks);
    }
    ty_dag_free(&spec);
    return 0;
}

/* Send the file to the master (it validates again and renders params). */
/* A submit asked again through an outage says so, once. */
static void ty_submit_retrying(void *arg, const char *why, int64_t until_ms) {
    char until[40];
    ty_fmt_time(until_ms, until, sizeof until);
    fprintf(stderr,
            "trainyard: %s; sending the submit again (request id %s: it makes one run, "
            "whichever try lands) until %s\n",
            why, (const char *)arg, until);
}

static int ty_submit_file(ty_cli_t *cli, ty_client_t *c, const char *file, Ty__KV **params,
                          size_t nparams, const char *request_id, Ty__Envelope **rep) {
    ty_buf_t yaml = {0};
    if (ty_read_file(file, &yaml) != 0) {
        ty_buf_free(&yaml);
        return ty_die("cannot read %s", file);
    }
    Ty__SubmitRequest sr = TY__SUBMIT_REQUEST__INIT;
    sr.yaml = yaml.data;
    sr.filename = (char *)file;
    sr.params = params;
    sr.n_params = nparams;
    sr.request_id = (char *)request_id;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_SUBMIT;
    env.submit = &sr;
    /* sent again (same request id) while no master answers, until the
     * deadline: a master that stored it answers with the same run */
    ty_client_on_retry(c, ty_submit_retrying, (void *)request_id);
    int rc = ty_client_call(c, &env, cli->call_ms, rep);
    ty_client_on_retry(c, NULL, NULL);
    if (rc == TY_ETIMEOUT) {
        fprintf(stderr,
                "trainyard: no master confirmed the submit within %ds; it may have been "
                "stored.\n  `trainyard submit %s --request-id %s` (same params) gets that run, "
                "or stores it once.\n",
                (cli->call_ms + 999) / 1000, file, request_id);
        rc = 1;
    } else if (rc == TY_EUNREACH) { /* no connection: the submit never left */
        rc = ty_die("no answer from the master at %s: no connection within %.1fs; nothing was "
                    "submitted (is it running? with keys: are they the master's, and is yours "
                    "let in?)",
                    ty_client_list(c), (double)ty_connect_ms / 1000);
    } else if (rc == 0) {
        Ty__Envelope *r = *rep;
        *rep = NULL;
        rc = ty_check_reply(c, &r, TY__ENVELOPE__BODY_SUBMIT_REPLY);
        *rep = r;
    } else {
        rc = ty_die("talking to the master at %s: %s", ty_client_endpoint(c), ty_strerror(rc));
    }
    ty_buf_free(&yaml);
    return rc;
}

static int ty_submitted(ty_cli_t *cli, ty_client_t *c, Ty__Envelope *rep, int wait);

static const char *ty_request_id(const char *given, char buf[40]) {
    if (given)
        return given;
    unsigned char rnd[16];
    ty_random_bytes(rnd, sizeof rnd);
    for (size_t k = 0; k < sizeof rnd; k++)
        snprintf(buf + 2 * k, 3, "%02x", rnd[k]);
    return buf;
}

static int ty_request_id_bad(const char *id) {
    size_t n = strlen(id);
    return n == 0 || n > 64 ||
           strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != n;
}

static int ty_cmd_submit(ty_cli_t *cli, ty_client_t *c) {
    int wait = 0, local_check = 1, run_now = 0;
    const char *file = NULL, *request_id = NULL;
    char idbuf[40];
    /* -p key=value: split in place (argv is ours), at most argc of them */
    Ty__KV *kvs = ty_xcalloc((size_t)cli->argc, sizeof *kvs);
    Ty__KV **ptrs = ty_xcalloc((size_t)cli->argc, sizeof *ptrs);
    size_t nkv = 0;
    int rc = 0;
    for (int i = 1; i < cli->argc && rc == 0; i++) {
        char *a = cli->argv[i];
        if (strcmp(a, "--wait") == 0 || strcmp(a, "-w") == 0) {
            wait = 1;
        } else if (strcmp(a, "--run-now") == 0) {
            run_now = 1;
        } else if (strcmp(a, "--no-local-check") == 0) {
            local_check = 0; /* let the master validate (it always does) */
        } else if (strcmp(a, "--request-id") == 0 && i + 1 < cli->argc) {
            request_id = cli->argv[++i];
            if (ty_request_id_bad(request_id))
                rc =
                    ty_die("--request-id needs 1 to 64 of A-Z a-z 0-9 _ . -, got '%s'", request_id);
        } else if ((strcmp(a, "-p") == 0 || strcmp(a, "--param") == 0) && i + 1 < cli->argc) {
            char *kv = cli->argv[++i], *eq = strchr(kv, '=');
            if (!eq || eq == kv) {
                rc = ty_die("bad -p '%s' (want key=value)", kv);
                break;
            }
            *eq = '\0';
            ty__kv__init(&kvs[nkv]);
            kvs[nkv].key = kv;
            kvs[nkv].value = eq + 1;
            ptrs[nkv] = &kvs[nkv];
            nkv++;
        } else if (!file && a[0] != '-') {
            file = a;
        } else {
            rc = ty_die("submit: unexpected argument '%s'", a);
        }
    }
    if (rc == 0 && !file)
        rc = ty_die("usage: trainyard submit FILE [-p key=value]... [--wait]");
    /* validate locally first: a clear error without a round trip */
    Ty__PipelineSpec *spec = NULL;
    char *err = NULL;
    ty_dag_limits_t lim = TY_DAG_LIMITS_LOCAL;
    if (rc == 0 && local_check && ty_dag_load_file_lim(file, &lim, &spec, &err) != 0) {
        fputs(err, stderr);
        rc = 1;
    }
    free(err);
    if (rc == 0 && spec && *spec->schedule) { /* the schedule named after the pipeline */
        rc = ty_sched_from_pipeline(cli, c, file, spec, ptrs, nkv);
        if (!run_now) {
            ty_dag_free(&spec);
            free(kvs);
            free(ptrs);
            return rc;
        }
    }
    ty_dag_free(&spec);
    Ty__Envelope *rep = NULL;
    if (rc == 0)
        rc = ty_submit_file(cli, c, file, ptrs, nkv, ty_request_id(request_id, idbuf), &rep);
    free(kvs);
    free(ptrs);
    if (rc != 0)
        return rc;
    return ty_submitted(cli, c, rep, wait);
}

/* A new run's id, printed (or followed to its end with wait). */
static int ty_submitted(ty_cli_t *cli, ty_client_t *c, Ty__Envelope *rep, int wait) {
    int rc = 0;
    const char *run = rep->submit_reply->run_id;
    for (size_t i = 0; i < rep->submit_reply->n_warnings; i++)
        fprintf(stderr, "warning: %s\n", rep->submit_reply->warnings[i]);
    if (!wait) {
        if (cli->json) {
            json_t *o = json_object();
            json_object_set_new(o, "run_id", json_string(run));
            json_object_set_new(o, "state",
                                json_string(ty_run_state_name(rep->submit_reply->state)));
            ty_out_json_print(o);
        } else {
            printf("%s\n", run);
        }
    } else {
        fprintf(stderr, "submitted %s\n", run);
        rc = ty_wait_run(cli, c, run);
    }
    ty_wire_free(&rep);
    return rc;
}

static int ty_cmd_retry(ty_cli_t *cli, ty_client_t *c) {
    int wait = 0;
    const char *run = NULL, *from = "", *request_id = NULL;
    char idbuf[40];
    for (int i = 1; i < cli->argc; i++) {
        const char *a = cli->argv[i];
        if (strcmp(a, "--wait") == 0 || strcmp(a, "-w") == 0)
            wait = 1;
        else if (strcmp(a, "--from") == 0 && i + 1 < cli->argc)
            from = cli->argv[++i];
        else if (strcmp(a, "--request-id") == 0 && i + 1 < cli->argc) {
            request_id = cli->argv[++i];
            if (ty_request_id_bad(request_id))
                return ty_die("--request-id needs 1 to 64 of A-Z a-z 0-9 _ . -, got '%s'",
                              request_id);
        } else if (!run && a[0] != '-')
            run = a;
        else
            return ty_die("retry: unexpected argument '%s'", a);
    }
    if (!run)
        return ty_die("usage: trainyard retry RUN [--from TASK] [--wait]");
    Ty__RetryRequest rr = TY__RETRY_REQUEST__INIT;
    rr.run_id = (char *)run;
    rr.from_task = (char *)from;
    rr.request_id = (char *)ty_request_id(request_id, idbuf);
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_RETRY;
    env.retry = &rr;
    Ty__Envelope *rep = NULL;
    if (ty_call(c, &env, cli->call_ms, &rep, TY__ENVELOPE__BODY_SUBMIT_REPLY) != 0)
        return 1;
    return ty_submitted(cli, c, rep, wait);
}

static int ty_cmd_status(ty_cli_t *cli, ty_client_t *c) {
    const char *run = NULL;
    int wait = 0;
    uint64_t after = 0;
    for (int i = 1; i < cli->argc; i++) {
        if (strcmp(cli->argv[i], "--wait") == 0)
            wait = 1;
        else if (strcmp(cli->argv[i], "--wait-after") == 0 && i + 1 < cli->argc) {
            int64_t v; /* one long-poll past this version */
            if (ty_parse_i64(cli->argv[++i], 0, INT64_MAX, &v) != 0)
                return ty_die("status: --wait-after needs a version (an integer >= 0), got '%s'",
                              cli->argv[i]);
            after = (uint64_t)v;
        } else if (!run)
            run = cli->argv[i];
        else
            return ty_die("status: unexpected argument '%s'", cli->argv[i]);
    }
    if (!run)
        return ty_die("usage: trainyard status RUN [--wait]");
    if (wait)
        return ty_wait_run(cli, c, run);
    Ty__Envelope *rep = NULL;
    if (ty_get_status(cli, c, run, after, &rep) != 0)
        return 1;
    if (cli->json)
        ty_out_json_print(ty_render_status(rep->status_reply->status));
    else
        ty_out_status_table(stdout, rep->status_reply->status);
    ty_wire_free(&rep);
    return 0;
}

int main(int argc, char **argv) {
    ty_cli_t cli = {.call_ms = 15000};
    const char *ct = getenv("TRAINYARD_CONNECT_TIMEOUT");
    double ctv = 0;
    if (ct && *ct) {
        if (ty_parse_f64(ct, 0, 86400, &ctv) != 0 || ctv * 1000 < 1)
            return ty_die("TRAINYARD_CONNECT_TIMEOUT needs a number of seconds, got '%s'", ct);
        ty_connect_ms = (int64_t)(ctv * 1000);
    }
    const char *master_flag = NULL, *key_flag = NULL, *mkey_flag = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--master") == 0 && i + 1 < argc) {
            master_flag = argv[++i];
        } else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc) {
            key_flag = argv[++i];
        } else if (strcmp(argv[i], "--master-key") == 0 && i + 1 < argc) {
            mkey_flag = argv[++i];
        } else if (strcmp(argv[i], "--connect-timeout") == 0 && i + 1 < argc) {
            double t = 0;
            if (ty_parse_f64(argv[++i], 0, 86400, &t) != 0 || t * 1000 < 1)
                return ty_die("--connect-timeout needs a number of seconds (0.001 to 86400), got "
                              "'%s'",
                              argv[i]);
            ty_connect_ms = (int64_t)(t * 1000);
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("trainyard %s\n", TY_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            double t = 0;
            if (ty_parse_f64(argv[++i], 0, 86400, &t) != 0 || t * 1000 < 1)
                return ty_die("--timeout needs a number of seconds (0.001 to 86400), got '%s'",
                              argv[i]);
            cli.call_ms = (int)(t * 1000);
        } else if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) &&
                   i + 1 < argc) {
            const char *o = argv[++i];
            if (strcmp(o, "json") == 0)
                cli.json = 1;
            else if (strcmp(o, "table") != 0)
                return ty_die("unknown output format '%s' (table or json)", o);
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            ty_usage(stdout);
            return 0;
        } else {
            ty_usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        ty_usage(stderr);
        return 2;
    }
    /* -o json may also follow the command */
    char **rest = ty_xcalloc((size_t)(argc - i) + 1, sizeof *rest);
    int n = 0;
    int get = strcmp(argv[i], "get") == 0 || /* its -o names the file */
              (strcmp(argv[i], "models") == 0 && i + 1 < argc && strcmp(argv[i + 1], "get") == 0);
    for (int k = i; k < argc; k++) {
        if (!get && (strcmp(argv[k], "-o") == 0 || strcmp(argv[k], "--output") == 0) &&
            k + 1 < argc) {
            const char *o = argv[++k];
            if (strcmp(o, "json") == 0)
                cli.json = 1;
            else if (strcmp(o, "table") != 0) {
                free(rest);
                return ty_die("unknown output format '%s' (table or json)", o);
            }
            continue;
        }
        if (strcmp(argv[k], "--master") == 0 && k + 1 < argc) {
            master_flag = argv[++k];
            continue;
        }
        rest[n++] = argv[k];
    }
    cli.argc = n;
    cli.argv = rest;
    const char *cmd = rest[0];
    for (int k = 1; k < n; k++)
        if (strcmp(rest[k], "--help") == 0 || strcmp(rest[k], "-h") == 0) {
            printf("usage: trainyard [--master EPS] [--timeout S] [-o table|json] %s ...\n", cmd);
            ty_usage_of(cmd);
            free(rest);
            return 0;
        }
    int rc;
    ty_out_set_colour(
        ty_out_colour_wanted(isatty(STDOUT_FILENO), getenv("NO_COLOR"), getenv("TERM")));
    if (strcmp(cmd, "validate") == 0) {
        rc = ty_cmd_validate(&cli);
        free(rest);
        return rc;
    }
    if (strcmp(cmd, "completion") == 0) {
        rc = ty_cmd_completion(&cli);
        free(rest);
        return rc;
    }
    if (strcmp(cmd, "keygen") == 0 || strcmp(cmd, "keys") == 0) {
        rc = cmd[3] == 'g' ? ty_cmd_keygen(&cli) : ty_cmd_keys(&cli);
        free(rest);
        return rc;
    }
    static const struct {
        const char *name;
        int (*fn)(ty_cli_t *, ty_client_t *);
    } cmds[] = {{"submit", ty_cmd_submit},
                {"status", ty_cmd_status},
                {"runs", ty_cmd_runs},
                {"pipelines", ty_cmd_pipelines},
                {"logs", ty_cmd_logs},
                {"cancel", ty_cmd_cancel},
                {"workers", ty_cmd_workers},
                {"info", ty_cmd_info},
                {"artifacts", ty_cmd_artifacts},
                {"get", ty_cmd_get},
                {"metrics", ty_cmd_metrics},
                {"compare", ty_cmd_compare},
                {"retry", ty_cmd_retry},
                {"pin", ty_cmd_pin},
                {"gc", ty_cmd_gc},
                {"lineage", ty_cmd_lineage},
                {"schedules", ty_cmd_schedules},
                {"models", ty_cmd_models}};
    for (size_t k = 0; k < sizeof cmds / sizeof *cmds; k++) {
        if (strcmp(cmd, cmds[k].name) != 0)
            continue;
        ty_config_t *cfg = NULL;
        ty_client_t *c = NULL;
        const char *ep = ty_master_ep(master_flag, &cfg);
        const char *key = key_flag ? key_flag : getenv("TRAINYARD_KEY");
        const char *mkey = mkey_flag ? mkey_flag : getenv("TRAINYARD_MASTER_KEY");
        if (!key && cfg)
            key = ty_config_get(cfg, "key");
        if (!mkey && cfg)
            mkey = ty_config_get(cfg, "master-key");
        char *why = NULL;
        if (ty_client_create(&c, ep) != 0) {
            rc = ty_die("bad master endpoint '%s'", ep);
        } else if ((ty_client_set_connect_ms(c, ty_connect_ms < cli.call_ms ? ty_connect_ms
                                                                            : cli.call_ms),
                    0)) {
        } else if ((key && *key) != (mkey && *mkey)) {
            rc = ty_die("a key needs the master's key too (--key with --master-key, or "
                        "TRAINYARD_KEY with TRAINYARD_MASTER_KEY)");
            ty_client_destroy(&c);
        } else if (key && *key && ty_client_use_keys(c, key, mkey, &why) != 0) {
            rc = ty_die("%s", why ? why : "bad keys");
            free(why);
            ty_client_destroy(&c);
        } else {
            rc = cmds[k].fn(&cli, c);
            ty_resolved_free();
            ty_client_destroy(&c);
        }
        ty_config_destroy(&cfg);
        free(rest);
        return rc;
    }
    free(rest);
    fprintf(stderr, "trainyard: unknown command '%s'\n", cmd);
    ty_usage(stderr);
    return 2;
}
