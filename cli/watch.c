#include "cli/watch.h"

#include "common/dag.h"
#include "common/err.h"
#include "common/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TY_WATCH_EVERY_MS 1000 /* off a terminal: at most a counts line a second */
#define TY_WATCH_BAR 20        /* the progress bar's cells, at most */

typedef struct {
    char *name;
    unsigned state;
    uint32_t failures, lost;
    uint32_t waited; /* attempt + 1 whose wait for a worker was told */
} ty_seen_t;

struct ty_watch {
    int tty, width, colour;
    char *out; /* what the last call returns */
    size_t len, cap;
    char counts[512]; /* off a terminal: the last counts line written */
    int64_t counts_ms;
    char *line; /* on a terminal: the status line shown (NULL: none) */
    ty_seen_t *seen;
    size_t nseen;
};

int ty_watch_create(ty_watch_t **out, int tty, int width, int colour) {
    if (!out)
        return TY_EINVAL;
    ty_watch_t *w = ty_xcalloc(1, sizeof *w);
    w->tty = tty;
    w->colour = colour;
    w->width = width > 0 ? width : 80;
    w->counts_ms = -TY_WATCH_EVERY_MS;
    *out = w;
    return 0;
}

void ty_watch_destroy(ty_watch_t **wp) {
    if (!wp || !*wp)
        return;
    ty_watch_t *w = *wp;
    for (size_t i = 0; i < w->nseen; i++)
        free(w->seen[i].name);
    free(w->seen);
    free(w->line);
    free(w->out);
    free(w);
    *wp = NULL;
}

