/* Logger: the one piece of global mutable state besides the stop flag.
 * Lines go to stderr as "2026-01-01T00:00:00.000Z LEVEL component: message".
 * Thread-safe for whole lines (one write per line). */
#ifndef TY_COMMON_LOG_H
#define TY_COMMON_LOG_H

typedef enum { TY_LOG_DEBUG, TY_LOG_INFO, TY_LOG_WARN, TY_LOG_ERROR } ty_log_level_t;

/* Set the component name (copied, at most 31 bytes) and minimum level. */
void ty_log_init(const char *component, ty_log_level_t min);
/* Parse "debug|info|warn|error"; returns 0 or TY_EINVAL. */
int ty_log_parse_level(const char *s, ty_log_level_t *out);
void ty_log(ty_log_level_t lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ty_debug(...) ty_log(TY_LOG_DEBUG, __VA_ARGS__)
#define ty_info(...) ty_log(TY_LOG_INFO, __VA_ARGS__)
#define ty_warn(...) ty_log(TY_LOG_WARN, __VA_ARGS__)
#define ty_error(...) ty_log(TY_LOG_ERROR, __VA_ARGS__)

#endif
