/* The CLI's connection to the masters: one DEALER socket, request/reply by
 * req_id with a deadline.  Given several addresses (comma-separated), it
 * follows the leader: a standby's Redirect names it; a master that does not
 * answer within 2.5 s (8 s for a long-poll) is left for the next address
 * (or asked again when there is one): a request is sent again, with the
 * same req_id, until the deadline, so it must be safe to repeat (a submit
 * carries a request id for this). */
#ifndef TY_CLI_CLIENT_H
#define TY_CLI_CLIENT_H

#include "common/wire.h"

typedef struct ty_client ty_client_t;

int ty_client_create(ty_client_t **out, const char *endpoints);
/* CURVE: this user's certificate (secret file) and the masters' public
 * key; the connection is made again with them.  0, or TY_EINVAL with *why. */
int ty_client_use_keys(ty_client_t *c, const char *key, const char *master_key, char **why);
void ty_client_destroy(ty_client_t **c);
/* How long a call waits for a connection to a master (its handshake)
 * before it fails with TY_EUNREACH (default 2000 ms; shared among the
 * addresses given). */
void ty_client_set_connect_ms(ty_client_t *c, int64_t ms);
/* Send req and wait up to timeout_ms for its reply.  Returns 0 with *reply
 * (free with ty_wire_free), TY_ETIMEOUT, or TY_EIO.  An ErrorReply from the
 * master is returned as a reply; callers check body_case. */
int ty_client_call(ty_client_t *c, Ty__Envelope *req, int timeout_ms, Ty__Envelope **reply);
/* Send n requests at once (each gets a req_id) to the master connected now
 * and wait up to timeout_ms for their replies: replies[i] answers reqs[i]
 * (NULL when none came; free each with ty_wire_free).  No failover: a
 * caller asks again for what is missing with ty_client_call.  0 when every
 * reply came, else TY_ETIMEOUT (or TY_EIO). */
int ty_client_batch(ty_client_t *c, Ty__Envelope **reqs, size_t n, int timeout_ms,
                    Ty__Envelope **replies);
/* fn(arg, why, until) once in each call that has no answer yet and asks
 * again (until: the call's deadline, Unix ms); NULL: none. */
typedef void (*ty_client_retry_fn)(void *arg, const char *why, int64_t until_ms);
void ty_client_on_retry(ty_client_t *c, ty_client_retry_fn fn, void *arg);
/* The address connected now, and the list as given. */
const char *ty_client_endpoint(const ty_client_t *c);
const char *ty_client_list(const ty_client_t *c);
/* Why no master leads, as the last standby to answer said; NULL if none did. */
const char *ty_client_reason(const ty_client_t *c);

#endif
