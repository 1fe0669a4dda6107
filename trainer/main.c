/* trainyard-train: gen | fit | eval | predict.  `fit` is the MPI program;
 * run it under mpirun for several ranks (a worker does that for kind: mpi). */
#include "trainer/bgzf.h"
#include "trainer/data.h"
#include "trainer/drift.h"
#include "trainer/labels.h"
#include "trainer/model.h"
#include "trainer/train.h"
#include "trainer/use.h"

#include "common/util.h"

#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

int ty_train_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("trainyard-train: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 2;
}

static void ty_usage(FILE *f) {
    fputs(
        "usage:\n"
        "  trainyard-train gen --rows N --features F --classes C --seed S [--shift X]\n"
        "      --out FILE.csv[.gz]   (--shift moves every feature by X: a drifted period)\n"
        "  trainyard-train fit --train DATA [--val DATA | --val-split X] [--target COL]\n"
        "      --model softmax|linear|mlp:H1,H2,... [--epochs N] [--batch B] [--lr X]\n"
        "      [--optimizer sgd|adam] [--momentum M] [--weight-decay W] [--warmup STEPS]\n"
        "      [--schedule constant|cosine|step] [--step-size E] [--gamma G] [--patience N]\n"
        "      [--seed S] [--device cpu|cuda] [--checkpoint-dir DIR] [--checkpoint-every N]\n"
        "      [--resume] [--vshards V] [--class-names A,B,...] --out MODEL [--onnx FILE]\n"
        "      [-o json]\n"
        "  trainyard-train eval --model MODEL --data DATA [--target COL] [-o json]\n"
        "  trainyard-train predict --model MODEL --data DATA [--target COL] --out FILE.csv|-\n"
        "  trainyard-train info MODEL [-o json]\n"
        "  trainyard-train bgzf IN OUT.gz [--level 0-9]   (gzip or plain -> BGZF: sharded reads)\n"
        "  trainyard-train drift --reference DATA --current DATA [--target COL]\n"
        "      [--threshold PSI (0.2)] [-o json]   (exit status 3 when a feature drifts)\n"
        "DATA is a CSV path (gzip allowed) or idx:IMAGES_FILE,LABELS_FILE (predict: labels\n"
        "and the CSV target column may be left out)\n",
        f);
}

int ty_train_num(const char *name, const char *v, double lo, double hi, double *out) {
    if (ty_parse_f64(v, lo, hi, out) != 0) {
        ty_train_die("--%s: want a number in [%g, %g], got '%s'", name, lo, hi, v);
        return -1;
    }
    return 0;
}

/* ---- gen ---- */

/* A progress line to TRAINYARD_REPORT when set, else to stdout, as fit does. */
static void ty_gen_progress(double frac, size_t done, size_t total, const char *unit) {
    char line[128];
    snprintf(line, sizeof line, "progress %.4f %s %zu/%zu\n", frac, unit, done, total);
    if (!ty_train_report_line("%s", line)) {
        fputs(line, stdout);
        fflush(stdout);
    }
}

/* "%.5f," without printf (gen writes millions): the value rounded to 1e-5
 * half away from zero; |x| < 1e13. */
static void ty_put_fixed5(ty_buf_t *b, double x) {
    char tmp[40], *e = tmp + sizeof tmp, *p = e;
    long long v = llround(fabs(x) * 1e5);
    *--p = ',';
    for (int i = 0; i < 5; i++, v /= 10)
        *--p = (char)('0' + v % 10);
    *--p = '.';
    do
        *--p = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    if (x < 0 && llround(fabs(x) * 1e5) != 0)
        *--p = '-';
    ty_buf_append(b, p, (size_t)(e - p));
}

/* The temporary file a long write is making (gen, bgzf): removed when the
 * command is interrupted (Ctrl-C, kill), so that nothing half-made stays.
 * ty_partial_begin() blocks those signals until ty_partial_guard(path) has
 * a copy of the name (NULL: nothing was made), so none lands between the
 * file's making and its guarding; it stays guarded until ty_partial_end(),
 * after the rename (an unlink of the old name is then harmless). */
