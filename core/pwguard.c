/* pwguard.c -- the terminal-password guessing guard (see pwguard.h): a
 * count of wrong passwords, a doubling wait and a lockout, as pure state
 * transitions and a small text codec. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pwguard.h"

enum pwguard_verdict
pwguard_check(const struct pwguard *g, uint64_t now_ms, uint64_t *wait_ms)
{
    if (wait_ms != NULL)
        *wait_ms = 0;
    if (g->failures >= PWGUARD_MAX_FAILURES)
        return PWGUARD_LOCKED;
    if (now_ms < g->not_before_ms) {
        if (wait_ms != NULL)
            *wait_ms = g->not_before_ms - now_ms;
        return PWGUARD_WAIT;
    }
    return PWGUARD_TRY;
}

uint32_t
pwguard_failed(struct pwguard *g, uint64_t now_ms, uint64_t base_ms)
{
    uint64_t wait = base_ms;

    if (g->failures < PWGUARD_MAX_FAILURES)
        g->failures++;
    /* base * 2^(failures-1), without overflowing on the way to the cap. */
    for (uint32_t i = 1; i < g->failures && wait < PWGUARD_MAX_WAIT_MS; i++)
        wait *= 2;
    if (wait > PWGUARD_MAX_WAIT_MS)
        wait = PWGUARD_MAX_WAIT_MS;
    g->not_before_ms = now_ms + wait;
    g->wait_ms = wait;
    return g->failures;
}

void
pwguard_succeeded(struct pwguard *g)
{
    g->failures = 0;
    g->not_before_ms = 0;
    g->wait_ms = 0;
}

int
pwguard_format(const struct pwguard *g, char *buf, size_t len)
{
    int n;

    if (g == NULL || buf == NULL || len < PWGUARD_TEXT_MAX)
        return SIMSYNC_EINVAL;
    n = snprintf(buf, len, "failures=%u\nnot_before_ms=%llu\nwait_ms=%llu\n",
                 (unsigned)g->failures, (unsigned long long)g->not_before_ms,
                 (unsigned long long)g->wait_ms);
    return n > 0 && (size_t)n < len ? SIMSYNC_OK : SIMSYNC_EINVAL;
}

/* The unsigned decimal after "key=" at the start of a line of text. */
static int
field(const char *text, const char *key, uint64_t *out)
{
    size_t kl = strlen(key);
    const char *p = text;

    while (p != NULL && *p != '\0') {
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            char *end;
            unsigned long long v;
            if (p[kl + 1] < '0' || p[kl + 1] > '9')
                return SIMSYNC_EPROTO;
            errno = 0;
            v = strtoull(p + kl + 1, &end, 10);
            if (errno != 0 || (*end != '\n' && *end != '\0'))
                return SIMSYNC_EPROTO;
            *out = v;
            return SIMSYNC_OK;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return SIMSYNC_EPROTO;
}

int
pwguard_parse(const char *text, struct pwguard *g)
{
    uint64_t f, t, w;

    memset(g, 0, sizeof(*g));
    if (text == NULL || *text == '\0')
        return SIMSYNC_OK;
    if (field(text, "failures", &f) != SIMSYNC_OK ||
        field(text, "not_before_ms", &t) != SIMSYNC_OK ||
        field(text, "wait_ms", &w) != SIMSYNC_OK) {
        g->failures = PWGUARD_MAX_FAILURES;
        return SIMSYNC_EPROTO;
    }
    g->failures = f > PWGUARD_MAX_FAILURES ? PWGUARD_MAX_FAILURES : (uint32_t)f;
    g->not_before_ms = t;
    g->wait_ms = w;
    return SIMSYNC_OK;
}
