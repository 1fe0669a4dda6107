/* JSON text: the fewest digits that read back the same, escapes, order,
 * indentation, and what jansson parses back equal to what went in. */
#include "common/json.h"

#include "common/tests/ty_test.h"

#include <stdlib.h>
#include <string.h>

static void real_is(double v, const char *want) {
    char buf[40];
    ty_json_real(buf, sizeof buf, v);
    CHECK_STR(buf, want);
}

int main(void) {
    real_is(0.05, "0.05");
    real_is(0.1 + 0.2, "0.30000000000000004");
    real_is(2, "2.0");
    real_is(-1.5, "-1.5");
    real_is(1e300, "1e+300");
    real_is(123456789012.5, "123456789012.5");
    real_is(5e-324, "5e-324");
    /* every one of many doubles reads back the same */
    unsigned long x = 88172645463325252UL;
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double v;
        memcpy(&v, &x, sizeof v);
        if (v != v || v - v != 0) /* nan, inf */
            continue;
        char buf[40];
        ty_json_real(buf, sizeof buf, v);
        CHECK(strtod(buf, NULL) == v);
    }

    json_t *j = json_pack("{s:s, s:f, s:[i, b, n], s:{}, s:[]}", "name", "a \"q\"\n\\ \x01 é",
                          "loss", 0.05, "list", 3, 1, "empty", "none");
    char *one = ty_json_text(j, 0);
    CHECK_STR(one, "{\"name\":\"a \\\"q\\\"\\n\\\\ \\u0001 é\",\"loss\":0.05,"
                   "\"list\":[3,true,null],\"empty\":{},\"none\":[]}");
    char *two = ty_json_text(j, 2);
    CHECK_STR(two, "{\n  \"name\": \"a \\\"q\\\"\\n\\\\ \\u0001 é\",\n  \"loss\": 0.05,\n"
                   "  \"list\": [\n    3,\n    true,\n    null\n  ],\n  \"empty\": {},\n"
                   "  \"none\": []\n}");
    json_error_t err;
    json_t *back = json_loads(two, 0, &err);
    CHECK(back && json_equal(back, j));
    json_decref(back);
    free(one);
    free(two);
    json_decref(j);
    char *null = ty_json_text(NULL, 2);
    CHECK_STR(null, "null");
    free(null);
    TEST_DONE();
}
