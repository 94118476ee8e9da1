/* test_sim.c -- the SIM wrappers and the file backend: PIN and PUK rules,
 * counters that survive reopening, concurrent processes and a kill in the
 * middle of a check, the file's secrecy, integrity and mode. Each test
 * works in a fresh temporary directory. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sim.h"

#define SUBSCRIBER "001010123456789"
#define PIN "4815"
#define PUK "27182818"
#define BAD_PIN "0000"
#define BAD_PUK "00000000"

struct fixture {
    char dir[PATH_MAX];      /* the temporary directory */
    char path[PATH_MAX + 8]; /* dir/sim: the SIM file */
};

static int
setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    const char *tmp = getenv("TMPDIR");

    if (fx == NULL)
        return -1;
    if (tmp == NULL || tmp[0] == '\0')
        tmp = "/tmp";
    snprintf(fx->dir, sizeof(fx->dir), "%s/test_sim.XXXXXX", tmp);
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/sim", fx->dir);
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *fx = *state;
    char name[PATH_MAX * 2];
    struct dirent *de;
    DIR *d = opendir(fx->dir);

    while (d != NULL && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(name, sizeof(name), "%s/%s", fx->dir, de->d_name);
        unlink(name);
    }
    if (d != NULL)
        closedir(d);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* Helpers ------------------------------------------------------------ */

static void
make_sim(const struct fixture *fx)
{
    assert_int_equal(sim_file_create(fx->path, SUBSCRIBER, PIN, PUK),
                     SIMSYNC_OK);
}

static struct sim *
open_sim(const struct fixture *fx)
{
    struct sim *s = NULL;

    assert_int_equal(sim_open(fx->path, &s), SIMSYNC_OK);
    assert_non_null(s);
    return s;
}

static struct sim_status
status_of(struct sim *s)
{
    struct sim_status st;

    assert_int_equal(sim_status(s, &st), SIMSYNC_OK);
    return st;
}

