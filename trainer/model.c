#include "trainer/model.h"

#include "common/err.h"
#include "common/util.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

uint64_t ty_rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double ty_rng_uniform(uint64_t *s) { return (double)(ty_rng_next(s) >> 11) * 0x1.0p-53; }

double ty_rng_normal(uint64_t *s) {
    double u = ty_rng_uniform(s), v = ty_rng_uniform(s);
    return sqrt(-2.0 * log(u > 0 ? u : 1e-300)) * cos(2 * M_PI * v);
}

int ty_model_create(ty_model_t **out, ty_arch_t arch, int classify, uint32_t in, uint32_t out_dim,
                    const uint32_t *hidden, uint32_t nhidden) {
    if (in == 0 || out_dim == 0 || (arch != TY_ARCH_MLP && nhidden))
        return TY_EINVAL;
    ty_model_t *m = ty_xcalloc(1, sizeof *m);
    m->arch = arch;
    m->classify = classify != 0;
    m->nlayers = nhidden + 1;
    m->dims = ty_xcalloc(m->nlayers + 1, sizeof *m->dims);
    m->dims[0] = in;
    for (uint32_t i = 0; i < nhidden; i++) {
        if (hidden[i] == 0) {
            free(m->dims);
            free(m);
            return TY_EINVAL;
        }
        m->dims[i + 1] = hidden[i];
    }
    m->dims[m->nlayers] = out_dim;
    m->nclasses = classify ? out_dim : 0;
    for (uint32_t l = 0; l < m->nlayers; l++)
        m->nparams += (size_t)m->dims[l] * m->dims[l + 1] + m->dims[l + 1];
    m->params = ty_xcalloc(m->nparams, sizeof(float));
    m->mean = ty_xcalloc(in, sizeof(float));
    m->std = ty_xcalloc(in, sizeof(float));
    for (uint32_t i = 0; i < in; i++)
        m->std[i] = 1;
    *out = m;
    return 0;
}

void ty_model_destroy(ty_model_t **pm) {
    ty_model_t *m = pm ? *pm : NULL;
    if (!m)
        return;
    for (uint32_t i = 0; m->feature_names && i < m->dims[0]; i++)
        free(m->feature_names[i]);
    free(m->feature_names);
    for (uint32_t i = 0; m->class_names && i < m->nclasses; i++)
        free(m->class_names[i]);
    free(m->class_names);
    free(m->target_name);
    free(m->dims);
    free(m->params);
    free(m->mean);
    free(m->std);
    free(m);
    *pm = NULL;
}

size_t ty_model_layer_offset(const ty_model_t *m, uint32_t l) {
    size_t off = 0;
    for (uint32_t i = 0; i < l; i++)
        off += (size_t)m->dims[i] * m->dims[i + 1] + m->dims[i + 1];
    return off;
}

void ty_model_init_params(ty_model_t *m, uint64_t seed) {
    uint64_t s = seed ^ 0x5eedULL;
    for (uint32_t l = 0; l < m->nlayers; l++) {
        float *w = m->params + ty_model_layer_offset(m, l);
        size_t nw = (size_t)m->dims[l] * m->dims[l + 1];
        double limit = sqrt(6.0 / m->dims[l]); /* He uniform */
        for (size_t i = 0; i < nw; i++)
            w[i] = (float)((2 * ty_rng_uniform(&s) - 1) * limit);
        memset(w + nw, 0, m->dims[l + 1] * sizeof(float));
    }
}

struct ty_ws {
    size_t max_rows;
    uint32_t nlayers;
    float **act;    /* nlayers + 1 activations; act[0] unused (the input) */
    float *d1, *d2; /* gradient buffers, max width */
};

ty_ws_t *ty_ws_create(const ty_model_t *m, size_t max_rows) {
    ty_ws_t *ws = ty_xcalloc(1, sizeof *ws);
    ws->max_rows = max_rows;
    ws->nlayers = m->nlayers;
    ws->act = ty_xcalloc(m->nlayers + 1, sizeof(float *));
    uint32_t widest = 0;
    for (uint32_t l = 0; l <= m->nlayers; l++) {
        if (l > 0)
            ws->act[l] = ty_xmalloc(max_rows * m->dims[l] * sizeof(float));
        if (m->dims[l] > widest)
            widest = m->dims[l];
    }
    ws->d1 = ty_xmalloc(max_rows * widest * sizeof(float));
    ws->d2 = ty_xmalloc(max_rows * widest * sizeof(float));
    return ws;
}

