#include "trainer/drift.h"
#include "trainer/model.h"

#include "common/tests/ty_test.h"

#include <math.h>

int main(void) {
    enum { N = 20000 };
    static float a[N], b[N], c[N], a2[N];
    uint64_t s = 1;
    for (int i = 0; i < N; i++) {
        a[i] = (float)ty_rng_normal(&s);
        b[i] = (float)ty_rng_normal(&s);        /* same distribution */
        c[i] = (float)ty_rng_normal(&s) + 0.5f; /* shifted by half a sigma */
    }
    memcpy(a2, a, sizeof a);
    ty_drift_t same, shifted, self;
    CHECK_EQ_INT(ty_drift_feature(a, N, b, N, &same), 0);
    CHECK(same.psi < 0.01);
    CHECK(same.ks < 0.03);
    CHECK(same.p_value > 0.01);
    CHECK_EQ_INT(ty_drift_feature(a2, N, c, N, &shifted), 0);
    CHECK(shifted.psi > 0.2);               /* the usual "significant drift" line */
    CHECK(fabs(shifted.ks - 0.197) < 0.02); /* Phi(0.25) - Phi(-0.25) */
    CHECK(shifted.p_value < 1e-10);
    CHECK_EQ_INT(ty_drift_feature(a, N, a2, N, &self), 0);
    CHECK(self.psi < 1e-9 && self.ks == 0 && self.p_value == 1.0);
    CHECK_EQ_INT(ty_drift_feature(a, 0, b, N, &self), -1);
    /* a textbook value: D = 0.1, n = m = 1000 -> p about 6.7e-5 */
    double p = ty_ks_pvalue(0.1, 1000, 1000);
    CHECK(p > 4e-5 && p < 9e-5);
    TEST_DONE();
}
