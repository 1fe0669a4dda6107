/* The parts of one training step of the Fashion-MNIST MLP (784-128-64-10,
 * random data), timed in isolation: the gradient of a 256-row batch (what
 * one rank computes) and of 128 rows (each of 2 ranks' share), the SGD
 * update with the fused gradient add, and zeroing the gradient.  The last
 * two do not shrink with more ranks.  With --copies N it runs N copies at
 * once (forked, started together), which shows whether this machine's cores
 * slow each other down: 2 ranks can only be 2x one if 2 copies run each as
 * fast as 1.  One JSON line per copy, microseconds (median and minimum).
 *
 * Built with the release preset (build/release/trainer/bench_step_cost); run
 * with OPENBLAS_NUM_THREADS=1 and, on CPUs newer than Debian's OpenBLAS,
 * OPENBLAS_CORETYPE (bench_trainer.py prints the one it uses). */
#include "trainer/model.h"

#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REPS 300

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void put(const char *name, double *t, int last) {
    qsort(t, REPS, sizeof *t, cmp);
    printf("\"%s\": {\"median\": %.1f, \"min\": %.1f}%s", name, t[REPS / 2], t[0],
           last ? "" : ", ");
}

/* as trainer/train.c's SGD with momentum, compiled the same way */
TY_HOT static void sgd(float *restrict w, float *restrict m1, const float *restrict g,
                       const float *restrict peer, size_t n) {
    for (size_t i = 0; i < n; i++) {
        m1[i] = 0.9f * m1[i] + (g[i] + peer[i]);
        w[i] -= 1e-9f * m1[i];
    }
}

static void measure(int copy, int copies) {
    ty_model_t *m = NULL;
    uint32_t hidden[2] = {128, 64};
    if (ty_model_create(&m, TY_ARCH_MLP, 1, 784, 10, hidden, 2) != 0)
        exit(1);
    ty_model_init_params(m, 1);
    size_t np = m->nparams, n = 256;
    float *x = ty_xmalloc(n * 784 * sizeof(float)), *y = ty_xmalloc(n * sizeof(float));
    float *g = ty_xcalloc(np, sizeof(float)), *peer = ty_xcalloc(np, sizeof(float)),
          *m1 = ty_xcalloc(np, sizeof(float));
    uint64_t s = 3 + (uint64_t)copy;
    for (size_t i = 0; i < n * 784; i++)
        x[i] = (float)ty_rng_normal(&s);
    for (size_t i = 0; i < n; i++)
        y[i] = (float)(i % 10);
    ty_ws_t *ws = ty_ws_create(m, n);
    static double t256[REPS], t128[REPS], tupd[REPS], tzero[REPS];
    for (int r = -20; r < REPS; r++) { /* 20 warm-up rounds */
        double t0 = now_us();
        ty_model_grad(m, ws, x, y, 256, 1.0f / 256, g, NULL);
        double t1 = now_us();
        ty_model_grad(m, ws, x, y, 128, 1.0f / 256, g, NULL);
        double t2 = now_us();
        sgd(m->params, m1, g, peer, np);
        double t3 = now_us();
        memset(g, 0, np * sizeof(float));
        double t4 = now_us();
        if (r >= 0)
            t256[r] = t1 - t0, t128[r] = t2 - t1, tupd[r] = t3 - t2, tzero[r] = t4 - t3;
    }
    printf("{\"copies\": %d, \"copy\": %d, ", copies, copy);
    put("grad_256_us", t256, 0);
    put("grad_128_us", t128, 0);
    put("update_us", tupd, 0);
    put("zero_us", tzero, 1);
    printf("}\n");
    fflush(stdout);
    ty_ws_destroy(&ws);
    ty_model_destroy(&m);
    free(x), free(y), free(g), free(peer), free(m1);
}

int main(int argc, char **argv) {
    int copies = argc == 3 && strcmp(argv[1], "--copies") == 0 ? atoi(argv[2]) : 1;
    if (argc != 1 && (argc != 3 || copies < 1 || copies > 64)) {
        fprintf(stderr, "usage: bench_step_cost [--copies N]\n");
        return 2;
    }
    int go[2];
    if (pipe(go) != 0)
        return 1;
    for (int c = 1; c < copies; c++)
        if (fork() == 0) {
            char b;
            close(go[1]);
            if (read(go[0], &b, 1) < 0) /* EOF: all started */
                _exit(1);
            measure(c, copies);
            _exit(0);
        }
    close(go[0]);
    close(go[1]);
    measure(0, copies);
    while (wait(NULL) > 0)
        ;
    return 0;
}
