/* Rendering of master replies as tables or JSON (jansson). */
#ifndef TY_CLI_OUTPUT_H
#define TY_CLI_OUTPUT_H

#include "trainyard.pb-c.h"

#include <jansson.h>
#include <stdio.h>

json_t *ty_out_status_json(const Ty__RunStatus *st);
json_t *ty_out_run_json(const Ty__RunRecord *r);
json_t *ty_out_worker_json(const Ty__WorkerStatus *w);
void ty_out_status_table(FILE *f, const Ty__RunStatus *st);
void ty_out_runs_table(FILE *f, const Ty__RunsReply *rr);
void ty_out_workers_table(FILE *f, const Ty__WorkersReply *wr);
/* A time (ms since the epoch) as an ISO 8601 string; null when unset (<= 0). */
json_t *ty_out_time_json(int64_t ms);
/* Print JSON to stdout with a newline and release it. */
void ty_out_json_print(json_t *j);

#endif
