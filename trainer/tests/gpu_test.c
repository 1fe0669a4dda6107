/* The CUDA backend against the CPU path: gradients of every layer for
 * softmax, MLP (classification) and linear regression models; one graph
 * step with SGD and with AdamW against the same update done on the host;
 * the loss and accuracy counters; the same without CUDA graphs.  Without a GPU (or without CUDA in
 * the build) it checks that --device cuda is refused with a clear message and skips (exit 77). */
#include "trainer/gpu.h"
#include "trainer/model.h"

#include "common/err.h"
#include "common/tests/ty_test.h"
#include "common/util.h"

#include <cblas.h>
#include <math.h>

/* Worst elementwise difference, relative to the element (or, for elements
 * near zero where float sums cancel, to a thousandth of the largest one). */
static double max_rel(const float *a, const float *b, size_t n) {
    double worst = 0, big = 0;
    for (size_t i = 0; i < n; i++)
        big = fmax(big, fabs((double)a[i]));
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) /
                   fmax(1e-3 * big + 1e-12, fabs((double)a[i]) + fabs((double)b[i]));
        worst = d > worst ? d : worst;
    }
    return worst;
}

/* ||a - b|| / ||a||: for parameters after AdamW steps, whose update
 * m / sqrt(v) turns the float noise of a near-zero gradient element into a
 * visible difference in that one element (seen on an H100: 1.2e-3 elementwise
 * after 4 steps, with the loss equal to 7 digits). */
static double norm_rel(const float *a, const float *b, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)a[i] * a[i];
    }
    return sqrt(d / (r > 0 ? r : 1));
}

static void fill(ty_model_t *m, size_t n, float *x, float *y, uint64_t seed) {
    uint32_t out = m->dims[m->nlayers];
    for (size_t i = 0; i < n * m->dims[0]; i++)
        x[i] = (float)ty_rng_normal(&seed);
    for (size_t i = 0; i < n; i++)
        y[i] = m->classify ? (float)(ty_rng_next(&seed) % out) : (float)ty_rng_normal(&seed);
}

/* GPU gradient == CPU gradient for n rows (n < batch: the tail case too). */
static void check_grad(ty_arch_t arch, int classify, const uint32_t *hidden, uint32_t nh,
                       size_t n) {
    ty_model_t *m = NULL;
    CHECK_EQ_INT(ty_model_create(&m, arch, classify, 23, classify ? 7 : 1, hidden, nh), 0);
    ty_model_init_params(m, 5);
    float *x = ty_xmalloc(n * 23 * sizeof(float)), *y = ty_xmalloc(n * sizeof(float));
    fill(m, n, x, y, 9);
    float *gc = ty_xcalloc(m->nparams, sizeof(float)), *gg = ty_xcalloc(m->nparams, sizeof(float));
    ty_ws_t *ws = ty_ws_create(m, n);
    double lc = ty_model_grad(m, ws, x, y, n, 0.5f, gc, NULL), lg = 0;
    ty_gpu_opts_t o = {.batch = 64};
    ty_gpu_t *g = NULL;
    char *err = NULL;
    float *zero = ty_xcalloc(m->nparams, sizeof(float));
    CHECK_EQ_INT(ty_gpu_create(&g, m, &o, &err), 0);
    CHECK_EQ_INT(ty_gpu_put_state(g, m->params, zero, zero, 0, &err), 0);
    CHECK_EQ_INT(ty_gpu_grad(g, x, y, n, 0.5f, gg, &lg, &err), 0);
    double r = max_rel(gc, gg, m->nparams);
    fprintf(stderr, "arch %d classify %d rows %zu: loss cpu %.6f gpu %.6f, grad max rel %.2g\n",
            arch, classify, n, lc, lg, r);
    CHECK(fabs(lc - lg) <= 1e-4 * fmax(1, fabs(lc)));
    CHECK(r < 1e-3);
    free(err);
    ty_gpu_destroy(&g);
    ty_ws_destroy(&ws);
    ty_model_destroy(&m);
    free(x), free(y), free(gc), free(gg), free(zero);
}

