/* out.c -- how the program reports: one stderr line per error in the form
 * "simsync: WHAT FAILED: WHY. WHAT TO DO", the exit code that goes with
 * it, the JSON error object under --json, and a small JSON string writer.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

void
out_json_str(FILE *f, const char *s)
{
    const char *str = s != NULL ? s : "";
    size_t len = strlen(str);

    fputc('"', f);
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)str[i];
        size_t n = simsync_utf8_seq_len(str + i, len - i);

        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", (unsigned)c);
        } else if (n == 0) {
            /* A name is bytes; JSON is UTF-8: a byte that is no UTF-8
             * becomes U+FFFD, so the output stays valid JSON. */
            fputs("\\ufffd", f);
        } else {
            fwrite(str + i, 1, n, f); /* UTF-8 passes through unchanged */
            i += n;
            continue;
        }
        i++;
    }
    fputc('"', f);
}

/* Print the message on stderr, and as a JSON error under --json. */
static void
emit(struct cli *c, int code, const char *msg)
{
    fprintf(stderr, "simsync: %s\n", msg);
    if (c->json) {
        fputs("{\"ok\":false,\"error\":", stdout);
        out_json_str(stdout, msg);
        printf(",\"exit\":%d}\n", code);
        fflush(stdout);
    }
}

