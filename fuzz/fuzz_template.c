/* Templates and conditions: a shell script with {{ params.v }} rendered
 * with a value (the part after the first NUL), its unknown templates, and
 * the same text as a `when:` condition. */
#include "common/cond.h"
#include "common/tmpl.h"
#include "fuzz/fuzz_common.h"

static char *lookup(const void *arg, const char *name, size_t len) {
    return len == 1 && *name == 'v' ? strdup(arg) : NULL;
}

static int metric(void *arg, const char *name, double *v) {
    (void)arg;
    *v = (double)strlen(name);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = fz_str(data, size);
    size_t first = strlen(s);
    const char *value = first < size ? s + first + 1 : "x";
    char *missing = NULL;
    char *r = ty_tmpl_render(s, TY_TMPL_SHELL, "params.", lookup, value, &missing);
    free(r);
    free(missing);
    free(ty_tmpl_unknown(s));
    char *q = ty_tmpl_shell_quote(value);
    free(q);
    ty_cond_t *c = NULL;
    char *why = NULL;
    if (ty_cond_parse(s, &c, &why) == 0) {
        const char *miss = NULL;
        (void)ty_cond_eval(c, metric, NULL, &miss);
        ty_cond_destroy(&c);
    }
    free(why);
    free(s);
    return 0;
}
