/* trainyard runs, logs, cancel: the runs a master holds, a task's output,
 * and ending a run. */
#include "cli/cli.h"
#include "cli/output.h"

#include "common/dag.h"
#include "common/err.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* --since: an age (N s|m|h|d before now) or a UTC time; Unix ms. */

int ty_cmd_runs(ty_cli_t *cli, ty_client_t *c) {
    Ty__RunsRequest rr = TY__RUNS_REQUEST__INIT;
    int quiet = 0;
    for (int i = 1; i < cli->argc; i++) {
        if (strcmp(cli->argv[i], "-q") == 0 || strcmp(cli->argv[i], "--quiet") == 0) {
            quiet = 1;
        } else if (strcmp(cli->argv[i], "--limit") == 0 && i + 1 < cli->argc) {
            int64_t v;
            if (ty_parse_i64(cli->argv[++i], 1, UINT32_MAX, &v) != 0)
                return ty_die("runs: --limit needs a positive integer, got '%s'", cli->argv[i]);
            rr.limit = (uint32_t)v;
        } else if (strcmp(cli->argv[i], "--schedule") == 0 && i + 1 < cli->argc) {
            rr.schedule = cli->argv[++i];
        } else if (strcmp(cli->argv[i], "--pipeline") == 0 && i + 1 < cli->argc) {
            rr.pipeline = cli->argv[++i];
        } else if (strcmp(cli->argv[i], "--owner") == 0 && i + 1 < cli->argc) {
            rr.owner = cli->argv[++i];
        } else if (strcmp(cli->argv[i], "--state") == 0 && i + 1 < cli->argc) {
            rr.state = cli->argv[++i];
            int ok = 0;
            for (unsigned s = 0; s < TY_RUN_NSTATES; s++)
                ok |= strcmp(rr.state, ty_run_state_name(s)) == 0;
            if (!ok)
                return ty_die("runs: --state needs pending, running, succeeded, failed or "
                              "cancelled, got '%s'",
                              rr.state);
        } else if (strcmp(cli->argv[i], "--since") == 0 && i + 1 < cli->argc) {
            if (ty_parse_since(cli->argv[++i], ty_now_ms(), &rr.since_ms) != 0)
                return ty_die("runs: --since needs an age (30m, 2h, 7d) or a UTC time "
                              "(2026-12-04T03:00:00Z), got '%s'",
                              cli->argv[i]);
        } else
            return ty_die("runs: unexpected argument '%s'", cli->argv[i]);
    }
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_RUNS;
    env.runs = &rr;
    Ty__Envelope *rep = NULL;
    if (ty_call(c, &env, cli->call_ms, &rep, TY__ENVELOPE__BODY_RUNS_REPLY) != 0)
        return 1;
    if (quiet) {
        for (size_t i = 0; i < rep->runs_reply->n_runs; i++)
            printf("%s\n", rep->runs_reply->runs[i]->run->run_id);
    } else if (cli->json) {
        ty_out_json_print(ty_render_runs(rep->runs_reply));
    } else {
        ty_out_runs_table(stdout, rep->runs_reply);
    }
    ty_wire_free(&rep);
    return 0;
}

