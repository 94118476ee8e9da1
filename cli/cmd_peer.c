/* cmd_peer.c -- commands about paired peers: `pair`, `peers`, `unpair`
 * and `serve` (a trusted node serving the subscriber's other nodes). The
 * sync itself is `sync --peer/--with` (cmd_sync.c). */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define CODE_LEN 6

/* Set by SIGINT/SIGTERM while serving; the library polls it. */

struct pair_ui {
    struct cli *c;
    int yes;          /* --yes: the codes were compared elsewhere */
    const char *code; /* --code: the code the other node shows */
    char shown[16];   /* the code this node showed */
};

static void
pair_listening(void *arg, const char *addr)
{
    struct pair_ui *ui = arg;
    FILE *f = ui->c->json ? stderr : stdout;
    /* A USB gadget is reached from the desktop as "usb", and a desktop
     * listening on "usb" from the handset's gadget. */
    const char *peer = strncmp(addr, "usb-gadget", 10) == 0 ? "usb"
                       : strncmp(addr, "usb", 3) == 0 &&
                               (addr[3] == '\0' || addr[3] == ':')
                           ? "usb-gadget"
                           : addr;

    fprintf(f,
            "Waiting for the other node on %s: run 'simsync pair --peer "
            "%s' there.\n",
            addr, peer);
    fflush(f);
}

