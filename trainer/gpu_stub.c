/* The CUDA backend's stand-in in builds without nvcc: every entry point
 * says so.  See gpu.h. */
#include "trainer/gpu.h"

#include "common/err.h"
#include "common/util.h"

static int ty_gpu_nosup(char **err) {
    if (err)
        *err = ty_xstrdup("--device cuda: this trainyard-train was built without CUDA (no nvcc "
                          "at build time, or -DTY_CUDA=OFF; see docs/trainer.md)");
    return TY_ENOTSUP;
}

int ty_gpu_create(ty_gpu_t **out, const ty_model_t *m, const ty_gpu_opts_t *o, char **err) {
    (void)m, (void)o;
    *out = NULL;
    return ty_gpu_nosup(err);
}
void ty_gpu_destroy(ty_gpu_t **g) {
    if (g)
        *g = NULL;
}
const char *ty_gpu_name(const ty_gpu_t *g) { return g ? "" : "none"; }
const char *ty_gpu_uuid(const ty_gpu_t *g) { return ty_gpu_name(g); }
int ty_gpu_graphs(const ty_gpu_t *g) {
    (void)g;
    return 0;
}
int ty_gpu_set_data(ty_gpu_t *g, const float *x, const float *y, size_t rows, char **err) {
    return ty_gpu_nosup(err);
}
int ty_gpu_put_state(ty_gpu_t *g, const float *params, const float *m1, const float *m2, uint64_t t,
                     char **err) {
    return ty_gpu_nosup(err);
}
int ty_gpu_get_state(ty_gpu_t *g, float *params, float *m1, float *m2, char **err) {
    return ty_gpu_nosup(err);
}
int ty_gpu_run(ty_gpu_t *g, const uint32_t *idx, const float *lr, size_t steps, float scale,
               ty_gpu_allreduce_fn allreduce, void *ctx, double *loss, double *right, char **err) {
    return ty_gpu_nosup(err);
}
int ty_gpu_grad(ty_gpu_t *g, const float *x, const float *y, size_t n, float scale, float *grad,
                double *loss, char **err) {
    return ty_gpu_nosup(err);
}