/* Four steps on rows picked by index against the host doing the same:
 * gather, gradient, update with per-step learning rates, counters.  With
 * graphs the first step warms up, the second captures, the last two replay. */
static void check_steps(int adam) {
    const size_t rows = 100, b = 16, steps = 4;
    uint32_t hidden[] = {12};
    ty_model_t *m = NULL;
    CHECK_EQ_INT(ty_model_create(&m, TY_ARCH_MLP, 1, 23, 4, hidden, 1), 0);
    ty_model_init_params(m, 3);
    size_t np = m->nparams;
    float *x = ty_xmalloc(rows * 23 * sizeof(float)), *y = ty_xmalloc(rows * sizeof(float));
    fill(m, rows, x, y, 11);
    uint32_t idx[64];
    for (size_t i = 0; i < steps * b; i++)
        idx[i] = (uint32_t)((i * 37 + 5) % rows);
    float lr[4] = {0.1f, 0.05f, 0.08f, 0.02f}, mom = 0.9f, wd = 0.01f;
    /* host reference */
    float *w = ty_xmalloc(np * sizeof(float)), *m1 = ty_xcalloc(np, sizeof(float)),
          *m2 = ty_xcalloc(np, sizeof(float)), *gr = ty_xmalloc(np * sizeof(float));
    float *xb = ty_xmalloc(b * 23 * sizeof(float)), *yb = ty_xmalloc(b * sizeof(float));
    memcpy(w, m->params, np * sizeof(float));
    ty_ws_t *ws = ty_ws_create(m, b);
    double loss_ref = 0;
    size_t right_ref = 0, nw0 = 23 * 12, nw1 = 12 * 4, off1 = nw0 + 12;
    for (size_t s = 0; s < steps; s++) {
        for (size_t i = 0; i < b; i++) {
            memcpy(xb + i * 23, x + idx[s * b + i] * 23, 23 * sizeof(float));
            yb[i] = y[idx[s * b + i]];
        }
        memset(gr, 0, np * sizeof(float));
        size_t right = 0;
        memcpy(m->params, w, np * sizeof(float));
        loss_ref += ty_model_grad(m, ws, xb, yb, b, 1.0f / b, gr, &right);
        right_ref += right;
        double t = (double)(s + 1);
        for (size_t i = 0; i < np; i++) {
            int decays = i < nw0 || (i >= off1 && i < off1 + nw1);
            float wdi = decays ? wd : 0;
            if (adam) {
                m1[i] = 0.9f * m1[i] + 0.1f * gr[i];
                m2[i] = 0.999f * m2[i] + 0.001f * gr[i] * gr[i];
                float ic1 = 1 / (float)(1 - pow(0.9f, t)), ic2 = 1 / (float)(1 - pow(0.999f, t));
                w[i] -= lr[s] * ((m1[i] * ic1) / (sqrtf(m2[i] * ic2) + 1e-8f) + wdi * w[i]);
            } else {
                m1[i] = mom * m1[i] + gr[i] + wdi * w[i];
                w[i] -= lr[s] * m1[i];
            }
        }
    }
    /* the GPU */
    ty_model_init_params(m, 3);
    float *zero = ty_xcalloc(np, sizeof(float)), *wg = ty_xmalloc(np * sizeof(float)),
          *m1g = ty_xmalloc(np * sizeof(float));
    ty_gpu_opts_t o = {.adam = adam, .momentum = mom, .weight_decay = wd, .batch = b};
    ty_gpu_t *g = NULL;
    char *err = NULL;
    double loss = 0, right = 0;
    CHECK_EQ_INT(ty_gpu_create(&g, m, &o, &err), 0);
    CHECK_EQ_INT(ty_gpu_set_data(g, x, y, rows, &err), 0);
    CHECK_EQ_INT(ty_gpu_put_state(g, m->params, zero, zero, 0, &err), 0);
    CHECK_EQ_INT(ty_gpu_run(g, idx, lr, steps, 1.0f / b, NULL, NULL, &loss, &right, &err), 0);
    CHECK_EQ_INT(ty_gpu_graphs(g), !getenv("TY_CUDA_GRAPHS")); /* no silent fallback */
    CHECK_EQ_INT(ty_gpu_get_state(g, wg, m1g, NULL, &err), 0);
    fprintf(stderr,
            "%s: loss %.6f vs %.6f, right %.0f vs %zu, params max rel %.2g, norm rel %.2g, "
            "first moment norm rel %.2g\n",
            adam ? "adamw" : "sgd", loss, loss_ref, right, right_ref, max_rel(w, wg, np),
            norm_rel(w, wg, np), norm_rel(m1, m1g, np));
    CHECK(fabs(loss - loss_ref) <= 1e-4 * fmax(1, loss_ref));
    CHECK(fabs(right - (double)right_ref) <= 1);
    CHECK(norm_rel(w, wg, np) < 1e-4); /* 3.3e-6 (AdamW) on an H100 */
    CHECK(norm_rel(m1, m1g, np) < 1e-4);
    if (!adam) /* SGD's update is linear in the gradient: each element agrees */
        CHECK(max_rel(w, wg, np) < 1e-3);
    /* a row index past the uploaded data is refused, not read */
    idx[3] = (uint32_t)rows;
    CHECK_EQ_INT(ty_gpu_run(g, idx, lr, 1, 1.0f / b, NULL, NULL, &loss, &right, &err), TY_EINVAL);
    CHECK_CONTAINS(err, "out of range");
    free(err);
    ty_gpu_destroy(&g);
    ty_ws_destroy(&ws);
    ty_model_destroy(&m);
    free(x), free(y), free(w), free(m1), free(m2), free(gr), free(xb), free(yb);
    free(zero), free(wg), free(m1g);
}