int
out_usage(struct cli *c, const char *fmt, ...)
{
    char why[1024], msg[1200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (c->name != NULL)
        snprintf(msg, sizeof(msg), "%s: %s", c->name, why);
    else
        snprintf(msg, sizeof(msg), "%s", why);
    emit(c, CLI_EXIT_USAGE, msg);
    if (c->usage != NULL)
        fprintf(stderr, "usage: %s", c->usage);
    fprintf(stderr, "Run 'simsync --help' for all commands.\n");
    return CLI_EXIT_USAGE;
}

int
out_error(struct cli *c, int code, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emit(c, code, msg);
    return code;
}

/* What to do about `rc` when the library gave no explanation of its own,
 * or gave one that does not name a command to run. "" when nothing useful
 * can be said. */
static const char *
advice(int rc)
{
    switch (rc) {
    case SIMSYNC_EINVAL:
        return "Check the arguments ('simsync --help')";
    case SIMSYNC_ENOMEM:
        return "Free some memory and try again";
    case SIMSYNC_EIO:
        return "Check the files and their permissions";
    case SIMSYNC_ENOSPC:
        return "Free some disk space and try again";
    case SIMSYNC_ENOTFOUND:
        return "Check the name and try again";
    case SIMSYNC_EEXIST:
        return "Choose another name or remove the old one";
    case SIMSYNC_EPIN:
        return "Check the PIN and try again (after 3 wrong PINs the SIM "
               "blocks; 'simsync sim unblock' needs the PUK)";
    case SIMSYNC_EBLOCKED:
        return "Unblock it with 'simsync sim unblock FILE --puk PUK "
               "--new-pin PIN'";
    case SIMSYNC_ENOSIM:
        return "Insert one with 'simsync sim insert FILE'";
    case SIMSYNC_EPASSWORD:
        return "Give the password this terminal was registered with";
    case SIMSYNC_ECONNECT:
        return "Check the address and that 'simsync hub serve' runs there";
    case SIMSYNC_ECLOSED:
    case SIMSYNC_ETIMEOUT:
        return "Check the link and run the command again; what was "
               "committed is kept";
    case SIMSYNC_EPROTO:
    case SIMSYNC_ECRYPTO:
        return "The data or the peer cannot be trusted; nothing was "
               "accepted from it";
    case SIMSYNC_ETOOBIG:
        return "It is over one of simsync's limits (docs/protocol.md lists "
               "them), or the peer cannot be trusted; nothing was accepted "
               "from it";
    case SIMSYNC_EMASSDEL:
        return "Check the class folders, then confirm with "
               "'simsync sync --allow-delete'";
    case SIMSYNC_ESTATE:
        return "Check --home and the node's role ('simsync id --json'); a "
               "terminal must be registered first ('simsync register')";
    default:
        return "";
    }
}

int
out_fail(struct cli *c, const struct simsync_node *n, int rc, const char *what)
{
    const char *lib = n != NULL ? simsync_node_errmsg(n) : "";
    const char *why = lib[0] != '\0' ? lib : simsync_strerror(rc);
    const char *todo = advice(rc);
    int code = simsync_exit_code(rc);

    if (code == 0)
        code = CLI_EXIT_ERROR; /* a "not ready" that reached the user */
    /* A library message that names a command to run already says what to
     * do; do not add a second, vaguer hint. */
    if (lib[0] != '\0' && strchr(lib, '\'') != NULL)
        todo = "";
    return out_error(c, code, "%s: %s%s%s", what, why, todo[0] ? ". " : "",
                     todo);
}

int
cli_parse_open(struct cli *c, int argc, char **argv, const char **pos,
               size_t min, size_t max, size_t *npos, struct simsync_node **out)
{
    enum cli_parse_result parsed;

    *out = NULL;
    parsed = cli_parse(c, argc, argv, NULL, pos, min, max, npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    return out_node_open(c, out);
}

int
out_node_open(struct cli *c, struct simsync_node **out)
{
    int rc;

    *out = NULL;
    if (c->home == NULL)
        return out_usage(c, "no home directory is known: give --home DIR "
                            "or set $SIMSYNC_HOME");
    rc = cmd_erase_resume(c);
    if (rc >= 0)
        return rc;
    rc = simsync_node_open(c->home, out);
    if (rc == SIMSYNC_OK)
        return 0;
    *out = NULL;
    if (rc == SIMSYNC_ESTATE)
        return out_error(c, simsync_exit_code(rc),
                         "cannot open the node in %s: it is not "
                         "initialised. Run 'simsync --home %s init --role "
                         "terminal|hub|desktop', or give --home or "
                         "$SIMSYNC_HOME",
                         c->home, c->home);
    return out_error(
        c, rc == SIMSYNC_EINVAL ? CLI_EXIT_ERROR : simsync_exit_code(rc),
        "cannot open the node in %s: %s. Check --home and "
        "the files there",
        c->home, simsync_strerror(rc));
}

uint64_t
out_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
out_format_time(uint64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms == 0) {
        snprintf(buf, len, "never");
        return;
    }
    if (localtime_r(&t, &tm) == NULL ||
        strftime(buf, len, "%Y-%m-%d %H:%M:%S %z", &tm) == 0)
        snprintf(buf, len, "%" PRIu64 " ms since 1970", ms);
}

volatile int cli_stop;
volatile sig_atomic_t cli_stop_signal;

static void
on_stop_signal(int sig)
{
    cli_stop_signal = sig;
    cli_stop = 1;
}

void
cli_catch_stop(void)
{
    struct sigaction sa;

    /* No SA_RESTART: a blocking call returns EINTR, and the loop around it
     * sees the flag. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    cli_stop = 0;
    cli_stop_signal = 0;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int
cli_serve_open(struct cli *c, int argc, char **argv, const char **listen,
               const char **idle, struct simsync_node **n)
{
    const char *pos[1];
    const struct cli_opt opts[] = {
        {"--listen", listen, NULL},
        {idle != NULL ? "--idle-timeout" : NULL, idle, NULL},
        {NULL, NULL, NULL},
    };
    enum cli_parse_result parsed;
    size_t npos;
    int code;

    *listen = NULL;
    *n = NULL;
    if (idle != NULL)
        *idle = NULL;
    parsed = cli_parse(c, argc, argv, opts, pos, 0, 0, &npos);
    if (parsed != CLI_PARSE_OK)
        return cli_parse_exit(parsed);
    if (*listen == NULL)
        return out_usage(c, "--listen HOST:PORT is needed");
    if (cli_check_addr(c, "--listen", *listen, 0) != 0)
        return CLI_EXIT_USAGE;
    code = out_node_open(c, n);
    if (code == 0)
        cli_catch_stop();
    return code;
}
