/* cmd_daemon.c -- `daemon` on a terminal, and the hub's side of scheduled
 * backups: `hub schedule` and `hub generations`. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static void
log_line(void *arg, const char *line)
{
    struct cli *c = arg;
    char when[64];
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    out_format_time((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000,
                    when, sizeof(when));
    if (c->json) {
        printf("{\"time\":");
        out_json_str(stdout, when);
        printf(",\"log\":");
        out_json_str(stdout, line);
        printf("}\n");
        fflush(stdout);
    } else {
        fprintf(stderr, "%s daemon: %s\n", when, line);
    }
}

static int
parse_uint_opt(struct cli *c, const char *name, const char *v,
               unsigned long max, unsigned long *out)
{
    if (v == NULL)
        return 0;
    if (cli_parse_ulong(v, 0, max, out) != 0)
        return out_usage(c, "%s takes a number from 0 to %lu, not '%s'", name,
                         max, v);
    return 0;
}

int
cmd_daemon(struct cli *c, int argc, char **argv)
{
    const char *psdir = NULL, *edit = NULL, *battery = NULL, *bytes = NULL;
    const char *every = NULL, *retry = NULL, *pos[1];
    struct cli_list listen = {{NULL}, 0};
    const char *ttydir = NULL;
    const struct cli_opt opts[] = {
        {"--power-supply-dir", &psdir, NULL},
        {"--busy-after-edit", &edit, NULL},
        {"--battery-below", &battery, NULL},
        {"--backup-after-bytes", &bytes, NULL},
        {"--check-every", &every, NULL},
        {"--retry-after", &retry, NULL},
        {"--tty-dir", &ttydir, NULL},
        {NULL, NULL, NULL},
    };
    struct simsync_daemon_opts o;
    struct simsync_node *n = NULL;
    enum cli_parse_result parsed;
    unsigned long v_edit = 60, v_batt = 15, v_bytes = 0, v_every = 10,
                  v_retry = 60;
    size_t npos;
    int rc, code;

    if (cli_take_list(c, &argc, argv, "--listen", &listen) != 0)
        return CLI_EXIT_USAGE;
    parsed = cli_parse(c, argc, argv, opts, pos, 0, 0, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    if ((code = parse_uint_opt(c, "--busy-after-edit", edit, 86400,
                               &v_edit)) != 0 ||
        (code = parse_uint_opt(c, "--battery-below", battery, 100,
                               &v_batt)) != 0 ||
        (code = parse_uint_opt(c, "--backup-after-bytes", bytes,
                               1ul << 62, &v_bytes)) != 0 ||
        (code = parse_uint_opt(c, "--check-every", every, 86400,
                               &v_every)) != 0 ||
        (code = parse_uint_opt(c, "--retry-after", retry, 86400,
                               &v_retry)) != 0)
        return code;
    if (every != NULL && v_every == 0)
        return out_usage(c, "--check-every must be at least 1 second");
    for (size_t i = 0; i < listen.n; i++)
        if (cli_check_link(c, "--listen", listen.v[i], 1) != 0)
            return CLI_EXIT_USAGE;
    memset(&o, 0, sizeof(o));
    o.power_supply_dir = psdir;
    o.busy_after_edit_s = (unsigned)v_edit;
    o.battery_below = (unsigned)v_batt;
    o.backup_pending_bytes = v_bytes;
    o.check_every_s = (unsigned)v_every;
    o.retry_after_s = (unsigned)v_retry;
    o.log = log_line;
    o.log_arg = c;
    o.listen = listen.n > 0 ? listen.v[0] : NULL;
    o.listen_more = listen.n > 1 ? listen.v + 1 : NULL;
    o.n_listen_more = listen.n > 1 ? listen.n - 1 : 0;
    o.tty_dir = ttydir;
    code = out_node_open(c, &n);
    if (code != 0)
        return code;
    cli_catch_stop();
    rc = simsync_daemon(n, &o, &cli_stop);
    if (rc != SIMSYNC_OK)
        code = out_fail(c, n, rc, "the daemon stopped");
    simsync_node_close(n);
    return code;
}

/* ------------------------------------------------------------ hub */

