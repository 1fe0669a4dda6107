/* The cron parser: an expression, and after a newline a time zone name;
 * what parses gives its next fire times. */
#include "common/cron.h"
#include "fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = fz_str(data, size);
    char *nl = strchr(s, '\n');
    const char *tz = "UTC";
    if (nl) {
        *nl = '\0';
        tz = nl + 1;
    }
    ty_cron_t *c = NULL;
    char *why = NULL;
    if (ty_cron_parse(s, tz, &c, &why) == 0) {
        int64_t t = 1800000000;
        for (int i = 0; i < 4 && t >= 0; i++)
            t = ty_cron_next(c, t);
        ty_cron_destroy(&c);
    }
    free(why);
    free(s);
    return 0;
}
