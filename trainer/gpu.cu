/* CUDA backend: see gpu.h.  Row-major matrices throughout, as on the CPU;
 * cuBLAS is column-major, so each product is computed transposed:
 * row-major C = A B is column-major C^T = B^T A^T with the same buffers. */
#include "trainer/gpu.h"

extern "C" { /* C headers */
#include "common/err.h"
#include "common/util.h"
}

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TY_GPU_MAX_LAYERS 17
#define TY_THREADS 256

/* Device-side step state: the graph reads and advances it, so replaying the
 * same graph walks through the epoch. */
typedef struct {
    unsigned long long t; /* optimizer steps taken */
    unsigned int st;      /* step within this run */
    unsigned int pad;
    double loss;
    unsigned long long right;
} ty_gpu_ctr_t;

/* A captured part of the step.  Its first run is launched kernel by kernel
 * (a warm-up: cuBLAS picks its kernels and the driver loads them outside
 * capture), the second captures it, the rest replay it. */
typedef struct {
    cudaGraphExec_t exec;
    int warm;
    float scale; /* the gradient scale baked into exec (a cuBLAS alpha) */
} ty_graph_t;

struct ty_gpu {
    int dev;
    char name[300];
    char uuid[48];
    cudaStream_t s;
    cublasHandle_t h;
    void *ws;
    uint32_t L, classify, adam;
    uint32_t dims[TY_GPU_MAX_LAYERS + 1];
    size_t off[TY_GPU_MAX_LAYERS];
    float momentum, wd;
    size_t np, batch;
    float *params, *grad, *m1, *m2, *ones;
    unsigned char *decay;
    float *act[TY_GPU_MAX_LAYERS + 1]; /* act[0]: the gathered input rows */
    float *yb, *d1, *d2;
    float *X, *Y;
    size_t rows;
    uint32_t *idx;
    float *lr;
    size_t cap; /* steps idx and lr have room for */
    ty_gpu_ctr_t *ctr;
    float *hgrad; /* pinned host copy for the allreduce */
    ty_graph_t g_step, g_fb, g_opt;
    int eager; /* no graphs: TY_CUDA_GRAPHS=0, or capture failed */
};

/* ---- kernels ---- */

__global__ void ty_k_gather(const float *__restrict__ X, const float *__restrict__ Y,
                            const uint32_t *__restrict__ idx, const ty_gpu_ctr_t *c, uint32_t b,
                            uint32_t cols, float *__restrict__ xb, float *__restrict__ yb) {
    uint32_t i = blockIdx.x;
    uint32_t r = idx[(size_t)c->st * b + i];
    const float *src = X + (size_t)r * cols;
    float *dst = xb + (size_t)i * cols;
    for (uint32_t k = threadIdx.x; k < cols; k += blockDim.x)
        dst[k] = src[k];
    if (threadIdx.x == 0)
        yb[i] = Y[r];
}

/* z = relu(z + b) over n rows of d */
__global__ void ty_k_bias_relu(float *__restrict__ z, const float *__restrict__ b, size_t total,
                               uint32_t d) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < total) {
        float v = z[i] + b[i % d];
        z[i] = v > 0 ? v : 0.0f;
    }
}

/* Last layer: add the bias, softmax (classification), the loss and its
 * gradient dz (unscaled, as on the CPU), rows classified right.  One thread
 * per row; a warp-level sum, then one atomic per warp. */
