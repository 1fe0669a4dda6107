/* trainyard models register|list|show|alias|history|get|promote: the model
 * registry.  A model reference is NAME (its latest version), NAME:VERSION
 * or NAME@ALIAS. */
#include "cli/cli.h"
#include "cli/output.h"

#include "common/util.h"
#include "common/wire.h"

#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TY_NOT_PROMOTED 3 /* promote's exit status when the alias stays */

static const char *ty_user(void) {
    const char *u = getenv("USER");
    if (u && *u)
        return u;
    struct passwd *pw = getpwuid(getuid());
    return pw ? pw->pw_name : "?";
}

static void ty_aliases_text(const Ty__ModelRecord *r, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < r->n_aliases && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%s=%s", i ? "," : "", r->aliases[i]->key,
                              r->aliases[i]->value);
    if (!buf[0])
        snprintf(buf, n, "-");
}

/* NAME, NAME:VERSION or NAME@ALIAS into rq (name points into a copy). */
static int ty_parse_ref(const char *ref, Ty__ModelRequest *rq, char **copy) {
    *copy = ty_xstrdup(ref);
    char *at = strchr(*copy, '@'), *colon = strchr(*copy, ':');
    rq->name = *copy;
    if (at) {
        *at = '\0';
        rq->alias = at + 1;
    } else if (colon) {
        *colon = '\0';
        int64_t v;
        if (ty_parse_i64(colon + 1, 1, UINT32_MAX, &v) != 0)
            return ty_die("bad version in '%s' (want NAME:VERSION, a positive integer)", ref);
        rq->version = (uint32_t)v;
    }
    return 0;
}

static int ty_models_call(ty_cli_t *cli, ty_client_t *c, Ty__ModelRequest *rq, Ty__Envelope **rep) {
    rq->by = (char *)ty_user();
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_MODEL;
    env.model = rq;
    return ty_call(c, &env, cli->call_ms, rep, TY__ENVELOPE__BODY_MODEL_REPLY);
}

static void ty_show_version(const Ty__ModelVersion *v, const Ty__ModelRecord *rec) {
    char when[40];
    ty_fmt_time(v->created_ms, when, sizeof when);
    printf("model        %s\nversion      %u\n", v->name, v->version);
    for (size_t i = 0; rec && i < rec->n_aliases; i++)
        if (strtoul(rec->aliases[i]->value, NULL, 10) == v->version)
            printf("alias        %s\n", rec->aliases[i]->key);
    printf("artifact     %s (%llu bytes)\nsha256       %s\n", v->artifact,
           (unsigned long long)v->size, v->sha256);
    printf("from         run %s, task %s (pipeline %s)\n", v->run_id, v->task, v->pipeline);
    for (size_t i = 0; i < v->n_params; i++)
        printf("param        %s=%s\n", v->params[i]->key, v->params[i]->value);
    for (size_t i = 0; i < v->n_metrics; i++)
        printf("metric       %s %g\n", v->metrics[i]->name, v->metrics[i]->value);
    for (size_t i = 0; i < v->n_tags; i++)
        printf("tag          %s=%s\n", v->tags[i]->key, v->tags[i]->value);
    printf("registered   %s by %s\n", when, v->by);
}

/* KEY=VALUE arguments (split in place) into kvs. */
static int ty_kv_arg(char *arg, const char *flag, Ty__KV *kv) {
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return ty_die("bad %s '%s' (want key=value)", flag, arg);
    *eq = '\0';
    ty__kv__init(kv);
    kv->key = arg;
    kv->value = eq + 1;
    return 0;
}

