/* sim.c -- the SIM wrappers: pick a backend from a location, check
 * arguments once for every backend, and dispatch through the ops table.
 * Card rules (tries, blocking) live in the backends; see sim.h. */
#include <string.h>

#include "sim.h"

/* Registered backends, searched by scheme name. */
static const struct sim_ops *const backends[] = {
    &sim_file_ops,
};

const struct sim_ops *
sim_find(const char *scheme)
{
    size_t i;

    if (scheme == NULL)
        return NULL;
    for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
        if (strcmp(backends[i]->name, scheme) == 0)
            return backends[i];
    return NULL;
}

void
sim_init(struct sim *s, const struct sim_ops *ops)
{
    memset(s, 0, sizeof(*s));
    s->ops = ops;
}

/* Length of the scheme at the start of `location` ("pcsc" in
 * "pcsc:reader 0"), or 0 when it does not start with one: a scheme is one
 * or more lower-case letters or digits, starting with a letter, followed
 * by ':'. */
static size_t
scheme_length(const char *location)
{
    size_t n = 0;

    if (location[0] < 'a' || location[0] > 'z')
        return 0;
    while ((location[n] >= 'a' && location[n] <= 'z') ||
           (location[n] >= '0' && location[n] <= '9'))
        n++;
    return location[n] == ':' ? n : 0;
}

int
sim_open(const char *location, struct sim **out)
{
    const struct sim_ops *ops = &sim_file_ops;
    char scheme[16];
    size_t n;
    int rc;

    if (out != NULL)
        *out = NULL;
    if (location == NULL || out == NULL || location[0] == '\0')
        return SIMSYNC_EINVAL;

    n = scheme_length(location);
    if (n > 0) {
        if (n >= sizeof(scheme))
            return SIMSYNC_EINVAL;
        memcpy(scheme, location, n);
        scheme[n] = '\0';
        ops = sim_find(scheme);
        if (ops == NULL)
            return SIMSYNC_EINVAL;
        location += n + 1;
        if (location[0] == '\0')
            return SIMSYNC_EINVAL;
    }
    if (ops->version < 1 || ops->open == NULL)
        return SIMSYNC_EINVAL;

    rc = ops->open(location, out);
    if (rc != SIMSYNC_OK)
        *out = NULL;
    return rc;
}

int
sim_verify_pin(struct sim *s, const char *pin)
{
    if (s == NULL || pin == NULL)
        return SIMSYNC_EINVAL;
    return s->ops->verify_pin(s, pin);
}

int
sim_unblock(struct sim *s, const char *puk, const char *new_pin)
{
    if (s == NULL || puk == NULL || new_pin == NULL)
        return SIMSYNC_EINVAL;
    return s->ops->unblock(s, puk, new_pin);
}

int
sim_change_pin(struct sim *s, const char *old_pin, const char *new_pin)
{
    if (s == NULL || old_pin == NULL || new_pin == NULL)
        return SIMSYNC_EINVAL;
    if (s->ops->change_pin == NULL)
        return SIMSYNC_EREFUSED;
    return s->ops->change_pin(s, old_pin, new_pin);
}

int
sim_subscriber(struct sim *s, char *buf, size_t len)
{
    if (buf != NULL && len > 0)
        memset(buf, 0, len);
    if (s == NULL || buf == NULL || len == 0)
        return SIMSYNC_EINVAL;
    return s->ops->subscriber(s, buf, len);
}

int
sim_status(struct sim *s, struct sim_status *st)
{
    if (st != NULL)
        memset(st, 0, sizeof(*st));
    if (s == NULL || st == NULL)
        return SIMSYNC_EINVAL;
    return s->ops->status(s, st);
}

void
sim_close(struct sim *s)
{
    if (s != NULL)
        s->ops->close(s);
}

void
sim_fault_after_persist(struct sim *s, void (*fn)(void *arg), void *arg)
{
    if (s == NULL)
        return;
    s->fault_fn = fn;
    s->fault_arg = arg;
}
