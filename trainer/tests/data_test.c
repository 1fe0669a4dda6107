/* CSV (header or not, gzip, target by name or index, sharding, errors) and
 * IDX loading; each shard reads only its own part of a file. */
#include "trainer/data.h"

#include "trainer/bgzf.h"

#include "common/err.h"
#include "common/tests/ty_test.h"
#include "common/util.h"

#include <unistd.h>
#include <math.h>
#include <zlib.h>

static char dir[] = "/tmp/ty-data-testXXXXXX";

static char *write_file(const char *name, const char *text, int gz) {
    char *p = ty_xasprintf("%s/%s", dir, name);
    gzFile f = gzopen(p, gz ? "wb" : "wbT");
    gzwrite(f, text, (unsigned)strlen(text));
    gzclose(f);
    return p;
}

/* A plain CSV of n rows "i,2i,i%3" with a header, blank and CRLF lines,
 * and (bad >= 0) row `bad` not numeric. */
static char *numbered_csv(const char *name, int n, int bad, int gz) {
    ty_buf_t b = {0};
    ty_buf_printf(&b, "\n id,twice,y\n");
    for (int i = 0; i < n; i++) {
        if (i == bad)
            ty_buf_printf(&b, "%d,oops,%d\n", i, i % 3);
        else if (i % 7 == 3)
            ty_buf_printf(&b, "%d,%d,%d\r\n\n", i, 2 * i, i % 3);
        else
            ty_buf_printf(&b, "%d,%d,%d\n", i, 2 * i, i % 3);
    }
    char *p = write_file(name, b.data, gz);
    ty_buf_free(&b);
    return p;
}

/* src (gzip or plain) rewritten as BGZF with small blocks; block `damage`
 * (> 0) has its deflate data damaged. */
static char *bgzf_copy(const char *src, const char *name, size_t block, int damage) {
    char *p = ty_xasprintf("%s/%s", dir, name), *err = NULL;
    gzFile f = gzopen(src, "rb");
    unsigned char buf[4096];
    int k;
    ty_bgzf_writer_t *w = NULL;
    CHECK_EQ_INT(ty_bgzf_writer_create(&w, p, block, 6, &err), 0);
    while ((k = gzread(f, buf, sizeof buf)) > 0)
        ty_bgzf_write(w, buf, (size_t)k);
    gzclose(f);
    CHECK_EQ_INT(ty_bgzf_writer_close(&w, &err), 0);
    if (damage > 0) {
        FILE *g = fopen(p, "r+b");
        long at = 0;
        unsigned char h[18];
        for (int i = 0; i < damage; i++) { /* walk the blocks' sizes (BSIZE + 1) */
            fseek(g, at, SEEK_SET);
            CHECK(fread(h, 1, 18, g) == 18);
            at += ((long)h[16] | (long)h[17] << 8) + 1;
        }
        fseek(g, at + 18, SEEK_SET);
        fwrite("\xde\xad\xbe\xef", 1, 4, g);
        fclose(g);
    }
    return p;
}

/* numbered_csv's rows as BGZF with 64-byte blocks; when corrupt, block 1's
 * deflate data is damaged (block 0 holds the header and first rows). */
static char *numbered_bgzf(const char *name, int n, int corrupt) {
    char *plain = numbered_csv("tmp.csv", n, -1, 0), *p = bgzf_copy(plain, name, 64, corrupt);
    free(plain);
    return p;
}

/* Shards 0..R-1 of a plain CSV hold every row once, in order, each in the
 * shard its virtual shard (pos * V / extent) belongs to. */
static void check_byte_shards(const char *p, int n) {
    const uint64_t V = 420; /* divisible by 1..7 */
    for (int R = 1; R <= 7; R++) {
        int next = 0;
        for (int r = 0; r < R; r++) {
            ty_data_t *d = NULL;
            char *err = NULL;
            CHECK_EQ_INT(ty_data_load(p, "y", r, R, &d, &err), 0);
            if (!d) {
                fprintf(stderr, "%s\n", err);
                free(err);
                continue;
            }
            for (size_t i = 0; i < d->rows; i++, next++) {
                CHECK(d->x[i * 2] == (float)next && d->x[i * 2 + 1] == 2.0f * next);
                uint64_t v = d->pos[i] * V / d->extent;
                v = v < V ? v : V - 1; /* as train.c: past the extent is the last's */
                CHECK(v >= V / (uint64_t)R * (uint64_t)r &&
                      v < V / (uint64_t)R * (uint64_t)(r + 1));
                CHECK(i == 0 || d->pos[i] > d->pos[i - 1]);
            }
            ty_data_destroy(&d);
        }
        CHECK_EQ_INT(next, n);
    }
}

