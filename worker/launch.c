/* An attempt's command line and environment, from its Dispatch: the
 * TRAINYARD_* contract, the built-in template values, MPI steps under
 * mpirun (one worker, or a gang across workers: its hosts, trainyard-rsh,
 * the rendezvous of torch.distributed), each rank's own variables. */
#include "worker/launch.h"

#include "common/tmpl.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

extern char **environ;

/* {{ run.id }}, {{ task.name }}, {{ task.attempt }}: the attempt's own
 * values (the master rendered params and inputs). */
static char *ty_builtin_value(const void *arg, const char *name, size_t len) {
    const ty_attempt_t *p = arg;
    if (len == 6 && strncmp(name, "run.id", len) == 0)
        return ty_xstrdup(p->run_id);
    if (len == 9 && strncmp(name, "task.name", len) == 0)
        return ty_xstrdup(p->task);
    if (len == 12 && strncmp(name, "task.attempt", len) == 0)
        return ty_xasprintf("%u", p->attempt);
    return NULL;
}

/* A TCP port nobody listens on now (the kernel's choice), for a rank 0 to
 * listen on (on loopback, or any address: any); 29500, torch's default,
 * when none can be had. */
static int ty_free_port(int any) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = 29500;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(any ? INADDR_ANY : INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Whether the worker's environment or the step's env sets NAME. */
static int ty_env_given(const Ty__Dispatch *d, const char *name) {
    int set = getenv(name) != NULL;
    for (size_t i = 0; i < d->n_env && !set; i++)
        set = strcmp(d->env[i]->key, name) == 0;
    return set;
}

static char *ty_render_builtins(const char *s, ty_tmpl_mode_t mode, const ty_attempt_t *p) {
    if (!strstr(s, "{{"))
        return ty_xstrdup(s);
    char *missing = NULL; /* other braces are the command's own */
    char *r = ty_tmpl_render(s, mode, "", ty_builtin_value, p, &missing);
    free(missing);
    return r;
}

/* environ, minus names we set, plus the task's env and the TRAINYARD_* contract. */
char **ty_build_env(ty_wk_t *wk, const ty_attempt_t *p, const Ty__Dispatch *d) {
    ty_buf_t gpus = {0};
    for (size_t i = 0; i < d->n_gpu_ids; i++)
        ty_buf_printf(&gpus, "%s%u", i ? "," : "", d->gpu_ids[i]);
    size_t cap = 25 + d->n_env; /* ours, below, and the NULL */
    for (char **e = environ; *e; e++)
        cap++;
    char **env = ty_xcalloc(cap, sizeof *env);
    size_t n = 0;
    char *ours[24];
    size_t nours = 0;
    ours[nours++] = ty_xasprintf("TRAINYARD_RUN_ID=%s", p->run_id);
    ours[nours++] = ty_xasprintf("TRAINYARD_TASK=%s", p->task);
    ours[nours++] = ty_xasprintf("TRAINYARD_ATTEMPT=%u", p->attempt);
    ours[nours++] = ty_xasprintf("TRAINYARD_REPORT=%s", p->report);
    ours[nours++] = ty_xasprintf("TRAINYARD_WORKER=%s", wk->id);
    ours[nours++] = ty_xasprintf("PWD=%s", p->dir); /* not the worker's */
    ours[nours++] = ty_xasprintf("TRAINYARD_DIR=%s", p->dir);
    static const char *const ifname_vars[] = {"GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME"};
    if (d->n_parts > 1) {   /* a gang across workers: its ranks meet on the cluster's network */
        if (d->part == 0) { /* torch.distributed's rendezvous (env://): rank 0 is here */
            const char *a = d->parts[0]->address;
            ours[nours++] = ty_xasprintf("MASTER_ADDR=%s", *a ? a : wk->hostname);
            ours[nours++] = ty_xasprintf("MASTER_PORT=%d", ty_free_port(1));
            if (p->rsh_path)
                ours[nours++] = ty_xasprintf("TRAINYARD_RSH=%s", p->rsh_path);
        }
        for (size_t v = 0; wk->mpi_if && v < sizeof ifname_vars / sizeof *ifname_vars; v++)
            if (!ty_env_given(d, ifname_vars[v]))
                ours[nours++] = ty_xasprintf("%s=%s", ifname_vars[v], wk->mpi_if);
    } else if (d->kind == 1) { /* torch.distributed's rendezvous (env://): rank 0 is here */
        ours[nours++] = ty_xstrdup("MASTER_ADDR=127.0.0.1");
        ours[nours++] = ty_xasprintf("MASTER_PORT=%d", ty_free_port(0));
        /* every rank is on this host: gloo and NCCL talk over loopback, not
         * over whatever address the host name resolves to (gloo's default,
         * which may not be reachable from the host itself, and may need a
         * DNS lookup) */
        for (size_t v = 0; v < sizeof ifname_vars / sizeof *ifname_vars; v++)
            if (!ty_env_given(d, ifname_vars[v]))
                ours[nours++] = ty_xasprintf("%s=lo", ifname_vars[v]);
    }
    if (wk->run_user) { /* the task's own user, not the worker's */
        ours[nours++] = ty_xasprintf("HOME=%s", wk->run_home);
        ours[nours++] = ty_xasprintf("USER=%s", wk->run_user);
        ours[nours++] = ty_xasprintf("LOGNAME=%s", wk->run_user);
    }
    if (wk->gpus > 0 || d->n_gpu_ids > 0)
        ours[nours++] = ty_xasprintf("CUDA_VISIBLE_DEVICES=%s", gpus.data ? gpus.data : "");
    ty_buf_free(&gpus);
    /* Open MPI's shared-memory files (the vader BTL's segments, shared
     * windows) and mpirun's session directory in the attempt's own
     * directory, unless set otherwise */
    static const char *const shm_vars[] = {"OMPI_MCA_btl_vader_backing_directory",
                                           "OMPI_MCA_osc_sm_backing_directory",
                                           "OMPI_MCA_orte_tmpdir_base"};
    for (size_t v = 0; p->shm_dir && v < sizeof shm_vars / sizeof *shm_vars; v++)
        if (!ty_env_given(d, shm_vars[v]))
            ours[nours++] = ty_xasprintf("%s=%s", shm_vars[v], p->shm_dir);
    /* mpirun hands its OMPI_MCA_* values to every rank, the other parts'
     * too, whose shared memory must not be part 0's: the shared-memory
     * segments are named by host name and local rank, the same for two
     * parts on one machine (Open MPI's segments then collide and the job
     * crashes or hangs); each rank takes its own part's back (ty_rank_env).
     * (The other variables matter within one part only: MPI-3 shared
     * windows span one node, mpirun's session directory is part 0's.) */
    if (p->shm_dir && !ty_env_given(d, shm_vars[0]))
        ours[nours++] = ty_xasprintf("TRAINYARD_SHM_DIR=%s", p->shm_dir);
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        size_t klen = eq ? (size_t)(eq - *e) : strlen(*e);
        int skip = 0;
        for (size_t i = 0; i < nours && !skip; i++)
            skip = strncmp(ours[i], *e, klen + 1) == 0;
        for (size_t i = 0; i < d->n_env && !skip; i++)
            skip = strlen(d->env[i]->key) == klen && strncmp(d->env[i]->key, *e, klen) == 0;
        if (!skip)
            env[n++] = ty_xstrdup(*e);
    }
    for (size_t i = 0; i < d->n_env; i++) {
        char *v = ty_render_builtins(d->env[i]->value, TY_TMPL_RAW, p);
        env[n++] = ty_xasprintf("%s=%s", d->env[i]->key, v);
        free(v);
    }
    for (size_t i = 0; i < nours; i++)
        env[n++] = ours[i];
    env[n] = NULL;
    return env;
}