void ty_ws_destroy(ty_ws_t **pws) {
    ty_ws_t *ws = pws ? *pws : NULL;
    if (!ws)
        return;
    for (uint32_t l = 1; l <= ws->nlayers; l++)
        free(ws->act[l]);
    free(ws->act);
    free(ws->d1);
    free(ws->d2);
    free(ws);
    *pws = NULL;
}

TY_HOT static void ty_relu(float *restrict z, size_t n) {
    for (size_t i = 0; i < n; i++)
        z[i] = z[i] > 0 ? z[i] : 0;
}

/* da *= (a > 0), branch-free */
TY_HOT static void ty_relu_mask(float *restrict da, const float *restrict a, size_t n) {
    for (size_t i = 0; i < n; i++)
        da[i] = a[i] > 0 ? da[i] : 0.0f;
}

/* gb += scale * column sums of dz (n x d) */
TY_HOT static void ty_colsum(float *restrict gb, const float *restrict dz, size_t n, uint32_t d,
                             float scale) {
    for (size_t r = 0; r < n; r++) {
        const float *restrict row = dz + r * d;
        for (uint32_t k = 0; k < d; k++)
            gb[k] += scale * row[k];
    }
}

const float *ty_model_forward(const ty_model_t *m, ty_ws_t *ws, const float *x, size_t n) {
    const float *in = x;
    for (uint32_t l = 0; l < m->nlayers; l++) {
        uint32_t din = m->dims[l], dout = m->dims[l + 1];
        const float *w = m->params + ty_model_layer_offset(m, l), *b = w + (size_t)din * dout;
        float *z = ws->act[l + 1];
        for (size_t r = 0; r < n; r++) /* bias first, then Z += A W */
            memcpy(z + r * dout, b, dout * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)dout, (int)din, 1.0f,
                    in, (int)din, w, (int)dout, 1.0f, z, (int)dout);
        if (l + 1 < m->nlayers) {
            ty_relu(z, n * dout);
        } else if (m->classify) {
            for (size_t r = 0; r < n; r++) { /* stable softmax */
                float *row = z + r * dout, mx = row[0], sum = 0;
                for (uint32_t k = 1; k < dout; k++)
                    mx = row[k] > mx ? row[k] : mx;
                for (uint32_t k = 0; k < dout; k++)
                    sum += (row[k] = expf(row[k] - mx));
                for (uint32_t k = 0; k < dout; k++)
                    row[k] /= sum;
            }
        }
        in = z;
    }
    return ws->act[m->nlayers];
}

/* Sum of row losses of out against y; dz (optional) receives dLoss/dZ of the
 * last layer; correct (optional) counts rows classified right. */
static double ty_loss(const ty_model_t *m, const float *out, const float *y, size_t n, float *dz,
                      size_t *correct) {
    uint32_t dout = m->dims[m->nlayers];
    double loss = 0;
    size_t right = 0;
    for (size_t r = 0; r < n; r++) {
        const float *o = out + r * dout;
        float *d = dz ? dz + r * dout : NULL;
        if (m->classify) {
            uint32_t label = (uint32_t)y[r], best = 0;
            for (uint32_t k = 0; k < dout; k++) {
                if (d)
                    d[k] = o[k] - (k == label ? 1.0f : 0.0f);
                if (o[k] > o[best])
                    best = k;
            }
            float p = label < dout ? o[label] : 0;
            loss -= log(p > 1e-30f ? p : 1e-30f);
            right += best == label;
        } else {
            for (uint32_t k = 0; k < dout; k++) {
                float e = o[k] - y[r];
                if (d)
                    d[k] = 2 * e;
                loss += (double)e * e;
            }
        }
    }
    if (correct)
        *correct = right;
    return loss;
}

double ty_model_loss(const ty_model_t *m, ty_ws_t *ws, const float *x, const float *y, size_t n,
                     size_t *correct) {
    return ty_loss(m, ty_model_forward(m, ws, x, n), y, n, NULL, correct);
}

