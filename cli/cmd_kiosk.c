/* cmd_kiosk.c -- the shop registration kiosk (docs/kiosk.md): on the hub
 * `hub kiosk add|list|remove` and `hub audit`; on the kiosk `kiosk enroll`,
 * `kiosk register` and `kiosk send`; on the handset `kiosk offer`. (The
 * handset completes with `register --kiosk`, in cmd_node.c.) */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int
cli_read_credential(struct cli *c, const char *file, char *buf, size_t len)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    ssize_t r;

    if (fd < 0)
        return out_error(c, CLI_EXIT_USAGE,
                         "%s: cannot read the credential file %s: %s", c->name,
                         file, strerror(errno));
    r = read(fd, buf, len - 1);
    close(fd);
    if (r < 0 || (size_t)r >= len - 1) {
        secret_wipe(buf, len);
        return out_error(c, CLI_EXIT_USAGE,
                         "%s: %s is not a kiosk credential (unreadable or "
                         "too long)",
                         c->name, file);
    }
    buf[r] = '\0';
    return 0;
}

/* ------------------------------------------------------------ hub side */

static int
kiosk_add(struct cli *c, struct simsync_node *n, const char *name)
{
    char cred[SIMSYNC_KIOSK_CRED_MAX];
    int rc = simsync_hub_kiosk_add(n, name, cred, sizeof(cred));

    if (rc == SIMSYNC_EINVAL)
        return out_usage(c, "%s", simsync_node_errmsg(n));
    if (rc != SIMSYNC_OK)
        return out_fail(c, n, rc, "cannot add the kiosk");
    if (c->json) {
        fputs("{\"ok\":true,\"name\":", stdout);
        out_json_str(stdout, name);
        fputs(",\"credential\":", stdout);
        out_json_str(stdout, cred);
        fputs("}\n", stdout);
    } else {
        printf("Kiosk '%s' added. Its credential (shown only this once; "
               "the hub keeps\nonly its public key):\n\n%s\n\n"
               "Hand it to the shop: 'simsync init --role kiosk "
               "--credential-file F'\nthere. Revoke it with 'simsync hub "
               "kiosk remove %s'.\n",
               name, cred, name);
    }
    secret_wipe(cred, sizeof(cred));
    return 0;
}

static int
kiosk_list(struct cli *c, struct simsync_node *n)
{
    struct simsync_kiosk *v;
    size_t count;
    char added[64], removed[64];
    int rc = simsync_hub_kiosk_list(n, &v, &count);

    if (rc != SIMSYNC_OK)
        return out_fail(c, n, rc, "cannot list the kiosks");
    if (c->json)
        fputs("{\"kiosks\":[", stdout);
    else if (count == 0)
        printf("No kiosks; add one with 'simsync hub kiosk add NAME'.\n");
    else
        printf("%-20s %-10s %-13s %-25s %s\n", "NAME", "STATE", "REGISTRATIONS",
               "ADDED", "KEY ID");
    for (size_t i = 0; i < count; i++) {
        out_format_time(v[i].added_ms, added, sizeof(added));
        out_format_time(v[i].removed_ms, removed, sizeof(removed));
        if (c->json) {
            fputs(i ? ",{\"name\":" : "{\"name\":", stdout);
            out_json_str(stdout, v[i].name);
            fputs(",\"id\":", stdout);
            out_json_str(stdout, v[i].id);
            printf(",\"active\":%s,\"added_ms\":%" PRIu64
                   ",\"removed_ms\":%" PRIu64 ",\"registrations\":%" PRIu64 "}",
                   v[i].removed_ms ? "false" : "true", v[i].added_ms,
                   v[i].removed_ms, v[i].registrations);
        } else {
            printf("%-20s %-10s %-13" PRIu64 " %-25s %s\n", v[i].name,
                   v[i].removed_ms ? "removed" : "active", v[i].registrations,
                   added, v[i].id);
        }
    }
    if (c->json)
        fputs("]}\n", stdout);
    free(v);
    return 0;
}

int
cmd_hub_kiosk(struct cli *c, int argc, char **argv)
{
    const char *pos[2];
    struct simsync_node *n = NULL;
    size_t npos;
    int rc, code;

    code = cli_parse_open(c, argc, argv, pos, 1, 2, &npos, &n);
    if (code != 0)
        return code;
    if (strcmp(pos[0], "add") == 0 && npos == 2) {
        code = kiosk_add(c, n, pos[1]);
    } else if (strcmp(pos[0], "list") == 0 && npos == 1) {
        code = kiosk_list(c, n);
    } else if (strcmp(pos[0], "remove") == 0 && npos == 2) {
        rc = simsync_hub_kiosk_remove(n, pos[1]);
        if (rc != SIMSYNC_OK) {
            code = out_fail(c, n, rc, "cannot remove the kiosk");
        } else if (c->json) {
            fputs("{\"ok\":true,\"removed\":", stdout);
            out_json_str(stdout, pos[1]);
            fputs("}\n", stdout);
        } else {
            printf("Kiosk '%s' removed: its registrations are refused from "
                   "now on.\n",
                   pos[1]);
        }
    } else {
        code = out_usage(c, "use 'add NAME', 'list' or 'remove NAME'");
    }
    simsync_node_close(n);
    return code;
}

