/* Which rows each training step takes, the same for any rank count.
 *
 * The training rows are cut into V virtual shards by their position in the
 * file (row p of extent E is in shard min(p*V/E, V-1)); every epoch each
 * virtual shard gets its own permutation from (seed, epoch, shard), and
 * every step takes batch/V rows from each shard (the first batch%V shards
 * one more).  A rank owns a contiguous run of shards, exactly its file
 * shard, so the ranks' rows of a step, in rank order, are the rows one rank
 * alone would take: 1, 2, 4 or 8 ranks (V = 8) train on the same global
 * batches (tested in shards_test). */
#ifndef TY_TRAINER_SHARDS_H
#define TY_TRAINER_SHARDS_H

#include <stddef.h>
#include <stdint.h>

typedef struct ty_shards ty_shards_t;

/* The virtual shards [v0, v0 + nv) of V, over the rows idx[0..n) (indices
 * into the caller's rows) whose file positions are pos[idx[i]] in
 * [0, extent); a global batch of `batch` rows.  Rows outside these shards
 * are left out. */
void ty_shards_create(ty_shards_t **out, uint32_t V, uint32_t v0, uint32_t nv, uint32_t batch,
                      const size_t *idx, size_t n, const uint64_t *pos, uint64_t extent);
/* This rank's rows a step (its share of the global batch). */
size_t ty_shards_batch(const ty_shards_t *s);
/* Whole steps the shards hold: the least over shards that take rows of
 * rows / rows a step; -1 when these shards take none. */
long long ty_shards_steps(const ty_shards_t *s);
/* Orders the rows for an epoch: a permutation of each shard from (seed,
 * epoch, shard), whatever order came before. */
void ty_shards_shuffle(ty_shards_t *s, uint64_t seed, int epoch);
/* Writes step's ty_shards_batch() rows (indices into the caller's rows),
 * shard by shard; step < ty_shards_steps(). */
void ty_shards_rows(const ty_shards_t *s, long long step, size_t *rows);
void ty_shards_destroy(ty_shards_t **s);

#endif