static char ty_partial_path[4096];
static volatile sig_atomic_t ty_partial_on;
static sigset_t ty_partial_mask;

static void ty_partial_cleanup(int sig) {
    if (ty_partial_on)
        unlink(ty_partial_path); /* async-signal-safe */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void ty_partial_begin(void) {
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &ty_partial_mask);
}

static void ty_partial_guard(const char *path) {
    if (path && strlen(path) < sizeof ty_partial_path) {
        strcpy(ty_partial_path, path);
        ty_partial_on = 1;
        signal(SIGINT, ty_partial_cleanup);
        signal(SIGTERM, ty_partial_cleanup);
        signal(SIGHUP, ty_partial_cleanup);
    }
    sigprocmask(SIG_SETMASK, &ty_partial_mask, NULL);
}

static void ty_partial_end(void) { ty_partial_on = 0; }

/* gen's rows so far, to the BGZF writer or the plain file: 0 or -errno. */
static int ty_gen_put(ty_bgzf_writer_t *z, FILE *plain, const ty_buf_t *b) {
    if (z)
        return ty_bgzf_write(z, b->data, b->len);
    errno = 0;
    return fwrite(b->data, 1, b->len, plain) == b->len ? 0 : -(errno ? errno : EIO);
}

/* A seeded synthetic set a linear model cannot fit: the class is the sum of
 * two features' quantile bins modulo C (a checkerboard); other features are
 * noise.  An MLP learns it. */
static int ty_cmd_gen(int argc, char **argv) {
    double rows = 0, feats = 8, classes = 2, seed = 1, shift = 0;
    const char *out = NULL;
    static const struct option opts[] = {
        {"rows", 1, 0, 'r'}, {"features", 1, 0, 'f'}, {"classes", 1, 0, 'c'},
        {"seed", 1, 0, 's'}, {"shift", 1, 0, 'h'},    {"out", 1, 0, 'o'},
        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'r':
            bad = ty_train_num("rows", optarg, 1, 1e9, &rows);
            break;
        case 'f':
            bad = ty_train_num("features", optarg, 2, 100000, &feats);
            break;
        case 'c':
            bad = ty_train_num("classes", optarg, 2, 1000, &classes);
            break;
        case 's':
            bad = ty_train_num("seed", optarg, 0, 1e18, &seed);
            break;
        case 'h':
            bad = ty_train_num("shift", optarg, -100, 100, &shift);
            break;
        case 'o':
            out = optarg;
            break;
        default:
            ty_usage(stderr);
            return 2;
        }
        if (bad)
            return 2;
    }
    if (!out || rows < 1)
        return ty_train_die("gen needs --rows N and --out FILE");
    size_t n = strlen(out);
    int gz = n > 3 && strcmp(out + n - 3, ".gz") == 0;
    /* .gz is written as BGZF: ordinary gzip to any reader, and each rank of
     * a training run can decompress only its own blocks.  Either is written
     * beside out and renamed over it: a gen stopped half-way leaves no
     * shorter data set under the name. */
    ty_bgzf_writer_t *z = NULL;
    FILE *plain = NULL;
    char *err = NULL, *tmp = NULL;
    ty_partial_begin();
    int orc = gz ? 0 : ty_atomic_open(out, &plain, &tmp);
    if (gz) { /* (a special file, /dev/null say, is written in place) */
        tmp = ty_atomic_tmp_path(out);
        orc = ty_bgzf_writer_create(&z, tmp ? tmp : out, 0, 1, &err);
        free(err);
        err = NULL;
        if (orc != 0)
            free(tmp);
    }
    ty_partial_guard(orc == 0 ? tmp : NULL);
    if (orc != 0)
        return ty_train_die("cannot write %s: %s", out, strerror(-orc));
    int F = (int)feats, C = (int)classes, werr = 0;
    ty_buf_t b = {0};
    for (int j = 0; j < F; j++)
        ty_buf_printf(&b, "f%d,", j);
    ty_buf_printf(&b, "label\n");
    uint64_t s = (uint64_t)seed;
    double *x = ty_xcalloc((size_t)F, sizeof(double));
    double every = ty_train_progress_every(), last = ty_train_clock();
    for (size_t r = 0; r < (size_t)rows && !werr; r++) {
        for (int j = 0; j < F; j++)
            x[j] = ty_rng_normal(&s);
        /* bins of equal probability under N(0, 1) */
        int q0 = (int)(0.5 * (1 + erf(x[0] / M_SQRT2)) * C),
            q1 = (int)(0.5 * (1 + erf(x[1] / M_SQRT2)) * C);
        q0 = q0 >= C ? C - 1 : q0;
        q1 = q1 >= C ? C - 1 : q1;
        for (int j = 0; j < F; j++)
            ty_put_fixed5(&b, x[j] + shift); /* the labels stay those of x */
        ty_buf_printf(&b, "%d\n", (q0 + q1) % C);
        if (b.len >= 65536 || r + 1 == (size_t)rows) {
            werr = ty_gen_put(z, plain, &b);
            b.len = 0;
            if (ty_train_clock() - last >= every) {
                last = ty_train_clock();
                ty_gen_progress((double)(r + 1) / rows, r + 1, (size_t)rows, "rows");
            }
        }
    }
    free(x);
    ty_buf_free(&b);
    int crc = 0;
    if (z) {
        crc = ty_bgzf_writer_close(&z, &err);
        free(err);
        int frc = ty_atomic_finish(tmp, out, !werr && !crc);
        crc = crc ? crc : frc;
    } else {
        crc = ty_atomic_close(plain, tmp, out, !werr);
    }
    ty_partial_end();
    if (werr || crc)
        return ty_train_die("cannot write %s: %s", out, strerror(-(werr ? werr : crc)));
    return 0;
}

