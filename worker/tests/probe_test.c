#include "worker/worker.h"

#include "common/tests/ty_test.h"

#include <unistd.h>

int main(void) {
    ty_probe_t p;
    ty_probe(&p);
    CHECK(p.cpus >= 1);
    CHECK(p.cpus == (double)sysconf(_SC_NPROCESSORS_ONLN));
    CHECK(p.mem_mb > 0);
    if (!p.nvml)
        CHECK_EQ_INT(p.gpus, 0); /* without NVML nothing is invented */
    TEST_DONE();
}
