/* The master's HTTP server: libmicrohttpd driven by the master's libuv loop
 * (its epoll descriptor watched by a uv_poll, its timeouts by a uv_timer),
 * one thread, like the rest of the master.
 *
 * /api/v1 requests are decided by master/http_route.c and go to the same
 * protocol-neutral handler as the ZeroMQ clients' (master/api.h), as from
 * a peer whose id marks it HTTP; the handler's reply comes back through
 * the core's SEND effect (ty_http_deliver) and the connection, suspended
 * meanwhile, is resumed with it.  Long-polls and log follows hold a
 * connection the same way, never the loop. */
#ifndef TY_MASTER_HTTP_H
#define TY_MASTER_HTTP_H

#include "master/api.h"

#include "common/util.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct ty_http ty_http_t;

typedef struct {
    /* Hand req to the request handler as from peer; -1 when this master
     * has none (it stands by). */
    int (*request)(void *arg, const uint8_t *peer, size_t peer_len, const Ty__Envelope *req,
                   const ty_caller_t *who);
    /* Requests went in: carry out the core's effects (replies come back
     * through ty_http_deliver). */
    void (*effects)(void *arg);
    /* GET /metrics: the figures in Prometheus' text format, appended to out */
    void (*metrics)(void *arg, ty_buf_t *out);
    /* Where the artifact store keeps a blob (heap), or NULL without one. */
    char *(*blob_path)(void *arg, const char *sha256);
    void *arg;
} ty_http_hooks_t;

typedef struct {
    const char *bind;        /* HOST:PORT (port 0: any free one) */
    const char *tokens_file; /* --http-tokens, or NULL */
    const char *cert, *key;  /* --http-cert, --http-key (PEM): HTTPS; or NULL */
    int insecure;            /* the master runs without keys: writes need no token */
} ty_http_opts_t;

/* Binds and starts serving; refuses (with *why) an address beyond
 * loopback without tokens and TLS. */
int ty_http_create(ty_http_t **out, uv_loop_t *loop, const ty_http_opts_t *o,
                   const ty_http_hooks_t *hooks, char **why);
/* Open connections are ended; call before the loop's handles close. */
void ty_http_destroy(ty_http_t **h);
/* The port it listens on; whether it speaks TLS. */
int ty_http_port(const ty_http_t *h);
int ty_http_tls(const ty_http_t *h);
/* Whether a reply's peer is an HTTP connection's. */
int ty_http_is_peer(const uint8_t *peer, size_t len);
/* An encoded reply for that peer (dropped when its connection is gone). */
void ty_http_deliver(ty_http_t *h, const uint8_t *peer, size_t len, const uint8_t *data, size_t n);
/* --http-tokens read again (SIGHUP); the old set kept when the file is bad. */
void ty_http_reload(ty_http_t *h);

#endif