/* n 2x2 images (pixel = 10*image + k) and labels, plain or gzip; the
 * images file loses its last `cut` bytes. */
static char *idx_pair(const char *tag, int n, int gz, int cut) {
    unsigned char img[16 + 4 * 16] = {0, 0, 8, 3, 0, 0, 0, (unsigned char)n,
                                      0, 0, 0, 2, 0, 0, 0, 2};
    unsigned char lab[8 + 16] = {0, 0, 8, 1, 0, 0, 0, (unsigned char)n};
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 4; k++)
            img[16 + 4 * i + k] = (unsigned char)(10 * i + k);
        lab[8 + i] = (unsigned char)(i % 10);
    }
    char *ip = ty_xasprintf("%s/%s-img", dir, tag), *lp = ty_xasprintf("%s/%s-lab", dir, tag);
    gzFile f = gzopen(ip, gz ? "wb" : "wbT");
    gzwrite(f, img, (unsigned)(16 + 4 * n - cut));
    gzclose(f);
    f = gzopen(lp, gz ? "wb" : "wbT");
    gzwrite(f, lab, (unsigned)(8 + n));
    gzclose(f);
    char *spec = ty_xasprintf("idx:%s,%s", ip, lp);
    free(ip);
    free(lp);
    return spec;
}

/* IDX images as BGZF, a block per image (4 bytes; blocks 0-3 hold the
 * header): each shard reads from its own block on; with block 5 (image 1)
 * damaged, the later shards still load and the first says why it cannot */
static void check_idx_bgzf(void) {
    char *spec = idx_pair("bg", 9, 1, 0), *comma = strchr(spec, ',');
    char *img = ty_xstrndup(spec + 4, (size_t)(comma - spec - 4));
    for (int corrupt = 0; corrupt <= 1; corrupt++) {
        char *b = bgzf_copy(img, corrupt ? "bad-img.gz" : "bg-img.gz", 4, corrupt ? 5 : 0);
        char *bspec = ty_xasprintf("idx:%s%s", b, comma);
        for (int r = 0; r < 3; r++) {
            ty_data_t *d = NULL;
            char *err = NULL;
            int rc = ty_data_load(bspec, NULL, r, 3, &d, &err);
            if (corrupt && r == 0) {
                CHECK(rc != 0);
                free(err);
                continue;
            }
            CHECK_EQ_INT(rc, 0);
            free(err);
            if (d) {
                CHECK_EQ_INT(d->rows, 3);
                CHECK(fabsf(d->x[1] - (30 * r + 1) / 255.0f) < 1e-6f);
                CHECK(d->y[2] == (float)(3 * r + 2));
            }
            ty_data_destroy(&d);
        }
        free(bspec);
        free(b);
    }
    free(img);
    free(spec);
}

static void check_idx_shards(void) {
    for (int gz = 0; gz <= 1; gz++) {
        char *spec = idx_pair(gz ? "gz" : "plain", 9, gz, 0);
        for (int r = 0; r < 3; r++) {
            ty_data_t *d = NULL;
            char *err = NULL;
            CHECK_EQ_INT(ty_data_load(spec, NULL, r, 3, &d, &err), 0);
            if (d) {
                CHECK_EQ_INT(d->rows, 3);
                CHECK_EQ_INT(d->pos[0], 3 * r);
                CHECK(fabsf(d->x[1] - (30 * r + 1) / 255.0f) < 1e-6f);
                CHECK(d->y[2] == (float)(3 * r + 2));
            }
            ty_data_destroy(&d);
        }
        free(spec);
        /* the last image is cut short: the shards before it never read there */
        spec = idx_pair(gz ? "gzcut" : "plaincut", 9, gz, 2);
        ty_data_t *d = NULL;
        char *err = NULL;
        CHECK_EQ_INT(ty_data_load(spec, NULL, 0, 3, &d, &err), 0);
        ty_data_destroy(&d);
        CHECK_EQ_INT(ty_data_load(spec, NULL, 1, 3, &d, &err), 0);
        ty_data_destroy(&d);
        CHECK_EQ_INT(ty_data_load(spec, NULL, 2, 3, &d, &err), TY_EPARSE);
        CHECK_CONTAINS(err, "truncated IDX data");
        free(err);
        free(spec);
    }
}

