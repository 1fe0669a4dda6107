#include "common/log.h"

#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char ty_log_component[32] = "trainyard";
static ty_log_level_t ty_log_min = TY_LOG_INFO;

void ty_log_init(const char *component, ty_log_level_t min) {
    snprintf(ty_log_component, sizeof ty_log_component, "%s", component);
    ty_log_min = min;
}

int ty_log_parse_level(const char *s, ty_log_level_t *out) {
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (ty_log_level_t)i;
            return 0;
        }
    return TY_EINVAL;
}

void ty_log(ty_log_level_t lvl, const char *fmt, ...) {
    static const char *const tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if (lvl < ty_log_min)
        return;
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ %s %s: ", ts.tv_nsec / 1000000L,
                  tags[lvl], ty_log_component);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += m;
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    /* One write per line so concurrent writers do not interleave. */
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
