/* Peers that keep sending malformed messages: each malformed message is a
 * strike against its peer (its CURVE key, or its routing id without keys);
 * TY_STRIKES_MAX strikes within TY_STRIKES_WINDOW_MS ban the peer for
 * TY_STRIKES_BAN_MS, during which the master drops everything it sends
 * (ZeroMQ cannot close one peer's connection on a ROUTER socket; a banned
 * peer is not heard).  Decisions only: the caller gives the time. */
#ifndef TY_MASTER_STRIKES_H
#define TY_MASTER_STRIKES_H

#include <stddef.h>
#include <stdint.h>

#define TY_STRIKES_MAX 10
#define TY_STRIKES_WINDOW_MS 60000
#define TY_STRIKES_BAN_MS 60000
#define TY_STRIKES_PEERS 10000 /* peers remembered at most (the oldest go) */

typedef struct ty_strikes ty_strikes_t;

int ty_strikes_create(ty_strikes_t **out);
void ty_strikes_destroy(ty_strikes_t **s);
/* A strike against peer at now_ms: 1 when it bans the peer now. */
int ty_strikes_add(ty_strikes_t *s, const char *peer, int64_t now_ms);
/* Whether peer is banned at now_ms. */
int ty_strikes_banned(const ty_strikes_t *s, const char *peer, int64_t now_ms);
/* How many peers are banned at now_ms. */
size_t ty_strikes_count_banned(const ty_strikes_t *s, int64_t now_ms);
/* A peer's name for the table: "key:Z85" with a key, else "id:HEX" of its
 * routing id (at most 64 bytes of it); out has room for 160 bytes. */
void ty_strikes_peer(char out[160], const char *key, const uint8_t *id, size_t id_len);

#endif
