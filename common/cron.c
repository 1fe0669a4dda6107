/* Cron expressions in a time zone (see cron.h).  The search runs on civil
 * wall-clock fields (no time zone), and each matching wall time is then
 * placed in the zone: the earliest instant whose wall time is that one
 * (the first of two in a repeated hour), or the end of the gap for a wall
 * time the zone skips.  Offsets come from the C library's tz database
 * (localtime_r under TZ=:<zone>, the process's TZ restored after). */
#include "common/cron.h"

#include "common/err.h"
#include "common/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct ty_cron {
    uint64_t min;           /* bits 0-59 */
    uint32_t hour;          /* bits 0-23 */
    uint32_t dom;           /* bits 1-31 */
    uint32_t mon;           /* bits 1-12 */
    uint32_t dow;           /* bits 0-6, Sunday 0 */
    int dom_star, dow_star; /* the field starts with '*' */
    char *tz;               /* NULL: UTC */
};

/* ---- civil dates (proleptic Gregorian; H. Hinnant's algorithms) ---- */

static int64_t ty_days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void ty_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static unsigned ty_days_in_month(int64_t y, unsigned m) {
    static const unsigned n[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : n[m - 1];
}

typedef struct {
    int64_t y;
    unsigned mo, d, h, mi;
} ty_wall_t;

static int64_t ty_wall_secs(const ty_wall_t *w) { /* the wall time read as if UTC */
    return ty_days_from_civil(w->y, w->mo, w->d) * 86400 + w->h * 3600 + w->mi * 60;
}

static void ty_wall_from_secs(int64_t s, ty_wall_t *w) {
    int64_t days = s >= 0 ? s / 86400 : -((-s + 86399) / 86400);
    int64_t rem = s - days * 86400;
    ty_civil_from_days(days, &w->y, &w->mo, &w->d);
    w->h = (unsigned)(rem / 3600);
    w->mi = (unsigned)(rem % 3600 / 60);
}

/* ---- zones ---- */

static char *ty_saved_tz;
static int ty_tz_depth;

static void ty_tz_enter(const char *tz) {
    if (ty_tz_depth++ == 0) {
        const char *cur = getenv("TZ");
        ty_saved_tz = cur ? ty_xstrdup(cur) : NULL;
    }
    char *v = ty_xasprintf(":%s", tz && *tz ? tz : "UTC");
    setenv("TZ", v, 1);
    free(v);
    tzset();
}

static void ty_tz_leave(void) {
    if (--ty_tz_depth > 0)
        return;
    if (ty_saved_tz)
        setenv("TZ", ty_saved_tz, 1);
    else
        unsetenv("TZ");
    free(ty_saved_tz);
    ty_saved_tz = NULL;
    tzset();
}

/* The zone's offset from UTC (seconds east) at instant t; inside enter/leave. */
static int64_t ty_offset(int64_t t) {
    time_t tt = (time_t)t;
    struct tm tm;
    if (!localtime_r(&tt, &tm))
        return 0;
    return tm.tm_gmtoff;
}

int ty_tz_check(const char *tz, char **why) {
    if (!tz || !*tz || strcmp(tz, "UTC") == 0)
        return 0;
    int ok = tz[0] != '/' && strstr(tz, "..") == NULL && strlen(tz) < 128;
    for (const char *p = tz; ok && *p; p++)
        ok = isalnum((unsigned char)*p) || strchr("/_+-", *p) != NULL;
    const char *dir = getenv("TZDIR");
    char *path = ty_xasprintf("%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", tz);
    struct stat st;
    ok = ok && stat(path, &st) == 0 && S_ISREG(st.st_mode);
    free(path);
    if (!ok) {
        if (why)
            *why = ty_xasprintf("unknown time zone '%.128s' (want a tz database name such as "
                                "Europe/Berlin or UTC)",
                                tz);
        return TY_EINVAL;
    }
    return 0;
}

void ty_tz_format(const char *tz, int64_t t, char *buf, unsigned n) {
    ty_tz_enter(tz);
    time_t tt = (time_t)t;
    struct tm tm;
    if (!localtime_r(&tt, &tm) || !strftime(buf, n, "%Y-%m-%d %H:%M %Z", &tm))
        snprintf(buf, n, "?");
    ty_tz_leave();
}

/* The earliest instant whose wall time in the zone is w; for a wall time
 * the zone skips, the end of the gap. */
static int64_t ty_place(const ty_wall_t *w) {
    int64_t ws = ty_wall_secs(w);
    int64_t oa = ty_offset(ws - 2 * 86400), ob = ty_offset(ws + 2 * 86400);
    int64_t ua = ws - oa, ub = ws - ob, best = -1;
    if (ua + ty_offset(ua) == ws)
        best = ua;
    if (ub + ty_offset(ub) == ws && (best < 0 || ub < best))
        best = ub;
    if (best >= 0 || oa == ob)
        return best >= 0 ? best : ua;
    /* in the gap: the first instant with the later offset */
    int64_t lo = ua < ub ? ua : ub, hi = ua < ub ? ub : ua;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (ty_offset(mid) == ob)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* ---- parsing ---- */

static const char *const ty_months[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                        "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const ty_days[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

typedef struct {
    const char *name;
    unsigned lo, hi;
    const char *const *names; /* 3-letter names, valued from lo */
    size_t nnames;
} ty_field_t;

static const ty_field_t ty_fields[5] = {
    {"minute", 0, 59, NULL, 0},        {"hour", 0, 23, NULL, 0},
    {"day of month", 1, 31, NULL, 0},  {"month", 1, 12, ty_months, 12},
    {"day of week", 0, 7, ty_days, 7},
};

static int ty_value(const ty_field_t *f, const char **p, unsigned *out) {
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        unsigned v = 0;
        while (isdigit((unsigned char)*s) && v < 1000)
            v = v * 10 + (unsigned)(*s++ - '0');
        *out = v;
        *p = s;
        return v >= f->lo && v <= f->hi ? 0 : -1;
    }
    for (size_t i = 0; i < f->nnames; i++)
        if (strncasecmp(s, f->names[i], 3) == 0 && !isalpha((unsigned char)s[3])) {
            *out = f->lo + (unsigned)i;
            *p = s + 3;
            return 0;
        }
    return -2;
}

/* One field into bits; 0, or -1 with *why. */
static int ty_field(const ty_field_t *f, const char *text, uint64_t *bits, char **why) {
    *bits = 0;
    const char *p = text;
    for (;;) {
        unsigned a = f->lo, b = f->hi, step = 1;
        int rc = 0;
        if (*p == '*') {
            p++;
        } else {
            rc = ty_value(f, &p, &a);
            if (rc == 0 && *p == '-') {
                p++;
                rc = ty_value(f, &p, &b);
            } else if (rc == 0) {
                b = *p == '/' ? f->hi : a;
            }
        }
        if (rc == 0 && *p == '/') {
            p++;
            if (!isdigit((unsigned char)*p))
                rc = -3;
            step = 0;
            while (rc == 0 && isdigit((unsigned char)*p) && step < 1000)
                step = step * 10 + (unsigned)(*p++ - '0');
            if (rc == 0 && (step == 0 || step > f->hi))
                rc = -3;
        }
        if (rc == 0 && a > b)
            rc = -4;
        if (rc == 0 && *p != ',' && *p != '\0')
            rc = -2;
        if (rc != 0) {
            const char *what = rc == -1   ? "a value out of range"
                               : rc == -3 ? "a bad step"
                               : rc == -4 ? "a range that runs backwards"
                                          : "something that is not a number, name, range or step";
            *why = ty_xasprintf("%s field '%s': %s (allowed %u-%u%s)", f->name, text, what, f->lo,
                                f->hi, f->names ? " or names" : "");
            return -1;
        }
        for (unsigned v = a; v <= b; v += step)
            *bits |= 1ull << v;
        if (*p == '\0')
            return 0;
        p++; /* ',' */
    }
}

static const struct {
    const char *name, *expr;
} ty_macros[] = {{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
                 {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
                 {"@hourly", "0 * * * *"}};

int ty_cron_parse(const char *expr, const char *tz, ty_cron_t **out, char **why) {
    *out = NULL;
    if (!expr)
        expr = "";
    while (isspace((unsigned char)*expr))
        expr++;
    if (*expr == '@') {
        const char *found = NULL;
        for (size_t i = 0; i < sizeof ty_macros / sizeof ty_macros[0]; i++)
            if (strcasecmp(expr, ty_macros[i].name) == 0)
                found = ty_macros[i].expr;
        if (!found) {
            *why = ty_xasprintf("unknown cron macro '%.40s' (want @yearly, @annually, @monthly, "
                                "@weekly, @daily, @midnight or @hourly)",
                                expr);
            return TY_EINVAL;
        }
        expr = found;
    }
    if (ty_tz_check(tz, why) != 0)
        return TY_EINVAL;
    char *copy = ty_xstrdup(expr), *save = NULL, *parts[6];
    size_t n = 0;
    for (char *t = strtok_r(copy, " \t", &save); t && n < 6; t = strtok_r(NULL, " \t", &save))
        parts[n++] = t;
    if (n != 5) {
        *why = ty_xasprintf("cron expression '%.80s' has %s%zu fields (want 5: minute hour "
                            "day-of-month month day-of-week, or an @macro)",
                            expr, n == 6 ? "more than " : "", n == 6 ? (size_t)5 : n);
        free(copy);
        return TY_EINVAL;
    }
    ty_cron_t *c = ty_xcalloc(1, sizeof *c);
    uint64_t bits[5];
    for (int i = 0; i < 5; i++)
        if (ty_field(&ty_fields[i], parts[i], &bits[i], why) != 0) {
            free(copy);
            free(c);
            return TY_EINVAL;
        }
    c->min = bits[0];
    c->hour = (uint32_t)bits[1];
    c->dom = (uint32_t)bits[2];
    c->mon = (uint32_t)bits[3];
    c->dow = (uint32_t)(bits[4] & 0x7f) | (uint32_t)((bits[4] >> 7) & 1); /* 7: Sunday */
    c->dom_star = parts[2][0] == '*';
    c->dow_star = parts[4][0] == '*';
    free(copy);
    c->tz = tz && *tz && strcmp(tz, "UTC") != 0 ? ty_xstrdup(tz) : NULL;
    /* it never fires when the day of month must match and no chosen month
     * has such a day (31 February); the weekdays come every month */
    int fires = !c->dow_star || c->dom_star;
    for (unsigned m = 1; m <= 12 && !fires; m++)
        for (unsigned d = 1; c->mon >> m & 1 && d <= (m == 2 ? 29 : ty_days_in_month(2001, m)); d++)
            fires |= (int)(c->dom >> d & 1);
    if (!fires) {
        *why = ty_xasprintf("cron expression '%.80s' never fires (no month has such a day)", expr);
        free(c->tz);
        free(c);
        return TY_EINVAL;
    }
    *out = c;
    return 0;
}

void ty_cron_destroy(ty_cron_t **c) {
    if (!c || !*c)
        return;
    free((*c)->tz);
    free(*c);
    *c = NULL;
}

/* ---- the search ---- */

static int ty_day_ok(const ty_cron_t *c, const ty_wall_t *w) {
    int dom = c->dom >> w->d & 1;
    int64_t days = ty_days_from_civil(w->y, w->mo, w->d);
    int wd = (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday (4) */
    int dow = c->dow >> wd & 1;
    if (c->dom_star || c->dow_star)
        return dom && dow;
    return dom || dow;
}

/* The first wall time at or after *w that the fields match; -1 past limit_y. */
static int ty_match_from(const ty_cron_t *c, ty_wall_t *w, int64_t limit_y) {
    for (int guard = 0; guard < 200000; guard++) {
        if (w->y > limit_y)
            return -1;
        if (!(c->mon >> w->mo & 1)) {
            w->d = 1, w->h = 0, w->mi = 0;
            if (++w->mo > 12)
                w->mo = 1, w->y++;
            continue;
        }
        if (!ty_day_ok(c, w)) {
            w->h = 0, w->mi = 0;
            if (++w->d > ty_days_in_month(w->y, w->mo)) {
                w->d = 1;
                if (++w->mo > 12)
                    w->mo = 1, w->y++;
            }
            continue;
        }
        if (!(c->hour >> w->h & 1)) {
            w->mi = 0;
            if (++w->h > 23) {
                int64_t s = ty_wall_secs(&(ty_wall_t){w->y, w->mo, w->d, 0, 0}) + 86400;
                ty_wall_from_secs(s, w);
            }
            continue;
        }
        if (!(c->min >> w->mi & 1)) {
            if (++w->mi > 59) {
                int64_t s = ty_wall_secs(&(ty_wall_t){w->y, w->mo, w->d, w->h, 0}) + 3600;
                ty_wall_from_secs(s, w);
            }
            continue;
        }
        return 0;
    }
    return -1;
}

int64_t ty_cron_next(const ty_cron_t *c, int64_t after) {
    ty_tz_enter(c->tz);
    int64_t local = after + ty_offset(after);
    int64_t start = local - (((local % 60) + 60) % 60) + 60; /* the next whole minute */
    ty_wall_t w;
    ty_wall_from_secs(start, &w);
    int64_t limit_y = w.y + 10, res = -1;
    for (int i = 0; i < 100000; i++) {
        if (ty_match_from(c, &w, limit_y) != 0)
            break;
        int64_t u = ty_place(&w);
        if (u > after) {
            res = u;
            break;
        }
        /* its instant has passed (a repeated hour's second pass): the next */
        ty_wall_from_secs(ty_wall_secs(&w) + 60, &w);
    }
    ty_tz_leave();
    return res;
}
