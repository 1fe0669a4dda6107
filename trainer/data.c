#include "trainer/data.h"

#include "common/err.h"
#include "common/util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

void ty_data_destroy(ty_data_t **pd) {
    ty_data_t *d = pd ? *pd : NULL;
    if (!d)
        return;
    for (size_t i = 0; d->names && i < d->cols; i++)
        free(d->names[i]);
    free(d->names);
    free(d->target_name);
    free(d->x);
    free(d->y);
    free(d);
    *pd = NULL;
}

void ty_data_standardize(ty_data_t *d, const float *mean, const float *std) {
    for (size_t r = 0; r < d->rows; r++)
        for (size_t c = 0; c < d->cols; c++) {
            float s = std[c] > 0 ? std[c] : 1;
            d->x[r * d->cols + c] = (d->x[r * d->cols + c] - mean[c]) / s;
        }
}

static void ty_shard(size_t total, int shard, int nshards, size_t *lo, size_t *hi) {
    *lo = total * (size_t)shard / (size_t)nshards;
    *hi = total * (size_t)(shard + 1) / (size_t)nshards;
}

/* ---- IDX ---- */

static int ty_idx_read(const char *path, uint32_t want_magic, uint32_t *dims, int ndims,
                       unsigned char **data, size_t *n, char **err) {
    gzFile f = gzopen(path, "rb");
    if (!f) {
        *err = ty_xasprintf("%s: %s", path, strerror(errno ? errno : ENOENT));
        return TY_EIO;
    }
    unsigned char hdr[4 + 4 * 3];
    size_t hlen = 4 + 4 * (size_t)ndims;
    if (gzread(f, hdr, (unsigned)hlen) != (int)hlen) {
        gzclose(f);
        *err = ty_xasprintf("%s: truncated IDX header", path);
        return TY_EPARSE;
    }
    uint32_t magic = (uint32_t)hdr[0] << 24 | hdr[1] << 16 | hdr[2] << 8 | hdr[3];
    if (magic != want_magic) {
        gzclose(f);
        *err = ty_xasprintf("%s: not an IDX file of the expected kind (magic 0x%08x)", path, magic);
        return TY_EPARSE;
    }
    size_t total = 1;
    for (int i = 0; i < ndims; i++) {
        unsigned char *p = hdr + 4 + 4 * i;
        dims[i] = (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
        total *= dims[i];
    }
    *data = ty_xmalloc(total);
    size_t got = 0;
    while (got < total) {
        int k =
            gzread(f, *data + got, (unsigned)(total - got > (1u << 30) ? 1u << 30 : total - got));
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    gzclose(f);
    if (got != total) {
        free(*data);
        *err = ty_xasprintf("%s: truncated IDX data", path);
        return TY_EPARSE;
    }
    *n = total;
    return 0;
}

static int ty_load_idx(const char *spec, int shard, int nshards, ty_data_t *d, char **err) {
    const char *comma = strchr(spec, ',');
    if (!comma) {
        *err = ty_xasprintf("'idx:%s': want idx:IMAGES,LABELS", spec);
        return TY_EINVAL;
    }
    char *images = ty_xstrndup(spec, (size_t)(comma - spec));
    unsigned char *img = NULL, *lab = NULL;
    uint32_t idims[3], ldims[1];
    size_t ni, nl;
    int rc = ty_idx_read(images, 0x00000803, idims, 3, &img, &ni, err);
    free(images);
    if (rc == 0)
        rc = ty_idx_read(comma + 1, 0x00000801, ldims, 1, &lab, &nl, err);
    if (rc == 0 && ldims[0] != idims[0]) {
        *err = ty_xasprintf("%u images but %u labels", idims[0], ldims[0]);
        rc = TY_EINVAL;
    }
    if (rc != 0) {
        free(img);
        free(lab);
        return rc;
    }
    size_t lo, hi, cols = (size_t)idims[1] * idims[2];
    ty_shard(idims[0], shard, nshards, &lo, &hi);
    d->total_rows = idims[0];
    d->first_row = lo;
    d->rows = hi - lo;
    d->cols = cols;
    d->x = ty_xmalloc(d->rows * cols * sizeof(float));
    d->y = ty_xmalloc(d->rows * sizeof(float));
    for (size_t r = 0; r < d->rows; r++) {
        for (size_t c = 0; c < cols; c++)
            d->x[r * cols + c] = img[(lo + r) * cols + c] / 255.0f;
        d->y[r] = lab[lo + r];
    }
    d->names = ty_xcalloc(cols, sizeof(char *));
    for (size_t c = 0; c < cols; c++)
        d->names[c] = ty_xasprintf("px%zu", c);
    d->target_name = ty_xstrdup("label");
    free(img);
    free(lab);
    return 0;
}

/* ---- CSV ---- */

/* Split a line on commas in place (no quoting: numeric data). */
static size_t ty_split(char *line, char ***fields, size_t *cap) {
    size_t n = 0;
    char *s = line;
    for (;;) {
        if (n == *cap) {
            *cap = *cap ? *cap * 2 : 16;
            *fields = ty_xrealloc(*fields, *cap * sizeof(char *));
        }
        (*fields)[n++] = s;
        char *c = strchr(s, ',');
        if (!c)
            break;
        *c = '\0';
        s = c + 1;
    }
    for (size_t i = 0; i < n; i++) { /* trim */
        char *f = (*fields)[i];
        while (isspace((unsigned char)*f))
            f++;
        size_t l = strlen(f);
        while (l > 0 && isspace((unsigned char)f[l - 1]))
            f[--l] = '\0';
        (*fields)[i] = f;
    }
    return n;
}

static int ty_num(const char *s, float *out) {
    if (!*s)
        return -1;
    char *e;
    double v = strtod(s, &e);
    if (*e || !isfinite(v))
        return -1;
    *out = (float)v;
    return 0;
}

/* Read one line of any length; NULL at end of file. */
static char *ty_gzline(gzFile f, ty_buf_t *b) {
    b->len = 0;
    char chunk[65536];
    while (gzgets(f, chunk, sizeof chunk)) {
        size_t n = strlen(chunk);
        ty_buf_append(b, chunk, n);
        if (n && chunk[n - 1] == '\n')
            break;
    }
    if (b->len == 0)
        return NULL;
    while (b->len && (b->data[b->len - 1] == '\n' || b->data[b->len - 1] == '\r'))
        b->data[--b->len] = '\0';
    return b->data;
}

static int ty_load_csv(const char *path, const char *target, int shard, int nshards, ty_data_t *d,
                       char **err) {
    gzFile f = gzopen(path, "rb");
    if (!f) {
        *err = ty_xasprintf("%s: %s", path, strerror(errno ? errno : ENOENT));
        return TY_EIO;
    }
    ty_buf_t line = {0};
    char **fields = NULL;
    size_t cap = 0, ncols = 0, lineno = 0;
    int rc = 0, tcol = -1, header = 0;
    /* pass 1: header, column count and row count */
    size_t total = 0;
    char *l;
    while ((l = ty_gzline(f, &line))) {
        lineno++;
        if (!*l)
            continue;
        size_t n = ty_split(l, &fields, &cap);
        if (ncols == 0) {
            ncols = n;
            float tmp;
            for (size_t i = 0; i < n; i++)
                if (ty_num(fields[i], &tmp) < 0)
                    header = 1;
            if (ncols < 2) {
                *err = ty_xasprintf("%s:%zu: need at least one feature and a target", path, lineno);
                rc = TY_EPARSE;
                break;
            }
            if (header) {
                d->names = ty_xcalloc(ncols, sizeof(char *));
                for (size_t i = 0; i < n; i++)
                    d->names[i] = ty_xstrdup(fields[i]);
                continue;
            }
        } else if (n != ncols) {
            *err = ty_xasprintf("%s:%zu: %zu fields, expected %zu", path, lineno, n, ncols);
            rc = TY_EPARSE;
            break;
        }
        total++;
    }
    if (rc == 0 && total == 0) {
        *err = ty_xasprintf("%s: no data rows", path);
        rc = TY_EPARSE;
    }
    if (rc == 0) {
        if (!target) {
            tcol = (int)ncols - 1;
        } else {
            for (size_t i = 0; header && i < ncols; i++)
                if (strcmp(d->names[i], target) == 0)
                    tcol = (int)i;
            char *e;
            long v = strtol(target, &e, 10);
            if (tcol < 0 && !*e && v >= 0 && (size_t)v < ncols)
                tcol = (int)v;
            if (tcol < 0) {
                *err = ty_xasprintf("%s: no target column '%s'", path, target);
                rc = TY_EINVAL;
            }
        }
    }
    if (rc != 0) {
        gzclose(f);
        ty_buf_free(&line);
        free(fields);
        return rc;
    }
    size_t lo, hi;
    ty_shard(total, shard, nshards, &lo, &hi);
    d->total_rows = total;
    d->first_row = lo;
    d->rows = hi - lo;
    d->cols = ncols - 1;
    d->x = ty_xmalloc((d->rows ? d->rows : 1) * d->cols * sizeof(float));
    d->y = ty_xmalloc((d->rows ? d->rows : 1) * sizeof(float));
    char **names = ty_xcalloc(d->cols, sizeof(char *));
    for (size_t i = 0, k = 0; i < ncols; i++) {
        if ((int)i == tcol) {
            d->target_name = header ? ty_xstrdup(d->names[i]) : ty_xasprintf("c%zu", i);
            continue;
        }
        char *name = header ? ty_xstrdup(d->names[i]) : ty_xasprintf("f%zu", k);
        names[k++] = name;
    }
    for (size_t i = 0; header && i < ncols; i++)
        free(d->names[i]);
    free(d->names);
    d->names = names;
    /* pass 2: this shard's rows */
    gzrewind(f);
    size_t row = 0;
    lineno = 0;
    int skipped_header = !header;
    while (rc == 0 && row < hi && (l = ty_gzline(f, &line))) {
        lineno++;
        if (!*l)
            continue;
        if (!skipped_header) {
            skipped_header = 1;
            continue;
        }
        if (row >= lo) {
            ty_split(l, &fields, &cap);
            size_t r = row - lo;
            for (size_t i = 0, k = 0; i < ncols; i++) {
                float v;
                if (ty_num(fields[i], &v) < 0) {
                    *err = ty_xasprintf("%s:%zu: field %zu '%s' is not a number", path, lineno,
                                        i + 1, fields[i]);
                    rc = TY_EPARSE;
                    break;
                }
                if ((int)i == tcol)
                    d->y[r] = v;
                else
                    d->x[r * d->cols + k++] = v;
            }
        }
        row++;
    }
    gzclose(f);
    ty_buf_free(&line);
    free(fields);
    return rc;
}

int ty_data_load(const char *spec, const char *target, int shard, int nshards, ty_data_t **out,
                 char **err) {
    *out = NULL;
    *err = NULL;
    ty_data_t *d = ty_xcalloc(1, sizeof *d);
    int rc = strncmp(spec, "idx:", 4) == 0 ? ty_load_idx(spec + 4, shard, nshards, d, err)
                                           : ty_load_csv(spec, target, shard, nshards, d, err);
    if (rc != 0) {
        ty_data_destroy(&d);
        return rc;
    }
    *out = d;
    return 0;
}
