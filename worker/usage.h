/* What the processes of running attempts use, from /proc: their CPU time
 * and resident memory, summed over every process of each attempt's session
 * (an attempt runs detached: setsid, its pid is its session's id), and
 * the worker daemon's own.  Sent with each heartbeat; the master shows
 * them on /metrics (docs/metrics.md). */
#ifndef TY_WORKER_USAGE_H
#define TY_WORKER_USAGE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct {
    double cpu_s;       /* user + system */
    uint64_t rss_bytes; /* resident */
    size_t procs;
} ty_usage_t;

/* One /proc/PID/stat text: its session, user + system time in clock
 * ticks, resident pages.  0, or -1 when it does not read as one. */
int ty_usage_parse_stat(const char *text, long *session, unsigned long long *ticks,
                        long *rss_pages);
/* The processes whose session is one of sids (n of them), summed. */
void ty_usage_sessions(const pid_t *sids, size_t n, ty_usage_t *out);
/* The calling process's own. */
void ty_usage_self(ty_usage_t *out);

#endif
