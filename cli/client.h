/* The CLI's connection to the master: one DEALER socket, request/reply by
 * req_id with a deadline. */
#ifndef TY_CLI_CLIENT_H
#define TY_CLI_CLIENT_H

#include "common/wire.h"

typedef struct ty_client ty_client_t;

int ty_client_create(ty_client_t **out, const char *endpoint);
void ty_client_destroy(ty_client_t **c);
/* Send req and wait up to timeout_ms for its reply.  Returns 0 with *reply
 * (free with ty_wire_free), TY_ETIMEOUT, or TY_EIO.  An ErrorReply from the
 * master is returned as a reply; callers check body_case. */
int ty_client_call(ty_client_t *c, Ty__Envelope *req, int timeout_ms, Ty__Envelope **reply);
const char *ty_client_endpoint(const ty_client_t *c);

#endif