__global__ void ty_k_loss(float *__restrict__ z, const float *__restrict__ b,
                          const float *__restrict__ y, uint32_t n, uint32_t d, uint32_t classify,
                          float *__restrict__ dz, ty_gpu_ctr_t *c) {
    uint32_t r = blockIdx.x * blockDim.x + threadIdx.x;
    double loss = 0;
    unsigned long long right = 0;
    if (r < n) {
        float *row = z + (size_t)r * d, *drow = dz ? dz + (size_t)r * d : NULL;
        if (classify) {
            float mx = -INFINITY, sum = 0;
            for (uint32_t k = 0; k < d; k++) {
                row[k] += b[k];
                mx = fmaxf(mx, row[k]);
            }
            for (uint32_t k = 0; k < d; k++)
                sum += (row[k] = expf(row[k] - mx));
            uint32_t label = (uint32_t)y[r], best = 0;
            for (uint32_t k = 0; k < d; k++) {
                row[k] /= sum;
                if (row[k] > row[best])
                    best = k;
                if (drow)
                    drow[k] = row[k] - (k == label ? 1.0f : 0.0f);
            }
            float p = label < d ? row[label] : 0.0f;
            loss = -log((double)(p > 1e-30f ? p : 1e-30f));
            right = best == label;
        } else {
            for (uint32_t k = 0; k < d; k++) {
                row[k] += b[k];
                float e = row[k] - y[r];
                if (drow)
                    drow[k] = 2 * e;
                loss += (double)e * e;
            }
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        loss += __shfl_down_sync(0xffffffffu, loss, o);
        right += __shfl_down_sync(0xffffffffu, right, o);
    }
    if ((threadIdx.x & 31) == 0 && (loss != 0 || right != 0)) {
        atomicAdd(&c->loss, loss);
        atomicAdd(&c->right, right);
    }
}

/* da *= (a > 0) */
__global__ void ty_k_relu_mask(float *__restrict__ da, const float *__restrict__ a, size_t total) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < total && !(a[i] > 0))
        da[i] = 0.0f;
}

/* SGD with momentum or AdamW over all parameters; weight decay where
 * decay[i] (weights, not biases).  Same arithmetic as the CPU path. */
__global__ void ty_k_update(float *__restrict__ w, const float *__restrict__ g,
                            float *__restrict__ m1, float *__restrict__ m2,
                            const unsigned char *__restrict__ decay, size_t n,
                            const float *__restrict__ lrs, const ty_gpu_ctr_t *c, uint32_t adam,
                            float mu, float wd) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    float lr = lrs[c->st], wdi = decay[i] ? wd : 0.0f;
    if (adam) {
        const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
        double t = (double)(c->t + 1);
        float ic1 = 1 / (float)(1 - pow((double)b1, t)), ic2 = 1 / (float)(1 - pow((double)b2, t));
        m1[i] = b1 * m1[i] + (1 - b1) * g[i];
        m2[i] = b2 * m2[i] + (1 - b2) * g[i] * g[i];
        w[i] -= lr * ((m1[i] * ic1) / (sqrtf(m2[i] * ic2) + eps) + wdi * w[i]);
    } else {
        m1[i] = mu * m1[i] + g[i] + wdi * w[i];
        w[i] -= lr * m1[i];
    }
}

__global__ void ty_k_advance(ty_gpu_ctr_t *c) {
    c->st++;
    c->t++;
}

/* ---- errors ---- */

static int ty_cu_fail(cudaError_t e, const char *what, char **err) {
    if (err && !*err)
        *err = ty_xasprintf("CUDA: %s: %s", what, cudaGetErrorString(e));
    return TY_EIO;
}
static int ty_blas_fail(cublasStatus_t e, const char *what, char **err) {
    if (err && !*err)
        *err = ty_xasprintf("cuBLAS: %s: %s", what, cublasGetStatusString(e));
    return TY_EIO;
}
#define CU(call, what)                                                                             \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return ty_cu_fail(e_, what, err);                                                      \
    } while (0)
#define BL(call, what)                                                                             \
    do {                                                                                           \
        cublasStatus_t e_ = (call);                                                                \
        if (e_ != CUBLAS_STATUS_SUCCESS)                                                           \
            return ty_blas_fail(e_, what, err);                                                    \
    } while (0)

static unsigned ty_blocks(size_t n) { return (unsigned)((n + TY_THREADS - 1) / TY_THREADS); }

/* ---- the step, issued on g->s (recorded into a graph or run directly) ---- */

