/* trainyard-rsh HOST COMMAND...: Open MPI's rsh agent for gangs across
 * workers (plm_rsh_agent), in place of ssh.  mpirun, run by part 0 of a
 * gang, calls it to start its daemon on HOST; it asks part 0's worker,
 * through the socket named by TRAINYARD_RSH, to have the worker of the part
 * at HOST run COMMAND there (parts.h), and exits 0 once that is on its way,
 * or 1 with the reason.  The daemon's end is the part's, reported by its
 * worker; mpirun hears of it from the daemon's connection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char ty_usage[] =
    "usage: trainyard-rsh HOST COMMAND...\n"
    "Open MPI's rsh agent inside a Trainyard MPI gang across workers: starts\n"
    "COMMAND (Open MPI's daemon) on the worker of the gang's part at HOST,\n"
    "through the Trainyard master (no ssh).  mpirun calls it; set by the worker\n"
    "as -mca plm_rsh_agent, with TRAINYARD_RSH naming the worker's socket.\n";

static int ty_write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(ty_usage, stdout);
        return 0;
    }
    if (argc < 3) {
        fputs(ty_usage, stderr);
        return 2;
    }
    const char *sock = getenv("TRAINYARD_RSH");
    if (!sock || !*sock) {
        fprintf(stderr, "trainyard-rsh: not inside a Trainyard gang (TRAINYARD_RSH is not set)\n");
        return 1;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(sock) >= sizeof sa.sun_path) {
        fprintf(stderr, "trainyard-rsh: socket path too long: %s\n", sock);
        return 1;
    }
    strcpy(sa.sun_path, sock);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "trainyard-rsh: cannot reach the worker at %s: %s\n", sock,
                strerror(errno));
        return 1;
    }
    /* HOST, then the command line as ssh would pass it: words joined by spaces */
    int bad = ty_write_all(fd, argv[1], strlen(argv[1])) || ty_write_all(fd, "\n", 1);
    for (int i = 2; i < argc && !bad; i++)
        bad = (i > 2 && ty_write_all(fd, " ", 1)) || ty_write_all(fd, argv[i], strlen(argv[i]));
    if (bad || shutdown(fd, SHUT_WR) != 0) {
        fprintf(stderr, "trainyard-rsh: cannot write to the worker: %s\n", strerror(errno));
        return 1;
    }
    char reply[1024];
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, reply + got, sizeof reply - 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got == sizeof reply - 1)
            break;
    }
    close(fd);
    reply[got] = '\0';
    if (strcmp(reply, "ok\n") == 0)
        return 0;
    fprintf(stderr, "trainyard-rsh: %s: %s", argv[1], got ? reply : "the worker did not answer\n");
    return 1;
}
