/* Linked into every program of trainer/ that calls MPI (trainyard-train,
 * trainer_gsum_test); nothing calls these, the sanitizer runtime does. */
/* LeakSanitizer hook (sanitized builds): Open MPI and its dlopen()ed
 * components keep allocations past MPI_Finalize by design.  The name is
 * LSan's, hence the leading underscores. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
    return "fast_unwind_on_malloc=0"; /* full stacks through MPI's frameless code */
}
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:libmpi.so\nleak:libopen-pal.so\nleak:libopen-rte.so\nleak:libhwloc.so\n"
           "leak:libpmix.so\nleak:libevent\nleak:mca_\n";
}
