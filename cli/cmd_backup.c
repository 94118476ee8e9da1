/* cmd_backup.c -- `backup now|list|show` and `restore`: generations on the
 * hub, made and read by this terminal. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int
parse_classes(struct cli *c, const char *list, uint32_t *mask)
{
    char bad[64];

    *mask = 0;
    if (list == NULL)
        return 0;
    if (simsync_classes_parse(list, mask, bad, sizeof(bad)) != SIMSYNC_OK)
        return out_usage(c,
                         "unknown class '%s' (known: contacts, mail, browser, "
                         "archive, apps, pim, settings, rights)",
                         bad);
    return 0;
}

int
cmd_backup_now(struct cli *c, int argc, char **argv)
{
    const char *classes = NULL, *next = NULL, *pos[1];
    const struct cli_opt opts[] = {
        {"--classes", &classes, NULL},
        {"--next", &next, NULL},
        {NULL, NULL, NULL},
    };
    struct simsync_backup_opts bo = {0, 0, 0};
    struct simsync_backup_report rep;
    struct simsync_node *n = NULL;
    enum cli_parse_result parsed;
    size_t npos;
    int rc, code;

    parsed = cli_parse(c, argc, argv, opts, pos, 0, 0, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    code = parse_classes(c, classes, &bo.classes);
    if (code != 0)
        return code;
    if (next != NULL && cli_parse_duration(next, &bo.next_in_ms) != 0)
        return out_usage(c, "--next takes a DURATION like 90s, 15m, 6h or 1d, "
                            "not '%s'",
                         next);
    code = out_node_open(c, &n);
    if (code != 0)
        return code;
    rc = simsync_backup_run(n, &bo, &rep);
    if (rc != SIMSYNC_OK)
        code = out_fail(c, n, rc, "the backup failed");
    else if (c->json)
        printf("{\"ok\":true,\"generation\":%" PRIu64 ",\"items\":%" PRIu64
               ",\"bytes\":%" PRIu64 ",\"chunks_sent\":%" PRIu64
               ",\"chunk_bytes_sent\":%" PRIu64 ",\"manifest_bytes\":%" PRIu64
               ",\"left_out\":%" PRIu64 ",\"chunks_streamed\":%" PRIu64
               ",\"seconds\":%.3f}\n",
               rep.gen, rep.items, rep.bytes, rep.chunks_sent,
               rep.chunk_bytes_sent, rep.manifest_bytes, rep.left_out,
               rep.chunks_streamed, rep.seconds);
    else {
        printf("Generation %03" PRIu64 ": %" PRIu64 " items, %" PRIu64
               " bytes; sent %" PRIu64 " new chunks (%" PRIu64
               " bytes) and a %" PRIu64 "-byte manifest in %.2f s.\n",
               rep.gen, rep.items, rep.bytes, rep.chunks_sent,
               rep.chunk_bytes_sent, rep.manifest_bytes, rep.seconds);
        if (rep.left_out > 0)
            printf("%" PRIu64 " items changed during the backup; the next "
                   "generation will have them.\n",
                   rep.left_out);
    }
    simsync_node_close(n);
    return code;
}

void
out_generations(struct cli *c, const struct simsync_generation *g,
                size_t count)
{
    char when[64], cls[256];

    if (c->json) {
        fputs("{\"generations\":[", stdout);
        for (size_t i = 0; i < count; i++) {
            simsync_classes_format(g[i].classes, cls, sizeof(cls));
            printf("%s{\"generation\":%" PRIu64 ",\"created_ms\":%" PRIu64
                   ",\"terminal\":",
                   i ? "," : "", g[i].gen, g[i].created_ms);
            out_json_str(stdout, g[i].terminal_id);
            fputs(",\"classes\":", stdout);
            out_json_str(stdout, cls);
            printf(",\"items\":%" PRIu64 ",\"bytes\":%" PRIu64
                   ",\"manifest_bytes\":%" PRIu64 ",\"forgotten\":%s}",
                   g[i].items, g[i].bytes, g[i].manifest_bytes,
                   g[i].forgotten ? "true" : "false");
        }
        fputs("]}\n", stdout);
        return;
    }
    if (count == 0) {
        printf("No generations yet: make one with 'simsync backup now'.\n");
        return;
    }
    printf("%-4s %-25s %-16s %-24s %8s %12s\n", "gen", "time", "terminal",
           "classes", "items", "bytes");
    for (size_t i = 0; i < count; i++) {
        out_format_time(g[i].created_ms, when, sizeof(when));
        simsync_classes_format(g[i].classes, cls, sizeof(cls));
        printf("%03" PRIu64 "  %-25s %-16s %-24s %8" PRIu64 " %12" PRIu64 "%s\n",
               g[i].gen, when, g[i].terminal_id, cls, g[i].items, g[i].bytes,
               g[i].forgotten ? "  (forgotten)" : "");
    }
}

int
cmd_backup_list(struct cli *c, int argc, char **argv)
{
    struct simsync_generation *g = NULL;
    struct simsync_node *n = NULL;
    const char *pos[1];
    size_t npos, count = 0;
    int rc, code;

    code = cli_parse_open(c, argc, argv, pos, 0, 0, &npos, &n);
    if (code != 0)
        return code;
    rc = simsync_backup_list(n, &g, &count);
    if (rc != SIMSYNC_OK)
        code = out_fail(c, n, rc, "cannot list the generations");
    else
        out_generations(c, g, count);
    free(g);
    simsync_node_close(n);
    return code;
}

struct lines {
    struct cli *c;
    int first;
};

static void
print_line(void *arg, const char *action, const char *cls, const char *name,
           uint64_t size)
{
    struct lines *l = arg;

    if (l->c->json) {
        fputs(l->first ? "{\"action\":" : ",{\"action\":", stdout);
        out_json_str(stdout, action);
        fputs(",\"class\":", stdout);
        out_json_str(stdout, cls);
        fputs(",\"name\":", stdout);
        out_json_str(stdout, name);
        printf(",\"size\":%" PRIu64 "}", size);
    } else if (strcmp(action, "item") == 0) {
        printf("%s/%s  %" PRIu64 " bytes\n", cls, name, size);
    } else {
        printf("%-10s %s/%s\n", action, cls, name);
    }
    l->first = 0;
}

static int
parse_gen(struct cli *c, const char *s, uint64_t *gen)
{
    unsigned long v;

    if (cli_parse_ulong(s, 1, 999999999ul, &v) != 0)
        return out_usage(c,
                         "GEN must be a generation number like 3 or 003, "
                         "not '%s'",
                         s);
    *gen = v;
    return 0;
}

int
cmd_backup_show(struct cli *c, int argc, char **argv)
{
    struct simsync_node *n = NULL;
    struct lines l = {c, 1};
    const char *pos[1];
    size_t npos;
    uint64_t gen = 0;
    int rc, code;

    code = cli_parse_open(c, argc, argv, pos, 1, 1, &npos, &n);
    if (code != 0)
        return code;
    code = parse_gen(c, pos[0], &gen);
    if (code == 0) {
        if (c->json)
            printf("{\"generation\":%" PRIu64 ",\"items\":[", gen);
        rc = simsync_backup_show(n, gen, print_line, &l);
        if (c->json)
            fputs("]}\n", stdout);
        if (rc != SIMSYNC_OK)
            code = out_fail(c, n, rc, "cannot show the generation");
    }
    simsync_node_close(n);
    return code;
}

static enum simsync_on_conflict
ask_tty(void *arg, const char *cls, const char *name)
{
    char line[32];

    (void)arg;
    for (;;) {
        fprintf(stderr,
                "%s/%s exists here and differs. [o]verwrite, keep [b]oth, "
                "[s]kip? ",
                cls, name);
        if (fgets(line, sizeof(line), stdin) == NULL)
            return SIMSYNC_ON_CONFLICT_SKIP;
        if (line[0] == 'o')
            return SIMSYNC_ON_CONFLICT_OVERWRITE;
        if (line[0] == 'b')
            return SIMSYNC_ON_CONFLICT_KEEP_BOTH;
        if (line[0] == 's')
            return SIMSYNC_ON_CONFLICT_SKIP;
    }
}

#define MAX_ITEMS 256

int
cmd_restore(struct cli *c, int argc, char **argv)
{
    const char *classes = NULL, *conflict = NULL, *to = NULL, *pos[1];
    const char *items[MAX_ITEMS];
    char *rest[64];
    int dry = 0, nrest = 0, delete_after = 0;
    const struct cli_opt opts[] = {
        {"--classes", &classes, NULL},
        {"--on-conflict", &conflict, NULL},
        {"--dry-run", NULL, &dry},
        {"--to-terminal", &to, NULL},
        {"--delete-after", NULL, &delete_after},
        {NULL, NULL, NULL},
    };
    struct simsync_restore_opts o;
    struct simsync_restore_report rep;
    struct simsync_node *n = NULL;
    struct lines l = {c, 1};
    enum cli_parse_result parsed;
    size_t npos, nitems = 0;
    int rc, code;

    /* --item may repeat: take those out before the common parser. */
    for (int i = 0; i < argc; i++) {
        const char *v = NULL;
        if (strcmp(argv[i], "--item") == 0) {
            if (i + 1 >= argc)
                return out_usage(c, "--item needs CLASS/NAME");
            v = argv[++i];
        } else if (strncmp(argv[i], "--item=", 7) == 0) {
            v = argv[i] + 7;
        } else if (nrest < 64) {
            rest[nrest++] = argv[i];
            continue;
        } else {
            return out_usage(c, "too many arguments");
        }
        if (nitems == MAX_ITEMS)
            return out_usage(c, "at most %d --item options", MAX_ITEMS);
        if (strchr(v, '/') == NULL)
            return out_usage(c, "--item takes CLASS/NAME, like contacts/a.vcf");
        items[nitems++] = v;
    }
    parsed = cli_parse(c, nrest, rest, opts, pos, 1, 1, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    memset(&o, 0, sizeof(o));
    code = parse_gen(c, pos[0], &o.gen);
    if (code == 0)
        code = parse_classes(c, classes, &o.classes);
    if (code != 0)
        return code;
    if (conflict == NULL && to != NULL)
        o.on_conflict = SIMSYNC_ON_CONFLICT_KEEP_BOTH; /* nobody to ask */
    else if (conflict == NULL || strcmp(conflict, "ask") == 0)
        o.on_conflict = SIMSYNC_ON_CONFLICT_ASK;
    else if (strcmp(conflict, "overwrite") == 0)
        o.on_conflict = SIMSYNC_ON_CONFLICT_OVERWRITE;
    else if (strcmp(conflict, "keep-both") == 0)
        o.on_conflict = SIMSYNC_ON_CONFLICT_KEEP_BOTH;
    else if (strcmp(conflict, "skip") == 0)
        o.on_conflict = SIMSYNC_ON_CONFLICT_SKIP;
    else
        return out_usage(c, "--on-conflict takes ask, overwrite, keep-both "
                            "or skip");
    if (o.on_conflict == SIMSYNC_ON_CONFLICT_ASK && isatty(0) && !c->json)
        o.ask = ask_tty;
    o.items = items;
    o.nitems = nitems;
    o.dry_run = dry;
    o.to_terminal = to;
    o.delete_after = delete_after;
    code = out_node_open(c, &n);
    if (code != 0)
        return code;
    if (to != NULL && strcmp(to, simsync_node_terminal_id(n)) != 0) {
        rc = simsync_restore(n, &o, print_line, &l, &rep);
        if (rc != SIMSYNC_OK)
            code = out_fail(c, n, rc, "cannot leave the restore job");
        else if (c->json) {
            printf("{\"generation\":%" PRIu64 ",\"job\":%" PRIu64
                   ",\"terminal\":",
                   o.gen, rep.job);
            out_json_str(stdout, to);
            fputs("}\n", stdout);
        } else
            printf("Restore job %" PRIu64 " left for terminal %s: it "
                   "restores generation %03" PRIu64 " at its next contact "
                   "with the hub.\n",
                   rep.job, to, o.gen);
        simsync_node_close(n);
        return code;
    }
    if (c->json)
        printf("{\"generation\":%" PRIu64 ",\"dry_run\":%s,\"items\":[", o.gen,
               dry ? "true" : "false");
    rc = simsync_restore(n, &o, print_line, &l, &rep);
    if (c->json)
        printf("],\"restored\":%" PRIu64 ",\"overwritten\":%" PRIu64
               ",\"kept_both\":%" PRIu64 ",\"skipped\":%" PRIu64
               ",\"unchanged\":%" PRIu64 ",\"refused\":%" PRIu64
               ",\"chunks_fetched\":%" PRIu64 ",\"forgotten\":%s}\n",
               rep.restored, rep.overwritten, rep.kept_both, rep.skipped,
               rep.unchanged, rep.refused, rep.chunks_fetched,
               rep.forgotten ? "true" : "false");
    else if (rc == SIMSYNC_OK || rc == SIMSYNC_EREFUSED)
        printf("%s%" PRIu64 " restored, %" PRIu64 " overwritten, %" PRIu64
               " kept both, %" PRIu64 " skipped, %" PRIu64
               " unchanged, %" PRIu64 " refused.\n",
               dry ? "Dry run, nothing written: " : "", rep.restored,
               rep.overwritten, rep.kept_both, rep.skipped, rep.unchanged,
               rep.refused);
    if (!c->json && rep.forgotten)
        printf("Generation %03" PRIu64 " was forgotten.\n", o.gen);
    if (rc != SIMSYNC_OK)
        code = out_fail(c, n, rc, "the restore failed");
    simsync_node_close(n);
    return code;
}

