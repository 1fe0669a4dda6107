/* Gradient sums through the node's shared memory.  When every rank of the
 * job runs on one node, each rank writes its gradient into a buffer that the
 * others can read (an MPI-3 shared-memory window), so summing is a barrier
 * and plain loads, with no copy through a message:
 *   - 2 ranks: each reads the other's buffer in its own update (the caller
 *     adds g + peer; a + b == b + a, so both get the same bits);
 *   - more: each rank sums its slice of every buffer, in rank order, into
 *     one shared sum that all then read.
 * Jobs spread over nodes (or with TY_GRAD_SHM=0) get no ty_gsum_t and sum
 * by messages instead (ty_train_sum_grad). */
#ifndef TY_TRAINER_GSUM_H
#define TY_TRAINER_GSUM_H

#include <stddef.h>

typedef struct ty_gsum ty_gsum_t;

/* Collective over MPI_COMM_WORLD.  *out is the exchange for n floats, or
 * NULL where it does not apply: one rank, ranks on more than one node,
 * TY_GRAD_SHM=0, too little room where Open MPI keeps shared windows (said
 * on stderr), or a window the MPI library cannot make.  Every rank reaches
 * the same verdict. */
void ty_gsum_create(ty_gsum_t **out, size_t n);
/* Where this step's local gradient goes: n floats, contents undefined. */
float *ty_gsum_local(ty_gsum_t *s);
/* Collective: waits until every rank has written its gradient, then
 * returns g and sets *peer (NULL when there is none) so that the sum over
 * the ranks is g[i] + peer[i].  Both stay valid until the next call. */
const float *ty_gsum_reduce(ty_gsum_t *s, const float **peer);
/* Collective. */
void ty_gsum_destroy(ty_gsum_t **s);

#endif