static int
parse_hhmm(const char *s, int *minute)
{
    unsigned long h, m;
    char hb[3], mb[3];

    if (s == NULL || strlen(s) != 5 || s[2] != ':')
        return -1;
    memcpy(hb, s, 2);
    hb[2] = '\0';
    memcpy(mb, s + 3, 2);
    mb[2] = '\0';
    if (cli_parse_ulong(hb, 0, 23, &h) != 0 ||
        cli_parse_ulong(mb, 0, 59, &m) != 0)
        return -1;
    *minute = (int)(h * 60 + m);
    return 0;
}

static void
fmt_ms(char *buf, size_t len, uint64_t ms)
{
    if (ms % 86400000 == 0)
        snprintf(buf, len, "%" PRIu64 "d", ms / 86400000);
    else if (ms % 3600000 == 0)
        snprintf(buf, len, "%" PRIu64 "h", ms / 3600000);
    else if (ms % 60000 == 0)
        snprintf(buf, len, "%" PRIu64 "m", ms / 60000);
    else
        snprintf(buf, len, "%" PRIu64 "s", (ms + 999) / 1000);
}

static void
print_schedule(struct cli *c, const struct simsync_schedule *s, int first)
{
    char when[64], every[32], retry[32], tmo[32];

    out_format_time(s->next_ms, when, sizeof(when));
    fmt_ms(retry, sizeof(retry), s->retry_ms);
    fmt_ms(tmo, sizeof(tmo), s->answer_timeout_ms);
    if (s->every_ms > 0)
        fmt_ms(every, sizeof(every), s->every_ms);
    else if (s->at_minute >= 0)
        snprintf(every, sizeof(every), "%02d:%02d", s->at_minute / 60,
                 s->at_minute % 60);
    else
        snprintf(every, sizeof(every), "once");
    if (c->json) {
        fputs(first ? "{\"terminal\":" : ",{\"terminal\":", stdout);
        out_json_str(stdout, s->terminal_id);
        printf(",\"every_ms\":%" PRIu64 ",\"at_minute\":%d,\"retry_ms\":%" PRIu64
               ",\"max_attempts\":%" PRIu32 ",\"answer_timeout_ms\":%" PRIu64
               ",\"next_ms\":%" PRIu64 ",\"attempt\":%" PRIu32 "}",
               s->every_ms, s->at_minute, s->retry_ms, s->max_attempts,
               s->answer_timeout_ms, s->next_ms, s->attempt);
    } else {
        printf("%-16s %-8s retry %-6s x%-3" PRIu32 " answer within %-6s "
               "next %s%s\n",
               s->terminal_id[0] ? s->terminal_id : "(any)", every, retry,
               s->max_attempts, tmo, when,
               s->attempt ? " (retrying)" : "");
    }
}

