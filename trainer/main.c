/* trainyard-train: gen | fit | eval | predict.  `fit` is the MPI program;
 * run it under mpirun for several ranks (a worker does that for kind: mpi). */
#include "trainer/data.h"
#include "trainer/drift.h"
#include "trainer/model.h"
#include "trainer/train.h"

#include "common/util.h"

#include <cblas.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zlib.h>

static int ty_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int ty_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("trainyard-train: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 2;
}

static void ty_usage(FILE *f) {
    fputs("usage:\n"
          "  trainyard-train gen --rows N --features F --classes C --seed S --out FILE.csv[.gz]\n"
          "  trainyard-train fit --train DATA [--val DATA | --val-split X] [--target COL]\n"
          "      --model softmax|linear|mlp:H1,H2,... [--epochs N] [--batch B] [--lr X]\n"
          "      [--optimizer sgd|adam] [--momentum M] [--weight-decay W] [--warmup STEPS]\n"
          "      [--schedule constant|cosine|step] [--step-size E] [--gamma G] [--patience N]\n"
          "      [--seed S] [--device cpu] [--checkpoint-dir DIR] [--checkpoint-every N]\n"
          "      [--resume] [--vshards V] --out MODEL [--onnx FILE] [-o json]\n"
          "  trainyard-train eval --model MODEL --data DATA [--target COL] [-o json]\n"
          "  trainyard-train predict --model MODEL --data DATA [--target COL] --out FILE.csv\n"
          "  trainyard-train drift --reference DATA --current DATA [--target COL]\n"
          "      [--threshold PSI] [-o json]   (exit status 3 when a feature drifts)\n"
          "DATA is a CSV path (gzip allowed) or idx:IMAGES_FILE,LABELS_FILE\n",
          f);
}

