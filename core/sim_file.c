/* sim_file.c -- the "file" SIM backend: a virtual SIM in a small text file,
 * for development and tests, that keeps the rules of a real card (see
 * sim.h for the rules and the file format).
 *
 * Every PIN or PUK check runs the same sequence under an exclusive lock on
 * the file: read and check the file, spend one try and persist it, only
 * then compare (in constant time, hashes of the secret), and on success
 * persist the restored counters. A process killed at any point therefore
 * leaves the try spent, never refunded. The verified state of a session is
 * a field of the handle and never touches the disk. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypt.h"
#include "sim.h"

#define SALT_BYTES 16
#define HASH_BYTES 32
#define FILE_VERSION "1"
#define FILE_MAX 1024    /* a valid file is about 330 bytes */
#define LOCK_RETRIES 100 /* reopen attempts while the file is replaced */
#define PIN_LABEL "simsync-vsim-pin"
#define PUK_LABEL "simsync-vsim-puk"

/* Key of the check line: public, so the check detects corruption and hand
 * edits, not a forger (see Caveats in sim.h). Exactly 32 characters. */
static const char check_key[] = "simsync virtual SIM file check 1";

/* Keys of the file's lines, in their required order. */
enum field {
    F_VERSION,
    F_SUBSCRIBER,
    F_PIN_SALT,
    F_PIN_HASH,
    F_PUK_SALT,
    F_PUK_HASH,
    F_PIN_TRIES,
    F_PUK_TRIES,
    F_CHECK,
    F_COUNT
};
static const char *const field_keys[F_COUNT] = {
    "simsync-vsim", "subscriber", "pin_salt",  "pin_hash", "puk_salt",
    "puk_hash",     "pin_tries",  "puk_tries", "check",
};

/* The contents of a SIM file, decoded. */
struct vsim {
    char subscriber[SIM_SUBSCRIBER_BUF]; /* digits, NUL-terminated */
    uint8_t pin_salt[SALT_BYTES];        /* key of pin_hash */
    uint8_t pin_hash[HASH_BYTES];        /* keyed hash of the PIN */
    uint8_t puk_salt[SALT_BYTES];        /* key of puk_hash; fixed for the
                                          * card's life: its identity */
    uint8_t puk_hash[HASH_BYTES];        /* keyed hash of the PUK */
    int pin_tries;                       /* 0..SIM_PIN_TRIES */
    int puk_tries;                       /* 0..SIM_PUK_TRIES */
};

