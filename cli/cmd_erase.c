/* cmd_erase.c -- `simsync erase`: collective erase before a terminal
 * changes hands (seed 003 FIG 20), the question a forced erase asks, and
 * finishing an erase that a crash cut short before any other command
 * runs. The work is simsync_erase() in the library. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* What the confirmation callback needs. */
struct confirm {
    struct cli *c;
    int yes; /* --yes: do not ask */
};

static const char *
plural(uint64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* One paragraph on what a forced erase loses, to f. */
static void
print_losses(FILE *f, const struct simsync_erase_report *r)
{
    if (r->offline)
        fprintf(f, "The hub cannot be used: %s.\n", r->offline_why);
    fprintf(f,
            "Erasing %s loses %" PRIu64 " local %s (%" PRIu64
            " bytes) the hub has not acknowledged",
            r->offline ? "without it" : "now", r->lost_items,
            plural(r->lost_items, "change", "changes"), r->lost_bytes);
    if (r->unsynced_files > 0)
        fprintf(f,
                ", and %" PRIu64 " %s (%" PRIu64
                " bytes) in classes this terminal does not sync",
                r->unsynced_files, plural(r->unsynced_files, "file", "files"),
                r->unsynced_bytes);
    fputs(".\n", f);
}

/* The confirmation of a forced erase: the losses on stderr, then "yes"
 * read from stdin (anything else, or nothing, says no). */
static int
confirm_erase(void *arg, const struct simsync_erase_report *r)
{
    struct confirm *cf = arg;
    char line[64];
    size_t len;

    print_losses(stderr, r);
    if (cf->yes) {
        fputs("Erasing anyway (--yes).\n", stderr);
        return 1;
    }
    fputs("Type 'yes' to erase this terminal anyway: ", stderr);
    fflush(stderr);
    if (fgets(line, sizeof(line), stdin) == NULL) {
        fputc('\n', stderr);
        return 0;
    }
    len = strcspn(line, "\r\n");
    line[len] = '\0';
    return strcmp(line, "yes") == 0;
}

static void
print_json(const struct simsync_erase_report *r)
{
    printf("{\"ok\":true,\"resumed\":%s,\"offline\":%s,\"offline_why\":",
           r->resumed ? "true" : "false", r->offline ? "true" : "false");
    out_json_str(stdout, r->offline_why);
    printf(",\"sync_rounds\":%" PRIu32 ",\"sent_items\":%" PRIu64
           ",\"sent_bytes\":%" PRIu64 ",\"recv_items\":%" PRIu64
           ",\"lost_items\":%" PRIu64 ",\"lost_bytes\":%" PRIu64
           ",\"unsynced_files\":%" PRIu64 ",\"unsynced_bytes\":%" PRIu64
           ",\"removed_files\":%" PRIu64 ",\"removed_dirs\":%" PRIu64
           ",\"removed_bytes\":%" PRIu64 ",\"unregistered\":%s"
           ",\"jobs_dropped\":%" PRIu32 "}\n",
           r->sync_rounds, r->sent_items, r->sent_bytes, r->recv_items,
           r->lost_items, r->lost_bytes, r->unsynced_files, r->unsynced_bytes,
           r->removed_files, r->removed_dirs, r->removed_bytes,
           r->unregistered ? "true" : "false", r->jobs_dropped);
}

static void
print_text(const struct simsync_erase_report *r)
{
    if (r->resumed) {
        printf("Finished an erase that had been interrupted.\n");
    } else if (r->offline || r->lost_items > 0 || r->unsynced_files > 0) {
        printf("Erased this terminal without the hub's acknowledgement of "
               "everything: lost %" PRIu64 " local %s (%" PRIu64 " bytes)",
               r->lost_items, plural(r->lost_items, "change", "changes"),
               r->lost_bytes);
        if (r->unsynced_files > 0)
            printf(" and %" PRIu64 " %s (%" PRIu64 " bytes) in classes it "
                   "did not sync",
                   r->unsynced_files,
                   plural(r->unsynced_files, "file", "files"),
                   r->unsynced_bytes);
        printf(".\n");
    } else {
        printf("Erased this terminal. The hub acknowledged every change made "
               "here (%" PRIu32 " %s: sent %" PRIu64 " %s, %" PRIu64
               " bytes).\n",
               r->sync_rounds, plural(r->sync_rounds, "sync", "syncs"),
               r->sent_items, plural(r->sent_items, "item", "items"),
               r->sent_bytes);
    }
    if (r->unregistered)
        printf("The hub no longer lists this terminal (%" PRIu32
               " waiting restore %s dropped).\n",
               r->jobs_dropped, plural(r->jobs_dropped, "job", "jobs"));
    else if (!r->resumed)
        printf("The hub still lists this terminal: it was erased without "
               "the hub.\n");
    printf("Removed %" PRIu64 " %s (%" PRIu64 " bytes) and %" PRIu64
           " %s: class folders, store, keys and binding.\n"
           "To use the terminal again: 'simsync init', 'simsync sim insert', "
           "'simsync register' (with the recovery secret), then 'simsync "
           "sync' or 'simsync restore GEN'.\n",
           r->removed_files, plural(r->removed_files, "file", "files"),
           r->removed_bytes, r->removed_dirs,
           plural(r->removed_dirs, "folder", "folders"));
}

int
cmd_erase_resume(struct cli *c)
{
    struct simsync_erase_report rep;
    char err[1024];
    int rc;

    if (c->home == NULL || !simsync_erase_pending(c->home))
        return -1;
    rc = simsync_erase_resume(c->home, &rep, err, sizeof(err));
    if (rc != SIMSYNC_OK)
        return out_error(c, simsync_exit_code(rc),
                         "an erase of the terminal in %s was interrupted and "
                         "cannot be finished: %s. Nothing else runs until "
                         "it is: fix that and run 'simsync erase' again",
                         c->home, err[0] ? err : simsync_strerror(rc));
    return out_error(c, simsync_exit_code(SIMSYNC_EREFUSED),
                     "%s refused: an erase of the terminal in %s had been "
                     "interrupted; it is finished now (class folders, store "
                     "and keys are gone). Set the terminal up again with "
                     "'simsync --home %s init --role terminal'",
                     c->name != NULL ? c->name : "the command", c->home,
                     c->home);
}

int
cmd_erase(struct cli *c, int argc, char **argv)
{
    int force = 0, yes = 0;
    const struct cli_opt opts[] = {
        {"--force", NULL, &force},
        {"--yes", NULL, &yes},
        {NULL, NULL, NULL},
    };
    struct confirm cf = {c, 0};
    struct simsync_erase_opts o;
    struct simsync_erase_report rep;
    struct simsync_node *n = NULL;
    enum cli_parse_result parsed;
    const char *pos[1];
    size_t npos;
    int rc, code;

    parsed = cli_parse(c, argc, argv, opts, pos, 0, 0, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    /* An erase cut short is finished here and counts as this erase. */
    if (c->home != NULL && simsync_erase_pending(c->home)) {
        char err[1024];
        rc = simsync_erase_resume(c->home, &rep, err, sizeof(err));
        if (rc != SIMSYNC_OK)
            return out_error(c, simsync_exit_code(rc),
                             "cannot finish the interrupted erase of %s: %s. "
                             "Fix that and run 'simsync erase' again",
                             c->home, err[0] ? err : simsync_strerror(rc));
        if (c->json)
            print_json(&rep);
        else
            print_text(&rep);
        return CLI_EXIT_OK;
    }
    code = out_node_open(c, &n);
    if (code != 0)
        return code;
    memset(&o, 0, sizeof(o));
    cf.yes = yes;
    o.force = force;
    o.confirm = force ? confirm_erase : NULL;
    o.confirm_arg = &cf;
    rc = simsync_erase(n, &o, &rep);
    if (rc != SIMSYNC_OK)
        code = out_fail(c, n, rc, "erase failed");
    else if (c->json)
        print_json(&rep);
    else
        print_text(&rep);
    simsync_node_close(n);
    return code;
}
