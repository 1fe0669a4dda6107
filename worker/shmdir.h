/* An MPI attempt's own directory for Open MPI's shared memory (the vader
 * BTL's segments, shared windows) and mpirun's session directory.
 *
 * Open MPI removes those files only when a rank finalizes and mpirun ends
 * cleanly; a killed job leaves them behind for good.  So each attempt gets
 * ROOT/trainyard-XXXXXX, removed with everything in it when the attempt
 * ends.  The directory is flock()ed while it is in use: by the worker
 * through the handle below and by mpirun through an inherited descriptor
 * (ty_shmdir_fd).  A worker that crashed releases its locks with its
 * descriptors, and ty_shmdir_sweep() then removes whatever nobody holds.
 * Loop thread only; no global state. */
#ifndef TY_WORKER_SHMDIR_H
#define TY_WORKER_SHMDIR_H

typedef struct ty_shmdir ty_shmdir_t;

/* Makes and locks a new directory under root (normally "/dev/shm").
 * 0, or a negated errno from mkdtemp/open/flock. */
int ty_shmdir_create(ty_shmdir_t **out, const char *root);

/* Removes the directory and all in it (never following a link or crossing
 * into another file system), then releases the lock.  NULL is fine; *dp
 * is cleared. */
void ty_shmdir_destroy(ty_shmdir_t **dp);

/* The directory's path; owned by d. */
const char *ty_shmdir_path(const ty_shmdir_t *d);

/* A descriptor of the locked directory (O_CLOEXEC; hand it to a child
 * explicitly to share the lock).  Owned by d. */
int ty_shmdir_fd(const ty_shmdir_t *d);

/* Removes every ROOT/trainyard-* directory that no process holds locked:
 * those of crashed workers whose jobs have ended too.  Returns how many
 * were removed. */
int ty_shmdir_sweep(const char *root);

#endif
