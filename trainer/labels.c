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

static long ty_labels_find(const ty_labels_t *l, const char *name) {
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->names[i], name) == 0)
            return (long)i;
    return -1;
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
        if (ty_labels_find(out, out->names[out->n - 1]) != (long)out->n - 1) {
            *err = ty_xasprintf("--class-names: '%s' is there twice", out->names[out->n - 1]);
            ty_labels_free(out);
            return TY_EINVAL;
        }
        if (!e)
            break;
        p = e + 1;
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
    long *to = ty_xcalloc(d->nclasses + 1, sizeof(long));
    for (size_t i = 0; i < d->nclasses; i++) {
        to[i] = ty_labels_find(l, d->classes[i]);
        if (to[i] < 0) {
            *err = ty_xasprintf("%s: class '%s' is not one of the %zu classes", what, d->classes[i],
                                l->n);
            free(to);
            return TY_EINVAL;
        }
    }
    for (size_t r = 0; r < d->rows; r++)
        d->y[r] = (float)to[(size_t)d->y[r]];
    free(to);
    return 0;
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