static int ty_models_register(ty_cli_t *cli, ty_client_t *c) {
    Ty__ModelRequest rq = TY__MODEL_REQUEST__INIT;
    rq.op = "register";
    Ty__KV *ms = ty_xcalloc((size_t)cli->argc, sizeof *ms),
           *ts = ty_xcalloc((size_t)cli->argc, sizeof *ts);
    Ty__KV **mp = ty_xcalloc((size_t)cli->argc, sizeof *mp),
           **tp = ty_xcalloc((size_t)cli->argc, sizeof *tp);
    int rc = 0;
    for (int i = 2; i < cli->argc && rc == 0; i++) {
        char *a = cli->argv[i];
        if (strcmp(a, "--from") == 0 && i + 1 < cli->argc) {
            rq.from = cli->argv[++i];
        } else if (strcmp(a, "--metric") == 0 && i + 1 < cli->argc) {
            rc = ty_kv_arg(cli->argv[++i], "--metric", &ms[rq.n_metrics]);
            double d;
            if (rc == 0 && ty_parse_f64(ms[rq.n_metrics].value, -1e300, 1e300, &d) != 0)
                rc = ty_die("--metric %s: '%s' is not a number", ms[rq.n_metrics].key,
                            ms[rq.n_metrics].value);
            mp[rq.n_metrics] = &ms[rq.n_metrics];
            rq.n_metrics++;
        } else if (strcmp(a, "--tag") == 0 && i + 1 < cli->argc) {
            rc = ty_kv_arg(cli->argv[++i], "--tag", &ts[rq.n_tags]);
            tp[rq.n_tags] = &ts[rq.n_tags];
            rq.n_tags++;
        } else if (a[0] != '-' && !*rq.name) {
            rq.name = a;
        } else {
            rc = ty_die("models register: unexpected argument '%s'", a);
        }
    }
    if (rc == 0 && (!*rq.name || !*rq.from))
        rc = ty_die("usage: trainyard models register NAME --from RUN/TASK/ARTIFACT "
                    "[--metric k=v]... [--tag k=v]...");
    rq.metrics = mp;
    rq.tags = tp;
    Ty__Envelope *rep = NULL;
    if (rc == 0 && ty_models_call(cli, c, &rq, &rep) != 0)
        rc = 1;
    if (rc == 0 && rep->model_reply->n_versions == 1) {
        const Ty__ModelVersion *v = rep->model_reply->versions[0];
        if (cli->json)
            ty_out_json_print(ty_render_model_version(v, NULL));
        else
            printf("registered %s version %u (%s, sha256 %.12s...)\n", v->name, v->version,
                   v->artifact, v->sha256);
    }
    ty_wire_free(&rep);
    free(ms);
    free(ts);
    free(mp);
    free(tp);
    return rc;
}

static int ty_models_promote(ty_cli_t *cli, ty_client_t *c) {
    Ty__ModelRequest rq = TY__MODEL_REQUEST__INIT;
    rq.op = "promote";
    int rc = 0, npos = 0;
    for (int i = 2; i < cli->argc && rc == 0; i++) {
        const char *a = cli->argv[i], *v = i + 1 < cli->argc ? cli->argv[i + 1] : NULL;
        if (strcmp(a, "--alias") == 0 && v) {
            rq.alias = (char *)v, i++;
        } else if (strcmp(a, "--metric") == 0 && v) {
            rq.metric = (char *)v, i++;
        } else if (strcmp(a, "--higher-is-better") == 0) {
            rq.lower_is_better = 0;
        } else if (strcmp(a, "--lower-is-better") == 0) {
            rq.lower_is_better = 1;
        } else if (strcmp(a, "--baseline") == 0 && v) {
            if (ty_parse_f64(v, -1e300, 1e300, &rq.baseline) != 0)
                rc = ty_die("--baseline needs a number, got '%s'", v);
            rq.has_baseline = 1;
            i++;
        } else if ((strcmp(a, "--min-delta") == 0 || strcmp(a, "--min-relative") == 0) && v) {
            double d;
            if (ty_parse_f64(v, 0, 1e300, &d) != 0)
                rc = ty_die("%s needs a number >= 0, got '%s'", a, v);
            *(a[6] == 'd' ? &rq.min_delta : &rq.min_relative) = d;
            i++;
        } else if (a[0] != '-' && npos == 0) {
            rq.name = (char *)a, npos++;
        } else if (a[0] != '-' && npos == 1) {
            int64_t n;
            if (ty_parse_i64(a, 1, UINT32_MAX, &n) != 0)
                rc = ty_die("promote: VERSION must be a positive integer, got '%s'", a);
            rq.version = (uint32_t)n, npos++;
        } else {
            rc = ty_die("models promote: unexpected argument '%s'", a);
        }
    }
    if (rc == 0 && (npos != 2 || !*rq.alias || !*rq.metric))
        rc = ty_die("usage: trainyard models promote NAME VERSION --alias ALIAS --metric M "
                    "[--higher-is-better|--lower-is-better] [--min-delta D] [--min-relative R] "
                    "[--baseline V]");
    Ty__Envelope *rep = NULL;
    if (rc != 0 || ty_models_call(cli, c, &rq, &rep) != 0)
        return rc ? rc : 1;
    const Ty__ModelReply *r = rep->model_reply;
    if (cli->json) {
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(rq.name));
        json_object_set_new(o, "version", json_integer(rq.version));
        json_object_set_new(o, "alias", json_string(rq.alias));
        json_object_set_new(o, "metric", json_string(rq.metric));
        json_object_set_new(o, "promoted", json_boolean(r->promoted));
        json_object_set_new(o, "candidate", json_real(r->candidate));
        json_object_set_new(o, "current", r->current_version ? json_real(r->current) : json_null());
        json_object_set_new(o, "current_version",
                            r->current_version ? json_integer(r->current_version) : json_null());
        json_object_set_new(o, "decision", json_string(r->decision));
        ty_out_json_print(o);
    } else {
        printf("candidate  %s version %u: %s %g\n", rq.name, rq.version, rq.metric, r->candidate);
        if (r->current_version)
            printf("%-10s %s version %u: %s %g\n", rq.alias, rq.name, r->current_version, rq.metric,
                   r->current);
        else
            printf("%-10s none yet\n", rq.alias);
        printf("%s\n", r->decision);
    }
    rc = r->promoted ? 0 : TY_NOT_PROMOTED;
    ty_wire_free(&rep);
    return rc;
}

