#include "trainer/gsum.h"

#include "common/util.h"

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#define TY_GSUM_MAX_STATE 4

struct ty_gsum {
    MPI_Comm node;
    MPI_Win win;
    int rank, size, nstate;
    size_t n, lo, hi; /* this rank's slice */
    float **buf;      /* [rank]: every rank's gradient */
    float *state;     /* nstate shared arrays, stride apart (in rank 0's segment) */
    size_t stride;
    float *sum;                       /* more than 2 ranks: the sum over this rank's slice */
    float **slots[TY_GSUM_MAX_STATE]; /* ty_gsum_share's */
    int shared;
};

/* Every rank's stores before this are visible to every rank after it. */
static void ty_gsum_fence(ty_gsum_t *s) {
    MPI_Win_sync(s->win);
    MPI_Barrier(s->node);
    MPI_Win_sync(s->win);
}

/* Where Open MPI keeps shared windows: its osc_sm_backing_directory (read
 * through the MPI tool interface, so mca-params.conf counts too), else
 * /dev/shm, its default on Linux.  The caller frees it. */
static char *ty_gsum_backing_dir(void) {
    char *dir = NULL;
    int provided, idx, count;
    MPI_T_cvar_handle h;
    if (MPI_T_init_thread(MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS)
        return ty_xstrdup("/dev/shm");
    if (MPI_T_cvar_get_index("osc_sm_backing_directory", &idx) == MPI_SUCCESS &&
        MPI_T_cvar_handle_alloc(idx, NULL, &h, &count) == MPI_SUCCESS) {
        dir = ty_xcalloc((size_t)count + 2, 1);
        if (MPI_T_cvar_read(h, dir) != MPI_SUCCESS || !dir[0]) {
            free(dir);
            dir = NULL;
        }
        MPI_T_cvar_handle_free(&h);
    }
    MPI_T_finalize();
    return dir ? dir : ty_xstrdup("/dev/shm");
}

/* Node rank 0's verdict, the same on every rank: is there room for the
 * window?  Open MPI does not fail cleanly when its backing file does not
 * fit (the ranks hang), so the trainer asks first, with room to spare. */
static int ty_gsum_fits(MPI_Comm node, int rank, size_t bytes) {
    int ok = 1;
    if (rank == 0) {
        char *dir = ty_gsum_backing_dir();
        struct statvfs v;
        double room = statvfs(dir, &v) == 0 ? (double)v.f_bavail * (double)v.f_frsize : -1;
        ok = room >= 2.0 * (double)bytes + (64 << 20);
        if (!ok)
            fprintf(stderr,
                    "trainyard-train: %s has %.0f MiB free, too little for the %.0f MiB the "
                    "gradient sum would share there: summing by messages\n",
                    dir, room < 0 ? 0 : room / 1048576, (double)bytes / 1048576);
        free(dir);
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, node);
    return ok;
}

/* Rank r's slice of n floats: 16-float (cache line) boundaries, so that no
 * two ranks write one line. */
static size_t ty_gsum_bound(size_t n, int r, int size) {
    if (r >= size)
        return n;
    size_t b = (n * (size_t)r / (size_t)size) & ~(size_t)15;
    return b < n ? b : n;
}

void ty_gsum_create(ty_gsum_t **out, size_t n, int nstate) {
    *out = NULL;
    int wsize;
    MPI_Comm_size(MPI_COMM_WORLD, &wsize);
    const char *e = getenv("TY_GRAD_SHM");
    if (wsize == 1 || (e && strcmp(e, "0") == 0) || nstate < 0 || nstate > TY_GSUM_MAX_STATE)
        return; /* (the same environment and arguments on every rank) */
    MPI_Comm node;
    int nsize, everyone;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &nsize);
    MPI_Allreduce(&nsize, &everyone, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (everyone != wsize) { /* a rank elsewhere: messages for all */
        MPI_Comm_free(&node);
        return;
    }
    int nrank;
    MPI_Comm_rank(node, &nrank);
    /* a gradient per rank, page-aligned apart; rank 0 also holds the state;
     * 16 floats more to start on a cache line (Open MPI's segments do not:
     * they begin 8 bytes past one) */
    size_t stride = (n + 1023) & ~(size_t)1023, floats = stride + 16;
    if (nrank == 0)
        floats += (size_t)nstate * stride;
    if (!ty_gsum_fits(node, nrank, ((size_t)nsize + (size_t)nstate) * stride * sizeof(float))) {
        MPI_Comm_free(&node);
        return;
    }
    ty_gsum_t *s = ty_xcalloc(1, sizeof *s);
    s->node = node;
    s->size = nsize;
    s->rank = nrank;
    s->n = n;
    s->nstate = nstate;
    s->stride = stride;
    s->lo = ty_gsum_bound(n, nrank, nsize);
    s->hi = ty_gsum_bound(n, nrank + 1, nsize);
    MPI_Info info;
    MPI_Info_create(&info);
    MPI_Info_set(info, "alloc_shared_noncontig", "true");
    MPI_Comm_set_errhandler(node, MPI_ERRORS_RETURN);
    float *base = NULL;
    int rc = MPI_Win_allocate_shared((MPI_Aint)(floats * sizeof(float)), sizeof(float), info, node,
                                     &base, &s->win);
    MPI_Info_free(&info);
    MPI_Comm_set_errhandler(node, MPI_ERRORS_ARE_FATAL); /* its barriers: a dead rank ends all */
    int ok = rc == MPI_SUCCESS, all_ok;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok) {
        if (ok)
            MPI_Win_free(&s->win);
        MPI_Comm_free(&s->node);
        free(s);
        return;
    }
    s->buf = ty_xcalloc((size_t)nsize, sizeof *s->buf);
    for (int r = 0; r < nsize; r++) {
        MPI_Aint bytes;
        int unit;
        float *p;
        MPI_Win_shared_query(s->win, r, &bytes, &unit, &p);
        p = (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
        s->buf[r] = p;
        if (r == 0)
            s->state = p + stride;
    }
    if (nsize > 2)
        s->sum = ty_xcalloc(s->hi - s->lo + 1, sizeof(float));
    MPI_Win_lock_all(MPI_MODE_NOCHECK, s->win); /* one passive epoch for the job */
    *out = s;
}

void ty_gsum_share(ty_gsum_t *s, float **const *slots) {
    for (int k = 0; k < s->nstate; k++) { /* each rank its slice */
        float *sh = s->state + (size_t)k * s->stride;
        memcpy(sh + s->lo, *slots[k] + s->lo, (s->hi - s->lo) * sizeof(float));
    }
    ty_gsum_fence(s);
    for (int k = 0; k < s->nstate; k++) { /* one copy per node from here on */
        s->slots[k] = slots[k];
        free(*slots[k]);
        *slots[k] = s->state + (size_t)k * s->stride;
    }
    s->shared = 1;
}

void ty_gsum_slice(const ty_gsum_t *s, size_t *lo, size_t *hi) {
    *lo = s->lo;
    *hi = s->hi;
}

float *ty_gsum_local(ty_gsum_t *s) { return s->buf[s->rank]; }

/* A rank writes its next gradient only after ty_gsum_updated, by when
 * every other rank has finished reading this one: one buffer is enough. */
const float *ty_gsum_reduce(ty_gsum_t *s, const float **peer) {
    ty_gsum_fence(s);
    size_t lo = s->lo, hi = s->hi;
    if (s->size == 2) {
        *peer = s->buf[s->rank ^ 1] + lo;
        return s->buf[s->rank] + lo;
    }
    float *restrict sum = s->sum;
    memcpy(sum, s->buf[0] + lo, (hi - lo) * sizeof(float));
    for (int r = 1; r < s->size; r++) { /* rank order: the same bits whoever sums */
        const float *restrict g = s->buf[r] + lo;
        for (size_t i = 0; i < hi - lo; i++)
            sum[i] += g[i];
    }
    *peer = NULL;
    return sum;
}

void ty_gsum_updated(ty_gsum_t *s) { ty_gsum_fence(s); }

void ty_gsum_destroy(ty_gsum_t **ps) {
    ty_gsum_t *s = *ps;
    if (!s)
        return;
    if (s->shared) { /* every rank takes its copy before the window goes */
        MPI_Win_sync(s->win);
        for (int k = 0; k < s->nstate; k++) {
            float *own = ty_xmalloc(s->n * sizeof(float) + 1);
            memcpy(own, *s->slots[k], s->n * sizeof(float));
            *s->slots[k] = own;
        }
        MPI_Barrier(s->node);
    }
    MPI_Win_unlock_all(s->win);
    MPI_Win_free(&s->win);
    MPI_Comm_free(&s->node);
    free(s->buf);
    free(s->sum);
    free(s);
    *ps = NULL;
}
