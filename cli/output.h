/* Rendering of master replies as tables or JSON (jansson). */
#ifndef TY_CLI_OUTPUT_H
#define TY_CLI_OUTPUT_H

#include "common/render.h"
#include "trainyard.pb-c.h"

#include <jansson.h>
#include <stdio.h>

void ty_out_status_table(FILE *f, const Ty__RunStatus *st);
void ty_out_runs_table(FILE *f, const Ty__RunsReply *rr);
void ty_out_workers_table(FILE *f, const Ty__WorkersReply *wr);
/* Colours (ANSI SGR) for state names in tables and --wait's event lines:
 * only when the output is a terminal, NO_COLOR is unset or empty
 * (no-color.org) and TERM is not "dumb".  ty_out_colour_wanted decides
 * from those three; ty_out_set_colour turns the tables' colours on. */
int ty_out_colour_wanted(int tty, const char *no_color, const char *term);
void ty_out_set_colour(int on);
/* The SGR parameters for a run, task or worker state ("32": green), or
 * NULL for one shown plain. */
const char *ty_out_state_sgr(const char *state);
/* state left-aligned in width columns, coloured when colours are on. */
void ty_out_state(FILE *f, const char *state, int width);
/* Print JSON to stdout with a newline and release it. */
void ty_out_json_print(json_t *j);

#endif
