/* The trainer's commands that use a model or compare data: eval, predict,
 * drift.  Each returns an exit status. */
#ifndef TY_TRAINER_USE_H
#define TY_TRAINER_USE_H

int ty_cmd_eval(int argc, char **argv);
int ty_cmd_predict(int argc, char **argv);
/* Exit status 3 when a feature drifts past --threshold. */
int ty_cmd_drift(int argc, char **argv);
/* A model file's architecture, classes, features and training metadata. */
int ty_cmd_info(int argc, char **argv);
/* Shared with main.c: "trainyard-train: ..." on stderr; returns 2. */
int ty_train_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int ty_train_num(const char *name, const char *v, double lo, double hi, double *out);
/* Appends a line (with its newline) to $TRAINYARD_REPORT in one write;
 * returns 0, writing nothing, when that is not set. */
int ty_train_report_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
