/* Finite-difference gradient checks for every layer of softmax, linear and
 * MLP models, and the model file's round trip and corruption check. */
#include "trainer/model.h"

#include "common/err.h"
#include "common/tests/ty_test.h"
#include "common/util.h"

#include <cblas.h>
#include <math.h>
#include <unistd.h>
#include <zlib.h>

/* Compare analytic and central-difference gradients on sampled parameters
 * of every layer (weights and biases); returns the worst relative error. */
static double grad_check(ty_model_t *m, size_t n, int classify) {
    uint64_t s = 42;
    uint32_t in = m->dims[0], out = m->dims[m->nlayers];
    float *x = ty_xmalloc(n * in * sizeof(float)), *y = ty_xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n * in; i++)
        x[i] = (float)ty_rng_normal(&s);
    for (size_t i = 0; i < n; i++)
        y[i] = classify ? (float)(ty_rng_next(&s) % out) : (float)ty_rng_normal(&s);
    ty_ws_t *ws = ty_ws_create(m, n);
    float *g = ty_xcalloc(m->nparams, sizeof(float));
    ty_model_grad(m, ws, x, y, n, 1.0f, g, NULL);
    double worst = 0;
    for (uint32_t l = 0; l < m->nlayers; l++) {
        size_t off = ty_model_layer_offset(m, l);
        size_t nw = (size_t)m->dims[l] * m->dims[l + 1], nb = m->dims[l + 1];
        size_t picks[6] = {off,      off + nw / 2,      off + nw - 1,
                           off + nw, off + nw + nb / 2, off + nw + nb - 1};
        for (int k = 0; k < 6; k++) {
            size_t i = picks[k];
            float keep = m->params[i];
            const float h = 2e-3f;
            m->params[i] = keep + h;
            double lp = ty_model_loss(m, ws, x, y, n, NULL);
            m->params[i] = keep - h;
            double lm = ty_model_loss(m, ws, x, y, n, NULL);
            m->params[i] = keep;
            double num = (lp - lm) / (2 * h), ana = g[i];
            double rel = fabs(num - ana) / fmax(1e-3, fabs(num) + fabs(ana));
            if (rel > worst)
                worst = rel;
            if (rel > 2e-2)
                fprintf(stderr, "layer %u param %zu: numeric %g analytic %g\n", l, i, num, ana);
        }
    }
    ty_ws_destroy(&ws);
    free(x);
    free(y);
    free(g);
    return worst;
}

