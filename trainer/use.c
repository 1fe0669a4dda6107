#include "trainer/use.h"

#include "trainer/data.h"
#include "trainer/drift.h"
#include "trainer/labels.h"
#include "trainer/model.h"
#include "trainer/train.h"

#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
                return ty_train_die("-o: only json");
            u->json = 1;
            break;
        default:
            return ty_train_die("unknown option; see trainyard-train --help");
        }
    }
    if (!u->model || !u->data)
        return ty_train_die("needs --model MODEL and --data DATA");
    return 0;
}

int ty_train_report_line(const char *fmt, ...) {
    const char *path = getenv("TRAINYARD_REPORT");
    if (!path || !*path)
        return 0;
    va_list ap;
    va_start(ap, fmt);
    char *s = ty_xvasprintf(fmt, ap);
    va_end(ap);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ssize_t w = write(fd, s, strlen(s)); /* one write: the file may be shared */
        (void)w;
        close(fd);
    }
    free(s);
    return 1;
}

/* Loading progress of eval, predict and drift: their stdout is their
 * answer, so the lines go to TRAINYARD_REPORT when set, else to stderr. */
typedef struct {
    const char *what;
    double last, every;
} ty_use_loading_t;

static void ty_use_loading(void *ctx, uint64_t done, uint64_t total) {
    ty_use_loading_t *p = ctx;
    double now = ty_train_clock(), pct = 100.0 * (double)done / (double)total;
    if (now - p->last < p->every)
        return;
    p->last = now;
    if (!ty_train_report_line("progress 0 loading %s %.0f%%\n", p->what, pct))
        fprintf(stderr, "trainyard-train: loading %s: %.0f%%\n", p->what, pct);
}

static int ty_use_load(const char *spec, ty_data_opts_t *o, ty_data_t **d, char **err) {
    ty_use_loading_t p = {spec, ty_train_clock(), ty_train_progress_every()};
    o->progress = ty_use_loading;
    o->ctx = &p;
    return ty_data_load_opts(spec, o, 0, 1, d, err);
}

/* Load model and data (standardised with the model's statistics).  The
 * data may lack the target column (unlabeled rows to predict), unless
 * need_target; targets that are class names are renumbered into the
 * model's classes. */
static int ty_load_pair(const ty_use_opts_t *u, ty_model_t **m, ty_data_t **d, int need_target) {
    char *err = NULL;
    if (ty_model_load(u->model, m, &err) != 0) {
        ty_train_die("%s", err);
        free(err);
        return 1;
    }
    ty_data_opts_t o = {
        .target = u->target, .target_hint = (*m)->target_name, .nfeatures = (*m)->dims[0]};
    if (ty_use_load(u->data, &o, d, &err) != 0)
        goto fail;
    if ((*d)->cols != (*m)->dims[0]) {
        err = ty_xasprintf("%s has %zu features; the model wants %u", u->data, (*d)->cols,
                           (*m)->dims[0]);
        goto fail;
    }
    if (need_target && !(*d)->has_target) {
        err = ty_xasprintf("%s has no target column ('%s'): eval needs labeled data", u->data,
                           (*m)->target_name ? (*m)->target_name : "target");
        goto fail;
    }
    if (need_target && (*d)->nclasses) {
        ty_labels_t known = {(*m)->class_names, (*m)->class_names ? (*m)->nclasses : 0};
        if (!(*m)->classify || !known.n) {
            err =
                ty_xasprintf("%s names classes ('%s'), but the model %s", u->data, (*d)->classes[0],
                             (*m)->classify ? "knows its classes by number" : "is a regression");
            goto fail;
        }
        if (ty_labels_remap(*d, &known, u->data, &err) != 0)
            goto fail;
    }
    ty_data_standardize(*d, (*m)->mean, (*m)->std);
    return 0;
fail:
    ty_train_die("%s", err);
    free(err);
    ty_model_destroy(m);
    ty_data_destroy(d);
    return 1;
}

