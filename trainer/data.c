#include "trainer/data.h"

#include "trainer/bgzf.h"

#include "common/err.h"
#include "common/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

void ty_data_destroy(ty_data_t **pd) {
    ty_data_t *d = pd ? *pd : NULL;
    if (!d)
        return;
    for (size_t i = 0; d->names && i < d->cols; i++)
        free(d->names[i]);
    free(d->names);
    for (size_t i = 0; i < d->nclasses; i++)
        free(d->classes[i]);
    free(d->classes);
    free(d->target_name);
    free(d->x);
    free(d->y);
    free(d->pos);
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

/* ceil, so that shard boundaries fall where virtual-shard boundaries
 * (floor(p*V/extent)) do: no row is left between two owners */
void ty_data_shard(uint64_t extent, int shard, int nshards, uint64_t *lo, uint64_t *hi) {
    uint64_t n = (uint64_t)nshards;
    *lo = (extent * (uint64_t)shard + n - 1) / n;
    *hi = (extent * (uint64_t)(shard + 1) + n - 1) / n;
}

/* Room for rows [0, n) (x, y, pos). */
static void ty_data_reserve(ty_data_t *d, size_t n) {
    d->x = ty_xrealloc(d->x, (n ? n : 1) * d->cols * sizeof(float));
    d->y = ty_xrealloc(d->y, (n ? n : 1) * sizeof(float));
    d->pos = ty_xrealloc(d->pos, (n ? n : 1) * sizeof(uint64_t));
}

/* ---- IDX ---- */

/* Reads the header of an IDX file and then only items [lo, hi) of its first
 * dimension (hi = UINT64_MAX: all), each `item` bytes: a seek on a plain
 * file; on BGZF, from the block that holds lo; on other gzip, skipping the
 * decompressed bytes before lo.  Nothing past hi. */
static int ty_idx_read(const char *path, uint32_t want_magic, uint32_t *dims, int ndims, int shard,
                       int nshards, uint64_t *lo, uint64_t *hi, unsigned char **data, char **err) {
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
    size_t item = 1;
    for (int i = 0; i < ndims; i++) {
        unsigned char *p = hdr + 4 + 4 * i;
        dims[i] = (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
        if (i > 0)
            item *= dims[i];
    }
    ty_data_shard(dims[0], shard, nshards, lo, hi);
    size_t total = (size_t)(*hi - *lo) * item, got = 0;
    *data = ty_xmalloc(total ? total : 1);
    uint64_t at = hlen + *lo * item, base = 0;
    ty_bgzf_index_t *bx = NULL;
    if (*lo > 0 && !gzdirect(f) && ty_bgzf_index_create(&bx, path) == 0) {
        gzFile g = ty_bgzf_open_at(bx, path, at, &base);
        if (g) {
            gzclose(f);
            f = g;
        } else {
            base = 0;
        }
        ty_bgzf_index_destroy(&bx);
    }
    int ok = *lo == 0 || gzseek(f, (z_off_t)(at - base), SEEK_SET) >= 0;
    while (ok && got < total) {
        int k =
            gzread(f, *data + got, (unsigned)(total - got > (1u << 30) ? 1u << 30 : total - got));
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    gzclose(f);
    if (got != total) {
        free(*data);
        *data = NULL;
        *err = ty_xasprintf("%s: truncated IDX data", path);
        return TY_EPARSE;
    }
    return 0;
}

int ty_data_reads(const char *spec, const char *path) {
    if (strncmp(spec, "idx:", 4) != 0)
        return ty_same_file(spec, path);
    const char *comma = strchr(spec + 4, ',');
    char *images = comma ? ty_xstrndup(spec + 4, (size_t)(comma - spec - 4)) : ty_xstrdup(spec + 4);
    int same = ty_same_file(images, path) || (comma && ty_same_file(comma + 1, path));
    free(images);
    return same;
}

static int ty_load_idx(const char *spec, int shard, int nshards, ty_data_t *d, char **err) {
    const char *comma = strchr(spec, ','); /* none: images without labels (predict) */
    char *images = comma ? ty_xstrndup(spec, (size_t)(comma - spec)) : ty_xstrdup(spec);
    unsigned char *img = NULL, *lab = NULL;
    uint32_t idims[3], ldims[1];
    uint64_t lo, hi, llo, lhi;
    int rc = ty_idx_read(images, 0x00000803, idims, 3, shard, nshards, &lo, &hi, &img, err);
    free(images);
    if (rc == 0 && comma)
        rc = ty_idx_read(comma + 1, 0x00000801, ldims, 1, shard, nshards, &llo, &lhi, &lab, err);
    if (rc == 0 && comma && ldims[0] != idims[0]) {
        *err = ty_xasprintf("%u images but %u labels", idims[0], ldims[0]);
        rc = TY_EINVAL;
    }
    if (rc != 0) {
        free(img);
        free(lab);
        return rc;
    }
    size_t cols = (size_t)idims[1] * idims[2];
    d->extent = idims[0];
    d->rows = hi - lo;
    d->cols = cols;
    ty_data_reserve(d, d->rows);
    for (size_t r = 0; r < d->rows; r++) {
        for (size_t c = 0; c < cols; c++)
            d->x[r * cols + c] = img[r * cols + c] / 255.0f;
        d->y[r] = lab ? lab[r] : 0;
        d->pos[r] = lo + r;
    }
    d->names = ty_xcalloc(cols, sizeof(char *));
    for (size_t c = 0; c < cols; c++)
        d->names[c] = ty_xasprintf("px%zu", c);
    d->target_name = ty_xstrdup("label");
    d->has_target = lab != NULL;
    free(img);
    free(lab);
    return 0;
}

/* ---- CSV ---- */

/* Splits a line on commas in place, RFC 4180 style: a field in double
 * quotes may hold commas, and "" stands for a quote; blanks around fields
 * are dropped.  The field count, or 0 for a quote left open or text after a
 * closing quote.  (A quoted line break is not supported: rows are lines.) */
static size_t ty_split(char *line, char ***fields, size_t *cap) {
    size_t n = 0;
    char *r = line;
    for (;;) {
        if (n == *cap) {
            *cap = *cap ? *cap * 2 : 16;
            *fields = ty_xrealloc(*fields, *cap * sizeof(char *));
        }
        while (isspace((unsigned char)*r))
            r++;
        char *start = r, *end;
        if (*r == '"') { /* unquote in place: the text moves left over the quotes */
            char *w = r++;
            for (;; r++) {
                if (!*r)
                    return 0;
                if (*r == '"' && r[1] != '"')
                    break;
                if (*r == '"')
                    r++;
                *w++ = *r;
            }
            end = w;
            r++;
            while (isspace((unsigned char)*r))
                r++;
            if (*r && *r != ',')
                return 0;
        } else {
            while (*r && *r != ',')
                r++;
            end = r;
            while (end > start && isspace((unsigned char)end[-1]))
                end--;
        }
        char next = *r;
        *end = '\0';
        (*fields)[n++] = start;
        if (next != ',')
            return n;
        r++;
    }
}

/* A field as a number: what strtod() gives, as a float.  Plain decimals
 * ("-12.375", "4e-3") with at most 15 significant digits and a power of ten
 * within 1e22 take Clinger's fast path: the digits and the power are exact
 * doubles, so one multiplication or division rounds exactly as strtod()
 * does.  Anything else goes to strtod(). */
static int ty_num(const char *s, float *out) {
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const char *p = s;
    int neg = *p == '-', nd = 0, digits = 0, exp10 = 0; /* digits: from the first non-zero */
    uint64_t m = 0;
    p += *p == '-' || *p == '+';
    for (; *p >= '0' && *p <= '9'; p++, nd++, digits += m > 0)
        m = m * 10 + (uint64_t)(*p - '0');
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++, nd++, digits += m > 0, exp10--)
            m = m * 10 + (uint64_t)(*p - '0');
    int ok = nd > 0 && digits <= 15;
    if (ok && (*p == 'e' || *p == 'E')) {
        const char *q = p + 1;
        int eneg = *q == '-', ev = 0;
        q += *q == '-' || *q == '+';
        ok = *q >= '0' && *q <= '9';
        for (; ok && *q >= '0' && *q <= '9' && ev < 1000; q++)
            ev = ev * 10 + (*q - '0');
        exp10 += eneg ? -ev : ev;
        p = q;
    }
    if (ok && !*p && exp10 >= -22 && exp10 <= 22) {
        double v = exp10 < 0 ? (double)m / p10[-exp10] : (double)m * p10[exp10];
        *out = (float)(neg ? -v : v);
        return 0;
    }
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

typedef struct {
    const char *path;
    const ty_data_opts_t *o;
    size_t ncols;
    int tcol, header; /* tcol -1: no target column */
    int named;        /* targets are class names (1), numbers (0), not known yet (-1) */
    char **fields;
    size_t cap;
    size_t *slots, nslots; /* class-name hash: index + 1, 0 for empty */
    int bylines;           /* messages give line numbers (else byte offsets) */
} ty_csv_t;

/* The first non-empty line: the target column, a header or not (a header
 * names the target, or has a feature field that is not a number), names. */
static int ty_csv_columns(ty_csv_t *c, ty_data_t *d, char *line, size_t lineno, char **err) {
    size_t n = ty_split(line, &c->fields, &c->cap);
    if (n == 0) {
        *err = ty_xasprintf("%s:%zu: a quote left open, or text after a closing quote", c->path,
                            lineno);
        return TY_EPARSE;
    }
    const ty_data_opts_t *o = c->o;
    const char *want = o->target ? o->target : o->target_hint;
    float tmp;
    int64_t v;
    c->ncols = n;
    c->tcol = -1;
    if (o->target && ty_parse_i64(o->target, 0, INT64_MAX, &v) == 0) { /* an index */
        c->tcol = v < (int64_t)n ? (int)v : -1;
        want = NULL;
    }
    for (size_t i = 0; want && c->tcol < 0 && i < n; i++) /* a name: in a header */
        if (strcmp(c->fields[i], want) == 0)
            c->tcol = (int)i, c->header = 1;
    int featureless = o->nfeatures > 0 && n == o->nfeatures; /* unlabeled data */
    if (c->tcol < 0 && !featureless) {
        if (o->target) {
            *err = ty_xasprintf("%s: no target column '%s'", c->path, o->target);
            return TY_EINVAL;
        }
        c->tcol = (int)n - 1;
    }
    for (size_t i = 0; i < n; i++)
        if ((int)i != c->tcol && ty_num(c->fields[i], &tmp) < 0)
            c->header = 1;
    if (c->tcol >= 0 && n < 2) {
        *err = ty_xasprintf("%s:%zu: need at least one feature and a target", c->path, lineno);
        return TY_EPARSE;
    }
    d->has_target = c->tcol >= 0;
    d->cols = n - (size_t)d->has_target;
    d->names = ty_xcalloc(d->cols, sizeof(char *));
    for (size_t i = 0, k = 0; i < n; i++) {
        if ((int)i == c->tcol) {
            d->target_name = c->header ? ty_xstrdup(c->fields[i]) : ty_xasprintf("c%zu", i);
        } else {
            d->names[k] = c->header ? ty_xstrdup(c->fields[i]) : ty_xasprintf("f%zu", k);
            k++;
        }
    }
    return 0;
}

static uint64_t ty_hash(const char *s) { /* FNV-1a */
    uint64_t h = 14695981039346656037ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* The index of class `name` in d->classes, added when new. */
static size_t ty_csv_class(ty_csv_t *c, ty_data_t *d, const char *name) {
    if (2 * (d->nclasses + 1) > c->nslots) { /* grow and rehash */
        size_t ns = c->nslots ? 2 * c->nslots : 64, *sl = ty_xcalloc(ns, sizeof *sl);
        for (size_t i = 0; i < d->nclasses; i++) {
            size_t h = (size_t)ty_hash(d->classes[i]) & (ns - 1);
            while (sl[h])
                h = (h + 1) & (ns - 1);
            sl[h] = i + 1;
        }
        free(c->slots);
        c->slots = sl;
        c->nslots = ns;
    }
    size_t h = (size_t)ty_hash(name) & (c->nslots - 1);
    for (; c->slots[h]; h = (h + 1) & (c->nslots - 1))
        if (strcmp(d->classes[c->slots[h] - 1], name) == 0)
            return c->slots[h] - 1;
    if ((d->nclasses & (d->nclasses - 1)) == 0) /* 0, 1, 2, 4, ...: double the room */
        d->classes = ty_xrealloc(d->classes, (d->nclasses ? 2 * d->nclasses : 1) * sizeof(char *));
    d->classes[d->nclasses] = ty_xstrdup(name);
    c->slots[h] = ++d->nclasses;
    return d->nclasses - 1;
}

long ty_data_class(const ty_data_t *d, const char *name) {
    for (size_t i = 0; i < d->nclasses; i++)
        if (strcmp(d->classes[i], name) == 0)
            return (long)i;
    return -1;
}

/* The target field: a number, or a class name; NULL, or what is wrong. */
static const char *ty_csv_target(ty_csv_t *c, ty_data_t *d, const char *f, size_t r) {
    if (!*f)
        return "the target is empty";
    float v;
    int num = ty_num(f, &v) == 0;
    if (c->named < 0)
        c->named = !num;
    if (c->named && num)
        return "is a number, but earlier targets are class names";
    if (!c->named && !num)
        return "is a class name, but earlier targets are numbers";
    d->y[r] = num ? v : (float)ty_csv_class(c, d, f);
    if (d->nclasses > TY_DATA_MAX_CLASSES)
        return "is one class name too many (100000): is this the target column?";
    return NULL;
}

/* Parses a data line into row r (room reserved), at position pos. */
static int ty_csv_row(ty_csv_t *c, ty_data_t *d, char *line, size_t r, uint64_t pos, size_t lineno,
                      char **err) {
    size_t n = ty_split(line, &c->fields, &c->cap), bad = n; /* bad: the field that is wrong */
    const char *why = NULL;
    d->y[r] = 0;
    for (size_t i = 0, k = 0; n == c->ncols && bad == n && i < n; i++) {
        float v;
        if ((int)i == c->tcol) {
            if ((why = ty_csv_target(c, d, c->fields[i], r)) != NULL)
                bad = i;
        } else if (ty_num(c->fields[i], &v) < 0) {
            bad = i;
        } else {
            d->x[r * d->cols + k++] = v;
        }
    }
    d->pos[r] = pos;
    if (n == c->ncols && bad == n)
        return 0;
    /* where, for the message: formatted only when there is one to give */
    char *where = c->bylines
                      ? ty_xasprintf("%s:%zu", c->path, lineno)
                      : ty_xasprintf("%s (line at byte %llu)", c->path, (unsigned long long)pos);
    if (n == 0)
        *err = ty_xasprintf("%s: a quote left open, or text after a closing quote", where);
    else if (n != c->ncols)
        *err = ty_xasprintf("%s: %zu fields, expected %zu", where, n, c->ncols);
    else
        *err = ty_xasprintf("%s: field %zu '%s' %s", where, bad + 1, c->fields[bad],
                            why ? why : "is not a number");
    free(where);
    return TY_EPARSE;
}

/* The extent of a CSV file's positions: its size, or for gzip the
 * uncompressed size from the trailer (ISIZE: modulo 4 GiB, and the last
 * member's only; the last shard reads to the end, so a wrong one costs
 * balance, never rows).  At least 1. */
static uint64_t ty_csv_extent(const char *path, int gzip) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    uint64_t n = 0;
    unsigned char t[4];
    if (fd >= 0 && fstat(fd, &st) == 0) {
        n = (uint64_t)st.st_size;
        if (gzip && st.st_size >= 4 && pread(fd, t, 4, st.st_size - 4) == 4)
            n = (uint64_t)t[0] | (uint64_t)t[1] << 8 | (uint64_t)t[2] << 16 | (uint64_t)t[3] << 24;
    }
    if (fd >= 0)
        close(fd);
    return n ? n : 1;
}

/* The line that starts at byte 0 without the UTF-8 byte order mark some
 * tools (spreadsheets' "CSV UTF-8") put there; anywhere else, l itself. */
static char *ty_no_bom(char *l, int64_t off) {
    return off == 0 && strncmp(l, "\xef\xbb\xbf", 3) == 0 ? l + 3 : l;
}

/* Positions are byte offsets (uncompressed, for gzip) where lines start; a
 * shard's lines are those starting in its byte range.  It reads the first
 * lines (header or not, and whether any row exists), then seeks to its range
 * (a real seek in a plain file; gzip must decompress up to there) and reads
 * to the range's end, never further. */
static int ty_load_csv(const char *path, const ty_data_opts_t *o, int shard, int nshards,
                       ty_data_t *d, char **err) {
    gzFile f = gzopen(path, "rb");
    if (!f) {
        *err = ty_xasprintf("%s: %s", path, strerror(errno ? errno : ENOENT));
        return TY_EIO;
    }
    ty_csv_t c = {.path = path, .o = o, .named = -1, .bylines = 1};
    ty_buf_t line = {0};
    size_t lineno = 0, cap = 0;
    z_off_t hdr_off = -1;
    int rc = 0, data_seen = 0;
    char *l;
    while (rc == 0 && !data_seen) {
        z_off_t off = gztell(f);
        if (!(l = ty_gzline(f, &line)))
            break;
        l = ty_no_bom(l, off);
        lineno++;
        if (!*l)
            continue;
        if (c.ncols == 0) {
            rc = ty_csv_columns(&c, d, l, lineno, err);
            if (rc == 0)
                ty_data_reserve(d, 0); /* buffers even for a shard with no rows */
            if (c.header) {
                hdr_off = off;
                continue;
            }
        }
        data_seen = 1;
    }
    if (rc == 0 && !data_seen) {
        *err = ty_xasprintf("%s: no data rows", path);
        rc = TY_EPARSE;
    }
    uint64_t lo, hi, base = 0; /* base: where the stream f starts in the file */
    ty_bgzf_index_t *bx = NULL;
    int gzip = !gzdirect(f);
    if (rc == 0 && gzip && ty_bgzf_index_create(&bx, path) == 0)
        d->extent = ty_bgzf_size(bx) ? ty_bgzf_size(bx) : 1;
    else
        d->extent = ty_csv_extent(path, gzip);
    ty_data_shard(d->extent, shard, nshards, &lo, &hi);
    int last = shard == nshards - 1;
    c.bylines = lo == 0;
    lineno = 0;
    if (rc == 0 && bx && lo > 0) { /* BGZF: start at the block holding lo - 1 */
        gzclose(f);
        if (!(f = ty_bgzf_open_at(bx, path, lo - 1, &base))) {
            *err = ty_xasprintf("%s: %s", path, strerror(errno));
            ty_bgzf_index_destroy(&bx);
            ty_buf_free(&line);
            free(c.fields);
            free(c.slots);
            return TY_EIO;
        }
    }
    ty_bgzf_index_destroy(&bx);
    if (rc == 0 && gzseek(f, (z_off_t)(lo > 0 ? lo - 1 - base : 0), SEEK_SET) < 0)
        rc = TY_EIO;
    if (rc == 0 && lo > 0) {
        int ch = gzgetc(f); /* mid-line: that line is the previous shard's */
        if (ch != '\n' && ch != -1)
            ty_gzline(f, &line);
    }
    while (rc == 0) {
        z_off_t off = gztell(f);
        if (off >= 0)
            off += (z_off_t)base;
        if (off < 0 || (!last && (uint64_t)off >= hi) || !(l = ty_gzline(f, &line)))
            break;
        l = ty_no_bom(l, off);
        lineno++;
        if (!*l || off == hdr_off)
            continue;
        if (d->rows == cap) {
            cap = cap ? 2 * cap : 1024;
            ty_data_reserve(d, cap);
        }
        rc = ty_csv_row(&c, d, l, d->rows, (uint64_t)off, lineno, err);
        d->rows++;
        if (o->progress && d->rows % 4096 == 0)
            o->progress(o->ctx, (uint64_t)off > lo ? (uint64_t)off - lo : 0, hi > lo ? hi - lo : 1);
    }
    int zerr = Z_OK;
    const char *zmsg = gzerror(f, &zerr);
    if (rc == TY_EIO || zerr != Z_OK) { /* a cut-short last line is the read's fault */
        free(*err);
        *err = ty_xasprintf("%s: read error: %s", path, zerr != Z_OK ? zmsg : strerror(errno));
        rc = TY_EIO;
    }
    gzclose(f);
    ty_buf_free(&line);
    free(c.fields);
    free(c.slots);
    return rc;
}

int ty_data_load(const char *spec, const char *target, int shard, int nshards, ty_data_t **out,
                 char **err) {
    ty_data_opts_t o = {.target = target};
    return ty_data_load_opts(spec, &o, shard, nshards, out, err);
}

int ty_data_load_opts(const char *spec, const ty_data_opts_t *o, int shard, int nshards,
                      ty_data_t **out, char **err) {
    *out = NULL;
    *err = NULL;
    ty_data_t *d = ty_xcalloc(1, sizeof *d);
    int rc = strncmp(spec, "idx:", 4) == 0 ? ty_load_idx(spec + 4, shard, nshards, d, err)
                                           : ty_load_csv(spec, o, shard, nshards, d, err);
    if (rc != 0) {
        ty_data_destroy(&d);
        return rc;
    }
    *out = d;
    return 0;
}