static int ty_models_print(ty_cli_t *cli, const char *op, int named, const Ty__ModelReply *r,
                           const char *out, ty_client_t *c) {
    const Ty__ModelRecord *rec = r->n_models ? r->models[0] : NULL;
    if (strcmp(op, "get") == 0) {
        const Ty__ModelVersion *v = r->versions[0];
        Ty__ArtifactRef a = TY__ARTIFACT_REF__INIT;
        a.name = v->artifact;
        a.sha256 = v->sha256;
        a.size = v->size;
        return ty_download(cli, c, &a, out);
    }
    if (cli->json) {
        json_t *j = NULL;
        if (strcmp(op, "show") == 0) {
            j = ty_render_model_version(r->versions[0], rec);
        } else if (strcmp(op, "history") == 0) {
            j = ty_render_model_history(r);
        } else if (strcmp(op, "alias") == 0) {
            j = ty_render_model(rec);
        } else if (named) { /* list NAME: its versions */
            j = json_array();
            for (size_t i = 0; i < r->n_versions; i++)
                json_array_append_new(j, ty_render_model_version(r->versions[i], rec));
        } else {
            j = json_array();
            for (size_t i = 0; i < r->n_models; i++)
                json_array_append_new(j, ty_render_model(r->models[i]));
        }
        ty_out_json_print(j);
        return 0;
    }
    char al[256], when[40];
    if (strcmp(op, "show") == 0) {
        ty_show_version(r->versions[0], rec);
    } else if (strcmp(op, "history") == 0) {
        printf("%-5s %-12s %-6s %-6s %-12s %-24s %s\n", "SEQ", "ALIAS", "FROM", "TO", "BY", "AT",
               "NOTE");
        for (size_t i = 0; i < r->n_history; i++) {
            const Ty__AliasMove *h = r->history[i];
            char from[16] = "-";
            if (h->from_version)
                snprintf(from, sizeof from, "%u", h->from_version);
            ty_fmt_time(h->at_ms, when, sizeof when);
            printf("%-5llu %-12s %-6s %-6u %-12s %-24s %s\n", (unsigned long long)h->seq, h->alias,
                   from, h->to_version, h->by, when, h->note);
        }
    } else if (strcmp(op, "alias") == 0) {
        ty_aliases_text(rec, al, sizeof al);
        printf("%s: %s\n", rec->name, al);
    } else if (named) { /* list NAME */
        printf("%-8s %-24s %-14s %-36s %-16s %s\n", "VERSION", "ARTIFACT", "SHA256", "FROM",
               "ALIASES", "METRICS");
        for (size_t i = 0; i < r->n_versions; i++) {
            const Ty__ModelVersion *v = r->versions[i];
            char from[300], aliases[128] = "", metrics[256] = "";
            snprintf(from, sizeof from, "%s/%s", v->run_id, v->task);
            size_t k = 0;
            for (size_t a = 0; rec && a < rec->n_aliases && k < sizeof aliases; a++)
                if (strtoul(rec->aliases[a]->value, NULL, 10) == v->version)
                    k += (size_t)snprintf(aliases + k, sizeof aliases - k, "%s%s", k ? "," : "",
                                          rec->aliases[a]->key);
            k = 0;
            for (size_t m = 0; m < v->n_metrics && k < sizeof metrics; m++)
                k += (size_t)snprintf(metrics + k, sizeof metrics - k, "%s%s=%g", k ? " " : "",
                                      v->metrics[m]->name, v->metrics[m]->value);
            printf("%-8u %-24s %-14.12s %-36s %-16s %s\n", v->version, v->artifact, v->sha256, from,
                   *aliases ? aliases : "-", metrics);
        }
    } else {
        printf("%-24s %-8s %-30s %s\n", "NAME", "LATEST", "ALIASES", "CREATED");
        for (size_t i = 0; i < r->n_models; i++) {
            ty_aliases_text(r->models[i], al, sizeof al);
            ty_fmt_time(r->models[i]->created_ms, when, sizeof when);
            printf("%-24s %-8u %-30s %s\n", r->models[i]->name, r->models[i]->last_version, al,
                   when);
        }
    }
    return 0;
}

