/* The master's ZAP handler (RFC 27): who may connect to its CURVE sockets.
 * The worker socket's domain is "worker", the client socket's "client".
 * Each set is a directory of public certificates (trainyard keygen's
 * *.key files): the users' (--client-keys), the admins' (--admin-keys, let
 * in as users too) and the workers' (--worker-keys).  The directories are
 * read again every second when they changed, and on ty_zap_reload (the
 * master's SIGHUP).  An accepted peer's messages carry its certificate's
 * name as their User-Id and its public key as X-Key, so each message is
 * checked against the sets as they are now (ty_zap_name): a revoked key's
 * session hears nothing more.  A refused handshake, and one that never
 * reaches ZAP (a plaintext peer, seen through a socket monitor), is counted
 * and logged with the peer's address. */
#ifndef TY_MASTER_ZAP_H
#define TY_MASTER_ZAP_H

#include "master/api.h"

#include <czmq.h>
#include <stdint.h>
#include <uv.h>

typedef struct ty_zap ty_zap_t;

/* A key a reload no longer finds, in domain ("client" or "worker"). */
typedef void (*ty_zap_revoked_fn)(void *arg, const char *domain, const char *name);

/* Binds inproc://zeromq.zap.01: create it before the CURVE sockets bind.
 * admin_dir may be NULL.  info->auth_refused and last_auth_refused follow
 * what it refuses. */
int ty_zap_create(ty_zap_t **out, uv_loop_t *loop, const char *client_dir, const char *worker_dir,
                  const char *admin_dir, ty_api_info_t *info, ty_zap_revoked_fn revoked, void *arg);
void ty_zap_destroy(ty_zap_t **z);
/* Watch sock's handshakes (a monitor): plaintext ones are counted. */
int ty_zap_watch(ty_zap_t *z, uv_loop_t *loop, zsock_t *sock, const char *domain);
/* Read the directories again (force: even when they look unchanged). */
void ty_zap_reload(ty_zap_t *z, int force);
/* The name key (Z85) has in domain now, or NULL; *admin (may be NULL)
 * says whether it is an admin's. */
const char *ty_zap_name(const ty_zap_t *z, const char *domain, const char *key, int *admin);

#endif
