/* An attempt's command line and environment (launch.c). */
#ifndef TY_WORKER_LAUNCH_H
#define TY_WORKER_LAUNCH_H

#include "worker/worker.h"

/* What of an attempt its command and environment name. */
typedef struct {
    const char *run_id, *task;
    uint32_t attempt;
    const char *dir, *report;
    const char *shm_dir;  /* its directory for Open MPI's shared memory, or NULL */
    const char *rsh_path; /* part 0 of a gang: the socket of its rsh relay, or NULL */
} ty_attempt_t;

/* environ, minus names set here, plus the task's env and the contract;
 * NULL-terminated (ty_strv_free). */
char **ty_build_env(ty_wk_t *wk, const ty_attempt_t *p, const Ty__Dispatch *d);
/* The command, or mpirun with its options and the ranks' command. */
char **ty_build_argv(const ty_wk_t *wk, const Ty__Dispatch *d, const ty_attempt_t *p);
void ty_strv_free(char **v);

#endif
