/* The shared-memory gradient sum and sliced update, run under mpirun with 2
 * and 3 ranks (the two ways it sums): the ranks' slices tile the
 * parameters on cache-line boundaries; every rank gets the exact sum of
 * every step over its slice; what each rank writes to its slice of the
 * shared state every rank then reads whole; destroy hands the final state
 * back in each rank's own arrays; TY_GRAD_SHM=0 turns it off. */
#include "trainer/gsum.h"

#include "common/tests/ty_test.h"
#include "common/util.h"

#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>

/* rank r's gradient element i at step k: small integers, so sums are exact */
static float value(int r, int k, size_t i) {
    return (float)((r + 1) * 1000 + k * 7 + (int)(i % 97));
}

static float sum_at(int size, int k, size_t i) {
    float want = 0;
    for (int r = 0; r < size; r++)
        want += value(r, k, i);
    return want;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CHECK(size >= 2);

    const size_t n = 5000; /* not a multiple of the slices or pages */
    ty_gsum_t *s = NULL;
    ty_gsum_create(&s, n, 2);
    CHECK(s != NULL); /* every rank of an mpirun on one host shares its memory */
    if (!s)
        goto done;

    /* the slices tile [0, n) in rank order, meeting on 16-float boundaries */
    size_t mine[2], all[16];
    ty_gsum_slice(s, &mine[0], &mine[1]);
    CHECK(size <= 8);
    MPI_Allgather(mine, 2, MPI_UNSIGNED_LONG, all, 2, MPI_UNSIGNED_LONG, MPI_COMM_WORLD);
    CHECK_EQ_INT(all[0], 0);
    CHECK_EQ_INT(all[2 * size - 1], n);
    for (int r = 0; r < size; r++) {
        CHECK(all[2 * r] < all[2 * r + 1]); /* (5000 floats: none is empty) */
        if (r > 0)
            CHECK_EQ_INT(all[2 * r], all[2 * r - 1]);
        CHECK_EQ_INT(all[2 * r] % 16, 0);
    }

    /* the state: the same start on every rank, moved into shared memory */
    float *w = ty_xcalloc(n, sizeof(float)), *v = ty_xcalloc(n, sizeof(float));
    for (size_t i = 0; i < n; i++)
        w[i] = (float)i, v[i] = -(float)i;
    float **const state[] = {&w, &v};
    ty_gsum_share(s, state); /* (frees this rank's arrays: LSan would see a leak) */
    float *const w_shared = w, *const v_shared = v;
    /* every shared array starts on a cache line, so the slices' 16-float
     * boundaries are line boundaries: no two ranks write one line */
    CHECK_EQ_INT((uintptr_t)w % 64, 0);
    CHECK_EQ_INT((uintptr_t)v % 64, 0);
    CHECK_EQ_INT((uintptr_t)ty_gsum_local(s) % 64, 0);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += w[i] != (float)i || v[i] != -(float)i;
    CHECK_EQ_INT(bad, 0);

    size_t lo = mine[0], hi = mine[1];
    for (int k = 0; k < 6; k++) {
        float *g = ty_gsum_local(s);
        for (size_t i = 0; i < n; i++)
            g[i] = value(rank, k, i);
        const float *peer = NULL, *sum = ty_gsum_reduce(s, &peer);
        CHECK((peer != NULL) == (size == 2));
        bad = 0;
        for (size_t i = lo; i < hi; i++) {
            float got = sum[i - lo] + (peer ? peer[i - lo] : 0);
            bad += got != sum_at(size, k, i);
            w[i] += got; /* "the update": this rank's slice only */
            v[i] = (float)k;
        }
        CHECK_EQ_INT(bad, 0);
        ty_gsum_updated(s);
        /* every rank sees every slice's update, whole */
        bad = 0;
        for (size_t i = 0; i < n; i++) {
            float want = (float)i;
            for (int j = 0; j <= k; j++)
                want += sum_at(size, j, i);
            bad += w[i] != want || v[i] != (float)k;
        }
        CHECK_EQ_INT(bad, 0);
    }
    float last = w[n - 1];
    ty_gsum_destroy(&s);
    CHECK(s == NULL);
    CHECK(w != w_shared && v != v_shared); /* in arrays of this rank's, the final values */
    CHECK(w[n - 1] == last && v[0] == 5.0f && v[n - 1] == 5.0f);
    free(w);
    free(v);

    setenv("TY_GRAD_SHM", "0", 1); /* the message path instead */
    ty_gsum_create(&s, n, 2);
    CHECK(s == NULL);

done:;
    int fails = ty_test_failures, sum_fails;
    MPI_Allreduce(&fails, &sum_fails, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Finalize();
    ty_test_failures = sum_fails;
    TEST_DONE();
}