/* A CSV field, quoted when it must be (RFC 4180). */
static void ty_csv_put(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
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

int ty_cmd_eval(int argc, char **argv) {
    ty_use_opts_t u = {0};
    int rc = ty_parse_use(argc, argv, &u);
    ty_model_t *m = NULL;
    ty_data_t *d = NULL;
    if (rc || (rc = ty_load_pair(&u, &m, &d, 1)))
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
            if (m->class_names)
                json_object_set_new(pc, "name", json_string(m->class_names[k]));
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
               "(macro)\nf1         %.4f (macro)\n",
               d->rows, json_real_value(json_object_get(j, "accuracy")),
               json_real_value(json_object_get(j, "precision")),
               json_real_value(json_object_get(j, "recall")),
               json_real_value(json_object_get(j, "f1")));
        for (uint32_t k = 0; m->class_names && k < C; k++)
            printf("%s%u=%s%s", k ? " " : "classes    ", k, m->class_names[k],
                   k + 1 < C ? "" : "\n");
        puts("confusion matrix (rows: true, columns: predicted):");
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

/* The predictions as CSV: the class (name or index) and, for classifiers,
 * each class's probability, in columns p_NAME (p0, p1, ... when the
 * classes have no names); or the value. */
static void ty_put_predictions(FILE *f, const ty_model_t *m, const float *out, size_t rows) {
    uint32_t C = m->dims[m->nlayers];
    fputs("prediction", f);
    for (uint32_t k = 0; m->classify && k < C; k++) {
        fputc(',', f);
        if (m->class_names) {
            char *col = ty_xasprintf("p_%s", m->class_names[k]);
            ty_csv_put(f, col);
            free(col);
        } else {
            fprintf(f, "p%u", k);
        }
    }
    fputc('\n', f);
    for (size_t r = 0; r < rows; r++) {
        const float *o = out + r * C;
        if (m->classify) {
            uint32_t best = ty_argmax(o, C);
            if (m->class_names)
                ty_csv_put(f, m->class_names[best]);
            else
                fprintf(f, "%u", best);
            for (uint32_t k = 0; k < C; k++)
                fprintf(f, ",%.6g", o[k]);
        } else {
            fprintf(f, "%.7g", o[0]);
        }
        fputc('\n', f);
    }
}

int ty_cmd_predict(int argc, char **argv) {
    ty_use_opts_t u = {0};
    int rc = ty_parse_use(argc, argv, &u);
    if (!rc && !u.out)
        rc = ty_train_die("predict needs --out FILE.csv (or - for stdout)");
    int to_stdout = !rc && strcmp(u.out, "-") == 0;
    const char *clash = rc || to_stdout                ? NULL
                        : ty_same_file(u.model, u.out) ? "model"
                        : ty_data_reads(u.data, u.out) ? "data"
                                                       : NULL;
    if (clash)
        rc = ty_train_die("%s is the %s: not writing over it", u.out, clash);
    int wrc = rc || to_stdout ? 0 : ty_check_writable(u.out); /* before loading, not after */
    if (wrc)
        rc = ty_train_die("cannot write %s: %s", u.out, strerror(-wrc));
    ty_model_t *m = NULL;
    ty_data_t *d = NULL;
    if (rc || (rc = ty_load_pair(&u, &m, &d, 0)))
        return rc;
    float *out = ty_predict_all(m, d);
    if (to_stdout) {
        ty_put_predictions(stdout, m, out, d->rows);
        errno = 0; /* a failed write leaves its data buffered: the flush fails the same way */
        if (fflush(stdout) != 0 || ferror(stdout))
            rc = ty_train_die("cannot write to stdout: %s", strerror(errno ? errno : EIO));
    } else {
        FILE *f;
        char *tmp; /* written beside, renamed over: a failed run leaves the old file */
        if ((wrc = ty_atomic_open(u.out, &f, &tmp)) == 0) {
            ty_put_predictions(f, m, out, d->rows);
            wrc = ty_atomic_close(f, tmp, u.out, 1);
        }
        if (wrc)
            rc = ty_train_die("cannot write %s: %s", u.out, strerror(-wrc));
    }
    free(out);
    ty_model_destroy(&m);
    ty_data_destroy(&d);
    return rc;
}

/* ---- info ---- */

static const char *const ty_arch_names[] = {"softmax", "linear", "mlp"};

int ty_cmd_info(int argc, char **argv) {
    int json = 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc && strcmp(argv[i + 1], "json") == 0)
            json = 1, i++;
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else
            return ty_train_die("usage: trainyard-train info MODEL [-o json]");
    }
    if (!path)
        return ty_train_die("usage: trainyard-train info MODEL [-o json]");
    ty_model_t *m = NULL;
    char *err = NULL;
    if (ty_model_load(path, &m, &err) != 0) {
        ty_train_die("%s", err);
        free(err);
        return 1;
    }
    json_t *j = json_object(), *dims = json_array(), *feats = json_array(), *cls = json_array();
    json_object_set_new(j, "arch", json_string(ty_arch_names[m->arch])); /* the loader checked it */
    json_object_set_new(j, "task", json_string(m->classify ? "classification" : "regression"));
    for (uint32_t l = 0; l <= m->nlayers; l++)
        json_array_append_new(dims, json_integer(m->dims[l]));
    json_object_set_new(j, "layers", dims);
    json_object_set_new(j, "params", json_integer((json_int_t)m->nparams));
    for (uint32_t i = 0; i < m->dims[0]; i++)
        json_array_append_new(feats, json_string(m->feature_names[i]));
    json_object_set_new(j, "features", feats);
    json_object_set_new(j, "target", json_string(m->target_name));
    for (uint32_t k = 0; m->classify && k < m->nclasses; k++)
        json_array_append_new(cls, m->class_names ? json_string(m->class_names[k])
                                                  : json_sprintf("%u", k));
    json_object_set_new(j, "classes", cls);
    json_object_set_new(j, "epochs", json_integer(m->epochs));
    json_object_set_new(j, "seed", json_integer((json_int_t)m->seed));
    json_object_set_new(j, "samples", json_integer((json_int_t)m->samples));
    json_object_set_new(j, "loss", json_real(m->loss));
    if (!isnan(m->val_loss))
        json_object_set_new(j, "val_loss", json_real(m->val_loss));
    if (!isnan(m->val_accuracy))
        json_object_set_new(j, "val_accuracy", json_real(m->val_accuracy));
    if (json) {
        char *s = json_dumps(j, JSON_COMPACT);
        puts(s);
        free(s);
    } else {
        printf("model      %s\narch       %s (", path,
               json_string_value(json_object_get(j, "arch")));
        for (uint32_t l = 0; l <= m->nlayers; l++)
            printf("%s%u", l ? "-" : "", m->dims[l]);
        printf("), %zu parameters\ntask       %s, target '%s'\n", m->nparams,
               json_string_value(json_object_get(j, "task")), m->target_name);
        printf("features   %u:", m->dims[0]);
        for (uint32_t i = 0; i < m->dims[0] && i < 5; i++)
            printf(" %s%s", m->feature_names[i], i + 1 < m->dims[0] ? "," : "");
        puts(m->dims[0] > 5 ? " ..." : "");
        for (uint32_t k = 0; k < json_array_size(cls); k++)
            printf("%s%s", k ? ", " : "classes    ", json_string_value(json_array_get(cls, k)));
        if (json_array_size(cls))
            putchar('\n');
        printf("trained    %u epochs, seed %llu, %llu samples, loss %.4g\n", m->epochs,
               (unsigned long long)m->seed, (unsigned long long)m->samples, m->loss);
    }
    json_decref(j);
    ty_model_destroy(&m);
    return 0;
}

