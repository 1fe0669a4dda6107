/* Task logs (and metric histories) written off the event loop: one writer
 * thread appends each attempt's bytes to <data_dir>/logs/<run>/<task>.<attempt>.log in the
 * order they were handed over, and tells the loop (through a uv_async) which
 * runs' logs grew, so log follows are answered once the bytes are on disk.
 * A slow disk then delays only the logs, never the loop's commits and
 * dispatches.
 *
 * Threading: create, append and destroy on the loop thread; the callback
 * runs there too. */
#ifndef TY_MASTER_LOGW_H
#define TY_MASTER_LOGW_H

#include <stddef.h>
#include <uv.h>

typedef struct ty_logw ty_logw_t;

/* written(run, arg) on the loop thread after bytes of run reached the file. */
typedef void (*ty_logw_cb)(const char *run, void *arg);

int ty_logw_create(ty_logw_t **out, uv_loop_t *loop, const char *data_dir, ty_logw_cb cb,
                   void *arg);
/* Queue data (copied) for the log of run/task/attempt. */
void ty_logw_append(ty_logw_t *w, const char *run, const char *task, unsigned attempt,
                    const void *data, size_t len);
/* The same for its metric history (series set): <task>.<attempt>.metrics,
 * lines "wall_ms step value name". */
void ty_logw_append_to(ty_logw_t *w, const char *run, const char *task, unsigned attempt,
                       int series, const void *data, size_t len);
/* Remove the logs of run (its directory), after what is queued before. */
void ty_logw_remove(ty_logw_t *w, const char *run);
/* Bytes queued and not yet written. */
size_t ty_logw_pending(ty_logw_t *w);
/* Writes what is queued, stops the thread and closes the async handle (run
 * the loop afterwards so libuv can finish closing it). */
void ty_logw_destroy(ty_logw_t **w);

#endif