int main(void) {
    openblas_set_num_threads(1);
    ty_model_t *m = NULL;
    CHECK_EQ_INT(ty_model_create(&m, TY_ARCH_SOFTMAX, 1, 4, 3, NULL, 0), 0);
    ty_gpu_opts_t o = {.batch = 8};
    ty_gpu_t *g = NULL;
    char *err = NULL;
    int rc = ty_gpu_create(&g, m, &o, &err);
    ty_model_destroy(&m);
    if (rc == TY_ENOTSUP || rc == TY_ENODEV) {
        /* refused with a message that says what is missing */
        CHECK(g == NULL);
        CHECK_CONTAINS(err, "--device cuda");
        CHECK_CONTAINS(err, rc == TY_ENOTSUP ? "built without CUDA" : "no usable GPU");
        fprintf(stderr, "SKIP: %s\n", err);
        free(err);
        return ty_test_failures ? 1 : 77;
    }
    CHECK_EQ_INT(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "%s\n", err);
        free(err);
        TEST_DONE();
    }
    fprintf(stderr, "GPU: %s, %s\n", ty_gpu_name(g), ty_gpu_uuid(g));
    CHECK(strncmp(ty_gpu_uuid(g), "GPU-", 4) == 0 && strlen(ty_gpu_uuid(g)) == 40);
    ty_gpu_destroy(&g);
    uint32_t h2[] = {32, 16};
    check_grad(TY_ARCH_SOFTMAX, 1, NULL, 0, 64);
    check_grad(TY_ARCH_MLP, 1, h2, 2, 64);
    check_grad(TY_ARCH_MLP, 1, h2, 2, 37);
    check_grad(TY_ARCH_LINEAR, 0, NULL, 0, 50);
    check_grad(TY_ARCH_MLP, 0, h2, 1, 64);
    check_steps(0);
    check_steps(1);
    setenv("TY_CUDA_GRAPHS", "0", 1); /* the same steps launched kernel by kernel */
    check_steps(0);
    check_steps(1);
    unsetenv("TY_CUDA_GRAPHS");
    TEST_DONE();
}
