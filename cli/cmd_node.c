/* cmd_node.c -- commands about the node itself: `init`, `id`,
 * `hub serve`, `register` and `classes`. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define ID_MAX 64 /* a node ID with its NUL fits easily */

/* Set by SIGINT/SIGTERM while the hub serves; the library polls it. */

/* Make the parent directories of `path` (mode 0700), like mkdir -p
 * without the last component. Returns 0 or -1 with errno set. */
static int
make_parents(const char *path)
{
    char buf[4096];
    size_t len = strlen(path);
    char *last;

    if (len >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, len + 1);
    while (len > 1 && buf[len - 1] == '/')
        buf[--len] = '\0';
    last = strrchr(buf, '/');
    if (last == NULL || last == buf)
        return 0; /* the parent is "." or "/" */
    *last = '\0';
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Write `dir` made absolute against the current directory into buf.
 * Returns 0 or -1. */
static int
absolute_path(const char *dir, char *buf, size_t len)
{
    char cwd[4096];
    int n;

    if (dir[0] == '/') {
        n = snprintf(buf, len, "%s", dir);
    } else {
        if (getcwd(cwd, sizeof(cwd)) == NULL)
            return -1;
        n = snprintf(buf, len, "%s/%s", cwd, dir);
    }
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
cmd_init(struct cli *c, int argc, char **argv)
{
    const char *role = NULL, *tid = NULL, *data = NULL, *pos[1];
    const char *cred_file = NULL;
    const struct cli_opt opts[] = {
        {"--role", &role, NULL},
        {"--terminal-id", &tid, NULL},
        {"--data", &data, NULL},
        {"--credential-file", &cred_file, NULL},
        {NULL, NULL, NULL},
    };
    struct simsync_node *n = NULL;
    char data_abs[4096], id[ID_MAX], cred[SIMSYNC_KIOSK_CRED_MAX + 64];
    enum cli_parse_result parsed;
    size_t npos;
    int rc, code;

    parsed = cli_parse(c, argc, argv, opts, pos, 0, 0, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    if (role == NULL)
        return out_usage(c, "--role is needed (terminal, hub, desktop or "
                            "kiosk)");
    if (strcmp(role, "terminal") != 0 && strcmp(role, "hub") != 0 &&
        strcmp(role, "desktop") != 0 && strcmp(role, "kiosk") != 0)
        return out_usage(c,
                         "unknown role '%s' (terminal, hub, desktop or "
                         "kiosk)",
                         role);
    if (cred_file != NULL && strcmp(role, "kiosk") != 0)
        return out_usage(c, "--credential-file is for --role kiosk only");
    if (tid != NULL && (strlen(tid) > 63 || strpbrk(tid, "=\n") != NULL))
        return out_usage(c, "--terminal-id must be 1-63 characters without "
                            "'=' or line breaks");
    if (data != NULL && absolute_path(data, data_abs, sizeof(data_abs)) != 0)
        return out_usage(c, "--data: the path '%s' is too long", data);
    if (c->home == NULL)
        return out_usage(c, "no home directory is known: give --home DIR "
                            "or set $SIMSYNC_HOME");
    if (make_parents(c->home) != 0)
        return out_error(c, CLI_EXIT_ERROR,
                         "cannot initialise a node in %s: cannot make its "
                         "parent directories: %s. Check the path and "
                         "permissions",
                         c->home, strerror(errno));
    cred[0] = '\0';
    if (cred_file != NULL &&
        (code = cli_read_credential(c, cred_file, cred, sizeof(cred))) != 0)
        return code;
    rc = simsync_init(c->home, role, tid, data != NULL ? data_abs : NULL);
    if (rc == SIMSYNC_EEXIST)
        return out_error(c, simsync_exit_code(rc),
                         "cannot initialise a node in %s: one is already "
                         "there. Use another --home, or remove that "
                         "directory to start over",
                         c->home);
    if (rc != SIMSYNC_OK) {
        char what[4200];
        snprintf(what, sizeof(what), "cannot initialise a node in %s", c->home);
        return out_fail(c, NULL, rc, what);
    }
    code = out_node_open(c, &n);
    if (code != 0) {
        secret_wipe(cred, sizeof(cred));
        return code;
    }
    if (cred[0] != '\0') {
        rc = simsync_kiosk_enroll(n, cred);
        secret_wipe(cred, sizeof(cred));
        if (rc != SIMSYNC_OK) {
            code = out_error(c,
                             rc == SIMSYNC_EINVAL ? CLI_EXIT_USAGE
                                                  : simsync_exit_code(rc),
                             "init: the kiosk was made in %s but %s: %s. "
                             "Give it the right one with 'simsync kiosk "
                             "enroll --credential-file F'",
                             c->home, cred_file, simsync_node_errmsg(n));
            simsync_node_close(n);
            return code;
        }
    }
    rc = simsync_node_id(n, id, sizeof(id));
    if (rc != SIMSYNC_OK) {
        code = out_fail(c, n, rc, "cannot read the new node's ID");
    } else if (c->json) {
        fputs("{\"ok\":true,\"home\":", stdout);
        out_json_str(stdout, c->home);
        fputs(",\"role\":", stdout);
        out_json_str(stdout, simsync_node_role(n));
        fputs(",\"id\":", stdout);
        out_json_str(stdout, id);
        fputs(",\"terminal_id\":", stdout);
        out_json_str(stdout, simsync_node_terminal_id(n));
        fputs("}\n", stdout);
    } else {
        printf("Initialised a %s node in %s.\n", role, c->home);
        printf("Node ID: %s\n", id);
        if (strcmp(role, "hub") == 0)
            printf("Serve with 'simsync hub serve --listen HOST:PORT'; "
                   "terminals register with --hub-id %s.\n",
                   id);
        else if (strcmp(role, "kiosk") == 0)
            printf("%s\n", cred_file != NULL
                               ? "Credential stored. Next: 'simsync kiosk "
                                 "register ...'."
                               : "Next: 'simsync kiosk enroll "
                                 "--credential-file F' with the credential "
                                 "'simsync hub kiosk add' printed.");
        else
            printf("Terminal ID: %s\nNext: 'simsync sim insert FILE', "
                   "then 'simsync register --hub HOST:PORT --hub-id "
                   "HUB-ID'.\n",
                   simsync_node_terminal_id(n));
    }
    simsync_node_close(n);
    return code;
}

int
cmd_id(struct cli *c, int argc, char **argv)
{
    const char *pos[1];
    struct simsync_node *n = NULL;
    char id[ID_MAX], key[65];
    size_t npos;
    int rc, code;

    code = cli_parse_open(c, argc, argv, pos, 0, 0, &npos, &n);
    if (code != 0)
        return code;
    rc = simsync_node_id(n, id, sizeof(id));
    if (rc != SIMSYNC_OK) {
        code = out_fail(c, n, rc, "cannot read the node ID");
    } else if (c->json) {
        fputs("{\"id\":", stdout);
        out_json_str(stdout, id);
        fputs(",\"role\":", stdout);
        out_json_str(stdout, simsync_node_role(n));
        fputs(",\"terminal_id\":", stdout);
        out_json_str(stdout, simsync_node_terminal_id(n));
        if (simsync_node_key(n, key, sizeof(key)) == SIMSYNC_OK) {
            fputs(",\"node_key\":", stdout);
            out_json_str(stdout, key);
        }
        fputs("}\n", stdout);
    } else {
        printf("%s\n", id);
    }
    simsync_node_close(n);
    return code;
}

int
cmd_hub_serve(struct cli *c, int argc, char **argv)
{
    const char *listen = NULL, *idle = NULL;
    struct simsync_node *n = NULL;
    unsigned long secs;
    int rc, code = cli_serve_open(c, argc, argv, &listen, &idle, &n);

    if (code != 0)
        return code;
    if (idle != NULL) {
        if (cli_parse_ulong(idle, 1, 86400, &secs) != 0 ||
            simsync_hub_set_idle_timeout(n, (unsigned)secs) != SIMSYNC_OK) {
            simsync_node_close(n);
            return out_usage(c,
                             "--idle-timeout takes seconds, 1 to 86400 "
                             "(not '%s')",
                             idle);
        }
    }
    fflush(stdout);
    rc = simsync_hub_serve(n, listen, &cli_stop, NULL, 0);
    if (rc != SIMSYNC_OK && rc != SIMSYNC_ESTATE &&
        simsync_node_errmsg(n)[0] != '\0')
        /* The usual cause is the address, not files: say so. */
        code = out_error(c, simsync_exit_code(rc),
                         "the hub cannot serve: %s. Check that %s is a free "
                         "address of this machine",
                         simsync_node_errmsg(n), listen);
    else if (rc != SIMSYNC_OK)
        code = out_fail(c, n, rc, "the hub cannot serve");
    simsync_node_close(n);
    return code;
}

/* Print a comma-separated list as a JSON array of strings. */
static void
print_json_list(const char *list)
{
    const char *p = list;
    char item[64];
    int first = 1;

    fputc('[', stdout);
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        if (len > 0 && len < sizeof(item)) {
            memcpy(item, p, len);
            item[len] = '\0';
            if (!first)
                fputc(',', stdout);
            out_json_str(stdout, item);
            first = 0;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    fputc(']', stdout);
}

static void
print_registered(struct cli *c, struct simsync_node *n, const char *hub,
                 const char *recovery)
{
    struct simsync_sim_info info;
    char classes[256];

    if (simsync_sim_info(n, &info) != SIMSYNC_OK)
        info.subscriber[0] = '\0';
    if (simsync_classes_get(n, classes, sizeof(classes)) != SIMSYNC_OK)
        classes[0] = '\0';
    if (c->json) {
        fputs("{\"ok\":true,\"subscriber\":", stdout);
        out_json_str(stdout, info.subscriber);
        fputs(",\"terminal_id\":", stdout);
        out_json_str(stdout, simsync_node_terminal_id(n));
        fputs(",\"hub\":", stdout);
        out_json_str(stdout, hub);
        fputs(",\"classes\":", stdout);
        print_json_list(classes);
        fputs(",\"recovery\":", stdout);
        if (recovery[0] != '\0')
            out_json_str(stdout, recovery);
        else
            fputs("null", stdout);
        fputs("}\n", stdout);
    } else {
        printf("Registered %s %s for subscriber %s at the hub %s.\n"
               "Classes synced: %s.\n",
               simsync_node_role(n), simsync_node_terminal_id(n),
               info.subscriber, hub, classes);
        if (recovery[0] != '\0')
            printf("\nRecovery secret: %s\n"
                   "WRITE THIS DOWN and keep it away from this terminal. "
                   "It is shown only\nthis once; registering another "
                   "terminal for this subscriber needs it.\n\n",
                   recovery);
        printf("Next: put files under the class folders and run "
               "'simsync sync'.\n");
    }
    fflush(stdout);
}

int
cmd_register(struct cli *c, int argc, char **argv)
{
    const char *hub = NULL, *hub_id = NULL, *classes = NULL, *pos[1];
    int kiosk = 0;
    const struct cli_opt opts[] = {
        {"--hub", &hub, NULL},
        {"--hub-id", &hub_id, NULL},
        {"--classes", &classes, NULL},
        {"--kiosk", NULL, &kiosk},
        {NULL, NULL, NULL},
    };
    struct simsync_node *n = NULL;
    char pin[CLI_SECRET_MAX], password[CLI_SECRET_MAX];
    char recovery[CLI_SECRET_MAX], recovery_out[64];
    enum cli_parse_result parsed;
    size_t npos;
    int rc, code, have_pin, have_pw, have_rec = 0;

    parsed = cli_parse(c, argc, argv, opts, pos, 0, 0, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    if (hub == NULL || hub_id == NULL)
        return out_usage(c, "--hub HOST:PORT and --hub-id ID are both "
                            "needed ('simsync id' on the hub shows its ID)");
    if (cli_check_addr(c, "--hub", hub, 1) != 0)
        return CLI_EXIT_USAGE;
    code = out_node_open(c, &n);
    if (code != 0)
        return code;
    if (strcmp(simsync_node_role(n), "hub") == 0 ||
        strcmp(simsync_node_role(n), "kiosk") == 0) {
        code = out_error(c, CLI_EXIT_ERROR,
                         "cannot register: %s is a %s node. Register "
                         "from a terminal's home (--home)",
                         c->home, simsync_node_role(n));
        simsync_node_close(n);
        return code;
    }
    recovery_out[0] = '\0';
    password[0] = '\0';
    code = secret_get(c, SECRET_PIN, 1, pin, sizeof(pin), &have_pin);
    if (code == 0 && !kiosk)
        code = secret_get(c, SECRET_PASSWORD, 1, password, sizeof(password),
                          &have_pw);
    if (code == 0)
        code = secret_get(c, SECRET_RECOVERY, 0, recovery, sizeof(recovery),
                          &have_rec);
    if (code == 0) {
        if (kiosk)
            rc = simsync_register_kiosk(n, hub, hub_id, classes, pin,
                                        have_rec ? recovery : NULL,
                                        recovery_out, sizeof(recovery_out));
        else
            rc = simsync_register(n, hub, hub_id, classes, pin, password,
                                  have_rec ? recovery : NULL, recovery_out,
                                  sizeof(recovery_out));
        if (rc != SIMSYNC_OK)
            code = out_fail(c, n, rc, "registration failed");
        else
            print_registered(c, n, hub, recovery_out);
    }
    secret_wipe(pin, sizeof(pin));
    secret_wipe(password, sizeof(password));
    secret_wipe(recovery, sizeof(recovery));
    secret_wipe(recovery_out, sizeof(recovery_out));
    simsync_node_close(n);
    return code;
}

int
cmd_classes(struct cli *c, int argc, char **argv)
{
    const char *pos[1];
    struct simsync_node *n = NULL;
    char list[256];
    size_t npos;
    int rc = SIMSYNC_OK, code;

    code = cli_parse_open(c, argc, argv, pos, 0, 1, &npos, &n);
    if (code != 0)
        return code;
    if (npos == 1) {
        rc = simsync_classes_set(n, pos[0]);
        if (rc == SIMSYNC_EINVAL) {
            code = out_usage(c,
                             "%s (known classes: contacts, mail, "
                             "browser, archive, apps, pim, settings, "
                             "rights)",
                             simsync_node_errmsg(n)[0] != '\0'
                                 ? simsync_node_errmsg(n)
                                 : "bad class list");
        } else if (rc != SIMSYNC_OK) {
            code = out_fail(c, n, rc, "cannot set the classes");
        }
    }
    if (code == 0) {
        rc = simsync_classes_get(n, list, sizeof(list));
        if (rc != SIMSYNC_OK) {
            code = out_fail(c, n, rc, "cannot read the classes");
        } else if (c->json) {
            fputs("{\"classes\":", stdout);
            print_json_list(list);
            fputs("}\n", stdout);
        } else {
            printf("%s\n", list);
        }
    }
    simsync_node_close(n);
    return code;
}

int
cmd_hub_stats(struct cli *c, int argc, char **argv)
{
    struct simsync_hub_stats st;
    struct simsync_node *n = NULL;
    const char *pos[1];
    size_t npos;
    int rc, code;

    code = cli_parse_open(c, argc, argv, pos, 0, 0, &npos, &n);
    if (code != 0)
        return code;
    rc = simsync_hub_stats(n, &st);
    if (rc != SIMSYNC_OK)
        code = out_fail(c, n, rc, "cannot read the hub's totals");
    else if (c->json)
        printf("{\"subscribers\":%" PRIu64 ",\"terminals\":%" PRIu64
               ",\"items\":%" PRIu64 ",\"tombstones\":%" PRIu64
               ",\"siblings\":%" PRIu64 ",\"chunks\":%" PRIu64
               ",\"chunk_bytes\":%" PRIu64 "}\n",
               st.subscribers, st.terminals, st.items, st.tombstones,
               st.siblings, st.chunks, st.chunk_bytes);
    else
        printf("subscribers  %" PRIu64 "\nterminals    %" PRIu64
               "\nitems        %" PRIu64 "\ntombstones   %" PRIu64
               "\nsiblings     %" PRIu64 "\nchunks       %" PRIu64 " (%" PRIu64
               " bytes)\n",
               st.subscribers, st.terminals, st.items, st.tombstones,
               st.siblings, st.chunks, st.chunk_bytes);
    simsync_node_close(n);
    return code;
}