double ty_model_grad(const ty_model_t *m, ty_ws_t *ws, const float *x, const float *y, size_t n,
                     float scale, float *grad, size_t *correct) {
    const float *out = ty_model_forward(m, ws, x, n);
    uint32_t L = m->nlayers;
    float *dz = ws->d1;
    double loss = ty_loss(m, out, y, n, dz, correct);
    for (uint32_t l = L; l-- > 0;) {
        uint32_t din = m->dims[l], do_ = m->dims[l + 1];
        size_t off = ty_model_layer_offset(m, l);
        const float *a = l == 0 ? x : ws->act[l], *w = m->params + off;
        float *gw = grad + off, *gb = gw + (size_t)din * do_;
        /* dW += scale * A^T dZ ; db += scale * sum(dZ) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)din, (int)do_, (int)n, scale, a,
                    (int)din, dz, (int)do_, 1.0f, gw, (int)do_);
        ty_colsum(gb, dz, n, do_, scale);
        if (l == 0)
            break;
        /* dA = dZ W^T, through the ReLU */
        float *da = dz == ws->d1 ? ws->d2 : ws->d1;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)din, (int)do_, 1.0f, dz,
                    (int)do_, w, (int)do_, 0.0f, da, (int)din);
        ty_relu_mask(da, a, n * din);
        dz = da;
    }
    return loss;
}

/* ---- file format ---- */

static void ty_put(ty_buf_t *b, const void *p, size_t n) { ty_buf_append(b, p, n); }
static void ty_put_u32(ty_buf_t *b, uint32_t v) { ty_put(b, &v, 4); }
static void ty_put_u64(ty_buf_t *b, uint64_t v) { ty_put(b, &v, 8); }
static void ty_put_f64(ty_buf_t *b, double v) { ty_put(b, &v, 8); }
static void ty_put_str(ty_buf_t *b, const char *s) {
    uint32_t n = s ? (uint32_t)strlen(s) : 0;
    ty_put_u32(b, n);
    ty_put(b, s ? s : "", n);
}

#define TY_MODEL_MAGIC "TYMODEL\0"
#define TY_MODEL_VERSION 2 /* 2: class names after nclasses; 1 is still read */

int ty_model_save(const ty_model_t *m, const char *path, char **err) {
    ty_buf_t b = {0};
    ty_put(&b, TY_MODEL_MAGIC, 8);
    ty_put_u32(&b, TY_MODEL_VERSION);
    ty_put_u32(&b, m->arch);
    ty_put_u32(&b, m->classify);
    ty_put_u32(&b, m->nlayers);
    for (uint32_t l = 0; l <= m->nlayers; l++)
        ty_put_u32(&b, m->dims[l]);
    ty_put_u32(&b, m->nclasses);
    ty_put_u32(&b, m->class_names ? m->nclasses : 0);
    for (uint32_t i = 0; m->class_names && i < m->nclasses; i++)
        ty_put_str(&b, m->class_names[i]);
    ty_put(&b, m->mean, m->dims[0] * sizeof(float));
    ty_put(&b, m->std, m->dims[0] * sizeof(float));
    for (uint32_t i = 0; i < m->dims[0]; i++)
        ty_put_str(&b, m->feature_names ? m->feature_names[i] : NULL);
    ty_put_str(&b, m->target_name);
    ty_put_u32(&b, m->epochs);
    ty_put_u64(&b, m->seed);
    ty_put_u64(&b, m->samples);
    ty_put_f64(&b, m->loss);
    ty_put_f64(&b, m->val_loss);
    ty_put_f64(&b, m->val_accuracy);
    ty_put_u64(&b, m->nparams);
    ty_put(&b, m->params, m->nparams * sizeof(float));
    ty_put_u32(&b, (uint32_t)crc32(0, (const Bytef *)b.data, (uInt)b.len));
    int rc = ty_write_file_atomic(path, b.data, b.len); /* never half a model */
    if (rc != 0) {
        *err = ty_xasprintf("cannot write %s: %s", path, strerror(-rc));
        rc = TY_EIO;
    }
    ty_buf_free(&b);
    return rc;
}

typedef struct {
    const unsigned char *p;
    size_t left;
    int bad;
} ty_r_t;

