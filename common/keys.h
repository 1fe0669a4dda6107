/* CurveZMQ certificates (czmq's zcert format): made by `trainyard keygen`,
 * applied to the client side of a socket (a CLI's or a worker's), and the
 * master's own applied to its server sockets (master/zap.c decides who may
 * connect).  A certificate's metadata carries its name (a worker's id, a
 * user's name). */
#ifndef TY_COMMON_KEYS_H
#define TY_COMMON_KEYS_H

#include <czmq.h>

/* Write DIR/NAME.key (public) and DIR/NAME.key_secret (mode 0600), with
 * metadata name = NAME; 0, or TY_EEXIST / TY_EIO / TY_EINVAL with *why. */
int ty_keys_generate(const char *dir, const char *name, char **why);

/* Revoke the public key named NAME in DIR (DIR/NAME.key, or the *.key file
 * whose certificate carries that name): renamed DIR/NAME.key.revoked (or
 * .revoked.2, ...), so a master reading DIR no longer lets it in and drops
 * its sessions.  0 with *moved (heap: the new path), or TY_ENOENT / TY_EIO
 * with *why. */
int ty_keys_revoke(const char *dir, const char *name, char **moved, char **why);

/* A certificate with its secret key (a *.key_secret file); NULL with *why. */
zcert_t *ty_keys_load_secret(const char *path, char **why);

/* The client side of CURVE on sock: its own certificate (secret file) and
 * the server's public key (the master's *.key file). 0, or TY_EINVAL with
 * *why. */
int ty_keys_client(zsock_t *sock, const char *key_secret, const char *server_public, char **why);

#endif