int ty_cmd_pipelines(ty_cli_t *cli, ty_client_t *c) {
    Ty__PipelinesRequest pr = TY__PIPELINES_REQUEST__INIT;
    for (int i = 1; i < cli->argc; i++) {
        int64_t v;
        if (strcmp(cli->argv[i], "--limit") == 0 && i + 1 < cli->argc) {
            if (ty_parse_i64(cli->argv[++i], 1, UINT32_MAX, &v) != 0)
                return ty_die("pipelines: --limit needs a positive integer, got '%s'",
                              cli->argv[i]);
            pr.limit = (uint32_t)v;
        } else {
            return ty_die("pipelines: unexpected argument '%s'", cli->argv[i]);
        }
    }
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_PIPELINES;
    env.pipelines = &pr;
    Ty__Envelope *rep = NULL;
    if (ty_call(c, &env, cli->call_ms, &rep, TY__ENVELOPE__BODY_PIPELINES_REPLY) != 0)
        return 1;
    Ty__PipelinesReply *r = rep->pipelines_reply;
    if (cli->json) {
        ty_out_json_print(ty_render_pipelines(r));
    } else {
        printf("%-24s %-5s %-9s %-6s %-6s %-36s %-10s %s\n", "PIPELINE", "RUNS", "SUCCEEDED",
               "FAILED", "ACTIVE", "LAST RUN", "STATE", "CREATED");
        for (size_t i = 0; i < r->n_pipelines; i++) {
            Ty__PipelineSummary *p = r->pipelines[i];
            char created[40] = "-";
            if (p->last)
                ty_fmt_time(p->last->created_ms, created, sizeof created);
            printf("%-24s %-5u %-9u %-6u %-6u %-36s %-10s %s\n", p->name, p->runs, p->succeeded,
                   p->failed, p->active, p->last ? p->last->run_id : "-",
                   p->last ? ty_run_state_name(p->last->state) : "-", created);
        }
    }
    ty_wire_free(&rep);
    return 0;
}

/* A whole run id: "<pipeline>-<8 hex>". */
static int ty_whole_id(const char *id) {
    const char *dash = strrchr(id, '-');
    if (!dash || strlen(dash + 1) != 8)
        return 0;
    for (const char *p = dash + 1; *p; p++)
        if (!strchr("0123456789abcdef", *p))
            return 0;
    return 1;
}

/* Prefixes given and the run ids they were made into, kept until the CLI
 * exits: a command that asks many times (logs -f) asks the listing once. */
static char *ty_given[16], *ty_owned[16];
static size_t ty_nowned;

void ty_resolved_free(void) {
    while (ty_nowned) {
        ty_nowned--;
        free(ty_given[ty_nowned]);
        free(ty_owned[ty_nowned]);
    }
}

int ty_resolve_run(ty_client_t *c, int timeout_ms, char **id) {
    if (!*id || !**id || ty_whole_id(*id))
        return 0;
    for (size_t i = 0; i < ty_nowned; i++)
        if (strcmp(ty_given[i], *id) == 0 || strcmp(ty_owned[i], *id) == 0) {
            *id = ty_owned[i];
            return 0;
        }
    if (ty_nowned == sizeof ty_owned / sizeof *ty_owned)
        return 0;
    Ty__RunsRequest rr = TY__RUNS_REQUEST__INIT;
    rr.id_prefix = *id;
    rr.limit = 6;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_RUNS;
    env.runs = &rr;
    Ty__Envelope *rep = NULL;
    if (ty_call(c, &env, timeout_ms, &rep, TY__ENVELOPE__BODY_RUNS_REPLY) != 0)
        return 1;
    Ty__RunsReply *r = rep->runs_reply;
    int rc = 0;
    int exact = 0;
    for (size_t i = 0; i < r->n_runs; i++)
        exact |= strcmp(r->runs[i]->run->run_id, *id) == 0;
    if (r->n_runs == 1 && !exact) {
        ty_given[ty_nowned] = ty_xstrdup(*id);
        *id = ty_owned[ty_nowned++] = ty_xstrdup(r->runs[0]->run->run_id);
    } else if (r->n_runs > 1 && !exact) {
        char list[512] = "";
        for (size_t i = 0; i < r->n_runs && i < 5; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                     r->runs[i]->run->run_id);
        rc = ty_die("'%s' matches several runs (%s%s); give more of the id", *id, list,
                    r->n_runs > 5 ? ", ..." : "");
    }
    ty_wire_free(&rep);
    return rc;
}