int
cmd_backup_history(struct cli *c, int argc, char **argv)
{
    struct simsync_history_event *ev = NULL;
    struct simsync_node *n = NULL;
    const char *pos[1];
    size_t npos, count = 0;
    char when[64];
    int rc, code;

    code = cli_parse_open(c, argc, argv, pos, 0, 0, &npos, &n);
    if (code != 0)
        return code;
    rc = simsync_backup_history(n, &ev, &count);
    if (rc != SIMSYNC_OK) {
        code = out_fail(c, n, rc, "cannot read the backup history");
    } else if (c->json) {
        fputs("{\"events\":[", stdout);
        for (size_t i = 0; i < count; i++) {
            printf("%s{\"time_ms\":%" PRIu64 ",\"event\":", i ? "," : "",
                   ev[i].time_ms);
            out_json_str(stdout, ev[i].event);
            fputs(",\"terminal\":", stdout);
            out_json_str(stdout, ev[i].terminal_id);
            printf(",\"generation\":%" PRIu64 ",\"attempt\":%" PRIu32
                   ",\"detail\":",
                   ev[i].gen, ev[i].attempt);
            out_json_str(stdout, ev[i].detail);
            fputc('}', stdout);
        }
        fputs("]}\n", stdout);
    } else if (count == 0) {
        printf("Nothing has happened yet.\n");
    } else {
        for (size_t i = 0; i < count; i++) {
            out_format_time(ev[i].time_ms, when, sizeof(when));
            printf("%-25s %-16s %-10s %s\n", when,
                   ev[i].terminal_id[0] ? ev[i].terminal_id : "(any)",
                   ev[i].event, ev[i].detail);
        }
    }
    free(ev);
    simsync_node_close(n);
    return code;
}