int
cmd_hub_audit(struct cli *c, int argc, char **argv)
{
    const char *pos[1];
    struct simsync_node *n = NULL;
    struct simsync_kiosk_audit *v;
    size_t npos, count;
    char when[64];
    int rc, code;

    code = cli_parse_open(c, argc, argv, pos, 0, 0, &npos, &n);
    if (code != 0)
        return code;
    rc = simsync_hub_audit(n, &v, &count);
    if (rc != SIMSYNC_OK) {
        code = out_fail(c, n, rc, "cannot read the kiosk audit");
        simsync_node_close(n);
        return code;
    }
    if (c->json)
        fputs("{\"audit\":[", stdout);
    else if (count == 0)
        printf("No kiosk registrations yet.\n");
    for (size_t i = 0; i < count; i++) {
        const struct simsync_kiosk_audit *e = &v[i];
        out_format_time(e->time_ms, when, sizeof(when));
        if (c->json) {
            printf("%s{\"seq\":%" PRIu64 ",\"time_ms\":%" PRIu64 ",\"kiosk\":",
                   i ? "," : "", e->seq, e->time_ms);
            out_json_str(stdout, e->kiosk);
            fputs(",\"terminal_id\":", stdout);
            out_json_str(stdout, e->terminal_id);
            fputs(",\"node_id\":", stdout);
            out_json_str(stdout, e->node_id);
            fputs(",\"subscriber_tag\":", stdout);
            out_json_str(stdout, e->subscriber_tag);
            printf(",\"result\":\"%s\",\"detail\":",
                   e->accepted ? "registered" : "refused");
            out_json_str(stdout, e->detail);
            fputs("}", stdout);
        } else {
            printf("%s  kiosk %s  terminal %s  subscriber #%s  %s\n", when,
                   e->kiosk, e->terminal_id,
                   e->subscriber_tag[0] ? e->subscriber_tag : "?", e->detail);
        }
    }
    if (c->json)
        fputs("]}\n", stdout);
    free(v);
    simsync_node_close(n);
    return 0;
}

/* ------------------------------------------------------------ kiosk side */

