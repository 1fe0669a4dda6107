/* Cron expressions in a time zone.
 *
 * Five fields, minute hour day-of-month month day-of-week, each `*`, a
 * number, a range `a-b`, a step `*\/n`, `a-b/n` or `a/n`, or a list of
 * those separated by commas; months JAN-DEC and weekdays SUN-SAT by name
 * (case-insensitive), weekday 0 or 7 for Sunday; or one of @yearly
 * (@annually), @monthly, @weekly, @daily (@midnight), @hourly.  As in
 * Vixie cron, when both day fields are restricted (neither starts with
 * `*`) a day matches either, otherwise both.
 *
 * Fire times are wall-clock times in the zone (a tz database name, "UTC"
 * by default).  Daylight saving: a wall time that does not exist (the
 * hour skipped in spring) fires once, at the end of the gap; a wall time
 * that occurs twice (the hour repeated in autumn) fires once, at its first
 * occurrence.  Every fire time is a distinct instant: fires that land on
 * the same instant are one fire. */
#ifndef TY_COMMON_CRON_H
#define TY_COMMON_CRON_H

#include <stdint.h>

typedef struct ty_cron ty_cron_t;

/* Parse expr for zone tz (NULL or "": UTC).  TY_EINVAL with *why (heap)
 * naming the field, or the zone, or "never fires" for an expression no
 * date matches (0 0 31 2 *). */
int ty_cron_parse(const char *expr, const char *tz, ty_cron_t **out, char **why);
void ty_cron_destroy(ty_cron_t **c);

/* The first fire time strictly after `after` (Unix seconds), or -1 when
 * there is none within ten years. */
int64_t ty_cron_next(const ty_cron_t *c, int64_t after);

/* Whether tz names a zone of the system's tz database ("UTC" always
 * does); 0, or TY_EINVAL with *why. */
int ty_tz_check(const char *tz, char **why);

/* t (Unix seconds) as local wall time in tz, "YYYY-MM-DD HH:MM ZZZ"
 * (the zone's abbreviation). */
void ty_tz_format(const char *tz, int64_t t, char *buf, unsigned n);

#endif