/* Damaged files: seeded byte flips, junk and truncations of a plain, a gzip
 * and a BGZF CSV and of an IDX image file.  Every shard either loads rows
 * it can account for or fails with a message; nothing crashes, leaks or
 * reads out of bounds (the debug build runs this under ASan/UBSan). */
static void check_damage(void) {
    char *base[4] = {numbered_csv("d.csv", 120, -1, 0), numbered_csv("d.csv.gz", 120, -1, 1),
                     numbered_bgzf("d.bgzf.csv.gz", 120, 0), NULL};
    char *spec = idx_pair("dmg", 9, 1, 0);
    base[3] = ty_xstrdup(spec + 4);
    *strchr(base[3], ',') = '\0'; /* the image file; its labels stay intact */
    uint64_t seed = 42;
    int loaded = 0, refused = 0;
    for (int f = 0; f < 4; f++) {
        ty_buf_t orig = {0};
        CHECK_EQ_INT(ty_read_file(base[f], &orig), 0);
        for (int round = 0; round < 60; round++) {
            ty_buf_t b = {0};
            ty_buf_append(&b, orig.data, orig.len);
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t at = (size_t)(seed >> 33) % b.len;
            switch (round % 3) {
            case 0: /* a few flipped bytes */
                for (int k = 0; k < 1 + round % 4; k++)
                    b.data[(at + (size_t)k * 7) % b.len] ^= (char)(0x5a + k);
                break;
            case 1: /* cut short */
                b.len = at;
                break;
            default: /* junk bytes over a stretch */
                for (size_t k = at; k < b.len && k < at + 9; k++)
                    b.data[k] = (char)(k * 31 + 0x80);
            }
            CHECK_EQ_INT(ty_write_file_atomic(base[f], b.data, b.len), 0);
            for (int r = 0; r < 3; r++) {
                ty_data_t *d = NULL;
                char *err = NULL;
                int rc = ty_data_load(f == 3 ? spec : base[f], NULL, r, 3, &d, &err);
                if (rc == 0) {
                    CHECK(d != NULL && err == NULL);
                    CHECK(d->rows == 0 || (d->x && d->y && d->pos));
                    for (size_t i = 1; i < d->rows; i++)
                        CHECK(d->pos[i] > d->pos[i - 1]);
                    loaded++;
                } else {
                    CHECK(rc < 0 && d == NULL && err != NULL && *err);
                    refused++;
                }
                ty_data_destroy(&d);
                free(err);
            }
            ty_buf_free(&b);
        }
        ty_buf_free(&orig);
        free(base[f]);
    }
    free(spec);
    fprintf(stderr, "damaged files: %d shards loaded, %d refused\n", loaded, refused);
    CHECK(loaded > 50 && refused > 50); /* both outcomes were exercised */
}

/* Numbers: every way of writing one reads as strtod() reads it (the fast
 * path must agree bit for bit), and what is not a number is refused. */