/* ---- bgzf ---- */

/* Rewrites any file, gzip or plain, as BGZF, so that each rank of a
 * training run decompresses only the blocks of its own shard. */
static int ty_cmd_bgzf(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    double level = 6;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--level") == 0 && i + 1 < argc) {
            if (ty_train_num("level", argv[++i], 0, 9, &level))
                return 2;
        } else if (argv[i][0] != '-' && !in) {
            in = argv[i];
        } else if (argv[i][0] != '-' && !out) {
            out = argv[i];
        } else {
            return ty_train_die("usage: trainyard-train bgzf IN OUT.gz [--level 0-9]");
        }
    }
    if (!in || !out)
        return ty_train_die("usage: trainyard-train bgzf IN OUT.gz [--level 0-9]");
    struct stat st;
    gzFile f = stat(in, &st) == 0 ? gzopen(in, "rb") : NULL;
    if (!f)
        return ty_train_die("cannot read %s: %s", in, strerror(errno ? errno : ENOENT));
    char *tmp = ty_atomic_tmp_path(out), *err = NULL;
    ty_bgzf_writer_t *w = NULL;
    ty_partial_begin();
    int orc = ty_bgzf_writer_create(&w, tmp ? tmp : out, 0, (int)level, &err);
    ty_partial_guard(orc == 0 ? tmp : NULL);
    if (orc != 0) {
        gzclose(f);
        ty_train_die("%s", err);
        free(err), free(tmp);
        return 1;
    }
    unsigned char *buf = ty_xmalloc(1 << 20);
    double every = ty_train_progress_every(), last = ty_train_clock();
    int k, werr = 0;
    while (!werr && (k = gzread(f, buf, 1 << 20)) > 0) {
        werr = ty_bgzf_write(w, buf, (size_t)k) != 0;
        if (ty_train_clock() - last >= every && st.st_size > 0) {
            last = ty_train_clock();
            double done = (double)gzoffset(f) / (double)st.st_size;
            ty_gen_progress(done > 1 ? 1 : done, (size_t)gzoffset(f), (size_t)st.st_size, "bytes");
        }
    }
    int zerr = Z_OK;
    const char *zmsg = gzerror(f, &zerr);
    char *rerr = zerr != Z_OK ? ty_xasprintf("cannot read %s: %s", in, zmsg) : NULL;
    gzclose(f);
    free(buf);
    int cerr = ty_bgzf_writer_close(&w, &err);
    int rc = 0, frc = ty_atomic_finish(tmp, out, !rerr && !werr && !cerr);
    if (rerr || werr || cerr || frc)
        rc = ty_train_die("%s", rerr ? rerr : err ? err : "cannot write the output");
    ty_partial_end();
    free(rerr), free(err);
    return rc ? 1 : 0;
}

