/* cli.h -- what the files of the `simsync` program share: the invocation
 * context, the option parser, error and JSON output, secret input, and one
 * entry point per command. The program sees the library only through
 * simsync.h; nothing here is part of the library.
 *
 * Exit codes: 0 ok, 1 error, 2 usage, 3 refused, 4 peer unreachable or link
 * lost, 5 integrity failure. Library errors go through simsync_exit_code();
 * mistakes on the command line found here are CLI_EXIT_USAGE. */
#ifndef CLI_H
#define CLI_H

#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>

#include "simsync.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_ERROR 1
#define CLI_EXIT_USAGE 2

#define CLI_SECRET_MAX 256 /* longest PIN, password or recovery secret */
#define CLI_MAX_POS 4      /* positional arguments any command takes */

/* One invocation of the program. */
struct cli {
    const char *home;          /* node home; borrowed from argv/env/home_buf */
    char home_buf[4096];       /* the default home, when built from $HOME */
    int json;                  /* --json: one JSON object on stdout */
    const char *pin_file;      /* --pin-file; borrowed from argv */
    const char *password_file; /* --password-file; borrowed from argv */
    const char *recovery_file; /* --recovery-file; borrowed from argv */
    const char *name;          /* "sim insert": names the command in errors */
    const char *usage;         /* that command's usage text */
};

#define CLI_LIST_MAX 8 /* values a repeatable option may take */

/* The values of an option that may be given several times. */
struct cli_list {
    const char *v[CLI_LIST_MAX]; /* borrowed from argv, in order */
    size_t n;
};

/* A command's own option. Exactly one of value and flag is set. */
struct cli_opt {
    const char *name;   /* "--hub" */
    const char **value; /* option takes a value, stored here (borrowed) */
    int *flag;          /* option is a switch, set to 1 here */
};

/* Outcome of cli_parse(). */
enum cli_parse_result {
    CLI_PARSE_OK,    /* go on with the command */
    CLI_PARSE_HELP,  /* --help was given and the usage printed: exit 0 */
    CLI_PARSE_USAGE, /* a usage error was reported: exit CLI_EXIT_USAGE */
};

/* ------------------------------------------------------------ args.c */

/* Parse a command's arguments argv[0..argc): its options (the table `opts`,
 * ended by a zeroed entry), the options every command accepts (--json,
 * --home, --pin-file, --password-file, --recovery-file), --help, and up to
 * `max_pos` positional arguments stored in pos[] (borrowed from argv).
 * Options may come anywhere; "--name=value" and "--name value" both work;
 * "--" ends the options. Exactly min_pos..max_pos positionals are allowed. */
enum cli_parse_result cli_parse(struct cli *c, int argc, char **argv,
                                const struct cli_opt *opts, const char **pos,
                                size_t min_pos, size_t max_pos, size_t *npos);

/* Before cli_parse: move every "NAME VALUE" and "NAME=VALUE" of an option
 * that may repeat out of argv[0..*argc) into `list` (values borrowed from
 * argv, in order), lowering *argc. Stops at "--". Returns 0, or -1 after
 * reporting a missing or empty value or more than CLI_LIST_MAX of them. */
int cli_take_list(struct cli *c, int *argc, char **argv, const char *name,
                  struct cli_list *list);

/* The exit code for a parse that did not return CLI_PARSE_OK: 0 after
 * --help, CLI_EXIT_USAGE after a usage error. */
int cli_parse_exit(enum cli_parse_result r);

/* Try one of the options every command accepts at argv[*i]. Returns 1 and
 * advances *i past its value when it was one, 0 when it was not, -1 after
 * reporting a missing value. */
int cli_common_option(struct cli *c, int argc, char **argv, int *i);

/* Parse an unsigned decimal number in [min, max]: digits only, no sign, no
 * blanks, no overflow. Returns 0 and sets *out, or -1. */
int cli_parse_ulong(const char *s, unsigned long min, unsigned long max,
                    unsigned long *out);

/* Parse a DURATION like 90s, 15m, 6h or 1d (a positive number and one
 * unit, at most ten years) into milliseconds. Returns 0, or -1. */
