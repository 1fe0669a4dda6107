/* Which rows each training step takes: see shards.h. */
#include "trainer/shards.h"

#include "common/util.h"
#include "trainer/model.h"

#include <stdlib.h>
#include <string.h>

struct ty_shards {
    uint32_t v0, nv;
    size_t **rows; /* each shard's rows in this epoch's order */
    size_t **base; /* and as created: every epoch's permutation starts from it */
    size_t *n;     /* rows in each shard */
    size_t *per;   /* rows each shard gives a step */
    size_t batch;  /* the sum of per */
};

void ty_shards_create(ty_shards_t **out, uint32_t V, uint32_t v0, uint32_t nv, uint32_t batch,
                      const size_t *idx, size_t n, const uint64_t *pos, uint64_t extent) {
    ty_shards_t *s = ty_xcalloc(1, sizeof *s);
    s->v0 = v0;
    s->nv = nv;
    s->rows = ty_xcalloc(nv + 1, sizeof(size_t *));
    s->base = ty_xcalloc(nv + 1, sizeof(size_t *));
    s->n = ty_xcalloc(nv + 1, sizeof(size_t));
    s->per = ty_xcalloc(nv + 1, sizeof(size_t));
    for (uint32_t j = 0; j < nv; j++) {
        uint32_t v = v0 + j;
        s->per[j] = batch / V + (v < batch % V);
        s->batch += s->per[j];
        s->base[j] = ty_xcalloc(n + 1, sizeof(size_t));
        for (size_t i = 0; i < n; i++) {
            uint64_t pv = pos[idx[i]] * V / extent;
            if ((pv < V ? pv : V - 1) == v) /* past a too-small gzip extent: the last */
                s->base[j][s->n[j]++] = idx[i];
        }
        s->base[j] = ty_xrealloc(s->base[j], (s->n[j] + 1) * sizeof(size_t)); /* to its size */
        s->rows[j] = ty_xcalloc(s->n[j] + 1, sizeof(size_t));
        memcpy(s->rows[j], s->base[j], s->n[j] * sizeof(size_t));
    }
    *out = s;
}

size_t ty_shards_batch(const ty_shards_t *s) { return s->batch; }

long long ty_shards_steps(const ty_shards_t *s) {
    long long steps = -1;
    for (uint32_t j = 0; j < s->nv; j++)
        if (s->per[j] && (steps < 0 || (long long)(s->n[j] / s->per[j]) < steps))
            steps = (long long)(s->n[j] / s->per[j]);
    return steps;
}

void ty_shards_shuffle(ty_shards_t *s, uint64_t seed, int epoch) {
    for (uint32_t j = 0; j < s->nv; j++) { /* Fisher-Yates from the shard's own stream */
        size_t *r = s->rows[j];
        memcpy(r, s->base[j], s->n[j] * sizeof(size_t));
        uint64_t st = seed * 1000003ULL + (uint64_t)epoch * 7919ULL + s->v0 + j;
        for (size_t i = s->n[j]; i > 1; i--) {
            size_t k = (size_t)(ty_rng_next(&st) % i), tmp = r[i - 1];
            r[i - 1] = r[k];
            r[k] = tmp;
        }
    }
}

void ty_shards_rows(const ty_shards_t *s, long long step, size_t *rows) {
    size_t n = 0;
    for (uint32_t j = 0; j < s->nv; j++) {
        memcpy(rows + n, s->rows[j] + (size_t)step * s->per[j], s->per[j] * sizeof(size_t));
        n += s->per[j];
    }
}

void ty_shards_destroy(ty_shards_t **sp) {
    ty_shards_t *s = *sp;
    if (!s)
        return;
    for (uint32_t j = 0; j < s->nv; j++) {
        free(s->rows[j]);
        free(s->base[j]);
    }
    free(s->rows);
    free(s->base);
    free(s->n);
    free(s->per);
    free(s);
    *sp = NULL;
}