/* Read one line from stdin into buf (without its newline). 0 or -1. */
static int
read_answer(char *buf, size_t len)
{
    size_t n;

    if (fgets(buf, (int)len, stdin) == NULL)
        return -1;
    n = strlen(buf);
    while (n > 0 &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return 0;
}

static int
pair_confirm(void *arg, const char *code, const struct simsync_peer *p)
{
    struct pair_ui *ui = arg;
    FILE *f = ui->c->json ? stderr : stdout;
    char answer[64];

    snprintf(ui->shown, sizeof(ui->shown), "%s", code);
    fprintf(f, "Pairing code: %s\n", code);
    fprintf(f, "Other node: %s %s, node ID %s\n", p->role, p->terminal_id,
            p->node_id);
    fflush(f);
    if (ui->yes)
        return 1;
    if (ui->code != NULL) {
        if (strcmp(ui->code, code) == 0)
            return 1;
        fprintf(stderr,
                "simsync: pair: the code given (%s) is not the code shown "
                "here (%s): refusing\n",
                ui->code, code);
        return 0;
    }
    fprintf(stderr,
            "Does the other node show %s? Type yes, or the code it "
            "shows: ",
            code);
    fflush(stderr);
    if (read_answer(answer, sizeof(answer)) != 0)
        return 0;
    return strcmp(answer, "yes") == 0 || strcmp(answer, "y") == 0 ||
           strcmp(answer, code) == 0;
}

static void
print_peer_json(const struct simsync_peer *p)
{
    fputs("{\"terminal_id\":", stdout);
    out_json_str(stdout, p->terminal_id);
    fputs(",\"role\":", stdout);
    out_json_str(stdout, p->role);
    fputs(",\"node_id\":", stdout);
    out_json_str(stdout, p->node_id);
    fputs(",\"addr\":", stdout);
    out_json_str(stdout, p->addr);
    printf(",\"paired_ms\":%" PRIu64 ",\"last_sync_ms\":%" PRIu64 "}",
           p->paired_ms, p->last_sync_ms);
}

int
cmd_pair(struct cli *c, int argc, char **argv)
{
    const char *listen = NULL, *peer = NULL, *code = NULL, *timeout = NULL;
    const char *pos[1];
    int yes = 0;
    const struct cli_opt opts[] = {
        {"--listen", &listen, NULL},   {"--peer", &peer, NULL},
        {"--yes", NULL, &yes},         {"--code", &code, NULL},
        {"--timeout", &timeout, NULL}, {NULL, NULL, NULL},
    };
    struct simsync_pair_opts o;
    struct simsync_peer p;
    struct simsync_node *n = NULL;
    struct pair_ui ui;
    enum cli_parse_result parsed;
    unsigned long t = 300;
    size_t npos;
    int rc, code_rc;

    parsed = cli_parse(c, argc, argv, opts, pos, 0, 1, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    if (npos == 1) {
        /* 'pair PEER' is 'pair --peer PEER'. */
        if (listen != NULL || peer != NULL)
            return out_usage(c, "give the peer once: 'pair PEER' or "
                                "'pair --peer PEER'");
        peer = pos[0];
    }
    if ((listen == NULL) == (peer == NULL))
        return out_usage(c, "give either --listen ADDR (wait for the "
                            "other node) or --peer ADDR (reach it)");
    if (listen != NULL && cli_check_link(c, "--listen", listen, 1) != 0)
        return CLI_EXIT_USAGE;
    if (peer != NULL && cli_check_link(c, "--peer", peer, 0) != 0)
        return CLI_EXIT_USAGE;
    if (yes && code != NULL)
        return out_usage(c, "--yes and --code exclude each other");
    if (code != NULL &&
        (strlen(code) != CODE_LEN || strspn(code, "0123456789") != CODE_LEN))
        return out_usage(c,
                         "--code takes the %d digits the other node "
                         "shows, not '%s'",
                         CODE_LEN, code);
    if (timeout != NULL && cli_parse_ulong(timeout, 1, 86400, &t) != 0)
        return out_usage(c,
                         "--timeout takes seconds from 1 to 86400, not "
                         "'%s'",
                         timeout);
    code_rc = out_node_open(c, &n);
    if (code_rc != 0)
        return code_rc;
    memset(&ui, 0, sizeof(ui));
    ui.c = c;
    ui.yes = yes;
    ui.code = code;
    memset(&o, 0, sizeof(o));
    o.listen = listen;
    o.peer = peer;
    o.timeout_s = (unsigned)t;
    o.listening = pair_listening;
    o.confirm = pair_confirm;
    o.arg = &ui;
    rc = simsync_pair(n, &o, &p);
    if (rc != SIMSYNC_OK) {
        code_rc = out_fail(c, n, rc, "pairing failed");
    } else if (c->json) {
        fputs("{\"ok\":true,\"code\":", stdout);
        out_json_str(stdout, ui.shown);
        fputs(",\"peer\":", stdout);
        print_peer_json(&p);
        fputs("}\n", stdout);
    } else {
        printf("Paired with %s %s (node ID %s).\n", p.role, p.terminal_id,
               p.node_id);
        if (peer != NULL)
            printf("Sync with it by 'simsync sync --peer ADDR' (or "
                   "'--with %s') while it runs 'simsync serve' or "
                   "'simsync listen'.\n",
                   p.terminal_id);
        else
            printf("It may now sync with this node while 'simsync serve', "
                   "'simsync listen' or 'simsync daemon --listen' runs "
                   "here.\n");
    }
    simsync_node_close(n);
    return code_rc;
}

int
cmd_peers(struct cli *c, int argc, char **argv)
{
    struct simsync_peer *list = NULL;
    struct simsync_node *n = NULL;
    const char *pos[1];
    char paired[64], synced[64];
    size_t npos, count = 0;
    int rc, code;

    code = cli_parse_open(c, argc, argv, pos, 0, 0, &npos, &n);
    if (code != 0)
        return code;
    rc = simsync_peers(n, &list, &count);
    if (rc != SIMSYNC_OK) {
        code = out_fail(c, n, rc, "cannot list the paired nodes");
    } else if (c->json) {
        fputs("{\"peers\":[", stdout);
        for (size_t i = 0; i < count; i++) {
            if (i > 0)
                fputc(',', stdout);
            print_peer_json(&list[i]);
        }
        fputs("]}\n", stdout);
    } else if (count == 0) {
        printf("No paired nodes. Pair one with 'simsync pair'.\n");
    } else {
        for (size_t i = 0; i < count; i++) {
            out_format_time(list[i].paired_ms, paired, sizeof(paired));
            out_format_time(list[i].last_sync_ms, synced, sizeof(synced));
            printf("%s (%s)\n    node ID   %s\n    address   %s\n"
                   "    paired    %s\n    last sync %s\n",
                   list[i].terminal_id, list[i].role, list[i].node_id,
                   list[i].addr[0] ? list[i].addr : "(not known)", paired,
                   synced);
        }
    }
    free(list);
    simsync_node_close(n);
    return code;
}

int
cmd_unpair(struct cli *c, int argc, char **argv)
{
    struct simsync_node *n = NULL;
    const char *pos[1];
    size_t npos;
    int rc, code;

    code = cli_parse_open(c, argc, argv, pos, 1, 1, &npos, &n);
    if (code != 0)
        return code;
    rc = simsync_unpair(n, pos[0]);
    if (rc != SIMSYNC_OK) {
        code = out_fail(c, n, rc, "cannot unpair");
    } else if (c->json) {
        fputs("{\"ok\":true,\"unpaired\":", stdout);
        out_json_str(stdout, pos[0]);
        fputs("}\n", stdout);
    } else {
        printf("Unpaired %s: its sessions are refused from now on.\n", pos[0]);
    }
    simsync_node_close(n);
    return code;
}

static void
serve_listening(void *arg, const char *addr)
{
    struct cli *c = arg;

    if (c->json) {
        fputs("{\"listening\":", stdout);
        out_json_str(stdout, addr);
        fputs("}\n", stdout);
    } else {
        printf("Serving paired nodes on %s.\n", addr);
    }
    fflush(stdout);
}

static void
serve_log(void *arg, const char *line)
{
    char when[64];
    struct timespec ts;

    (void)arg;
    clock_gettime(CLOCK_REALTIME, &ts);
    out_format_time((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000,
                    when, sizeof(when));
    fprintf(stderr, "%s serve: %s\n", when, line);
}

/* Serve the paired nodes on every address of addrs until stopped. */
static int
serve_on(struct cli *c, const char *const *addrs, size_t naddrs)
{
    struct simsync_serve_opts o;
    struct simsync_node *n = NULL;
    int rc, code;

    for (size_t i = 0; i < naddrs; i++)
        if (cli_check_link(c, "address", addrs[i], 1) != 0)
            return CLI_EXIT_USAGE;
    code = out_node_open(c, &n);
    if (code != 0)
        return code;
    cli_catch_stop();
    memset(&o, 0, sizeof(o));
    o.listen = addrs[0];
    o.more = addrs + 1;
    o.n_more = naddrs - 1;
    o.listening = serve_listening;
    o.log = serve_log;
    o.arg = c;
    rc = simsync_serve(n, &o, &cli_stop);
    if (rc != SIMSYNC_OK)
        code = out_fail(c, n, rc, "cannot serve");
    simsync_node_close(n);
    return code;
}

int
cmd_serve(struct cli *c, int argc, char **argv)
{
    struct cli_list listen = {{NULL}, 0};
    const char *pos[1];
    const struct cli_opt opts[] = {{NULL, NULL, NULL}};
    enum cli_parse_result parsed;
    size_t npos;

    if (cli_take_list(c, &argc, argv, "--listen", &listen) != 0)
        return CLI_EXIT_USAGE;
    parsed = cli_parse(c, argc, argv, opts, pos, 0, 0, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    if (listen.n == 0)
        return out_usage(c, "--listen ADDR is needed (HOST:PORT, "
                            "rfcomm:CHANNEL, ...)");
    return serve_on(c, listen.v, listen.n);
}

int
cmd_listen(struct cli *c, int argc, char **argv)
{
    const char *pos[CLI_LIST_MAX];
    const struct cli_opt opts[] = {{NULL, NULL, NULL}};
    enum cli_parse_result parsed;
    size_t npos;

    parsed = cli_parse(c, argc, argv, opts, pos, 1, CLI_LIST_MAX, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    return serve_on(c, pos, npos);
}
