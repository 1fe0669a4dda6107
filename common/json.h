/* JSON text of a jansson value, as people and programs read it: numbers
 * with the fewest digits that read back as the same double (0.05, not
 * 0.050000000000000003), keys in insertion order, UTF-8 as is. */
#ifndef TY_COMMON_JSON_H
#define TY_COMMON_JSON_H

#include <jansson.h>

/* indent: spaces per level, 0 for one line.  The caller frees the text. */
char *ty_json_text(const json_t *j, int indent);
/* The fewest-digits text of a finite double (into buf, at least 32 bytes);
 * an integral value keeps ".0" (it is a real). */
void ty_json_real(char *buf, size_t n, double v);

#endif