/* ---- drift ---- */

int ty_cmd_drift(int argc, char **argv) {
    const char *ref = NULL, *cur = NULL, *target = NULL;
    /* the usual rule of thumb: a PSI over 0.2 is a significant shift */
    double threshold = 0.2;
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
            if (ty_train_num("threshold", optarg, 0, 1e6, &threshold))
                return 2;
            break;
        case 'o':
            if (strcmp(optarg, "json") != 0)
                return ty_train_die("-o: only json");
            json = 1;
            break;
        default:
            return ty_train_die("unknown option; see trainyard-train --help");
        }
    }
    if (!ref || !cur)
        return ty_train_die("drift needs --reference DATA and --current DATA");
    ty_data_t *a = NULL, *b = NULL;
    char *err = NULL;
    ty_data_opts_t oa = {.target = target}, ob = {.target = target};
    if (ty_use_load(ref, &oa, &a, &err) || ty_use_load(cur, &ob, &b, &err)) {
        ty_train_die("%s", err);
        free(err);
        ty_data_destroy(&a);
        return 1;
    }
    if (a->cols != b->cols) {
        ty_train_die("reference has %zu features, current %zu", a->cols, b->cols);
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
        int hit = d.psi > threshold;
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
        printf("max PSI %.4f; %d feature(s) over the threshold (%g)\n", max_psi, drifted,
               threshold);
    }
    ty_train_report_line("metric drift_max_psi %.6g\n", max_psi);
    ty_train_report_line("metric drift_features %d\n", drifted);
    ty_train_report_line("metric drift %d\n", drifted > 0);
    json_decref(j);
    free(ra);
    free(rb);
    ty_data_destroy(&a);
    ty_data_destroy(&b);
    return drifted > 0 ? 3 : 0; /* 3: drift, so a pipeline can branch on it */
}