/* The handle of an open (powered-on) file SIM. */
struct sim_file {
    struct sim base; /* first: the handle is passed as a struct sim */
    char *path;      /* owned: where the file lives */
    char subscriber[SIM_SUBSCRIBER_BUF]; /* the card seen at power-on */
    uint8_t identity[SALT_BYTES];        /* its puk_salt, to spot a swap */
    int verified; /* 1 once this session verified the PIN */
    int lock_fd;  /* lock held between begin() and end(), else -1 */
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

/* 1 when `s` is min..max ASCII digits and nothing else. */
static int
valid_digits(const char *s, size_t min, size_t max)
{
    size_t n = 0;

    if (s == NULL)
        return 0;
    for (n = 0; s[n] != '\0'; n++) {
        if (s[n] < '0' || s[n] > '9' || n >= max)
            return 0;
    }
    return n >= min;
}

/* Decode a try counter: 1 or 2 digits, 0..max. */
static int
decode_tries(const char *in, size_t len, int max, int *out)
{
    int v = 0;
    size_t i;

    if (len < 1 || len > 2 || (len == 2 && in[0] == '0'))
        return SIMSYNC_EPROTO;
    for (i = 0; i < len; i++) {
        if (in[i] < '0' || in[i] > '9')
            return SIMSYNC_EPROTO;
        v = v * 10 + (in[i] - '0');
    }
    if (v > max)
        return SIMSYNC_EPROTO;
    *out = v;
    return SIMSYNC_OK;
}

/* out = BLAKE2b-256(key = salt, label || secret). */
static int
secret_hash(uint8_t out[HASH_BYTES], const char *label, const char *secret,
            const uint8_t salt[SALT_BYTES])
{
    char in[sizeof(PIN_LABEL) + SIM_PIN_MAX + SIM_PUK_LEN];
    size_t llen = strlen(label), slen = strlen(secret);
    int rc;

    if (llen + slen > sizeof(in))
        return SIMSYNC_EINVAL;
    memcpy(in, label, llen);
    memcpy(in + llen, secret, slen);
    rc = crypt_hash(out, HASH_BYTES, in, llen + slen, salt, SALT_BYTES);
    crypt_wipe(in, sizeof(in));
    return rc;
}

/* Give `vs` a fresh PIN salt and the hash of `pin` under it. */
static int
set_pin(struct vsim *vs, const char *pin)
{
    crypt_random(vs->pin_salt, SALT_BYTES);
    return secret_hash(vs->pin_hash, PIN_LABEL, pin, vs->pin_salt);
}

/* 1 when `secret` hashes to `hash` under `salt`; constant time. */
static int
secret_matches(const char *label, const char *secret,
               const uint8_t salt[SALT_BYTES], const uint8_t hash[HASH_BYTES])
{
    uint8_t h[HASH_BYTES];
    int ok;

    ok = secret_hash(h, label, secret, salt) == SIMSYNC_OK &&
         crypt_equal(h, hash, HASH_BYTES);
    crypt_wipe(h, sizeof(h));
    return ok;
}

static int
errno_rc(int e)
{
    switch (e) {
    case ENOSPC:
#ifdef EDQUOT
    case EDQUOT:
#endif
        return SIMSYNC_ENOSPC;
    case ENOMEM:
        return SIMSYNC_ENOMEM;
    default:
        return SIMSYNC_EIO;
    }
}

/* ------------------------------------------------------------------ */
/* Encoding                                                             */

/* Write the file text for `vs` into buf[cap]; *len is its length. */
static int
encode(const struct vsim *vs, char *buf, size_t cap, size_t *len)
{
    char pin_salt[2 * SALT_BYTES + 1], pin_hash[2 * HASH_BYTES + 1];
    char puk_salt[2 * SALT_BYTES + 1], puk_hash[2 * HASH_BYTES + 1];
    char check[2 * HASH_BYTES + 1];
    uint8_t sum[HASH_BYTES];
    int n, m, rc;

    crypt_hex_encode(pin_salt, vs->pin_salt, SALT_BYTES);
    crypt_hex_encode(pin_hash, vs->pin_hash, HASH_BYTES);
    crypt_hex_encode(puk_salt, vs->puk_salt, SALT_BYTES);
    crypt_hex_encode(puk_hash, vs->puk_hash, HASH_BYTES);
    n = snprintf(buf, cap,
                 "simsync-vsim=" FILE_VERSION "\n"
                 "subscriber=%s\n"
                 "pin_salt=%s\npin_hash=%s\n"
                 "puk_salt=%s\npuk_hash=%s\n"
                 "pin_tries=%d\npuk_tries=%d\n",
                 vs->subscriber, pin_salt, pin_hash, puk_salt, puk_hash,
                 vs->pin_tries, vs->puk_tries);
    if (n < 0 || (size_t)n >= cap)
        return SIMSYNC_ETOOBIG;
    rc = crypt_hash(sum, HASH_BYTES, buf, (size_t)n, (const uint8_t *)check_key,
                    sizeof(check_key) - 1);
    if (rc != SIMSYNC_OK)
        return rc;
    crypt_hex_encode(check, sum, HASH_BYTES);
    m = snprintf(buf + n, cap - (size_t)n, "check=%s\n", check);
    if (m < 0 || (size_t)m >= cap - (size_t)n)
        return SIMSYNC_ETOOBIG;
    *len = (size_t)n + (size_t)m;
    return SIMSYNC_OK;
}

/* Decode the file text buf[len] into *vs. SIMSYNC_EPROTO for anything but
 * a well-formed version-1 file whose check matches. */
static int
decode(const char *buf, size_t len, struct vsim *vs)
{
    const char *val[F_COUNT];
    size_t vlen[F_COUNT], klen, body = 0;
    const char *p = buf, *end = buf + len, *nl;
    uint8_t want[HASH_BYTES], sum[HASH_BYTES];
    int i;

    memset(vs, 0, sizeof(*vs));
    for (i = 0; i < F_COUNT; i++) {
        klen = strlen(field_keys[i]);
        if (i == F_CHECK)
            body = (size_t)(p - buf);
        if ((size_t)(end - p) < klen + 1 || memcmp(p, field_keys[i], klen) ||
            p[klen] != '=')
            return SIMSYNC_EPROTO;
        p += klen + 1;
        nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            return SIMSYNC_EPROTO;
        val[i] = p;
        vlen[i] = (size_t)(nl - p);
        p = nl + 1;
    }
    if (p != end)
        return SIMSYNC_EPROTO;

    if (crypt_hex_decode(want, HASH_BYTES, val[F_CHECK], vlen[F_CHECK]) ||
        crypt_hash(sum, HASH_BYTES, buf, body, (const uint8_t *)check_key,
                   sizeof(check_key) - 1) ||
        !crypt_equal(want, sum, HASH_BYTES))
        return SIMSYNC_EPROTO;

    if (vlen[F_VERSION] != strlen(FILE_VERSION) ||
        memcmp(val[F_VERSION], FILE_VERSION, vlen[F_VERSION]) != 0)
        return SIMSYNC_EPROTO;
    if (vlen[F_SUBSCRIBER] < SIM_SUBSCRIBER_MIN ||
        vlen[F_SUBSCRIBER] > SIM_SUBSCRIBER_MAX)
        return SIMSYNC_EPROTO;
    memcpy(vs->subscriber, val[F_SUBSCRIBER], vlen[F_SUBSCRIBER]);
    if (!valid_digits(vs->subscriber, SIM_SUBSCRIBER_MIN, SIM_SUBSCRIBER_MAX))
        return SIMSYNC_EPROTO;
    if (crypt_hex_decode(vs->pin_salt, SALT_BYTES, val[F_PIN_SALT],
                         vlen[F_PIN_SALT]) ||
        crypt_hex_decode(vs->pin_hash, HASH_BYTES, val[F_PIN_HASH],
                         vlen[F_PIN_HASH]) ||
        crypt_hex_decode(vs->puk_salt, SALT_BYTES, val[F_PUK_SALT],
                         vlen[F_PUK_SALT]) ||
        crypt_hex_decode(vs->puk_hash, HASH_BYTES, val[F_PUK_HASH],
                         vlen[F_PUK_HASH]) ||
        decode_tries(val[F_PIN_TRIES], vlen[F_PIN_TRIES], SIM_PIN_TRIES,
                     &vs->pin_tries) ||
        decode_tries(val[F_PUK_TRIES], vlen[F_PUK_TRIES], SIM_PUK_TRIES,
                     &vs->puk_tries))
        return SIMSYNC_EPROTO;
    return SIMSYNC_OK;
}

/* ------------------------------------------------------------------ */
/* Files                                                                */

/* Open `path` for reading while holding a flock of kind `op` (LOCK_SH or
 * LOCK_EX) on the companion lock file "<path>.lock". The SIM file itself
 * is replaced by rename on every write, so a lock on it would be lost on
 * the old inode and two checks could interleave (each seeing the other's
 * spent try); the lock file is never replaced. *fd_out (the SIM file) and
 * *lock_out are returned to the caller, who closes both (closing the lock
 * releases it). */
static int
open_locked(const char *path, int op, int *fd_out, int *lock_out, int *err)
{
    char lpath[PATH_MAX];
    struct stat held;
    int fd, lfd, n;

    *fd_out = -1;
    *lock_out = -1;
    n = snprintf(lpath, sizeof(lpath), "%s.lock", path);
    if (n < 0 || (size_t)n >= sizeof(lpath))
        return SIMSYNC_EINVAL;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        *err = errno;
        if (errno == ENOENT || errno == ENOTDIR)
            return SIMSYNC_ENOSIM;
        if (errno == ELOOP) /* a symlink: it would be replaced */
            return SIMSYNC_EINVAL;
        return errno_rc(errno);
    }
    if (fstat(fd, &held) != 0 || !S_ISREG(held.st_mode)) {
        *err = errno;
        close(fd);
        return SIMSYNC_EINVAL;
    }
    close(fd);
    lfd = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lfd < 0) {
        *err = errno;
        return errno_rc(errno);
    }
    while (flock(lfd, op) != 0) {
        if (errno != EINTR) {
            *err = errno;
            close(lfd);
            return SIMSYNC_EIO;
        }
    }
    /* Under the lock: open what is at `path` now. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        *err = errno;
        close(lfd);
        return errno == ENOENT ? SIMSYNC_ENOSIM : errno_rc(errno);
    }
    *fd_out = fd;
    *lock_out = lfd;
    return SIMSYNC_OK;
}

/* Read and decode the whole file open at `fd`. */
static int
read_vsim(int fd, struct vsim *vs, int *err)
{
    char buf[FILE_MAX + 1];
    size_t len = 0;
    ssize_t n;
    int rc;

    for (;;) {
        n = read(fd, buf + len, sizeof(buf) - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *err = errno;
            return SIMSYNC_EIO;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == sizeof(buf))
            return SIMSYNC_EPROTO; /* larger than any valid file */
    }
    rc = decode(buf, len, vs);
    crypt_wipe(buf, sizeof(buf));
    return rc;
}