/* Forward and backward over n rows in act[0] / yb. */
static int ty_gpu_issue_fb(ty_gpu_t *g, size_t n, float scale, char **err) {
    const float one = 1.0f, zero = 0.0f;
    int N = (int)n;
    for (uint32_t l = 0; l < g->L; l++) {
        int din = (int)g->dims[l], dout = (int)g->dims[l + 1];
        const float *w = g->params + g->off[l], *b = w + (size_t)din * dout;
        float *z = g->act[l + 1];
        /* Z^T = W^T A^T */
        BL(cublasSgemm(g->h, CUBLAS_OP_N, CUBLAS_OP_N, dout, N, din, &one, w, dout, g->act[l], din,
                       &zero, z, dout),
           "forward gemm");
        if (l + 1 < g->L)
            ty_k_bias_relu<<<ty_blocks(n * dout), TY_THREADS, 0, g->s>>>(z, b, n * dout, dout);
        else
            ty_k_loss<<<ty_blocks(n), TY_THREADS, 0, g->s>>>(z, b, g->yb, (uint32_t)n, dout,
                                                             g->classify, g->d1, g->ctr);
    }
    float *dz = g->d1;
    for (uint32_t l = g->L; l-- > 0;) {
        int din = (int)g->dims[l], dout = (int)g->dims[l + 1];
        const float *w = g->params + g->off[l];
        float *gw = g->grad + g->off[l], *gb = gw + (size_t)din * dout;
        /* dW^T = scale dZ^T A ; db = scale dZ^T 1 */
        BL(cublasSgemm(g->h, CUBLAS_OP_N, CUBLAS_OP_T, dout, din, N, &scale, dz, dout, g->act[l],
                       din, &zero, gw, dout),
           "weight gradient gemm");
        BL(cublasSgemv(g->h, CUBLAS_OP_N, dout, N, &scale, dz, dout, g->ones, 1, &zero, gb, 1),
           "bias gradient gemv");
        if (l == 0)
            break;
        /* dA^T = W dZ^T, then through the ReLU */
        float *da = dz == g->d1 ? g->d2 : g->d1;
        BL(cublasSgemm(g->h, CUBLAS_OP_T, CUBLAS_OP_N, din, N, dout, &one, w, dout, dz, dout, &zero,
                       da, din),
           "input gradient gemm");
        ty_k_relu_mask<<<ty_blocks(n * din), TY_THREADS, 0, g->s>>>(da, g->act[l], n * din);
        dz = da;
    }
    CU(cudaGetLastError(), "kernel launch");
    return 0;
}

static int ty_gpu_issue_update(ty_gpu_t *g, char **err) {
    ty_k_update<<<ty_blocks(g->np), TY_THREADS, 0, g->s>>>(g->params, g->grad, g->m1, g->m2,
                                                           g->decay, g->np, g->lr, g->ctr, g->adam,
                                                           g->momentum, g->wd);
    ty_k_advance<<<1, 1, 0, g->s>>>(g->ctr);
    CU(cudaGetLastError(), "kernel launch");
    return 0;
}

static int ty_gpu_issue_gather(ty_gpu_t *g, char **err) {
    ty_k_gather<<<(unsigned)g->batch, 128, 0, g->s>>>(
        g->X, g->Y, g->idx, g->ctr, (uint32_t)g->batch, g->dims[0], g->act[0], g->yb);
    CU(cudaGetLastError(), "kernel launch");
    return 0;
}

typedef int (*ty_issue_fn)(ty_gpu_t *g, float scale, char **err);

/* gather, forward, backward: the graph before the gradient sum */
static int ty_issue_fb(ty_gpu_t *g, float scale, char **err) {
    int rc = ty_gpu_issue_gather(g, err);
    return rc ? rc : ty_gpu_issue_fb(g, g->batch, scale, err);
}
/* the whole step, when there is no sum between ranks */
static int ty_issue_step(ty_gpu_t *g, float scale, char **err) {
    int rc = ty_issue_fb(g, scale, err);
    return rc ? rc : ty_gpu_issue_update(g, err);
}
static int ty_issue_update(ty_gpu_t *g, float scale, char **err) {
    (void)scale;
    return ty_gpu_issue_update(g, err);
}