static void check_numbers(void) {
    ty_buf_t b = {0};
    char(*vals)[48] = ty_xcalloc(4000, sizeof *vals);
    static const char *fixed[] = {"0",
                                  "-0",
                                  "+5",
                                  "007.50",
                                  ".5",
                                  "5.",
                                  "1E3",
                                  "-2.5e-3",
                                  "1e22",
                                  "1e23",
                                  "1e-22",
                                  "1e-30",
                                  "3.14159265358979323846",
                                  "123456789012345",
                                  "1234567890123456",
                                  "0.000001",
                                  "0x10",
                                  "9007199254740993"};
    size_t n = 0;
    for (; n < sizeof fixed / sizeof fixed[0]; n++)
        snprintf(vals[n], sizeof vals[n], "%s", fixed[n]);
    uint64_t x = 12345;
    for (; n < 4000; n++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        double v = ((double)(x >> 11) / 9007199254740992.0 - 0.5) * pow(10, (int)(x % 13) - 6);
        int prec = (int)(x >> 60);
        if (x % 3 == 0)
            snprintf(vals[n], sizeof vals[n], "%.*f", prec, v);
        else if (x % 3 == 1)
            snprintf(vals[n], sizeof vals[n], "%.*e", prec, v);
        else
            snprintf(vals[n], sizeof vals[n], "%.*g", prec, v);
    }
    ty_buf_printf(&b, "v,y\n");
    for (size_t i = 0; i < n; i++)
        ty_buf_printf(&b, "%s,1\n", vals[i]);
    char *p = ty_xasprintf("%s/numbers.csv", dir), *err = NULL;
    CHECK_EQ_INT(ty_write_file_atomic(p, b.data, b.len), 0);
    ty_data_t *d = NULL;
    CHECK_EQ_INT(ty_data_load(p, NULL, 0, 1, &d, &err), 0);
    for (size_t i = 0; d && i < n; i++) {
        float want = (float)strtod(vals[i], NULL);
        if (memcmp(&d->x[i], &want, sizeof want) != 0) {
            fprintf(stderr, "'%s' read as %.9g, strtod says %.9g\n", vals[i], d->x[i], want);
            CHECK(0);
        }
    }
    ty_data_destroy(&d);
    static const char *bad[] = {"+",   "-",     ".",    "-.",  "1e",  "1e+",  "e5",
                                "--1", "1.2.3", "1e5x", "inf", "nan", "1e999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        b.len = 0;
        ty_buf_printf(&b, "v,y\n1,1\n%s,1\n", bad[i]);
        CHECK_EQ_INT(ty_write_file_atomic(p, b.data, b.len), 0);
        CHECK_EQ_INT(ty_data_load(p, NULL, 0, 1, &d, &err), TY_EPARSE);
        CHECK_CONTAINS(err, "is not a number");
        free(err);
    }
    ty_buf_free(&b);
    free(vals);
    free(p);
}

