/* Attempts' CPU time and memory from /proc (usage.h). */
#include "worker/usage.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ty_usage_parse_stat(const char *text, long *session, unsigned long long *ticks,
                        long *rss_pages) {
    /* "PID (COMM) S PPID PGRP SESSION TTY TPGID FLAGS MINFLT CMINFLT MAJFLT
     * CMAJFLT UTIME STIME CUTIME CSTIME PRIO NICE THREADS ITREAL START VSIZE
     * RSS ...": COMM may hold spaces and parentheses, so the fields are
     * read after the last ')' */
    const char *r = strrchr(text, ')');
    if (!r)
        return -1;
    char state;
    long ppid, pgrp, sid, rss;
    unsigned long long utime, stime;
    int n = sscanf(r + 1,
                   " %c %ld %ld %ld %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d "
                   "%*d %*u %*u %ld",
                   &state, &ppid, &pgrp, &sid, &utime, &stime, &rss);
    if (n != 7 || rss < 0)
        return -1;
    *session = sid;
    *ticks = utime + stime;
    *rss_pages = rss;
    return 0;
}

static int ty_read_stat(long pid, char *buf, size_t n) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t got = read(fd, buf, n - 1);
    close(fd);
    if (got <= 0)
        return -1;
    buf[got] = '\0';
    return 0;
}

void ty_usage_sessions(const pid_t *sids, size_t n, ty_usage_t *out) {
    memset(out, 0, sizeof *out);
    if (n == 0)
        return;
    DIR *d = opendir("/proc");
    if (!d)
        return;
    double hz = (double)sysconf(_SC_CLK_TCK), page = (double)sysconf(_SC_PAGESIZE);
    unsigned long long ticks_sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end, buf[1024];
        long pid = strtol(e->d_name, &end, 10), sid, rss;
        unsigned long long ticks;
        if (*end || pid <= 0 || ty_read_stat(pid, buf, sizeof buf) != 0 ||
            ty_usage_parse_stat(buf, &sid, &ticks, &rss) != 0)
            continue;
        for (size_t i = 0; i < n; i++)
            if (sids[i] == sid) {
                ticks_sum += ticks;
                out->rss_bytes += (uint64_t)((double)rss * page);
                out->procs++;
                break;
            }
    }
    closedir(d);
    out->cpu_s = hz > 0 ? (double)ticks_sum / hz : 0;
}

void ty_usage_self(ty_usage_t *out) {
    memset(out, 0, sizeof *out);
    char buf[1024];
    long sid, rss;
    unsigned long long ticks;
    if (ty_read_stat((long)getpid(), buf, sizeof buf) != 0 ||
        ty_usage_parse_stat(buf, &sid, &ticks, &rss) != 0)
        return;
    out->cpu_s = (double)ticks / (double)sysconf(_SC_CLK_TCK);
    out->rss_bytes = (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
    out->procs = 1;
}
