/* Following a run to its end (`submit --wait`, `status --wait`, `retry
 * --wait`): long-polls, what cli/watch.c says to print, and for a run that
 * failed, each failed task's reason and the end of its log. */
#include "cli/cli.h"
#include "cli/output.h"
#include "cli/watch.h"

#include "common/dag.h"
#include "common/err.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define TY_HOLD_MS 5000    /* master/api.c TY_WAIT_MAX_MS */
#define TY_WAIT_RETRIES 10 /* unanswered long-polls before --wait gives up */
#define TY_TAIL_LINES 20   /* of each failed task's log */

/* A status request for run (a long-poll past version wait_after) in env. */
static void ty_status_env(Ty__Envelope *env, Ty__StatusRequest *sr, const char *run,
                          uint64_t wait_after) {
    ty__status_request__init(sr);
    sr->run_id = (char *)run;
    sr->wait_after = wait_after;
    ty__envelope__init(env);
    env->body_case = TY__ENVELOPE__BODY_STATUS;
    env->status = sr;
}

int ty_get_status(ty_cli_t *cli, ty_client_t *c, const char *run, uint64_t wait_after,
                  Ty__Envelope **reply) {
    Ty__StatusRequest sr;
    Ty__Envelope env;
    ty_status_env(&env, &sr, run, wait_after);
    return ty_call(c, &env, cli->call_ms + (wait_after ? TY_WAIT_EXTRA_MS : 0), reply,
                   TY__ENVELOPE__BODY_STATUS_REPLY);
}

static int ty_run_final(unsigned s) { return s != TY_RUN_PENDING && s != TY_RUN_RUNNING; }

/* The terminal's width on fd, else $COLUMNS, else 80. */
static int ty_term_width(int fd) {
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    int64_t v;
    if (getenv("COLUMNS") && ty_parse_i64(getenv("COLUMNS"), 1, 10000, &v) == 0)
        return (int)v;
    return 80;
}

/* For each failed task of a failed run: why, and the last lines of its log
 * (on stderr: stdout holds the table or the JSON). */
static void ty_tell_failures(ty_cli_t *cli, ty_client_t *c, const Ty__RunStatus *st) {
    for (size_t i = 0; i < st->n_tasks; i++) {
        const Ty__TaskRecord *t = st->tasks[i];
        if (t->state != TY_TASK_FAILED)
            continue;
        char line[1024];
        ty_watch_failed(line, sizeof line, t);
        fprintf(stderr, "\n%s; the end of its log:\n", line);
        Ty__LogsRequest lr = TY__LOGS_REQUEST__INIT;
        lr.run_id = st->run->run_id;
        lr.task = t->name;
        lr.attempt = t->attempt;
        lr.tail_lines = TY_TAIL_LINES;
        Ty__Envelope env = TY__ENVELOPE__INIT;
        env.body_case = TY__ENVELOPE__BODY_LOGS;
        env.logs = &lr;
        Ty__Envelope *rep = NULL;
        if (ty_call(c, &env, cli->call_ms, &rep, TY__ENVELOPE__BODY_LOGS_REPLY) != 0)
            continue;
        ProtobufCBinaryData d = rep->logs_reply->data;
        if (d.len == 0)
            fputs("    (nothing)\n", stderr);
        const char *p = (const char *)d.data, *end = p + d.len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            fprintf(stderr, "    %.*s\n", (int)n, p);
            p += n + (nl ? 1 : 0);
        }
        ty_wire_free(&rep);
    }
}

int ty_wait_run(ty_cli_t *cli, ty_client_t *c, const char *given) {
    char *run = (char *)given;
    if (ty_resolve_run(c, cli->call_ms, &run) != 0)
        return 1;
    int tty = isatty(STDERR_FILENO);
    ty_watch_t *w = NULL;
    ty_watch_create(&w, tty, tty ? ty_term_width(STDERR_FILENO) : 0,
                    ty_out_colour_wanted(tty, getenv("NO_COLOR"), getenv("TERM")));
    uint64_t version = 0;
    int64_t t0 = ty_mono_ms(), unanswered_since = 0;
    int unanswered = 0;
    for (;;) {
        Ty__Envelope *rep = NULL;
        /* A long-poll the master does not answer within its hold time means
         * it is gone or restarting: ask again (the socket reconnects by
         * itself) rather than give up on the run at once. */
        Ty__StatusRequest sr;
        Ty__Envelope req;
        ty_status_env(&req, &sr, run, version);
        int rc = ty_client_call(c, &req, TY_HOLD_MS + 3000, &rep);
        /* no connection (a master restarting): asked again for as long as
         * TY_WAIT_RETRIES unanswered long-polls would take */
        if ((rc == TY_ETIMEOUT || rc == TY_EUNREACH) && !unanswered_since)
            unanswered_since = ty_mono_ms();
        if ((rc == TY_ETIMEOUT && ++unanswered < TY_WAIT_RETRIES) ||
            (rc == TY_EUNREACH &&
             ty_mono_ms() - unanswered_since < (int64_t)TY_WAIT_RETRIES * (TY_HOLD_MS + 3000))) {
            char msg[256];
            snprintf(msg, sizeof msg, "no answer from the master; still waiting (next: %s)",
                     ty_client_endpoint(c));
            fputs(ty_watch_note(w, msg), stderr);
            continue;
        }
        if (rc == 0 && rep->body_case == TY__ENVELOPE__BODY_ERROR)
            rc = TY_EPROTO;
        if (rc != 0 || rep->body_case != TY__ENVELOPE__BODY_STATUS_REPLY) {
            ty_wire_free(&rep);
            /* one more ordinary call, for its clear error message */
            if (ty_get_status(cli, c, run, 0, &rep) != 0) {
                ty_watch_destroy(&w);
                return 1;
            }
        }
        unanswered = 0;
        unanswered_since = 0;
        Ty__RunStatus *st = rep->status_reply->status;
        version = st->version ? st->version : 1;
        fputs(ty_watch_update(w, st, ty_mono_ms() - t0), stderr);
        if (ty_run_final(st->run->state)) {
            ty_watch_destroy(&w);
            int ok = st->run->state == TY_RUN_SUCCEEDED;
            if (st->run->state == TY_RUN_FAILED)
                ty_tell_failures(cli, c, st);
            if (cli->json)
                ty_out_json_print(ty_render_status(st));
            else
                ty_out_status_table(stdout, st);
            ty_wire_free(&rep);
            return ok ? 0 : 1;
        }
        ty_wire_free(&rep);
    }
}
