/* Virtual shards: 1, 2, 4 and 8 ranks (V = 8) take the same rows at every
 * step of every epoch, the ranks' rows in rank order being one rank's;
 * batches that V does not divide are split as said; every row of a shard
 * comes once an epoch, and epochs differ; the steps count whole batches of
 * the smallest shard; positions past the extent land in the last shard. */
#include "trainer/shards.h"

#include "common/tests/ty_test.h"
#include "common/util.h"
#include "trainer/model.h"

#include <stdlib.h>
#include <string.h>

enum { ROWS = 1000, V = 8 };

/* A rank's rows as data loading gives them: those whose position lies in
 * its file shard (positions v*E/V..(v+1)*E/V of its virtual shards), as
 * indices into its own rows; global[] maps them back to the file's rows. */
typedef struct {
    size_t n, idx[ROWS], global[ROWS];
    uint64_t pos[ROWS];
} rank_rows_t;

static void load(const uint64_t *pos, uint64_t extent, int size, int rank, rank_rows_t *r) {
    uint32_t nv = V / (uint32_t)size, v0 = nv * (uint32_t)rank;
    r->n = 0;
    for (size_t i = 0; i < ROWS; i++) {
        uint64_t pv = pos[i] * V / extent;
        uint32_t v = (uint32_t)(pv < V ? pv : V - 1);
        if (v >= v0 && v < v0 + nv) {
            r->pos[r->n] = pos[i];
            r->idx[r->n] = r->n;
            r->global[r->n++] = i;
        }
    }
}

/* The file rows of every step of `epochs` epochs for `size` ranks, rank by
 * rank within a step; returns the steps (the least over ranks). */
static long long batches(const uint64_t *pos, uint64_t extent, int size, uint32_t batch, int epochs,
                         size_t *out) {
    static rank_rows_t r[V];
    ty_shards_t *sh[V] = {0};
    long long steps = -1;
    size_t got = 0;
    for (int k = 0; k < size; k++) {
        load(pos, extent, size, k, &r[k]);
        ty_shards_create(&sh[k], V, V / (uint32_t)size * (uint32_t)k, V / (uint32_t)size, batch,
                         r[k].idx, r[k].n, r[k].pos, extent);
        long long s = ty_shards_steps(sh[k]);
        steps = steps < 0 || (s >= 0 && s < steps) ? s : steps;
        got += ty_shards_batch(sh[k]);
    }
    CHECK_EQ_INT(got, batch); /* the ranks' shares make the global batch */
    size_t n = 0, rows[64];
    for (int e = 0; e < epochs; e++) {
        for (int k = 0; k < size; k++)
            ty_shards_shuffle(sh[k], 42, e);
        for (long long st = 0; st < steps; st++)
            for (int k = 0; k < size; k++) {
                ty_shards_rows(sh[k], st, rows);
                for (size_t i = 0; i < ty_shards_batch(sh[k]); i++)
                    out[n++] = r[k].global[rows[i]];
            }
    }
    for (int k = 0; k < size; k++)
        ty_shards_destroy(&sh[k]);
    return steps;
}

int main(void) {
    /* byte offsets of rows of uneven length, as in a CSV */
    static uint64_t pos[ROWS];
    uint64_t at = 0, s = 7;
    for (size_t i = 0; i < ROWS; i++) {
        pos[i] = at;
        at += 20 + ty_rng_next(&s) % 40;
    }
    uint64_t extent = at;
    static size_t one[4 * ROWS], many[4 * ROWS];
    uint32_t sizes[] = {64, 7, 20};
    for (size_t b = 0; b < sizeof sizes / sizeof *sizes; b++) {
        long long steps = batches(pos, extent, 1, sizes[b], 3, one);
        CHECK(steps > 0);
        for (int size = 2; size <= V; size *= 2) {
            CHECK_EQ_INT(batches(pos, extent, size, sizes[b], 3, many), steps);
            CHECK(memcmp(one, many, (size_t)steps * 3 * sizes[b] * sizeof(size_t)) == 0);
        }
    }

    /* batch 20 over 8 shards: 3 rows from shards 0-3, 2 from 4-7 */
    size_t idx[ROWS];
    for (size_t i = 0; i < ROWS; i++)
        idx[i] = i;
    ty_shards_t *sh = NULL;
    ty_shards_create(&sh, V, 0, 4, 20, idx, ROWS, pos, extent);
    CHECK_EQ_INT(ty_shards_batch(sh), 12);
    ty_shards_destroy(&sh);
    ty_shards_create(&sh, V, 4, 4, 20, idx, ROWS, pos, extent);
    CHECK_EQ_INT(ty_shards_batch(sh), 8);
    ty_shards_destroy(&sh);

    /* one shard: each epoch visits each of its rows once, in a new order */
    ty_shards_create(&sh, V, 2, 1, 8, idx, ROWS, pos, extent); /* one row a step */
    long long steps = ty_shards_steps(sh);
    CHECK(steps > 100 && steps < 150); /* about an eighth of the rows */
    size_t *e0 = ty_xcalloc((size_t)steps, sizeof(size_t)),
           *e1 = ty_xcalloc((size_t)steps, sizeof(size_t));
    char seen[ROWS] = {0};
    ty_shards_shuffle(sh, 1, 0);
    for (long long st = 0; st < steps; st++)
        ty_shards_rows(sh, st, &e0[st]);
    ty_shards_shuffle(sh, 1, 1);
    for (long long st = 0; st < steps; st++)
        ty_shards_rows(sh, st, &e1[st]);
    int dup = 0, outside = 0;
    for (long long st = 0; st < steps; st++) {
        dup += seen[e0[st]]++ != 0;
        outside += pos[e0[st]] * V / extent != 2;
    }
    CHECK_EQ_INT(dup, 0);
    CHECK_EQ_INT(outside, 0);
    CHECK(memcmp(e0, e1, (size_t)steps * sizeof(size_t)) != 0);
    ty_shards_shuffle(sh, 1, 0); /* the same epoch again: the same order */
    for (long long st = 0; st < steps; st++) {
        size_t r;
        ty_shards_rows(sh, st, &r);
        dup += r != e0[st];
    }
    CHECK_EQ_INT(dup, 0);
    ty_shards_destroy(&sh);
    free(e0);
    free(e1);

    /* a shard with 5 rows and 2 a step: 2 whole steps; none a step: -1 */
    ty_shards_create(&sh, V, 0, 1, 16, idx, 5, pos, extent); /* rows 0-4: shard 0 */
    CHECK_EQ_INT(ty_shards_steps(sh), 2);
    ty_shards_destroy(&sh);
    ty_shards_create(&sh, V, 7, 1, 7, idx, ROWS, pos, extent); /* batch 7: shard 7 takes none */
    CHECK_EQ_INT(ty_shards_batch(sh), 0);
    CHECK_EQ_INT(ty_shards_steps(sh), -1);
    ty_shards_destroy(&sh);

    /* past the extent (a gzip trailer that undercounts): the last shard */
    uint64_t far[2] = {extent / 2, extent + 100};
    size_t two[2] = {0, 1};
    ty_shards_create(&sh, V, 7, 1, 8, two, 2, far, extent);
    CHECK_EQ_INT(ty_shards_steps(sh), 1);
    size_t r = 9;
    ty_shards_rows(sh, 0, &r);
    CHECK_EQ_INT(r, 1);
    ty_shards_destroy(&sh);
    TEST_DONE();
}
