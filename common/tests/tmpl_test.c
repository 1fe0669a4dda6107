/* tmpl: a value substituted into a shell script stays one word of data in
 * every quoting it can stand in, checked by running the script with
 * /bin/sh; argv and env get values as they are; which templates are
 * unknown; which argv argument is a script. */
#include "common/tmpl.h"
#include "common/tests/ty_test.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char *lookup(const void *arg, const char *name, size_t len) {
    return len == 1 && *name == 'v' ? ty_xstrdup(arg) : NULL;
}

/* What /bin/sh prints running script (the last newline dropped). */
static char *run_sh(const char *script) {
    FILE *f = popen(script, "r");
    if (!f)
        return NULL;
    ty_buf_t out = {0};
    char buf[512];
    size_t n;
    ty_buf_append(&out, "", 0);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        ty_buf_append(&out, buf, n);
    pclose(f);
    if (out.len && out.data[out.len - 1] == '\n')
        out.data[--out.len] = 0;
    return out.data;
}

static void one_word(const char *tmpl, const char *pre, const char *v, const char *post) {
    char *missing = NULL;
    char *script = ty_tmpl_render(tmpl, TY_TMPL_SHELL, "params.", lookup, v, &missing);
    CHECK(missing == NULL);
    char *got = run_sh(script);
    char *want = ty_xasprintf("%s%s%s", pre, v, post);
    if (!got || strcmp(got, want) != 0) {
        fprintf(stderr, "template %s with value [%s]: script [%s] printed [%s]\n", tmpl, v, script,
                got ? got : "(null)");
        ty_test_failures++;
    }
    free(want);
    free(got);
    free(script);
}

int main(void) {
    static const char *const hostile[] = {
        "x; touch /tmp/ty-tmpl-pwned",
        "a'b\"c$d`e\\f",
        "$(touch /tmp/ty-tmpl-pwned)",
        "",
        "  two  words  ",
        "line1\nline2",
        "'",
        "\"",
        "}} {{ params.v }}",
        "0.5",
        "/data/set-1:2,3",
        "*",
    };
    unlink("/tmp/ty-tmpl-pwned");
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        const char *v = hostile[i];
        /* outside quotes: one argument of printf */
        one_word("printf '[%s]' {{ params.v }}", "[", v, "]");
        one_word("printf '[%s]' x{{params.v}}y", "[x", v, "y]");
        one_word("printf '%s' \"in dq {{ params.v }}!\"", "in dq ", v, "!");
        one_word("printf '%s' 'in sq {{ params.v }} end'", "in sq ", v, " end");
        one_word("printf '%s' \"$(printf '%s' {{ params.v }})\"", "", v, "");
        one_word("printf '%s' \"$(printf '%s' \"{{ params.v }}\")\"", "", v, "");
        one_word("# it's a comment\nprintf '%s' {{ params.v }}", "", v, "");
        one_word("x=$((1 + 2)); printf '%s' {{ params.v }}", "", v, "");
        one_word("f() { printf '%s' \"$1\"; }; f {{ params.v }}", "", v, "");
    }
    CHECK(access("/tmp/ty-tmpl-pwned", F_OK) != 0);

    /* values of plain bytes are written as they are, in any quoting */
    char *missing = NULL;
    char *r = ty_tmpl_render("fit --lr {{ params.v }} '{{ params.v }}'", TY_TMPL_SHELL, "params.",
                             lookup, "0.05", &missing);
    CHECK_STR(r, "fit --lr 0.05 '0.05'");
    free(r);
    /* raw: as they are, whatever they hold */
    r = ty_tmpl_render("a {{ params.v }} b", TY_TMPL_RAW, "params.", lookup, "x; y", &missing);
    CHECK_STR(r, "a x; y b");
    free(r);
    /* an unknown name of the prefix is reported, other prefixes are kept */
    r = ty_tmpl_render("{{ params.w }} {{ inputs.d }}", TY_TMPL_SHELL, "params.", lookup, "1",
                       &missing);
    CHECK_STR(r, "{{ params.w }} {{ inputs.d }}");
    CHECK_STR(missing, "w");
    free(missing);
    free(r);
    char *q = ty_tmpl_shell_quote("it's");
    CHECK_STR(q, "'it'\\''s'");
    free(q);

    /* unknown namespaces */
    static const struct {
        const char *s, *want;
    } unk[] = {
        {"echo {{ run_id }}", "{{ run_id }}"},
        {"echo {{ param.x }}", "{{ param.x }}"},
        {"echo {{params.x}} {{ inputs.d }} {{ run.id }} {{ task.name }} {{ task.attempt }}", NULL},
        {"docker inspect --format '{{ .Id }}' {{ range .x }}", NULL},
        {"echo {{ run.ids }}", "{{ run.ids }}"},
        {"echo {{ params. }}", "{{ params. }}"},
    };
    for (size_t i = 0; i < sizeof unk / sizeof unk[0]; i++) {
        char *u = ty_tmpl_unknown(unk[i].s);
        if (unk[i].want)
            CHECK_STR(u, unk[i].want);
        else if (u) {
            fprintf(stderr, "%s: unexpected unknown %s\n", unk[i].s, u);
            ty_test_failures++;
        }
        free(u);
    }

    /* which argv argument is a shell script */
    char *a1[] = {"sh", "-c", "s", "arg0"};
    CHECK(ty_tmpl_argv_is_shell(a1, 4, 2));
    CHECK(!ty_tmpl_argv_is_shell(a1, 4, 3));
    CHECK(!ty_tmpl_argv_is_shell(a1, 4, 1));
    char *a2[] = {"/bin/bash", "-e", "-xc", "s"};
    CHECK(ty_tmpl_argv_is_shell(a2, 4, 3));
    char *a3[] = {"python3", "-c", "s"};
    CHECK(!ty_tmpl_argv_is_shell(a3, 3, 2));
    char *a4[] = {"sh", "script.sh", "x"};
    CHECK(!ty_tmpl_argv_is_shell(a4, 3, 2));
    TEST_DONE();
}
