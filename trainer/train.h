/* `trainyard-train fit`: data-parallel training over MPI ranks.
 *
 * Sampling does not depend on the rank count: the training rows are cut into
 * `vshards` contiguous virtual shards (8 by default; the rank count must
 * divide it), each with its own per-epoch permutation from (seed, epoch,
 * shard), and each step takes batch/vshards rows from every virtual shard.
 * A rank owns a contiguous run of virtual shards, which is exactly its file
 * shard, so it reads only its own rows, and 1, 2, 4 or 8 ranks see the same
 * global batches (shards.h): the same model up to float summation order. */
#ifndef TY_TRAINER_TRAIN_H
#define TY_TRAINER_TRAIN_H

#include "trainer/model.h"

#include <stdint.h>

typedef struct {
    const char *train, *val, *target, *out, *ckpt_dir, *onnx;
    ty_arch_t arch;
    uint32_t hidden[16];
    uint32_t nhidden;
    int regression;
    const char *class_names; /* --class-names "a,b,c" or NULL */
    int epochs;
    uint32_t batch;
    double lr, momentum, weight_decay;
    int adam;
    int warmup_steps;
    int schedule; /* 0 constant, 1 cosine, 2 step */
    int step_size;
    double gamma;
    int patience;
    double val_split;
    uint64_t seed;
    int resume;
    int ckpt_every;
    int json;
    uint32_t vshards;
    int device_cuda;
} ty_train_opts_t;

/* Runs on every rank (MPI initialised by the caller); returns an exit status. */
int ty_train_run(const ty_train_opts_t *o, int rank, int size);

/* Long steps (loading a big CSV, gen) print a progress line at most this
 * often: TY_PROGRESS_EVERY_S seconds from the environment, default 1. */
double ty_train_progress_every(void);
double ty_train_clock(void); /* monotonic seconds */

#endif
