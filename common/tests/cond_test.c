/* cond: conditions on upstream metrics, parsed and evaluated; what a bad
 * one says; a name without a value. */
#include "common/cond.h"
#include "common/err.h"
#include "common/tests/ty_test.h"

#include <stdlib.h>

static int lookup(void *arg, const char *name, double *v) {
    (void)arg;
    static const struct {
        const char *n;
        double v;
    } vals[] = {{"drift.psi_max", 0.25}, {"drift.ks_p", 0.2}, {"eval.accuracy", 0.91}};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        if (strcmp(vals[i].n, name) == 0) {
            *v = vals[i].v;
            return 0;
        }
    return -1;
}

static int eval(const char *s) {
    ty_cond_t *c = NULL;
    char *why = NULL;
    if (ty_cond_parse(s, &c, &why) != 0) {
        fprintf(stderr, "%s: %s\n", s, why);
        free(why);
        return -2;
    }
    const char *missing = NULL;
    int r = ty_cond_eval(c, lookup, NULL, &missing);
    ty_cond_destroy(&c);
    return r;
}

static void bad(const char *s, const char *want) {
    ty_cond_t *c = NULL;
    char *why = NULL;
    CHECK_EQ_INT(ty_cond_parse(s, &c, &why), TY_EINVAL);
    CHECK(c == NULL && why && strstr(why, want) != NULL);
    if (why && !strstr(why, want))
        fprintf(stderr, "'%s': %s\n", s, why);
    free(why);
}

int main(void) {
    CHECK_EQ_INT(eval("drift.psi_max > 0.2 or drift.ks_p < 0.01"), 1);
    CHECK_EQ_INT(eval("drift.psi_max > 0.3 or drift.ks_p < 0.01"), 0);
    CHECK_EQ_INT(eval("drift.psi_max > 0.2 and drift.ks_p < 0.01"), 0);
    CHECK_EQ_INT(eval("not (drift.psi_max > 0.2 and drift.ks_p < 0.01)"), 1);
    CHECK_EQ_INT(eval("(drift.psi_max >= 0.25) and eval.accuracy != 0.5"), 1);
    CHECK_EQ_INT(eval("0.91 == eval.accuracy"), 1);
    CHECK_EQ_INT(eval("eval.accuracy <= 9.1e-1 and -1 < 0"), 1);
    CHECK_EQ_INT(eval("drift.psi_max < 1 or drift.ks_p > 0 and eval.accuracy > 2"),
                 1); /* and first */
    /* a name without a value: undecided, and named */
    ty_cond_t *c = NULL;
    char *why = NULL;
    CHECK_EQ_INT(ty_cond_parse("drift.psi_max > 0.2 or drift.other > 1", &c, &why), 0);
    const char *const *names;
    CHECK_EQ_INT(ty_cond_names(c, &names), 2);
    CHECK_STR(names[1], "drift.other");
    const char *missing = NULL;
    CHECK_EQ_INT(ty_cond_eval(c, lookup, NULL, &missing), -1);
    CHECK_STR(missing, "drift.other");
    ty_cond_destroy(&c);

    bad("drift.psi_max > )", "expected a number or TASK.METRIC");
    bad("drift.psi_max >", "unexpected end at column 16");
    bad("drift.psi_max", "expected a comparison");
    bad("psi_max > 1", "expected TASK.METRIC");
    bad("(drift.a > 1", "expected ')'");
    bad("drift.a > 1 xor drift.b < 2", "unexpected text");
    bad("drift.a > 1 and", "unexpected end");
    bad("", "unexpected end");
    TEST_DONE();
}