/* fsync the directory that holds `path`, so a rename or link in it is
 * durable. File systems that cannot sync a directory (EINVAL) are let
 * be. */
static int
sync_parent(const char *path, int *err)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    size_t n;
    int fd, rc = SIMSYNC_OK;

    if (slash == NULL) {
        dir = strdup(".");
    } else {
        n = slash == path ? 1 : (size_t)(slash - path);
        dir = malloc(n + 1);
        if (dir != NULL) {
            memcpy(dir, path, n);
            dir[n] = '\0';
        }
    }
    if (dir == NULL)
        return SIMSYNC_ENOMEM;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        *err = errno;
        rc = errno_rc(errno);
    } else {
        if (fsync(fd) != 0 && errno != EINVAL) {
            *err = errno;
            rc = errno_rc(errno);
        }
        close(fd);
    }
    free(dir);
    return rc;
}

/* Write `vs` to a new temporary file next to `path` (mode 0600, synced).
 * On success *tmp_out is the temporary's name, returned to the caller,
 * who frees it after renaming or unlinking the file. */
static int
write_temp(const char *path, const struct vsim *vs, char **tmp_out, int *err)
{
    static const char suffix[] = ".tmpXXXXXX";
    char text[FILE_MAX];
    size_t len, off = 0, plen = strlen(path);
    ssize_t n;
    char *tmp;
    int fd, rc;

    *tmp_out = NULL;
    rc = encode(vs, text, sizeof(text), &len);
    if (rc != SIMSYNC_OK)
        return rc;
    tmp = malloc(plen + sizeof(suffix));
    if (tmp == NULL)
        return SIMSYNC_ENOMEM;
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, suffix, sizeof(suffix));

    fd = mkstemp(tmp); /* O_EXCL, mode 0600 */
    if (fd < 0) {
        *err = errno;
        rc = errno == ENOENT || errno == ENOTDIR ? SIMSYNC_ENOTFOUND
                                                 : errno_rc(errno);
        free(tmp);
        return rc;
    }
    if (fchmod(fd, S_IRUSR | S_IWUSR) != 0)
        rc = SIMSYNC_EIO;
    while (rc == SIMSYNC_OK && off < len) {
        n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = errno_rc(errno);
        else
            off += (size_t)n;
    }
    if (rc == SIMSYNC_OK && fsync(fd) != 0)
        rc = errno_rc(errno);
    if (rc != SIMSYNC_OK)
        *err = errno;
    if (close(fd) != 0 && rc == SIMSYNC_OK) {
        *err = errno;
        rc = errno_rc(errno);
    }
    crypt_wipe(text, sizeof(text));
    if (rc != SIMSYNC_OK) {
        unlink(tmp);
        free(tmp);
        return rc;
    }
    *tmp_out = tmp;
    return SIMSYNC_OK;
}

