#include "common/err.h"
#include "common/tests/ty_test.h"

#include <errno.h>

int main(void) {
    CHECK_STR(ty_strerror(0), "success");
    CHECK_STR(ty_strerror(TY_EINVAL), "invalid argument");
    CHECK_STR(ty_strerror(TY_ESTALE), "stale epoch or attempt");
    CHECK_STR(ty_err_name(TY_ECYCLE), "TY_ECYCLE");
    CHECK(TY_EINVAL < -1000);
    CHECK(TY_EINVAL != TY_ENOENT);
    /* negated errno values pass through to strerror */
    CHECK_STR(ty_strerror(-ENOENT), strerror(ENOENT));
    CHECK_STR(ty_strerror(-999999), "unknown error");
    TEST_DONE();
}