/* Read the whole file at `path` into buf[cap] (NUL-terminated). */
static size_t
read_text(const char *path, char *buf, size_t cap)
{
    FILE *fp = fopen(path, "rb");
    size_t n;

    assert_non_null(fp);
    n = fread(buf, 1, cap - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return n;
}

static void
write_text(const char *path, const char *buf, size_t len)
{
    FILE *fp = fopen(path, "wb");

    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static int
open_rc(const char *path)
{
    struct sim *s = NULL;
    int rc = sim_open(path, &s);

    if (rc != SIMSYNC_OK)
        assert_null(s);
    sim_close(s);
    return rc;
}

static int
count_entries(const char *dir)
{
    struct dirent *de;
    DIR *d = opendir(dir);
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* Tests -------------------------------------------------------------- */

static void
verified_session_reads_subscriber(void **state)
{
    struct fixture *fx = *state;
    char id[SIM_SUBSCRIBER_BUF];
    struct sim_status st;
    struct sim *s;

    make_sim(fx);
    s = open_sim(fx);
    st = status_of(s);
    assert_int_equal(st.pin_tries_left, 3);
    assert_int_equal(st.puk_tries_left, 10);
    assert_false(st.pin_verified);
    assert_false(st.blocked);
    assert_false(st.dead);

    assert_int_equal(sim_verify_pin(s, PIN), SIMSYNC_OK);
    assert_true(status_of(s).pin_verified);
    assert_int_equal(sim_subscriber(s, id, sizeof(id)), SIMSYNC_OK);
    assert_string_equal(id, SUBSCRIBER);
    sim_close(s);
}

static void
subscriber_refused_before_pin(void **state)
{
    struct fixture *fx = *state;
    char id[SIM_SUBSCRIBER_BUF];
    struct sim *s;

    make_sim(fx);
    s = open_sim(fx);
    memset(id, 'x', sizeof(id));
    assert_int_equal(sim_subscriber(s, id, sizeof(id)), SIMSYNC_EREFUSED);
    assert_string_equal(id, ""); /* nothing leaked into the buffer */
    assert_int_equal(sim_verify_pin(s, BAD_PIN), SIMSYNC_EPIN);
    assert_int_equal(sim_subscriber(s, id, sizeof(id)), SIMSYNC_EREFUSED);
    sim_close(s);
}

static void
verified_state_ends_with_session(void **state)
{
    struct fixture *fx = *state;
    char id[SIM_SUBSCRIBER_BUF];
    struct sim *s;

    make_sim(fx);
    s = open_sim(fx);
    assert_int_equal(sim_verify_pin(s, PIN), SIMSYNC_OK);
    sim_close(s);

    s = open_sim(fx); /* power on again: the card forgot */
    assert_false(status_of(s).pin_verified);
    assert_int_equal(sim_subscriber(s, id, sizeof(id)), SIMSYNC_EREFUSED);
    sim_close(s);
}

static void
failed_pin_ends_verified_state(void **state)
{
    struct fixture *fx = *state;
    char id[SIM_SUBSCRIBER_BUF];
    struct sim *s;

    make_sim(fx);
    s = open_sim(fx);
    assert_int_equal(sim_verify_pin(s, PIN), SIMSYNC_OK);
    assert_int_equal(sim_verify_pin(s, BAD_PIN), SIMSYNC_EPIN);
    assert_false(status_of(s).pin_verified);
    assert_int_equal(sim_subscriber(s, id, sizeof(id)), SIMSYNC_EREFUSED);
    sim_close(s);
}

static void
right_pin_restores_tries_after_two_wrong(void **state)
{
    struct fixture *fx = *state;
    struct sim *s;

    make_sim(fx);
    s = open_sim(fx);
    assert_int_equal(sim_verify_pin(s, BAD_PIN), SIMSYNC_EPIN);
    assert_int_equal(status_of(s).pin_tries_left, 2);
    assert_int_equal(sim_verify_pin(s, "1111"), SIMSYNC_EPIN);
    assert_int_equal(status_of(s).pin_tries_left, 1);
    assert_int_equal(sim_verify_pin(s, PIN), SIMSYNC_OK);
    assert_int_equal(status_of(s).pin_tries_left, 3);
    sim_close(s);

    s = open_sim(fx); /* and the restored count is what was stored */
    assert_int_equal(status_of(s).pin_tries_left, 3);
    sim_close(s);
}

static void
third_wrong_pin_blocks_even_right_pin(void **state)
{
    struct fixture *fx = *state;
    char id[SIM_SUBSCRIBER_BUF];
    struct sim_status st;
    struct sim *s;

    make_sim(fx);
    s = open_sim(fx);
    assert_int_equal(sim_verify_pin(s, BAD_PIN), SIMSYNC_EPIN);
    assert_int_equal(sim_verify_pin(s, BAD_PIN), SIMSYNC_EPIN);
    assert_int_equal(sim_verify_pin(s, BAD_PIN), SIMSYNC_EBLOCKED);
    st = status_of(s);
    assert_int_equal(st.pin_tries_left, 0);
    assert_true(st.blocked);
    assert_false(st.dead);
    assert_int_equal(st.puk_tries_left, 10);

    assert_int_equal(sim_verify_pin(s, PIN), SIMSYNC_EBLOCKED);
    assert_int_equal(sim_subscriber(s, id, sizeof(id)), SIMSYNC_EREFUSED);
    sim_close(s);

    s = open_sim(fx);
    assert_int_equal(sim_verify_pin(s, PIN), SIMSYNC_EBLOCKED);
    assert_true(status_of(s).blocked);
    sim_close(s);
}

static void
block_sim(struct sim *s)
{
    int i;

    for (i = 0; i < SIM_PIN_TRIES; i++)
        assert_int_not_equal(sim_verify_pin(s, BAD_PIN), SIMSYNC_OK);
    assert_true(status_of(s).blocked);
}

static void
wrong_puk_costs_a_puk_try(void **state)
{
    struct fixture *fx = *state;
    struct sim_status st;
    struct sim *s;

    make_sim(fx);
    s = open_sim(fx);
    block_sim(s);
    assert_int_equal(sim_unblock(s, BAD_PUK, "9999"), SIMSYNC_EPIN);
    st = status_of(s);
    assert_int_equal(st.puk_tries_left, 9);
    assert_true(st.blocked);
    assert_int_equal(sim_verify_pin(s, "9999"), SIMSYNC_EBLOCKED);
    assert_int_equal(sim_verify_pin(s, PIN), SIMSYNC_EBLOCKED);
    sim_close(s);
}

static void
right_puk_sets_new_pin_and_unblocks(void **state)
{
    struct fixture *fx = *state;
    char id[SIM_SUBSCRIBER_BUF];
    struct sim_status st;
    struct sim *s;

    make_sim(fx);
    s = open_sim(fx);
    block_sim(s);
    assert_int_equal(sim_unblock(s, BAD_PUK, "9999"), SIMSYNC_EPIN);
    assert_int_equal(sim_unblock(s, PUK, "97531"), SIMSYNC_OK);
    st = status_of(s);
    assert_int_equal(st.pin_tries_left, 3);
    assert_int_equal(st.puk_tries_left, 10);
    assert_false(st.blocked);
    assert_true(st.pin_verified); /* unblocking proves more than a PIN */
    assert_int_equal(sim_subscriber(s, id, sizeof(id)), SIMSYNC_OK);
    assert_string_equal(id, SUBSCRIBER);
    sim_close(s);

    s = open_sim(fx);
    assert_int_equal(sim_verify_pin(s, PIN), SIMSYNC_EPIN); /* old PIN */
    assert_int_equal(sim_verify_pin(s, "97531"), SIMSYNC_OK);
    sim_close(s);
}

static void
ten_wrong_puks_kill_sim_for_good(void **state)
{
    struct fixture *fx = *state;
    char id[SIM_SUBSCRIBER_BUF];
    struct sim_status st;
    struct sim *s;
    int i;

    make_sim(fx);
    s = open_sim(fx);
    assert_int_equal(sim_verify_pin(s, PIN), SIMSYNC_OK);
    for (i = 0; i < SIM_PUK_TRIES - 1; i++) {
        assert_int_equal(sim_unblock(s, BAD_PUK, "9999"), SIMSYNC_EPIN);
        assert_int_equal(status_of(s).puk_tries_left, SIM_PUK_TRIES - 1 - i);
    }
    assert_int_equal(sim_unblock(s, BAD_PUK, "9999"), SIMSYNC_EBLOCKED);
    st = status_of(s);
    assert_true(st.dead);
    assert_true(st.blocked);
    assert_int_equal(st.puk_tries_left, 0);
    assert_int_equal(st.pin_tries_left, 0);
    assert_false(st.pin_verified);
    assert_int_equal(sim_subscriber(s, id, sizeof(id)), SIMSYNC_EREFUSED);
    assert_int_equal(sim_unblock(s, PUK, "9999"), SIMSYNC_EBLOCKED);
    assert_int_equal(sim_verify_pin(s, PIN), SIMSYNC_EBLOCKED);
    assert_int_equal(sim_change_pin(s, PIN, "9999"), SIMSYNC_EBLOCKED);
    sim_close(s);

    s = open_sim(fx); /* still dead after a power cycle */
    assert_true(status_of(s).dead);
    assert_int_equal(sim_unblock(s, PUK, "9999"), SIMSYNC_EBLOCKED);
    assert_int_equal(sim_verify_pin(s, PIN), SIMSYNC_EBLOCKED);
    assert_int_equal(status_of(s).puk_tries_left, 0);
    sim_close(s);
}

static void
tries_survive_reopen_after_each_wrong_try(void **state)
{
    struct fixture *fx = *state;
    struct sim *s;
    int i;

    make_sim(fx);
    for (i = 0; i < SIM_PIN_TRIES; i++) {
        s = open_sim(fx);
        assert_int_equal(status_of(s).pin_tries_left, SIM_PIN_TRIES - i);
        assert_int_not_equal(sim_verify_pin(s, BAD_PIN), SIMSYNC_OK);
        sim_close(s);
    }
    s = open_sim(fx);
    assert_int_equal(status_of(s).pin_tries_left, 0);
    assert_int_equal(sim_verify_pin(s, PIN), SIMSYNC_EBLOCKED);
    sim_close(s);

    for (i = 0; i < 4; i++) {
        s = open_sim(fx);
        assert_int_equal(status_of(s).puk_tries_left, SIM_PUK_TRIES - i);
        assert_int_equal(sim_unblock(s, BAD_PUK, "9999"), SIMSYNC_EPIN);
        sim_close(s);
    }
    s = open_sim(fx);
    assert_int_equal(status_of(s).puk_tries_left, SIM_PUK_TRIES - 4);
    sim_close(s);
}

static void
exit_now(void *arg)
{
    (void)arg;
    _exit(42); /* as if killed: no chance to restore anything */
}

static void
spent_try_survives_kill_before_compare(void **state)
{
    struct fixture *fx = *state;
    struct sim *s;
    pid_t pid;
    int wst;

    make_sim(fx);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        s = NULL;
        if (sim_open(fx->path, &s) != SIMSYNC_OK)
            _exit(1);
        sim_fault_after_persist(s, exit_now, NULL);
        /* The right PIN, even; returning at all means the hook was not
         * reached, which fails the test. */
        _exit(sim_verify_pin(s, PIN) == SIMSYNC_OK ? 2 : 3);
    }
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    assert_true(WIFEXITED(wst));
    assert_int_equal(WEXITSTATUS(wst), 42);

    s = open_sim(fx);
    assert_int_equal(status_of(s).pin_tries_left, 2);
    assert_int_equal(sim_verify_pin(s, PIN), SIMSYNC_OK);
    assert_int_equal(status_of(s).pin_tries_left, 3);
    sim_close(s);
}

static void
concurrent_wrong_puks_each_cost_a_try(void **state)
{
    struct fixture *fx = *state;
    enum { N = SIM_PUK_TRIES };
    pid_t pids[N];
    int go[2], i, wst, epin = 0, eblocked = 0;
    char c = 0;
    struct sim *s;

    make_sim(fx);
    assert_int_equal(pipe(go), 0);
    for (i = 0; i < N; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            int rc;

            close(go[1]);
            s = NULL;
            if (sim_open(fx->path, &s) != SIMSYNC_OK)
                _exit(1);
            if (read(go[0], &c, 1) != 0) /* wait until all are ready */
                _exit(1);
            rc = sim_unblock(s, BAD_PUK, "9999");
            sim_close(s);
            _exit(rc == SIMSYNC_EPIN ? 10 : rc == SIMSYNC_EBLOCKED ? 11 : 1);
        }
    }
    close(go[0]);
    close(go[1]); /* every child's read returns 0 now */
    for (i = 0; i < N; i++) {
        assert_int_equal(waitpid(pids[i], &wst, 0), pids[i]);
        assert_true(WIFEXITED(wst));
        if (WEXITSTATUS(wst) == 10)
            epin++;
        else if (WEXITSTATUS(wst) == 11)
            eblocked++;
    }
    assert_int_equal(epin, N - 1);
    assert_int_equal(eblocked, 1);
    s = open_sim(fx);
    assert_true(status_of(s).dead);
    sim_close(s);
}

static void
file_holds_neither_pin_nor_puk_in_clear(void **state)
{
    struct fixture *fx = *state;
    char text[2048];
    struct sim *s;

    assert_int_equal(
        sim_file_create(fx->path, SUBSCRIBER, "48151623", "42424242"),
        SIMSYNC_OK);
    read_text(fx->path, text, sizeof(text));
    assert_non_null(strstr(text, SUBSCRIBER)); /* the search can succeed */
    assert_null(strstr(text, "48151623"));
    assert_null(strstr(text, "42424242"));

    s = open_sim(fx);
    assert_int_equal(sim_change_pin(s, "48151623", "76543210"), SIMSYNC_OK);
    read_text(fx->path, text, sizeof(text));
    assert_null(strstr(text, "76543210"));
    assert_int_equal(sim_unblock(s, "42424242", "13579246"), SIMSYNC_OK);
    read_text(fx->path, text, sizeof(text));
    assert_null(strstr(text, "13579246"));
    assert_null(strstr(text, "42424242"));
    sim_close(s);
}

static void
change_pin_replaces_pin(void **state)
{
    struct fixture *fx = *state;
    struct sim *s;

    make_sim(fx);
    s = open_sim(fx);
    assert_int_equal(sim_change_pin(s, BAD_PIN, "2468"), SIMSYNC_EPIN);
    assert_int_equal(status_of(s).pin_tries_left, 2);
    assert_int_equal(sim_change_pin(s, PIN, "2468"), SIMSYNC_OK);
    assert_true(status_of(s).pin_verified);
    assert_int_equal(status_of(s).pin_tries_left, 3);
    sim_close(s);

    s = open_sim(fx);
    assert_int_equal(sim_verify_pin(s, PIN), SIMSYNC_EPIN);
    assert_int_equal(sim_verify_pin(s, "2468"), SIMSYNC_OK);
    sim_close(s);
}

/* Replace the first `from` in the SIM file by `to` (same length). */
static void
edit_file(const struct fixture *fx, const char *from, const char *to)
{
    char text[2048];
    size_t len = read_text(fx->path, text, sizeof(text));
    char *at = strstr(text, from);

    assert_non_null(at);
    assert_int_equal(strlen(from), strlen(to));
    memcpy(at, to, strlen(to));
    write_text(fx->path, text, len);
}

static void
corrupted_file_is_rejected(void **state)
{
    struct fixture *fx = *state;
    char good[2048], bad[2048];
    size_t len;
    struct sim *s;

    make_sim(fx);
    len = read_text(fx->path, good, sizeof(good));
    assert_int_equal(open_rc(fx->path), SIMSYNC_OK);

    /* One hex digit of the PIN hash changed. */
    memcpy(bad, good, len);
    {
        char *h = strstr(bad, "pin_hash=") + strlen("pin_hash=");
        *h = *h == '0' ? '1' : '0';
    }
    write_text(fx->path, bad, len);
    assert_int_equal(open_rc(fx->path), SIMSYNC_EPROTO);

    /* A spent try given back by hand. */
    write_text(fx->path, good, len);
    s = open_sim(fx);
    assert_int_equal(sim_verify_pin(s, BAD_PIN), SIMSYNC_EPIN);
    sim_close(s);
    edit_file(fx, "pin_tries=2", "pin_tries=3");
    assert_int_equal(open_rc(fx->path), SIMSYNC_EPROTO);

    /* Truncated, empty, trailing garbage, not a SIM file at all. */
    write_text(fx->path, good, len - 10);
    assert_int_equal(open_rc(fx->path), SIMSYNC_EPROTO);
    write_text(fx->path, good, 0);
    assert_int_equal(open_rc(fx->path), SIMSYNC_EPROTO);
    memcpy(bad, good, len);
    memcpy(bad + len, "x=1\n", 4);
    write_text(fx->path, bad, len + 4);
    assert_int_equal(open_rc(fx->path), SIMSYNC_EPROTO);
    write_text(fx->path, "hello\n", 6);
    assert_int_equal(open_rc(fx->path), SIMSYNC_EPROTO);
    memset(bad, '1', sizeof(bad));
    write_text(fx->path, bad, sizeof(bad));
    assert_int_equal(open_rc(fx->path), SIMSYNC_EPROTO);

    /* Corrupted while a session is open: the next check sees it. */
    write_text(fx->path, good, len);
    s = open_sim(fx);
    edit_file(fx, "puk_tries=10", "puk_tries=11");
    assert_int_equal(sim_verify_pin(s, PIN), SIMSYNC_EPROTO);
    {
        struct sim_status st;
        assert_int_equal(sim_status(s, &st), SIMSYNC_EPROTO);
    }
    sim_close(s);
}

static void
missing_file_is_no_sim(void **state)
{
    struct fixture *fx = *state;
    char other[PATH_MAX + 16];
    struct sim *s = (struct sim *)&s; /* must be reset to NULL */

    assert_int_equal(sim_open(fx->path, &s), SIMSYNC_ENOSIM);
    assert_null(s);
    snprintf(other, sizeof(other), "%s/no/such/dir", fx->dir);
    assert_int_equal(open_rc(other), SIMSYNC_ENOSIM);

    /* Removed while powered on: the next check finds no card. */
    make_sim(fx);
    s = open_sim(fx);
    assert_int_equal(unlink(fx->path), 0);
    assert_int_equal(sim_verify_pin(s, PIN), SIMSYNC_ENOSIM);
    sim_close(s);
}

static void
swapped_card_is_detected(void **state)
{
    struct fixture *fx = *state;
    char other[PATH_MAX + 16];
    struct sim *s;

    make_sim(fx);
    s = open_sim(fx);
    snprintf(other, sizeof(other), "%s/other", fx->dir);
    assert_int_equal(sim_file_create(other, "99999999999", PIN, PUK),
                     SIMSYNC_OK);
    assert_int_equal(rename(other, fx->path), 0);
    assert_int_equal(sim_verify_pin(s, PIN), SIMSYNC_ENOSIM);
    sim_close(s);

    /* Same subscriber, but a card made anew: also another card. */
    s = open_sim(fx);
    assert_int_equal(sim_file_create(other, "99999999999", PIN, PUK),
                     SIMSYNC_OK);
    assert_int_equal(rename(other, fx->path), 0);
    assert_int_equal(sim_verify_pin(s, PIN), SIMSYNC_ENOSIM);
    sim_close(s);
}

static void
malformed_inputs_are_invalid_and_cost_no_try(void **state)
{
    struct fixture *fx = *state;
    static const char *const bad_subscribers[] = {
        "", "1234", "1234567890123456", "12345a", "+12345", " 12345", "123 45",
    };
    static const char *const bad_pins[] = {
        "",
        "123",
        "123456789",
        "12a4",
        "-123",
        "12 34",
        "\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93\xef\xbc\x94", /* fullwidth */
    };
    static const char *const bad_puks[] = {
        "",
        "1234567",
        "123456789",
        "1234567a",
    };
    char id[SIM_SUBSCRIBER_BUF];
    struct sim_status st;
    struct sim *s;
    size_t i;

    for (i = 0; i < sizeof(bad_subscribers) / sizeof(*bad_subscribers); i++)
        assert_int_equal(
            sim_file_create(fx->path, bad_subscribers[i], PIN, PUK),
            SIMSYNC_EINVAL);
    for (i = 0; i < sizeof(bad_pins) / sizeof(*bad_pins); i++)
        assert_int_equal(
            sim_file_create(fx->path, SUBSCRIBER, bad_pins[i], PUK),
            SIMSYNC_EINVAL);
    for (i = 0; i < sizeof(bad_puks) / sizeof(*bad_puks); i++)
        assert_int_equal(
            sim_file_create(fx->path, SUBSCRIBER, PIN, bad_puks[i]),
            SIMSYNC_EINVAL);
    assert_int_equal(sim_file_create(NULL, SUBSCRIBER, PIN, PUK),
                     SIMSYNC_EINVAL);
    assert_int_equal(sim_file_create(fx->path, NULL, PIN, PUK), SIMSYNC_EINVAL);
    assert_int_equal(count_entries(fx->dir), 0); /* nothing was made */

    /* The limits themselves are valid. */
    assert_int_equal(sim_file_create(fx->path, "12345", "1234", PUK),
                     SIMSYNC_OK);
    s = open_sim(fx);
    for (i = 0; i < sizeof(bad_pins) / sizeof(*bad_pins); i++) {
        assert_int_equal(sim_verify_pin(s, bad_pins[i]), SIMSYNC_EINVAL);
        assert_int_equal(sim_unblock(s, PUK, bad_pins[i]), SIMSYNC_EINVAL);
        assert_int_equal(sim_change_pin(s, "1234", bad_pins[i]),
                         SIMSYNC_EINVAL);
    }
    for (i = 0; i < sizeof(bad_puks) / sizeof(*bad_puks); i++)
        assert_int_equal(sim_unblock(s, bad_puks[i], "1234"), SIMSYNC_EINVAL);
    assert_int_equal(sim_verify_pin(s, NULL), SIMSYNC_EINVAL);
    assert_int_equal(sim_verify_pin(NULL, "1234"), SIMSYNC_EINVAL);
    assert_int_equal(sim_status(s, NULL), SIMSYNC_EINVAL);
    st = status_of(s);
    assert_int_equal(st.pin_tries_left, 3); /* no try was spent */
    assert_int_equal(st.puk_tries_left, 10);

    assert_int_equal(sim_verify_pin(s, "1234"), SIMSYNC_OK);
    assert_int_equal(sim_subscriber(s, id, 5), SIMSYNC_EINVAL); /* no NUL */
    assert_int_equal(sim_subscriber(s, id, 6), SIMSYNC_OK);
    assert_string_equal(id, "12345");
    assert_int_equal(sim_subscriber(s, NULL, 6), SIMSYNC_EINVAL);
    sim_close(s);
}

static void
create_over_existing_file_fails_and_keeps_it(void **state)
{
    struct fixture *fx = *state;
    char before[2048], after[2048];
    size_t n1, n2;
    struct sim *s;

    make_sim(fx);
    n1 = read_text(fx->path, before, sizeof(before));
    assert_int_equal(sim_file_create(fx->path, "5550001", "9999", PUK),
                     SIMSYNC_EEXIST);
    n2 = read_text(fx->path, after, sizeof(after));
    assert_int_equal(n1, n2);
    assert_memory_equal(before, after, n1);
    s = open_sim(fx);
    assert_int_equal(sim_verify_pin(s, PIN), SIMSYNC_OK);
    sim_close(s);

    /* Not only SIM files: anything in the way is kept. */
    assert_int_equal(unlink(fx->path), 0);
    write_text(fx->path, "precious\n", 9);
    assert_int_equal(sim_file_create(fx->path, SUBSCRIBER, PIN, PUK),
                     SIMSYNC_EEXIST);
    read_text(fx->path, after, sizeof(after));
    assert_string_equal(after, "precious\n");
    /* No temp file left: the SIM and its lock file only. */
    assert_int_equal(count_entries(fx->dir), 2);
}

static void
file_mode_is_0600(void **state)
{
    struct fixture *fx = *state;
    struct stat st;
    struct sim *s;
    mode_t old = umask(0); /* the mode must not depend on the umask */

    make_sim(fx);
    umask(old);
    assert_int_equal(stat(fx->path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);

    old = umask(0);
    s = open_sim(fx);
    assert_int_equal(sim_verify_pin(s, BAD_PIN), SIMSYNC_EPIN); /* rewrite */
    sim_close(s);
    umask(old);
    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
}

static void
no_temp_files_are_left_behind(void **state)
{
    struct fixture *fx = *state;
    struct sim *s;

    make_sim(fx);
    s = open_sim(fx);
    assert_int_equal(sim_verify_pin(s, BAD_PIN), SIMSYNC_EPIN);
    assert_int_equal(sim_verify_pin(s, PIN), SIMSYNC_OK);
    assert_int_equal(sim_unblock(s, BAD_PUK, "1111"), SIMSYNC_EPIN);
    assert_int_equal(sim_unblock(s, PUK, "1111"), SIMSYNC_OK);
    assert_int_equal(sim_change_pin(s, "1111", "2222"), SIMSYNC_OK);
    sim_close(s);
    assert_int_equal(count_entries(fx->dir), 2); /* SIM + its lock file */
}

/* Several terminals checking the right PIN at once must all succeed and
 * leave the counter full: a check's spent try is never seen by another. */
static void
concurrent_right_pins_all_succeed(void **state)
{
    struct fixture *fx = *state;
    pid_t kids[24];
    struct sim *s;
    struct sim_status st;

    make_sim(fx);
    for (int i = 0; i < 24; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            int ok = 1;
            for (int k = 0; k < 40 && ok; k++) {
                struct sim *c;
                ok = sim_open(fx->path, &c) == SIMSYNC_OK &&
                     sim_verify_pin(c, PIN) == SIMSYNC_OK;
                sim_close(c);
            }
            _exit(ok ? 0 : 1);
        }
    }
    for (int i = 0; i < 24; i++) {
        int wst;
        assert_int_equal(waitpid(kids[i], &wst, 0), kids[i]);
        assert_true(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
    }
    s = open_sim(fx);
    assert_int_equal(sim_status(s, &st), SIMSYNC_OK);
    assert_int_equal(st.pin_tries_left, 3);
    sim_close(s);
}

static void
open_picks_backend_by_scheme(void **state)
{
    struct fixture *fx = *state;
    char loc[PATH_MAX + 16], link_path[PATH_MAX + 16];
    struct sim *s = NULL;

    make_sim(fx);
    snprintf(loc, sizeof(loc), "file:%s", fx->path);
    assert_int_equal(sim_open(loc, &s), SIMSYNC_OK);
    assert_string_equal(s->ops->name, "file");
    assert_int_equal(sim_verify_pin(s, PIN), SIMSYNC_OK);
    sim_close(s);

    assert_ptr_equal(sim_find("file"), &sim_file_ops);
    assert_null(sim_find("pcsc"));
    assert_int_equal(open_rc("pcsc:reader0"), SIMSYNC_EINVAL);
    assert_int_equal(open_rc("file:"), SIMSYNC_EINVAL);
    assert_int_equal(open_rc(""), SIMSYNC_EINVAL);
    assert_int_equal(sim_open(NULL, &s), SIMSYNC_EINVAL);
    assert_int_equal(sim_open(fx->path, NULL), SIMSYNC_EINVAL);
    assert_int_equal(open_rc(fx->dir), SIMSYNC_EINVAL); /* a directory */

    snprintf(link_path, sizeof(link_path), "%s/link", fx->dir);
    assert_int_equal(symlink(fx->path, link_path), 0);
    assert_int_equal(open_rc(link_path), SIMSYNC_EINVAL);

    sim_close(NULL); /* NULL-safe */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(verified_session_reads_subscriber,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(subscriber_refused_before_pin, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(verified_state_ends_with_session, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(failed_pin_ends_verified_state, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            right_pin_restores_tries_after_two_wrong, setup, teardown),
        cmocka_unit_test_setup_teardown(third_wrong_pin_blocks_even_right_pin,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_puk_costs_a_puk_try, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(right_puk_sets_new_pin_and_unblocks,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(ten_wrong_puks_kill_sim_for_good, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            tries_survive_reopen_after_each_wrong_try, setup, teardown),
        cmocka_unit_test_setup_teardown(spent_try_survives_kill_before_compare,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_wrong_puks_each_cost_a_try,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(file_holds_neither_pin_nor_puk_in_clear,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(change_pin_replaces_pin, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(corrupted_file_is_rejected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(missing_file_is_no_sim, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(swapped_card_is_detected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            malformed_inputs_are_invalid_and_cost_no_try, setup, teardown),
        cmocka_unit_test_setup_teardown(
            create_over_existing_file_fails_and_keeps_it, setup, teardown),
        cmocka_unit_test_setup_teardown(file_mode_is_0600, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_right_pins_all_succeed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(no_temp_files_are_left_behind, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(open_picks_backend_by_scheme, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