int
cmd_hub_schedule(struct cli *c, int argc, char **argv)
{
    const char *sub = NULL, *tid = NULL, *every = NULL, *at = NULL;
    const char *retry = NULL, *attempts = NULL, *answer = NULL, *pos[1];
    int list = 0, remove = 0;
    const struct cli_opt opts[] = {
        {"--subscriber", &sub, NULL},
        {"--terminal", &tid, NULL},
        {"--every", &every, NULL},
        {"--at", &at, NULL},
        {"--retry-interval", &retry, NULL},
        {"--max-attempts", &attempts, NULL},
        {"--answer-timeout", &answer, NULL},
        {"--list", NULL, &list},
        {"--remove", NULL, &remove},
        {NULL, NULL, NULL},
    };
    struct simsync_schedule s;
    struct simsync_node *n = NULL;
    enum cli_parse_result parsed;
    unsigned long max = 0;
    size_t npos;
    int rc, code;

    parsed = cli_parse(c, argc, argv, opts, pos, 0, 0, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    if (sub == NULL)
        return out_usage(c, "--subscriber ID is required");
    memset(&s, 0, sizeof(s));
    s.at_minute = -1;
    if (tid != NULL) {
        if (strlen(tid) == 0 || strlen(tid) >= sizeof(s.terminal_id))
            return out_usage(c, "--terminal takes a terminal ID");
        snprintf(s.terminal_id, sizeof(s.terminal_id), "%s", tid);
    }
    if (list + remove + (every != NULL || at != NULL) != 1)
        return out_usage(c, "give one of --every, --at, --list or --remove");
    if (every != NULL && at != NULL)
        return out_usage(c, "give --every or --at, not both");
    if (every != NULL && cli_parse_duration(every, &s.every_ms) != 0)
        return out_usage(c, "--every takes a DURATION like 90s, 15m, 6h or "
                            "1d, not '%s'",
                         every);
    if (at != NULL && parse_hhmm(at, &s.at_minute) != 0)
        return out_usage(c, "--at takes a time of day HH:MM, not '%s'", at);
    if (retry != NULL && cli_parse_duration(retry, &s.retry_ms) != 0)
        return out_usage(c, "--retry-interval takes a DURATION like 90s, 15m, "
                            "6h or 1d, not '%s'",
                         retry);
    if (answer != NULL && cli_parse_duration(answer, &s.answer_timeout_ms) != 0)
        return out_usage(c, "--answer-timeout takes a DURATION like 30s, not "
                            "'%s'",
                         answer);
    if (attempts != NULL) {
        if (cli_parse_ulong(attempts, 1, 1000, &max) != 0)
            return out_usage(c, "--max-attempts takes a number from 1 to 1000");
        s.max_attempts = (uint32_t)max;
    }
    code = out_node_open(c, &n);
    if (code != 0)
        return code;
    if (list) {
        struct simsync_schedule *v = NULL;
        size_t count = 0;
        rc = simsync_hub_schedule_list(n, sub, &v, &count);
        if (rc != SIMSYNC_OK) {
            code = out_fail(c, n, rc, "cannot read the schedules");
        } else {
            if (c->json)
                fputs("{\"schedules\":[", stdout);
            else if (count == 0)
                printf("No schedules for this subscriber.\n");
            for (size_t i = 0; i < count; i++)
                print_schedule(c, &v[i], i == 0);
            if (c->json)
                fputs("]}\n", stdout);
        }
        free(v);
    } else if (remove) {
        rc = simsync_hub_schedule_remove(n, sub, s.terminal_id);
        if (rc != SIMSYNC_OK)
            code = out_fail(c, n, rc, "cannot remove the schedule");
        else if (c->json)
            printf("{\"ok\":true,\"removed\":true}\n");
        else
            printf("Schedule removed.\n");
    } else {
        rc = simsync_hub_schedule_set(n, sub, &s);
        if (rc != SIMSYNC_OK) {
            code = out_fail(c, n, rc, "cannot set the schedule");
        } else {
            if (c->json)
                fputs("{\"ok\":true,\"schedule\":", stdout);
            else
                printf("Scheduled: ");
            print_schedule(c, &s, 1);
            if (c->json)
                fputs("}\n", stdout);
        }
    }
    simsync_node_close(n);
    return code;
}

int
cmd_hub_generations(struct cli *c, int argc, char **argv)
{
    const char *sub = NULL, *pos[1];
    const struct cli_opt opts[] = {
        {"--subscriber", &sub, NULL},
        {NULL, NULL, NULL},
    };
    struct simsync_generation *g = NULL;
    struct simsync_node *n = NULL;
    enum cli_parse_result parsed;
    size_t npos, count = 0;
    int rc, code;

    parsed = cli_parse(c, argc, argv, opts, pos, 0, 0, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    if (sub == NULL)
        return out_usage(c, "--subscriber ID is required");
    code = out_node_open(c, &n);
    if (code != 0)
        return code;
    rc = simsync_hub_generations(n, sub, &g, &count);
    if (rc != SIMSYNC_OK)
        code = out_fail(c, n, rc, "cannot list the generations");
    else
        out_generations(c, g, count);
    free(g);
    simsync_node_close(n);
    return code;
}
