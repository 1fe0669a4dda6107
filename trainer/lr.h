/* The learning rate of each optimizer step: linear warm-up over the first
 * warmup_steps steps, then the schedule (constant, cosine decay to zero over
 * the run, or step decay by gamma every step_size epochs).  A pure function
 * of the options and the step, so every rank, the CPU and the GPU path
 * agree, and a resumed run continues where it left off. */
#ifndef TY_TRAINER_LR_H
#define TY_TRAINER_LR_H

#include "trainer/train.h"

#include <stdint.h>

/* The rate of step t (0-based, counted over the whole run) in epoch
 * `epoch` (0-based) of a run of total_steps steps. */
double ty_lr_at(const ty_train_opts_t *o, uint64_t t, int epoch, uint64_t total_steps);

#endif