/* Captures what fn issues into an instantiated graph. */
static int ty_capture(ty_gpu_t *g, ty_issue_fn fn, float scale, cudaGraphExec_t *out, char **err) {
    CU(cudaStreamBeginCapture(g->s, cudaStreamCaptureModeThreadLocal), "begin capture");
    int rc = fn(g, scale, err);
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(g->s, &graph);
    if (rc != 0 || e != cudaSuccess) {
        if (graph)
            cudaGraphDestroy(graph);
        return rc != 0 ? rc : ty_cu_fail(e, "end capture", err);
    }
    e = cudaGraphInstantiate(out, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess)
        return ty_cu_fail(e, "instantiate graph", err);
    return 0;
}

/* ---- lifecycle ---- */

/* Every copy goes through the step stream (non-blocking: it never waits on
 * the legacy stream, which stream capture forbids touching) and is complete
 * on return. */
static cudaError_t ty_copy(ty_gpu_t *g, void *dst, const void *src, size_t n) {
    cudaError_t e = cudaMemcpyAsync(dst, src, n, cudaMemcpyDefault, g->s);
    return e != cudaSuccess ? e : cudaStreamSynchronize(g->s);
}

/* Graphs bake in buffer addresses: drop them when a buffer moves. */
static void ty_gpu_drop_graphs(ty_gpu_t *g) {
    ty_graph_t *gr[3] = {&g->g_step, &g->g_fb, &g->g_opt};
    for (int i = 0; i < 3; i++)
        if (gr[i]->exec) {
            cudaGraphExecDestroy(gr[i]->exec);
            gr[i]->exec = NULL;
        }
}

static int ty_gpu_init(ty_gpu_t *g, const ty_gpu_opts_t *o, char **err) {
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess || ndev == 0) {
        *err =
            ty_xasprintf("--device cuda: no usable GPU (%s; CUDA_VISIBLE_DEVICES=%s)",
                         e != cudaSuccess ? cudaGetErrorString(e) : "no devices",
                         getenv("CUDA_VISIBLE_DEVICES") ? getenv("CUDA_VISIBLE_DEVICES") : "unset");
        return TY_ENODEV;
    }
    g->dev = (o->local_rank < 0 ? 0 : o->local_rank) % ndev;
    CU(cudaSetDevice(g->dev), "set device");
    cudaDeviceProp p;
    CU(cudaGetDeviceProperties(&p, g->dev), "device properties");
    snprintf(g->name, sizeof g->name, "%s (device %d of %d)", p.name, g->dev, ndev);
    const unsigned char *u = (const unsigned char *)p.uuid.bytes;
    int n = snprintf(g->uuid, sizeof g->uuid, "GPU-");
    for (int i = 0; i < 16; i++)
        n += snprintf(g->uuid + n, sizeof g->uuid - (size_t)n, "%s%02x",
                      i == 4 || i == 6 || i == 8 || i == 10 ? "-" : "", u[i]);
    CU(cudaStreamCreateWithFlags(&g->s, cudaStreamNonBlocking), "create stream");
    BL(cublasCreate(&g->h), "create handle");
    BL(cublasSetStream(g->h, g->s), "set stream");
    /* a fixed workspace: graph replays never allocate */
    size_t wsz = 32u << 20;
    CU(cudaMalloc(&g->ws, wsz), "workspace");
    BL(cublasSetWorkspace(g->h, g->ws, wsz), "set workspace");
    BL(cublasSetMathMode(g->h, CUBLAS_DEFAULT_MATH), "math mode"); /* FP32, no TF32 */

    size_t widest = 0, b = o->batch;
    for (uint32_t l = 0; l <= g->L; l++) {
        widest = g->dims[l] > widest ? g->dims[l] : widest;
        CU(cudaMalloc(&g->act[l], b * g->dims[l] * sizeof(float)), "activations");
    }
    CU(cudaMalloc(&g->yb, b * sizeof(float)), "targets");
    CU(cudaMalloc(&g->d1, b * widest * sizeof(float)), "gradients");
    CU(cudaMalloc(&g->d2, b * widest * sizeof(float)), "gradients");
    CU(cudaMalloc(&g->ones, b * sizeof(float)), "ones");
    float *h1 = (float *)ty_xmalloc(b * sizeof(float));
    for (size_t i = 0; i < b; i++)
        h1[i] = 1.0f;
    e = ty_copy(g, g->ones, h1, b * sizeof(float));
    free(h1);
    CU(e, "copy ones");
    size_t nb = g->np * sizeof(float);
    CU(cudaMalloc(&g->params, nb), "parameters");
    CU(cudaMalloc(&g->grad, nb), "gradient");
    CU(cudaMalloc(&g->m1, nb), "optimizer state");
    CU(cudaMalloc(&g->m2, nb), "optimizer state");
    CU(cudaMemsetAsync(g->m1, 0, nb, g->s), "clear");
    CU(cudaMemsetAsync(g->m2, 0, nb, g->s), "clear");
    CU(cudaMallocHost(&g->hgrad, nb), "pinned gradient");
    CU(cudaMalloc(&g->ctr, sizeof(ty_gpu_ctr_t)), "counters");
    CU(cudaMemsetAsync(g->ctr, 0, sizeof(ty_gpu_ctr_t), g->s), "clear");
    unsigned char *hd = (unsigned char *)ty_xcalloc(g->np, 1);
    for (uint32_t l = 0; l < g->L; l++)
        memset(hd + g->off[l], 1, (size_t)g->dims[l] * g->dims[l + 1]);
    CU(cudaMalloc(&g->decay, g->np), "decay mask");
    e = ty_copy(g, g->decay, hd, g->np);
    free(hd);
    CU(e, "copy decay mask");
    return 0;
}

