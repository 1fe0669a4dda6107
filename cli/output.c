#include "cli/output.h"

#include "common/json.h"

#include "common/dag.h"
#include "common/util.h"

#include <string.h>

static int ty_colour;

int ty_out_colour_wanted(int tty, const char *no_color, const char *term) {
    return tty && !(no_color && *no_color) && !(term && strcmp(term, "dumb") == 0);
}

void ty_out_set_colour(int on) { ty_colour = on; }

const char *ty_out_state_sgr(const char *state) {
    static const struct {
        const char *state, *sgr;
    } map[] = {
        {"succeeded", "32"},       {"cached", "32"}, {"up", "32"},      {"failed", "31"},
        {"upstream_failed", "31"}, {"lost", "31"},   {"down", "31"},    {"running", "36"},
        {"dispatched", "36"},      {"queued", "33"}, {"pending", "33"}, {"draining", "33"},
        {"cancelled", "2"},        {"skipped", "2"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(state, map[i].state) == 0)
            return map[i].sgr;
    return NULL;
}

void ty_out_state(FILE *f, const char *state, int width) {
    const char *sgr = ty_colour ? ty_out_state_sgr(state) : NULL;
    if (sgr)
        fprintf(f, "\033[%sm%-*s\033[0m", sgr, width, state);
    else
        fprintf(f, "%-*s", width, state);
}

static void ty_fmt_duration(int64_t a, int64_t b, char *buf, size_t n) {
    if (a <= 0) {
        snprintf(buf, n, "-");
        return;
    }
    double s = (double)((b > 0 ? b : ty_now_ms()) - a) / 1000.0;
    if (s < 60)
        snprintf(buf, n, "%.1fs", s);
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

void ty_out_status_table(FILE *f, const Ty__RunStatus *st) {
    const Ty__RunRecord *r = st->run;
    char dur[32], start[40];
    ty_fmt_duration(r->started_ms, r->finished_ms, dur, sizeof dur);
    ty_fmt_time(r->created_ms, start, sizeof start);
    fprintf(f, "run %s  pipeline %s  state ", r->run_id, r->pipeline);
    ty_out_state(f, ty_run_state_name(r->state), 0);
    fprintf(f, "  owner %s  created %s  duration %s\n", *r->owner ? r->owner : "-", start, dur);
    fprintf(f, "%-24s %-16s %-7s %-16s %-24s %-9s %-5s %s\n", "TASK", "STATE", "ATTEMPT", "WORKER",
            "START", "DURATION", "EXIT", "PROGRESS / REASON");
    for (size_t i = 0; i < st->n_tasks; i++) {
        const Ty__TaskRecord *t = st->tasks[i];
        char exitbuf[16] = "-", prog[160] = "";
        ty_fmt_time(t->started_ms, start, sizeof start);
        if (t->attempt > 0)
            ty_fmt_duration(t->started_ms, t->finished_ms, dur, sizeof dur);
        else
            snprintf(dur, sizeof dur, "-");
        int ended = t->state != TY_TASK_CANCELLED; /* cancelled: no exit code, the state says it */
        if (ended && t->term_signal)
            snprintf(exitbuf, sizeof exitbuf, "sig%d", t->term_signal);
        else if (ended && t->finished_ms && t->attempt > 0 && t->state != TY_TASK_RUNNING)
            snprintf(exitbuf, sizeof exitbuf, "%d", t->exit_code);
        if (t->progress > 0)
            snprintf(prog, sizeof prog, "%3.0f%% %s", t->progress * 100, t->progress_text);
        if (*t->reason && t->state != TY_TASK_SUCCEEDED)
            snprintf(prog + strlen(prog), sizeof prog - strlen(prog), "%s%s", *prog ? "  " : "",
                     t->reason);
        char where[128]; /* a gang: its workers, part 0 first */
        snprintf(where, sizeof where, "%s", *t->worker ? t->worker : "-");
        for (size_t k = 1; k < t->n_parts; k++)
            snprintf(where + strlen(where), sizeof where - strlen(where), "+%s",
                     t->parts[k]->worker);
        fprintf(f, "%-24s ", t->name);
        ty_out_state(f, ty_task_state_name(t->state), 16);
        fprintf(f, " %-7u %-16s %-24s %-9s %-5s %s\n", t->attempt, where, *start ? start : "-", dur,
                exitbuf, prog);
        if (t->n_metrics) {
            fprintf(f, "    metrics:");
            for (size_t k = 0; k < t->n_metrics; k++)
                fprintf(f, " %s=%g", t->metrics[k]->name, t->metrics[k]->value);
            fputc('\n', f);
        }
    }
}

void ty_out_runs_table(FILE *f, const Ty__RunsReply *rr) {
    fprintf(f, "%-36s %-24s %-10s %-12s %-24s %s\n", "RUN", "PIPELINE", "STATE", "OWNER", "CREATED",
            "DURATION");
    for (size_t i = 0; i < rr->n_runs; i++) {
        const Ty__RunRecord *r = rr->runs[i]->run;
        char created[40], dur[32];
        ty_fmt_time(r->created_ms, created, sizeof created);
        ty_fmt_duration(r->started_ms, r->finished_ms, dur, sizeof dur);
        fprintf(f, "%-36s %-24s ", r->run_id, r->pipeline);
        ty_out_state(f, ty_run_state_name(r->state), 10);
        fprintf(f, " %-12s %-24s %s\n", *r->owner ? r->owner : "-", created, dur);
    }
}

void ty_out_workers_table(FILE *f, const Ty__WorkersReply *wr) {
    fprintf(f, "%-20s %-8s %-11s %-15s %-5s %-7s %s\n", "WORKER", "STATE", "CPUS", "MEM_MB", "GPUS",
            "RUNNING", "LABELS");
    for (size_t i = 0; i < wr->n_workers; i++) {
        const Ty__WorkerStatus *w = wr->workers[i];
        char cpus[32], mem[40], labels[256] = "";
        snprintf(cpus, sizeof cpus, "%g/%g", w->used ? w->used->cpus : 0,
                 w->total ? w->total->cpus : 0);
        snprintf(mem, sizeof mem, "%llu/%llu", (unsigned long long)(w->used ? w->used->mem_mb : 0),
                 (unsigned long long)(w->total ? w->total->mem_mb : 0));
        for (size_t k = 0; w->total && k < w->total->n_labels; k++)
            snprintf(labels + strlen(labels), sizeof labels - strlen(labels), "%s%s=%s",
                     k ? "," : "", w->total->labels[k]->key, w->total->labels[k]->value);
        fprintf(f, "%-20s ", w->id);
        ty_out_state(f, w->draining && strcmp(w->state, "up") == 0 ? "draining" : w->state, 8);
        fprintf(f, " %-11s %-15s %-5u %-7u %s\n", cpus, mem, w->total ? w->total->gpus : 0,
                w->running, labels);
    }
}

void ty_out_json_print(json_t *j) {
    char *s = ty_json_text(j, 2);
    if (s) {
        puts(s);
        free(s);
    }
    json_decref(j);
}