/* ---- fit ---- */

static int ty_parse_model(const char *v, ty_train_opts_t *o) {
    if (strcmp(v, "softmax") == 0) {
        o->arch = TY_ARCH_SOFTMAX;
    } else if (strcmp(v, "linear") == 0) {
        o->arch = TY_ARCH_LINEAR;
    } else if (strncmp(v, "mlp:", 4) == 0) {
        o->arch = TY_ARCH_MLP;
        const char *p = v + 4;
        while (*p) {
            char *e;
            long h = strtol(p, &e, 10);
            if (e == p || h <= 0 || h > 1 << 20 || o->nhidden >= 16 || (*e && *e != ','))
                return -1;
            o->hidden[o->nhidden++] = (uint32_t)h;
            if (*e && !e[1])
                return -1; /* a trailing comma */
            p = *e ? e + 1 : e;
        }
        if (o->nhidden == 0)
            return -1;
    } else {
        return -1;
    }
    return 0;
}

/* Fills *out; returns -1 to go on and train, else an exit status. */
static int ty_cmd_fit(int argc, char **argv, ty_train_opts_t *out) {
    ty_train_opts_t o = {.epochs = 10,
                         .batch = 256,
                         .lr = 0.1,
                         .momentum = 0.9,
                         .seed = 1,
                         .ckpt_every = 1,
                         .vshards = 8,
                         .gamma = 0.1,
                         .step_size = 10};
    int have_model = 0;
    double v;
    static const struct option opts[] = {{"train", 1, 0, 't'},
                                         {"val", 1, 0, 'v'},
                                         {"val-split", 1, 0, 'V'},
                                         {"target", 1, 0, 'T'},
                                         {"model", 1, 0, 'm'},
                                         {"epochs", 1, 0, 'e'},
                                         {"batch", 1, 0, 'b'},
                                         {"lr", 1, 0, 'l'},
                                         {"optimizer", 1, 0, 'O'},
                                         {"momentum", 1, 0, 'M'},
                                         {"weight-decay", 1, 0, 'w'},
                                         {"warmup", 1, 0, 'W'},
                                         {"schedule", 1, 0, 'S'},
                                         {"step-size", 1, 0, 'z'},
                                         {"gamma", 1, 0, 'g'},
                                         {"patience", 1, 0, 'p'},
                                         {"seed", 1, 0, 's'},
                                         {"device", 1, 0, 'd'},
                                         {"checkpoint-dir", 1, 0, 'c'},
                                         {"checkpoint-every", 1, 0, 'C'},
                                         {"resume", 0, 0, 'r'},
                                         {"vshards", 1, 0, 'x'},
                                         {"out", 1, 0, 'u'},
                                         {"regression", 0, 0, 'R'},
                                         {"onnx", 1, 0, 'X'},
                                         {"class-names", 1, 0, 'N'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 't':
            o.train = optarg;
            break;
        case 'v':
            o.val = optarg;
            break;
        case 'V':
            bad = ty_train_num("val-split", optarg, 0, 0.9, &o.val_split);
            break;
        case 'T':
            o.target = optarg;
            break;
        case 'm':
            have_model = 1;
            if (ty_parse_model(optarg, &o) != 0)
                return ty_train_die("--model: want softmax, linear or mlp:H1,H2,..., got '%s'",
                                    optarg);
            break;
        case 'e':
            bad = ty_train_num("epochs", optarg, 1, 1e6, &v);
            o.epochs = (int)v;
            break;
        case 'b':
            bad = ty_train_num("batch", optarg, 1, 1e7, &v);
            o.batch = (uint32_t)v;
            break;
        case 'l':
            bad = ty_train_num("lr", optarg, 0, 1e3, &o.lr);
            break;
        case 'O':
            if (strcmp(optarg, "adam") == 0)
                o.adam = 1;
            else if (strcmp(optarg, "sgd") != 0)
                return ty_train_die("--optimizer: sgd or adam, got '%s'", optarg);
            break;
        case 'M':
            bad = ty_train_num("momentum", optarg, 0, 0.9999, &o.momentum);
            break;
        case 'w':
            bad = ty_train_num("weight-decay", optarg, 0, 1, &o.weight_decay);
            break;
        case 'W':
            bad = ty_train_num("warmup", optarg, 0, 1e9, &v);
            o.warmup_steps = (int)v;
            break;
        case 'S':
            if (strcmp(optarg, "constant") == 0)
                o.schedule = 0;
            else if (strcmp(optarg, "cosine") == 0)
                o.schedule = 1;
            else if (strcmp(optarg, "step") == 0)
                o.schedule = 2;
            else
                return ty_train_die("--schedule: constant, cosine or step, got '%s'", optarg);
            break;
        case 'z':
            bad = ty_train_num("step-size", optarg, 1, 1e6, &v);
            o.step_size = (int)v;
            break;
        case 'g':
            bad = ty_train_num("gamma", optarg, 0, 1, &o.gamma);
            break;
        case 'p':
            bad = ty_train_num("patience", optarg, 0, 1e6, &v);
            o.patience = (int)v;
            break;
        case 's':
            bad = ty_train_num("seed", optarg, 0, 1e18, &v);
            o.seed = (uint64_t)v;
            break;
        case 'd':
            if (strcmp(optarg, "cuda") == 0)
                o.device_cuda = 1;
            else if (strcmp(optarg, "cpu") != 0)
                return ty_train_die("--device: cpu or cuda, got '%s'", optarg);
            break;
        case 'c':
            o.ckpt_dir = optarg;
            break;
        case 'C':
            bad = ty_train_num("checkpoint-every", optarg, 1, 1e6, &v);
            o.ckpt_every = (int)v;
            break;
        case 'r':
            o.resume = 1;
            break;
        case 'x':
            bad = ty_train_num("vshards", optarg, 1, 4096, &v);
            o.vshards = (uint32_t)v;
            break;
        case 'u':
            o.out = optarg;
            break;
        case 'R':
            o.regression = 1;
            break;
        case 'X':
            o.onnx = optarg;
            break;
        case 'N': { /* checked here, before any rank starts */
            ty_labels_t l;
            char *err = NULL;
            if (ty_labels_parse(optarg, &l, &err) != 0) {
                ty_train_die("%s", err);
                free(err);
                return 2;
            }
            ty_labels_free(&l);
            o.class_names = optarg;
            break;
        }
        case 'o':
            if (strcmp(optarg, "json") != 0)
                return ty_train_die("-o: only json");
            o.json = 1;
            break;
        default:
            ty_usage(stderr);
            return 2;
        }
        if (bad)
            return 2;
    }
    if (!o.train || !o.out || !have_model)
        return ty_train_die("fit needs --train DATA, --model and --out MODEL");
    if (o.batch < o.vshards) /* shards with no share of a step: their rows never trained on */
        return ty_train_die("--batch %u is smaller than the %u virtual shards every step takes "
                            "its rows from (--vshards, default 8): use --vshards %u or fewer "
                            "(a multiple of the rank count), or a larger --batch",
                            o.batch, o.vshards, o.batch);
    if (o.resume && !o.ckpt_dir)
        return ty_train_die("--resume needs --checkpoint-dir");
    if (o.patience > 0 && !o.val && !(o.val_split > 0))
        return ty_train_die("--patience needs validation data: --val DATA or --val-split F");
    *out = o;
    return -1;
}

