/* Gradient sums by messages: see msum.h. */
#include "trainer/msum.h"

#include <mpi.h>

int ty_msum(float *g, float *peer, size_t n, int rank, int size, int defer_last) {
    if (size == 1)
        return 0;
    int doubling = !(size & (size - 1));
    for (size_t off = 0; off < n; off += TY_MSUM_BUCKET) {
        size_t len = n - off < TY_MSUM_BUCKET ? n - off : TY_MSUM_BUCKET;
        float *gb = g + off;
        if (!doubling) {
            MPI_Allreduce(MPI_IN_PLACE, gb, (int)len, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            continue;
        }
        float *p = peer + off;
        for (int d = 1; d < size; d <<= 1) {
            MPI_Sendrecv(gb, (int)len, MPI_FLOAT, rank ^ d, 7, p, (int)len, MPI_FLOAT, rank ^ d, 7,
                         MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            if (d << 1 < size || !defer_last)
                for (size_t i = 0; i < len; i++)
                    gb[i] += p[i];
        }
    }
    return doubling && defer_last;
}
