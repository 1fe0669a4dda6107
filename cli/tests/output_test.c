/* Table rendering of master replies, and colours (the JSON: render_test). */
#include "cli/output.h"

#include "common/dag.h"
#include "common/tests/status_fixture.h"
#include "common/tests/ty_test.h"

#include <string.h>

int main(void) {
    ty_status_fixture_t f;
    ty_status_fixture(&f);

    char *buf = NULL;
    size_t n = 0;
    FILE *mf = open_memstream(&buf, &n);
    ty_out_status_table(mf, &f.st);
    fclose(mf);
    CHECK_CONTAINS(buf, "run p-1  pipeline p  state failed");
    CHECK_CONTAINS(buf, "exit code 3");
    CHECK_CONTAINS(buf, "metrics: loss=0.5");
    CHECK_CONTAINS(buf, "2.5s");
    CHECK(strchr(buf, '\033') == NULL); /* colours are off unless turned on */
    free(buf);

    /* colours: a terminal only, NO_COLOR (set and not empty) and TERM=dumb
     * turn them off */
    CHECK(ty_out_colour_wanted(1, NULL, "xterm"));
    CHECK(ty_out_colour_wanted(1, "", "xterm"));
    CHECK(!ty_out_colour_wanted(0, NULL, "xterm"));
    CHECK(!ty_out_colour_wanted(1, "1", "xterm"));
    CHECK(!ty_out_colour_wanted(1, NULL, "dumb"));
    CHECK_STR(ty_out_state_sgr("failed"), "31");
    CHECK_STR(ty_out_state_sgr("succeeded"), "32");
    CHECK(ty_out_state_sgr("waiting") == NULL);
    ty_out_set_colour(1);
    mf = open_memstream(&buf, &n);
    ty_out_status_table(mf, &f.st);
    fclose(mf);
    /* the state coloured, padded to its column as without colour */
    CHECK_CONTAINS(buf, "state \033[31mfailed\033[0m  owner");
    CHECK_CONTAINS(buf, "\033[31mfailed          \033[0m 2 ");
    CHECK_CONTAINS(buf, "upstream_failed \033[0m");
    free(buf);
    ty_out_set_colour(0);
    TEST_DONE();
}