extern "C" int ty_gpu_create(ty_gpu_t **out, const ty_model_t *m, const ty_gpu_opts_t *o,
                             char **err) {
    *out = NULL;
    if (m->nlayers > TY_GPU_MAX_LAYERS || o->batch == 0) {
        *err = ty_xasprintf("--device cuda: at most %d layers and a batch of at least one row",
                            TY_GPU_MAX_LAYERS);
        return TY_EINVAL;
    }
    ty_gpu_t *g = (ty_gpu_t *)ty_xcalloc(1, sizeof *g);
    g->L = m->nlayers;
    g->classify = m->classify;
    g->adam = (uint32_t)o->adam;
    g->momentum = o->momentum;
    g->wd = o->weight_decay;
    g->np = m->nparams;
    g->batch = o->batch;
    const char *graphs = getenv("TY_CUDA_GRAPHS");
    g->eager = graphs && strcmp(graphs, "0") == 0;
    for (uint32_t l = 0; l <= g->L; l++)
        g->dims[l] = m->dims[l];
    for (uint32_t l = 0; l < g->L; l++)
        g->off[l] = ty_model_layer_offset(m, l);
    int rc = ty_gpu_init(g, o, err);
    if (rc != 0) {
        ty_gpu_destroy(&g);
        return rc;
    }
    *out = g;
    return 0;
}

extern "C" void ty_gpu_destroy(ty_gpu_t **pg) {
    ty_gpu_t *g = pg ? *pg : NULL;
    if (!g)
        return;
    if (g->s)
        cudaStreamSynchronize(g->s);
    ty_gpu_drop_graphs(g);
    if (g->h)
        cublasDestroy(g->h);
    void *bufs[] = {g->ws, g->params, g->grad, g->m1, g->m2,  g->ones, g->decay, g->yb,
                    g->d1, g->d2,     g->X,    g->Y,  g->idx, g->lr,   g->ctr};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            cudaFree(bufs[i]);
    for (uint32_t l = 0; l <= g->L; l++)
        if (g->act[l])
            cudaFree(g->act[l]);
    if (g->hgrad)
        cudaFreeHost(g->hgrad);
    if (g->s)
        cudaStreamDestroy(g->s);
    free(g);
    *pg = NULL;
}