/* OpenBLAS reads its settings when it loads, before main, so the trainer
 * runs itself again (the same process: under mpirun nothing notices) when
 * one must change:
 * - OPENBLAS_NUM_THREADS=1 when unset: each rank is one thread, and the
 *   pthread build's spare worker would otherwise spin on another rank's core
 *   at start-up;
 * - OPENBLAS_CORETYPE: Debian's OpenBLAS 0.3.21 does not know CPUs newer than
 *   it (Sapphire and Emerald Rapids, say) and falls back to its SSE3
 *   "Prescott" kernels, several times slower; on such a CPU with AVX-512 or
 *   AVX2 the matching kernels are asked for. */
static void ty_blas_setup(char **argv) {
    int again = 0;
    if (!getenv("OPENBLAS_NUM_THREADS")) {
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        again = 1;
    }
    const char *core = openblas_get_corename();
    if (!getenv("OPENBLAS_CORETYPE") && core && strcasecmp(core, "prescott") == 0) {
        __builtin_cpu_init();
        const char *want = __builtin_cpu_supports("avx512f") ? "SkylakeX"
                           : __builtin_cpu_supports("avx2")  ? "Haswell"
                                                             : NULL;
        if (want) {
            setenv("OPENBLAS_CORETYPE", want, 1);
            again = 1;
        }
    }
    char self[4096];
    ssize_t n = again ? readlink("/proc/self/exe", self, sizeof self - 1) : -1;
    if (n <= 0)
        return;
    self[n] = '\0';
    execv(self, argv); /* by its path: ps and top show trainyard-train, not "exe" */
    /* exec failed: carry on as we are */
}

