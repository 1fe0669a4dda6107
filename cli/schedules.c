/* trainyard schedules add|list|show|pause|resume|rm, and the schedule a
 * pipeline file's `schedule:` key makes on submit. */
#include "cli/cli.h"
#include "cli/output.h"

#include "common/cron.h"
#include "common/dag.h"
#include "common/util.h"
#include "common/wire.h"

#include <stdlib.h>
#include <string.h>

static void ty_sched_show(const Ty__ScheduleStatus *st) {
    const Ty__ScheduleRecord *r = st->record;
    const Ty__ScheduleSpec *sp = r->spec;
    char last[40] = "-";
    if (r->last_fire_s > 0)
        ty_fmt_time(r->last_fire_s * 1000, last, sizeof last);
    printf("name         %s\n", sp->name);
    printf("pipeline     %s%s%s%s\n", sp->pipeline ? sp->pipeline->name : "", *sp->file ? " (" : "",
           sp->file, *sp->file ? ")" : "");
    printf("cron         %s  (%s)\n", sp->cron, sp->tz);
    printf("catch-up     %s (at most %u)\n", sp->catchup, sp->max_catchup);
    printf("concurrency  %s\n", sp->concurrency);
    for (size_t i = 0; i < sp->n_params; i++)
        printf("param        %s=%s\n", sp->params[i]->key, sp->params[i]->value);
    printf("state        %s\n", r->paused ? "paused" : "active");
    printf("owner        %s\n", *r->owner ? r->owner : "-");
    printf("last fire    %s\n", last);
    printf("last run     %s\n", *r->last_run ? r->last_run : "-");
    printf("fired        %llu runs, %llu fires skipped\n", (unsigned long long)r->fired,
           (unsigned long long)r->skipped);
    if (*r->note)
        printf("note         %s\n", r->note);
    for (size_t i = 0; i < st->n_running; i++)
        printf("running      %s\n", st->running[i]);
    for (size_t i = 0; i < st->n_next_fires; i++) {
        char utc[40];
        ty_fmt_time(st->next_fires[i] * 1000, utc, sizeof utc);
        printf("%-12s %s  (%s)\n", i == 0 ? "next fires" : "",
               i < st->n_next_local ? st->next_local[i] : "", utc);
    }
}

static void ty_sched_table(const Ty__ScheduleReply *rep) {
    printf("%-20s %-16s %-18s %-7s %-24s %-28s %s\n", "NAME", "CRON", "TZ", "STATE", "NEXT",
           "LAST RUN", "FIRED/SKIPPED");
    for (size_t i = 0; i < rep->n_schedules; i++) {
        const Ty__ScheduleStatus *st = rep->schedules[i];
        const Ty__ScheduleRecord *r = st->record;
        printf("%-20s %-16s %-18s %-7s %-24s %-28s %llu/%llu\n", r->spec->name, r->spec->cron,
               r->spec->tz, r->paused ? "paused" : "active",
               st->n_next_local ? st->next_local[0] : "-", *r->last_run ? r->last_run : "-",
               (unsigned long long)r->fired, (unsigned long long)r->skipped);
    }
}

static int ty_sched_call(ty_cli_t *cli, ty_client_t *c, Ty__ScheduleRequest *rq, const char *op) {
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_SCHEDULE;
    env.schedule = rq;
    Ty__Envelope *rep = NULL;
    if (ty_call(c, &env, cli->call_ms, &rep, TY__ENVELOPE__BODY_SCHEDULE_REPLY) != 0)
        return 1;
    const Ty__ScheduleReply *sr = rep->schedule_reply;
    if (cli->json) {
        if (strcmp(op, "list") == 0) {
            json_t *a = json_array();
            for (size_t i = 0; i < sr->n_schedules; i++)
                json_array_append_new(a, ty_render_schedule(sr->schedules[i]));
            ty_out_json_print(a);
        } else if (sr->n_schedules) {
            json_t *o = ty_render_schedule(sr->schedules[0]);
            if (strcmp(op, "add") == 0)
                json_object_set_new(o, "created", json_boolean(sr->created));
            ty_out_json_print(o);
        } else {
            json_t *o = json_object();
            json_object_set_new(o, "removed", json_string(rq->name));
            ty_out_json_print(o);
        }
    } else if (strcmp(op, "list") == 0) {
        ty_sched_table(sr);
    } else if (strcmp(op, "show") == 0 && sr->n_schedules) {
        ty_sched_show(sr->schedules[0]);
    } else if (sr->n_schedules) {
        const Ty__ScheduleStatus *st = sr->schedules[0];
        const char *did = strcmp(op, "add") == 0     ? (sr->created ? "added" : "updated")
                          : strcmp(op, "pause") == 0 ? "paused"
                                                     : "resumed";
        printf("schedule %s %s: %s (%s)", st->record->spec->name, did, st->record->spec->cron,
               st->record->spec->tz);
        if (st->n_next_local && !st->record->paused)
            printf(", next fire %s", st->next_local[0]);
        printf("\n");
    } else {
        printf("schedule %s removed\n", rq->name);
    }
    ty_wire_free(&rep);
    return 0;
}