int main(void) {
    CHECK(mkdtemp(dir) != NULL);
    char *err = NULL;
    ty_data_t *d = NULL;

    char *p = write_file("h.csv.gz", "a,b,y\n1,2,0\n3,4,1\n\n5,6,1\n7,8,0\n", 1);
    CHECK_EQ_INT(ty_data_load(p, NULL, 0, 1, &d, &err), 0);
    if (d) {
        CHECK_EQ_INT(d->rows, 4);
        CHECK_EQ_INT(d->cols, 2);
        CHECK_STR(d->names[1], "b");
        CHECK_STR(d->target_name, "y");
        CHECK(d->x[2] == 3 && d->y[1] == 1);
    }
    ty_data_destroy(&d);
    /* target by name, and the second of two shards */
    CHECK_EQ_INT(ty_data_load(p, "a", 1, 2, &d, &err), 0);
    if (d) {
        CHECK_EQ_INT(d->rows, 2);
        CHECK_EQ_INT(d->pos[0], 19); /* where "5,6,1" starts, uncompressed */
        CHECK_EQ_INT(d->extent, 31); /* the uncompressed size, from the gzip trailer */
        CHECK(d->y[0] == 5 && d->x[0] == 6 && d->x[1] == 1);
    }
    ty_data_destroy(&d);
    free(p);

    /* a UTF-8 byte order mark before the first line (spreadsheets write
     * one): not part of the first name, and a first row stays a row */
    for (int gz = 0; gz < 2; gz++) {
        p = write_file(gz ? "bom.csv.gz" : "bom.csv",
                       "\xef\xbb\xbf"
                       "a,b,y\n1,2,0\n3,4,1\n",
                       gz);
        CHECK_EQ_INT(ty_data_load(p, "a", 0, 1, &d, &err), 0);
        if (d)
            CHECK(d->rows == 2 && d->y[1] == 3 && strcmp(d->names[0], "b") == 0);
        ty_data_destroy(&d);
        free(p);
        p = write_file(gz ? "bomn.csv.gz" : "bomn.csv",
                       "\xef\xbb\xbf"
                       "1,2,0\n3,4,1\n",
                       gz);
        for (int shards = 1; shards <= 2; shards++) {
            CHECK_EQ_INT(ty_data_load(p, NULL, 0, shards, &d, &err), 0);
            if (d) /* shard 0 of 2 has the first of the two rows */
                CHECK(d->rows == (size_t)(3 - shards) && d->x[0] == 1 && d->y[0] == 0 &&
                      strcmp(d->names[0], "f0") == 0);
            ty_data_destroy(&d);
        }
        free(p);
    }

    p = write_file("crlf.csv", "a,b,y\r\n1,2,0\r\n3,4,1\r\n", 0); /* Windows line ends */
    CHECK_EQ_INT(ty_data_load(p, "y", 0, 1, &d, &err), 0);
    if (d)
        CHECK(d->rows == 2 && d->y[1] == 1 && d->x[3] == 4);
    ty_data_destroy(&d);
    free(p);

    p = write_file("n.csv", "1,2,0\n3,4,1\n", 0);
    CHECK_EQ_INT(ty_data_load(p, "0", 0, 1, &d, &err), 0);
    if (d) {
        CHECK_EQ_INT(d->rows, 2);
        CHECK(d->y[1] == 3 && d->x[0] == 2);
    }
    ty_data_destroy(&d);
    free(p);

    p = write_file("bad.csv", "a,b,y\n1,2,0\n3,x,1\n", 0);
    CHECK_EQ_INT(ty_data_load(p, NULL, 0, 1, &d, &err), TY_EPARSE);
    CHECK_CONTAINS(err, "bad.csv:3: field 2 'x' is not a number");
    free(err);
    free(p);
    p = write_file("ragged.csv", "1,2,0\n3,1\n", 0);
    CHECK_EQ_INT(ty_data_load(p, NULL, 0, 1, &d, &err), TY_EPARSE);
    CHECK_CONTAINS(err, "ragged.csv:2: 2 fields, expected 3");
    free(err);
    free(p);
    CHECK_EQ_INT(ty_data_load("/nonexistent.csv", NULL, 0, 1, &d, &err), TY_EIO);
    free(err);
    p = write_file("two.csv", "1,2,0\n3,4,1\n", 0); /* more shards than rows */
    CHECK_EQ_INT(ty_data_load(p, NULL, 5, 7, &d, &err), 0);
    if (d) {
        CHECK_EQ_INT(d->rows, 0);
        CHECK(d->x != NULL && d->y != NULL && d->pos != NULL);
    }
    ty_data_destroy(&d);
    free(p);
    p = write_file("empty.csv", "\na,b,y\n\n", 0);
    CHECK_EQ_INT(ty_data_load(p, NULL, 1, 2, &d, &err), TY_EPARSE);
    CHECK_CONTAINS(err, "no data rows");
    free(err);
    free(p);

    /* byte-range shards, plain and gzip */
    p = numbered_csv("num.csv.gz", 200, -1, 1);
    check_byte_shards(p, 200);
    free(p);
    p = numbered_csv("num.csv", 200, -1, 0);
    check_byte_shards(p, 200);
    free(p);
    /* two gzip members: the trailer's size is the second's only, so the
     * extent is too small; the last shard still takes every row after it */
    p = ty_xasprintf("%s/members.csv.gz", dir);
    {
        gzFile g = gzopen(p, "wb");
        gzprintf(g, "a,b,y\n");
        for (int i = 0; i < 150; i++)
            gzprintf(g, "%d,%d,%d\n", i, 2 * i, i % 3);
        gzclose(g);
        g = gzopen(p, "ab");
        for (int i = 150; i < 200; i++)
            gzprintf(g, "%d,%d,%d\n", i, 2 * i, i % 3);
        gzclose(g);
    }
    check_byte_shards(p, 200);
    free(p);
    /* BGZF: each shard starts at its own block */
    p = numbered_bgzf("num.bgzf.csv.gz", 200, 0);
    check_byte_shards(p, 200);
    free(p);
    /* ... and never decompresses another shard's blocks: with block 1
     * damaged, the last shard still loads; the first says why it cannot */
    p = numbered_bgzf("bad.bgzf.csv.gz", 200, 1);
    CHECK_EQ_INT(ty_data_load(p, NULL, 3, 4, &d, &err), 0);
    if (d)
        CHECK(d->rows > 30 && d->x[(d->rows - 1) * 2] == 199);
    ty_data_destroy(&d);
    CHECK_EQ_INT(ty_data_load(p, NULL, 0, 4, &d, &err), TY_EIO);
    CHECK_CONTAINS(err, "read error");
    free(err);
    free(p);
    /* a truncated gzip file is an error, not fewer rows */
    p = numbered_csv("cut.csv.gz", 2000, -1, 1);
    CHECK(truncate(p, 300) == 0);
    CHECK_EQ_INT(ty_data_load(p, NULL, 0, 1, &d, &err), TY_EIO);
    CHECK_CONTAINS(err, "read error");
    free(err);
    free(p);
    p = numbered_csv("num.csv", 200, -1, 0);
    CHECK_EQ_INT(ty_data_load(p, NULL, 0, 1, &d, &err), 0);
    if (d) {
        CHECK_EQ_INT(d->rows, 200);
        CHECK_STR(d->names[0], "id");
        CHECK_STR(d->target_name, "y");
        CHECK(d->y[5] == 2);
    }
    ty_data_destroy(&d);
    free(p);
    /* a bad row in the last quarter: only the shard holding it reads it, and
     * says where it is */
    for (int gz = 0; gz <= 1; gz++) {
        p = numbered_csv(gz ? "bad.csv.gz" : "bad.csv", 200, 190, gz);
        for (int r = 0; r < 3; r++) {
            CHECK_EQ_INT(ty_data_load(p, NULL, r, 4, &d, &err), 0);
            ty_data_destroy(&d);
        }
        CHECK_EQ_INT(ty_data_load(p, NULL, 3, 4, &d, &err), TY_EPARSE);
        CHECK_CONTAINS(err, gz ? "bad.csv.gz (line at byte " : "bad.csv (line at byte ");
        CHECK_CONTAINS(err, "field 2 'oops' is not a number");
        free(err);
        free(p);
    }
    check_idx_shards();
    check_idx_bgzf();
    check_numbers();
    check_damage();

    /* IDX: 3 images of 2x2 and their labels, gzip */
    unsigned char img[16 + 12] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2};
    for (int i = 0; i < 12; i++)
        img[16 + i] = (unsigned char)(i * 20);
    unsigned char lab[8 + 3] = {0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9};
    char *ip = ty_xasprintf("%s/img.gz", dir), *lp = ty_xasprintf("%s/lab", dir);
    gzFile f = gzopen(ip, "wb");
    gzwrite(f, img, sizeof img);
    gzclose(f);
    f = gzopen(lp, "wbT");
    gzwrite(f, lab, sizeof lab);
    gzclose(f);
    char *spec = ty_xasprintf("idx:%s,%s", ip, lp);
    CHECK_EQ_INT(ty_data_load(spec, NULL, 0, 1, &d, &err), 0);
    if (d) {
        CHECK_EQ_INT(d->rows, 3);
        CHECK_EQ_INT(d->cols, 4);
        CHECK(d->y[2] == 9);
        CHECK(fabsf(d->x[5] - 100 / 255.0f) < 1e-6f);
    }
    ty_data_destroy(&d);
    free(spec);
    spec = ty_xasprintf("idx:%s", ip); /* images alone: rows without targets */
    CHECK_EQ_INT(ty_data_load(spec, NULL, 0, 1, &d, &err), 0);
    if (d) {
        CHECK_EQ_INT(d->rows, 3);
        CHECK(!d->has_target && d->y[2] == 0);
        CHECK(fabsf(d->x[5] - 100 / 255.0f) < 1e-6f);
    }
    ty_data_destroy(&d);
    free(spec);
    spec = ty_xasprintf("idx:%s,%s", lp, ip); /* swapped */
    CHECK_EQ_INT(ty_data_load(spec, NULL, 0, 1, &d, &err), TY_EPARSE);
    free(err);
    /* the files a spec reads, by any name: outputs are checked against them */
    char *other = ty_xasprintf("%s/./lab", dir), *csv = write_file("reads.csv", "1,0\n", 0);
    CHECK(ty_data_reads(spec, ip) && ty_data_reads(spec, lp) && ty_data_reads(spec, other));
    CHECK(!ty_data_reads(spec, csv) && ty_data_reads(csv, csv) && !ty_data_reads(csv, ip));
    free(spec);
    spec = ty_xasprintf("idx:%s", ip);
    CHECK(ty_data_reads(spec, ip) && !ty_data_reads(spec, lp));
    CHECK(!ty_data_reads(spec, "/nonexistent"));
    free(spec);
    free(other);
    free(csv);
    free(ip);
    free(lp);
    char *cmd = ty_xasprintf("rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    free(cmd);
    TEST_DONE();
}
