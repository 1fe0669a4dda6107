/* The CLI's help: the usage text, each command's flags and examples, and
 * the bash completion script made from them (so the three agree). */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *cmd;
    const char *words;    /* its subcommands, or "" */
    const char *flags;    /* the flags it takes */
    int runs;             /* its first word (compare: every word) is a run id */
    const char *examples; /* lines, each "  $ ..." */
} ty_cmd_help_t;

static const ty_cmd_help_t ty_cmds[] = {
    {"validate", "", "", 0, "  trainyard validate examples/pipelines/diamond.yaml\n"},
    {"keygen", "", "--dir", 0,
     "  trainyard keygen alice --dir ~/.config/trainyard    # then give alice.key to the admin\n"},
    {"keys", "list revoke", "--dir", 0,
     "  trainyard keys list --dir /etc/trainyard/client-keys\n"
     "  trainyard keys revoke alice --dir /etc/trainyard/client-keys\n"},
    {"submit", "", "-p --param --wait --request-id --run-now --no-local-check", 0,
     "  trainyard submit examples/pipelines/hello.yaml -p who=you --wait\n"
     "  trainyard submit nightly.yaml --request-id build-4711    # safe to repeat\n"},
    {"retry", "", "--from --wait --request-id", 1,
     "  trainyard retry fashion-3f2a91bc --wait\n"
     "  trainyard retry fashion-3f2a91bc --from train\n"},
    {"runs", "", "--limit --schedule --pipeline --state --since --owner -q", 0,
     "  trainyard runs --state failed --since 2h\n"
     "  trainyard runs --pipeline fashion --limit 5 -o json\n"
     "  trainyard runs -q --state running    # ids only\n"},
    {"pipelines", "", "--limit", 0, "  trainyard pipelines\n  trainyard pipelines -o json\n"},
    {"status", "", "--wait --wait-after", 1,
     "  trainyard status fashion-3f2a91bc\n"
     "  trainyard status fashion-3f2a91bc --wait -o json\n"},
    {"logs", "", "-f --follow --attempt --tail", 1,
     "  trainyard logs fashion-3f2a91bc train -f\n"
     "  trainyard logs fashion-3f2a91bc train --attempt 1 --tail 50\n"},
    {"cancel", "", "", 1, "  trainyard cancel fashion-3f2a91bc\n"},
    {"metrics", "", "--plot", 1,
     "  trainyard metrics fashion-3f2a91bc train --plot\n"
     "  trainyard metrics fashion-3f2a91bc -o json\n"},
    {"compare", "", "", 2, "  trainyard compare fashion-3f2a91bc fashion-77e0c1d2\n"},
    {"artifacts", "", "", 1, "  trainyard artifacts fashion-3f2a91bc\n"},
    {"get", "", "-o --output", 1,
     "  trainyard get fashion-3f2a91bc train/fashion.model -o model.bin\n"},
    {"lineage", "", "", 0, "  trainyard lineage 9f86d081\n"},
    {"pin", "", "--unpin", 1, "  trainyard pin fashion-3f2a91bc\n"},
    {"gc", "", "--keep-days --dry-run", 0, "  trainyard gc --keep-days 30 --dry-run\n"},
    {"schedules", "add list show pause resume rm",
     "--cron --tz --catchup --max-catchup --concurrency -p --param", 0,
     "  trainyard schedules add nightly fashion.yaml --cron \"0 3 * * *\" --tz Europe/Berlin\n"
     "  trainyard schedules show nightly\n"
     "  trainyard schedules pause nightly\n"},
    {"models", "register list show alias history get promote",
     "--from --metric --tag --alias --higher-is-better --lower-is-better --min-delta "
     "--min-relative --baseline -o",
     0,
     "  trainyard models register fashion --from fashion-3f2a91bc/train/fashion.model\n"
     "  trainyard models show fashion@champion\n"
     "  trainyard models promote fashion 4 --alias champion --metric accuracy "
     "--min-delta 0.01\n"},
    {"workers", "drain undrain", "", 0,
     "  trainyard workers -o json\n"
     "  trainyard workers drain w2    # before an upgrade\n"},
    {"info", "", "", 0, "  trainyard info -o json\n"},
    {"completion", "bash", "", 0,
     "  source <(trainyard completion bash)\n"
     "  trainyard completion bash > /etc/bash_completion.d/trainyard\n"},
};

static const ty_cmd_help_t *ty_help_of(const char *cmd) {
    for (size_t i = 0; i < sizeof ty_cmds / sizeof *ty_cmds; i++)
        if (strcmp(ty_cmds[i].cmd, cmd) == 0)
            return &ty_cmds[i];
    return NULL;
}

