/* The envelope decoder: any bytes from a socket; what decodes packs again
 * (replies echo parts of requests) and that decodes without harm.  (Not
 * always to the same message: protobuf-c keeps unknown fields, even one
 * numbered 0, and packs them in a form its unpacker refuses.) */
#include "common/wire.h"
#include "fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Ty__Envelope *env = NULL;
    if (ty_wire_decode(data, size, 1 << 20, &env) != 0)
        return 0;
    size_t len = ty__envelope__get_packed_size(env);
    uint8_t *buf = malloc(len ? len : 1);
    ty__envelope__pack(env, buf);
    Ty__Envelope *again = NULL;
    if (ty_wire_decode(buf, len, 1 << 20, &again) == 0 &&
        ty__envelope__get_packed_size(again) > len)
        abort(); /* read back, it cannot grow */
    ty_wire_free(&again);
    free(buf);
    ty_wire_free(&env);
    return 0;
}