/* Each rank of an MPI step gets torch.distributed's variables from Open
 * MPI's (mpirun gives every rank the same environment, so a shell in front
 * of the command sets them per rank); MASTER_ADDR and MASTER_PORT come from
 * the worker, for all.  The shell also gives a gang's ranks their own
 * part's shared-memory directory and attempt directory (ty_build_env). */
static const char ty_rank_env[] =
    "export RANK=$OMPI_COMM_WORLD_RANK WORLD_SIZE=$OMPI_COMM_WORLD_SIZE "
    "LOCAL_RANK=$OMPI_COMM_WORLD_LOCAL_RANK LOCAL_WORLD_SIZE=$OMPI_COMM_WORLD_LOCAL_SIZE; "
    "[ -z \"$TRAINYARD_SHM_DIR\" ] || "
    "export OMPI_MCA_btl_vader_backing_directory=\"$TRAINYARD_SHM_DIR\"; "
    "cd \"${TRAINYARD_DIR:-.}\" 2>/dev/null; exec \"$0\" \"$@\"";

/* The task's own command. */
static size_t ty_push_command(char **argv, size_t n, const Ty__Dispatch *d, const ty_attempt_t *p) {
    if (d->kind == 1) { /* each rank: its RANK, LOCAL_RANK, ... then the command */
        argv[n++] = ty_xstrdup("/bin/sh");
        argv[n++] = ty_xstrdup("-c");
        argv[n++] = ty_xstrdup(ty_rank_env);
    }
    if (*d->shell) {
        argv[n++] = ty_xstrdup("/bin/sh");
        argv[n++] = ty_xstrdup("-c");
        argv[n++] = ty_render_builtins(d->shell, TY_TMPL_SHELL, p);
    } else {
        for (size_t i = 0; i < d->n_argv; i++)
            argv[n++] = ty_render_builtins(
                d->argv[i], (ty_tmpl_mode_t)ty_tmpl_argv_is_shell(d->argv, d->n_argv, i), p);
    }
    return n;
}

