/* cmd_policy.c -- the daemon's trigger policy and decision log: `policy
 * show`, `policy set`, `policy confirm` (answer the daemon's question),
 * `policy run` (ask the daemon to sync now) and `log [--follow]`. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define POLICY_TEXT_MAX 4096

/* The value of key in a "key value\n" text into out. */
static void
value_of(const char *text, const char *key, char *out, size_t len)
{
    size_t kl = strlen(key);

    out[0] = '\0';
    for (const char *p = text; p != NULL && *p != '\0';) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n > kl && strncmp(p, key, kl) == 0 && p[kl] == ' ') {
            snprintf(out, len, "%.*s", (int)(n - kl - 1), p + kl + 1);
            return;
        }
        p = e ? e + 1 : NULL;
    }
}

int
cmd_policy_show(struct cli *c, int argc, char **argv)
{
    struct simsync_node *n = NULL;
    const char *pos[1], *name, *kind, *help;
    char text[POLICY_TEXT_MAX], v[64];
    size_t npos;
    int rc, code;

    code = cli_parse_open(c, argc, argv, pos, 0, 0, &npos, &n);
    if (code != 0)
        return code;
    rc = simsync_policy_get(n, text, sizeof(text));
    if (rc != SIMSYNC_OK) {
        code = out_fail(c, n, rc, "cannot read the policy");
        simsync_node_close(n);
        return code;
    }
    if (c->json)
        fputs("{\"policy\":[", stdout);
    for (size_t i = 0; simsync_policy_key(i, &name, &kind, &help) == 0; i++) {
        value_of(text, name, v, sizeof(v));
        if (c->json) {
            fputs(i ? ",{\"key\":" : "{\"key\":", stdout);
            out_json_str(stdout, name);
            fputs(",\"value\":", stdout);
            out_json_str(stdout, v);
            fputs(",\"kind\":", stdout);
            out_json_str(stdout, kind);
            fputs(",\"help\":", stdout);
            out_json_str(stdout, help);
            fputc('}', stdout);
        } else {
            printf("%-27s %-6s %s\n", name, v, help);
        }
    }
    if (c->json)
        fputs("]}\n", stdout);
    else
        printf("Change one with 'simsync policy set KEY VALUE' (durations: "
               "90s, 15m, 6h, 1d; sizes: 512k, 10M, 1G).\n");
    simsync_node_close(n);
    return code;
}

int
cmd_policy_set(struct cli *c, int argc, char **argv)
{
    struct simsync_node *n = NULL;
    const char *pos[2];
    char text[POLICY_TEXT_MAX], v[64];
    size_t npos;
    int rc, code;

    code = cli_parse_open(c, argc, argv, pos, 2, 2, &npos, &n);
    if (code != 0)
        return code;
    rc = simsync_policy_set(n, pos[0], pos[1]);
    if (rc == SIMSYNC_ENOTFOUND || rc == SIMSYNC_EINVAL) {
        /* The policy's own words name the key and what it accepts. */
        code = out_error(c, CLI_EXIT_USAGE, "%s: %s", c->name,
                         simsync_node_errmsg(n));
    } else if (rc != SIMSYNC_OK) {
        code = out_fail(c, n, rc, "cannot set the policy");
    } else {
        if (simsync_policy_get(n, text, sizeof(text)) == SIMSYNC_OK)
            value_of(text, pos[0], v, sizeof(v));
        else
            snprintf(v, sizeof(v), "%s", pos[1]);
        if (c->json) {
            fputs("{\"ok\":true,\"key\":", stdout);
            out_json_str(stdout, pos[0]);
            fputs(",\"value\":", stdout);
            out_json_str(stdout, v);
            fputs("}\n", stdout);
        } else {
            printf("%s is now %s.\n", pos[0], v);
        }
    }
    simsync_node_close(n);
    return code;
}

/* One request to the running daemon, its answer printed. */
static int
request(struct cli *c, struct simsync_node *n, const char *req)
{
    char reply[512];
    int rc = simsync_daemon_request(n, req, reply, sizeof(reply));

    if (rc == SIMSYNC_ENOTFOUND)
        return out_error(c, CLI_EXIT_ERROR,
                         "%s: no daemon runs for this terminal; start one "
                         "with 'simsync daemon'",
                         c->name);
    if (rc == SIMSYNC_EREFUSED)
        return out_error(c, simsync_exit_code(rc), "%s: %s", c->name, reply);
    if (rc != SIMSYNC_OK)
        return out_fail(c, n, rc, "cannot reach the daemon");
    if (c->json) {
        fputs("{\"ok\":true,\"daemon\":", stdout);
        out_json_str(stdout, reply);
        fputs("}\n", stdout);
    } else {
        printf("Daemon: %s.\n", reply);
    }
    return 0;
}