static const char ty_usage_text[] =
    "usage: trainyard [--master EPS] [--key FILE --master-key FILE] [--timeout S]\n"
    "                 [--connect-timeout S] [--version]\n"
    "                 [-o table|json] COMMAND [ARGS]\n"
    "commands:\n"
    "  validate FILE                       check a pipeline file\n"
    "  keygen NAME [--dir DIR]             a CurveZMQ certificate: DIR/NAME.key (public, for\n"
    "                                      the master's --client-keys or --worker-keys) and\n"
    "                                      DIR/NAME.key_secret (mode 0600, yours)\n"
    "  keys list --dir DIR                 the public keys in a master's key directory\n"
    "  keys revoke NAME --dir DIR          NAME's key no longer let in; a master reading DIR\n"
    "                                      drops its sessions within 2 s (also: SIGHUP)\n"
    "  submit FILE [-p k=v]... [--wait] [--request-id ID] [--run-now]\n"
    "                                      start a run; --wait follows it to the end;\n"
    "                                      a repeated request id gets the same run; a file\n"
    "                                      with schedule: adds or updates that schedule\n"
    "                                      instead (--run-now: and starts a run too)\n"
    "  retry RUN [--from TASK] [--wait]    a new run of it: the tasks that failed (or TASK "
    "and\n"
    "                                      what depends on it) run again, the rest come\n"
    "                                      from RUN (state cached)\n"
    "  runs [--limit N] [--schedule NAME] [--pipeline NAME] [--state S] [--since AGE|TIME]\n"
    "       [--owner USER] [-q]            list runs, newest first, those that match (AGE:\n"
    "                                      30m, 2h, 7d; TIME: 2026-12-04T03:00:00Z; -q: ids)\n"
    "  pipelines [--limit N]               the pipelines of the runs the master holds, with\n"
    "                                      counts and their last run\n"
    "  status RUN [--wait]                 a run and its tasks\n"
    "  logs RUN TASK [-f] [--attempt N] [--tail N]\n"
    "                                      a task's output (-f follows it to the task's end,\n"
    "                                      through retries; --tail: its last N lines)\n"
    "  cancel RUN                          cancel a run\n"
    "  metrics RUN [TASK] [--plot]         every metric point of a run (--plot: charts)\n"
    "  compare RUN RUN...                  params, tags and final metrics side by side\n"
    "  artifacts RUN                       the outputs its tasks stored (name, size, sha256)\n"
    "  get RUN TASK/NAME [-o PATH]         download an output, its sha256 checked\n"
    "  lineage SHA256-OR-PREFIX            the runs and tasks that produced and consumed it\n"
    "  pin RUN [--unpin]                   keep RUN (its records and outputs) from gc\n"
    "  gc [--keep-days N] [--dry-run]      delete stored outputs no run in etcd (or none\n"
    "                                      finished in N days, pinned or running) refers to\n"
    "  schedules add NAME FILE --cron EXPR [--tz ZONE] [--catchup none|latest|all]\n"
    "         [--max-catchup N] [--concurrency forbid|allow|replace] [-p k=v]...\n"
    "                                      start FILE's pipeline at each fire time (5-field\n"
    "                                      cron or @daily...; defaults: UTC, latest, forbid)\n"
    "  schedules [list]                    every schedule, its next fire and last run\n"
    "  schedules show NAME                 one schedule and its next 5 fires (zone and UTC)\n"
    "  schedules pause|resume|rm NAME      stop firing, fire again (no catch-up), remove\n"
    "  models register NAME --from RUN/TASK/ARTIFACT [--metric k=v]... [--tag k=v]...\n"
    "                                      a new version of NAME (1, 2, 3...) from a stored\n"
    "                                      output, with its run, params and metrics\n"
    "  models [list [NAME]]                every model (or NAME's versions)\n"
    "  models show NAME[@ALIAS|:VERSION]   one version (default: the latest)\n"
    "  models alias NAME ALIAS VERSION     point ALIAS (champion, ...) at VERSION\n"
    "  models history NAME                 every move of NAME's aliases: who, when, why\n"
    "  models get NAME[@ALIAS|:VERSION] [-o PATH]   download it, its sha256 checked\n"
    "  models promote NAME VERSION --alias ALIAS --metric M [--higher-is-better|\n"
    "         --lower-is-better] [--min-delta D] [--min-relative R] [--baseline V]\n"
    "                                      move ALIAS to VERSION only if it beats ALIAS's\n"
    "                                      version on M by the margin (--baseline: that\n"
    "                                      version's M measured on the same data); exit 0\n"
    "                                      promoted, 3 not\n"
    "  workers                             registered workers\n"
    "  workers drain|undrain WORKER        no new attempts on it (those running go on), or\n"
    "                                      again (admins, with keys)\n"
    "  info                                master counters\n"
    "  completion bash                     a bash completion script (commands, flags, run\n"
    "                                      ids from the master): source <(trainyard\n"
    "                                      completion bash)\n"
    "The masters' client endpoints (comma-separated; the CLI follows the leader) come\n"
    "from --master, $TRAINYARD_MASTER, or 'master =' in $TRAINYARD_CONFIG or\n"
    "~/.config/trainyard/config (default tcp://127.0.0.1:7000); the keys for a master\n"
    "that requires them from --key/--master-key, $TRAINYARD_KEY/$TRAINYARD_MASTER_KEY,\n"
    "or 'key =' and 'master-key =' there.\n";

