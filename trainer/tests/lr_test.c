/* The learning-rate schedule: warm-up, cosine and step decay, each alone
 * and warm-up with a decay, at the steps where each changes. */
#include "trainer/lr.h"

#include "common/tests/ty_test.h"

#include <math.h>

static int near(double a, double b) { return fabs(a - b) <= 1e-12 * (fabs(b) + 1); }

int main(void) {
    ty_train_opts_t o = {.lr = 0.1};

    /* constant: the same rate at every step and epoch */
    CHECK(near(ty_lr_at(&o, 0, 0, 100), 0.1));
    CHECK(near(ty_lr_at(&o, 99, 9, 100), 0.1));

    /* warm-up over 4 steps: 1/4, 2/4, 3/4, then the full rate */
    o.warmup_steps = 4;
    CHECK(near(ty_lr_at(&o, 0, 0, 100), 0.025));
    CHECK(near(ty_lr_at(&o, 1, 0, 100), 0.05));
    CHECK(near(ty_lr_at(&o, 3, 0, 100), 0.1));
    CHECK(near(ty_lr_at(&o, 4, 0, 100), 0.1));
    CHECK(near(ty_lr_at(&o, 50, 5, 100), 0.1));

    /* cosine to zero over the run: full at the start, half at the middle */
    o.warmup_steps = 0;
    o.schedule = 1;
    CHECK(near(ty_lr_at(&o, 0, 0, 100), 0.1));
    CHECK(near(ty_lr_at(&o, 50, 5, 100), 0.05));
    CHECK(near(ty_lr_at(&o, 25, 2, 100), 0.05 * (1 + cos(M_PI / 4))));
    CHECK(ty_lr_at(&o, 99, 9, 100) < 0.0001 && ty_lr_at(&o, 99, 9, 100) > 0);
    /* ... after the warm-up, which scales it */
    o.warmup_steps = 10;
    CHECK(near(ty_lr_at(&o, 4, 0, 100), 0.1 * 0.5 * 0.5 * (1 + cos(M_PI * 4 / 100))));
    CHECK(near(ty_lr_at(&o, 50, 5, 100), 0.05));

    /* step decay: times gamma every step_size epochs, whatever the step */
    o.warmup_steps = 0;
    o.schedule = 2;
    o.step_size = 2;
    o.gamma = 0.5;
    CHECK(near(ty_lr_at(&o, 0, 0, 100), 0.1));
    CHECK(near(ty_lr_at(&o, 19, 1, 100), 0.1));
    CHECK(near(ty_lr_at(&o, 20, 2, 100), 0.05));
    CHECK(near(ty_lr_at(&o, 59, 5, 100), 0.025));
    CHECK(near(ty_lr_at(&o, 60, 6, 100), 0.0125));
    o.step_size = 0; /* no step size: no decay */
    CHECK(near(ty_lr_at(&o, 60, 6, 100), 0.1));
    TEST_DONE();
}
