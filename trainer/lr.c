#include "trainer/lr.h"

#include <math.h>

double ty_lr_at(const ty_train_opts_t *o, uint64_t t, int epoch, uint64_t total_steps) {
    double lr = o->lr;
    if (o->warmup_steps > 0 && t < (uint64_t)o->warmup_steps)
        lr *= (double)(t + 1) / o->warmup_steps;
    if (o->schedule == 1 && total_steps > 0)
        lr *= 0.5 * (1 + cos(M_PI * (double)t / (double)total_steps));
    else if (o->schedule == 2 && o->step_size > 0)
        lr *= pow(o->gamma, epoch / o->step_size);
    return lr;
}