extern "C" const char *ty_gpu_name(const ty_gpu_t *g) { return g->name; }
extern "C" const char *ty_gpu_uuid(const ty_gpu_t *g) { return g->uuid; }
extern "C" int ty_gpu_graphs(const ty_gpu_t *g) { return !g->eager; }

extern "C" int ty_gpu_set_data(ty_gpu_t *g, const float *x, const float *y, size_t rows,
                               char **err) {
    size_t xb = rows * g->dims[0] * sizeof(float);
    ty_gpu_drop_graphs(g);
    if (g->X)
        cudaFree(g->X);
    if (g->Y)
        cudaFree(g->Y);
    g->X = g->Y = NULL;
    cudaError_t e = cudaMalloc(&g->X, xb ? xb : 4);
    if (e != cudaSuccess) {
        *err = ty_xasprintf("--device cuda: the training shard (%.0f MiB) does not fit in GPU "
                            "memory: %s",
                            (double)xb / (1 << 20), cudaGetErrorString(e));
        return TY_EIO;
    }
    CU(cudaMalloc(&g->Y, rows ? rows * sizeof(float) : 4), "targets");
    CU(ty_copy(g, g->X, x, xb), "copy rows");
    CU(ty_copy(g, g->Y, y, rows * sizeof(float)), "copy targets");
    g->rows = rows;
    return 0;
}

extern "C" int ty_gpu_put_state(ty_gpu_t *g, const float *params, const float *m1, const float *m2,
                                uint64_t t, char **err) {
    size_t nb = g->np * sizeof(float);
    CU(ty_copy(g, g->params, params, nb), "copy parameters");
    CU(ty_copy(g, g->m1, m1, nb), "copy optimizer state");
    CU(ty_copy(g, g->m2, m2, nb), "copy optimizer state");
    ty_gpu_ctr_t c = {};
    c.t = t;
    CU(ty_copy(g, g->ctr, &c, sizeof c), "copy counters");
    return 0;
}

extern "C" int ty_gpu_get_state(ty_gpu_t *g, float *params, float *m1, float *m2, char **err) {
    size_t nb = g->np * sizeof(float);
    CU(cudaStreamSynchronize(g->s), "synchronize");
    CU(ty_copy(g, params, g->params, nb), "copy parameters");
    if (m1)
        CU(ty_copy(g, m1, g->m1, nb), "copy optimizer state");
    if (m2)
        CU(ty_copy(g, m2, g->m2, nb), "copy optimizer state");
    return 0;
}

/* Zeroes the run counters (step, loss, right) and returns the old ones. */
static int ty_gpu_take_ctr(ty_gpu_t *g, ty_gpu_ctr_t *old, char **err) {
    CU(cudaStreamSynchronize(g->s), "synchronize");
    CU(ty_copy(g, old, g->ctr, sizeof *old), "read counters");
    ty_gpu_ctr_t c = {};
    c.t = old->t;
    CU(ty_copy(g, g->ctr, &c, sizeof c), "reset counters");
    return 0;
}

/* Runs what fn issues: as a graph (warmed up once, then captured), or
 * launch by launch when graphs are off (TY_CUDA_GRAPHS=0) or capture failed,
 * which is said once: slower, but the same arithmetic. */
static int ty_gpu_play(ty_gpu_t *g, ty_issue_fn fn, float scale, ty_graph_t *gr, char **err) {
    if (!g->eager && !gr->warm) {
        gr->warm = 1;
        return fn(g, scale, err);
    }
    if (gr->exec && gr->scale != scale) { /* another global batch: capture again */
        cudaGraphExecDestroy(gr->exec);
        gr->exec = NULL;
    }
    if (!g->eager && !gr->exec) {
        char *why = NULL;
        gr->scale = scale;
        if (ty_capture(g, fn, scale, &gr->exec, &why) != 0) {
            fprintf(stderr, "trainyard-train: no CUDA graph (%s): launching kernel by kernel\n",
                    why);
            free(why);
            cudaGetLastError(); /* clear it */
            gr->exec = NULL;
            g->eager = 1;
        }
    }
    if (g->eager)
        return fn(g, scale, err);
    CU(cudaGraphLaunch(gr->exec, g->s), "launch graph");
    return 0;
}

