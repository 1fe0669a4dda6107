/* CUDA backend of trainyard-train (`fit --device cuda`).
 *
 * The rank's whole training shard, the parameters, the gradient and the
 * optimizer state live on one GPU.  One training step (gather the batch
 * rows, forward with cuBLAS, fused softmax/loss kernel, backward with
 * cuBLAS, fused optimizer update) is captured once as a CUDA graph and
 * replayed, so a step costs one launch instead of twenty.  Which rows each
 * step takes and each step's learning rate are computed on the host, exactly
 * as on the CPU, and uploaded once per epoch.  With several ranks the graph
 * is cut in two around the gradient sum, which the caller does (MPI).
 *
 * Built from gpu.cu when nvcc is found (CMake option TY_CUDA); otherwise
 * gpu_stub.c answers TY_ENOTSUP with a message saying so. */
#ifndef TY_TRAINER_GPU_H
#define TY_TRAINER_GPU_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "trainer/model.h"

typedef struct ty_gpu ty_gpu_t;

typedef struct {
    int adam;
    float momentum, weight_decay;
    size_t batch;   /* rows per step on this rank */
    int local_rank; /* picks the device: local_rank % visible devices */
} ty_gpu_opts_t;

/* Sum the gradient over the ranks, in place, on the host (ctx: the
 * caller's, passed through). */
typedef void (*ty_gpu_allreduce_fn)(void *ctx, float *grad, size_t n);

/* Returns 0, or TY_ENOTSUP (no CUDA in this build) / TY_ENODEV (no usable
 * GPU) / TY_EIO (a CUDA or cuBLAS failure) with *err set. */
int ty_gpu_create(ty_gpu_t **out, const ty_model_t *m, const ty_gpu_opts_t *o, char **err);
void ty_gpu_destroy(ty_gpu_t **g);
/* "NVIDIA H100 80GB HBM3 (device 0)" */
const char *ty_gpu_name(const ty_gpu_t *g);
/* The GPU's UUID ("GPU-8a1f..."): the same physical GPU under any
 * CUDA_VISIBLE_DEVICES numbering, so ranks can tell that they share one. */
const char *ty_gpu_uuid(const ty_gpu_t *g);
/* 1 while steps replay CUDA graphs; 0 when launched kernel by kernel
 * (TY_CUDA_GRAPHS=0, or capture failed). */
int ty_gpu_graphs(const ty_gpu_t *g);

/* Copies the training rows (rows x cols, row-major) and targets to the GPU. */
int ty_gpu_set_data(ty_gpu_t *g, const float *x, const float *y, size_t rows, char **err);
/* Parameters and optimizer state in (t: optimizer steps taken so far) and out. */
int ty_gpu_put_state(ty_gpu_t *g, const float *params, const float *m1, const float *m2, uint64_t t,
                     char **err);
int ty_gpu_get_state(ty_gpu_t *g, float *params, float *m1, float *m2, char **err);

/* Runs `steps` optimizer steps: step s uses data rows idx[s*batch ..
 * (s+1)*batch) and learning rate lr[s]; gradients are scaled by `scale`
 * (1 / global batch).  allreduce(ctx, ...) is called between backward and
 * update when not NULL.  Adds the summed row losses and rows classified
 * right. */
int ty_gpu_run(ty_gpu_t *g, const uint32_t *idx, const float *lr, size_t steps, float scale,
               ty_gpu_allreduce_fn allreduce, void *ctx, double *loss, double *right, char **err);

/* One forward and backward pass over n <= batch host rows: grad (nparams,
 * host) receives scale * d(sum of losses)/d(params); returns the loss sum in
 * *loss.  For tests against the CPU path. */
int ty_gpu_grad(ty_gpu_t *g, const float *x, const float *y, size_t n, float scale, float *grad,
                double *loss, char **err);

#ifdef __cplusplus
}
#endif

#endif