int ty_cmd_models(ty_cli_t *cli, ty_client_t *c) {
    const char *op = cli->argc > 1 ? cli->argv[1] : "list";
    if (strcmp(op, "register") == 0)
        return ty_models_register(cli, c);
    if (strcmp(op, "promote") == 0)
        return ty_models_promote(cli, c);
    Ty__ModelRequest rq = TY__MODEL_REQUEST__INIT;
    char *copy = NULL;
    const char *out = NULL;
    int rc = 0;
    if (strcmp(op, "list") == 0) {
        rq.op = "list";
        if (cli->argc > 3)
            rc = ty_die("usage: trainyard models list [NAME]");
        else if (cli->argc == 3)
            rq.name = cli->argv[2];
    } else if (strcmp(op, "show") == 0 || strcmp(op, "get") == 0) {
        rq.op = "show";
        const char *ref = NULL;
        for (int i = 2; i < cli->argc && rc == 0; i++) {
            if (strcmp(op, "get") == 0 && strcmp(cli->argv[i], "-o") == 0 && i + 1 < cli->argc)
                out = cli->argv[++i];
            else if (!ref)
                ref = cli->argv[i];
            else
                rc = ty_die("models %s: unexpected argument '%s'", op, cli->argv[i]);
        }
        if (rc == 0 && !ref)
            rc = ty_die("usage: trainyard models %s NAME[@ALIAS|:VERSION]%s", op,
                        strcmp(op, "get") == 0 ? " [-o PATH]" : "");
        if (rc == 0)
            rc = ty_parse_ref(ref, &rq, &copy);
    } else if (strcmp(op, "history") == 0) {
        rq.op = "history";
        if (cli->argc != 3)
            rc = ty_die("usage: trainyard models history NAME");
        else
            rq.name = cli->argv[2];
    } else if (strcmp(op, "alias") == 0) {
        rq.op = "alias";
        int64_t v = 0;
        if (cli->argc != 5 || ty_parse_i64(cli->argv[4], 1, UINT32_MAX, &v) != 0)
            rc = ty_die("usage: trainyard models alias NAME ALIAS VERSION");
        rq.name = cli->argc > 2 ? cli->argv[2] : "";
        rq.alias = cli->argc > 3 ? cli->argv[3] : "";
        rq.version = (uint32_t)v;
    } else {
        rc = ty_die("models: unknown subcommand '%s' (register, list, show, alias, history, "
                    "get, promote)",
                    op);
    }
    Ty__Envelope *rep = NULL;
    if (rc == 0 && ty_models_call(cli, c, &rq, &rep) != 0)
        rc = 1;
    if (rc == 0)
        rc =
            ty_models_print(cli, op, strcmp(op, "list") == 0 && *rq.name, rep->model_reply, out, c);
    ty_wire_free(&rep);
    free(copy);
    return rc;
}
