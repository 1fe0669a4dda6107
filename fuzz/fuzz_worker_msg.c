/* The control core's worker messages: a fresh core serving one run of two
 * tasks, with worker w1 registered and running the first; then each
 * message of the input (2-byte big-endian length, the bytes) decoded and
 * handed to the core as if from w1 or w2, time moving between them.  Every
 * field from the wire must be checked before use: counts, lengths,
 * references, resource figures, GPU indices. */
#include "common/dag.h"
#include "common/log.h"
#include "common/wire.h"
#include "fuzz/fuzz_common.h"
#include "master/tests/core_harness.h"

static h_t h;
static Ty__PipelineSpec *spec; /* parsed once: each input submits a copy */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!spec) {
        ty_log_init("fuzz", TY_LOG_ERROR);
        const char *y = "name: p\ntasks:\n  - {name: a, command: [t], outputs: [m.bin]}\n"
                        "  - {name: b, depends_on: [a], command: [t]}\n";
        char *err = NULL;
        if (ty_dag_load_string(y, strlen(y), "p.yaml", &spec, &err) != 0)
            abort();
    }
    h_init(&h, 1);
    h_register(&h, "w1", 4, 2, "a");
    Ty__PipelineSpec *res = NULL;
    Ty__KV **params = NULL;
    size_t np = 0;
    char *err = NULL;
    if (ty_dag_resolve(spec, NULL, 0, &res, &params, &np, &err) != 0)
        abort();
    h_step(&h, (ty_ev_t){.kind = TY_EV_SUBMIT,
                         .peer = (const uint8_t *)"cli",
                         .peer_len = 3,
                         .spec = res,
                         .params = params,
                         .nparams = np});
    h_flush(&h);
    for (size_t i = 0; i + 3 <= size;) {
        size_t len = ((size_t)data[i] << 8) | data[i + 1];
        const char *peer = data[i + 2] & 1 ? "w2" : "w1";
        i += 3;
        if (len > size - i)
            len = size - i;
        Ty__Envelope *env = NULL;
        if (ty_wire_decode(data + i, len, 1 << 20, &env) == 0) {
            h_worker_msg(&h, peer, env);
            ty_wire_free(&env);
        }
        i += len;
        h_advance(&h, 300);
        h_clear_sent(&h);
    }
    h_fini(&h);
    return 0;
}
