#include "trainer/drift.h"

#include <math.h>
#include <stdlib.h>

static int ty_cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

double ty_ks_pvalue(double d, size_t n, size_t m) {
    double ne = (double)n * (double)m / (double)(n + m), sq = sqrt(ne);
    double lambda = (sq + 0.12 + 0.11 / sq) * d; /* Stephens' small-sample correction */
    if (lambda < 1e-3)
        return 1.0;
    double sum = 0, sign = 1;
    for (int k = 1; k <= 100; k++) {
        double term = sign * exp(-2.0 * k * k * lambda * lambda);
        sum += term;
        if (fabs(term) < 1e-12)
            break;
        sign = -sign;
    }
    double p = 2 * sum;
    return p < 0 ? 0 : p > 1 ? 1 : p;
}

/* Number of values <= x in sorted a (upper bound). */
static size_t ty_count_le(const float *a, size_t n, float x) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a[mid] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int ty_drift_feature(float *ref, size_t nref, float *cur, size_t ncur, ty_drift_t *out) {
    if (nref == 0 || ncur == 0)
        return -1;
    qsort(ref, nref, sizeof(float), ty_cmp_float);
    qsort(cur, ncur, sizeof(float), ty_cmp_float);
    /* KS: walk both sorted samples */
    size_t i = 0, j = 0;
    double d = 0;
    while (i < nref && j < ncur) {
        float x = ref[i] <= cur[j] ? ref[i] : cur[j];
        while (i < nref && ref[i] <= x)
            i++;
        while (j < ncur && cur[j] <= x)
            j++;
        double diff = fabs((double)i / nref - (double)j / ncur);
        if (diff > d)
            d = diff;
    }
    out->ks = d;
    out->p_value = ty_ks_pvalue(d, nref, ncur);
    /* PSI over ten bins cut at the reference's deciles (ties merge bins) */
    const int B = 10;
    double psi = 0;
    size_t prev_r = 0, prev_c = 0;
    for (int b = 1; b <= B; b++) {
        size_t rc, cc;
        if (b == B) {
            rc = nref;
            cc = ncur;
        } else {
            float edge = ref[(size_t)((double)b / B * (nref - 1))];
            rc = ty_count_le(ref, nref, edge);
            cc = ty_count_le(cur, ncur, edge);
        }
        if (rc == prev_r && b != B)
            continue;
        double pr = (double)(rc - prev_r) / nref, pc = (double)(cc - prev_c) / ncur;
        const double eps = 1e-4; /* an empty bin must not make PSI infinite */
        pr = pr < eps ? eps : pr;
        pc = pc < eps ? eps : pc;
        psi += (pc - pr) * log(pc / pr);
        prev_r = rc;
        prev_c = cc;
    }
    out->psi = psi;
    return 0;
}
