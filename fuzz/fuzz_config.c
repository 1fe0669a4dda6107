/* The config-file parser (key = value lines). */
#include "common/config.h"
#include "fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ty_config_t *c = NULL;
    char *err = NULL;
    if (ty_config_parse(&c, (const char *)data, size, "fuzz.conf", &err) == 0) {
        (void)ty_config_get(c, "etcd");
        ty_config_destroy(&c);
    }
    free(err);
    return 0;
}
