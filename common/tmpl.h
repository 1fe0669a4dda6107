/* Templates in task commands and env: {{ NAMESPACE.NAME }}.
 *
 * The master renders params.* and inputs.* when a run is resolved; the
 * worker renders run.id, task.name and task.attempt when it starts an
 * attempt. In a shell script (a shell-string command, or the script of an
 * argv command "sh -c SCRIPT") a value is written quoted for the place it
 * stands in (outside quotes, in '...', in "..."), so whatever it holds it
 * stays one word of data; argv arguments and env values get it as is. */
#ifndef TY_COMMON_TMPL_H
#define TY_COMMON_TMPL_H

#include <stddef.h>

typedef enum { TY_TMPL_RAW = 0, TY_TMPL_SHELL = 1 } ty_tmpl_mode_t;

/* The value of NAME (len bytes, the part after the prefix) as a heap
 * string, or NULL when there is none. */
typedef char *(*ty_tmpl_lookup_fn)(const void *arg, const char *name, size_t len);

/* Render every {{ PREFIX NAME }} in tmpl with lookup; the first NAME with
 * no value goes to *missing (heap; NULL when none) and its template stays
 * as written, as do templates of other prefixes. */
char *ty_tmpl_render(const char *tmpl, ty_tmpl_mode_t mode, const char *prefix,
                     ty_tmpl_lookup_fn lookup, const void *arg, char **missing);

/* Whether argv[i] is a shell script: argv[0] is a POSIX shell (sh, bash,
 * dash, ksh, zsh, by its last path component) and argv[i] is the first
 * operand after an option cluster holding 'c' (sh -c, bash -ec). */
int ty_tmpl_argv_is_shell(char *const *argv, size_t n, size_t i);

/* The first template in s whose name is an identifier or dotted name
 * outside the known ones (params.X, inputs.X, run.id, task.name,
 * task.attempt), as a heap string "{{ name }}"; NULL when there is none.
 * Other text between braces ({{ .Id }}, Go's templates) is left alone. */
char *ty_tmpl_unknown(const char *s);

/* v quoted as one word for a shell script at its top level (heap). */
char *ty_tmpl_shell_quote(const char *v);

#endif
