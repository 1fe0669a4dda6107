/* Attempts that an earlier run of this worker left running.
 *
 * Task process groups run detached (setsid), so they outlive a worker that
 * crashes or is killed outright.  The master re-queues such a worker's
 * attempts once its lease runs out, so a survivor would run beside its own
 * retry (writing the same checkpoints and outputs) with nobody to report
 * to.  A starting worker ends them first: every process whose environment
 * carries TRAINYARD_WORKER=<its id> and a TRAINYARD_REPORT under its work
 * directory, which the worker gives each attempt and its children inherit
 * (so two local clusters whose workers share ids, in other directories,
 * leave each other alone).  Blocking; call before the loop runs. */
#ifndef TY_WORKER_ORPHANS_H
#define TY_WORKER_ORPHANS_H

#include <stdint.h>

/* Sends TERM to each such process and its process group when it leads
 * one, waits up to grace_ms for them (the groups' other members included)
 * to exit, then KILLs what is left.  Returns how many processes were found
 * (0 when none), after they exited or 2 s after the KILL.  Never touches
 * the calling process. */
int ty_orphans_end(const char *worker_id, const char *workdir, int64_t grace_ms);

/* KILLs what is left of one attempt whose process has ended: every process
 * of worker_id whose TRAINYARD_REPORT is report (MPI ranks lead process
 * groups of their own, so the attempt's group does not hold them; one
 * stuck past its mpirun or daemon would run on).  How many; not blocking. */
int ty_orphans_kill_attempt(const char *worker_id, const char *report);

#endif
