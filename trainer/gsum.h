/* Gradient sums and the optimizer update through the node's shared memory.
 * When every rank of the job runs on one node, the ranks keep one copy of
 * the parameters and the optimizer's moments between them (an MPI-3
 * shared-memory window) and split the update: each rank writes its
 * gradient into a buffer the others can read, then updates its own slice
 * of the parameters from the sum of every rank's gradient there, so no
 * rank reads or updates more than its share (as ZeRO stage 1 shards the
 * optimizer, within a node).  Two barriers a step: gradients written,
 * update done.  The sum over the ranks at element i is
 *   - 2 ranks: g[i] + peer[i] (a + b == b + a: the bits of the message
 *     path, where each rank adds the other's to its own);
 *   - more: the ranks' gradients added in rank order.
 * Jobs spread over nodes (or with TY_GRAD_SHM=0) get no ty_gsum_t, sum by
 * messages instead (msum.h) and every rank updates everything. */
#ifndef TY_TRAINER_GSUM_H
#define TY_TRAINER_GSUM_H

#include <stddef.h>

typedef struct ty_gsum ty_gsum_t;

/* Collective over MPI_COMM_WORLD.  *out is the exchange for a gradient of
 * n floats and nstate shared arrays of n floats (parameters, moments, best
 * weights), or NULL where it does not apply: one rank, ranks on more than one node,
 * TY_GRAD_SHM=0, too little room where Open MPI keeps shared windows (said
 * on stderr), or a window the MPI library cannot make.  Every rank reaches
 * the same verdict. */
void ty_gsum_create(ty_gsum_t **out, size_t n, int nstate);
/* Collective: moves the nstate arrays *slots[k] (n floats each, the same
 * on every rank, from malloc) into the shared window, frees them and points
 * *slots[k] there, so that every rank reads and writes the one copy.
 * ty_gsum_destroy gives every rank its own copy again (new arrays, to be
 * freed as before). */
void ty_gsum_share(ty_gsum_t *s, float **const *slots);
/* The part [*lo, *hi) of the n floats this rank updates; the slices of
 * the ranks tile [0, n) and meet on cache-line boundaries. */
void ty_gsum_slice(const ty_gsum_t *s, size_t *lo, size_t *hi);
/* Where this step's local gradient goes: n floats, contents undefined. */
float *ty_gsum_local(ty_gsum_t *s);
/* Collective: waits until every rank has written its gradient, then
 * returns g and sets *peer (NULL when there is none) so that the sum over
 * the ranks is g[i - lo] + peer[i - lo] for i in this rank's slice [lo, hi).
 * Both stay valid until ty_gsum_updated. */
const float *ty_gsum_reduce(ty_gsum_t *s, const float **peer);
/* Collective: every rank's update of its slice is done; the shared arrays
 * are whole again for every rank to read. */
void ty_gsum_updated(ty_gsum_t *s);
/* Collective. */
void ty_gsum_destroy(ty_gsum_t **s);

#endif
