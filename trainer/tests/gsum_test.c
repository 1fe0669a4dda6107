/* The shared-memory gradient sum, run under mpirun with 2 and 3 ranks (the
 * two ways it sums): every rank gets the exact sum of every step, steps do
 * not see each other's gradients, and TY_GRAD_SHM=0 turns it off. */
#include "trainer/gsum.h"

#include "common/tests/ty_test.h"

#include <mpi.h>
#include <stdint.h>

/* rank r's gradient element i at step k: small integers, so sums are exact */
static float value(int r, int k, size_t i) {
    return (float)((r + 1) * 1000 + k * 7 + (int)(i % 97));
}

/* elements of sum (+ peer) that are not the ranks' sum at step k */
static size_t wrong(const float *sum, const float *peer, size_t n, int size, int k) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float want = 0;
        for (int r = 0; r < size; r++)
            want += value(r, k, i);
        bad += sum[i] + (peer ? peer[i] : 0) != want;
    }
    return bad;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CHECK(size >= 2);

    const size_t n = 5000; /* not a multiple of the slices or pages */
    ty_gsum_t *s = NULL;
    ty_gsum_create(&s, n);
    CHECK(s != NULL); /* every rank of an mpirun on one host shares its memory */
    for (int k = 0; s && k < 6; k++) {
        float *g = ty_gsum_local(s);
        for (size_t i = 0; i < n; i++)
            g[i] = value(rank, k, i);
        const float *peer = NULL, *sum = ty_gsum_reduce(s, &peer);
        CHECK((peer != NULL) == (size == 2));
        CHECK_EQ_INT(wrong(sum, peer, n, size, k), 0);
        /* a fast rank writing its next gradient must not change what a slow
         * one still reads: every rank checks again after all have written */
        float *next = ty_gsum_local(s);
        for (size_t i = 0; i < n; i++)
            next[i] = -1;
        MPI_Barrier(MPI_COMM_WORLD);
        CHECK_EQ_INT(wrong(sum, peer, n, size, k), 0);
        MPI_Barrier(MPI_COMM_WORLD); /* (a test's barrier: the trainer has none here) */
    }
    ty_gsum_destroy(&s);
    CHECK(s == NULL);

    setenv("TY_GRAD_SHM", "0", 1); /* the message path instead */
    ty_gsum_create(&s, n);
    CHECK(s == NULL);

    int fails = ty_test_failures, all;
    MPI_Allreduce(&fails, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Finalize();
    ty_test_failures = all;
    TEST_DONE();
}
