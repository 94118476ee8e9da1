/* test_daemon_log.c -- the daemon's decision log: entries round-trip, a
 * reader that follows sees every entry exactly once across the rotation to
 * daemon.log.1, and a line still being written is left for the next read.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon.h"
#include "node.h"

struct seen {
    uint64_t n;       /* entries seen */
    uint64_t next;    /* the sequence number expected next */
    int out_of_order; /* an entry came twice or was skipped */
    struct simsync_log_entry last;
};

static int
collect(void *arg, const struct simsync_log_entry *e)
{
    struct seen *s = arg;
    uint64_t seq = e->sent_items;

    if (seq != s->next)
        s->out_of_order = 1;
    s->next = seq + 1;
    s->n++;
    s->last = *e;
    return 0;
}

static struct simsync_node *
fake_node(void)
{
    struct simsync_node *n = calloc(1, sizeof(*n));

    assert_non_null(n);
    snprintf(n->home, sizeof(n->home), "/tmp/simsync-dlog-%d", (int)getpid());
    mkdir(n->home, 0700);
    return n;
}

static void
drop_node(struct simsync_node *n)
{
    char path[PATH_MAX + 32];

    snprintf(path, sizeof(path), "%s/%s", n->home, DAEMON_LOG);
    unlink(path);
    snprintf(path, sizeof(path), "%s/%s.1", n->home, DAEMON_LOG);
    unlink(path);
    rmdir(n->home);
    free(n);
}

static void
append_seq(struct daemon_log *l, uint64_t seq)
{
    struct simsync_log_entry e;

    memset(&e, 0, sizeof(e));
    snprintf(e.kind, sizeof(e.kind), "done");
    snprintf(e.action, sizeof(e.action), "upload");
    snprintf(e.trigger, sizeof(e.trigger), "periodic");
    snprintf(e.result, sizeof(e.result), "ok");
    e.sent_items = seq;
    /* Long enough that the rotation comes after a few thousand entries. */
    memset(e.text, 'x', 300);
    e.text[300] = '\0';
    assert_int_equal(daemon_log_append(l, &e), SIMSYNC_OK);
}

static void
entry_round_trips_with_control_characters_made_blanks(void **state)
{
    struct simsync_node *n = fake_node();
    struct daemon_log *l;
    struct simsync_log_entry e;
    struct simsync_log_pos pos;
    struct seen s;

    (void)state;
    memset(&e, 0, sizeof(e));
    e.time_ms = 1700000000123ull;
    snprintf(e.kind, sizeof(e.kind), "done");
    snprintf(e.action, sizeof(e.action), "sync");
    snprintf(e.trigger, sizeof(e.trigger), "battery-low");
    snprintf(e.triggers, sizeof(e.triggers), "battery-low,periodic");
    snprintf(e.result, sizeof(e.result), "partial");
    e.sent_items = 0;
    e.sent_bytes = 12345678901ull;
    e.recv_items = 4;
    e.recv_bytes = 99;
    e.pending_bytes = 7;
    e.ms = 250;
    snprintf(e.text, sizeof(e.text), "a\ttab and\na newline");
    assert_int_equal(daemon_log_open(n->home, &l), SIMSYNC_OK);
    assert_int_equal(daemon_log_append(l, &e), SIMSYNC_OK);
    daemon_log_close(l);
    memset(&pos, 0, sizeof(pos));
    memset(&s, 0, sizeof(s));
    assert_int_equal(simsync_log_read(n, &pos, collect, &s), SIMSYNC_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.last.time_ms, 1700000000123ull);
    assert_string_equal(s.last.kind, "done");
    assert_string_equal(s.last.action, "sync");
    assert_string_equal(s.last.trigger, "battery-low");
    assert_string_equal(s.last.triggers, "battery-low,periodic");
    assert_string_equal(s.last.result, "partial");
    assert_int_equal(s.last.sent_bytes, 12345678901ull);
    assert_int_equal(s.last.recv_items, 4);
    assert_int_equal(s.last.recv_bytes, 99);
    assert_int_equal(s.last.pending_bytes, 7);
    assert_int_equal(s.last.ms, 250);
    assert_string_equal(s.last.text, "a tab and a newline");
    /* Read again from where it stopped: nothing new. */
    assert_int_equal(simsync_log_read(n, &pos, collect, &s), SIMSYNC_OK);
    assert_int_equal(s.n, 1);
    drop_node(n);
}

static void
follower_sees_each_entry_once_across_rotation(void **state)
{
    struct simsync_node *n = fake_node();
    struct daemon_log *l;
    struct simsync_log_pos pos;
    struct seen s;
    char old_path[PATH_MAX + 32];
    struct stat st;
    uint64_t seq = 0;

    (void)state;
    memset(&pos, 0, sizeof(pos));
    memset(&s, 0, sizeof(s));
    assert_int_equal(daemon_log_open(n->home, &l), SIMSYNC_OK);
    /* No log yet is no entry. */
    assert_int_equal(simsync_log_read(n, &pos, collect, &s), SIMSYNC_OK);
    /* Read every ~500 entries while writing past two rotations. */
    while (seq < 9000) {
        for (int i = 0; i < 500; i++)
            append_seq(l, seq++);
        assert_int_equal(simsync_log_read(n, &pos, collect, &s), SIMSYNC_OK);
        assert_int_equal(s.n, seq);
    }
    assert_false(s.out_of_order);
    snprintf(old_path, sizeof(old_path), "%s/%s.1", n->home, DAEMON_LOG);
    assert_int_equal(stat(old_path, &st), 0);
    assert_true(st.st_size <= (off_t)DAEMON_LOG_MAX);
    /* A new reader gets what is kept: the old file, then the current one,
     * in order. */
    memset(&pos, 0, sizeof(pos));
    memset(&s, 0, sizeof(s));
    assert_int_equal(simsync_log_read(n, &pos, collect, &s), SIMSYNC_OK);
    assert_true(s.n > 0 && s.n < seq);
    assert_int_equal(s.next, seq);
    daemon_log_close(l);
    drop_node(n);
}

static void
line_being_written_waits_for_its_newline(void **state)
{
    struct simsync_node *n = fake_node();
    struct daemon_log *l;
    struct simsync_log_pos pos;
    struct seen s;
    char path[PATH_MAX + 32];
    const char *half = "v1\t1\tevent\t\t\t\t\t0\t0\t0\t0\t0\t0\thalf",
               *rest = "\n";
    int fd;

    (void)state;
    assert_int_equal(daemon_log_open(n->home, &l), SIMSYNC_OK);
    append_seq(l, 0);
    daemon_log_close(l);
    snprintf(path, sizeof(path), "%s/%s", n->home, DAEMON_LOG);
    fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, half, strlen(half)), (ssize_t)strlen(half));
    memset(&pos, 0, sizeof(pos));
    memset(&s, 0, sizeof(s));
    assert_int_equal(simsync_log_read(n, &pos, collect, &s), SIMSYNC_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(write(fd, rest, 1), 1);
    close(fd);
    assert_int_equal(simsync_log_read(n, &pos, collect, &s), SIMSYNC_OK);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.last.text, "half");
    drop_node(n);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(entry_round_trips_with_control_characters_made_blanks),
        cmocka_unit_test(follower_sees_each_entry_once_across_rotation),
        cmocka_unit_test(line_being_written_waits_for_its_newline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
