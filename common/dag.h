/* Pipeline model: load a pipeline YAML file into a validated Ty__PipelineSpec,
 * render {{ params.NAME }} templates, and the DAG vocabulary (trigger rules,
 * run and task states) shared by master, worker and CLI.
 *
 * Validation rejects empty pipelines, unknown or duplicate keys, bad names,
 * duplicate task names, unknown or self dependencies, cycles, bad resource
 * values, templates naming undefined params and files over the limits.  Errors are "file:line:
 * message" lines. */
#ifndef TY_COMMON_DAG_H
#define TY_COMMON_DAG_H

#include "trainyard.pb-c.h"

#include <stddef.h>

typedef enum {
    TY_TRIGGER_ALL_SUCCESS,
    TY_TRIGGER_ALL_DONE,
    TY_TRIGGER_ONE_FAILED,
    TY_TRIGGER_NONE_FAILED,
} ty_trigger_t;

typedef enum { TY_KIND_COMMAND, TY_KIND_MPI } ty_kind_t;

typedef enum {
    TY_RUN_PENDING,
    TY_RUN_RUNNING,
    TY_RUN_SUCCEEDED,
    TY_RUN_FAILED,
    TY_RUN_CANCELLED,
    TY_RUN_NSTATES
} ty_run_state_t;

typedef enum {
    TY_TASK_WAITING,
    TY_TASK_QUEUED,
    TY_TASK_RUNNING,
    TY_TASK_SUCCEEDED,
    TY_TASK_FAILED,
    TY_TASK_UPSTREAM_FAILED,
    TY_TASK_SKIPPED,
    TY_TASK_CANCELLED,
    TY_TASK_CACHED, /* not run: its outputs come from an earlier run (a retry, the step cache) */
    TY_TASK_NSTATES
} ty_task_state_t;

const char *ty_run_state_name(unsigned s);
const char *ty_task_state_name(unsigned s);
const char *ty_trigger_name(unsigned t);
/* The reason of a queued task that waits for a worker begins with one of
 * these (the master's queue writes them; `--wait` shows them). */
#define TY_WAIT_ROOM "waiting for room: "
#define TY_WAIT_NONE "no worker can run it: "
int ty_is_wait_reason(const char *reason);
/* Terminal task states: succeeded failed upstream_failed skipped cancelled cached. */
int ty_task_state_terminal(unsigned s);

/* What a pipeline file may hold; 0 means no limit (for depth: 4096).
 * Checked before the work they bound: the size first, then depth, keys per
 * mapping, anchors (at most 256) and what aliases expand to (at most
 * max_bytes more) in one pass over the YAML events, then the task count. */
typedef struct {
    size_t max_bytes;   /* the file, and separately what aliases add */
    unsigned max_depth; /* nested mappings and lists */
    unsigned max_tasks; /* tasks in one pipeline */
    unsigned max_keys;  /* keys in one mapping (params, env, labels, ...) */
} ty_dag_limits_t;
#define TY_DAG_LIMITS_DEFAULT                                                                      \
    { 4u << 20, 32, 20000, 1000 }
#define TY_DAG_MAX_DEPTH 4096
/* The CLI's own check before a submit: only what protects the CLI itself;
 * the master applies its configured limits and names the one exceeded. */
#define TY_DAG_LIMITS_LOCAL                                                                        \
    { 0, 256, 0, 100000 }

/* Load and validate.  On success returns 0 and *out (free with ty_dag_free).
 * On failure returns TY_EPARSE (YAML syntax), TY_EINVAL (validation),
 * TY_ETOOBIG (a limit, named in the message) or TY_EIO with *errmsg a heap
 * string of "file:line: message" lines.  Time is O(n log n) in the size.
 * lim NULL: TY_DAG_LIMITS_DEFAULT. */
int ty_dag_load_file(const char *path, Ty__PipelineSpec **out, char **errmsg);
int ty_dag_load_string(const char *yaml, size_t len, const char *filename, Ty__PipelineSpec **out,
                       char **errmsg);
int ty_dag_load_file_lim(const char *path, const ty_dag_limits_t *lim, Ty__PipelineSpec **out,
                         char **errmsg);
int ty_dag_load_string_lim(const char *yaml, size_t len, const char *filename,
                           const ty_dag_limits_t *lim, Ty__PipelineSpec **out, char **errmsg);

/* Task names (allow_upper) and pipeline names: [a-z0-9][a-z0-9_.-]{0,62}
 * (task names may also use A-Z), never containing "..". */
int ty_dag_valid_name(const char *s, int allow_upper);
void ty_dag_free(Ty__PipelineSpec **spec);

/* A deep copy of spec with every {{ params.NAME }} rendered from the pipeline's
 * defaults overridden by `overrides`.  *params_out receives the effective
 * params (caller frees each with ty_dag_kvs_free).  Returns TY_EINVAL with
 * *errmsg for an override of an undefined param. */
int ty_dag_resolve(const Ty__PipelineSpec *spec, Ty__KV *const *overrides, size_t n,
                   Ty__PipelineSpec **out, Ty__KV ***params_out, size_t *nparams_out,
                   char **errmsg);
void ty_dag_kvs_free(Ty__KV **kvs, size_t n);

/* Render one template string; NULL *missing means success. */
char *ty_dag_render(const char *tmpl, Ty__KV *const *params, size_t n, char **missing);

/* Where input `key` (a "TASK/OUTPUT" reference) lands in the attempt
 * directory: inputs/KEY/<OUTPUT's last component> (heap string). */
char *ty_dag_input_path(const char *key, const char *ref);
/* Render every {{ inputs.KEY }} in tmpl as that input's path; an unknown
 * KEY goes to *missing (the first; NULL when none), the text kept. mode: a
 * ty_tmpl_mode_t (common/tmpl.h). */
char *ty_dag_render_inputs(const char *tmpl, int mode, const Ty__TaskSpec *t, char **missing);
/* Whether task t declares output `name` (a path, or a name its glob matches). */
int ty_dag_declares_output(const Ty__TaskSpec *t, const char *name);

/* Index of the task named `name`, or -1. */
int ty_dag_task_index(const Ty__PipelineSpec *spec, const char *name);

#endif
