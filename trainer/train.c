#include "trainer/train_int.h"

#include "common/err.h"
#include "common/util.h"
#include "trainer/data.h"
#include "trainer/gpu.h"
#include "trainer/labels.h"
#include "trainer/msum.h"
#include "trainer/onnx.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static double ty_wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

double ty_train_clock(void) { return ty_wall(); }

double ty_train_progress_every(void) {
    double v = 1;
    const char *e = getenv("TY_PROGRESS_EVERY_S");
    if (e && ty_parse_f64(e, 0, 3600, &v) != 0)
        v = 1;
    return v;
}

/* One line, one write: TRAINYARD_REPORT is shared by every process of a task. */
static void ty_report(ty_tr_t *T, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ty_report(ty_tr_t *T, const char *fmt, ...) {
    if (T->rank != 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *s = ty_xvasprintf(fmt, ap);
    va_end(ap);
    if (T->report_fd >= 0) {
        char *line = ty_xasprintf("%s\n", s);
        ssize_t w = write(T->report_fd, line, strlen(line));
        (void)w;
        free(line);
    } else if (!T->o->json) {
        printf("%s\n", s);
        fflush(stdout);
    }
    free(s);
}

/* Rank 0's shard loading, as progress lines (fraction 0: no epoch is done). */
typedef struct {
    ty_tr_t *T;
    const char *what;
    double last, every;
} ty_loading_t;

static void ty_loading(void *ctx, uint64_t done, uint64_t total) {
    ty_loading_t *p = ctx;
    double now = ty_wall();
    if (now - p->last < p->every)
        return;
    p->last = now;
    ty_report(p->T, "progress 0 loading %s data %.0f%%", p->what, 100.0 * (double)done / total);
}

/* The CPU path's gradient sum over the ranks, g this rank's part: through
 * node shared memory where every rank shares one node (each rank then
 * updates its slice of the shared parameters), else by messages (every
 * rank updates all of its own copy).  Either way the last addition is left
 * to the optimizer update (upeer), which reads the gradient anyway. */
static void ty_sum_grad(ty_tr_t *T, float *g) {
    T->ug = g;
    T->upeer = NULL;
    T->ulo = 0;
    T->uhi = T->m->nparams;
    if (T->gs) {
        ty_gsum_slice(T->gs, &T->ulo, &T->uhi);
        T->ug = ty_gsum_reduce(T->gs, &T->upeer);
    } else if (ty_msum(g, T->peer, T->m->nparams, T->rank, T->size, 1)) {
        T->upeer = T->peer;
    }
}

/* Split local rows into training and validation the same way for any rank
 * count: by a hash of the row's position in the file. */
static void ty_split_rows(ty_tr_t *T) {
    ty_data_t *d = T->tr;
    T->tr_idx = ty_xcalloc(d->rows + 1, sizeof(size_t));
    T->va_idx = ty_xcalloc(d->rows + 1, sizeof(size_t));
    for (size_t r = 0; r < d->rows; r++) {
        uint64_t h = d->pos[r] * 0x9e3779b97f4a7c15ULL ^ T->o->seed;
        int is_val = !T->va && T->o->val_split > 0 && ty_rng_uniform(&h) < T->o->val_split;
        if (is_val)
            T->va_idx[T->nva++] = r;
        else
            T->tr_idx[T->ntr++] = r;
    }
}

static int ty_standardize(ty_tr_t *T) {
    ty_data_t *d = T->tr;
    size_t c = d->cols;
    double *acc = ty_xcalloc(2 * c + 1, sizeof(double));
    for (size_t i = 0; i < T->ntr; i++) {
        const float *x = d->x + T->tr_idx[i] * c;
        for (size_t k = 0; k < c; k++) {
            acc[k] += x[k];
            acc[c + k] += (double)x[k] * x[k];
        }
    }
    acc[2 * c] = (double)T->ntr;
    MPI_Allreduce(MPI_IN_PLACE, acc, (int)(2 * c + 1), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    double n = acc[2 * c];
    for (size_t k = 0; k < c; k++) {
        double mean = acc[k] / n, var = acc[c + k] / n - mean * mean;
        T->m->mean[k] = (float)mean;
        T->m->std[k] = var > 1e-12 ? (float)sqrt(var) : 1.0f;
    }
    free(acc);
    ty_data_standardize(d, T->m->mean, T->m->std);
    if (T->va)
        ty_data_standardize(T->va, T->m->mean, T->m->std);
    return 0;
}

/* ---- optimisation ---- */

/* One update over [lo, hi) of the flat parameters, within [T->ulo,
 * T->uhi) (the gradient's element i at ug[i - ulo]); decay applies to
 * weights only.  Plain float loops the compiler vectorises. */
TY_HOT static void ty_step_range(ty_tr_t *T, size_t lo, size_t hi, float lr, float wd) {
    lo = lo > T->ulo ? lo : T->ulo;
    hi = hi < T->uhi ? hi : T->uhi;
    if (lo >= hi)
        return;
    const ty_train_opts_t *o = T->o;
    float *restrict w = T->m->params + lo, *restrict m1 = T->m1 + lo;
    float *restrict m2 = T->m2 ? T->m2 + lo : NULL;                      /* Adam's only */
    const float *restrict g = T->ug + (lo - T->ulo), *restrict p = NULL; /* p: the fused last add */
    if (T->upeer)
        p = T->upeer + (lo - T->ulo);
    size_t n = hi - lo;
    if (o->adam) {
        const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
        float c1 = (float)(1 - pow(b1, (double)T->t)), c2 = (float)(1 - pow(b2, (double)T->t));
        float ic1 = 1 / c1, ic2 = 1 / c2;
        for (size_t i = 0; i < n; i++) {
            float gi = p ? g[i] + p[i] : g[i];
            m1[i] = b1 * m1[i] + (1 - b1) * gi;
            m2[i] = b2 * m2[i] + (1 - b2) * gi * gi;
            float upd = (m1[i] * ic1) / (sqrtf(m2[i] * ic2) + eps) + wd * w[i]; /* AdamW */
            w[i] -= lr * upd;
        }
    } else {
        const float mu = (float)o->momentum;
        for (size_t i = 0; i < n; i++) {
            m1[i] = mu * m1[i] + (p ? g[i] + p[i] : g[i]) + wd * w[i];
            w[i] -= lr * m1[i];
        }
    }
}

static void ty_step(ty_tr_t *T, double lr) {
    T->t++;
    ty_model_t *m = T->m;
    for (uint32_t l = 0; l < m->nlayers; l++) {
        size_t off = ty_model_layer_offset(m, l), nw = (size_t)m->dims[l] * m->dims[l + 1];
        ty_step_range(T, off, off + nw, (float)lr, (float)T->o->weight_decay);
        ty_step_range(T, off + nw, off + nw + m->dims[l + 1], (float)lr, 0.0f);
    }
    if (T->gs) /* every slice updated before anyone reads the parameters */
        ty_gsum_updated(T->gs);
}

/* dst becomes src on every rank, for the parameters and the best weights
 * (shared ones: each rank copies its slice, then all wait for the others). */
static void ty_copy_params(ty_tr_t *T, float *dst, const float *src) {
    size_t lo = 0, hi = T->m->nparams;
    if (T->gs)
        ty_gsum_slice(T->gs, &lo, &hi);
    memcpy(dst + lo, src + lo, (hi - lo) * sizeof(float));
    if (T->gs)
        ty_gsum_updated(T->gs);
}

/* Loss sum and correct count over local rows idx, or over the first n
 * rows of d when idx is NULL (global sums after the allreduce). */
static void ty_evaluate(ty_tr_t *T, ty_data_t *d, const size_t *idx, size_t n, ty_ws_t *ws,
                        float *xb, float *yb, size_t maxb, double out[3]) {
    double acc[3] = {0, 0, (double)n};
    for (size_t s = 0; s < n; s += maxb) {
        size_t k = n - s < maxb ? n - s : maxb;
        const float *x = d->x + s * d->cols, *y = d->y + s; /* in place, unless gathered */
        if (idx) {
            for (size_t i = 0; i < k; i++) {
                memcpy(xb + i * d->cols, d->x + idx[s + i] * d->cols, d->cols * sizeof(float));
                yb[i] = d->y[idx[s + i]];
            }
            x = xb, y = yb;
        }
        size_t right = 0;
        acc[0] += ty_model_loss(T->m, ws, x, y, k, &right);
        acc[1] += (double)right;
    }
    MPI_Allreduce(acc, out, 3, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

/* The validation rows' mean loss and accuracy (the --val data, else the
 * split) into *loss and *acc; 0, and nothing set, when there are none. */
static int ty_validate(ty_tr_t *T, ty_ws_t *ws, float *xb, float *yb, size_t maxb, double *loss,
                       double *acc) {
    double ev[3];
    if (T->va) /* all of it, as it lies */
        ty_evaluate(T, T->va, NULL, T->va->rows, ws, xb, yb, maxb, ev);
    else
        ty_evaluate(T, T->tr, T->va_idx, T->nva, ws, xb, yb, maxb, ev);
    if (ev[2] <= 0)
        return 0;
    *loss = ev[0] / ev[2];
    *acc = ev[1] / ev[2];
    return 1;
}

/* The ranks' targets (training and validation) as one set of classes: the
 * class names every rank saw, sorted (or --class-names, in its order), or
 * class indexes 0..C-1 (named by --class-names when given).  Every rank
 * reaches the same verdict, so none is left waiting in a collective. */
static int ty_setup_classes(ty_tr_t *T, uint32_t *nclasses, ty_labels_t *names) {
    const ty_train_opts_t *o = T->o;
    ty_data_t *ds[2] = {T->tr, T->va};
    const char *what[2] = {o->train, o->val};
    int kind[2] = {0, 0}, gkind[2]; /* some shard has [0] names, [1] numbers */
    for (int i = 0; i < 2; i++)
        if (ds[i] && ds[i]->rows)
            kind[ds[i]->nclasses > 0 ? 0 : 1] = 1;
    MPI_Allreduce(kind, gkind, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    char *err = NULL;
    int everyone = 0; /* err is the same on every rank: rank 0 says it */
    if (o->class_names && ty_labels_parse(o->class_names, names, &err) != 0) {
        everyone = 1;
    } else if (gkind[0] && gkind[1]) {
        err = ty_xstrdup("the targets mix class names and numbers");
        everyone = 1;
    } else if (gkind[0]) {
        if (!o->class_names) { /* the union of every rank's training names */
            size_t len;
            char *mine = ty_labels_pack(T->tr, &len);
            int n = (int)len, *lens = ty_xcalloc((size_t)T->size, sizeof(int)),
                *at = ty_xcalloc((size_t)T->size, sizeof(int)), total = 0;
            MPI_Allgather(&n, 1, MPI_INT, lens, 1, MPI_INT, MPI_COMM_WORLD);
            for (int r = 0; r < T->size; r++)
                at[r] = total, total += lens[r];
            char *all = ty_xmalloc((size_t)total + 1);
            MPI_Allgatherv(mine, n, MPI_CHAR, all, lens, at, MPI_CHAR, MPI_COMM_WORLD);
            ty_labels_merge(names, all, (size_t)total);
            free(mine), free(lens), free(at), free(all);
        }
        for (int i = 0; i < 2 && !err; i++)
            if (ds[i])
                ty_labels_remap(ds[i], names, what[i], &err);
        *nclasses = (uint32_t)names->n;
        if (!err && (names->n < 2 || names->n > TY_DATA_MAX_CLASSES)) {
            err = ty_xasprintf("need 2 to %d classes; the targets name %zu", TY_DATA_MAX_CLASSES,
                               names->n);
            everyone = 1;
        }
    } else {
        uint32_t mx[2] = {0, 0}, gmx;
        for (int i = 0; i < 2 && !err; i++)
            if (ds[i])
                ty_labels_numeric(ds[i], &mx[i], &err);
        mx[0] = mx[1] > mx[0] ? mx[1] : mx[0];
        MPI_Allreduce(mx, &gmx, 1, MPI_UNSIGNED, MPI_MAX, MPI_COMM_WORLD);
        *nclasses = names->n ? (uint32_t)names->n : gmx + 1 < 2 ? 2 : gmx + 1;
        if (!err && names->n && gmx >= names->n) {
            err = ty_xasprintf("class %u has no name: --class-names gives %zu", gmx, names->n);
            everyone = 1;
        }
    }
    int bad = err != NULL, gbad;
    MPI_Allreduce(&bad, &gbad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (err && (!everyone || T->rank == 0))
        fprintf(stderr, "trainyard-train: %s\n", err);
    free(err);
    return gbad ? -1 : 0;
}

/* The parts of a CPU step, timed on rank 0 for -o json's "step_us": the
 * batch's rows gathered, forward and backward, the gradient sum (waiting
 * for the slowest rank included), the optimizer update. */
enum { TY_PART_GATHER, TY_PART_GRAD, TY_PART_SUM, TY_PART_UPDATE, TY_NPARTS };
static const char *const ty_part_names[TY_NPARTS] = {"gather", "grad", "sum", "update"};

static int ty_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void ty_parts_means(const double *parts, long long steps, double mean[TY_NPARTS]) {
    for (int k = 0; k < TY_NPARTS; k++) {
        mean[k] = 0;
        for (long long st = 0; st < steps; st++)
            mean[k] += parts[st * TY_NPARTS + k] / (double)steps;
    }
}

/* Each part's mean (the means add up to the step: where the time went),
 * median (a typical step) and max over the steps, in microseconds. */
static json_t *ty_parts_json(const double *parts, long long steps) {
    json_t *j = json_object();
    double *col = ty_xcalloc((size_t)steps, sizeof(double)), mean[TY_NPARTS];
    ty_parts_means(parts, steps, mean);
    for (int k = 0; k < TY_NPARTS; k++) {
        for (long long st = 0; st < steps; st++)
            col[st] = parts[st * TY_NPARTS + k];
        qsort(col, (size_t)steps, sizeof(double), ty_cmp_double);
        double med = steps % 2 ? col[steps / 2] : (col[steps / 2 - 1] + col[steps / 2]) / 2;
        json_object_set_new(
            j, ty_part_names[k],
            json_pack("{s:f, s:f, s:f}", "mean", mean[k], "median", med, "max", col[steps - 1]));
    }
    free(col);
    return j;
}

/* path with its directory resolved (links, "..", "."), so that two names
 * of a file that does not exist yet compare equal. */
static char *ty_canon_path(const char *path) {
    char *d = ty_xstrdup(path), *b = ty_xstrdup(path);
    char *dir = realpath(dirname(d), NULL), *out;
    out = dir ? ty_xasprintf("%s/%s", dir, basename(b)) : ty_xstrdup(path);
    free(dir), free(d), free(b);
    return out;
}

static int ty_same_output(const char *a, const char *b) {
    char *ca = ty_canon_path(a), *cb = ty_canon_path(b);
    int same = ty_same_file(a, b) || strcmp(ca, cb) == 0;
    free(ca), free(cb);
    return same;
}

/* The outputs' places, checked (by rank 0) before the work that fills
 * them: a training that cannot save its model or its checkpoints must not
 * load its data and train for hours first.  The checkpoint directory is
 * made here.  Collective; 0 or -1 (said on stderr). */
static int ty_outputs_ok(const ty_tr_t *T) {
    const ty_train_opts_t *o = T->o;
    int rank = T->rank;
    char *ck = o->ckpt_dir ? ty_ckpt_path(T) : NULL;
    const char *outs[3] = {o->out, o->onnx, ck};
    int bad = 0;
    if (rank == 0 && o->ckpt_dir) {
        int mk = ty_mkdirs(o->ckpt_dir);
        if (mk != 0) {
            fprintf(stderr, "trainyard-train: --checkpoint-dir %s: %s\n", o->ckpt_dir,
                    strerror(-mk));
            bad = 1;
        }
    }
    for (int i = 0; i < 3 && rank == 0 && !bad; i++) {
        const char *clash = NULL; /* an output that would be written over an input */
        if (outs[i] && ty_data_reads(o->train, outs[i]))
            clash = "the training data";
        else if (outs[i] && o->val && ty_data_reads(o->val, outs[i]))
            clash = "the validation data";
        else if (outs[i] && i > 0 && o->out && ty_same_output(outs[i], o->out))
            clash = "the model (--out)";
        int wrc = outs[i] && !clash ? ty_check_writable(outs[i]) : 0;
        if (clash)
            fprintf(stderr, "trainyard-train: %s is %s: not writing over it\n", outs[i], clash);
        else if (wrc != 0)
            fprintf(stderr, "trainyard-train: cannot write %s: %s\n", outs[i], strerror(-wrc));
        bad = clash || wrc;
    }
    free(ck);
    MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return bad ? -1 : 0;
}

/* Loads this rank's shard of the training (and validation) data, checks
 * them, splits off validation rows, and makes the model with its classes,
 * feature names and standardisation.  Collective; -1 when the run cannot go
 * on (said on stderr). */
static int ty_fit_load(ty_tr_t *T, unsigned long long *train_rows) {
    const ty_train_opts_t *o = T->o;
    int rank = T->rank, size = T->size;
    char *err = NULL;
    ty_loading_t lt = {T, "training", ty_wall(), ty_train_progress_every()};
    ty_data_opts_t dop = {.target = o->target, .progress = ty_loading, .ctx = &lt};
    int lrc = ty_data_load_opts(o->train, &dop, rank, size, &T->tr, &err);
    ty_loading_t lv = {T, "validation", ty_wall(), lt.every};
    dop.ctx = &lv;
    if (lrc == 0 && o->val)
        lrc = ty_data_load_opts(o->val, &dop, rank, size, &T->va, &err);
    int lbad = lrc != 0, glbad; /* a rank that cannot load its shard ends them all */
    MPI_Allreduce(&lbad, &glbad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (glbad) {
        if (lrc != 0)
            fprintf(stderr, "trainyard-train: %s\n", err);
        free(err);
        return -1;
    }
    if (!T->tr->has_target || (T->va && !T->va->has_target)) { /* idx:IMAGES without labels */
        if (rank == 0)
            fprintf(stderr, "trainyard-train: training needs targets: %s has none\n",
                    T->tr->has_target ? o->val : o->train);
        return -1;
    }
    if (T->va && T->va->cols != T->tr->cols) {
        if (rank == 0)
            fprintf(stderr, "trainyard-train: validation data has %zu features, training %zu\n",
                    T->va->cols, T->tr->cols);
        return -1;
    }
    ty_split_rows(T);
    unsigned long long here = T->ntr; /* (after the validation split) */
    MPI_Allreduce(&here, train_rows, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    int classify = !o->regression && o->arch != TY_ARCH_LINEAR;
    uint32_t nout = 1;
    ty_labels_t classes = {0};
    if (classify && ty_setup_classes(T, &nout, &classes) != 0) {
        ty_labels_free(&classes);
        return -1;
    }
    int named = T->tr->nclasses || (T->va && T->va->nclasses), gnamed = 0;
    if (!classify)
        MPI_Allreduce(&named, &gnamed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (gnamed) {
        if (rank == 0) /* once; rank 0 may or may not have seen a name itself */
            fprintf(stderr,
                    "trainyard-train: regression needs numeric targets, not class names%s%s%s\n",
                    named ? " ('" : "",
                    named ? (T->tr->nclasses ? T->tr->classes[0] : T->va->classes[0]) : "",
                    named ? "')" : "");
        return -1;
    }
    if (ty_model_create(&T->m, o->arch, classify, (uint32_t)T->tr->cols, nout, o->hidden,
                        o->nhidden) != 0) {
        if (rank == 0)
            fprintf(stderr, "trainyard-train: bad model shape\n");
        ty_labels_free(&classes);
        return -1;
    }
    ty_model_init_params(T->m, o->seed);
    T->m->class_names = classes.names; /* the model owns them now */
    T->m->feature_names = ty_xcalloc(T->tr->cols, sizeof(char *));
    for (size_t i = 0; i < T->tr->cols; i++)
        T->m->feature_names[i] = ty_xstrdup(T->tr->names[i]);
    T->m->target_name = ty_xstrdup(T->tr->target_name ? T->tr->target_name : "target");
    T->m->seed = o->seed;
    ty_standardize(T);
    return 0;
}

/* The optimizer's state (and with ranks on one node, the shared window
 * holding it), resumed from the checkpoint when asked.  Collective; -1 when
 * the checkpoint cannot be used. */
static int ty_fit_state(ty_tr_t *T) {
    const ty_train_opts_t *o = T->o;
    size_t np = T->m->nparams;
    if (!o->device_cuda) /* (the GPU path sums host copies of its gradient by messages) */
        ty_gsum_create(&T->gs, np, 2 + (o->adam != 0) + (o->patience > 0));
    if (!T->gs) {
        T->grad = ty_xcalloc(np, sizeof(float));
        if (T->size > 1 && !(T->size & (T->size - 1))) /* ty_msum's exchange buffer */
            T->peer = ty_xcalloc(np, sizeof(float));
    }
    T->m1 = ty_xcalloc(np, sizeof(float));
    if (o->adam || o->device_cuda) /* (the GPU path keeps it whatever the optimizer) */
        T->m2 = ty_xcalloc(np, sizeof(float));
    if (o->patience > 0) /* early stopping keeps the best epoch's weights */
        T->best = ty_xcalloc(np, sizeof(float));
    if (o->resume && o->ckpt_dir && ty_ckpt_load(T) < 0)
        return -1;
    if (T->gs) { /* one copy of the parameters, moments and best weights on the node from here on */
        float **state[4] = {&T->m->params, &T->m1};
        int k = 2;
        if (T->m2)
            state[k++] = &T->m2;
        if (T->best)
            state[k++] = &T->best;
        ty_gsum_share(T->gs, state);
    }
    return 0;
}

int ty_train_run(const ty_train_opts_t *o, int rank, int size) {
    ty_tr_t T = {.o = o, .rank = rank, .size = size, .report_fd = -1, .best_val = INFINITY};
    T.last.val = T.last.val_acc = NAN;
    int status = 1;
    char *err = NULL;
    if (o->vshards % (uint32_t)size != 0) {
        if (rank == 0)
            fprintf(stderr,
                    "trainyard-train: %d ranks do not divide %u virtual shards "
                    "(use 1, 2, 4 or 8 ranks, or --vshards)\n",
                    size, o->vshards);
        return 2;
    }
    if (ty_outputs_ok(&T) != 0)
        return 1;
    const char *rep = getenv("TRAINYARD_REPORT");
    if (rep && *rep && rank == 0)
        T.report_fd = open(rep, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    unsigned long long train_rows = 0;
    if (ty_fit_load(&T, &train_rows) != 0 || ty_fit_state(&T) != 0)
        goto out;
    int classify = T.m->classify;
    size_t np = T.m->nparams;

    /* the virtual shards owned here (shards.h), their rows and per-step batch share */
    uint32_t V = o->vshards, nv = V / (uint32_t)size;
    ty_shards_t *sh = NULL;
    ty_shards_create(&sh, V, nv * (uint32_t)rank, nv, o->batch, T.tr_idx, T.ntr, T.tr->pos,
                     T.tr->extent);
    size_t local_b = ty_shards_batch(sh), *rows = ty_xcalloc(local_b + 1, sizeof(size_t));
    long long steps_local = ty_shards_steps(sh), steps; /* (every shard has a share: main.c) */
    MPI_Allreduce(&steps_local, &steps, 1, MPI_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
    if (steps <= 0) {
        if (rank == 0)
            fprintf(stderr,
                    "trainyard-train: too few rows for a batch of %u: each step takes its rows "
                    "evenly from %u virtual shards (stretches of the file), and one holds fewer "
                    "than its share (%llu rows in the training data); use a smaller --batch, or "
                    "--vshards 1 for a small file\n",
                    o->batch, V, train_rows);
        goto out_shards;
    }
    double used = (double)steps * o->batch; /* rows an epoch takes */
    if (rank == 0 && used < 0.9 * (double)train_rows)
        fprintf(stderr,
                "trainyard-train: warning: an epoch takes %.0f of the %llu training rows "
                "(%.0f%%): each step takes a fixed share of its batch from each of the %u "
                "virtual shards, and the shard that runs out first ends the epoch (a different "
                "part of the others is left out each epoch); a --batch that %u divides takes "
                "nearly all\n",
                used, train_rows, 100 * used / (double)train_rows, V, V);
    size_t maxb = local_b > 1024 ? local_b : 1024;
    float *xb = ty_xmalloc(maxb * T.tr->cols * sizeof(float)),
          *yb = ty_xmalloc(maxb * sizeof(float));
    ty_ws_t *ws = ty_ws_create(T.m, maxb);
    ty_gpu_t *G = NULL;
    double *parts = NULL, *by_rank = NULL; /* step timings; by_rank: rank 0's gather */
    if (o->device_cuda && ty_train_gpu_setup(&T, local_b, &G) != 0)
        goto out_gpu;
    uint64_t total_steps = (uint64_t)steps * (uint64_t)o->epochs;
    /* where a CPU step's time goes, step by step over the latest epoch (not on a GPU) */
    parts = G ? NULL : ty_xcalloc((size_t)steps * TY_NPARTS, sizeof(double));
    int parts_valid = 0;
    int epoch = T.start_epoch;
    /* resumed after the epoch early stopping ended the run at (killed before
     * the model was written): it stops again, at once */
    int stop = T.best && T.since_best >= o->patience;
    for (; !stop && epoch < o->epochs; epoch++) {
        double t0 = ty_wall(), loss_sum = 0, right_sum = 0;
        ty_shards_shuffle(sh, o->seed, epoch);
        if (G)
            ty_train_gpu_epoch(&T, G, sh, steps, epoch, total_steps, &loss_sum, &right_sum);
        for (long long st = 0; !G && st < steps; st++) {
            double *at = parts + st * TY_NPARTS, t[TY_NPARTS + 1];
            t[0] = ty_wall();
            size_t n = local_b;
            ty_shards_rows(sh, st, rows);
            for (size_t i = 0; i < n; i++) {
                memcpy(xb + i * T.tr->cols, T.tr->x + rows[i] * T.tr->cols,
                       T.tr->cols * sizeof(float));
                yb[i] = T.tr->y[rows[i]];
            }
            t[1] = ty_wall();
            float *g = T.gs ? ty_gsum_local(T.gs) : T.grad;
            memset(g, 0, np * sizeof(float));
            size_t right = 0;
            loss_sum +=
                n ? ty_model_grad(T.m, ws, xb, yb, n, 1.0f / (float)o->batch, g, &right) : 0;
            right_sum += (double)right;
            t[2] = ty_wall();
            ty_sum_grad(&T, g); /* (one rank: the update reads g as it is) */
            t[3] = ty_wall();
            ty_step(&T, ty_lr_at(o, T.t, epoch, total_steps));
            t[4] = ty_wall();
            for (int k = 0; k < TY_NPARTS; k++)
                at[k] = 1e6 * (t[k + 1] - t[k]);
            parts_valid = 1;
        }
        double acc[2] = {loss_sum, right_sum}, gacc[2];
        MPI_Allreduce(acc, gacc, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        double seen = (double)steps * o->batch, dt = ty_wall() - t0;
        T.last.samples_per_s = seen / dt;
        T.last.loss = gacc[0] / seen;
        T.last.acc = gacc[1] / seen;
        ty_report(&T, "metric loss %.6g %d", T.last.loss, epoch + 1);
        /* the rate of the epoch's last step (T.t counts the steps done) */
        ty_report(&T, "metric lr %.6g %d", ty_lr_at(o, T.t - 1, epoch, total_steps), epoch + 1);
        if (T.va || T.nva || o->val_split > 0) {
            if (ty_validate(&T, ws, xb, yb, maxb, &T.last.val, &T.last.val_acc)) {
                ty_report(&T, "metric val_loss %.6g %d", T.last.val, epoch + 1);
                if (classify)
                    ty_report(&T, "metric accuracy %.6g %d", T.last.val_acc, epoch + 1);
            }
        } else if (classify) {
            ty_report(&T, "metric accuracy %.6g %d", T.last.acc, epoch + 1);
        }
        ty_report(&T, "metric samples_per_s %.6g %d", T.last.samples_per_s, epoch + 1);
        ty_report(&T, "metric epoch_time_s %.4g %d", dt, epoch + 1);
        if (!G) { /* rank 0's time in the gradient sum (waiting for the others included) */
            double comm = 0;
            for (long long st = 0; size > 1 && st < steps; st++)
                comm += parts[st * TY_NPARTS + TY_PART_SUM] / 1e6;
            ty_report(&T, "metric comm_time_s %.4g %d", comm, epoch + 1);
        }
        ty_report(&T, "progress %.4f epoch %d/%d", (double)(epoch + 1) / o->epochs, epoch + 1,
                  o->epochs);
        /* early stopping on the validation loss (a run without it tracks no
         * best epoch, so one resumed with it starts afresh on that) */
        if (T.best && !isnan(T.last.val)) {
            if (T.last.val < T.best_val) {
                T.best_val = T.last.val;
                T.since_best = 0;
                ty_copy_params(&T, T.best, T.m->params);
            } else if (++T.since_best >= o->patience) {
                stop = 1;
            }
        }
        int ckpt_now = (epoch + 1) % (o->ckpt_every > 0 ? o->ckpt_every : 1) == 0 ||
                       epoch + 1 == o->epochs || stop;
        if (o->ckpt_dir && rank == 0 && ckpt_now && ty_ckpt_save(&T, epoch + 1) == 0)
            ty_report(&T, "tag checkpoint epoch_%d", epoch + 1); /* (a failure has said why) */
        MPI_Barrier(MPI_COMM_WORLD); /* the checkpoint is complete before anyone goes on */
    }
    if (stop) { /* (epoch: the epochs done) */
        ty_report(&T, "tag early_stop epoch_%d", epoch);
        ty_copy_params(&T, T.m->params, T.best);
        /* what the model handed on scores: the best epoch's figures */
        ty_validate(&T, ws, xb, yb, maxb, &T.last.val, &T.last.val_acc);
    }
    /* the replicas must have stayed identical: every rank's update saw the
     * same summed gradient (checked once, a CRC of the parameters) */
    uint32_t crc = (uint32_t)crc32(0, (const Bytef *)T.m->params, (uInt)(np * sizeof(float))),
             crc_lo, crc_hi;
    MPI_Allreduce(&crc, &crc_lo, 1, MPI_UINT32_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&crc, &crc_hi, 1, MPI_UINT32_T, MPI_MAX, MPI_COMM_WORLD);
    if (crc_lo != crc_hi) {
        if (rank == 0)
            fprintf(stderr, "trainyard-train: the ranks ended with different parameters\n");
        goto out_gpu;
    }
    T.m->epochs = (uint32_t)epoch;
    T.m->samples = (uint64_t)steps * o->batch * (uint64_t)epoch;
    T.m->loss = T.last.loss;
    T.m->val_loss = isnan(T.last.val) ? 0 : T.last.val;
    T.m->val_accuracy = isnan(T.last.val_acc) ? 0 : T.last.val_acc;
    status = 0;
    if (rank == 0 && ((o->out && ty_model_save(T.m, o->out, &err) != 0) ||
                      (o->onnx && ty_onnx_export(T.m, o->onnx, &err) != 0))) {
        fprintf(stderr, "trainyard-train: %s\n", err);
        free(err);
        status = 1;
    }
    if (rank == 0 && !o->json && T.report_fd >= 0) /* metrics went to the report: a log line */
        printf("trained %d epochs on %d rank(s): loss %.4g%s%.4g, %.0f samples/s -> %s\n", epoch,
               size, T.last.loss, classify ? " accuracy " : " val_loss ",
               classify ? (isnan(T.last.val_acc) ? T.last.acc : T.last.val_acc)
                        : (isnan(T.last.val) ? T.last.loss : T.last.val),
               T.last.samples_per_s, o->out);
    if (o->json && size > 1 && parts_valid) { /* collective: all ran the same steps */
        double mine[TY_NPARTS];
        ty_parts_means(parts, steps, mine);
        by_rank = rank == 0 ? ty_xcalloc((size_t)size * TY_NPARTS, sizeof(double)) : NULL;
        MPI_Gather(mine, TY_NPARTS, MPI_DOUBLE, by_rank, TY_NPARTS, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    }
    if (rank == 0 && o->json) {
        json_t *j = json_object();
        json_object_set_new(j, "epochs", json_integer(epoch));
        json_object_set_new(j, "ranks", json_integer(size));
        json_object_set_new(j, "loss", json_real(T.last.loss));
        if (!isnan(T.last.val))
            json_object_set_new(j, "val_loss", json_real(T.last.val));
        if (classify)
            json_object_set_new(j, "accuracy",
                                json_real(isnan(T.last.val_acc) ? T.last.acc : T.last.val_acc));
        json_object_set_new(j, "samples_per_s", json_real(T.last.samples_per_s));
        json_object_set_new(j, "train_rows", json_integer((json_int_t)train_rows));
        json_object_set_new(j, "steps_per_epoch", json_integer((json_int_t)steps));
        json_object_set_new(j, "params", json_integer((json_int_t)np));
        json_object_set_new(j, "device", json_string(G ? ty_gpu_name(G) : "cpu"));
        if (!G) /* the kernels the CPU path ran on (see main.c) */
            json_object_set_new(j, "blas_core", json_string(openblas_get_corename()));
        if (parts_valid)
            json_object_set_new(j, "step_us", ty_parts_json(parts, steps));
        if (by_rank) {
            json_t *a = json_array();
            for (int r = 0; r < size; r++) {
                json_t *one = json_object();
                for (int k = 0; k < TY_NPARTS; k++)
                    json_object_set_new(one, ty_part_names[k],
                                        json_real(by_rank[r * TY_NPARTS + k]));
                json_array_append_new(a, one);
            }
            json_object_set_new(j, "step_us_by_rank", a);
        }
        char *s = json_dumps(j, JSON_COMPACT);
        puts(s);
        free(s);
        json_decref(j);
    }
out_gpu:
    free(parts);
    free(by_rank);
    ty_gpu_destroy(&G);
    ty_ws_destroy(&ws);
    free(xb);
    free(yb);
out_shards:
    ty_shards_destroy(&sh);
    free(rows);
out:
    ty_gsum_destroy(&T.gs);
    if (T.report_fd >= 0)
        close(T.report_fd);
    free(T.grad);
    free(T.peer);
    free(T.m1);
    free(T.m2);
    free(T.best);
    free(T.tr_idx);
    free(T.va_idx);
    ty_model_destroy(&T.m);
    ty_data_destroy(&T.tr);
    ty_data_destroy(&T.va);
    return status;
}
