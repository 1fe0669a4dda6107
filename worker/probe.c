/* Resource probe.  NVML is loaded with dlopen so the worker builds and runs
 * on machines without NVIDIA's driver. */
#include "worker/worker.h"

#include <dlfcn.h>
#include <unistd.h>

typedef int (*ty_nvml_init_fn)(void);
typedef int (*ty_nvml_count_fn)(unsigned int *);
typedef int (*ty_nvml_shutdown_fn)(void);

static uint32_t ty_probe_gpus(int *ok) {
    *ok = 0;
    void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return 0;
    ty_nvml_init_fn init = (ty_nvml_init_fn)dlsym(h, "nvmlInit_v2");
    ty_nvml_count_fn count = (ty_nvml_count_fn)dlsym(h, "nvmlDeviceGetCount_v2");
    ty_nvml_shutdown_fn shutdown = (ty_nvml_shutdown_fn)dlsym(h, "nvmlShutdown");
    unsigned int n = 0;
    if (init && count && init() == 0) {
        if (count(&n) == 0)
            *ok = 1;
        else
            n = 0;
        if (shutdown)
            shutdown();
    }
    dlclose(h);
    return n;
}

void ty_probe(ty_probe_t *out) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    out->cpus = n > 0 ? (double)n : 1;
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    out->mem_mb = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize / (1024 * 1024) : 0;
    out->gpus = ty_probe_gpus(&out->nvml);
}