__attribute__((format(printf, 2, 3))) static void ty_put(ty_watch_t *w, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    if (w->len + (size_t)n + 1 > w->cap) {
        w->cap = (w->len + (size_t)n + 1) * 2;
        w->out = ty_xrealloc(w->out, w->cap);
    }
    va_start(ap, fmt);
    vsnprintf(w->out + w->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    w->len += (size_t)n;
}

static void ty_reset(ty_watch_t *w) {
    if (!w->out) {
        w->cap = 256;
        w->out = ty_xmalloc(w->cap);
    }
    w->len = 0;
    w->out[0] = '\0';
}

/* A line of its own: on a terminal, over the status line (drawn again
 * later by the caller). */
/* sgr: its colour (ANSI SGR parameters) when colours are on, or NULL. */
__attribute__((format(printf, 3, 4))) static void ty_event(ty_watch_t *w, const char *sgr,
                                                           const char *fmt, ...) {
    if (w->tty && w->line) {
        ty_put(w, "\r\033[K");
        free(w->line);
        w->line = NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (w->colour && sgr)
        ty_put(w, "\033[%sm%s\033[0m\n", sgr, buf);
    else
        ty_put(w, "%s\n", buf);
}

void ty_watch_counts(char *buf, size_t n, const Ty__RunStatus *st) {
    size_t counts[TY_TASK_NSTATES] = {0}, done = 0;
    for (size_t i = 0; i < st->n_tasks; i++) {
        unsigned s = st->tasks[i]->state;
        if (s < TY_TASK_NSTATES)
            counts[s]++;
        if (ty_task_state_terminal(s))
            done++;
    }
    int k = snprintf(buf, n, "%s: %zu/%zu tasks done", ty_run_state_name(st->run->state), done,
                     st->n_tasks);
    for (unsigned s = 0; s < TY_TASK_NSTATES && k > 0 && (size_t)k < n; s++)
        if (counts[s])
            k += snprintf(buf + k, n - (size_t)k, ", %zu %s", counts[s], ty_task_state_name(s));
}

/* Why a task that ended badly did: its reason, else its signal or exit code. */
static void ty_watch_why(char *buf, size_t n, const Ty__TaskRecord *t) {
    if (*t->reason && !ty_is_wait_reason(t->reason))
        snprintf(buf, n, "%s", t->reason);
    else if (t->term_signal)
        snprintf(buf, n, "killed by signal %d", t->term_signal);
    else
        snprintf(buf, n, "exit code %d", t->exit_code);
}

void ty_watch_failed(char *buf, size_t n, const Ty__TaskRecord *t) {
    char why[512];
    ty_watch_why(why, sizeof why, t);
    snprintf(buf, n, "task %s failed: %s (attempt %u%s%s)", t->name, why, t->attempt,
             *t->worker ? " on " : "", t->worker);
}

/* The seen record of task i (st's tasks keep their order). */
static ty_seen_t *ty_seen(ty_watch_t *w, size_t i, const Ty__TaskRecord *t) {
    if (i >= w->nseen) {
        w->seen = ty_xrealloc(w->seen, (i + 1) * sizeof *w->seen);
        memset(w->seen + w->nseen, 0, (i + 1 - w->nseen) * sizeof *w->seen);
        w->nseen = i + 1;
    }
    ty_seen_t *s = &w->seen[i];
    if (!s->name || strcmp(s->name, t->name) != 0) {
        free(s->name);
        memset(s, 0, sizeof *s);
        s->name = ty_xstrdup(t->name);
    }
    return s;
}

/* The lines of its own that what happened to t since the last look earns. */
static void ty_task_events(ty_watch_t *w, const Ty__TaskRecord *t, ty_seen_t *s) {
    char why[512];
    ty_watch_why(why, sizeof why, t);
    /* an attempt that failed: the attempt counter may have moved on to
     * the retry already */
    uint32_t failed = t->state == TY_TASK_RUNNING && t->attempt > 1 ? t->attempt - 1 : t->attempt;
    if (t->state == TY_TASK_FAILED && s->state != TY_TASK_FAILED) {
        char line[1024];
        ty_watch_failed(line, sizeof line, t);
        ty_event(w, "31", "%s", line);
    } else if (t->failures > s->failures)
        ty_event(w, "33", "task %s: attempt %u failed: %s; it runs again", t->name, failed, why);
    else if (t->lost > s->lost)
        ty_event(w, "33", "task %s: attempt %u lost: %s; it runs again", t->name, failed, why);
    if (t->state == TY_TASK_QUEUED && ty_is_wait_reason(t->reason) && s->waited != t->attempt + 1) {
        s->waited = t->attempt + 1;
        if (!w->tty) /* a terminal's status line shows it, as it changes */
            ty_event(w, "33", "task %s: %s", t->name, t->reason);
    }
    s->state = t->state;
    s->failures = t->failures;
    s->lost = t->lost;
}

/* Copy at most cols characters (UTF-8 sequences kept whole) of src. */
static void ty_fit(char *dst, size_t n, const char *src, int cols) {
    size_t i = 0;
    int c = 0;
    while (src[i] && i + 1 < n) {
        if (((unsigned char)src[i] & 0xC0) != 0x80 && c++ == cols)
            break;
        dst[i] = src[i];
        i++;
    }
    while (i > 0 && ((unsigned char)dst[i - 1] & 0xC0) == 0xC0) /* a sequence cut short */
        i--;
    dst[i] = '\0';
}

/* On a terminal: counts, then the first running task's bar or the first
 * waiting task's reason. */
static void ty_status_line(ty_watch_t *w, const Ty__RunStatus *st, const char *counts, int64_t ms,
                           char *line, size_t n) {
    int k = snprintf(line, n, "[%6.1fs] %s", (double)ms / 1000.0, counts);
    const Ty__TaskRecord *run = NULL, *wait = NULL;
    for (size_t i = 0; i < st->n_tasks; i++) {
        const Ty__TaskRecord *t = st->tasks[i];
        if (!run && t->state == TY_TASK_RUNNING && t->progress > 0)
            run = t;
        if (!wait && t->state == TY_TASK_QUEUED && ty_is_wait_reason(t->reason))
            wait = t;
    }
    if (run && k > 0 && (size_t)k < n) {
        int cells = w->width / 5 < TY_WATCH_BAR ? w->width / 5 : TY_WATCH_BAR;
        double p = run->progress > 1 ? 1 : run->progress;
        int full = (int)(p * cells + 0.5);
        char bar[TY_WATCH_BAR + 1];
        for (int i = 0; i < cells; i++)
            bar[i] = i < full ? '#' : '-';
        bar[cells] = '\0';
        snprintf(line + k, n - (size_t)k, " | %s [%s] %.0f%%%s%s", run->name, bar, p * 100,
                 *run->progress_text ? " " : "", run->progress_text);
    } else if (wait && k > 0 && (size_t)k < n) {
        snprintf(line + k, n - (size_t)k, " | %s: %s", wait->name, wait->reason);
    }
}

const char *ty_watch_update(ty_watch_t *w, const Ty__RunStatus *st, int64_t ms) {
    ty_reset(w);
    for (size_t i = 0; i < st->n_tasks; i++)
        ty_task_events(w, st->tasks[i], ty_seen(w, i, st->tasks[i]));
    char counts[512];
    ty_watch_counts(counts, sizeof counts, st);
    int final = st->run->state != TY_RUN_PENDING && st->run->state != TY_RUN_RUNNING;
    if (!w->tty) {
        if (strcmp(counts, w->counts) != 0 && (final || ms - w->counts_ms >= TY_WATCH_EVERY_MS)) {
            ty_put(w, "[%6.1fs] %s\n", (double)ms / 1000.0, counts);
            snprintf(w->counts, sizeof w->counts, "%s", counts);
            w->counts_ms = ms;
        }
        return w->out;
    }
    char full[1024], fit[1024];
    ty_status_line(w, st, counts, ms, full, sizeof full);
    ty_fit(fit, sizeof fit, full, w->width - 1); /* the last column would wrap on some terminals */
    ty_put(w, "\r\033[K%s%s", fit, final ? "\n" : "");
    free(w->line);
    w->line = final ? NULL : ty_xstrdup(fit);
    return w->out;
}

const char *ty_watch_note(ty_watch_t *w, const char *msg) {
    ty_reset(w);
    char *line = w->line ? ty_xstrdup(w->line) : NULL;
    ty_event(w, NULL, "%s", msg);
    if (line) {
        ty_put(w, "%s", line);
        w->line = line;
    }
    return w->out;
}
