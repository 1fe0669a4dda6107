/* Rank prefixes in MPI steps' logs: mpirun --tag-output starts each line a
 * rank writes with "[JOB,RANK]<stdout>:" (or <stderr>, <stddiag>); the
 * worker makes that "[rank RANK] " as the bytes go to the master, keeping
 * a partial line until its end (at most 64 KiB).  Lines without the
 * prefix (mpirun's own) pass as they are. */
#ifndef TY_WORKER_TAGOUT_H
#define TY_WORKER_TAGOUT_H

#include "common/util.h"

typedef struct {
    ty_buf_t part; /* the last line so far, without its end */
} ty_tagout_t;

/* data (n bytes) in; the complete lines, rewritten, appended to out; with
 * final the partial line too. */
void ty_tagout_feed(ty_tagout_t *t, const char *data, size_t n, int final, ty_buf_t *out);
void ty_tagout_free(ty_tagout_t *t);

#endif
