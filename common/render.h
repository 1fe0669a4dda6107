/* JSON views of the master's replies, one per kind of reply: the CLI's
 * `-o json` and the master's HTTP API (/api/v1) print the same objects, so
 * both always agree.  Each returns a new reference (jansson). */
#ifndef TY_COMMON_RENDER_H
#define TY_COMMON_RENDER_H

#include "trainyard.pb-c.h"

#include <jansson.h>

/* A time (ms since the epoch) as an ISO 8601 string; null when unset (<= 0). */
json_t *ty_render_time(int64_t ms);
json_t *ty_render_run(const Ty__RunRecord *r);
/* A run with its tasks (`status -o json`). */
json_t *ty_render_status(const Ty__RunStatus *st);
json_t *ty_render_runs(const Ty__RunsReply *rr);
json_t *ty_render_worker(const Ty__WorkerStatus *w);
json_t *ty_render_workers(const Ty__WorkersReply *wr);
json_t *ty_render_pipelines(const Ty__PipelinesReply *pr);
json_t *ty_render_metrics(const Ty__MetricsReply *r);
/* The outputs of a run's tasks (their latest attempts'). */
json_t *ty_render_artifacts(const Ty__RunStatus *st);
json_t *ty_render_info(const Ty__InfoReply *r);
/* A schedule with its next fires (`schedules show -o json`). */
json_t *ty_render_schedule(const Ty__ScheduleStatus *st);
/* A model (name, last version, aliases), one of its versions (with the
 * aliases rec gives it; rec may be NULL), and the moves of its aliases. */
json_t *ty_render_model(const Ty__ModelRecord *r);
json_t *ty_render_model_version(const Ty__ModelVersion *v, const Ty__ModelRecord *rec);
json_t *ty_render_model_history(const Ty__ModelReply *r);

#endif
