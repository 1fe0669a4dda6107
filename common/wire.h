/* Wire framing: one protobuf-c Ty__Envelope per ZeroMQ message, plus a libuv
 * adapter for czmq sockets.
 *
 * ROUTER sockets see [identity][payload]; DEALER sockets see [payload].
 * A payload over the size limit or one that does not decode as an Envelope of
 * TY_WIRE_VERSION is rejected (TY_ETOOBIG / TY_EPROTO) and the caller counts it. */
#ifndef TY_COMMON_WIRE_H
#define TY_COMMON_WIRE_H

#include "trainyard.pb-c.h"

#include <czmq.h>
#include <stddef.h>
#include <uv.h>

#define TY_WIRE_VERSION 1
#define TY_WIRE_MAX_DEFAULT (4u << 20)

/* Decode a payload; on success *out must be released with ty_wire_free(). */
int ty_wire_decode(const void *data, size_t len, size_t max, Ty__Envelope **out);
void ty_wire_free(Ty__Envelope **env);

/* Encode env (version is set here) into a new frame. */
zframe_t *ty_wire_encode(Ty__Envelope *env);

/* Send one frame without blocking, retrying when a signal interrupts;
 * consumes *f either way.  Returns 0 or TY_EIO. */
int ty_wire_send_frame(zframe_t **f, zsock_t *sock, int more);

/* Send env on sock, prefixed with a copy of identity when it is not NULL.
 * Returns 0 or TY_EIO (the peer's queue is full or it is gone). */
int ty_wire_send(zsock_t *sock, zframe_t *identity, Ty__Envelope *env);

/* Receive one message without blocking.  For ROUTER sockets *identity gets
 * the sender's frame (caller destroys).  Returns 0 with *env set; TY_ETOOBIG or
 * TY_EPROTO for a rejected message (consumed); TY_ENOENT when
 * nothing is waiting (or a signal interrupted the receive). */
int ty_wire_recv(zsock_t *sock, int router, size_t max, zframe_t **identity, Ty__Envelope **env);
/* Who sent a message, from its ZeroMQ metadata: the User-Id (the name its
 * CURVE key was accepted under by the ZAP handler; "" without one), the
 * ZAP handler's X-Key (the peer's public key, Z85) and the Peer-Address. */
typedef struct {
    char user[128];
    char key[48];
    char addr[64];
} ty_wire_peer_t;
/* The same as ty_wire_recv, and who sent it into *peer. */
int ty_wire_recv_as(zsock_t *sock, int router, size_t max, zframe_t **identity, Ty__Envelope **env,
                    ty_wire_peer_t *peer);

/* Move a DEALER socket from *connected (a heap string, or NULL) to ep;
 * 0, or TY_EINVAL for an address ZeroMQ refuses (then *connected is NULL). */
int ty_wire_reconnect(zsock_t *sock, char **connected, const char *ep);
/* Whether ep looks like a ZeroMQ address (tcp://, ipc://, inproc://). */
int ty_wire_endpoint_ok(const char *ep);
/* Whether a peer can connect to ep: not a bind-any address (*, 0.0.0.0). */
int ty_wire_connectable(const char *ep);
/* Whether a bind endpoint listens on this host only: tcp:// on 127.0.0.0/8,
 * ::1 or localhost, or ipc:// and inproc://. */
int ty_wire_loopback(const char *ep);

/* libuv adapter: calls on_readable(arg) while the socket has input, at most
 * 256 times a loop iteration (the rest waits for the next one, so a flood
 * cannot starve the loop).  ZeroMQ's descriptor is edge-triggered and a
 * send can consume the edge, so callers run ty_wire_poll_kick() after
 * sending. */
typedef struct ty_wire_poll ty_wire_poll_t;
typedef void (*ty_wire_readable_cb)(void *arg);
int ty_wire_poll_create(ty_wire_poll_t **out, uv_loop_t *loop, zsock_t *sock,
                        ty_wire_readable_cb cb, void *arg);
void ty_wire_poll_kick(ty_wire_poll_t *p);
/* Closes the uv handles; the memory is freed once libuv has closed them. */
void ty_wire_poll_destroy(ty_wire_poll_t **p);

#endif