int ty_cmd_logs(ty_cli_t *cli, ty_client_t *c) {
    const char *run = NULL, *task = NULL;
    int follow = 0;
    uint32_t attempt = 0, tail = 0;
    for (int i = 1; i < cli->argc; i++) {
        const char *a = cli->argv[i];
        if (strcmp(a, "-f") == 0 || strcmp(a, "--follow") == 0)
            follow = 1;
        else if (strcmp(a, "--tail") == 0 && i + 1 < cli->argc) {
            int64_t v;
            if (ty_parse_i64(cli->argv[++i], 1, 100000, &v) != 0)
                return ty_die("logs: --tail needs a number of lines (1 to 100000), got '%s'",
                              cli->argv[i]);
            tail = (uint32_t)v;
        } else if (strcmp(a, "--attempt") == 0 && i + 1 < cli->argc) {
            int64_t v;
            if (ty_parse_i64(cli->argv[++i], 1, UINT32_MAX, &v) != 0)
                return ty_die("logs: --attempt needs a positive integer, got '%s'", cli->argv[i]);
            attempt = (uint32_t)v;
        } else if (!run)
            run = a;
        else if (!task)
            task = a;
        else
            return ty_die("logs: unexpected argument '%s'", a);
    }
    if (!run || !task)
        return ty_die("usage: trainyard logs RUN TASK [-f] [--attempt N] [--tail N]");
    /* asked for the latest attempt: follow it on to the next one when a
     * failover or retry runs the task again (the master moves on) */
    int latest = attempt == 0;
    uint64_t offset = 0;
    int got = 0;
    for (;;) {
        Ty__LogsRequest lr = TY__LOGS_REQUEST__INIT;
        lr.run_id = (char *)run;
        lr.task = (char *)task;
        lr.attempt = attempt;
        lr.offset = offset;
        lr.wait = follow;
        lr.latest = latest;
        lr.tail_lines = got ? 0 : tail; /* then on from where that left off */
        Ty__Envelope env = TY__ENVELOPE__INIT;
        env.body_case = TY__ENVELOPE__BODY_LOGS;
        env.logs = &lr;
        Ty__Envelope *rep = NULL;
        if (ty_call(c, &env, cli->call_ms + (follow ? TY_WAIT_EXTRA_MS : 0), &rep,
                    TY__ENVELOPE__BODY_LOGS_REPLY) != 0)
            return 1;
        Ty__LogsReply *r = rep->logs_reply;
        if (r->attempt && attempt && r->attempt != attempt && offset > 0) {
            fflush(stdout);
            fprintf(stderr, "trainyard: attempt %u of %s ended; attempt %u follows\n", attempt,
                    task, r->attempt);
        }
        if (r->data.len)
            fwrite(r->data.data, 1, r->data.len, stdout);
        got |= r->data.len > 0;
        fflush(stdout);
        if (r->attempt) /* where next_offset points */
            attempt = r->attempt;
        offset = r->next_offset;
        int stop = r->done || (!follow && r->data.len == 0);
        ty_wire_free(&rep);
        if (stop)
            return 0;
    }
}

int ty_cmd_cancel(ty_cli_t *cli, ty_client_t *c) {
    if (cli->argc != 2)
        return ty_die("usage: trainyard cancel RUN");
    Ty__CancelRequest cr = TY__CANCEL_REQUEST__INIT;
    cr.run_id = cli->argv[1];
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_CANCEL;
    env.cancel = &cr;
    Ty__Envelope *rep = NULL;
    if (ty_call(c, &env, cli->call_ms, &rep, TY__ENVELOPE__BODY_CANCEL_REPLY) != 0)
        return 1;
    if (cli->json) {
        json_t *o = json_object();
        json_object_set_new(o, "run_id", json_string(cr.run_id));
        json_object_set_new(o, "state", json_string(ty_run_state_name(rep->cancel_reply->state)));
        ty_out_json_print(o);
    } else {
        printf("run %s %s\n", cr.run_id, ty_run_state_name(rep->cancel_reply->state));
    }
    ty_wire_free(&rep);
    return 0;
}