int cli_parse_duration(const char *s, uint64_t *ms);
/* "5000000", "512k", "5M", "1G" (1024-based) to bytes, 1 .. 1 TiB; -1 when
 * malformed. */
int cli_parse_size(const char *s, uint64_t *bytes);

/* Check "HOST:PORT" or "[V6]:PORT" with a port in [min_port, 65535].
 * Returns 0 if well formed, else reports a usage error naming `opt` and
 * returns -1. */
int cli_check_addr(struct cli *c, const char *opt, const char *addr,
                   unsigned long min_port);

/* Check a peer's link address (HOST:PORT, tcp:HOST:PORT, rfcomm:...; see
 * docs/links.md) for connecting, or for listening when `listening`.
 * Returns 0 if well formed, else reports a usage error naming `opt` and
 * returns -1. */
int cli_check_link(struct cli *c, const char *opt, const char *addr,
                   int listening);

/* ------------------------------------------------------------ out.c */

/* Write `s` as a JSON string (with quotes) to f. */
void out_json_str(FILE *f, const char *s);

/* Report a usage error found by the program itself: one line
 * "simsync: NAME: WHY" plus the command's usage on stderr (and the JSON
 * error object on stdout under --json). Returns CLI_EXIT_USAGE. */
int out_usage(struct cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Report the library error `rc` from the step `what` ("cannot sync"):
 * the node's own explanation when it has one, else simsync_strerror(rc)
 * and advice for that code. `n` may be NULL. Returns the exit code. */
int out_fail(struct cli *c, const struct simsync_node *n, int rc,
             const char *what);

/* Report a failure of the program itself (not of the library) with a
 * given exit code: "simsync: WHAT: WHY". Returns `code`. */
int out_error(struct cli *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Open the node in c->home, reporting a failure. Returns 0 and sets *out,
 * or the exit code. The caller closes the node. */
int out_node_open(struct cli *c, struct simsync_node **out);

/* For commands without options: parse min..max positional arguments into
 * pos (npos set), then open the node. Returns 0 with *out set, or the exit
 * code (help and usage included). The caller closes the node. */
int cli_parse_open(struct cli *c, int argc, char **argv, const char **pos,
                   size_t min, size_t max, size_t *npos,
                   struct simsync_node **out);

/* SIGINT and SIGTERM set cli_stop (and cli_stop_signal to the signal)
 * from now on, for the commands that run until stopped (hub serve, serve,
 * daemon, log --follow). */
extern volatile int cli_stop;
extern volatile sig_atomic_t cli_stop_signal;
void cli_catch_stop(void);
/* The start of a command that serves until stopped: parse "--listen
 * HOST:PORT" (required, checked) and, when idle is not NULL, an optional
 * "--idle-timeout SECONDS" (*idle NULL when absent), open the node into
 * *n, catch the stop signals. Returns 0 or the exit code. */
int cli_serve_open(struct cli *c, int argc, char **argv, const char **listen,
                   const char **idle, struct simsync_node **n);

/* The wall clock, in ms since 1970. */
uint64_t out_now_ms(void);
/* A time in ms since 1970 as local "YYYY-MM-DD HH:MM:SS +ZZZZ" ("never"
 * for 0). */
void out_format_time(uint64_t ms, char *buf, size_t len);

/* ------------------------------------------------------------ secret.c */

enum secret_kind {
    SECRET_PIN,      /* --pin-file, $SIMSYNC_PIN */
    SECRET_PASSWORD, /* --password-file, $SIMSYNC_PASSWORD */
    SECRET_RECOVERY, /* --recovery-file, $SIMSYNC_RECOVERY */
};

/* Get a secret into buf (len bytes, NUL-terminated): from its file option,
 * else its environment variable, else a prompt without echo when stdin is
 * a terminal. A file's trailing newline is dropped. When nothing gives it,
 * a `required` secret is a usage error; an optional one leaves *have 0.
 * Returns 0 or the exit code after reporting. The caller wipes buf. */
int secret_get(struct cli *c, enum secret_kind kind, int required, char *buf,
               size_t len, int *have);

/* Overwrite len bytes at p with zeros in a way the compiler keeps. */
void secret_wipe(void *p, size_t len);

/* ------------------------------------------------------------ commands
 * Each takes the arguments after its command words and returns the exit
 * code. */

int cmd_sim_create(struct cli *c, int argc, char **argv);
int cmd_sim_insert(struct cli *c, int argc, char **argv);
int cmd_sim_remove(struct cli *c, int argc, char **argv);
int cmd_sim_status(struct cli *c, int argc, char **argv);
int cmd_sim_unblock(struct cli *c, int argc, char **argv);

int cmd_init(struct cli *c, int argc, char **argv);
int cmd_id(struct cli *c, int argc, char **argv);
int cmd_hub_serve(struct cli *c, int argc, char **argv);
int cmd_hub_stats(struct cli *c, int argc, char **argv);
int cmd_register(struct cli *c, int argc, char **argv);
int cmd_classes(struct cli *c, int argc, char **argv);

int cmd_sync(struct cli *c, int argc, char **argv);
int cmd_status(struct cli *c, int argc, char **argv);
int cmd_conflicts(struct cli *c, int argc, char **argv);
int cmd_conflicts_resolve(struct cli *c, int argc, char **argv);

/* cmd_backup.c */
int cmd_backup_now(struct cli *c, int argc, char **argv);
int cmd_backup_list(struct cli *c, int argc, char **argv);
int cmd_backup_show(struct cli *c, int argc, char **argv);
int cmd_restore(struct cli *c, int argc, char **argv);
int cmd_backup_history(struct cli *c, int argc, char **argv);
/* Print generations as `backup list` does (table, or JSON under --json). */
void out_generations(struct cli *c, const struct simsync_generation *g,
                     size_t count);
int cmd_backup_forget(struct cli *c, int argc, char **argv);
int cmd_notices(struct cli *c, int argc, char **argv);

/* cmd_daemon.c */
int cmd_daemon(struct cli *c, int argc, char **argv);
int cmd_hub_schedule(struct cli *c, int argc, char **argv);
int cmd_hub_generations(struct cli *c, int argc, char **argv);

/* cmd_erase.c */
int cmd_erase(struct cli *c, int argc, char **argv);
/* If an erase of c->home was cut short, finish it and report that the
 * command did not run. Returns -1 when none was pending, else the exit
 * code (out_node_open calls it: no command runs on a half-erased home). */
int cmd_erase_resume(struct cli *c);

/* cmd_peer.c */
int cmd_pair(struct cli *c, int argc, char **argv);
int cmd_peers(struct cli *c, int argc, char **argv);
int cmd_unpair(struct cli *c, int argc, char **argv);
int cmd_serve(struct cli *c, int argc, char **argv);
int cmd_listen(struct cli *c, int argc, char **argv);

/* cmd_lazy.c */
int cmd_classes_lazy(struct cli *c, int argc, char **argv);
int cmd_ls(struct cli *c, int argc, char **argv);
int cmd_fetch(struct cli *c, int argc, char **argv);
int cmd_pin(struct cli *c, int argc, char **argv);
int cmd_unpin(struct cli *c, int argc, char **argv);
int cmd_evict(struct cli *c, int argc, char **argv);

/* cmd_policy.c */
int cmd_policy_show(struct cli *c, int argc, char **argv);
int cmd_policy_set(struct cli *c, int argc, char **argv);
int cmd_policy_confirm(struct cli *c, int argc, char **argv);
int cmd_policy_run(struct cli *c, int argc, char **argv);
int cmd_log(struct cli *c, int argc, char **argv);

/* cmd_kiosk.c */
int cmd_hub_kiosk(struct cli *c, int argc, char **argv);
int cmd_hub_audit(struct cli *c, int argc, char **argv);
int cmd_kiosk_enroll(struct cli *c, int argc, char **argv);
int cmd_kiosk_register(struct cli *c, int argc, char **argv);
int cmd_kiosk_send(struct cli *c, int argc, char **argv);
int cmd_kiosk_offer(struct cli *c, int argc, char **argv);
int cmd_kiosk_audit(struct cli *c, int argc, char **argv);
/* Read a kiosk credential file into buf (len bytes, NUL-terminated).
 * Returns 0 or the exit code after reporting. The caller wipes buf. */
int cli_read_credential(struct cli *c, const char *file, char *buf,
                        size_t len);

#endif /* CLI_H */
