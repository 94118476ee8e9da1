/* cmd_sim.c -- `simsync sim ...`: make a virtual SIM file, insert it into
 * this terminal (the SIM checks the PIN), remove it (after the daemon's
 * upload, when one runs), show its state, and unblock it with the PUK. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int
cmd_sim_create(struct cli *c, int argc, char **argv)
{
    const char *sub = NULL, *pin = NULL, *puk = NULL, *pos[1];
    const struct cli_opt opts[] = {
        {"--subscriber", &sub, NULL},
        {"--pin", &pin, NULL},
        {"--puk", &puk, NULL},
        {NULL, NULL, NULL},
    };
    enum cli_parse_result parsed;
    size_t npos;
    int rc;

    parsed = cli_parse(c, argc, argv, opts, pos, 1, 1, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    if (sub == NULL || pin == NULL || puk == NULL)
        return out_usage(c, "--subscriber, --pin and --puk are all needed");
    rc = simsync_sim_create(pos[0], sub, pin, puk);
    if (rc == SIMSYNC_EINVAL)
        return out_usage(c, "the subscriber ID must be 5-15 digits, the PIN "
                            "4-8 digits and the PUK 8 digits");
    if (rc == SIMSYNC_EEXIST)
        return out_error(c, simsync_exit_code(rc),
                         "cannot create the SIM %s: the file already "
                         "exists. Choose another name or remove it",
                         pos[0]);
    if (rc != SIMSYNC_OK) {
        char what[1100];
        snprintf(what, sizeof(what), "cannot create the SIM %s", pos[0]);
        return out_fail(c, NULL, rc, what);
    }
    printf("Created SIM %s for subscriber %s.\n", pos[0], sub);
    return CLI_EXIT_OK;
}

int
cmd_sim_insert(struct cli *c, int argc, char **argv)
{
    const char *pos[1];
    struct simsync_node *n = NULL;
    struct simsync_sim_info info;
    char pin[CLI_SECRET_MAX];
    size_t npos;
    int rc, have, code;

    code = cli_parse_open(c, argc, argv, pos, 1, 1, &npos, &n);
    if (code != 0)
        return code;
    code = secret_get(c, SECRET_PIN, 1, pin, sizeof(pin), &have);
    if (code == 0) {
        rc = simsync_sim_insert(n, pos[0], pin);
        if (rc != SIMSYNC_OK)
            code = out_fail(c, n, rc, "cannot insert the SIM");
    }
    secret_wipe(pin, sizeof(pin));
    if (code == 0 && simsync_sim_info(n, &info) == SIMSYNC_OK &&
        info.inserted) {
        printf("SIM %s inserted: subscriber %s.\n", info.file, info.subscriber);
        if (info.bound && !info.matches_binding)
            printf("Note: this terminal is registered for another "
                   "subscriber; it will not sync with this SIM.\n");
        else if (!info.bound)
            printf("Next: register this terminal with 'simsync register "
                   "--hub HOST:PORT --hub-id HUB-ID'.\n");
    }
    simsync_node_close(n);
    return code;
}

/* What `sim remove` waits for, as the daemon tells it. */
static void
removal_progress(void *arg, const char *line)
{
    (void)arg;
    printf("Daemon: %s\n", line);
    fflush(stdout);
}

int
cmd_sim_remove(struct cli *c, int argc, char **argv)
{
    const char *pos[1];
    struct simsync_node *n = NULL;
    size_t npos;
    int rc, code, daemon = 0;

    code = cli_parse_open(c, argc, argv, pos, 0, 0, &npos, &n);
    if (code != 0)
        return code;
    /* A running daemon uploads pending changes first; this waits for it
     * (at most sim.remove_timeout_seconds). */
    rc = simsync_sim_remove_wait(n, removal_progress, NULL, &daemon);
    if (rc != SIMSYNC_OK)
        code = out_fail(c, n, rc, "cannot remove the SIM");
    else
        printf("SIM removed.\n");
    simsync_node_close(n);
    return code;
}

