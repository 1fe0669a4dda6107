/* The master's ZAP handler (RFC 27): who may connect to its CURVE sockets.
 * The worker socket's domain is "worker", the client socket's "client";
 * each has a directory of public certificates (trainyard keygen's *.key
 * files), looked at again on every handshake (czmq's zcertstore reloads a
 * directory that changed), so a key added or removed counts for the next
 * connection.  An accepted peer's messages carry its certificate's name as
 * their User-Id (the master hears a worker only under its key's name); a
 * refused one is counted and logged with its address. */
#ifndef TY_MASTER_ZAP_H
#define TY_MASTER_ZAP_H

#include "master/api.h"

#include <stdint.h>
#include <uv.h>

typedef struct ty_zap ty_zap_t;

/* Binds inproc://zeromq.zap.01: create it before the CURVE sockets bind. */
/* admin_dir (or NULL): users' keys that are also admins (let in as users
 * too); their messages carry X-Role "admin", other users' "user". */
int ty_zap_create(ty_zap_t **out, uv_loop_t *loop, const char *client_dir, const char *worker_dir,
                  const char *admin_dir, ty_api_info_t *info);
void ty_zap_destroy(ty_zap_t **z);
/* info->auth_refused and last_auth_refused follow what it refuses. */

#endif