int main(void) {
    openblas_set_num_threads(1);
    ty_model_t *m = NULL;
    uint32_t hidden[] = {7, 5};
    CHECK_EQ_INT(ty_model_create(&m, TY_ARCH_MLP, 1, 6, 4, hidden, 2), 0);
    ty_model_init_params(m, 3);
    CHECK_EQ_INT(m->nparams, 6 * 7 + 7 + 7 * 5 + 5 + 5 * 4 + 4);
    CHECK(grad_check(m, 9, 1) < 2e-2);

    /* save, load, compare; then a flipped byte is refused */
    m->feature_names = ty_xcalloc(6, sizeof(char *));
    for (int i = 0; i < 6; i++)
        m->feature_names[i] = ty_xasprintf("f%d", i);
    m->target_name = ty_xstrdup("label");
    m->class_names = ty_xcalloc(4, sizeof(char *));
    for (int i = 0; i < 4; i++)
        m->class_names[i] = ty_xasprintf("class %c", 'a' + i);
    m->mean[2] = 1.5f;
    m->std[2] = 2.5f;
    m->epochs = 7;
    char path[] = "/tmp/ty-model-testXXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char *err = NULL;
    CHECK_EQ_INT(ty_model_save(m, path, &err), 0);
    ty_model_t *back = NULL;
    CHECK_EQ_INT(ty_model_load(path, &back, &err), 0);
    if (back) {
        CHECK_EQ_INT(back->nlayers, 3);
        CHECK_EQ_INT(back->dims[2], 5);
        CHECK_EQ_INT(back->epochs, 7);
        CHECK(back->mean[2] == 1.5f && back->std[2] == 2.5f);
        CHECK_STR(back->feature_names[5], "f5");
        CHECK_STR(back->target_name, "label");
        CHECK(back->class_names && back->nclasses == 4);
        if (back->class_names)
            CHECK_STR(back->class_names[3], "class d");
        CHECK(memcmp(back->params, m->params, m->nparams * sizeof(float)) == 0);
    }
    ty_model_destroy(&back);
    FILE *f = fopen(path, "r+b");
    fseek(f, 100, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 100, SEEK_SET);
    fputc(c ^ 0xff, f);
    fclose(f);
    CHECK_EQ_INT(ty_model_load(path, &back, &err), TY_EPARSE);
    CHECK_CONTAINS(err, "checksum mismatch");
    free(err);
    err = NULL;
    /* a version 1 file (no class names) still loads */
    {
        ty_model_t *v = NULL;
        CHECK_EQ_INT(ty_model_create(&v, TY_ARCH_SOFTMAX, 1, 3, 2, NULL, 0), 0);
        CHECK_EQ_INT(ty_model_save(v, path, &err), 0);
        ty_buf_t fb = {0};
        CHECK_EQ_INT(ty_read_file(path, &fb), 0);
        size_t at = 8 + 4 * 4 + 4 * 2 + 4; /* magic, version..nlayers, dims, nclasses */
        uint32_t one = 1, nn;
        memcpy(&nn, fb.data + at, 4);
        CHECK_EQ_INT(nn, 0);
        memmove(fb.data + at, fb.data + at + 4, fb.len - at - 4);
        fb.len -= 4;
        memcpy(fb.data + 8, &one, 4);
        uint32_t crc = (uint32_t)crc32(0, (const Bytef *)fb.data, (uInt)(fb.len - 4));
        memcpy(fb.data + fb.len - 4, &crc, 4);
        CHECK_EQ_INT(ty_write_file_atomic(path, fb.data, fb.len), 0);
        ty_buf_free(&fb);
        CHECK_EQ_INT(ty_model_load(path, &back, &err), 0);
        CHECK(back && back->class_names == NULL && back->nclasses == 2);
        ty_model_destroy(&back);
        ty_model_destroy(&v);
    }
    /* a well-formed header with a valid checksum whose shape needs more than
     * the file holds (4e9 features, a 2^32 x 2^32 layer) is refused, not
     * allocated */
    uint32_t shapes[][7] = {{1, TY_ARCH_SOFTMAX, 1, 1, 0xfffffff0u, 10, 0},
                            {1, TY_ARCH_MLP, 1, 2, 4, 0xffffffffu, 0xffffffffu},
                            {1, 9, 1, 1, 4, 3, 0}};
    for (int i = 0; i < 3; i++) {
        unsigned char fb[8 + sizeof shapes[i] + 64 + 4] = "TYMODEL";
        memcpy(fb + 8, shapes[i], sizeof shapes[i]);
        size_t len = sizeof fb - 4;
        uint32_t crc = (uint32_t)crc32(0, fb, (uInt)len);
        memcpy(fb + len, &crc, 4);
        f = fopen(path, "wb");
        fwrite(fb, 1, sizeof fb, f);
        fclose(f);
        CHECK_EQ_INT(ty_model_load(path, &back, &err), TY_EPARSE);
        CHECK_CONTAINS(err, "bad model shape");
        free(err);
        err = NULL;
    }
    unlink(path);
    ty_model_destroy(&m);

    CHECK_EQ_INT(ty_model_create(&m, TY_ARCH_SOFTMAX, 1, 5, 3, NULL, 0), 0);
    ty_model_init_params(m, 4);
    CHECK(grad_check(m, 8, 1) < 2e-2);
    ty_model_destroy(&m);

    CHECK_EQ_INT(ty_model_create(&m, TY_ARCH_LINEAR, 0, 5, 1, NULL, 0), 0);
    ty_model_init_params(m, 5);
    CHECK(grad_check(m, 8, 0) < 2e-2);
    ty_model_destroy(&m);

    uint32_t h1[] = {6};
    CHECK_EQ_INT(ty_model_create(&m, TY_ARCH_MLP, 0, 4, 1, h1, 1), 0); /* MLP regression */
    ty_model_init_params(m, 6);
    CHECK(grad_check(m, 8, 0) < 2e-2);
    ty_model_destroy(&m);

    CHECK_EQ_INT(ty_model_create(&m, TY_ARCH_SOFTMAX, 1, 5, 3, h1, 1), TY_EINVAL);
    TEST_DONE();
}
