#include "common/err.h"

#include <string.h>

static const char *const ty_err_msgs[] = {
#define TY_ERR_MSG(name, msg) msg,
    TY_ERRNO_MAP(TY_ERR_MSG)
#undef TY_ERR_MSG
};

static const char *const ty_err_names[] = {
#define TY_ERR_NAME(name, msg) "TY_E" #name,
    TY_ERRNO_MAP(TY_ERR_NAME)
#undef TY_ERR_NAME
};

const char *ty_strerror(int code) {
    if (code == 0)
        return "success";
    int idx = -code - TY_ERR_BASE;
    if (idx >= 0 && idx < TY_ERR_COUNT)
        return ty_err_msgs[idx];
    if (code < 0 && code > -TY_ERR_BASE)
        return strerror(-code);
    return "unknown error";
}

const char *ty_err_name(int code) {
    if (code == 0)
        return "TY_OK";
    int idx = -code - TY_ERR_BASE;
    if (idx >= 0 && idx < TY_ERR_COUNT)
        return ty_err_names[idx];
    return code < 0 && code > -TY_ERR_BASE ? "errno" : "TY_EUNKNOWN";
}
