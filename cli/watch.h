/* What `submit --wait` and `status --wait` print while they follow a run:
 * decisions only, no I/O (cli/main.c writes the text to stderr).
 *
 * On a terminal: one status line, redrawn in place within the terminal's
 * width: the run's counts, then a bar for the running task's progress, or
 * the reason a task waits for a worker.  Off a terminal: a line when the
 * run's counts change, at most one a second (the last one always).  Both:
 * a line of its own, at once, for each attempt that fails or is lost, a
 * task that fails, and a task that starts waiting for a worker. */
#ifndef TY_CLI_WATCH_H
#define TY_CLI_WATCH_H

#include "trainyard.pb-c.h"

#include <stdint.h>

typedef struct ty_watch ty_watch_t;

/* tty: the output is a terminal width columns wide (<= 0: 80); colour:
 * event lines coloured (failed red, lost and waiting yellow). */
int ty_watch_create(ty_watch_t **out, int tty, int width, int colour);
void ty_watch_destroy(ty_watch_t **wp);
/* The text to write for st, seen ms milliseconds after the wait began;
 * "" when there is nothing to write.  Valid until the next call. */
const char *ty_watch_update(ty_watch_t *w, const Ty__RunStatus *st, int64_t ms);
/* msg on a line of its own (on a terminal: the status line cleared first
 * and drawn again after it). */
const char *ty_watch_note(ty_watch_t *w, const char *msg);

/* The counts of a run's tasks by state, e.g. "running: 2/5 tasks done, 2
 * succeeded, 1 running, 2 waiting". */
void ty_watch_counts(char *buf, size_t n, const Ty__RunStatus *st);
/* "task T failed: WHY (attempt N on W)" for a failed task. */
void ty_watch_failed(char *buf, size_t n, const Ty__TaskRecord *t);

#endif
