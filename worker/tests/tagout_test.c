/* Rank prefixes: mpirun's "[JOB,RANK]<stdout>:" becomes "[rank RANK] ",
 * line by line across chunks cut anywhere; untagged lines and a last line
 * without its end pass as they are; a long partial line is not held. */
#include "worker/tagout.h"

#include "common/tests/ty_test.h"

#include <stdlib.h>
#include <string.h>

/* in, cut every `step` bytes, through one tagout; the result (to free). */
static char *feed(const char *in, size_t step) {
    ty_tagout_t t = {0};
    ty_buf_t out = {0};
    size_t n = strlen(in);
    for (size_t i = 0; i < n; i += step)
        ty_tagout_feed(&t, in + i, i + step < n ? step : n - i, 0, &out);
    ty_tagout_feed(&t, "", 0, 1, &out);
    ty_tagout_free(&t);
    ty_buf_append(&out, "", 1);
    return out.data;
}

int main(void) {
    const char *in = "[1,0]<stdout>:epoch 1\n[1,12]<stderr>:oops: [2,3]<stdout>:x\n"
                     "mpirun noticed\n[1,2]<stdout>:\n[x,1]<stdout>:no\n[1,3]<stddiag>:last";
    const char *want = "[rank 0] epoch 1\n[rank 12] oops: [2,3]<stdout>:x\nmpirun noticed\n"
                       "[rank 2] \n[x,1]<stdout>:no\n[rank 3] last";
    for (size_t step = 1; step <= strlen(in); step++) {
        char *got = feed(in, step);
        CHECK_STR(got, want);
        free(got);
    }
    /* a partial line past 64 KiB goes on as it is */
    ty_tagout_t t = {0};
    ty_buf_t out = {0};
    char *big = malloc(70000);
    memset(big, 'a', 70000);
    ty_tagout_feed(&t, big, 70000, 0, &out);
    CHECK_EQ_INT((int)out.len, 70000);
    CHECK_EQ_INT((int)t.part.len, 0);
    free(big);
    ty_buf_free(&out);
    ty_tagout_free(&t);
    TEST_DONE();
}
