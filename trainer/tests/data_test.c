/* CSV (header or not, gzip, target by name or index, sharding, errors) and
 * IDX loading. */
#include "trainer/data.h"

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
        CHECK_EQ_INT(d->first_row, 2);
        CHECK_EQ_INT(d->total_rows, 4);
        CHECK(d->y[0] == 5 && d->x[0] == 6 && d->x[1] == 1);
    }
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
    spec = ty_xasprintf("idx:%s,%s", lp, ip); /* swapped */
    CHECK_EQ_INT(ty_data_load(spec, NULL, 0, 1, &d, &err), TY_EPARSE);
    free(err);
    free(spec);
    free(ip);
    free(lp);
    char *cmd = ty_xasprintf("rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    free(cmd);
    TEST_DONE();
}
