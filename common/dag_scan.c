/* The pipeline loader's first pass: the YAML events, checked against the
 * limits before libyaml builds a document (whose loader, and the walk over
 * it, would otherwise pay for deep nesting, huge mappings or expanding
 * aliases without bound).  It stops at the first limit exceeded; syntax
 * errors are left to the document load, which reports them with a line. */
#include "common/dag.h"
#include "common/dag_int.h"

#include "common/err.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define TY_MAX_ANCHORS 256

typedef struct {
    int anchor;    /* index in the anchor table, or -1 */
    uint64_t size; /* bytes and nodes under it, aliases expanded */
    uint64_t items;
    unsigned long line;
    int is_map;
} ty_scan_frame_t;

typedef struct {
    char *name;
    uint64_t size;
} ty_scan_anchor_t;

static uint64_t ty_sat_add(uint64_t a, uint64_t b) {
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

int ty_dag_scan(const char *yaml, size_t len, const ty_dag_limits_t *lim, unsigned long *err_line,
                char **err) {
    *err = NULL;
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
    ty_scan_frame_t *st = ty_xcalloc((size_t)lim->max_depth + 1, sizeof *st);
    ty_scan_anchor_t anchors[TY_MAX_ANCHORS];
    size_t nanch = 0, depth = 0;
    uint64_t expanded = 0;
    int rc = 0, done = 0;
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev))
            break; /* the document load reports it, with its line */
        unsigned long line = (unsigned long)ev.start_mark.line + 1;
        const yaml_char_t *anchor = NULL;
        uint64_t size = 0;
        int node = 1, open = 0;
        switch (ev.type) {
        case YAML_SCALAR_EVENT:
            anchor = ev.data.scalar.anchor;
            size = ev.data.scalar.length + 8;
            break;
        case YAML_ALIAS_EVENT:
            size = 8;
            for (size_t i = nanch; i-- > 0;)
                if (strcmp(anchors[i].name, (const char *)ev.data.alias.anchor) == 0) {
                    size = anchors[i].size;
                    break;
                }
            expanded = ty_sat_add(expanded, size);
            if (lim->max_bytes && expanded > lim->max_bytes) {
                *err_line = line;
                *err = ty_xasprintf("aliases expand the pipeline by more than %zu bytes (limit "
                                    "max-pipeline-bytes)",
                                    lim->max_bytes);
                rc = TY_ETOOBIG;
            }
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            anchor = ev.type == YAML_SEQUENCE_START_EVENT ? ev.data.sequence_start.anchor
                                                          : ev.data.mapping_start.anchor;
            open = 1;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: {
            ty_scan_frame_t *f = &st[--depth];
            size = ty_sat_add(f->size, 8);
            if (f->anchor >= 0)
                anchors[f->anchor].size = size; /* registered at its start */
            break;
        }
        case YAML_DOCUMENT_END_EVENT:
        case YAML_STREAM_END_EVENT:
            done = 1; /* only the first document is read */
            node = 0;
            break;
        default:
            node = 0;
            break;
        }
        if (node && !(ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) &&
            depth > 0) {
            ty_scan_frame_t *f = &st[depth - 1];
            f->items++;
            if (f->is_map && f->items / 2 >= lim->max_keys && f->items % 2 == 1 && rc == 0) {
                *err_line = f->line;
                *err = ty_xasprintf("mapping has more than %u keys (limit max-mapping-keys)",
                                    lim->max_keys);
                rc = TY_ETOOBIG;
            }
        }
        if (anchor && rc == 0) {
            if (nanch == TY_MAX_ANCHORS) {
                *err_line = line;
                *err = ty_xasprintf("more than %d anchors", TY_MAX_ANCHORS);
                rc = TY_ETOOBIG;
            } else {
                anchors[nanch].name = ty_xstrdup((const char *)anchor);
                anchors[nanch++].size = size;
            }
        }
        if (open && rc == 0) {
            if (depth == lim->max_depth) {
                *err_line = line;
                *err = ty_xasprintf("nesting deeper than %u levels (limit max-pipeline-depth)",
                                    lim->max_depth);
                rc = TY_ETOOBIG;
            } else {
                ty_scan_frame_t *f = &st[depth++];
                memset(f, 0, sizeof *f);
                f->is_map = ev.type == YAML_MAPPING_START_EVENT;
                f->line = line;
                f->anchor = anchor ? (int)nanch - 1 : -1;
            }
        } else if (size && depth > 0) {
            st[depth - 1].size = ty_sat_add(st[depth - 1].size, size);
        }
        yaml_event_delete(&ev);
    }
    for (size_t i = 0; i < nanch; i++)
        free(anchors[i].name);
    free(st);
    yaml_parser_delete(&p);
    return rc;
}
