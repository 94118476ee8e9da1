/* cmd_lazy.c -- lazy classes: `classes lazy`, `ls`, `fetch`, `pin`,
 * `unpin`, `evict`. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int
cmd_classes_lazy(struct cli *c, int argc, char **argv)
{
    const char *pos[1];
    struct simsync_node *n = NULL;
    char list[256];
    size_t npos;
    int rc, code;

    code = cli_parse_open(c, argc, argv, pos, 0, 1, &npos, &n);
    if (code != 0)
        return code;
    if (npos == 1) {
        rc = simsync_lazy_set(n, pos[0]);
        if (rc == SIMSYNC_EINVAL)
            code = out_usage(c,
                             "%s (a comma list of classes, 'all' or 'none'; "
                             "classes: contacts, mail, browser, archive, "
                             "apps, pim, settings, rights)",
                             simsync_node_errmsg(n));
        else if (rc != SIMSYNC_OK)
            code = out_fail(c, n, rc, "cannot set the lazy classes");
    }
    if (code == 0) {
        rc = simsync_lazy_get(n, list, sizeof(list));
        if (rc != SIMSYNC_OK) {
            code = out_fail(c, n, rc, "cannot read the lazy classes");
        } else if (c->json) {
            fputs("{\"lazy\":", stdout);
            out_json_str(stdout, list);
            fputs("}\n", stdout);
        } else {
            printf("%s\n", list);
        }
    }
    simsync_node_close(n);
    return code;
}

struct ls_out {
    int json, first;
    uint64_t items, local, bytes_remote;
};

static void
ls_item(void *arg, const struct simsync_item_info *it)
{
    struct ls_out *o = arg;
    char hex[17];

    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", it->hash[i]);
    o->items++;
    if (it->local)
        o->local++;
    else
        o->bytes_remote += it->size;
    if (o->json) {
        fputs(o->first ? "{\"class\":" : ",{\"class\":", stdout);
        out_json_str(stdout, it->cls);
        fputs(",\"name\":", stdout);
        out_json_str(stdout, it->name);
        printf(",\"size\":%" PRIu64 ",\"hash\":\"%s\",\"local\":%s,"
               "\"pinned\":%s}",
               it->size, hex, it->local ? "true" : "false",
               it->pinned ? "true" : "false");
    } else {
        printf("%-7s %12" PRIu64 "  %s  %s/%s\n",
               it->pinned ? "pinned" : it->local ? "local" : "remote", it->size,
               hex, it->cls, it->name);
    }
    o->first = 0;
}

int
cmd_ls(struct cli *c, int argc, char **argv)
{
    const char *pos[1];
    struct simsync_node *n = NULL;
    struct ls_out o = {c->json, 1, 0, 0, 0};
    uint32_t mask = 0;
    char bad[32];
    size_t npos;
    int rc, code;

    code = cli_parse_open(c, argc, argv, pos, 0, 1, &npos, &n);
    if (code != 0)
        return code;
    if (npos == 1 &&
        simsync_classes_parse(pos[0], &mask, bad, sizeof(bad)) != SIMSYNC_OK) {
        code = out_usage(c, "unknown class '%s'", bad);
        simsync_node_close(n);
        return code;
    }
    if (c->json)
        fputs("{\"items\":[", stdout);
    rc = simsync_items(n, mask, ls_item, &o);
    if (c->json)
        fputs("]}\n", stdout);
    if (rc != SIMSYNC_OK)
        code = out_fail(c, n, rc, "cannot list the items");
    else if (!c->json)
        printf("%" PRIu64 " items, %" PRIu64 " here; %" PRIu64
               " bytes only on the hub\n",
               o.items, o.local, o.bytes_remote);
    simsync_node_close(n);
    return code;
}

/* fetch / pin / unpin: one CLASS/NAME. */
static int
one_item(struct cli *c, int argc, char **argv, int pin)
{
    const char *pos[1];
    struct simsync_node *n = NULL;
    size_t npos;
    int rc, code, was_local = 0;

    code = cli_parse_open(c, argc, argv, pos, 1, 1, &npos, &n);
    if (code != 0)
        return code;
    rc = pin < 0 ? simsync_fetch(n, pos[0], &was_local)
                 : simsync_pin(n, pos[0], pin, &was_local);
    if (rc == SIMSYNC_EINVAL)
        code = out_usage(c, "%s", simsync_node_errmsg(n));
    else if (rc != SIMSYNC_OK)
        code = out_fail(c, n, rc, pin < 0 ? "fetch failed" : "pin failed");
    else if (c->json) {
        fputs("{\"ok\":true,\"item\":", stdout);
        out_json_str(stdout, pos[0]);
        printf(",\"fetched\":%s}\n",
               pin == 0 || was_local ? "false" : "true");
    }
    else if (pin == 0)
        printf("Unpinned %s.\n", pos[0]);
    else
        printf("%s %s%s.\n", was_local ? "Already here:" : "Fetched",
               pos[0], pin == 1 ? " (pinned)" : "");
    simsync_node_close(n);
    return code;
}

int
cmd_fetch(struct cli *c, int argc, char **argv)
{
    return one_item(c, argc, argv, -1);
}

int
cmd_pin(struct cli *c, int argc, char **argv)
{
    return one_item(c, argc, argv, 1);
}

int
cmd_unpin(struct cli *c, int argc, char **argv)
{
    return one_item(c, argc, argv, 0);
}

int
cmd_evict(struct cli *c, int argc, char **argv)
{
    const char *pos[1];
    struct simsync_node *n = NULL;
    uint64_t freed = 0;
    size_t npos;
    int rc, code;

    code = cli_parse_open(c, argc, argv, pos, 1, 1, &npos, &n);
    if (code != 0)
        return code;
    rc = simsync_evict(n, pos[0], &freed);
    if (rc == SIMSYNC_EINVAL)
        code = out_usage(c, "%s", simsync_node_errmsg(n));
    else if (rc != SIMSYNC_OK)
        code = out_fail(c, n, rc, "evict failed");
    else if (c->json)
        printf("{\"ok\":true,\"freed\":%" PRIu64 "}\n", freed);
    else
        printf("Evicted %s: %" PRIu64 " bytes freed here; it stays on the "
               "hub and the other terminals ('simsync fetch' brings it "
               "back).\n",
               pos[0], freed);
    simsync_node_close(n);
    return code;
}
