/* cron: parsing and its errors, the next fire in UTC, names, macros, the
 * two day fields, and both changes of daylight saving time in
 * America/New_York and Europe/Berlin (2026). */
#include "common/cron.h"
#include "common/err.h"
#include "common/tests/ty_test.h"

#include <stdlib.h>

static int64_t next_of(const char *expr, const char *tz, int64_t after) {
    ty_cron_t *c = NULL;
    char *why = NULL;
    if (ty_cron_parse(expr, tz, &c, &why) != 0) {
        fprintf(stderr, "parse '%s': %s\n", expr, why);
        free(why);
        return -2;
    }
    int64_t t = ty_cron_next(c, after);
    ty_cron_destroy(&c);
    return t;
}

static void refused(const char *expr, const char *tz, const char *want) {
    ty_cron_t *c = NULL;
    char *why = NULL;
    CHECK_EQ_INT(ty_cron_parse(expr, tz, &c, &why), TY_EINVAL);
    CHECK(c == NULL);
    CHECK(why && strstr(why, want) != NULL);
    if (why && !strstr(why, want))
        fprintf(stderr, "'%s': %s\n", expr, why);
    free(why);
}

int main(void) {
    /* errors, each naming what is wrong */
    refused("61 * * * *", NULL, "minute field '61': a value out of range (allowed 0-59)");
    refused("* * *", NULL, "has 3 fields");
    refused("* * * * * *", NULL, "more than 5 fields");
    refused("0 0 31 2 *", NULL, "never fires");
    refused("0 0 30,31 FEB *", NULL, "never fires");
    refused("*/0 * * * *", NULL, "a bad step");
    refused("5-1 * * * *", NULL, "runs backwards");
    refused("0 0 * FOO *", NULL, "month field 'FOO'");
    refused("0 0 * * 8", NULL, "day of week field '8'");
    refused("@fortnightly", NULL, "unknown cron macro");
    refused("0 0 * * *", "Mars/Olympus_Mons", "unknown time zone 'Mars/Olympus_Mons'");
    refused("0 0 * * *", "../etc/passwd", "unknown time zone");
    refused("", NULL, "has 0 fields");

    /* UTC */
    CHECK_EQ_INT(next_of("*/15 * * * *", NULL, 1767226020), 1767226500);        /* 00:07 -> 00:15 */
    CHECK_EQ_INT(next_of("*/15 * * * *", "UTC", 1767226500), 1767226500 + 900); /* strictly after */
    CHECK_EQ_INT(next_of("0 9 * * MON-FRI", NULL, 1767441600), 1767603600); /* Sat -> Mon 09:00 */
    CHECK_EQ_INT(next_of("0 9 * * mon-fri", NULL, 1767441600), 1767603600);
    CHECK_EQ_INT(next_of("0 0 29 2 *", NULL, 1772323200), 1835395200); /* the next 29 February */
    CHECK_EQ_INT(next_of("@hourly", NULL, 1767226020), 1767229200);
    CHECK_EQ_INT(next_of("@daily", NULL, 1767226020), 1767226020 - 420 + 86400);
    CHECK_EQ_INT(next_of("0 0 * * 7", NULL, 1769904000), 1769904000 + 7 * 86400); /* 7: Sunday */
    /* both day fields restricted: either; one of them '*': both */
    CHECK_EQ_INT(next_of("0 0 13 * FRI", NULL, 1769904000), 1770336000); /* Fri 6 Feb */
    CHECK_EQ_INT(next_of("0 0 13 * *", NULL, 1769904000), 1770940800);   /* 13 Feb */
    /* '*' first (Vixie): both, the 1st, 14th or 27th and a Friday: 27 Feb */
    CHECK_EQ_INT(next_of("0 0 */13 * FRI", NULL, 1769904000 + 86400), 1770336000 + 21 * 86400);
    CHECK_EQ_INT(next_of("0 0 1-31/2 JAN,MAR * ", NULL, 1767226020), 1767225600 + 2 * 86400);

    /* America/New_York: 8 March 2026 02:00 EST -> 03:00 EDT (07:00Z) */
    CHECK_EQ_INT(next_of("30 2 * * *", "America/New_York", 1772884800), 1772953200); /* gap end */
    CHECK_EQ_INT(next_of("30 2 * * *", "America/New_York", 1772953200),
                 1773037800); /* then 02:30 EDT */
    CHECK_EQ_INT(next_of("*/30 * * * *", "America/New_York", 1772952300), 1772953200); /* once */
    CHECK_EQ_INT(next_of("*/30 * * * *", "America/New_York", 1772953200), 1772955000);
    /* 1 November 2026 02:00 EDT -> 01:00 EST (06:00Z): 01:30 fires once, the first time */
    CHECK_EQ_INT(next_of("30 1 * * *", "America/New_York", 1793448000), 1793511000); /* EDT */
    CHECK_EQ_INT(next_of("30 1 * * *", "America/New_York", 1793511000), 1793601000); /* next day */
    CHECK_EQ_INT(next_of("*/15 * * * *", "America/New_York", 1793511900), 1793516400);
    /* Europe/Berlin: 29 March 2026 02:00 CET -> 03:00 CEST (01:00Z) */
    CHECK_EQ_INT(next_of("30 2 * * *", "Europe/Berlin", 1774699200), 1774746000);
    CHECK_EQ_INT(next_of("30 2 * * *", "Europe/Berlin", 1774746000), 1774830600);
    /* 25 October 2026 03:00 CEST -> 02:00 CET (01:00Z) */
    CHECK_EQ_INT(next_of("30 2 * * *", "Europe/Berlin", 1792843200), 1792888200); /* CEST */
    CHECK_EQ_INT(next_of("30 2 * * *", "Europe/Berlin", 1792888200), 1792978200);

    char buf[64];
    ty_tz_format("America/New_York", 1772953200, buf, sizeof buf);
    CHECK_STR(buf, "2026-03-08 03:00 EDT");
    ty_tz_format("Europe/Berlin", 1792888200, buf, sizeof buf);
    CHECK_STR(buf, "2026-10-25 02:30 CEST");
    ty_tz_format(NULL, 1767226020, buf, sizeof buf);
    CHECK_STR(buf, "2026-01-01 00:07 UTC");
    CHECK(getenv("TZ") == NULL); /* the process's zone is left as it was */
    TEST_DONE();
}
