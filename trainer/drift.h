/* Data drift between a reference and a current sample of one feature:
 * the population stability index over reference-decile bins and the
 * two-sample Kolmogorov-Smirnov statistic with its asymptotic p-value. */
#ifndef TY_TRAINER_DRIFT_H
#define TY_TRAINER_DRIFT_H

#include <stddef.h>

typedef struct {
    double psi;
    double ks;      /* sup |F_ref - F_cur| */
    double p_value; /* of the KS statistic */
} ty_drift_t;

/* ref and cur are sorted in place.  Returns -1 when either is empty. */
int ty_drift_feature(float *ref, size_t nref, float *cur, size_t ncur, ty_drift_t *out);
/* Asymptotic P(D > d) for sample sizes n and m (Kolmogorov distribution). */
double ty_ks_pvalue(double d, size_t n, size_t m);

#endif
