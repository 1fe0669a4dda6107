/* Starts a private etcd on free loopback ports with a temporary data dir for
 * a test, and stops it (by PID) at exit.  Returns 77 (skip) when there is no
 * etcd binary. */
#ifndef TY_ETCD_FIXTURE_H
#define TY_ETCD_FIXTURE_H

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t ty_fx_pid;
static char ty_fx_dir[64];

static int ty_fx_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        close(fd);
        return -1;
    }
    int port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static void ty_fx_stop(void) {
    if (ty_fx_pid > 0) {
        kill(ty_fx_pid, SIGKILL);
        waitpid(ty_fx_pid, NULL, 0);
        ty_fx_pid = 0;
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", ty_fx_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", ty_fx_dir);
    }
}

static size_t ty_fx_discard(char *p, size_t s, size_t n, void *u) {
    (void)p;
    (void)u;
    return s * n;
}

/* Fills url (e.g. "http://127.0.0.1:40123"); returns 0, 77 to skip, 1 on failure. */
static int ty_fx_start(char *url, size_t n) {
    const char *bin = getenv("TY_ETCD_BIN") ? getenv("TY_ETCD_BIN") : "/usr/bin/etcd";
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "no etcd at %s: skipping\n", bin);
        return 77;
    }
    snprintf(ty_fx_dir, sizeof ty_fx_dir, "/tmp/ty-etcd-XXXXXX");
    if (!mkdtemp(ty_fx_dir))
        return 1;
    int cport = ty_fx_free_port(), pport = ty_fx_free_port();
    char curl_[64], purl[64], datadir[96], cluster[96];
    snprintf(curl_, sizeof curl_, "http://127.0.0.1:%d", cport);
    snprintf(purl, sizeof purl, "http://127.0.0.1:%d", pport);
    snprintf(datadir, sizeof datadir, "%s/data", ty_fx_dir);
    snprintf(url, n, "%s", curl_);
    snprintf(cluster, sizeof cluster, "default=%s", purl);
    ty_fx_pid = fork();
    if (ty_fx_pid == 0) {
        int devnull = open("/dev/null", 1);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl(bin, bin, "--data-dir", datadir, "--listen-client-urls", curl_,
              "--advertise-client-urls", curl_, "--listen-peer-urls", purl,
              "--initial-advertise-peer-urls", purl, "--initial-cluster", cluster, (char *)NULL);
        _exit(127);
    }
    atexit(ty_fx_stop);
    /* wait for /health, bounded */
    char health[96];
    snprintf(health, sizeof health, "%s/health", curl_);
    for (int i = 0; i < 200; i++) {
        CURL *c = curl_easy_init();
        curl_easy_setopt(c, CURLOPT_URL, health);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ty_fx_discard);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 500L);
        CURLcode rc = curl_easy_perform(c);
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_cleanup(c);
        if (rc == CURLE_OK && code == 200)
            return 0;
        int st;
        if (waitpid(ty_fx_pid, &st, WNOHANG) == ty_fx_pid) {
            ty_fx_pid = 0;
            fprintf(stderr, "etcd exited\n");
            return 1;
        }
        usleep(50000); /* polling a server that is starting; there is no event to await */
    }
    fprintf(stderr, "etcd did not become healthy\n");
    return 1;
}

#endif