int main(int argc, char **argv) {
    ty_blas_setup(argv);
    int help = argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[argc - 1], "-h") == 0);
    for (int i = 1; i < argc; i++) /* trainyard-train fit ... --help too */
        help = help || strcmp(argv[i], "--help") == 0;
    if (argc < 2 || help) {
        ty_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    openblas_set_num_threads(1); /* one thread per rank: ranks are the parallelism */
    const char *cmd = argv[1];
    if (strcmp(cmd, "gen") == 0)
        return ty_cmd_gen(argc - 1, argv + 1);
    if (strcmp(cmd, "eval") == 0)
        return ty_cmd_eval(argc - 1, argv + 1);
    if (strcmp(cmd, "predict") == 0)
        return ty_cmd_predict(argc - 1, argv + 1);
    if (strcmp(cmd, "drift") == 0)
        return ty_cmd_drift(argc - 1, argv + 1);
    if (strcmp(cmd, "info") == 0)
        return ty_cmd_info(argc - 1, argv + 1);
    if (strcmp(cmd, "bgzf") == 0)
        return ty_cmd_bgzf(argc - 1, argv + 1);
    if (strcmp(cmd, "fit") != 0) {
        fprintf(stderr, "trainyard-train: unknown command '%s'\n", cmd);
        ty_usage(stderr);
        return 2;
    }
    ty_train_opts_t o;
    int rc = ty_cmd_fit(argc - 1, argv + 1, &o);
    if (rc >= 0)
        return rc;
    /* MPI's default error handler aborts the whole job, and mpirun ends every
     * rank when one dies: a dead rank never leaves the others hanging */
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    rc = ty_train_run(&o, rank, size);
    MPI_Finalize();
    return rc;
}