void ty_usage(FILE *f) { fputs(ty_usage_text, f); }

/* `trainyard CMD --help`: the usage lines of CMD (those from "  CMD " up to
 * the next command), or all of them. */
void ty_usage_of(const char *cmd) {
    size_t n = strlen(cmd);
    const char *p = ty_usage_text;
    int in = 0, found = 0;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
        if (strncmp(p, "  ", 2) == 0 && p[2] != ' ') /* a command's first line */
            in = strncmp(p + 2, cmd, n) == 0 && p[2 + n] == ' ';
        else if (strncmp(p, "  ", 2) != 0)
            in = 0;
        if (in) {
            fwrite(p, 1, len, stdout);
            found = 1;
        }
        p += len;
    }
    if (!found) {
        ty_usage(stdout);
        return;
    }
    const ty_cmd_help_t *h = ty_help_of(cmd);
    if (h && h->examples)
        printf("examples:\n%s", h->examples);
}

/* The bash completion script: its word lists come from ty_cmds, run ids
 * from `trainyard runs -q` when a word is one. */
int ty_cmd_completion(ty_cli_t *cli) {
    if (cli->argc != 2 || strcmp(cli->argv[1], "bash") != 0)
        return ty_die("usage: trainyard completion bash");
    fputs("# bash completion for trainyard: source <(trainyard completion bash)\n"
          "_trainyard() {\n"
          "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
          "    local i cmd='' at=0 globals=()\n"
          "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
          "        case ${COMP_WORDS[i]} in\n"
          "        --master|--key|--master-key|--timeout|--connect-timeout)\n"
          "            globals+=(\"${COMP_WORDS[i]}\" \"${COMP_WORDS[i+1]}\"); ((i++)) ;;\n"
          "        -o|--output) ((i++)) ;;\n"
          "        -*) ;;\n"
          "        *) if [[ -z $cmd ]]; then cmd=${COMP_WORDS[i]}; else ((at++)); fi ;;\n"
          "        esac\n"
          "    done\n"
          "    if [[ -z $cmd ]]; then\n"
          "        if [[ $cur == -* ]]; then\n"
          "            COMPREPLY=($(compgen -W '--master --key --master-key --timeout\n"
          "                --connect-timeout --version --help -o' -- \"$cur\"))\n"
          "        else\n"
          "            COMPREPLY=($(compgen -W '",
          stdout);
    for (size_t i = 0; i < sizeof ty_cmds / sizeof *ty_cmds; i++)
        printf("%s%s", i ? " " : "", ty_cmds[i].cmd);
    fputs("' -- \"$cur\"))\n"
          "        fi\n"
          "        return\n"
          "    fi\n"
          "    if [[ ($prev == -o || $prev == --output) && $cmd != get ]]; then\n"
          "        COMPREPLY=($(compgen -W 'table json' -- \"$cur\")); return\n"
          "    fi\n"
          "    local flags='--help -o' words='' runs=0\n"
          "    case $cmd in\n",
          stdout);
    for (size_t i = 0; i < sizeof ty_cmds / sizeof *ty_cmds; i++) {
        const ty_cmd_help_t *h = &ty_cmds[i];
        printf("    %s) flags+=' %s'; words='%s'; runs=%d ;;\n", h->cmd, h->flags, h->words,
               h->runs);
    }
    fputs("    esac\n"
          "    if [[ $cur == -* ]]; then\n"
          "        COMPREPLY=($(compgen -W \"$flags\" -- \"$cur\"))\n"
          "    elif [[ -n $words && $at == 0 ]]; then\n"
          "        COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
          "    elif [[ ($runs == 1 && $at == 0) || $runs == 2 ]]; then\n"
          "        COMPREPLY=($(compgen -W \"$(command trainyard \"${globals[@]}\" runs -q \\\n"
          "            --limit 200 2>/dev/null)\" -- \"$cur\"))\n"
          "    fi\n"
          "}\n"
          "complete -o default -F _trainyard trainyard\n",
          stdout);
    return 0;
}
