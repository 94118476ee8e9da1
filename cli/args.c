/* args.c -- the program's option parser and argument checks: options by
 * table, anywhere after the command, numbers and addresses validated in
 * full. Errors are reported through out_usage(). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* If argv[*i] is the option `name`, alone or as "name=value", return 1 and
 * point *inline_val at the text after '=' (NULL when there is none). */
static int
opt_match(const char *arg, const char *name, const char **inline_val)
{
    size_t n = strlen(name);

    *inline_val = NULL;
    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '\0')
        return 1;
    if (arg[n] == '=') {
        *inline_val = arg + n + 1;
        return 1;
    }
    return 0;
}

/* The value of the option at argv[*i]: its inline part, or the next
 * argument (advancing *i). NULL after reporting that it is missing. */
static const char *
opt_value(struct cli *c, int argc, char **argv, int *i, const char *name,
          const char *inline_val)
{
    if (inline_val != NULL)
        return inline_val;
    if (*i + 1 >= argc) {
        out_usage(c, "%s needs a value", name);
        return NULL;
    }
    (*i)++;
    return argv[*i];
}

int
cli_common_option(struct cli *c, int argc, char **argv, int *i)
{
    static const char *const names[] = {"--home", "--pin-file",
                                        "--password-file", "--recovery-file"};
    const char **slots[] = {&c->home, &c->pin_file, &c->password_file,
                            &c->recovery_file};
    const char *inl, *v;

    if (strcmp(argv[*i], "--json") == 0) {
        c->json = 1;
        return 1;
    }
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        if (!opt_match(argv[*i], names[k], &inl))
            continue;
        v = opt_value(c, argc, argv, i, names[k], inl);
        if (v == NULL)
            return -1;
        if (*v == '\0') {
            out_usage(c, "%s needs a non-empty value", names[k]);
            return -1;
        }
        *slots[k] = v;
        return 1;
    }
    return 0;
}

