/* Gradient sums by messages, for ranks that share no memory (several
 * nodes, TY_GRAD_SHM=0, GPU ranks' host copies).
 *
 * Power-of-two rank counts sum by recursive doubling: in round k each rank
 * swaps its partial sums with rank ^ 2^k (MPI_Sendrecv) and adds.  On
 * shared memory a pairwise swap is 3-4x faster than Open MPI's
 * MPI_Allreduce (docs/benchmarks.md), and since a + b == b + a exactly,
 * every rank ends with the same bits.  Other rank counts use
 * MPI_Allreduce.  Either way in buckets of at most TY_MSUM_BUCKET floats: a
 * few calls for the whole model, none of unbounded size. */
#ifndef TY_TRAINER_MSUM_H
#define TY_TRAINER_MSUM_H

#include <stddef.h>

#define TY_MSUM_BUCKET ((size_t)1 << 20) /* floats: 4 MiB */

/* Collective over MPI_COMM_WORLD: sums g (n floats) over all ranks in
 * place, every rank getting the same bits.  peer: n floats of scratch
 * (power-of-two rank counts only; else unused, may be NULL).  With
 * defer_last the last swap's partner sums are left in peer, not added, and
 * 1 is returned: the caller adds g[i] + peer[i] (the optimizer update,
 * which reads g anyway); else 0. */
int ty_msum(float *g, float *peer, size_t n, int rank, int size, int defer_last);

#endif
