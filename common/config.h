/* Config files: "key = value" lines, '#' comments.  Used by the CLI
 * (~/.config/trainyard/config) and the daemons (--config FILE). */
#ifndef TY_COMMON_CONFIG_H
#define TY_COMMON_CONFIG_H

#include <stddef.h>

typedef struct ty_config ty_config_t;

/* Returns 0, TY_ENOENT when the file does not exist, or TY_EPARSE with
 * *errmsg ("file:line: message", heap) for a malformed line. */
int ty_config_load(ty_config_t **out, const char *path, char **errmsg);
/* The same from len bytes of text (errors say name:line). */
int ty_config_parse(ty_config_t **out, const char *text, size_t len, const char *name,
                    char **errmsg);
void ty_config_destroy(ty_config_t **cfg);
/* Value of key or NULL; valid until destroy. */
const char *ty_config_get(const ty_config_t *cfg, const char *key);

#endif
