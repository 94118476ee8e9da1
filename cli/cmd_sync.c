/* cmd_sync.c -- commands about the data: `sync` (with the hub or a
 * paired node), `status`, `conflicts` and `conflicts resolve`, each in text or (with --json) as one JSON
 * object on stdout. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define CLASS_MAX 16 /* more than the 8 classes there are */

static const char *
plural(uint64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

static void
print_sync_json(const struct simsync_sync_report *r, int complete)
{
    printf("{\"ok\":true,\"complete\":%s,\"scanned\":%" PRIu64 ",\"added\":%" PRIu64
           ",\"edited\":%" PRIu64 ",\"deleted\":%" PRIu64
           ",\"renamed\":%" PRIu64 ",\"purged\":%" PRIu64
           ",\"sent_items\":%" PRIu64 ",\"sent_bytes\":%" PRIu64
           ",\"recv_items\":%" PRIu64 ",\"recv_bytes\":%" PRIu64
           ",\"chunks_sent\":%" PRIu64 ",\"chunks_recv\":%" PRIu64
           ",\"applied\":%" PRIu64 ",\"conflicts\":%" PRIu64
           ",\"wire_sent\":%" PRIu64 ",\"wire_recv\":%" PRIu64
           ",\"handshake_bytes\":%" PRIu64 ",\"seconds\":%.3f"
           ",\"packed_batches\":%" PRIu64 "}\n",
           complete ? "true" : "false", r->scanned, r->added, r->edited,
           r->deleted, r->renamed, r->purged, r->sent_items, r->sent_bytes,
           r->recv_items, r->recv_bytes, r->chunks_sent, r->chunks_recv,
           r->applied, r->conflicts, r->wire_sent, r->wire_recv,
           r->handshake_bytes, r->seconds, r->packed_batches);
}

static void
print_sync_text(const struct simsync_sync_report *r)
{
    printf(
        "Synced in %.2f s: scanned %" PRIu64 " %s (%" PRIu64 " added, %" PRIu64
        " edited, %" PRIu64 " deleted, %" PRIu64 " renamed); sent %" PRIu64
        " %s (%" PRIu64 " bytes), received %" PRIu64 " %s (%" PRIu64
        " bytes), %" PRIu64 " applied; %" PRIu64 " %s. On the wire: %" PRIu64
        " bytes sent, %" PRIu64 " received, %" PRIu64 " for the handshake.\n",
        r->seconds, r->scanned, plural(r->scanned, "file", "files"), r->added,
        r->edited, r->deleted, r->renamed, r->sent_items,
        plural(r->sent_items, "item", "items"), r->sent_bytes, r->recv_items,
        plural(r->recv_items, "item", "items"), r->recv_bytes, r->applied,
        r->conflicts, plural(r->conflicts, "conflict", "conflicts"),
        r->wire_sent, r->wire_recv, r->handshake_bytes);
    if (r->conflicts > 0)
        printf("See them with 'simsync conflicts'.\n");
}

int
cmd_sync(struct cli *c, int argc, char **argv)
{
    const char *hub = NULL, *peer = NULL, *with = NULL, *max_bytes = NULL;
    const char *max_time = NULL, *pos[1];
    int allow_delete = 0, up = 0, down = 0;
    const struct cli_opt opts[] = {
        {"--hub", &hub, NULL},
        {"--peer", &peer, NULL},
        {"--with", &with, NULL},
        {"--allow-delete", NULL, &allow_delete},
        {"--upload-only", NULL, &up},
        {"--download-only", NULL, &down},
        {"--max-bytes", &max_bytes, NULL},
        {"--max-time", &max_time, NULL},
        {NULL, NULL, NULL},
    };
    struct simsync_sync_opts o;
    struct simsync_sync_report rep;
    struct simsync_node *n = NULL;
    enum cli_parse_result parsed;
    size_t npos;
    int rc, code;

    parsed = cli_parse(c, argc, argv, opts, pos, 0, 0, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    memset(&o, 0, sizeof(o));
    if (hub != NULL && cli_check_addr(c, "--hub", hub, 1) != 0)
        return CLI_EXIT_USAGE;
    if (peer != NULL && cli_check_link(c, "--peer", peer, 0) != 0)
        return CLI_EXIT_USAGE;
    if (hub != NULL && (peer != NULL || with != NULL))
        return out_usage(c, "sync with the hub (--hub) or with a paired "
                            "node (--peer, --with), not both");
    if ((peer != NULL || with != NULL) &&
        (up || down || max_bytes != NULL || max_time != NULL))
        return out_usage(c, "one-way and limited syncs are with the hub only, "
                            "not with a paired node");
    if (peer != NULL || with != NULL) {
        /* A paired node: nothing of the hub's (restore jobs) comes. */
        code = out_node_open(c, &n);
        if (code != 0)
            return code;
        rc = simsync_sync_peer(n, peer, with, allow_delete, &rep);
        if (rc != SIMSYNC_OK)
            code = out_fail(c, n, rc, "sync failed");
        else if (c->json)
            print_sync_json(&rep, 1);
        else
            print_sync_text(&rep);
        simsync_node_close(n);
        return code;
    }
    if (up && down)
        return out_usage(c, "--upload-only and --download-only exclude each "
                            "other (without either, the sync goes both "
                            "ways)");
    if (max_bytes != NULL && cli_parse_size(max_bytes, &o.max_bytes) != 0)
        return out_usage(c, "--max-bytes: '%s' is not a size (like 5000000, "
                            "512k, 5M or 1G)",
                         max_bytes);
    if (max_time != NULL && cli_parse_duration(max_time, &o.max_ms) != 0)
        return out_usage(c, "--max-time: '%s' is not a duration (like 90s, "
                            "15m or 6h)",
                         max_time);
    o.hub_addr = hub;
    o.allow_mass_delete = allow_delete;
    o.dir = up ? 1 : down ? 2 : 0;
    code = out_node_open(c, &n);
    if (code != 0)
        return code;
    rc = simsync_sync_limited(n, &o, &rep);
    if (rc == SIMSYNC_EAGAIN) {
        /* Stopped at a limit, at a point both sides committed. */
        if (c->json)
            print_sync_json(&rep, 0);
        else {
            print_sync_text(&rep);
            printf("Stopped at the %s limit; the next sync continues from "
                   "there.\n",
                   o.max_bytes > 0 && o.max_ms > 0 ? "size or time"
                   : o.max_bytes > 0               ? "size"
                                                   : "time");
        }
        simsync_node_close(n);
        return CLI_EXIT_OK;
    }
    if (rc != SIMSYNC_OK)
        code = out_fail(c, n, rc, "sync failed");
    else if (c->json)
        print_sync_json(&rep, 1);
    else
        print_sync_text(&rep);
    if (rc == SIMSYNC_OK && o.dir != 1) {
        /* Restore jobs other terminals left here arrived with the sync. */
        size_t ran = 0;
        rc = simsync_jobs_run(n, NULL, NULL, &ran);
        if (rc != SIMSYNC_OK)
            code = out_fail(c, n, rc, "a restore job failed");
        else if (ran > 0 && !c->json)
            printf("Ran %zu restore job%s left by another terminal; see "
                   "'simsync notices'.\n",
                   ran, ran == 1 ? "" : "s");
    }
    simsync_node_close(n);
    return code;
}

static void
print_health_json(const struct simsync_health *h)
{
    printf(",\"health\":{\"sim_ok\":%s,\"pending_up\":%" PRIu64
           ",\"pending_down\":%" PRIu64 ",\"conflicts\":%" PRIu64
           ",\"unsynced_files\":%" PRIu64 ",\"guarded\":%" PRIu64
           ",\"backup_gen\":%" PRIu64
           ",\"backup_ms\":%" PRIu64 ",\"daemon_running\":%s"
           ",\"daemon_result\":",
           h->sim_ok ? "true" : "false", h->pending_up, h->pending_down,
           h->conflicts, h->unsynced_files, h->guarded, h->backup_gen,
           h->backup_ms,
           h->daemon_running ? "true" : "false");
    out_json_str(stdout, h->daemon_result);
    printf(",\"daemon_sync_ms\":%" PRIu64 ",\"daemon_waits\":",
           h->daemon_sync_ms);
    out_json_str(stdout, h->daemon_waits);
    fputs(",\"blocking\":[", stdout);
    for (size_t i = 0; i < h->nreasons; i++) {
        if (i > 0)
            fputc(',', stdout);
        out_json_str(stdout, h->reasons[i]);
    }
    fputs("]}", stdout);
}

static void
print_health_text(const struct simsync_health *h)
{
    char when[64];

    if (h->backup_gen > 0) {
        out_format_time(h->backup_ms, when, sizeof(when));
        printf("Newest backup: generation %03" PRIu64 ", %s\n", h->backup_gen,
               when);
    } else {
        printf("Newest backup: none known here\n");
    }
    if (h->daemon_running) {
        if (h->daemon_result[0] != '\0') {
            out_format_time(h->daemon_sync_ms, when, sizeof(when));
            printf("Daemon: running; its last sync ended %s (%s)\n",
                   h->daemon_result, when);
        } else {
            printf("Daemon: running; no sync of its own yet\n");
        }
    } else {
        printf("Daemon: not running\n");
    }
    if (h->nreasons == 0) {
        printf("In sync: the hub has every change made here, and a backup "
               "is recent.\n");
        return;
    }
    printf("Not complete:\n");
    for (size_t i = 0; i < h->nreasons; i++)
        printf("  - %s\n", h->reasons[i]);
}

int
cmd_status(struct cli *c, int argc, char **argv)
{
    struct simsync_class_status cls[CLASS_MAX];
    struct simsync_health h;
    struct simsync_node *n = NULL;
    const char *pos[1];
    uint64_t last = 0;
    size_t npos, count = 0;
    char when[64];
    int rc, code;

    code = cli_parse_open(c, argc, argv, pos, 0, 0, &npos, &n);
    if (code != 0)
        return code;
    rc = simsync_health(n, 1, out_now_ms(), &h);
    if (rc == SIMSYNC_OK)
        rc = simsync_status(n, cls, CLASS_MAX, &count, &last);
    if (rc != SIMSYNC_OK) {
        code = out_fail(c, n, rc, "cannot read the status");
    } else if (c->json) {
        printf("{\"last_sync_ms\":%" PRIu64 ",\"classes\":[", last);
        for (size_t i = 0; i < count; i++) {
            fputs(i > 0 ? ",{\"name\":" : "{\"name\":", stdout);
            out_json_str(stdout, cls[i].name);
            printf(",\"items\":%" PRIu64 ",\"pending_up\":%" PRIu64
                   ",\"pending_down\":%" PRIu64 ",\"conflicts\":%" PRIu64
                   ",\"tombstones\":%" PRIu64 ",\"selected\":%s}",
                   cls[i].items, cls[i].pending_up, cls[i].pending_down,
                   cls[i].conflicts, cls[i].tombstones,
                   cls[i].selected ? "true" : "false");
        }
        fputs("],\"peers\":[{\"peer\":\"hub\"", stdout);
        printf(",\"last_sync_ms\":%" PRIu64 ",\"pending_up\":%" PRIu64
               ",\"pending_down\":%" PRIu64 "}]",
               last, h.pending_up, h.pending_down);
        print_health_json(&h);
        fputs("}\n", stdout);
    } else {
        printf("%-10s %10s %10s %12s %10s  %s\n", "class", "items",
               "pending-up", "pending-down", "conflicts", "synced");
        for (size_t i = 0; i < count; i++)
            printf("%-10s %10" PRIu64 " %10" PRIu64 " %12" PRIu64 " %10" PRIu64
                   "  %s\n",
                   cls[i].name != NULL ? cls[i].name : "?", cls[i].items,
                   cls[i].pending_up, cls[i].pending_down, cls[i].conflicts,
                   cls[i].selected ? "yes" : "no");
        out_format_time(last, when, sizeof(when));
        printf("Last sync with the hub: %s\n", when);
        print_health_text(&h);
    }
    simsync_node_close(n);
    return code;
}

/* Fetch the whole conflict inbox into *out (caller frees). */
static int
load_conflicts(struct simsync_node *n, struct simsync_conflict **out,
               size_t *count)
{
    size_t cap = 64;
    struct simsync_conflict *v = NULL;
    int rc;

    *out = NULL;
    *count = 0;
    for (int attempt = 0; attempt < 4; attempt++) {
        struct simsync_conflict *nv = realloc(v, cap * sizeof(*v));
        if (nv == NULL) {
            free(v);
            return SIMSYNC_ENOMEM;
        }
        v = nv;
        rc = simsync_conflicts(n, v, cap, count);
        if (rc != SIMSYNC_OK) {
            free(v);
            return rc;
        }
        if (*count <= cap) {
            *out = v;
            return SIMSYNC_OK;
        }
        cap = *count + 16; /* the inbox grew or was larger: ask again */
    }
    *count = cap; /* still growing; show what was read */
    *out = v;
    return SIMSYNC_OK;
}

int
cmd_conflicts(struct cli *c, int argc, char **argv)
{
    struct simsync_conflict *list = NULL;
    struct simsync_node *n = NULL;
    const char *pos[1];
    size_t npos, count = 0;
    int rc, code;

    code = cli_parse_open(c, argc, argv, pos, 0, 0, &npos, &n);
    if (code != 0)
        return code;
    rc = load_conflicts(n, &list, &count);
    if (rc != SIMSYNC_OK) {
        code = out_fail(c, n, rc, "cannot list the conflicts");
    } else if (c->json) {
        fputs("{\"conflicts\":[", stdout);
        for (size_t i = 0; i < count; i++) {
            fputs(i > 0 ? ",{\"class\":" : "{\"class\":", stdout);
            out_json_str(stdout, list[i].cls);
            fputs(",\"name\":", stdout);
            out_json_str(stdout, list[i].name);
            fputs(",\"copy\":", stdout);
            out_json_str(stdout, list[i].copy_name);
            printf(",\"copy_is_mine\":%s}",
                   list[i].copy_is_mine ? "true" : "false");
        }
        fputs("]}\n", stdout);
    } else if (count == 0) {
        printf("No conflicts.\n");
    } else {
        for (size_t i = 0; i < count; i++)
            printf("%s/%s\n    conflict copy %s/%s holds %s\n", list[i].cls,
                   list[i].name, list[i].cls, list[i].copy_name,
                   list[i].copy_is_mine ? "this terminal's edit (mine)"
                                        : "the other edit (theirs)");
        printf("Resolve each with 'simsync conflicts resolve CLASS/NAME "
               "--keep mine|theirs|both'.\n");
    }
    free(list);
    simsync_node_close(n);
    return code;
}

int
cmd_conflicts_resolve(struct cli *c, int argc, char **argv)
{
    const char *keep = NULL, *pos[1];
    const struct cli_opt opts[] = {
        {"--keep", &keep, NULL},
        {NULL, NULL, NULL},
    };
    struct simsync_node *n = NULL;
    enum cli_parse_result parsed;
    size_t npos;
    int rc, code;

    parsed = cli_parse(c, argc, argv, opts, pos, 1, 1, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    if (keep == NULL)
        return out_usage(c, "--keep mine|theirs|both is needed");
    if (strcmp(keep, "mine") != 0 && strcmp(keep, "theirs") != 0 &&
        strcmp(keep, "both") != 0)
        return out_usage(c, "--keep takes mine, theirs or both, not '%s'",
                         keep);
    if (strchr(pos[0], '/') == NULL)
        return out_usage(c, "name the item as CLASS/NAME (e.g. "
                            "contacts/alice.vcf), as 'simsync conflicts' "
                            "lists it");
    code = out_node_open(c, &n);
    if (code != 0)
        return code;
    rc = simsync_conflict_resolve(n, pos[0], keep);
    if (rc != SIMSYNC_OK) {
        code = out_fail(c, n, rc, "cannot resolve the conflict");
    } else if (c->json) {
        fputs("{\"ok\":true,\"item\":", stdout);
        out_json_str(stdout, pos[0]);
        fputs(",\"keep\":", stdout);
        out_json_str(stdout, keep);
        fputs("}\n", stdout);
    } else {
        printf("Resolved %s: kept %s. The hub gets the outcome at the next "
               "'simsync sync'.\n",
               pos[0], keep);
    }
    simsync_node_close(n);
    return code;
}