extern "C" int ty_gpu_run(ty_gpu_t *g, const uint32_t *idx, const float *lr, size_t steps,
                          float scale, ty_gpu_allreduce_fn allreduce, void *ctx, double *loss,
                          double *right, char **err) {
    for (size_t i = 0; i < steps * g->batch; i++)
        if (idx[i] >= g->rows) {
            *err = ty_xasprintf("--device cuda: row %u out of range", idx[i]);
            return TY_EINVAL;
        }
    if (steps > g->cap) {
        if (g->idx)
            cudaFree(g->idx);
        if (g->lr)
            cudaFree(g->lr);
        g->idx = NULL;
        g->lr = NULL;
        CU(cudaMalloc(&g->idx, steps * g->batch * sizeof(uint32_t)), "row indexes");
        CU(cudaMalloc(&g->lr, steps * sizeof(float)), "learning rates");
        g->cap = steps;
        ty_gpu_drop_graphs(g); /* they hold the old pointers */
    }
    CU(ty_copy(g, g->idx, idx, steps * g->batch * sizeof(uint32_t)), "copy row indexes");
    CU(ty_copy(g, g->lr, lr, steps * sizeof(float)), "copy learning rates");
    int rc;
    if (!allreduce) {
        for (size_t s = 0; s < steps; s++)
            if ((rc = ty_gpu_play(g, ty_issue_step, scale, &g->g_step, err)) != 0)
                return rc;
    } else {
        size_t nb = g->np * sizeof(float);
        for (size_t s = 0; s < steps; s++) {
            if ((rc = ty_gpu_play(g, ty_issue_fb, scale, &g->g_fb, err)) != 0)
                return rc;
            CU(cudaMemcpyAsync(g->hgrad, g->grad, nb, cudaMemcpyDeviceToHost, g->s),
               "copy gradient");
            CU(cudaStreamSynchronize(g->s), "synchronize");
            allreduce(ctx, g->hgrad, g->np);
            CU(cudaMemcpyAsync(g->grad, g->hgrad, nb, cudaMemcpyHostToDevice, g->s),
               "copy gradient");
            if ((rc = ty_gpu_play(g, ty_issue_update, scale, &g->g_opt, err)) != 0)
                return rc;
        }
    }
    ty_gpu_ctr_t c;
    if ((rc = ty_gpu_take_ctr(g, &c, err)) != 0)
        return rc;
    if (c.st != steps) {
        *err = ty_xasprintf("--device cuda: %u of %zu steps ran", c.st, steps);
        return TY_EIO;
    }
    *loss += c.loss;
    *right += (double)c.right;
    return 0;
}

extern "C" int ty_gpu_grad(ty_gpu_t *g, const float *x, const float *y, size_t n, float scale,
                           float *grad, double *loss, char **err) {
    if (n == 0 || n > g->batch) {
        *err = ty_xasprintf("ty_gpu_grad: 1 to %zu rows, not %zu", g->batch, n);
        return TY_EINVAL;
    }
    CU(ty_copy(g, g->act[0], x, n * g->dims[0] * sizeof(float)), "copy rows");
    CU(ty_copy(g, g->yb, y, n * sizeof(float)), "copy targets");
    int rc = ty_gpu_issue_fb(g, n, scale, err);
    if (rc != 0)
        return rc;
    ty_gpu_ctr_t c;
    if ((rc = ty_gpu_take_ctr(g, &c, err)) != 0)
        return rc;
    CU(ty_copy(g, grad, g->grad, g->np * sizeof(float)), "copy gradient");
    *loss = c.loss;
    return 0;
}
