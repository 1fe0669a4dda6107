/* /proc/PID/stat read for a session, CPU ticks and resident pages (a
 * command name with spaces and parentheses included), and the figures of
 * a real process group this test starts and burns CPU in. */
#include "worker/usage.h"

#include "common/tests/ty_test.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    long sid = 0, rss = 0;
    unsigned long long ticks = 0;
    const char *line = "4242 (a (weird) name) S 1 4242 4240 0 -1 4194560 100 0 0 0 "
                       "250 50 7 3 20 0 1 0 12345 1000000 321 18446744073709551615 1 1 0 0";
    CHECK_EQ_INT(ty_usage_parse_stat(line, &sid, &ticks, &rss), 0);
    CHECK_EQ_INT(sid, 4240);
    CHECK_EQ_INT((long long)ticks, 300); /* utime + stime, not the children's */
    CHECK_EQ_INT(rss, 321);
    CHECK_EQ_INT(ty_usage_parse_stat("4242 (x) S 1 2", &sid, &ticks, &rss), -1);
    CHECK_EQ_INT(ty_usage_parse_stat("no parenthesis", &sid, &ticks, &rss), -1);

    ty_usage_t self;
    ty_usage_self(&self);
    CHECK(self.rss_bytes > 0 && self.procs == 1);

    /* a session of two processes that burn CPU: both counted */
    int ready[2];
    CHECK_EQ_INT(pipe(ready), 0);
    pid_t leader = fork();
    if (leader == 0) {
        setsid();
        if (fork() == 0) { /* a second process of the session */
            for (;;)
                ;
        }
        close(ready[0]);
        clock_t until = clock() + CLOCKS_PER_SEC / 5; /* 0.2 s of CPU, then say so */
        while (clock() < until)
            ;
        if (write(ready[1], "x", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(ready[1]);
    char b;
    CHECK_EQ_INT(read(ready[0], &b, 1), 1);
    ty_usage_t u;
    ty_usage_sessions(&leader, 1, &u);
    CHECK_EQ_INT(u.procs, 2);
    CHECK(u.cpu_s >= 0.15);
    CHECK(u.rss_bytes > 0);
    pid_t other = leader + 100000; /* no such session */
    ty_usage_sessions(&other, 1, &u);
    CHECK_EQ_INT(u.procs, 0);
    kill(-leader, SIGKILL);
    waitpid(leader, NULL, 0);
    close(ready[0]);
    TEST_DONE();
}
