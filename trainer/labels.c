#include "trainer/labels.h"

#include "common/err.h"
#include "common/util.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void ty_labels_free(ty_labels_t *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
    l->names = NULL;
    l->n = 0;
}

static void ty_labels_add(ty_labels_t *l, const char *s, size_t n) {
    if ((l->n & (l->n - 1)) == 0) /* 0, 1, 2, 4, ...: double the room */
        l->names = ty_xrealloc(l->names, (l->n ? 2 * l->n : 1) * sizeof(char *));
    l->names[l->n++] = ty_xstrndup(s, n);
}

/* l's names sorted, each with its index: lookups in O(log n), so that
 * 100000 classes are not 10^10 comparisons. */
typedef struct {
    const char *name;
    size_t i;
} ty_label_ix_t;

static int ty_label_ix_cmp(const void *a, const void *b) {
    return strcmp(((const ty_label_ix_t *)a)->name, ((const ty_label_ix_t *)b)->name);
}

static ty_label_ix_t *ty_labels_index(const ty_labels_t *l) {
    ty_label_ix_t *ix = ty_xmalloc((l->n + 1) * sizeof *ix);
    for (size_t i = 0; i < l->n; i++)
        ix[i] = (ty_label_ix_t){l->names[i], i};
    qsort(ix, l->n, sizeof *ix, ty_label_ix_cmp);
    return ix;
}

int ty_labels_parse(const char *list, ty_labels_t *out, char **err) {
    out->names = NULL;
    out->n = 0;
    const char *p = list;
    for (;;) {
        const char *e = strchr(p, ','), *end = e ? e : p + strlen(p);
        while (p < end && isspace((unsigned char)*p))
            p++;
        const char *q = end;
        while (q > p && isspace((unsigned char)q[-1]))
            q--;
        if (q == p) {
            *err = ty_xasprintf("--class-names: an empty name in '%s'", list);
            ty_labels_free(out);
            return TY_EINVAL;
        }
        ty_labels_add(out, p, (size_t)(q - p));
        if (!e)
            break;
        p = e + 1;
    }
    ty_label_ix_t *ix = ty_labels_index(out);
    const char *twice = NULL;
    for (size_t i = 1; i < out->n && !twice; i++)
        if (strcmp(ix[i - 1].name, ix[i].name) == 0)
            twice = ix[i].name;
    if (twice)
        *err = ty_xasprintf("--class-names: '%s' is there twice", twice);
    free(ix);
    if (twice) {
        ty_labels_free(out);
        return TY_EINVAL;
    }
    return 0;
}

char *ty_labels_pack(const ty_data_t *d, size_t *len) {
    ty_buf_t b = {0};
    for (size_t i = 0; i < d->nclasses; i++)
        ty_buf_append(&b, d->classes[i], strlen(d->classes[i]) + 1);
    *len = b.len;
    return b.data;
}

static int ty_labels_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void ty_labels_merge(ty_labels_t *l, const char *buf, size_t len) {
    for (size_t off = 0; off < len;) {
        const char *s = buf + off, *z = memchr(s, '\0', len - off);
        size_t n = z ? (size_t)(z - s) : len - off;
        ty_labels_add(l, s, n);
        off += n + 1;
    }
    if (l->n < 2)
        return;
    qsort(l->names, l->n, sizeof(char *), ty_labels_cmp);
    size_t k = 1;
    for (size_t i = 1; i < l->n; i++) {
        if (strcmp(l->names[i], l->names[k - 1]) == 0)
            free(l->names[i]);
        else
            l->names[k++] = l->names[i];
    }
    l->n = k;
}

int ty_labels_remap(ty_data_t *d, const ty_labels_t *l, const char *what, char **err) {
    size_t *to = ty_xcalloc(d->nclasses + 1, sizeof(size_t));
    ty_label_ix_t *ix = ty_labels_index(l);
    int rc = 0;
    for (size_t i = 0; i < d->nclasses && rc == 0; i++) {
        ty_label_ix_t key = {d->classes[i], 0},
                      *hit = bsearch(&key, ix, l->n, sizeof *ix, ty_label_ix_cmp);
        if (hit) {
            to[i] = hit->i;
        } else {
            *err = ty_xasprintf("%s: class '%s' is not one of the %zu classes", what, d->classes[i],
                                l->n);
            rc = TY_EINVAL;
        }
    }
    for (size_t r = 0; rc == 0 && r < d->rows; r++)
        d->y[r] = (float)to[(size_t)d->y[r]];
    free(ix);
    free(to);
    return rc;
}

int ty_labels_numeric(const ty_data_t *d, uint32_t *max, char **err) {
    float mx = 0;
    for (size_t r = 0; r < d->rows; r++) {
        float y = d->y[r];
        if (!(y >= 0) || y != floorf(y) || y >= TY_DATA_MAX_CLASSES) {
            *err = ty_xasprintf("classification targets are class indexes 0, 1, 2, ... or class "
                                "names, not %g (use --model linear for regression)",
                                (double)y);
            return TY_EINVAL;
        }
        mx = y > mx ? y : mx;
    }
    *max = (uint32_t)mx;
    return 0;
}