int
cmd_policy_confirm(struct cli *c, int argc, char **argv)
{
    struct simsync_node *n = NULL;
    const char *pos[1];
    size_t npos;
    int code;

    code = cli_parse_open(c, argc, argv, pos, 1, 1, &npos, &n);
    if (code != 0)
        return code;
    if (strcmp(pos[0], "yes") != 0 && strcmp(pos[0], "no") != 0)
        code = out_usage(c, "answer yes or no, not '%s'", pos[0]);
    else
        code = request(
            c, n, strcmp(pos[0], "yes") == 0 ? "confirm yes" : "confirm no");
    simsync_node_close(n);
    return code;
}

int
cmd_policy_run(struct cli *c, int argc, char **argv)
{
    struct simsync_node *n = NULL;
    const char *pos[1];
    size_t npos;
    int code;

    code = cli_parse_open(c, argc, argv, pos, 1, 1, &npos, &n);
    if (code != 0)
        return code;
    if (strcmp(pos[0], "sync") != 0 && strcmp(pos[0], "upload") != 0 &&
        strcmp(pos[0], "download") != 0)
        code = out_usage(c, "run sync, upload or download, not '%s'", pos[0]);
    else
        code = request(c, n, pos[0]);
    simsync_node_close(n);
    return code;
}

/* ------------------------------------------------------------ log */

struct log_print {
    struct cli *c;
    int lines;   /* JSON: one object per line (--follow) */
    size_t seen; /* entries printed */
};

static void
print_entry_json(const struct simsync_log_entry *e)
{
    fputs("{\"time_ms\":", stdout);
    printf("%" PRIu64 ",\"kind\":", e->time_ms);
    out_json_str(stdout, e->kind);
    fputs(",\"action\":", stdout);
    out_json_str(stdout, e->action);
    fputs(",\"trigger\":", stdout);
    out_json_str(stdout, e->trigger);
    fputs(",\"triggers\":[", stdout);
    for (const char *p = e->triggers; *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char one[32];
        snprintf(one, sizeof(one), "%.*s", (int)len, p);
        if (p != e->triggers)
            fputc(',', stdout);
        out_json_str(stdout, one);
        p = comma ? comma + 1 : p + len;
    }
    fputs("],\"result\":", stdout);
    out_json_str(stdout, e->result);
    printf(",\"sent_items\":%" PRIu64 ",\"sent_bytes\":%" PRIu64
           ",\"recv_items\":%" PRIu64 ",\"recv_bytes\":%" PRIu64
           ",\"pending_bytes\":%" PRIu64 ",\"ms\":%" PRIu64 ",\"text\":",
           e->sent_items, e->sent_bytes, e->recv_items, e->recv_bytes,
           e->pending_bytes, e->ms);
    out_json_str(stdout, e->text);
    fputc('}', stdout);
}

static int
print_entry(void *arg, const struct simsync_log_entry *e)
{
    struct log_print *lp = arg;
    char when[64], what[48];

    if (lp->c->json) {
        if (!lp->lines && lp->seen > 0)
            fputc(',', stdout);
        print_entry_json(e);
        if (lp->lines)
            fputc('\n', stdout);
    } else {
        out_format_time(e->time_ms, when, sizeof(when));
        if (strcmp(e->kind, "done") == 0)
            snprintf(what, sizeof(what), "%s %s", e->action, e->result);
        else
            snprintf(what, sizeof(what), "%s", e->action);
        printf("%s  %-5s  %-14s %-12s %s\n", when, e->kind,
               what[0] ? what : "-", e->trigger[0] ? e->trigger : "-", e->text);
    }
    lp->seen++;
    return 0;
}

int
cmd_log(struct cli *c, int argc, char **argv)
{
    struct simsync_node *n = NULL;
    const char *pos[1];
    int follow = 0;
    const struct cli_opt opts[] = {
        {"--follow", NULL, &follow},
        {NULL, NULL, NULL},
    };
    struct simsync_log_pos at;
    struct log_print lp;
    enum cli_parse_result parsed;
    size_t npos;
    int rc, code;

    parsed = cli_parse(c, argc, argv, opts, pos, 0, 0, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    code = out_node_open(c, &n);
    if (code != 0)
        return code;
    memset(&at, 0, sizeof(at));
    memset(&lp, 0, sizeof(lp));
    lp.c = c;
    lp.lines = follow;
    if (c->json && !follow)
        fputs("{\"entries\":[", stdout);
    rc = simsync_log_read(n, &at, print_entry, &lp);
    if (rc == SIMSYNC_OK && follow) {
        struct timespec nap = {0, 250 * 1000000L};
        cli_catch_stop();
        fflush(stdout);
        while (rc == SIMSYNC_OK && !cli_stop) {
            nanosleep(&nap, NULL);
            rc = simsync_log_read(n, &at, print_entry, &lp);
            fflush(stdout);
        }
    }
    if (c->json && !follow)
        fputs("]}\n", stdout);
    else if (!c->json && !follow && lp.seen == 0)
        printf("The log is empty: the daemon ('simsync daemon') writes its "
               "decisions there.\n");
    if (rc != SIMSYNC_OK)
        code = out_fail(c, n, rc, "cannot read the decision log");
    simsync_node_close(n);
    return code;
}
