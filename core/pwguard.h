/* pwguard.h -- the terminal-password guessing guard: a persistent count of
 * wrong passwords, a growing wait between attempts, and a lockout.
 *
 * Pure logic, no files and no clock: the caller loads the state (its text
 * form lives in <home>/password.guard), passes the time in, and saves the
 * state the guard returns. So two programs started at once share one
 * counter, and a guess made before the wait is over is refused without
 * even looking at the password (it is not counted either).
 *
 * After failure k (k = 1..PWGUARD_MAX_FAILURES-1) the next attempt may come
 * `base_ms * 2^(k-1)` milliseconds later (capped at PWGUARD_MAX_WAIT_MS).
 * At PWGUARD_MAX_FAILURES failures the guard is locked: no attempt is
 * checked any more, right or wrong. A right password before that resets the
 * count to 0. */
#ifndef SIMSYNC_PWGUARD_H
#define SIMSYNC_PWGUARD_H

#include <stddef.h>
#include <stdint.h>
#include "simsync.h"

#define PWGUARD_MAX_FAILURES 10
#define PWGUARD_DEFAULT_BASE_MS 1000u
#define PWGUARD_MAX_WAIT_MS (3600u * 1000u) /* one hour */
#define PWGUARD_TEXT_MAX 96                 /* pwguard_format's output */

struct pwguard {
    uint32_t failures;      /* wrong passwords since the last right one */
    uint64_t not_before_ms; /* no attempt is checked before this time */
    uint64_t wait_ms;       /* the wait the last failure imposed */
};

/* What the caller may do now. */
enum pwguard_verdict {
    PWGUARD_TRY = 0, /* check the password */
    PWGUARD_WAIT,    /* too early: refuse, *wait_ms says how long to wait */
    PWGUARD_LOCKED   /* too many failures: refuse every attempt */
};

/* Decide whether an attempt at `now_ms` may be checked. *wait_ms (may be
 * NULL) is set to the time left for PWGUARD_WAIT, else 0. */
enum pwguard_verdict pwguard_check(const struct pwguard *g, uint64_t now_ms,
                                   uint64_t *wait_ms);

/* Record a wrong password at `now_ms` with base wait `base_ms`: the count
 * goes up and the next attempt waits. Returns the new count. */
uint32_t pwguard_failed(struct pwguard *g, uint64_t now_ms, uint64_t base_ms);

/* Record a right password: back to no failures and no wait. */
void pwguard_succeeded(struct pwguard *g);

/* The text form ("failures=N\nnot_before_ms=T\nwait_ms=W\n") into buf (len >=
 * PWGUARD_TEXT_MAX). Returns SIMSYNC_OK or SIMSYNC_EINVAL. */
int pwguard_format(const struct pwguard *g, char *buf, size_t len);

/* Parse the text form. An empty text is a fresh guard. A text that cannot
 * be read is SIMSYNC_EPROTO and *g is set to the locked state, so a damaged
 * file never turns into a free reset. Returns SIMSYNC_OK or
 * SIMSYNC_EPROTO. */
int pwguard_parse(const char *text, struct pwguard *g);

#endif