/* add NAME FILE --cron EXPR [...] */
static int ty_sched_add(ty_cli_t *cli, ty_client_t *c) {
    Ty__ScheduleSpec sp = TY__SCHEDULE_SPEC__INIT;
    const char *name = NULL, *file = NULL;
    Ty__KV *kvs = ty_xcalloc((size_t)cli->argc, sizeof *kvs);
    Ty__KV **ptrs = ty_xcalloc((size_t)cli->argc, sizeof *ptrs);
    int rc = 0;
    for (int i = 2; i < cli->argc && rc == 0; i++) {
        char *a = cli->argv[i];
        const char *v = i + 1 < cli->argc ? cli->argv[i + 1] : NULL;
        if (strcmp(a, "--cron") == 0 && v) {
            sp.cron = (char *)v, i++;
        } else if (strcmp(a, "--tz") == 0 && v) {
            sp.tz = (char *)v, i++;
        } else if (strcmp(a, "--catchup") == 0 && v) {
            sp.catchup = (char *)v, i++;
        } else if (strcmp(a, "--concurrency") == 0 && v) {
            sp.concurrency = (char *)v, i++;
        } else if (strcmp(a, "--max-catchup") == 0 && v) {
            int64_t n;
            if (ty_parse_i64(v, 1, 1000, &n) != 0)
                rc = ty_die("--max-catchup needs 1 to 1000, got '%s'", v);
            sp.max_catchup = (uint32_t)n, i++;
        } else if ((strcmp(a, "-p") == 0 || strcmp(a, "--param") == 0) && v) {
            char *kv = cli->argv[++i], *eq = strchr(kv, '=');
            if (!eq || eq == kv) {
                rc = ty_die("bad -p '%s' (want key=value)", kv);
                break;
            }
            *eq = '\0';
            ty__kv__init(&kvs[sp.n_params]);
            kvs[sp.n_params].key = kv;
            kvs[sp.n_params].value = eq + 1;
            ptrs[sp.n_params] = &kvs[sp.n_params];
            sp.n_params++;
        } else if (a[0] != '-' && !name) {
            name = a;
        } else if (a[0] != '-' && !file) {
            file = a;
        } else {
            rc = ty_die("schedules add: unexpected argument '%s'", a);
        }
    }
    if (rc == 0 && (!name || !file || !*sp.cron))
        rc = ty_die("usage: trainyard schedules add NAME PIPELINE_FILE --cron EXPR [--tz ZONE] "
                    "[--catchup none|latest|all] [--max-catchup N] "
                    "[--concurrency forbid|allow|replace] [-p k=v]...");
    ty_buf_t yaml = {0};
    if (rc == 0 && ty_read_file(file, &yaml) != 0)
        rc = ty_die("cannot read %s", file);
    if (rc == 0) {
        sp.name = (char *)name;
        sp.file = (char *)file;
        sp.params = ptrs;
        Ty__ScheduleRequest rq = TY__SCHEDULE_REQUEST__INIT;
        rq.op = "add";
        rq.spec = &sp;
        rq.yaml = yaml.data;
        rc = ty_sched_call(cli, c, &rq, "add");
    }
    ty_buf_free(&yaml);
    free(kvs);
    free(ptrs);
    return rc;
}

int ty_cmd_schedules(ty_cli_t *cli, ty_client_t *c) {
    const char *op = cli->argc > 1 ? cli->argv[1] : "list";
    if (strcmp(op, "add") == 0)
        return ty_sched_add(cli, c);
    Ty__ScheduleRequest rq = TY__SCHEDULE_REQUEST__INIT;
    rq.op = (char *)op;
    if (strcmp(op, "list") == 0) {
        if (cli->argc > 2)
            return ty_die("schedules list: unexpected argument '%s'", cli->argv[2]);
        return ty_sched_call(cli, c, &rq, op);
    }
    if (strcmp(op, "show") && strcmp(op, "pause") && strcmp(op, "resume") && strcmp(op, "rm"))
        return ty_die("schedules: unknown subcommand '%s' (add, list, show, pause, resume, rm)",
                      op);
    if (cli->argc != 3)
        return ty_die("usage: trainyard schedules %s NAME", op);
    rq.name = cli->argv[2];
    return ty_sched_call(cli, c, &rq, op);
}

int ty_sched_from_pipeline(ty_cli_t *cli, ty_client_t *c, const char *file,
                           const Ty__PipelineSpec *spec, Ty__KV **params, size_t nparams) {
    ty_buf_t yaml = {0};
    if (ty_read_file(file, &yaml) != 0) {
        ty_buf_free(&yaml);
        return ty_die("cannot read %s", file);
    }
    Ty__ScheduleSpec sp = TY__SCHEDULE_SPEC__INIT;
    sp.name = spec->name;
    sp.file = (char *)file;
    sp.cron = spec->schedule;
    sp.tz = spec->schedule_tz;
    sp.catchup = spec->schedule_catchup;
    sp.concurrency = spec->schedule_concurrency;
    sp.max_catchup = spec->schedule_max_catchup;
    sp.params = params;
    sp.n_params = nparams;
    Ty__ScheduleRequest rq = TY__SCHEDULE_REQUEST__INIT;
    rq.op = "add";
    rq.spec = &sp;
    rq.yaml = yaml.data;
    int rc = ty_sched_call(cli, c, &rq, "add");
    ty_buf_free(&yaml);
    return rc;
}