struct forget_lines {
    struct cli *c;
    int first;
};

static void
print_gen(void *arg, const char *action, const struct simsync_generation *g)
{
    struct forget_lines *l = arg;
    char when[64];

    out_format_time(g->created_ms, when, sizeof(when));
    if (l->c->json) {
        fputs(l->first ? "{\"action\":" : ",{\"action\":", stdout);
        out_json_str(stdout, action);
        printf(",\"generation\":%" PRIu64 ",\"created_ms\":%" PRIu64 "}",
               g->gen, g->created_ms);
    } else {
        printf("%-7s %03" PRIu64 "  %s\n", action, g->gen, when);
    }
    l->first = 0;
}

#define MAX_FORGET 1024

int
cmd_backup_forget(struct cli *c, int argc, char **argv)
{
    const char *last = NULL, *daily = NULL, *weekly = NULL, *monthly = NULL;
    const char *pos[MAX_FORGET];
    uint64_t gens[MAX_FORGET];
    int dry = 0;
    const struct cli_opt opts[] = {
        {"--keep-last", &last, NULL},
        {"--keep-daily", &daily, NULL},
        {"--keep-weekly", &weekly, NULL},
        {"--keep-monthly", &monthly, NULL},
        {"--dry-run", NULL, &dry},
        {NULL, NULL, NULL},
    };
    const char **vals[4] = {&last, &daily, &weekly, &monthly};
    const char *names[4] = {"--keep-last", "--keep-daily", "--keep-weekly",
                            "--keep-monthly"};
    uint32_t keep[4] = {0, 0, 0, 0};
    struct simsync_forget_opts o;
    struct simsync_forget_report rep;
    struct simsync_node *n = NULL;
    struct forget_lines l = {c, 1};
    enum cli_parse_result parsed;
    size_t ngens = 0;
    int rc, code;

    parsed = cli_parse(c, argc, argv, opts, pos, 0, MAX_FORGET, &ngens);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    for (int i = 0; i < 4; i++) {
        unsigned long v;
        if (*vals[i] == NULL)
            continue;
        if (cli_parse_ulong(*vals[i], 1, 100000, &v) != 0)
            return out_usage(c, "%s takes a number from 1 to 100000, not '%s'",
                             names[i], *vals[i]);
        keep[i] = (uint32_t)v;
    }
    for (size_t i = 0; i < ngens; i++) {
        code = parse_gen(c, pos[i], &gens[i]);
        if (code != 0)
            return code;
    }
    if (ngens > 0 && (keep[0] || keep[1] || keep[2] || keep[3]))
        return out_usage(c, "name generations or give --keep options, not "
                            "both");
    if (ngens == 0 && !(keep[0] || keep[1] || keep[2] || keep[3]))
        return out_usage(c, "say what to keep (--keep-last, --keep-daily, "
                            "--keep-weekly, --keep-monthly) or which "
                            "generations to forget");
    memset(&o, 0, sizeof(o));
    o.keep_last = keep[0];
    o.keep_daily = keep[1];
    o.keep_weekly = keep[2];
    o.keep_monthly = keep[3];
    o.gens = gens;
    o.ngens = ngens;
    o.dry_run = dry;
    code = out_node_open(c, &n);
    if (code != 0)
        return code;
    if (c->json)
        printf("{\"dry_run\":%s,\"generations\":[", dry ? "true" : "false");
    rc = simsync_backup_forget(n, &o, print_gen, &l, &rep);
    if (c->json)
        printf("],\"kept\":%" PRIu64 ",\"forgotten\":%" PRIu64
               ",\"chunks_freed\":%" PRIu64 ",\"bytes_freed\":%" PRIu64 "}\n",
               rep.kept, rep.forgotten, rep.chunks_freed, rep.bytes_freed);
    else if (rc == SIMSYNC_OK)
        printf("%s%" PRIu64 " kept, %" PRIu64 " forgotten; the hub reclaimed "
               "%" PRIu64 " chunks (%" PRIu64 " bytes).\n",
               dry ? "Dry run, nothing forgotten: " : "", rep.kept,
               rep.forgotten, rep.chunks_freed, rep.bytes_freed);
    if (rc != SIMSYNC_OK)
        code = out_fail(c, n, rc, "cannot forget generations");
    simsync_node_close(n);
    return code;
}