enum cli_parse_result
cli_parse(struct cli *c, int argc, char **argv, const struct cli_opt *opts,
          const char **pos, size_t min_pos, size_t max_pos, size_t *npos)
{
    int only_pos = 0;

    *npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *inl;
        const struct cli_opt *o;
        int r;

        if (!only_pos && strcmp(arg, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (only_pos || arg[0] != '-' || arg[1] == '\0') {
            if (*npos >= max_pos) {
                out_usage(c, "unexpected argument '%s'", arg);
                return CLI_PARSE_USAGE;
            }
            pos[(*npos)++] = arg;
            continue;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            printf("usage: %s", c->usage);
            return CLI_PARSE_HELP;
        }
        r = cli_common_option(c, argc, argv, &i);
        if (r < 0)
            return CLI_PARSE_USAGE;
        if (r > 0)
            continue;
        for (o = opts; o != NULL && o->name != NULL; o++)
            if (opt_match(arg, o->name, &inl))
                break;
        if (o == NULL || o->name == NULL) {
            out_usage(c, "unknown option '%s'", arg);
            return CLI_PARSE_USAGE;
        }
        if (o->flag != NULL) {
            if (inl != NULL) {
                out_usage(c, "%s takes no value", o->name);
                return CLI_PARSE_USAGE;
            }
            *o->flag = 1;
            continue;
        }
        *o->value = opt_value(c, argc, argv, &i, o->name, inl);
        if (*o->value == NULL)
            return CLI_PARSE_USAGE;
        if (**o->value == '\0') {
            out_usage(c, "%s needs a non-empty value", o->name);
            return CLI_PARSE_USAGE;
        }
    }
    if (*npos < min_pos) {
        out_usage(c, "missing argument");
        return CLI_PARSE_USAGE;
    }
    return CLI_PARSE_OK;
}

int
cli_take_list(struct cli *c, int *argc, char **argv, const char *name,
              struct cli_list *list)
{
    int i = 0, out = 0;

    list->n = 0;
    while (i < *argc) {
        const char *inl, *v;

        if (strcmp(argv[i], "--") == 0)
            break;
        if (!opt_match(argv[i], name, &inl)) {
            argv[out++] = argv[i++];
            continue;
        }
        v = opt_value(c, *argc, argv, &i, name, inl);
        if (v == NULL)
            return -1;
        if (*v == '\0') {
            out_usage(c, "%s needs a non-empty value", name);
            return -1;
        }
        if (list->n == CLI_LIST_MAX) {
            out_usage(c, "%s may be given at most %d times", name,
                      CLI_LIST_MAX);
            return -1;
        }
        list->v[list->n++] = v;
        i++;
    }
    while (i < *argc)
        argv[out++] = argv[i++];
    *argc = out;
    return 0;
}

int
cli_parse_exit(enum cli_parse_result r)
{
    return r == CLI_PARSE_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

int
cli_parse_ulong(const char *s, unsigned long min, unsigned long max,
                unsigned long *out)
{
    unsigned long v;
    char *end;

    if (s == NULL || *s < '0' || *s > '9')
        return -1; /* strtoul would accept blanks, '+' and '-' */
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int
cli_check_addr(struct cli *c, const char *opt, const char *addr,
               unsigned long min_port)
{
    const char *colon, *host_end;
    unsigned long port;

    if (addr[0] == '[') {
        host_end = strchr(addr, ']');
        colon = host_end != NULL && host_end[1] == ':' ? host_end + 1 : NULL;
        if (host_end == addr + 1)
            colon = NULL;
    } else {
        colon = strrchr(addr, ':');
        if (colon != NULL && memchr(addr, ':', (size_t)(colon - addr)))
            colon = NULL; /* an IPv6 literal needs brackets */
    }
    if (colon == NULL) {
        out_usage(c,
                  "%s wants HOST:PORT (e.g. 127.0.0.1:7000, "
                  "[::1]:7000), not '%s'",
                  opt, addr);
        return -1;
    }
    if (cli_parse_ulong(colon + 1, min_port, 65535, &port) != 0) {
        out_usage(c, "%s: '%s' is not a port number (%lu-65535)", opt,
                  colon + 1, min_port);
        return -1;
    }
    return 0;
}

int
cli_check_link(struct cli *c, const char *opt, const char *addr,
               int listening)
{
    char why[256];

    if (simsync_link_check(addr, listening, why, sizeof(why)) == SIMSYNC_OK)
        return 0;
    out_usage(c, "%s: %s", opt, why);
    return -1;
}

int
cli_parse_size(const char *s, uint64_t *bytes)
{
    char num[24];
    size_t len = s ? strlen(s) : 0;
    unsigned long v, unit = 1;

    if (len < 1 || len >= sizeof(num))
        return -1;
    memcpy(num, s, len + 1);
    switch (num[len - 1]) {
    case 'k':
    case 'K':
        unit = 1024;
        break;
    case 'M':
        unit = 1024ul * 1024;
        break;
    case 'G':
        unit = 1024ul * 1024 * 1024;
        break;
    default:
        break;
    }
    if (unit > 1)
        num[len - 1] = '\0';
    /* At most 1 TiB. */
    if (cli_parse_ulong(num, 1, (1ul << 40) / unit, &v) != 0)
        return -1;
    *bytes = (uint64_t)v * unit;
    return 0;
}

int
cli_parse_duration(const char *s, uint64_t *ms)
{
    char num[24];
    size_t len = s ? strlen(s) : 0;
    unsigned long v, unit;

    if (len < 2 || len > sizeof(num))
        return -1;
    switch (s[len - 1]) {
    case 's':
        unit = 1000;
        break;
    case 'm':
        unit = 60ul * 1000;
        break;
    case 'h':
        unit = 3600ul * 1000;
        break;
    case 'd':
        unit = 86400ul * 1000;
        break;
    default:
        return -1;
    }
    memcpy(num, s, len - 1);
    num[len - 1] = '\0';
    /* At most ten years. */
    if (cli_parse_ulong(num, 1, 3650ul * 86400 * 1000 / unit, &v) != 0)
        return -1;
    *ms = (uint64_t)v * unit;
    return 0;
}
