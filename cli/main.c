/* main.c -- the `simsync` program's entry: global options, the command
 * table, help, and dispatch to the cmd_*.c files. The program uses only
 * the public header simsync.h.
 *
 *   simsync [--home DIR] [--json] COMMAND [ARGS...]
 *
 * The home defaults to $SIMSYNC_HOME, else ~/.local/share/simsync. */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct command {
    const char *word; /* "sim" */
    const char *sub;  /* "create", or NULL for a one-word command */
    int (*run)(struct cli *c, int argc, char **argv);
    const char *synopsis; /* the arguments, after "simsync " */
    const char *summary;  /* one line on what it does */
};

static const struct command commands[] = {
    {"sim", "create", cmd_sim_create,
     "sim create FILE --subscriber ID --pin PIN --puk PUK",
     "make a virtual SIM file (ID 5-15 digits, PIN 4-8, PUK 8)"},
    {"sim", "insert", cmd_sim_insert, "sim insert FILE",
     "insert a SIM into this terminal; the SIM asks for its PIN"},
    {"sim", "remove", cmd_sim_remove, "sim remove",
     "take the SIM out of this terminal; a running daemon uploads pending "
     "changes first"},
    {"sim", "status", cmd_sim_status, "sim status",
     "show the inserted SIM, its tries left and the binding"},
    {"sim", "unblock", cmd_sim_unblock,
     "sim unblock FILE --puk PUK --new-pin PIN",
     "unblock a SIM with its PUK and set a new PIN"},
    {"init", NULL, cmd_init,
     "init --role terminal|hub|desktop|kiosk [--terminal-id ID] [--data DIR] "
     "[--credential-file F]",
     "create a node in the home directory (a kiosk takes the credential "
     "the hub issued)"},
    {"id", NULL, cmd_id, "id", "print this node's ID"},
    {"hub", "serve", cmd_hub_serve,
     "hub serve --listen HOST:PORT [--idle-timeout SECONDS]",
     "serve as the hub until SIGINT or SIGTERM"},
    {"hub", "stats", cmd_hub_stats, "hub stats",
     "totals of what the hub holds: subscribers, terminals, items, "
     "tombstones, chunks"},
    {"register", NULL, cmd_register,
     "register --hub HOST:PORT --hub-id ID [--classes LIST] [--kiosk]",
     "register this terminal for its SIM's subscriber (PIN, password; "
     "--kiosk: complete a shop kiosk's registration, no password)"},
    {"hub", "kiosk", cmd_hub_kiosk, "hub kiosk add NAME | list | remove NAME",
     "issue a shop kiosk credential (printed once), list kiosks, revoke one"},
    {"hub", "audit", cmd_hub_audit, "hub audit",
     "every kiosk registration and refusal: time, kiosk, terminal, result"},
    {"kiosk", "enroll", cmd_kiosk_enroll, "kiosk enroll --credential-file F",
     "give this kiosk the credential the hub issued (kept 0600)"},
    {"kiosk", "register", cmd_kiosk_register,
     "kiosk register --hub HOST:PORT --hub-id ID --sim FILE "
     "[--subscriber ID] (--terminal PEER | --terminal-id ID --node-key KEY) "
     "[--save FILE]",
     "at the shop: check the SIM's PIN and bind the handset to its "
     "subscriber at the hub, signed by this kiosk (PEER: the link address, "
     "[tcp:]HOST:PORT, rfcomm:BDADDR[:CHANNEL] or usb[:VID:PID], where the "
     "handset runs 'kiosk offer')"},
    {"kiosk", "send", cmd_kiosk_send,
     "kiosk send FILE --hub HOST:PORT --hub-id ID",
     "send a registration saved with 'kiosk register --save'"},
    {"kiosk", "audit", cmd_kiosk_audit, "kiosk audit",
     "this kiosk's own audit: every attempt here, PIN refusals included"},
    {"kiosk", "offer", cmd_kiosk_offer,
     "kiosk offer --listen ADDR [--timeout SECONDS]",
     "on the handset: give one kiosk this terminal's ID and node key "
     "(nothing else)"},
    {"classes", "lazy", cmd_classes_lazy, "classes lazy [LIST|none]",
     "show or set the classes taken as metadata only (contents on demand)"},
    {"ls", NULL, cmd_ls, "ls [CLASSES]",
     "list items: local, remote (metadata only) or pinned; size; hash"},
    {"fetch", NULL, cmd_fetch, "fetch CLASS/NAME",
     "bring an item's content from the hub (lazy classes)"},
    {"pin", NULL, cmd_pin, "pin CLASS/NAME",
     "fetch an item if needed and keep it here and up to date"},
    {"unpin", NULL, cmd_unpin, "unpin CLASS/NAME", "undo pin"},
    {"evict", NULL, cmd_evict, "evict CLASS/NAME",
     "free an item's local content; it stays on the hub and elsewhere"},
    {"classes", NULL, cmd_classes, "classes [LIST]",
     "show or set the classes this terminal syncs"},
    {"sync", NULL, cmd_sync,
     "sync [--hub HOST:PORT | --peer ADDR | --with ID] [--allow-delete] "
     "[--upload-only | --download-only] [--max-bytes SIZE] "
     "[--max-time DURATION]",
     "sync both ways with the hub now, or with a paired node (--peer, "
     "--with); one way or within limits"},
    {"status", NULL, cmd_status, "status",
     "per class: items, pending up/down, conflicts; last sync"},
    {"conflicts", "resolve", cmd_conflicts_resolve,
     "conflicts resolve CLASS/NAME --keep mine|theirs|both",
     "settle one conflict"},
    {"conflicts", NULL, cmd_conflicts, "conflicts", "list the conflict inbox"},
    {"erase", NULL, cmd_erase, "erase [--force] [--yes]",
     "before handing the terminal over: sync, check the hub has every "
     "change, then wipe class folders, store and keys (--force: without "
     "the hub, after a confirmation)"},
    {"hub", "schedule", cmd_hub_schedule,
     "hub schedule --subscriber ID [--terminal ID] (--every DURATION | "
     "--at HH:MM) [--retry-interval DURATION] [--max-attempts N] "
     "[--answer-timeout DURATION] | --list | --remove",
     "ask terminals for backups on a schedule (DURATION: 90s, 15m, 6h, "
     "1d)"},
    {"hub", "generations", cmd_hub_generations,
     "hub generations --subscriber ID",
     "a subscriber's generations: metadata only, the hub cannot read them"},
    {"daemon", NULL, cmd_daemon,
     "daemon [--power-supply-dir DIR] [--busy-after-edit SECONDS] "
     "[--battery-below PERCENT] [--backup-after-bytes N] "
     "[--check-every SECONDS] [--retry-after SECONDS] [--listen ADDR]... "
     "[--tty-dir DIR]",
     "sync by itself as the policy says, stay connected to the hub: "
     "answer its backup requests (OK or BUSY), run restore jobs, back up "
     "when pending changes pass a size (--listen: also serve paired "
     "nodes)"},
    {"policy", "show", cmd_policy_show, "policy show",
     "when the daemon syncs: every policy key, its value and meaning"},
    {"policy", "set", cmd_policy_set, "policy set KEY VALUE",
     "change a policy key (a running daemon takes it at once)"},
    {"policy", "confirm", cmd_policy_confirm, "policy confirm yes|no",
     "answer the daemon's question before a sync (sync.confirm on)"},
    {"policy", "run", cmd_policy_run, "policy run sync|upload|download",
     "ask the running daemon to sync now"},
    {"log", NULL, cmd_log, "log [--follow]",
     "the daemon's decisions: what triggered each sync, how it ended, why "
     "something waits"},
    {"pair", NULL, cmd_pair,
     "pair PEER | --peer PEER | --listen ADDR [--yes | --code CODE] "
     "[--timeout SECONDS]",
     "pair with another terminal or desktop of the same subscriber: both "
     "show a 6-digit code to compare, then pin each other's key"},
    {"peers", NULL, cmd_peers, "peers", "list the paired nodes"},
    {"unpair", NULL, cmd_unpair, "unpair ID",
     "forget a paired node (terminal ID or node ID): its sessions are "
     "refused"},
    {"serve", NULL, cmd_serve, "serve --listen ADDR [--listen ADDR]...",
     "serve the paired nodes' syncs on this terminal or desktop until "
     "SIGINT or SIGTERM (ADDR: HOST:PORT, tcp:HOST:PORT, "
     "rfcomm:[BDADDR:]CHANNEL)"},
    {"listen", NULL, cmd_listen, "listen ADDR...",
     "serve the paired nodes on several links at once, e.g. 'listen "
     "0.0.0.0:7172 rfcomm:3 usb' (usb: handsets that dial with "
     "usb-gadget), until SIGINT or SIGTERM"},
    {"backup", "now", cmd_backup_now,
     "backup now [--classes LIST] [--next DURATION]",
     "make a backup generation on the hub now (--next: when the hub "
     "should ask for the next one)"},
    {"backup", "list", cmd_backup_list, "backup list",
     "list the generations: number, time, terminal, classes, items, bytes"},
    {"backup", "show", cmd_backup_show, "backup show GEN",
     "list the items of a generation"},
    {"backup", "history", cmd_backup_history, "backup history",
     "what happened: started, busy, retried, gave up, completed, forgotten"},
    {"backup", "forget", cmd_backup_forget,
     "backup forget [--keep-last N] [--keep-daily N] [--keep-weekly N] "
     "[--keep-monthly N] [--dry-run] [GEN...]",
     "forget generations (all but those kept, or the ones named); the hub "
     "reclaims chunks nothing uses"},
    {"restore", NULL, cmd_restore,
     "restore GEN [--classes LIST] [--item CLASS/NAME]... [--dry-run] "
     "[--to-terminal ID] [--on-conflict ask|overwrite|keep-both|skip] "
     "[--delete-after]",
     "restore a generation, or part of it, here or (as a job) on another "
     "terminal"},
    {"notices", NULL, cmd_notices, "notices [--clear]",
     "messages from the hub (a backup it gave up on) and from restore "
     "jobs"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* The usage of the command being run; c->usage points here. */
static char usage_buf[2048];

static void
print_full_usage(FILE *f)
{
    fputs("usage: simsync [--home DIR] [--json] COMMAND [ARGS...]\n\n"
          "Options (before the command, or anywhere after it):\n"
          "  --home DIR            the node's home (default $SIMSYNC_HOME, "
          "else\n"
          "                        ~/.local/share/simsync)\n"
          "  --json                one JSON object on stdout (sync, status, "
          "conflicts,\n"
          "                        sim status, hub stats, errors)\n"
          "  --pin-file F          the SIM PIN (else $SIMSYNC_PIN, else a "
          "prompt)\n"
          "  --password-file F     the terminal password (else "
          "$SIMSYNC_PASSWORD, else\n"
          "                        a prompt)\n"
          "  --recovery-file F     the recovery secret (else "
          "$SIMSYNC_RECOVERY, else a\n"
          "                        prompt; optional)\n"
          "  --help                this text; 'simsync COMMAND --help' for "
          "one command\n\n"
          "Commands:\n",
          f);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  simsync %s\n      %s\n", commands[i].synopsis,
                commands[i].summary);
    fputs("\nClasses: contacts, mail, browser, archive, apps, pim, "
          "settings, rights.\n"
          "Exit codes: 0 ok, 1 error, 2 usage, 3 refused (PIN, password, "
          "binding,\n"
          "pairing, mass delete), 4 peer unreachable or link lost, 5 "
          "integrity failure.\n",
          f);
}

static void
set_usage(struct cli *c, const struct command *cmd)
{
    snprintf(usage_buf, sizeof(usage_buf), "simsync %s\n    %s\n",
             cmd->synopsis, cmd->summary);
    c->usage = usage_buf;
}

/* The usage of every subcommand of `word`, for "simsync sim" alone. */
static void
set_group_usage(struct cli *c, const char *word)
{
    size_t off = 0;

    usage_buf[0] = '\0';
    for (size_t i = 0; i < NCOMMANDS && off < sizeof(usage_buf); i++) {
        int n;
        if (strcmp(commands[i].word, word) != 0)
            continue;
        n = snprintf(usage_buf + off, sizeof(usage_buf) - off, "%ssimsync %s\n",
                     off > 0 ? "       " : "", commands[i].synopsis);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    c->usage = usage_buf;
}

/* Find the command named by argv[0] (and argv[1]). Sets *words to how
 * many arguments named it. NULL when there is none; *group is then 1 if
 * argv[0] names a group of subcommands. */
static const struct command *
find_command(int argc, char **argv, int *words, int *group)
{
    const struct command *fallback = NULL;

    *group = 0;
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const struct command *cmd = &commands[i];
        if (strcmp(cmd->word, argv[0]) != 0)
            continue;
        if (cmd->sub == NULL) {
            fallback = cmd;
            continue;
        }
        *group = 1;
        if (argc > 1 && strcmp(cmd->sub, argv[1]) == 0) {
            *words = 2;
            return cmd;
        }
    }
    *words = 1;
    return fallback;
}

/* `simsync help [COMMAND [SUB]]`. */
static int
run_help(struct cli *c, int argc, char **argv)
{
    const struct command *cmd;
    int words, group;

    if (argc == 0) {
        print_full_usage(stdout);
        return CLI_EXIT_OK;
    }
    cmd = find_command(argc, argv, &words, &group);
    if (cmd != NULL && (words == argc || !group)) {
        set_usage(c, cmd);
    } else if (group) {
        set_group_usage(c, argv[0]);
    } else {
        c->name = "help";
        return out_usage(c, "unknown command '%s'", argv[0]);
    }
    printf("usage: %s", c->usage);
    return CLI_EXIT_OK;
}

/* Fill in c->home from $SIMSYNC_HOME or $HOME when --home was not given.
 * Leaves it NULL when neither is set. */
static void
default_home(struct cli *c)
{
    const char *env = getenv("SIMSYNC_HOME");
    const char *home = getenv("HOME");
    int n;

    if (env != NULL && env[0] != '\0') {
        c->home = env;
        return;
    }
    if (home == NULL || home[0] == '\0')
        return;
    n = snprintf(c->home_buf, sizeof(c->home_buf), "%s/.local/share/simsync",
                 home);
    if (n > 0 && (size_t)n < sizeof(c->home_buf))
        c->home = c->home_buf;
}

static int
run(struct cli *c, int argc, char **argv)
{
    const struct command *cmd;
    int i = 1, words, group, r;

    while (i < argc && argv[i][0] == '-' && argv[i][1] != '\0') {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_full_usage(stdout);
            return CLI_EXIT_OK;
        }
        r = cli_common_option(c, argc, argv, &i);
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (r == 0)
            return out_usage(c, "unknown option '%s'", argv[i]);
        i++;
    }
    if (i >= argc) {
        out_error(c, CLI_EXIT_USAGE, "no command given");
        print_full_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[i], "help") == 0)
        return run_help(c, argc - i - 1, argv + i + 1);
    cmd = find_command(argc - i, argv + i, &words, &group);
    if (cmd == NULL && group) {
        c->name = argv[i];
        set_group_usage(c, argv[i]);
        if (i + 1 >= argc)
            return out_usage(c, "which %s command?", argv[i]);
        if (strcmp(argv[i + 1], "--help") == 0 ||
            strcmp(argv[i + 1], "-h") == 0) {
            printf("usage: %s", c->usage);
            return CLI_EXIT_OK;
        }
        return out_usage(c, "unknown %s command '%s'", argv[i], argv[i + 1]);
    }
    if (cmd == NULL)
        return out_usage(c, "unknown command '%s'", argv[i]);
    set_usage(c, cmd);
    /* "sim create" names the command in messages; the words live in argv. */
    if (words == 2) {
        static char name[64];
        snprintf(name, sizeof(name), "%s %s", cmd->word, cmd->sub);
        c->name = name;
    } else {
        c->name = cmd->word;
    }
    if (c->home == NULL)
        default_home(c);
    return cmd->run(c, argc - i - words, argv + i + words);
}

int
main(int argc, char **argv)
{
    struct cli c;
    int code;

    memset(&c, 0, sizeof(c));
    /* A peer that goes away must give an error, not kill the program. */
    signal(SIGPIPE, SIG_IGN);
    /* Chunks and LMDB overflow pages are a few MiB each: served from mmap
     * or trimmed back to the kernel after every free, each new one costs a
     * page fault per 4 KiB (measured: half of the hub's CPU during a
     * backup). Keep freed memory for reuse instead. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    code = run(&c, argc, argv);
    if (fflush(stdout) != 0 && code == CLI_EXIT_OK) {
        fprintf(stderr, "simsync: cannot write the output: the standard "
                        "output failed. Check where it goes\n");
        code = CLI_EXIT_ERROR;
    }
    return code;
}