static void ty_get(ty_r_t *r, void *out, size_t n) {
    if (r->bad || n > r->left) {
        r->bad = 1;
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
}
static uint32_t ty_get_u32(ty_r_t *r) {
    uint32_t v;
    ty_get(r, &v, 4);
    return v;
}
static char *ty_get_str(ty_r_t *r) {
    uint32_t n = ty_get_u32(r);
    if (r->bad || n > r->left) {
        r->bad = 1;
        return ty_xstrdup("");
    }
    char *s = ty_xstrndup((const char *)r->p, n);
    r->p += n;
    r->left -= n;
    return s;
}

int ty_model_load(const char *path, ty_model_t **out, char **err) {
    ty_buf_t b = {0};
    *out = NULL;
    int rc = ty_read_file(path, &b);
    if (rc != 0) {
        *err = ty_xasprintf("%s: %s", path, strerror(-rc));
        ty_buf_free(&b);
        return TY_EIO;
    }
    if (b.len < 12 || memcmp(b.data, TY_MODEL_MAGIC, 8) != 0) {
        *err = ty_xasprintf("%s: not a trainyard model file", path);
        ty_buf_free(&b);
        return TY_EPARSE;
    }
    uint32_t stored;
    memcpy(&stored, b.data + b.len - 4, 4);
    if (stored != (uint32_t)crc32(0, (const Bytef *)b.data, (uInt)(b.len - 4))) {
        *err = ty_xasprintf("%s: checksum mismatch (corrupt or truncated)", path);
        ty_buf_free(&b);
        return TY_EPARSE;
    }
    ty_r_t r = {(const unsigned char *)b.data + 8, b.len - 12, 0};
    uint32_t version = ty_get_u32(&r);
    if (version < 1 || version > TY_MODEL_VERSION) {
        *err = ty_xasprintf("%s: model format version %u is not supported", path, version);
        ty_buf_free(&b);
        return TY_EPARSE;
    }
    uint32_t arch = ty_get_u32(&r), classify = ty_get_u32(&r), nl = ty_get_u32(&r);
    if (nl == 0 || nl > 64) {
        *err = ty_xasprintf("%s: bad layer count", path);
        ty_buf_free(&b);
        return TY_EPARSE;
    }
    uint32_t dims[65];
    for (uint32_t l = 0; l <= nl; l++)
        dims[l] = ty_get_u32(&r);
    /* every feature (mean, std, name) and every weight is in the file: a
     * shape that needs more than it holds is refused before allocating */
    int fits = arch <= TY_ARCH_MLP && (uint64_t)dims[0] * 12 <= r.left;
    for (uint32_t l = 0; l < nl; l++)
        fits = fits && (uint64_t)dims[l] * dims[l + 1] <= r.left / 4;
    ty_model_t *m = NULL;
    if (r.bad || !fits ||
        ty_model_create(&m, (ty_arch_t)arch, (int)classify, dims[0], dims[nl], dims + 1, nl - 1) !=
            0) {
        *err = ty_xasprintf("%s: bad model shape", path);
        ty_buf_free(&b);
        return TY_EPARSE;
    }
    m->nclasses = ty_get_u32(&r);
    uint32_t nnames = version >= 2 ? ty_get_u32(&r) : 0;
    if (nnames && (nnames != m->nclasses || nnames > r.left / 4))
        r.bad = 1;
    if (nnames && !r.bad) {
        m->class_names = ty_xcalloc(nnames, sizeof(char *));
        for (uint32_t i = 0; i < nnames; i++)
            m->class_names[i] = ty_get_str(&r);
    }
    ty_get(&r, m->mean, dims[0] * sizeof(float));
    ty_get(&r, m->std, dims[0] * sizeof(float));
    m->feature_names = ty_xcalloc(dims[0], sizeof(char *));
    for (uint32_t i = 0; i < dims[0]; i++)
        m->feature_names[i] = ty_get_str(&r);
    m->target_name = ty_get_str(&r);
    m->epochs = ty_get_u32(&r);
    ty_get(&r, &m->seed, 8);
    ty_get(&r, &m->samples, 8);
    ty_get(&r, &m->loss, 8);
    ty_get(&r, &m->val_loss, 8);
    ty_get(&r, &m->val_accuracy, 8);
    uint64_t np = 0;
    ty_get(&r, &np, 8);
    if (np != m->nparams)
        r.bad = 1;
    ty_get(&r, m->params, m->nparams * sizeof(float));
    ty_buf_free(&b);
    if (r.bad) {
        *err = ty_xasprintf("%s: inconsistent model file", path);
        ty_model_destroy(&m);
        return TY_EPARSE;
    }
    *out = m;
    return 0;
}