int
cmd_kiosk_enroll(struct cli *c, int argc, char **argv)
{
    const char *file = NULL, *pos[1];
    const struct cli_opt opts[] = {
        {"--credential-file", &file, NULL},
        {NULL, NULL, NULL},
    };
    struct simsync_node *n = NULL;
    char cred[SIMSYNC_KIOSK_CRED_MAX + 64];
    enum cli_parse_result parsed;
    size_t npos;
    int rc, code;

    parsed = cli_parse(c, argc, argv, opts, pos, 0, 0, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    if (file == NULL)
        return out_usage(c, "--credential-file F is needed (the text "
                            "'simsync hub kiosk add' printed)");
    code = cli_read_credential(c, file, cred, sizeof(cred));
    if (code != 0)
        return code;
    code = out_node_open(c, &n);
    if (code == 0) {
        rc = simsync_kiosk_enroll(n, cred);
        if (rc == SIMSYNC_EINVAL)
            code = out_usage(c, "%s: %s", file, simsync_node_errmsg(n));
        else if (rc != SIMSYNC_OK)
            code = out_fail(c, n, rc, "cannot keep the credential");
        else if (c->json)
            fputs("{\"ok\":true}\n", stdout);
        else
            printf("Kiosk credential stored in %s.\n", c->home);
    }
    secret_wipe(cred, sizeof(cred));
    simsync_node_close(n);
    return code;
}

static void
print_result(struct cli *c, const struct simsync_kiosk_result *r,
             const char *hub, const char *hub_id, const char *save)
{
    if (c->json) {
        fputs("{\"ok\":true,\"kiosk\":", stdout);
        out_json_str(stdout, r->kiosk);
        fputs(",\"terminal_id\":", stdout);
        out_json_str(stdout, r->terminal_id);
        fputs(",\"node_id\":", stdout);
        out_json_str(stdout, r->node_id);
        fputs(",\"subscriber\":", stdout);
        out_json_str(stdout, r->subscriber_masked);
        if (r->saved) {
            fputs(",\"saved\":", stdout);
            out_json_str(stdout, save);
            fputs("}\n", stdout);
            return;
        }
        printf(",\"subscriber_is_new\":%s,\"notified\":%" PRIu32 "}\n",
               r->subscriber_is_new ? "true" : "false", r->notified);
        return;
    }
    if (r->saved) {
        printf("Signed the registration of terminal %s (node %s) for "
               "subscriber %s\ninto %s; send it within 24 hours with "
               "'simsync kiosk send %s --hub HOST:PORT --hub-id ID'.\n",
               r->terminal_id, r->node_id, r->subscriber_masked, save, save);
        return;
    }
    printf("Registered terminal %s (node %s) for subscriber %s at the hub.\n",
           r->terminal_id, r->node_id, r->subscriber_masked);
    if (r->notified > 0)
        printf("The subscriber's %" PRIu32 " other terminal%s will be told "
               "at their next contact.\n",
               r->notified, r->notified == 1 ? "" : "s");
    printf("On the handset, with the SIM inserted: 'simsync register --kiosk "
           "--hub %s --hub-id %s'%s.\n",
           hub ? hub : "HOST:PORT", hub_id ? hub_id : "HUB-ID",
           r->subscriber_is_new
               ? " (a new subscriber: it makes the data key and prints the "
                 "recovery secret)"
               : " (an existing subscriber: it needs the recovery secret)");
}

int
cmd_kiosk_register(struct cli *c, int argc, char **argv)
{
    struct simsync_kiosk_request q = {0};
    const struct cli_opt opts[] = {
        {"--hub", &q.hub_addr, NULL},
        {"--hub-id", &q.hub_id, NULL},
        {"--subscriber", &q.subscriber, NULL},
        {"--sim", &q.sim_file, NULL},
        {"--terminal", &q.terminal_peer, NULL},
        {"--terminal-id", &q.terminal_id, NULL},
        {"--node-key", &q.node_key, NULL},
        {"--save", &q.save, NULL},
        {NULL, NULL, NULL},
    };
    const char *pos[1];
    struct simsync_node *n = NULL;
    struct simsync_kiosk_result r;
    char pin[CLI_SECRET_MAX];
    enum cli_parse_result parsed;
    size_t npos;
    int rc, code, have_pin;

    parsed = cli_parse(c, argc, argv, opts, pos, 0, 0, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    if (q.hub_id == NULL || (q.hub_addr == NULL && q.save == NULL))
        return out_usage(c, "--hub HOST:PORT and --hub-id ID are needed "
                            "(or --hub-id and --save FILE)");
    if (q.hub_addr != NULL && cli_check_addr(c, "--hub", q.hub_addr, 1) != 0)
        return CLI_EXIT_USAGE;
    if (q.sim_file == NULL)
        return out_usage(c, "--sim FILE is needed: the kiosk checks the PIN "
                            "on the subscriber's SIM");
    if (q.subscriber != NULL) {
        size_t len = strlen(q.subscriber);
        if (len < 5 || len > 15 || strspn(q.subscriber, "0123456789") != len)
            return out_usage(c, "--subscriber must be 5-15 digits");
    }
    if ((q.terminal_peer != NULL) ==
            (q.terminal_id != NULL || q.node_key != NULL) ||
        (q.terminal_peer == NULL &&
         (q.terminal_id == NULL || q.node_key == NULL)))
        return out_usage(c, "give either --terminal PEER (read from the "
                            "handset) or both --terminal-id ID and "
                            "--node-key KEY");
    code = out_node_open(c, &n);
    if (code != 0)
        return code;
    code = secret_get(c, SECRET_PIN, 1, pin, sizeof(pin), &have_pin);
    if (code == 0) {
        q.pin = pin;
        rc = simsync_kiosk_register(n, &q, &r);
        if (rc == SIMSYNC_EINVAL)
            code = out_usage(c, "%s", simsync_node_errmsg(n));
        else if (rc != SIMSYNC_OK)
            code = out_fail(c, n, rc, "kiosk registration failed");
        else
            print_result(c, &r, q.hub_addr, q.hub_id, q.save);
    }
    secret_wipe(pin, sizeof(pin));
    simsync_node_close(n);
    return code;
}

int
cmd_kiosk_send(struct cli *c, int argc, char **argv)
{
    const char *hub = NULL, *hub_id = NULL, *pos[1];
    const struct cli_opt opts[] = {
        {"--hub", &hub, NULL},
        {"--hub-id", &hub_id, NULL},
        {NULL, NULL, NULL},
    };
    struct simsync_node *n = NULL;
    struct simsync_kiosk_result r;
    enum cli_parse_result parsed;
    size_t npos;
    int rc, code;

    parsed = cli_parse(c, argc, argv, opts, pos, 1, 1, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    if (hub == NULL || hub_id == NULL)
        return out_usage(c, "--hub HOST:PORT and --hub-id ID are both needed");
    if (cli_check_addr(c, "--hub", hub, 1) != 0)
        return CLI_EXIT_USAGE;
    code = out_node_open(c, &n);
    if (code != 0)
        return code;
    rc = simsync_kiosk_send(n, hub, hub_id, pos[0], &r);
    if (rc != SIMSYNC_OK)
        code = out_fail(c, n, rc, "kiosk registration failed");
    else
        print_result(c, &r, hub, hub_id, NULL);
    simsync_node_close(n);
    return code;
}

/* ------------------------------------------------------------ handset */

static void
offer_listening(void *arg, const char *addr)
{
    struct cli *c = arg;
    FILE *f = c->json ? stderr : stdout;

    fprintf(f,
            "Offering this terminal to a kiosk on %s (terminal ID and node "
            "key only).\n",
            addr);
    fflush(f);
}

int
cmd_kiosk_offer(struct cli *c, int argc, char **argv)
{
    const char *listen = NULL, *timeout = NULL, *pos[1];
    const struct cli_opt opts[] = {
        {"--listen", &listen, NULL},
        {"--timeout", &timeout, NULL},
        {NULL, NULL, NULL},
    };
    struct simsync_offer_opts o = {0};
    struct simsync_node *n = NULL;
    char kiosk_node[40], id[64];
    enum cli_parse_result parsed;
    unsigned long secs = 0;
    size_t npos;
    int rc, code;

    parsed = cli_parse(c, argc, argv, opts, pos, 0, 0, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    if (listen == NULL)
        return out_usage(c, "--listen ADDR is needed (e.g. 0.0.0.0:7080, "
                            "tcp:127.0.0.1:7080)");
    if (timeout != NULL && cli_parse_ulong(timeout, 1, 86400, &secs) != 0)
        return out_usage(c, "--timeout wants seconds (1-86400), not '%s'",
                         timeout);
    code = out_node_open(c, &n);
    if (code != 0)
        return code;
    o.listen = listen;
    o.timeout_s = (unsigned)secs;
    o.listening = offer_listening;
    o.arg = c;
    rc = simsync_kiosk_offer(n, &o, kiosk_node);
    if (rc != SIMSYNC_OK) {
        code = out_fail(c, n, rc, "the offer failed");
    } else if (c->json) {
        fputs("{\"ok\":true,\"terminal_id\":", stdout);
        out_json_str(stdout, simsync_node_terminal_id(n));
        fputs(",\"kiosk_node\":", stdout);
        out_json_str(stdout, kiosk_node);
        fputs("}\n", stdout);
    } else {
        if (simsync_node_id(n, id, sizeof(id)) != SIMSYNC_OK)
            id[0] = '\0';
        printf("Gave terminal ID %s and node ID %s to the kiosk %s.\n",
               simsync_node_terminal_id(n), id, kiosk_node);
    }
    simsync_node_close(n);
    return code;
}

int
cmd_kiosk_audit(struct cli *c, int argc, char **argv)
{
    const char *pos[1];
    struct simsync_node *n = NULL;
    struct simsync_kiosk_attempt *v;
    size_t npos, count;
    char when[64];
    int rc, code;

    code = cli_parse_open(c, argc, argv, pos, 0, 0, &npos, &n);
    if (code != 0)
        return code;
    rc = simsync_kiosk_attempts(n, &v, &count);
    if (rc != SIMSYNC_OK) {
        code = out_fail(c, n, rc, "cannot read the kiosk's audit");
        simsync_node_close(n);
        return code;
    }
    if (c->json)
        fputs("{\"attempts\":[", stdout);
    else if (count == 0)
        printf("No registrations attempted here yet.\n");
    for (size_t i = 0; i < count; i++) {
        const struct simsync_kiosk_attempt *e = &v[i];
        if (c->json) {
            printf("%s{\"time_ms\":%" PRIu64 ",\"result\":", i ? "," : "",
                   e->time_ms);
            out_json_str(stdout, e->result);
            fputs(",\"terminal_id\":", stdout);
            out_json_str(stdout, e->terminal_id);
            fputs(",\"node_id\":", stdout);
            out_json_str(stdout, e->node_id);
            fputs(",\"subscriber\":", stdout);
            out_json_str(stdout, e->subscriber_masked);
            fputs(",\"detail\":", stdout);
            out_json_str(stdout, e->detail);
            fputs("}", stdout);
        } else {
            out_format_time(e->time_ms, when, sizeof(when));
            printf("%s  %-10s  terminal %s  subscriber %s  %s\n", when,
                   e->result, e->terminal_id, e->subscriber_masked, e->detail);
        }
    }
    if (c->json)
        fputs("]}\n", stdout);
    free(v);
    simsync_node_close(n);
    return 0;
}
