/* What the CLI's command files share (cli/main.c, cli/artifacts.c). */
#ifndef TY_CLI_CLI_H
#define TY_CLI_CLI_H

#include "cli/client.h"

#include <stdio.h>

typedef struct {
    int call_ms; /* --timeout */
    int json;
    int argc;
    char **argv;
} ty_cli_t;

/* Print "trainyard: ..." on stderr; returns 1. */
/* added to a long-poll call's timeout: the master holds it for up to 5 s */
#define TY_WAIT_EXTRA_MS 25000

int ty_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Call the master; on failure print one clear line.  Returns 0 or 1. */
int ty_call(ty_client_t *c, Ty__Envelope *req, int timeout_ms, Ty__Envelope **reply,
            Ty__Envelope__BodyCase want);
/* A run's status (0 or 1, the error printed). */
int ty_get_status(ty_cli_t *cli, ty_client_t *c, const char *run, uint64_t wait_after,
                  Ty__Envelope **reply);

/* cli/help.c */
void ty_usage(FILE *f);
/* `trainyard CMD --help`: CMD's usage lines and examples (or all usage). */
void ty_usage_of(const char *cmd);
int ty_cmd_completion(ty_cli_t *cli);

/* cli/wait.c */
/* Follow a run with long-polls, showing progress on stderr (and, when it
 * failed, its failed tasks' reasons and log tails); prints the final table
 * (or JSON) and returns 0 only if the run succeeded. */
int ty_wait_run(ty_cli_t *cli, ty_client_t *c, const char *run);

/* cli/artifacts.c */
int ty_cmd_artifacts(ty_cli_t *cli, ty_client_t *c);
int ty_cmd_get(ty_cli_t *cli, ty_client_t *c);
int ty_cmd_pin(ty_cli_t *cli, ty_client_t *c);
int ty_cmd_gc(ty_cli_t *cli, ty_client_t *c);
int ty_cmd_lineage(ty_cli_t *cli, ty_client_t *c);
/* Download a (by content) to out (or its base name), its sha256 checked;
 * progress on a terminal.  0 or 1 (the error printed). */
int ty_download(ty_cli_t *cli, ty_client_t *c, const Ty__ArtifactRef *a, const char *out);

/* cli/models.c */
int ty_cmd_models(ty_cli_t *cli, ty_client_t *c);

/* cli/cluster.c */
/* runs.c */
int ty_cmd_runs(ty_cli_t *cli, ty_client_t *c);
int ty_cmd_pipelines(ty_cli_t *cli, ty_client_t *c);
int ty_cmd_logs(ty_cli_t *cli, ty_client_t *c);
int ty_cmd_cancel(ty_cli_t *cli, ty_client_t *c);
/* A run id given as a short prefix made whole: the one run in the master's
 * listing whose id (or its hash) begins so; left as it is when none does
 * (the master says "no such run").  0, or 1 with the error printed
 * (several match).  ty_call does this for every request naming a run. */
int ty_resolve_run(ty_client_t *c, int timeout_ms, char **id);
void ty_resolved_free(void);
int ty_cmd_keygen(ty_cli_t *cli);
int ty_cmd_keys(ty_cli_t *cli);
int ty_cmd_workers(ty_cli_t *cli, ty_client_t *c);
int ty_cmd_info(ty_cli_t *cli, ty_client_t *c);

/* cli/schedules.c */
int ty_cmd_schedules(ty_cli_t *cli, ty_client_t *c);
/* Add (or update) the schedule a pipeline file's schedule: key names. */
int ty_sched_from_pipeline(ty_cli_t *cli, ty_client_t *c, const char *file,
                           const Ty__PipelineSpec *spec, Ty__KV **params, size_t nparams);

/* cli/metrics.c */
int ty_cmd_metrics(ty_cli_t *cli, ty_client_t *c);
int ty_cmd_compare(ty_cli_t *cli, ty_client_t *c);

#endif