/* Replace the file at `path` with `vs`, atomically and durably. */
static int
store(const char *path, const struct vsim *vs, int *err)
{
    char *tmp;
    int rc;

    rc = write_temp(path, vs, &tmp, err);
    if (rc != SIMSYNC_OK)
        return rc;
    if (rename(tmp, path) != 0) {
        *err = errno;
        rc = errno_rc(errno);
        unlink(tmp);
    }
    free(tmp);
    if (rc == SIMSYNC_OK)
        rc = sync_parent(path, err);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Sessions                                                             */

/* Lock the SIM file (`op` as for flock), read it, and make sure it is
 * still the card this session powered on. On success *fd_out holds the
 * lock until the caller closes it. */
static int
begin(struct sim_file *f, int op, int *fd_out, struct vsim *vs)
{
    int rc;

    rc = open_locked(f->path, op, fd_out, &f->lock_fd, &f->base.last_errno);
    if (rc == SIMSYNC_OK)
        rc = read_vsim(*fd_out, vs, &f->base.last_errno);
    if (rc == SIMSYNC_OK &&
        (strcmp(vs->subscriber, f->subscriber) != 0 ||
         !crypt_equal(vs->puk_salt, f->identity, SALT_BYTES)))
        rc = SIMSYNC_ENOSIM; /* another card now: power on again */
    if (rc != SIMSYNC_OK) {
        if (*fd_out >= 0)
            close(*fd_out);
        *fd_out = -1;
        if (f->lock_fd >= 0)
            close(f->lock_fd);
        f->lock_fd = -1;
    }
    return rc;
}

/* Release the lock taken by begin() and wipe the decoded file. */
static void
end(struct sim_file *f, int fd, struct vsim *vs)
{
    if (fd >= 0)
        close(fd);
    if (f->lock_fd >= 0)
        close(f->lock_fd);
    f->lock_fd = -1;
    crypt_wipe(vs, sizeof(*vs));
}

/* Spend one try of `*counter` (a member of *vs) and persist it before
 * anything is compared. The last PUK try blocks the PIN in the same write,
 * so a dead card is never left with PIN tries. */
static int
spend_try(struct sim_file *f, struct vsim *vs, int *counter)
{
    int rc;

    (*counter)--;
    if (vs->puk_tries == 0)
        vs->pin_tries = 0;
    rc = store(f->path, vs, &f->base.last_errno);
    if (rc == SIMSYNC_OK && f->base.fault_fn != NULL)
        f->base.fault_fn(f->base.fault_arg);
    return rc;
}

/* Check `pin` under the card rules; on success set `new_pin` when it is
 * not NULL. Shared by verify_pin and change_pin. */
static int
check_pin(struct sim_file *f, const char *pin, const char *new_pin)
{
    struct vsim vs;
    int fd = -1, rc;

    if (!valid_digits(pin, SIM_PIN_MIN, SIM_PIN_MAX) ||
        (new_pin != NULL && !valid_digits(new_pin, SIM_PIN_MIN, SIM_PIN_MAX)))
        return SIMSYNC_EINVAL;
    rc = begin(f, LOCK_EX, &fd, &vs);
    if (rc != SIMSYNC_OK)
        return rc;
    f->verified = 0; /* any attempt ends a verified state; success renews */
    if (vs.puk_tries == 0 || vs.pin_tries == 0) {
        rc = SIMSYNC_EBLOCKED;
        goto out;
    }
    rc = spend_try(f, &vs, &vs.pin_tries);
    if (rc != SIMSYNC_OK)
        goto out;
    if (!secret_matches(PIN_LABEL, pin, vs.pin_salt, vs.pin_hash)) {
        rc = vs.pin_tries == 0 ? SIMSYNC_EBLOCKED : SIMSYNC_EPIN;
        goto out;
    }
    vs.pin_tries = SIM_PIN_TRIES;
    if (new_pin != NULL)
        rc = set_pin(&vs, new_pin);
    if (rc == SIMSYNC_OK)
        rc = store(f->path, &vs, &f->base.last_errno);
    f->verified = rc == SIMSYNC_OK;
out:
    end(f, fd, &vs);
    return rc;
}

static int
file_verify_pin(struct sim *s, const char *pin)
{
    return check_pin((struct sim_file *)s, pin, NULL);
}

static int
file_change_pin(struct sim *s, const char *old_pin, const char *new_pin)
{
    return check_pin((struct sim_file *)s, old_pin, new_pin);
}

static int
file_unblock(struct sim *s, const char *puk, const char *new_pin)
{
    struct sim_file *f = (struct sim_file *)s;
    struct vsim vs;
    int fd = -1, rc;

    if (!valid_digits(puk, SIM_PUK_LEN, SIM_PUK_LEN) ||
        !valid_digits(new_pin, SIM_PIN_MIN, SIM_PIN_MAX))
        return SIMSYNC_EINVAL;
    rc = begin(f, LOCK_EX, &fd, &vs);
    if (rc != SIMSYNC_OK)
        return rc;
    f->verified = 0;
    if (vs.puk_tries == 0) {
        rc = SIMSYNC_EBLOCKED;
        goto out;
    }
    rc = spend_try(f, &vs, &vs.puk_tries);
    if (rc != SIMSYNC_OK)
        goto out;
    if (!secret_matches(PUK_LABEL, puk, vs.puk_salt, vs.puk_hash)) {
        rc = vs.puk_tries == 0 ? SIMSYNC_EBLOCKED : SIMSYNC_EPIN;
        goto out;
    }
    vs.puk_tries = SIM_PUK_TRIES;
    vs.pin_tries = SIM_PIN_TRIES;
    rc = set_pin(&vs, new_pin);
    if (rc == SIMSYNC_OK)
        rc = store(f->path, &vs, &f->base.last_errno);
    f->verified = rc == SIMSYNC_OK;
out:
    end(f, fd, &vs);
    return rc;
}

static int
file_subscriber(struct sim *s, char *buf, size_t len)
{
    struct sim_file *f = (struct sim_file *)s;
    size_t n;

    if (!f->verified)
        return SIMSYNC_EREFUSED;
    n = strlen(f->subscriber);
    if (len < n + 1)
        return SIMSYNC_EINVAL;
    memcpy(buf, f->subscriber, n + 1);
    return SIMSYNC_OK;
}

static int
file_status(struct sim *s, struct sim_status *st)
{
    struct sim_file *f = (struct sim_file *)s;
    struct vsim vs;
    int fd = -1, rc;

    rc = begin(f, LOCK_SH, &fd, &vs);
    if (rc != SIMSYNC_OK)
        return rc;
    st->pin_tries_left = vs.pin_tries;
    st->puk_tries_left = vs.puk_tries;
    st->dead = vs.puk_tries == 0;
    st->blocked = vs.pin_tries == 0 || st->dead;
    st->pin_verified = f->verified;
    end(f, fd, &vs);
    return SIMSYNC_OK;
}

static void
file_close(struct sim *s)
{
    struct sim_file *f = (struct sim_file *)s;

    free(f->path);
    crypt_wipe(f, sizeof(*f));
    free(f);
}

static int
file_open(const char *path, struct sim **out)
{
    struct sim_file *f;
    struct vsim vs;
    int fd = -1, lfd = -1, err = 0, rc;

    *out = NULL;
    if (path[0] == '\0')
        return SIMSYNC_EINVAL;
    rc = crypt_init();
    if (rc != SIMSYNC_OK)
        return rc;
    rc = open_locked(path, LOCK_SH, &fd, &lfd, &err);
    if (rc == SIMSYNC_OK)
        rc = read_vsim(fd, &vs, &err);
    if (fd >= 0)
        close(fd);
    if (lfd >= 0)
        close(lfd);
    if (rc != SIMSYNC_OK) {
        errno = err;
        return rc;
    }

    f = calloc(1, sizeof(*f));
    if (f == NULL || (f->path = strdup(path)) == NULL) {
        free(f);
        crypt_wipe(&vs, sizeof(vs));
        return SIMSYNC_ENOMEM;
    }
    sim_init(&f->base, &sim_file_ops);
    f->lock_fd = -1;
    memcpy(f->subscriber, vs.subscriber, sizeof(f->subscriber));
    memcpy(f->identity, vs.puk_salt, SALT_BYTES);
    crypt_wipe(&vs, sizeof(vs));
    *out = &f->base;
    return SIMSYNC_OK;
}

const struct sim_ops sim_file_ops = {
    .version = SIM_OPS_VERSION,
    .name = "file",
    .open = file_open,
    .verify_pin = file_verify_pin,
    .unblock = file_unblock,
    .change_pin = file_change_pin,
    .subscriber = file_subscriber,
    .status = file_status,
    .close = file_close,
};

int
sim_file_create(const char *path, const char *subscriber, const char *pin,
                const char *puk)
{
    struct vsim vs;
    char *tmp = NULL;
    int err = 0, rc;

    if (path == NULL || path[0] == '\0' ||
        !valid_digits(subscriber, SIM_SUBSCRIBER_MIN, SIM_SUBSCRIBER_MAX) ||
        !valid_digits(pin, SIM_PIN_MIN, SIM_PIN_MAX) ||
        !valid_digits(puk, SIM_PUK_LEN, SIM_PUK_LEN))
        return SIMSYNC_EINVAL;
    rc = crypt_init();
    if (rc != SIMSYNC_OK)
        return rc;

    memset(&vs, 0, sizeof(vs));
    memcpy(vs.subscriber, subscriber, strlen(subscriber) + 1);
    vs.pin_tries = SIM_PIN_TRIES;
    vs.puk_tries = SIM_PUK_TRIES;
    crypt_random(vs.puk_salt, SALT_BYTES);
    rc = set_pin(&vs, pin);
    if (rc == SIMSYNC_OK)
        rc = secret_hash(vs.puk_hash, PUK_LABEL, puk, vs.puk_salt);
    if (rc == SIMSYNC_OK)
        rc = write_temp(path, &vs, &tmp, &err);
    crypt_wipe(&vs, sizeof(vs));
    if (rc != SIMSYNC_OK)
        return rc;

    /* link(2), unlike rename(2), refuses to replace an existing file, so
     * the new SIM appears whole or not at all and never over another. */
    if (link(tmp, path) != 0) {
        err = errno;
        rc = errno == EEXIST ? SIMSYNC_EEXIST : errno_rc(errno);
    }
    unlink(tmp);
    free(tmp);
    if (rc == SIMSYNC_OK)
        rc = sync_parent(path, &err);
    return rc;
}