static int ty_parse_num(const char *name, const char *v, double lo, double hi, double *out) {
    char *e;
    double x = strtod(v, &e);
    if (!*v || *e || !isfinite(x) || x < lo || x > hi) {
        ty_die("--%s: want a number in [%g, %g], got '%s'", name, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

/* ---- gen ---- */

/* A seeded synthetic set a linear model cannot fit: the class is the sum of
 * two features' quantile bins modulo C (a checkerboard); other features are
 * noise.  An MLP learns it. */
static int ty_cmd_gen(int argc, char **argv) {
    double rows = 0, feats = 8, classes = 2, seed = 1;
    const char *out = NULL;
    static const struct option opts[] = {{"rows", 1, 0, 'r'},    {"features", 1, 0, 'f'},
                                         {"classes", 1, 0, 'c'}, {"seed", 1, 0, 's'},
                                         {"out", 1, 0, 'o'},     {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'r':
            bad = ty_parse_num("rows", optarg, 1, 1e9, &rows);
            break;
        case 'f':
            bad = ty_parse_num("features", optarg, 2, 100000, &feats);
            break;
        case 'c':
            bad = ty_parse_num("classes", optarg, 2, 1000, &classes);
            break;
        case 's':
            bad = ty_parse_num("seed", optarg, 0, 1e18, &seed);
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
        return ty_die("gen needs --rows N and --out FILE");
    size_t n = strlen(out);
    int gz = n > 3 && strcmp(out + n - 3, ".gz") == 0;
    gzFile f = gzopen(out, gz ? "wb6" : "wbT"); /* T: plain file */
    if (!f)
        return ty_die("cannot write %s", out);
    int F = (int)feats, C = (int)classes;
    for (int j = 0; j < F; j++)
        gzprintf(f, "f%d,", j);
    gzprintf(f, "label\n");
    uint64_t s = (uint64_t)seed;
    double *x = ty_xcalloc((size_t)F, sizeof(double));
    char line[64];
    for (size_t r = 0; r < (size_t)rows; r++) {
        for (int j = 0; j < F; j++)
            x[j] = ty_rng_normal(&s);
        /* bins of equal probability under N(0, 1) */
        int q0 = (int)(0.5 * (1 + erf(x[0] / M_SQRT2)) * C),
            q1 = (int)(0.5 * (1 + erf(x[1] / M_SQRT2)) * C);
        q0 = q0 >= C ? C - 1 : q0;
        q1 = q1 >= C ? C - 1 : q1;
        for (int j = 0; j < F; j++) {
            int k = snprintf(line, sizeof line, "%.5f,", x[j]);
            gzwrite(f, line, (unsigned)k);
        }
        gzprintf(f, "%d\n", (q0 + q1) % C);
    }
    free(x);
    if (gzclose(f) != Z_OK)
        return ty_die("cannot write %s", out);
    return 0;
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
            bad = ty_parse_num("val-split", optarg, 0, 0.9, &o.val_split);
            break;
        case 'T':
            o.target = optarg;
            break;
        case 'm':
            have_model = 1;
            if (ty_parse_model(optarg, &o) != 0)
                return ty_die("--model: want softmax, linear or mlp:H1,H2,..., got '%s'", optarg);
            break;
        case 'e':
            bad = ty_parse_num("epochs", optarg, 1, 1e6, &v);
            o.epochs = (int)v;
            break;
        case 'b':
            bad = ty_parse_num("batch", optarg, 1, 1e7, &v);
            o.batch = (uint32_t)v;
            break;
        case 'l':
            bad = ty_parse_num("lr", optarg, 0, 1e3, &o.lr);
            break;
        case 'O':
            if (strcmp(optarg, "adam") == 0)
                o.adam = 1;
            else if (strcmp(optarg, "sgd") != 0)
                return ty_die("--optimizer: sgd or adam, got '%s'", optarg);
            break;
        case 'M':
            bad = ty_parse_num("momentum", optarg, 0, 0.9999, &o.momentum);
            break;
        case 'w':
            bad = ty_parse_num("weight-decay", optarg, 0, 1, &o.weight_decay);
            break;
        case 'W':
            bad = ty_parse_num("warmup", optarg, 0, 1e9, &v);
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
                return ty_die("--schedule: constant, cosine or step, got '%s'", optarg);
            break;
        case 'z':
            bad = ty_parse_num("step-size", optarg, 1, 1e6, &v);
            o.step_size = (int)v;
            break;
        case 'g':
            bad = ty_parse_num("gamma", optarg, 0, 1, &o.gamma);
            break;
        case 'p':
            bad = ty_parse_num("patience", optarg, 0, 1e6, &v);
            o.patience = (int)v;
            break;
        case 's':
            bad = ty_parse_num("seed", optarg, 0, 1e18, &v);
            o.seed = (uint64_t)v;
            break;
        case 'd':
            if (strcmp(optarg, "cpu") != 0)
                return ty_die("--device %s: this build has the CPU backend only", optarg);
            break;
        case 'c':
            o.ckpt_dir = optarg;
            break;
        case 'C':
            bad = ty_parse_num("checkpoint-every", optarg, 1, 1e6, &v);
            o.ckpt_every = (int)v;
            break;
        case 'r':
            o.resume = 1;
            break;
        case 'x':
            bad = ty_parse_num("vshards", optarg, 1, 4096, &v);
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
        case 'o':
            if (strcmp(optarg, "json") != 0)
                return ty_die("-o: only json");
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
        return ty_die("fit needs --train DATA, --model and --out MODEL");
    if (o.resume && !o.ckpt_dir)
        return ty_die("--resume needs --checkpoint-dir");
    *out = o;
    return -1;
}

/* ---- eval / predict ---- */

typedef struct {
    const char *model, *data, *target, *out;
    int json;
} ty_use_opts_t;

static int ty_parse_use(int argc, char **argv, ty_use_opts_t *u) {
    static const struct option opts[] = {{"model", 1, 0, 'm'},
                                         {"data", 1, 0, 'd'},
                                         {"target", 1, 0, 't'},
                                         {"out", 1, 0, 'u'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            u->model = optarg;
            break;
        case 'd':
            u->data = optarg;
            break;
        case 't':
            u->target = optarg;
            break;
        case 'u':
            u->out = optarg;
            break;
        case 'o':
            if (strcmp(optarg, "json") != 0)
                return ty_die("-o: only json");
            u->json = 1;
            break;
        default:
            ty_usage(stderr);
            return 2;
        }
    }
    if (!u->model || !u->data)
        return ty_die("needs --model MODEL and --data DATA");
    return 0;
}

/* Load model and data (standardised with the model's statistics). */
static int ty_load_pair(const ty_use_opts_t *u, ty_model_t **m, ty_data_t **d) {
    char *err = NULL;
    if (ty_model_load(u->model, m, &err) != 0 ||
        ty_data_load(u->data, u->target ? u->target : NULL, 0, 1, d, &err) != 0) {
        ty_die("%s", err);
        free(err);
        ty_model_destroy(m);
        return 1;
    }
    if ((*d)->cols != (*m)->dims[0]) {
        ty_die("%s has %zu features; the model wants %u", u->data, (*d)->cols, (*m)->dims[0]);
        ty_model_destroy(m);
        ty_data_destroy(d);
        return 1;
    }
    ty_data_standardize(*d, (*m)->mean, (*m)->std);
    return 0;
}

static float *ty_predict_all(ty_model_t *m, ty_data_t *d) {
    uint32_t dout = m->dims[m->nlayers];
    float *out = ty_xmalloc(d->rows * dout * sizeof(float) + 1);
    ty_ws_t *ws = ty_ws_create(m, 1024);
    for (size_t s = 0; s < d->rows; s += 1024) {
        size_t k = d->rows - s < 1024 ? d->rows - s : 1024;
        const float *o = ty_model_forward(m, ws, d->x + s * d->cols, k);
        memcpy(out + s * dout, o, k * dout * sizeof(float));
    }
    ty_ws_destroy(&ws);
    return out;
}

static uint32_t ty_argmax(const float *p, uint32_t n) {
    uint32_t b = 0;
    for (uint32_t k = 1; k < n; k++)
        if (p[k] > p[b])
            b = k;
    return b;
}

static int ty_cmd_eval(int argc, char **argv) {
    ty_use_opts_t u = {0};
    int rc = ty_parse_use(argc, argv, &u);
    ty_model_t *m = NULL;
    ty_data_t *d = NULL;
    if (rc || (rc = ty_load_pair(&u, &m, &d)))
        return rc;
    float *out = ty_predict_all(m, d);
    uint32_t C = m->dims[m->nlayers];
    json_t *j = json_object();
    json_object_set_new(j, "rows", json_integer((json_int_t)d->rows));
    if (m->classify) {
        size_t *cm = ty_xcalloc((size_t)C * C, sizeof(size_t)), right = 0;
        for (size_t r = 0; r < d->rows; r++) {
            uint32_t t = (uint32_t)d->y[r], p = ty_argmax(out + r * C, C);
            if (t < C)
                cm[(size_t)t * C + p]++;
            right += t == p;
        }
        double f1sum = 0, psum = 0, rsum = 0;
        json_t *per = json_array(), *cmj = json_array();
        for (uint32_t k = 0; k < C; k++) {
            size_t tp = cm[(size_t)k * C + k], col = 0, row = 0;
            json_t *cr = json_array();
            for (uint32_t i = 0; i < C; i++) {
                col += cm[(size_t)i * C + k];
                row += cm[(size_t)k * C + i];
                json_array_append_new(cr, json_integer((json_int_t)cm[(size_t)k * C + i]));
            }
            json_array_append_new(cmj, cr);
            double prec = col ? (double)tp / col : 0, rec = row ? (double)tp / row : 0;
            double f1 = prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0;
            psum += prec;
            rsum += rec;
            f1sum += f1;
            json_t *pc = json_object();
            json_object_set_new(pc, "class", json_integer(k));
            json_object_set_new(pc, "precision", json_real(prec));
            json_object_set_new(pc, "recall", json_real(rec));
            json_object_set_new(pc, "f1", json_real(f1));
            json_array_append_new(per, pc);
        }
        json_object_set_new(j, "accuracy", json_real(d->rows ? (double)right / d->rows : 0));
        json_object_set_new(j, "precision", json_real(psum / C));
        json_object_set_new(j, "recall", json_real(rsum / C));
        json_object_set_new(j, "f1", json_real(f1sum / C));
        json_object_set_new(j, "per_class", per);
        json_object_set_new(j, "confusion_matrix", cmj);
        free(cm);
    } else {
        double se = 0, ae = 0, mean = 0, ss = 0;
        for (size_t r = 0; r < d->rows; r++)
            mean += d->y[r];
        mean /= d->rows ? (double)d->rows : 1;
        for (size_t r = 0; r < d->rows; r++) {
            double e = out[r] - d->y[r];
            se += e * e;
            ae += fabs(e);
            ss += (d->y[r] - mean) * (d->y[r] - mean);
        }
        json_object_set_new(j, "rmse", json_real(sqrt(se / (double)d->rows)));
        json_object_set_new(j, "mae", json_real(ae / (double)d->rows));
        json_object_set_new(j, "r2", json_real(ss > 0 ? 1 - se / ss : 0));
    }
    if (u.json) {
        char *s = json_dumps(j, JSON_COMPACT);
        puts(s);
        free(s);
    } else if (m->classify) {
        printf("rows       %zu\naccuracy   %.4f\nprecision  %.4f (macro)\nrecall     %.4f "
               "(macro)\nf1         %.4f (macro)\nconfusion matrix (rows: true, columns: "
               "predicted):\n",
               d->rows, json_real_value(json_object_get(j, "accuracy")),
               json_real_value(json_object_get(j, "precision")),
               json_real_value(json_object_get(j, "recall")),
               json_real_value(json_object_get(j, "f1")));
        json_t *cmj = json_object_get(j, "confusion_matrix");
        for (size_t k = 0; k < json_array_size(cmj); k++) {
            json_t *row = json_array_get(cmj, k);
            for (size_t i = 0; i < json_array_size(row); i++)
                printf("%7lld", (long long)json_integer_value(json_array_get(row, i)));
            putchar('\n');
        }
    } else {
        printf("rows  %zu\nrmse  %.6g\nmae   %.6g\nr2    %.6g\n", d->rows,
               json_real_value(json_object_get(j, "rmse")),
               json_real_value(json_object_get(j, "mae")),
               json_real_value(json_object_get(j, "r2")));
    }
    json_decref(j);
    free(out);
    ty_model_destroy(&m);
    ty_data_destroy(&d);
    return 0;
}

static int ty_cmd_predict(int argc, char **argv) {
    ty_use_opts_t u = {0};
    int rc = ty_parse_use(argc, argv, &u);
    if (!rc && !u.out)
        rc = ty_die("predict needs --out FILE.csv");
    ty_model_t *m = NULL;
    ty_data_t *d = NULL;
    if (rc || (rc = ty_load_pair(&u, &m, &d)))
        return rc;
    float *out = ty_predict_all(m, d);
    uint32_t C = m->dims[m->nlayers];
    FILE *f = fopen(u.out, "w");
    if (!f) {
        rc = ty_die("cannot write %s", u.out);
    } else {
        fputs("prediction", f);
        for (uint32_t k = 0; m->classify && k < C; k++)
            fprintf(f, ",p%u", k);
        fputc('\n', f);
        for (size_t r = 0; r < d->rows; r++) {
            const float *o = out + r * C;
            if (m->classify) {
                fprintf(f, "%u", ty_argmax(o, C));
                for (uint32_t k = 0; k < C; k++)
                    fprintf(f, ",%.6g", o[k]);
            } else {
                fprintf(f, "%.7g", o[0]);
            }
            fputc('\n', f);
        }
        if (fclose(f) != 0)
            rc = ty_die("cannot write %s", u.out);
    }
    free(out);
    ty_model_destroy(&m);
    ty_data_destroy(&d);
    return rc;
}

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

/* ---- drift ---- */

static void ty_report_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void ty_report_line(const char *fmt, ...) {
    const char *path = getenv("TRAINYARD_REPORT");
    if (!path || !*path)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *s = ty_xvasprintf(fmt, ap);
    va_end(ap);
    FILE *f = fopen(path, "a");
    if (f) {
        fputs(s, f); /* one short line: one write */
        fclose(f);
    }
    free(s);
}

static int ty_cmd_drift(int argc, char **argv) {
    const char *ref = NULL, *cur = NULL, *target = NULL;
    double threshold = -1;
    int json = 0;
    static const struct option opts[] = {{"reference", 1, 0, 'r'},
                                         {"current", 1, 0, 'c'},
                                         {"target", 1, 0, 't'},
                                         {"threshold", 1, 0, 'T'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            ref = optarg;
            break;
        case 'c':
            cur = optarg;
            break;
        case 't':
            target = optarg;
            break;
        case 'T':
            if (ty_parse_num("threshold", optarg, 0, 1e6, &threshold))
                return 2;
            break;
        case 'o':
            if (strcmp(optarg, "json") != 0)
                return ty_die("-o: only json");
            json = 1;
            break;
        default:
            ty_usage(stderr);
            return 2;
        }
    }
    if (!ref || !cur)
        return ty_die("drift needs --reference DATA and --current DATA");
    ty_data_t *a = NULL, *b = NULL;
    char *err = NULL;
    if (ty_data_load(ref, target, 0, 1, &a, &err) || ty_data_load(cur, target, 0, 1, &b, &err)) {
        ty_die("%s", err);
        free(err);
        ty_data_destroy(&a);
        return 1;
    }
    if (a->cols != b->cols) {
        ty_die("reference has %zu features, current %zu", a->cols, b->cols);
        ty_data_destroy(&a);
        ty_data_destroy(&b);
        return 1;
    }
    float *ra = ty_xmalloc(a->rows * sizeof(float) + 1),
          *rb = ty_xmalloc(b->rows * sizeof(float) + 1);
    json_t *feats = json_array();
    double max_psi = 0;
    int drifted = 0;
    for (size_t k = 0; k < a->cols; k++) {
        for (size_t r = 0; r < a->rows; r++)
            ra[r] = a->x[r * a->cols + k];
        for (size_t r = 0; r < b->rows; r++)
            rb[r] = b->x[r * b->cols + k];
        ty_drift_t d;
        ty_drift_feature(ra, a->rows, rb, b->rows, &d);
        int hit = threshold >= 0 && d.psi > threshold;
        drifted += hit;
        max_psi = d.psi > max_psi ? d.psi : max_psi;
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(a->names[k]));
        json_object_set_new(o, "psi", json_real(d.psi));
        json_object_set_new(o, "ks", json_real(d.ks));
        json_object_set_new(o, "p_value", json_real(d.p_value));
        json_object_set_new(o, "drift", json_boolean(hit));
        json_array_append_new(feats, o);
    }
    json_t *j = json_object();
    json_object_set_new(j, "reference_rows", json_integer((json_int_t)a->rows));
    json_object_set_new(j, "current_rows", json_integer((json_int_t)b->rows));
    json_object_set_new(j, "max_psi", json_real(max_psi));
    if (threshold >= 0)
        json_object_set_new(j, "threshold", json_real(threshold));
    json_object_set_new(j, "drifted_features", json_integer(drifted));
    json_object_set_new(j, "drift", json_boolean(drifted > 0));
    json_object_set_new(j, "features", feats);
    if (json) {
        char *s = json_dumps(j, JSON_COMPACT);
        puts(s);
        free(s);
    } else {
        printf("%-24s %10s %10s %12s %s\n", "FEATURE", "PSI", "KS", "P_VALUE", "DRIFT");
        for (size_t k = 0; k < json_array_size(feats); k++) {
            json_t *o = json_array_get(feats, k);
            printf("%-24s %10.4f %10.4f %12.3g %s\n", json_string_value(json_object_get(o, "name")),
                   json_real_value(json_object_get(o, "psi")),
                   json_real_value(json_object_get(o, "ks")),
                   json_real_value(json_object_get(o, "p_value")),
                   json_is_true(json_object_get(o, "drift")) ? "yes" : "");
        }
        printf("max PSI %.4f; %d feature(s) over the threshold\n", max_psi, drifted);
    }
    ty_report_line("metric drift_max_psi %.6g\n", max_psi);
    ty_report_line("metric drift_features %d\n", drifted);
    ty_report_line("metric drift %d\n", drifted > 0);
    json_decref(j);
    free(ra);
    free(rb);
    ty_data_destroy(&a);
    ty_data_destroy(&b);
    return drifted > 0 ? 3 : 0; /* 3: drift, so a pipeline can branch on it */
}

/* Debian's OpenBLAS 0.3.21 does not know CPUs newer than it (Sapphire and
 * Emerald Rapids, say) and falls back to its SSE3 "Prescott" kernels, several
 * times slower.  The core type is read when the library loads, so when that
 * happened and the CPU has AVX-512 or AVX2, run again with OPENBLAS_CORETYPE
 * set (the same process: under mpirun, nothing notices). */
static void ty_blas_kernels(char **argv) {
    const char *core = openblas_get_corename();
    if (getenv("OPENBLAS_CORETYPE") || !core || strcasecmp(core, "prescott") != 0)
        return;
    __builtin_cpu_init();
    const char *want = __builtin_cpu_supports("avx512f") ? "SkylakeX"
                       : __builtin_cpu_supports("avx2")  ? "Haswell"
                                                         : NULL;
    if (!want)
        return;
    setenv("OPENBLAS_CORETYPE", want, 1);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); /* exec failed: carry on as we are */
}

int main(int argc, char **argv) {
    ty_blas_kernels(argv);
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
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