int
cmd_notices(struct cli *c, int argc, char **argv)
{
    struct simsync_notice *v = NULL;
    struct simsync_node *n = NULL;
    const char *pos[1];
    int clear = 0;
    const struct cli_opt opts[] = {
        {"--clear", NULL, &clear},
        {NULL, NULL, NULL},
    };
    enum cli_parse_result parsed;
    size_t npos, count = 0;
    char when[64];
    int rc, code;

    parsed = cli_parse(c, argc, argv, opts, pos, 0, 0, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    code = out_node_open(c, &n);
    if (code != 0)
        return code;
    rc = simsync_notices(n, &v, &count);
    if (rc == SIMSYNC_OK && clear)
        rc = simsync_notices_clear(n);
    if (rc != SIMSYNC_OK) {
        code = out_fail(c, n, rc, "cannot read the notices");
    } else if (c->json) {
        fputs("{\"notices\":[", stdout);
        for (size_t i = 0; i < count; i++) {
            printf("%s{\"time_ms\":%" PRIu64 ",\"text\":", i ? "," : "",
                   v[i].time_ms);
            out_json_str(stdout, v[i].text);
            fputc('}', stdout);
        }
        printf("],\"cleared\":%s}\n", clear ? "true" : "false");
    } else if (count == 0) {
        printf("No notices.\n");
    } else {
        for (size_t i = 0; i < count; i++) {
            out_format_time(v[i].time_ms, when, sizeof(when));
            printf("%s  %s\n", when, v[i].text);
        }
        if (clear)
            printf("(cleared)\n");
    }
    free(v);
    simsync_node_close(n);
    return code;
}
