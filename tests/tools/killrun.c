/* killrun.c -- run a command and SIGKILL it a given number of microseconds
 * after it was started, unless it exits first. The kill loops
 * (tests/integration/killlib.sh) run every workload through it: one small
 * process instead of a timer subshell, a sleep process and two clock
 * reads per kill, and a kill moment that is accurate to a few tens of
 * microseconds instead of a few milliseconds.
 *
 * Usage: killrun [--time-file F] DELAY_US CMD [ARG...]
 *
 * CMD inherits stdin, stdout and stderr. killrun exits with CMD's exit
 * code, or 128 + the signal that ended it (137 when the kill stopped it,
 * as a shell reports it). With --time-file, the microseconds from the
 * start of CMD to its end are written to F (one number and a newline).
 * Exit 126 when CMD cannot be started, 2 for a usage error.
 *
 * Standalone C11 + POSIX, like linkshim: it does not link libsimsync. */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void
usage(void)
{
    fprintf(stderr, "usage: killrun [--time-file F] DELAY_US CMD [ARG...]\n"
                    "  runs CMD and SIGKILLs it DELAY_US microseconds after"
                    " its start unless it\n  exits first; exits with CMD's"
                    " status (137: killed)\n");
    exit(2);
}

static long long
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Parse a whole number of microseconds; -1 when `s` is not one. */
static long long
parse_us(const char *s)
{
    char *end;
    long long v;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > 3600LL * 1000000)
        return -1;
    return v;
}

/* Wait for `pid` until `deadline` (now_us() clock); SIGKILL it then. The
 * caller blocked SIGCHLD, so its arrival is waited for with
 * sigtimedwait. Returns the wait status. */
static int
wait_or_kill(pid_t pid, long long deadline)
{
    sigset_t set;
    int status;
    pid_t r;

    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    for (;;) {
        long long left;
        struct timespec ts;

        r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR) {
            perror("killrun: waitpid");
            exit(126);
        }
        left = deadline - now_us();
        if (left <= 0)
            break;
        ts.tv_sec = (time_t)(left / 1000000);
        ts.tv_nsec = (long)(left % 1000000) * 1000;
        (void)sigtimedwait(&set, NULL, &ts); /* SIGCHLD, timeout or EINTR */
    }
    /* The deadline passed: kill. A child that exited just now is a zombie
     * the kill does not touch, and its own status is reported. */
    (void)kill(pid, SIGKILL);
    while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    if (r != pid) {
        perror("killrun: waitpid");
        exit(126);
    }
    return status;
}

int
main(int argc, char **argv)
{
    const char *time_file = NULL;
    long long delay, t0, t1;
    sigset_t set, old;
    int argi = 1, status, code;
    pid_t pid;

    if (argi + 1 < argc && strcmp(argv[argi], "--time-file") == 0) {
        time_file = argv[argi + 1];
        argi += 2;
    }
    if (argc - argi < 2)
        usage();
    delay = parse_us(argv[argi]);
    if (delay < 0) {
        fprintf(stderr, "killrun: DELAY_US must be a whole number of"
                        " microseconds up to an hour, not '%s'\n",
                argv[argi]);
        return 2;
    }
    argi++;

    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &set, &old) != 0) {
        perror("killrun: sigprocmask");
        return 126;
    }
    t0 = now_us();
    pid = fork();
    if (pid < 0) {
        perror("killrun: fork");
        return 126;
    }
    if (pid == 0) {
        (void)sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(argv[argi], argv + argi);
        fprintf(stderr, "killrun: cannot run %s: %s\n", argv[argi],
                strerror(errno));
        _exit(126);
    }
    status = wait_or_kill(pid, t0 + delay);
    t1 = now_us();

    if (time_file != NULL) {
        FILE *f = fopen(time_file, "w");

        if (f == NULL || fprintf(f, "%lld\n", t1 - t0) < 0 ||
            fclose(f) != 0) {
            fprintf(stderr, "killrun: cannot write %s: %s\n", time_file,
                    strerror(errno));
            return 126;
        }
    }
    if (WIFEXITED(status))
        code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        code = 128 + WTERMSIG(status);
    else
        code = 126;
    return code;
}
