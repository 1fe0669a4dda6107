/* MPI gangs across workers, the worker's side.
 *
 * A part > 0 of a gang (Dispatch.part) waits here, listed as running,
 * until part 0's mpirun asks for it: its rsh agent (trainyard-rsh) writes
 * "HOST\nCOMMAND" to part 0's worker on a Unix socket in the attempt's own
 * directory (ty_rsh_t), which sends a PartLaunch through the master to the
 * worker of the part at HOST; that worker runs COMMAND (Open MPI's daemon,
 * one shell command line, as ssh would) as the part's attempt: its
 * directory, process group, user, logs, cancel and result.  No ssh. */
#ifndef TY_WORKER_PARTS_H
#define TY_WORKER_PARTS_H

#include "worker/worker.h"

/* A part > 0: kept until its launch (or cancel). */
void ty_parts_dispatch(ty_wk_t *wk, const Ty__Dispatch *d);
/* The master relays part 0's request: the part starts. */
void ty_parts_launch(ty_wk_t *wk, const Ty__PartLaunch *pl);
int ty_parts_has(ty_wk_t *wk, const Ty__TaskRef *ref);
/* A waiting part cancelled: 1 when it was one (its result is sent). */
int ty_parts_cancel(ty_wk_t *wk, const Ty__TaskRef *ref, const char *why);
void ty_parts_stop_all(ty_wk_t *wk, const char *why); /* results with interrupted set */
size_t ty_parts_refs(ty_wk_t *wk, Ty__TaskRef **out); /* out NULL: count only */

/* Part 0's relay for its rsh agent: a socket DIR/rsh, owned by the task's
 * user, that takes "HOST\nCOMMAND" and answers "ok\n" or "error: ...\n". */
typedef struct ty_rsh ty_rsh_t;
int ty_rsh_open(ty_rsh_t **out, ty_wk_t *wk, const Ty__Dispatch *d, const char *dir);
const char *ty_rsh_path(const ty_rsh_t *r);
void ty_rsh_close(ty_rsh_t **r); /* NULL-safe; frees once its handles are closed */

#endif
