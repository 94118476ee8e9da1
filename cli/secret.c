/* secret.c -- where the program gets PINs, passwords and recovery secrets:
 * a file named by an option, an environment variable, or a prompt with
 * echo off when stdin is a terminal. Secrets live in caller buffers that
 * the caller wipes; they are never printed and never pass through stdio
 * buffers (files and the terminal are read with read(2)). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"

struct secret_source {
    const char *what;   /* "the PIN", for messages */
    const char *option; /* "--pin-file" */
    const char *env;    /* "SIMSYNC_PIN" */
    const char *prompt; /* shown on stderr before reading the terminal */
};

static const struct secret_source sources[] = {
    [SECRET_PIN] = {"the SIM PIN", "--pin-file", "SIMSYNC_PIN", "SIM PIN: "},
    [SECRET_PASSWORD] = {"the terminal password", "--password-file",
                         "SIMSYNC_PASSWORD", "Terminal password: "},
    [SECRET_RECOVERY] = {"the recovery secret", "--recovery-file",
                         "SIMSYNC_RECOVERY",
                         "Recovery secret (empty for a new subscriber): "},
};

/* The terminal settings to put back if a signal ends a prompt. */
static struct termios saved_tio;
static volatile sig_atomic_t tio_saved;

void
secret_wipe(void *p, size_t len)
{
    volatile unsigned char *v = p;

    while (len-- > 0)
        *v++ = 0;
}

/* Drop one trailing "\n" or "\r\n". */
static void
strip_newline(char *s, size_t *n)
{
    if (*n > 0 && s[*n - 1] == '\n')
        s[--*n] = '\0';
    if (*n > 0 && s[*n - 1] == '\r')
        s[--*n] = '\0';
}

static int
read_file(struct cli *c, const struct secret_source *src, const char *path,
          char *buf, size_t len)
{
    size_t n = 0;
    ssize_t r;
    char extra;
    int fd, err = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return out_error(c, CLI_EXIT_ERROR,
                         "%s: cannot read %s from %s: %s. Check the file "
                         "given to %s",
                         c->name, src->what, path, strerror(errno),
                         src->option);
    while (n + 1 < len) {
        r = read(fd, buf + n, len - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            err = r < 0 ? errno : 0;
            break;
        }
        n += (size_t)r;
    }
    buf[n] = '\0';
    /* One more byte tells a full buffer from a file that is too long. */
    if (err == 0 && n + 1 >= len && read(fd, &extra, 1) == 1)
        err = EFBIG;
    close(fd);
    if (err == 0 && memchr(buf, '\0', n) != NULL)
        err = EILSEQ;
    if (err != 0) {
        secret_wipe(buf, len);
        return out_error(c, CLI_EXIT_ERROR,
                         "%s: cannot use %s from %s: %s. Put it alone on "
                         "one line of text (at most %zu bytes)",
                         c->name, src->what, path,
                         err == EFBIG    ? "the file is too long"
                         : err == EILSEQ ? "the file holds a NUL byte"
                                         : strerror(err),
                         len - 1);
    }
    strip_newline(buf, &n);
    return 0;
}

static void
restore_tty_on_signal(int sig)
{
    if (tio_saved)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Read one line from the terminal with echo off. Returns 0, or -1 when
 * the line does not fit or the terminal cannot be read. */
static int
read_tty(const char *prompt, char *buf, size_t len)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    struct sigaction sa, old[sizeof(sigs) / sizeof(sigs[0])];
    struct termios quiet;
    size_t n = 0;
    int rc = 0, over = 0;
    char ch;

    if (tcgetattr(STDIN_FILENO, &saved_tio) != 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = restore_tty_on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, &old[i]);
    tio_saved = 1;
    quiet = saved_tio;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    quiet.c_lflag |= ICANON;
    fputs(prompt, stderr);
    fflush(stderr);
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0)
        rc = -1;
    while (rc == 0) {
        ssize_t r = read(STDIN_FILENO, &ch, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || ch == '\n')
            break;
        if (n + 1 < len)
            buf[n++] = ch;
        else
            over = 1;
    }
    buf[n] = '\0';
    secret_wipe(&ch, sizeof(ch));
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
    tio_saved = 0;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &old[i], NULL);
    fputc('\n', stderr);
    strip_newline(buf, &n);
    if (over) {
        secret_wipe(buf, len);
        rc = -1;
    }
    return rc;
}

int
secret_get(struct cli *c, enum secret_kind kind, int required, char *buf,
           size_t len, int *have)
{
    const struct secret_source *src = &sources[kind];
    const char *file = kind == SECRET_PIN        ? c->pin_file
                       : kind == SECRET_PASSWORD ? c->password_file
                                                 : c->recovery_file;
    const char *env = getenv(src->env);
    int rc;

    *have = 0;
    buf[0] = '\0';
    if (file != NULL) {
        rc = read_file(c, src, file, buf, len);
        if (rc == 0)
            *have = 1;
        return rc;
    }
    if (env != NULL && env[0] != '\0') {
        if (strlen(env) >= len)
            return out_error(c, CLI_EXIT_USAGE,
                             "%s: $%s is too long for %s (at most %zu "
                             "bytes)",
                             c->name, src->env, src->what, len - 1);
        memcpy(buf, env, strlen(env) + 1);
        *have = 1;
        return 0;
    }
    if (isatty(STDIN_FILENO)) {
        if (read_tty(src->prompt, buf, len) != 0)
            return out_error(c, CLI_EXIT_USAGE,
                             "%s: could not read %s from the terminal (at "
                             "most %zu bytes). Try again, or give %s FILE",
                             c->name, src->what, len - 1, src->option);
        *have = buf[0] != '\0';
        if (*have || !required)
            return 0;
    }
    if (!required)
        return 0;
    return out_usage(c,
                     "%s is needed and no terminal is there to ask for it. "
                     "Give %s FILE or set $%s",
                     src->what, src->option, src->env);
}
