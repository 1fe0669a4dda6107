/* The gradient sum by messages, run under mpirun with 2, 3 and 4 ranks
 * (recursive doubling for 2 and 4, MPI_Allreduce for 3), over more than
 * one bucket: every rank ends with the exact sum of small integers, with
 * the same bits as every other rank for arbitrary floats, and with
 * defer_last the last partner's sums are left in peer for the caller. */
#include "trainer/msum.h"

#include "common/tests/ty_test.h"
#include "common/util.h"
#include "trainer/model.h"

#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* rank r's element i: small integers, so every order of summing is exact */
static float value(int r, size_t i) { return (float)((r + 1) * 1000 + (int)(i % 97)); }

/* Whether every rank holds the same bits in g (a CRC compared). */
static int same_everywhere(const float *g, size_t n) {
    uint32_t crc = (uint32_t)crc32(0, (const Bytef *)g, (uInt)(n * sizeof(float))), lo, hi;
    MPI_Allreduce(&crc, &lo, 1, MPI_UINT32_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&crc, &hi, 1, MPI_UINT32_T, MPI_MAX, MPI_COMM_WORLD);
    return lo == hi;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CHECK(size >= 2);
    const size_t n = TY_MSUM_BUCKET + 1000; /* two buckets, the second short */
    float *g = ty_xmalloc(n * sizeof(float)), *peer = ty_xmalloc(n * sizeof(float));
    int doubling = !(size & (size - 1));

    /* exact sums, whole */
    for (size_t i = 0; i < n; i++)
        g[i] = value(rank, i);
    CHECK_EQ_INT(ty_msum(g, peer, n, rank, size, 0), 0);
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
        float want = 0;
        for (int r = 0; r < size; r++)
            want += value(r, i);
        wrong += g[i] != want;
    }
    CHECK_EQ_INT(wrong, 0);

    /* deferred: g + peer is the sum (power-of-two counts), or g is (others) */
    for (size_t i = 0; i < n; i++)
        g[i] = value(rank, i);
    CHECK_EQ_INT(ty_msum(g, peer, n, rank, size, 1), doubling);
    wrong = 0;
    for (size_t i = 0; i < n; i++) {
        float want = 0;
        for (int r = 0; r < size; r++)
            want += value(r, i);
        wrong += (doubling ? g[i] + peer[i] : g[i]) != want;
    }
    CHECK_EQ_INT(wrong, 0);

    /* arbitrary floats, where the order of summing shows in the bits: every
     * rank ends with the same ones (the replicas must not drift apart) */
    uint64_t s = 12345 + (uint64_t)rank * 7919;
    for (size_t i = 0; i < n; i++)
        g[i] = (float)ty_rng_normal(&s) * 1e-3f;
    ty_msum(g, peer, n, rank, size, 0);
    CHECK(same_everywhere(g, n));
    if (doubling) {
        for (size_t i = 0; i < n; i++)
            g[i] = (float)ty_rng_normal(&s) * 1e-3f;
        ty_msum(g, peer, n, rank, size, 1);
        for (size_t i = 0; i < n; i++)
            g[i] += peer[i];
        CHECK(same_everywhere(g, n));
    }

    /* one rank: nothing to do, nothing touched */
    g[0] = 5;
    CHECK_EQ_INT(ty_msum(g, NULL, 1, 0, 1, 1), 0);
    CHECK(g[0] == 5);

    free(g);
    free(peer);
    int fails = ty_test_failures, sum_fails; /* every rank's checks count */
    MPI_Allreduce(&fails, &sum_fails, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Finalize();
    ty_test_failures = sum_fails;
    TEST_DONE();
}
