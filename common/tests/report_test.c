#include "common/report.h"
#include "common/err.h"
#include "common/tests/ty_test.h"

static int parse(const char *s, Ty__ReportItem *it) { return ty_report_parse(s, strlen(s), it); }

int main(void) {
    Ty__ReportItem it;
    CHECK_EQ_INT(parse("metric loss 0.41 3", &it), 0);
    CHECK_EQ_INT(it.kind, TY_REPORT_METRIC);
    CHECK_STR(it.name, "loss");
    CHECK(it.value > 0.409 && it.value < 0.411);
    CHECK_EQ_INT(it.step, 3);
    ty_report_item_clear(&it);

    CHECK_EQ_INT(parse("metric acc 1e-1", &it), 0);
    CHECK_EQ_INT(it.step, 0);
    ty_report_item_clear(&it);

    CHECK_EQ_INT(parse("progress 0.5 epoch 5/10", &it), 0);
    CHECK_EQ_INT(it.kind, TY_REPORT_PROGRESS);
    CHECK_STR(it.text, "epoch 5/10");
    ty_report_item_clear(&it);

    CHECK_EQ_INT(parse("tag owner ml team", &it), 0);
    CHECK_STR(it.name, "owner");
    CHECK_STR(it.text, "ml team");
    ty_report_item_clear(&it);

    CHECK_EQ_INT(parse("artifact model out/m.bin", &it), 0);
    CHECK_EQ_INT(it.kind, TY_REPORT_ARTIFACT);
    ty_report_item_clear(&it);

    CHECK_EQ_INT(parse("register fashion out/m.bin", &it), 0);
    CHECK_EQ_INT(it.kind, TY_REPORT_REGISTER);
    CHECK_STR(it.name, "fashion");
    CHECK_STR(it.text, "out/m.bin");
    ty_report_item_clear(&it);

    const char *bad[] = {"",
                         "metric",
                         "metric loss",
                         "register fashion",
                         "metric loss abc",
                         "metric loss 1 2.5",
                         "metric loss 1 2 3",
                         "progress 1.5",
                         "progress x",
                         "tag k",
                         "bogus 1 2",
                         "metric loss nan"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = parse(bad[i], &it);
        if (rc != TY_EPARSE)
            fprintf(stderr, "accepted bad line '%s'\n", bad[i]);
        CHECK_EQ_INT(rc, TY_EPARSE);
        ty_report_item_clear(&it);
    }
    char big[TY_REPORT_LINE_MAX + 10];
    memset(big, 'a', sizeof big);
    memcpy(big, "tag k ", 6);
    CHECK_EQ_INT(ty_report_parse(big, sizeof big, &it), TY_EPARSE);
    TEST_DONE();
}
