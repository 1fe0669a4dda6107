/* TRAINYARD_REPORT lines (DESIGN "Task contract"):
 *   metric NAME VALUE [STEP] | progress FRACTION [TEXT] | tag KEY VALUE | artifact NAME PATH
 *   | register MODEL ARTIFACT
 * A line is at most TY_REPORT_LINE_MAX bytes. */
#ifndef TY_COMMON_REPORT_H
#define TY_COMMON_REPORT_H

#include "trainyard.pb-c.h"

#include <stddef.h>

#define TY_REPORT_LINE_MAX 4096

enum {
    TY_REPORT_METRIC = 1,
    TY_REPORT_PROGRESS = 2,
    TY_REPORT_TAG = 3,
    TY_REPORT_ARTIFACT = 4,
    TY_REPORT_REGISTER = 5 /* name: the model, text: the output to register */
};

/* Parse one line (without its newline).  Returns 0 and fills *item (its
 * strings are heap copies: free with ty_report_item_clear) or TY_EPARSE. */
int ty_report_parse(const char *line, size_t len, Ty__ReportItem *item);
void ty_report_item_clear(Ty__ReportItem *item);

#endif
