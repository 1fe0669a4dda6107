/* Metric histories: every `metric NAME VALUE [STEP]` report line of an
 * attempt, appended by the log writer to
 * <data_dir>/logs/<run>/<task>.<attempt>.metrics as "wall_ms step value
 * name" lines (tab-separated; names have no white space), read back here as
 * series per task, attempt and name, in the order they arrived. */
#ifndef TY_MASTER_METRICS_H
#define TY_MASTER_METRICS_H

#include "trainyard.pb-c.h"

#include <stddef.h>

#define TY_METRICS_MAX_POINTS 200000 /* per reply; the rest is cut (truncated) */

/* Fill out (init'ed here) with run's series, of task only when task is
 * non-empty.  0, or TY_ENOENT when run has no directory (nothing was ever
 * logged for it), TY_EINVAL for a run id that is no path component.
 * Release with ty_metrics_clear. */
int ty_metrics_read(const char *data_dir, const char *run, const char *task, Ty__MetricsReply *out);
void ty_metrics_clear(Ty__MetricsReply *r);

#endif