static void
print_status_json(const struct simsync_sim_info *s)
{
    printf("{\"inserted\":%s,\"file\":", s->inserted ? "true" : "false");
    out_json_str(stdout, s->file);
    fputs(",\"subscriber\":", stdout);
    out_json_str(stdout, s->subscriber);
    printf(",\"pin_tries_left\":%d,\"puk_tries_left\":%d,\"blocked\":%s,"
           "\"bound\":%s,\"matches_binding\":%s}\n",
           s->pin_tries_left, s->puk_tries_left, s->blocked ? "true" : "false",
           s->bound ? "true" : "false", s->matches_binding ? "true" : "false");
}

static void
print_status_text(const struct simsync_sim_info *s)
{
    if (!s->inserted) {
        printf("SIM:         none inserted\n");
        printf("registered:  %s\n", s->bound ? "yes" : "no");
        return;
    }
    printf("SIM:         %s\n", s->file);
    printf("subscriber:  %s\n", s->subscriber);
    printf("PIN tries:   %d left\n", s->pin_tries_left);
    printf("PUK tries:   %d left\n", s->puk_tries_left);
    printf("blocked:     %s\n", s->blocked ? "yes" : "no");
    printf("registered:  %s\n", !s->bound ? "no"
                                : s->matches_binding
                                    ? "yes, for this SIM's subscriber"
                                    : "yes, for ANOTHER subscriber (no sync "
                                      "with this SIM)");
}

int
cmd_sim_status(struct cli *c, int argc, char **argv)
{
    const char *pos[1];
    struct simsync_node *n = NULL;
    struct simsync_sim_info info;
    size_t npos;
    int rc, code;

    code = cli_parse_open(c, argc, argv, pos, 0, 0, &npos, &n);
    if (code != 0)
        return code;
    rc = simsync_sim_info(n, &info);
    if (rc != SIMSYNC_OK)
        code = out_fail(c, n, rc, "cannot read the SIM state");
    else if (c->json)
        print_status_json(&info);
    else
        print_status_text(&info);
    simsync_node_close(n);
    return code;
}

int
cmd_sim_unblock(struct cli *c, int argc, char **argv)
{
    const char *puk = NULL, *new_pin = NULL, *pos[1];
    const struct cli_opt opts[] = {
        {"--puk", &puk, NULL},
        {"--new-pin", &new_pin, NULL},
        {NULL, NULL, NULL},
    };
    enum cli_parse_result parsed;
    size_t npos;
    int rc;

    parsed = cli_parse(c, argc, argv, opts, pos, 1, 1, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    if (puk == NULL || new_pin == NULL)
        return out_usage(c, "--puk and --new-pin are both needed");
    rc = simsync_sim_unblock(pos[0], puk, new_pin);
    switch (rc) {
    case SIMSYNC_OK:
        printf("SIM %s unblocked; the new PIN is set.\n", pos[0]);
        return CLI_EXIT_OK;
    case SIMSYNC_EINVAL:
        return out_usage(c, "the PUK must be 8 digits and the new PIN 4-8 "
                            "digits");
    case SIMSYNC_EPIN:
        return out_error(c, simsync_exit_code(rc),
                         "cannot unblock the SIM %s: the SIM refused the "
                         "PUK. Check the PUK; after 10 wrong PUKs the SIM "
                         "is blocked for good",
                         pos[0]);
    case SIMSYNC_EBLOCKED:
        return out_error(c, simsync_exit_code(rc),
                         "cannot unblock the SIM %s: the PUK is blocked "
                         "too (10 wrong PUKs). The SIM cannot be used "
                         "again; get a new one",
                         pos[0]);
    default: {
        char what[1100];
        snprintf(what, sizeof(what), "cannot unblock the SIM %s", pos[0]);
        return out_fail(c, NULL, rc, what);
    }
    }
}
