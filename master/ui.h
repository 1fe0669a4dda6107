/* The web UI's files (ui/), built into the master (cmake/embed_ui.cmake
 * makes ui_assets.c): served by master/http.c at /, /ui/app.js and
 * /ui/app.css. */
#ifndef TY_MASTER_UI_H
#define TY_MASTER_UI_H

#include <stddef.h>

typedef struct {
    const char *path, *type;
    const unsigned char *data;
    size_t len;
} ty_ui_asset_t;

extern const ty_ui_asset_t ty_ui_assets[];
extern const size_t ty_ui_nassets;

#endif
