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

json_t *ty_out_time_json(int64_t ms) {
    if (ms <= 0)
        return json_null();
    char buf[40];
    ty_fmt_time(ms, buf, sizeof buf);
    return json_string(buf);
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

json_t *ty_out_run_json(const Ty__RunRecord *r) {
    json_t *o = json_object();
    json_object_set_new(o, "run_id", json_string(r->run_id));
    json_object_set_new(o, "pipeline", json_string(r->pipeline));
    json_object_set_new(o, "state", json_string(ty_run_state_name(r->state)));
    json_object_set_new(o, "owner", *r->owner ? json_string(r->owner) : json_null());
    json_object_set_new(o, "created_at", ty_out_time_json(r->created_ms));
    json_object_set_new(o, "started_at", ty_out_time_json(r->started_ms));
    json_object_set_new(o, "finished_at", ty_out_time_json(r->finished_ms));
    json_t *p = json_object();
    for (size_t i = 0; i < r->n_params; i++)
        json_object_set_new(p, r->params[i]->key, json_string(r->params[i]->value));
    json_object_set_new(o, "params", p);
    json_object_set_new(o, "schedule", *r->schedule ? json_string(r->schedule) : json_null());
    json_object_set_new(o, "fire_time",
                        r->fire_s ? ty_out_time_json(r->fire_s * 1000) : json_null());
    return o;
}

json_t *ty_out_status_json(const Ty__RunStatus *st) {
    json_t *o = ty_out_run_json(st->run);
    json_t *tasks = json_array();
    for (size_t i = 0; i < st->n_tasks; i++) {
        const Ty__TaskRecord *t = st->tasks[i];
        json_t *j = json_object();
        json_object_set_new(j, "name", json_string(t->name));
        json_object_set_new(j, "state", json_string(ty_task_state_name(t->state)));
        json_object_set_new(j, "attempt", json_integer(t->attempt));
        json_object_set_new(j, "worker", *t->worker ? json_string(t->worker) : json_null());
        /* a cancelled task has no exit code (its kill is not its end): its
         * state says it */
        int finished = t->state == TY_TASK_SUCCEEDED || t->state == TY_TASK_FAILED ||
                       t->state == TY_TASK_CACHED || (t->attempt > 0 && t->state == TY_TASK_QUEUED);
        json_object_set_new(j, "exit_code",
                            finished && t->attempt > 0 && !t->term_signal
                                ? json_integer(t->exit_code)
                                : json_null());
        json_object_set_new(j, "signal",
                            t->term_signal && t->state != TY_TASK_CANCELLED
                                ? json_integer(t->term_signal)
                                : json_null());
        json_object_set_new(j, "started_at", ty_out_time_json(t->started_ms));
        json_object_set_new(j, "finished_at", ty_out_time_json(t->finished_ms));
        json_object_set_new(j, "reason", *t->reason ? json_string(t->reason) : json_null());
        json_object_set_new(j, "progress", json_real(t->progress));
        json_object_set_new(j, "progress_text",
                            *t->progress_text ? json_string(t->progress_text) : json_null());
        json_t *ms = json_object();
        for (size_t k = 0; k < t->n_metrics; k++) {
            json_t *mv = json_object();
            json_object_set_new(mv, "value", json_real(t->metrics[k]->value));
            json_object_set_new(mv, "step", json_integer(t->metrics[k]->step));
            json_object_set_new(ms, t->metrics[k]->name, mv);
        }
        json_object_set_new(j, "metrics", ms);
        json_t *outs = json_array();
        for (size_t k = 0; k < t->n_outputs; k++) {
            json_t *a = json_object();
            json_object_set_new(a, "name", json_string(t->outputs[k]->name));
            json_object_set_new(a, "size", json_integer((json_int_t)t->outputs[k]->size));
            json_object_set_new(a, "sha256", json_string(t->outputs[k]->sha256));
            json_array_append_new(outs, a);
        }
        json_object_set_new(j, "outputs", outs);
        json_t *tags = json_object();
        for (size_t k = 0; k < t->n_tags; k++)
            json_object_set_new(tags, t->tags[k]->key, json_string(t->tags[k]->value));
        json_object_set_new(j, "tags", tags);
        json_object_set_new(j, "cache", *t->cache_note ? json_string(t->cache_note) : json_null());
        json_t *parts = t->n_parts ? json_array() : json_null(); /* an MPI gang across workers */
        for (size_t k = 0; k < t->n_parts; k++) {
            json_t *pj = json_object(), *g = json_array();
            json_object_set_new(pj, "worker", json_string(t->parts[k]->worker));
            json_object_set_new(pj, "address", json_string(t->parts[k]->address));
            json_object_set_new(pj, "ranks", json_integer(t->parts[k]->ranks));
            for (size_t x = 0; x < t->parts[k]->n_gpu_ids; x++)
                json_array_append_new(g, json_integer(t->parts[k]->gpu_ids[x]));
            json_object_set_new(pj, "gpus", g);
            json_array_append_new(parts, pj);
        }
        json_object_set_new(j, "parts", parts);
        json_array_append_new(tasks, j);
    }
    json_object_set_new(o, "tasks", tasks);
    json_object_set_new(o, "version", json_integer((json_int_t)st->version));
    return o;
}

json_t *ty_out_worker_json(const Ty__WorkerStatus *w) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(w->id));
    json_object_set_new(o, "state", json_string(w->state));
    json_object_set_new(o, "draining", json_boolean(w->draining));
    json_object_set_new(o, "hostname", json_string(w->hostname));
    json_object_set_new(o, "cpus", json_real(w->total ? w->total->cpus : 0));
    json_object_set_new(o, "mem_mb", json_integer(w->total ? (json_int_t)w->total->mem_mb : 0));
    json_object_set_new(o, "gpus", json_integer(w->total ? w->total->gpus : 0));
    json_t *l = json_object();
    for (size_t i = 0; w->total && i < w->total->n_labels; i++)
        json_object_set_new(l, w->total->labels[i]->key, json_string(w->total->labels[i]->value));
    json_object_set_new(o, "labels", l);
    json_object_set_new(o, "running", json_integer(w->running));
    json_object_set_new(o, "used_cpus", json_real(w->used ? w->used->cpus : 0));
    json_object_set_new(o, "used_mem_mb", json_integer(w->used ? (json_int_t)w->used->mem_mb : 0));
    json_object_set_new(o, "used_gpus", json_integer(w->used ? w->used->gpus : 0));
    json_object_set_new(o, "last_seen_at", ty_out_time_json(w->last_seen_ms));
    return o;
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
