/* A directory of public CURVE keys (trainyard keygen's NAME.key files): each
 * key's Z85 text and the name its certificate carries (the file's name
 * without .key when it carries none).  The master's ZAP handler keeps one
 * per set (users, workers, admins) and looks at the directory again when
 * it changed, so a key removed from it is known to be gone. */
#ifndef TY_MASTER_KEYSET_H
#define TY_MASTER_KEYSET_H

#include <stddef.h>

typedef struct ty_keyset ty_keyset_t;

/* dir may be missing or empty: an empty set (a key added later counts). */
int ty_keyset_create(ty_keyset_t **out, const char *dir);
void ty_keyset_destroy(ty_keyset_t **ks);

/* The name of key (40 bytes of Z85), or NULL when it is not in the set. */
const char *ty_keyset_name(const ty_keyset_t *ks, const char *key);
size_t ty_keyset_size(const ty_keyset_t *ks);

/* Called for each key a reload no longer finds. */
typedef void (*ty_keyset_gone_fn)(void *arg, const char *key, const char *name);
/* Read the directory again when its modification time moved (a file added,
 * removed or renamed), or always with force: 1 when it was read. */
int ty_keyset_refresh(ty_keyset_t *ks, int force, ty_keyset_gone_fn gone, void *arg);

#endif
