/* Models of trainyard-train: softmax regression, linear regression and MLPs
 * (ReLU hidden layers), with their forward and backward passes on BLAS.
 *
 * Parameters live in one flat float array, layer after layer: W (in x out,
 * row-major) then b (out).  One flat array makes the gradient allreduce a
 * matter of a few buckets, and checkpoints a single write. */
#ifndef TY_TRAINER_MODEL_H
#define TY_TRAINER_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef enum { TY_ARCH_SOFTMAX, TY_ARCH_LINEAR, TY_ARCH_MLP } ty_arch_t;

typedef struct {
    uint32_t arch;     /* ty_arch_t */
    uint32_t classify; /* 1: softmax cross-entropy; 0: mean squared error */
    uint32_t nlayers;  /* weight layers */
    uint32_t *dims;    /* nlayers + 1: features, hidden..., outputs */
    uint32_t nclasses; /* classification: outputs; regression: 0 */
    size_t nparams;
    float *params;
    float *mean, *std; /* feature standardisation, dims[0] each */
    char **feature_names;
    char *target_name;
    char **class_names; /* nclasses names, or NULL: classes are known by index */
    /* training metadata */
    uint32_t epochs;
    uint64_t seed, samples;
    double loss, val_loss, val_accuracy;
} ty_model_t;

/* hidden: sizes of the hidden layers (MLP only). */
int ty_model_create(ty_model_t **out, ty_arch_t arch, int classify, uint32_t in, uint32_t out_dim,
                    const uint32_t *hidden, uint32_t nhidden);
void ty_model_destroy(ty_model_t **m);
/* He-uniform weights, zero biases, from a seeded generator. */
void ty_model_init_params(ty_model_t *m, uint64_t seed);
/* Offset of layer l's W (and its bias, right after it) in params. */
size_t ty_model_layer_offset(const ty_model_t *m, uint32_t l);

/* Scratch space for batches of up to max_rows. */
typedef struct ty_ws ty_ws_t;
ty_ws_t *ty_ws_create(const ty_model_t *m, size_t max_rows);
void ty_ws_destroy(ty_ws_t **ws);

/* Forward n rows of x; returns a pointer to n x outputs (probabilities when
 * classifying), valid until the next call. */
const float *ty_model_forward(const ty_model_t *m, ty_ws_t *ws, const float *x, size_t n);
/* Forward and backward: adds scale * d(sum of row losses)/d(params) to grad
 * and returns the sum of the row losses.  correct (optional) receives the
 * number of rows classified right. */
double ty_model_grad(const ty_model_t *m, ty_ws_t *ws, const float *x, const float *y, size_t n,
                     float scale, float *grad, size_t *correct);

/* Forward only: the sum of the row losses (and rows classified right). */
double ty_model_loss(const ty_model_t *m, ty_ws_t *ws, const float *x, const float *y, size_t n,
                     size_t *correct);

/* Model file (docs/model-format.md): versioned, CRC-32 checked. */
int ty_model_save(const ty_model_t *m, const char *path, char **err);
int ty_model_load(const char *path, ty_model_t **out, char **err);

/* Hot loops are compiled for AVX-512, AVX2 and baseline x86-64 and picked
 * at load time (ifunc), so one binary runs everywhere at full speed. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
#define TY_HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TY_HOT
#endif

/* Small deterministic generator (splitmix64). */
uint64_t ty_rng_next(uint64_t *s);
double ty_rng_uniform(uint64_t *s); /* [0, 1) */
double ty_rng_normal(uint64_t *s);

#endif
