/* Class labels: --class-names parsing, packing and merging shards' names
 * into one sorted list, renumbering targets, numeric targets' checks; and
 * the CSV reader's class names (data.c), which feed them. */
#include "trainer/labels.h"

#include "common/err.h"
#include "common/tests/ty_test.h"
#include "common/util.h"

#include <unistd.h>

static char dir[] = "/tmp/ty-labels-testXXXXXX";

static ty_data_t *load_text(const char *name, const char *text, const ty_data_opts_t *o, int shard,
                            int nshards, int want_rc, char **err) {
    char *p = ty_xasprintf("%s/%s", dir, name);
    CHECK_EQ_INT(ty_write_file_atomic(p, text, strlen(text)), 0);
    ty_data_t *d = NULL;
    ty_data_opts_t none = {0};
    CHECK_EQ_INT(ty_data_load_opts(p, o ? o : &none, shard, nshards, &d, err), want_rc);
    free(p);
    return d;
}

int main(void) {
    CHECK(mkdtemp(dir) != NULL);
    char *err = NULL;

    /* --class-names */
    ty_labels_t l;
    CHECK_EQ_INT(ty_labels_parse(" T-shirt/top, Trouser ,Ankle boot", &l, &err), 0);
    CHECK_EQ_INT(l.n, 3);
    CHECK_STR(l.names[0], "T-shirt/top");
    CHECK_STR(l.names[1], "Trouser");
    CHECK_STR(l.names[2], "Ankle boot");
    ty_labels_free(&l);
    CHECK_EQ_INT(ty_labels_parse("a,,b", &l, &err), TY_EINVAL);
    CHECK_CONTAINS(err, "an empty name");
    free(err);
    CHECK_EQ_INT(ty_labels_parse("a,b,a", &l, &err), TY_EINVAL);
    CHECK_CONTAINS(err, "'a' is there twice");
    free(err);
    err = NULL;

    /* names as targets, with a header, in order of first appearance */
    const char *iris = "len,wid,species\n1,2,setosa\n3,4,virginica\n5,6,setosa\n7,8,versicolor\n";
    ty_data_t *d = load_text("iris.csv", iris, NULL, 0, 1, 0, &err);
    if (d) {
        CHECK_EQ_INT(d->rows, 4);
        CHECK_EQ_INT(d->nclasses, 3);
        CHECK_STR(d->classes[1], "virginica");
        CHECK(d->y[0] == 0 && d->y[1] == 1 && d->y[2] == 0 && d->y[3] == 2);
        CHECK_EQ_INT(ty_data_class(d, "versicolor"), 2);
        CHECK_EQ_INT(ty_data_class(d, "x"), -1);
    }
    /* the second shard of two sees other names; packed, merged, sorted */
    ty_data_t *d2 = load_text("iris.csv", iris, NULL, 1, 2, 0, &err);
    CHECK(d2 && d2->nclasses == 2 && strcmp(d2->classes[0], "setosa") == 0);
    ty_labels_t all = {0};
    size_t len;
    char *pk = ty_labels_pack(d2, &len);
    CHECK_EQ_INT(len, strlen("setosa") + strlen("versicolor") + 2);
    ty_labels_merge(&all, pk, len);
    free(pk);
    pk = ty_labels_pack(d, &len);
    ty_labels_merge(&all, pk, len);
    free(pk);
    CHECK_EQ_INT(all.n, 3);
    CHECK_STR(all.names[0], "setosa");
    CHECK_STR(all.names[1], "versicolor");
    CHECK_STR(all.names[2], "virginica");
    CHECK_EQ_INT(ty_labels_remap(d, &all, "x.csv", &err), 0);
    if (d)
        CHECK(d->y[0] == 0 && d->y[1] == 2 && d->y[2] == 0 && d->y[3] == 1);
    ty_labels_t two;
    CHECK_EQ_INT(ty_labels_parse("setosa,virginica", &two, &err), 0);
    CHECK_EQ_INT(ty_labels_remap(d2, &two, "val.csv", &err), TY_EINVAL);
    CHECK_CONTAINS(err, "val.csv: class 'versicolor' is not one of the 2 classes");
    free(err);
    err = NULL;
    ty_labels_free(&two);
    ty_labels_free(&all);
    ty_data_destroy(&d);
    ty_data_destroy(&d2);

    /* no header: a name as the target of the first line is data, not a header */
    d = load_text("nohdr.csv", "1,2,cat\n3,4,dog\n", NULL, 0, 1, 0, &err);
    CHECK(d && d->rows == 2 && d->nclasses == 2 && d->has_target);
    ty_data_destroy(&d);
    /* quoted fields (RFC 4180): commas and doubled quotes inside, blanks around */
    d = load_text("q.csv",
                  "\"a\",\"b\",\"species\"\n1,2,\"virginica, big\"\n3,4,\"say \"\"hi\"\"\"\n"
                  " 5 , \"6\" , setosa \n7,8,\"\"\"\"\n",
                  NULL, 0, 1, 0, &err);
    CHECK(d && d->rows == 4 && d->nclasses == 4);
    if (d && d->nclasses == 4) {
        CHECK_STR(d->names[0], "a");
        CHECK_STR(d->classes[0], "virginica, big");
        CHECK_STR(d->classes[1], "say \"hi\"");
        CHECK_STR(d->classes[2], "setosa");
        CHECK_STR(d->classes[3], "\"");
        CHECK(d->x[4] == 5 && d->x[5] == 6);
    }
    ty_data_destroy(&d);
    d = load_text("open.csv", "a,b,y\n1,2,\"cat\n", NULL, 0, 1, TY_EPARSE, &err);
    CHECK_CONTAINS(err, "open.csv:2: a quote left open, or text after a closing quote");
    free(err);
    d = load_text("after.csv", "a,b,y\n1,2,\"cat\"x\n", NULL, 0, 1, TY_EPARSE, &err);
    CHECK_CONTAINS(err, "a quote left open, or text after a closing quote");
    free(err);
    /* numbers and names mixed in one column: an error saying where */
    d = load_text("mixed.csv", "a,b,y\n1,2,0\n3,4,cat\n", NULL, 0, 1, TY_EPARSE, &err);
    CHECK_CONTAINS(err, "mixed.csv:3: field 3 'cat' is a class name, but earlier targets are "
                        "numbers");
    free(err);
    d = load_text("mixed2.csv", "a,b,y\n1,2,cat\n3,4,1\n", NULL, 0, 1, TY_EPARSE, &err);
    CHECK_CONTAINS(err, "'1' is a number, but earlier targets are class names");
    free(err);
    d = load_text("empty.csv", "a,b,y\n1,2,cat\n3,4,\n", NULL, 0, 1, TY_EPARSE, &err);
    CHECK_CONTAINS(err, "the target is empty");
    free(err);

    /* an ID column taken for the target: too many class names */
    {
        ty_buf_t many = {0};
        ty_buf_printf(&many, "a,id\n");
        for (int i = 0; i <= TY_DATA_MAX_CLASSES; i++)
            ty_buf_printf(&many, "1,u%d\n", i);
        d = load_text("ids.csv", many.data, NULL, 0, 1, TY_EPARSE, &err);
        CHECK_CONTAINS(err, "'u100000' is one class name too many (100000)");
        free(err);
        ty_buf_free(&many);
    }
    /* unlabeled data for predict: as many columns as the model has features */
    ty_data_opts_t o = {.target_hint = "species", .nfeatures = 2};
    d = load_text("unl.csv", "len,wid\n1,2\n3,4\n", &o, 0, 1, 0, &err);
    CHECK(d && d->rows == 2 && d->cols == 2 && !d->has_target && d->x[3] == 4);
    ty_data_destroy(&d);
    d = load_text("unl2.csv", "1,2\n3,4\n", &o, 0, 1, 0, &err);
    CHECK(d && d->rows == 2 && d->cols == 2 && !d->has_target);
    ty_data_destroy(&d);
    /* ... and labeled data: the hint finds the target wherever it is */
    d = load_text("lab.csv", "species,len,wid\ncat,1,2\n", &o, 0, 1, 0, &err);
    CHECK(d && d->cols == 2 && d->has_target && d->x[0] == 1 && d->nclasses == 1);
    ty_data_destroy(&d);

    /* numeric targets */
    uint32_t mx = 99;
    d = load_text("num.csv", "1,0\n2,3\n4,1\n", NULL, 0, 1, 0, &err);
    CHECK_EQ_INT(ty_labels_numeric(d, &mx, &err), 0);
    CHECK_EQ_INT(mx, 3);
    ty_data_destroy(&d);
    d = load_text("frac.csv", "1,0\n2,1.5\n", NULL, 0, 1, 0, &err);
    CHECK_EQ_INT(ty_labels_numeric(d, &mx, &err), TY_EINVAL);
    CHECK_CONTAINS(err, "not 1.5");
    free(err);
    ty_data_destroy(&d);

    char *cmd = ty_xasprintf("rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    free(cmd);
    TEST_DONE();
}
