/* Internal to the trainer's fit: the state one rank trains with, shared by
 * train.c (the loop), ckpt.c (checkpoints) and train_gpu.c (--device cuda).
 * Not an API: nothing outside trainer/ includes it. */
#ifndef TY_TRAINER_TRAIN_INT_H
#define TY_TRAINER_TRAIN_INT_H

#include "trainer/data.h"
#include "trainer/gpu.h"
#include "trainer/gsum.h"
#include "trainer/lr.h"
#include "trainer/model.h"
#include "trainer/shards.h"
#include "trainer/train.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const ty_train_opts_t *o;
    int rank, size;
    ty_data_t *tr, *va;
    size_t *tr_idx, ntr; /* local rows used for training */
    size_t *va_idx, nva; /* local rows used for validation */
    ty_model_t *m;
    float *grad, *m1, *m2, *best;
    float *peer;   /* the last exchange round's partial sums (ty_msum) */
    ty_gsum_t *gs; /* the gradient sum in node shared memory, or NULL */
    /* what the update reads: over [ulo, uhi) of the parameters, the
     * gradient's element i is ug[i - ulo] (+ upeer[i - ulo]) */
    const float *ug, *upeer;
    size_t ulo, uhi;
    uint64_t t; /* optimizer steps */
    /* the latest epoch's figures (val: NAN without validation data); in
     * the checkpoint, so a run resumed after its last epoch reports them */
    struct {
        double loss, acc, val, val_acc, samples_per_s;
    } last;
    double best_val;
    int since_best, start_epoch;
    int report_fd;
} ty_tr_t;

/* Checkpoints (ckpt.c): parameters, optimizer state and epoch, written
 * atomically to DIR/checkpoint.  ty_ckpt_save returns 0 or -errno.
 * ty_ckpt_load runs on every rank: 0 resumed, 1 none there (start afresh),
 * -1 unusable (rank 0 has said why). */
int ty_ckpt_save(ty_tr_t *T, int epoch);
/* DIR/checkpoint (--checkpoint-dir set); the caller frees it. */
char *ty_ckpt_path(const ty_tr_t *T);
int ty_ckpt_load(ty_tr_t *T);

/* --device cuda (train_gpu.c): every rank gets its GPU, shard and state, or
 * all return -1 (each failing rank has said why). */
int ty_train_gpu_setup(ty_tr_t *T, size_t local_b, ty_gpu_t **G);
/* One epoch of `steps` steps on the GPU over the rows sh picks; leaves
 * parameters and optimizer state in T; aborts the job on a GPU failure. */
void ty_train_gpu_epoch(ty_tr_t *T, ty_gpu_t *G, const ty_shards_t *sh, long long steps, int epoch,
                        uint64_t total_steps, double *loss, double *right);

#endif