/* mpirun's options for a gang across workers: the hosts and their ranks
 * (its own first, as localhost: mpirun starts those ranks itself), the
 * others' daemons through trainyard-rsh (parts.h), each started by mpirun
 * (no tree), attached to their part (no daemonizing), the network, and
 * torch.distributed's rendezvous for every rank. */
static size_t ty_gang_args(const ty_wk_t *wk, const Ty__Dispatch *d, char **argv, size_t n) {
    ty_buf_t hosts = {0};
    for (size_t i = 0; i < d->n_parts; i++)
        ty_buf_printf(&hosts, "%s%s:%u", i ? "," : "", i ? d->parts[i]->address : "localhost",
                      d->parts[i]->ranks);
    argv[n++] = ty_xstrdup("--host");
    argv[n++] = hosts.data;
    argv[n++] = ty_xstrdup("--leave-session-attached");
    static const char *const mca[][2] = {{"plm_rsh_agent", NULL},
                                         {"plm_rsh_no_tree_spawn", "1"},
                                         {"btl_tcp_if_include", NULL},
                                         {"oob_tcp_if_include", NULL}};
    for (size_t i = 0; i < sizeof mca / sizeof *mca; i++) {
        const char *v = i == 0 ? wk->rsh_path : i >= 2 ? wk->mpi_if : mca[i][1];
        if (!v)
            continue;
        argv[n++] = ty_xstrdup("-mca");
        argv[n++] = ty_xstrdup(mca[i][0]);
        argv[n++] = ty_xstrdup(v);
    }
    static const char *const fwd[] = {"MASTER_ADDR", "MASTER_PORT"};
    for (size_t i = 0; i < sizeof fwd / sizeof *fwd; i++) {
        argv[n++] = ty_xstrdup("-x");
        argv[n++] = ty_xstrdup(fwd[i]);
    }
    return n;
}

char **ty_build_argv(const ty_wk_t *wk, const Ty__Dispatch *d, const ty_attempt_t *p) {
    uint32_t np = d->np ? d->np : 1;
    /* GPUs per rank: each rank gets its own slice through one mpirun app
     * context per rank ("-np 1 -x CUDA_VISIBLE_DEVICES=... CMD : ...") */
    int gang = d->n_parts > 1; /* across workers: each part's ranks see its GPUs */
    int per_rank = d->kind == 1 && !gang && d->n_gpu_ids > 0 && d->n_gpu_ids % np == 0;
    size_t cmdlen = (*d->shell ? 3 : d->n_argv) + 4;
    size_t cap = 32 + (per_rank ? np * (cmdlen + 6) : cmdlen), n = 0;
    char **argv = ty_xcalloc(cap, sizeof *argv);
    if (d->kind != 1) { /* command */
        n = ty_push_command(argv, n, d, p);
        argv[n] = NULL;
        return argv;
    }
    /* mpi: one process group holds mpirun and its ranks */
    argv[n++] = ty_xstrdup("mpirun");
    if (geteuid() == 0 && !wk->run_user) /* the job runs as root only with --run-as root */
        argv[n++] = ty_xstrdup("--allow-run-as-root");
    argv[n++] = ty_xstrdup("--oversubscribe"); /* small machines: more ranks than cores */
    argv[n++] = ty_xstrdup("--tag-output");    /* each line's rank (tagout.h) */
    argv[n++] = ty_xstrdup("--bind-to");
    argv[n++] = ty_xstrdup("none"); /* the worker, not mpirun, decides placement */
    if (gang)
        n = ty_gang_args(wk, d, argv, n);
    if (!per_rank) {
        argv[n++] = ty_xstrdup("-np");
        argv[n++] = ty_xasprintf("%u", np);
        n = ty_push_command(argv, n, d, p);
        argv[n] = NULL;
        return argv;
    }
    size_t g = d->n_gpu_ids / np;
    for (uint32_t r = 0; r < np; r++) {
        if (r > 0)
            argv[n++] = ty_xstrdup(":");
        ty_buf_t ids = {0};
        for (size_t k = 0; k < g; k++)
            ty_buf_printf(&ids, "%s%u", k ? "," : "", d->gpu_ids[r * g + k]);
        argv[n++] = ty_xstrdup("-np");
        argv[n++] = ty_xstrdup("1");
        argv[n++] = ty_xstrdup("-x");
        argv[n++] = ty_xasprintf("CUDA_VISIBLE_DEVICES=%s", ids.data);
        ty_buf_free(&ids);
        n = ty_push_command(argv, n, d, p);
    }
    argv[n] = NULL;
    return argv;
}

void ty_strv_free(char **v) {
    for (char **s = v; s && *s; s++)
        free(*s);
    free(v);
}
