/* --device cuda for a fit: GPU per rank, the shared-GPU warning, and the
 * epoch loop that feeds the GPU's step graph.  See train_int.h. */
#include "trainer/train_int.h"

#include "common/util.h"
#include "trainer/msum.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ranks of one node on the same physical GPU take turns on it (each step
 * also waits for the others' gradient sum), so they train several times slower
 * than one rank alone there: say so once per node. */
static void ty_gpu_warn_shared(MPI_Comm node, int lrank, const ty_gpu_t *G) {
    enum { ID = 48 };
    int n = 1;
    MPI_Comm_size(node, &n);
    char mine[ID] = {0}, *all = ty_xcalloc((size_t)n, ID);
    snprintf(mine, sizeof mine, "%s", ty_gpu_uuid(G));
    MPI_Gather(mine, ID, MPI_CHAR, all, ID, MPI_CHAR, 0, node);
    int shared = 0;
    const char *which = NULL;
    for (int i = 0; lrank == 0 && i < n; i++)
        for (int j = 0; j < n; j++)
            if (j != i && strcmp(all + (size_t)i * ID, all + (size_t)j * ID) == 0) {
                shared++;
                which = which ? which : all + (size_t)i * ID;
                break;
            }
    if (shared)
        fprintf(stderr,
                "trainyard-train: warning: %d of the %d ranks on this node share a GPU (%s): "
                "they take turns on it, so this trains slower than one rank would; give each "
                "rank its own GPU (CUDA_VISIBLE_DEVICES, or a pipeline step's gpus:)\n",
                shared, n, which);
    free(all);
}

/* --device cuda: each rank takes the GPU of its node-local rank (one GPU per
 * rank when the worker narrowed CUDA_VISIBLE_DEVICES per rank) and gets its
 * shard, the parameters and the optimizer state.  Every rank learns whether
 * all succeeded, so none is left waiting in a collective. */
int ty_train_gpu_setup(ty_tr_t *T, size_t local_b, ty_gpu_t **G) {
    MPI_Comm node;
    int lrank = 0, bad, gbad;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, T->rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &lrank);
    ty_gpu_opts_t go = {.adam = T->o->adam,
                        .momentum = (float)T->o->momentum,
                        .weight_decay = (float)T->o->weight_decay,
                        .batch = local_b,
                        .local_rank = lrank};
    char *err = NULL;
    int rc = ty_gpu_create(G, T->m, &go, &err);
    if (rc == 0)
        rc = ty_gpu_set_data(*G, T->tr->x, T->tr->y, T->tr->rows, &err);
    if (rc == 0)
        rc = ty_gpu_put_state(*G, T->m->params, T->m1, T->m2, T->t, &err);
    bad = rc != 0;
    MPI_Allreduce(&bad, &gbad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rc != 0)
        fprintf(stderr, "trainyard-train: rank %d: %s\n", T->rank, err);
    else if (!T->o->json)
        fprintf(stderr, "trainyard-train: rank %d trains on %s\n", T->rank, ty_gpu_name(*G));
    free(err);
    if (gbad)
        ty_gpu_destroy(G);
    else
        ty_gpu_warn_shared(node, lrank, *G);
    MPI_Comm_free(&node);
    return gbad ? -1 : 0;
}

/* The GPU's gradient, copied to the host, summed as on the CPU. */
static void ty_gpu_sum(void *ctx, float *g, size_t n) {
    ty_tr_t *T = ctx;
    ty_msum(g, T->peer, n, T->rank, T->size, 0);
}

/* One epoch on the GPU: the host picks the rows and learning rate of every
 * step (as the CPU path would), the GPU replays its step graph.  Leaves the
 * parameters and optimizer state in T->m / T->m1 / T->m2. */
void ty_train_gpu_epoch(ty_tr_t *T, ty_gpu_t *G, const ty_shards_t *sh, long long steps, int epoch,
                        uint64_t total_steps, double *loss, double *right) {
    size_t local_b = ty_shards_batch(sh), *rows = ty_xmalloc((local_b + 1) * sizeof(size_t));
    uint32_t *ix = ty_xmalloc((size_t)steps * local_b * sizeof(uint32_t) + 1);
    float *lrs = ty_xmalloc((size_t)steps * sizeof(float));
    for (long long st = 0; st < steps; st++) {
        ty_shards_rows(sh, st, rows);
        for (size_t i = 0; i < local_b; i++)
            ix[(size_t)st * local_b + i] = (uint32_t)rows[i];
        lrs[st] = (float)ty_lr_at(T->o, T->t, epoch, total_steps);
        T->t++; /* as ty_step does */
    }
    char *err = NULL;
    if (ty_gpu_run(G, ix, lrs, (size_t)steps, 1.0f / (float)T->o->batch,
                   T->size > 1 ? ty_gpu_sum : NULL, T, loss, right, &err) != 0 ||
        ty_gpu_get_state(G, T->m->params, T->m1, T->m2, &err) != 0) {
        fprintf(stderr, "trainyard-train: rank %d: %s\n", T->rank, err);
        MPI_Abort(MPI_COMM_WORLD, 1); /* the other ranks may be inside an allreduce */
    }
    free(ix);
    free(lrs);
    free(rows);
}
