/* chan.c -- the secure channel: drives noise.c over a conn, checks the
 * peer's node key, then moves framed AEAD messages (see chan.h for the
 * contract). All transport I/O goes through conn_send_all / conn_recv_all. */
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "crypt.h"
#include "frame.h"
#include "noise.h"

#define NODE_PK_BYTES 32

struct chan {
    struct conn *conn;              /* borrowed; never closed here */
    struct noise_cipher *tx;        /* owned: our sending key */
    struct noise_cipher *rx;        /* owned: our receiving key */
    uint8_t peer_pk[NODE_PK_BYTES]; /* peer's Ed25519 key, authenticated */
    uint8_t hash[NOISE_HASHLEN];    /* handshake hash */
    uint8_t *rbuf;                  /* owned: last received frame, decrypted */
    size_t rcap;                    /* bytes at rbuf */
    uint8_t *sbuf;                  /* owned: header + ciphertext being sent */
    size_t scap;                    /* bytes at sbuf */
    int broken;                     /* a send/recv failed: stream out of step */
    struct chan_stats stats;
};

/* ---- buffers ----------------------------------------------------------- */

/* Make *buf hold at least `need` bytes. The old contents are not kept (both
 * buffers are refilled from scratch per frame) and are wiped. */
static int
reserve(uint8_t **buf, size_t *cap, size_t need)
{
    uint8_t *p;

    if (*cap >= need)
        return SIMSYNC_OK;
    p = malloc(need);
    if (p == NULL)
        return SIMSYNC_ENOMEM;
    if (*buf != NULL) {
        crypt_wipe(*buf, *cap);
        free(*buf);
    }
    *buf = p;
    *cap = need;
    return SIMSYNC_OK;
}

static void
release(uint8_t **buf, size_t *cap)
{
    if (*buf != NULL) {
        crypt_wipe(*buf, *cap);
        free(*buf);
    }
    *buf = NULL;
    *cap = 0;
}

/* ---- handshake --------------------------------------------------------- */

/* Buffers of one handshake: a frame out and in, a payload in. */
struct hs_io {
    struct conn *conn;
    struct noise_hs *hs;
    uint8_t frame[FRAME_HEADER_BYTES + NOISE_MAX_MSG];
    uint8_t payload[NODE_PK_BYTES];
    size_t payload_len;
    uint64_t sent;
    uint64_t received;
};

/* Write our next handshake message with `payload` and send it framed. */
static int
hs_send(struct hs_io *io, const uint8_t *payload, size_t len)
{
    size_t n;
    int rc;

    rc = noise_hs_write_message(io->hs, payload, len,
                                io->frame + FRAME_HEADER_BYTES,
                                sizeof(io->frame) - FRAME_HEADER_BYTES, &n);
    if (rc == SIMSYNC_OK)
        rc = frame_header_encode(io->frame, n);
    if (rc == SIMSYNC_OK)
        rc = conn_send_all(io->conn, io->frame, FRAME_HEADER_BYTES + n);
    if (rc == SIMSYNC_OK)
        io->sent += FRAME_HEADER_BYTES + n;
    return rc;
}

/* Receive the peer's next handshake message; its payload must be exactly
 * `want` bytes (into io->payload). */
static int
hs_recv(struct hs_io *io, size_t want)
{
    size_t n;
    int rc;

    rc = conn_recv_all(io->conn, io->frame, FRAME_HEADER_BYTES);
    if (rc != SIMSYNC_OK)
        return rc;
    io->received += FRAME_HEADER_BYTES;
    rc = frame_header_check(io->frame, NOISE_MAX_MSG, &n);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = conn_recv_all(io->conn, io->frame + FRAME_HEADER_BYTES, n);
    if (rc != SIMSYNC_OK)
        return rc;
    io->received += n;
    rc = noise_hs_read_message(io->hs, io->frame + FRAME_HEADER_BYTES, n,
                               io->payload, want, &io->payload_len);
    /* A payload that does not fit is a malformed message, not a cap. */
    if (rc == SIMSYNC_ETOOBIG)
        return SIMSYNC_EPROTO;
    if (rc == SIMSYNC_OK && io->payload_len != want)
        return SIMSYNC_EPROTO;
    return rc;
}

/* The payload just received is the peer's Ed25519 key: it must map onto
 * the static key Noise authenticated, and match the pin if there is one. */
static int
check_peer(struct hs_io *io, const uint8_t *expect, uint8_t pk_out[32])
{
    uint8_t rs[NOISE_DHLEN], xpk[NOISE_DHLEN];
    int rc;

    rc = noise_hs_remote_static(io->hs, rs);
    if (rc != SIMSYNC_OK)
        return rc;
    if (crypt_sign_pk_to_x25519(xpk, io->payload) != SIMSYNC_OK ||
        !crypt_equal(xpk, rs, NOISE_DHLEN))
        return SIMSYNC_EREFUSED;
    if (expect != NULL && !crypt_equal(expect, io->payload, NODE_PK_BYTES))
        return SIMSYNC_EREFUSED;
    memcpy(pk_out, io->payload, NODE_PK_BYTES);
    return SIMSYNC_OK;
}

/* The X25519 static secret of `self`, checking that its public half is the
 * X25519 form of self->sign_pk (catches a mismatched identity early). */
static int
static_key(const struct chan_identity *self, uint8_t xsk[32])
{
    uint8_t from_sk[32], from_pk[32];
    int rc;

    rc = crypt_sign_sk_to_x25519(xsk, self->sign_sk);
    if (rc == SIMSYNC_OK)
        rc = crypt_x25519_base(from_sk, xsk);
    if (rc == SIMSYNC_OK)
        rc = crypt_sign_pk_to_x25519(from_pk, self->sign_pk);
    if (rc == SIMSYNC_OK && !crypt_equal(from_sk, from_pk, 32))
        rc = SIMSYNC_EINVAL;
    if (rc != SIMSYNC_OK) {
        crypt_wipe(xsk, 32);
        rc = SIMSYNC_EINVAL;
    }
    return rc;
}

int
chan_handshake(struct conn *c, int initiator, const struct chan_identity *self,
               const uint8_t *expect_peer_pk, struct chan **out)
{
    uint8_t prologue[sizeof(CHAN_PROLOGUE)];
    uint8_t xsk[32];
    struct hs_io *io = NULL;
    struct chan *ch = NULL;
    int rc;

    if (out != NULL)
        *out = NULL;
    if (c == NULL || self == NULL || out == NULL)
        return SIMSYNC_EINVAL;
    rc = crypt_init();
    if (rc != SIMSYNC_OK)
        return rc;
    rc = static_key(self, xsk);
    if (rc != SIMSYNC_OK)
        return rc;

    /* "simsync/1" then the version byte (replacing the string's NUL). */
    memcpy(prologue, CHAN_PROLOGUE, sizeof(CHAN_PROLOGUE) - 1);
    prologue[sizeof(prologue) - 1] = (uint8_t)SIMSYNC_PROTO_VERSION;

    io = calloc(1, sizeof(*io));
    ch = calloc(1, sizeof(*ch));
    if (io == NULL || ch == NULL) {
        rc = SIMSYNC_ENOMEM;
        goto done;
    }
    io->conn = c;
    ch->conn = c;
    rc = noise_hs_new(&io->hs, initiator, prologue, sizeof(prologue), xsk);
    if (rc != SIMSYNC_OK)
        goto done;

    if (initiator) {
        /* -> e;  <- e, ee, s, es [pk];  -> s, se [pk] */
        rc = hs_send(io, NULL, 0);
        if (rc == SIMSYNC_OK)
            rc = hs_recv(io, NODE_PK_BYTES);
        if (rc == SIMSYNC_OK)
            rc = check_peer(io, expect_peer_pk, ch->peer_pk);
        if (rc == SIMSYNC_OK)
            rc = hs_send(io, self->sign_pk, NODE_PK_BYTES);
    } else {
        rc = hs_recv(io, 0);
        if (rc == SIMSYNC_OK)
            rc = hs_send(io, self->sign_pk, NODE_PK_BYTES);
        if (rc == SIMSYNC_OK)
            rc = hs_recv(io, NODE_PK_BYTES);
        if (rc == SIMSYNC_OK)
            rc = check_peer(io, expect_peer_pk, ch->peer_pk);
    }
    if (rc == SIMSYNC_OK)
        rc = noise_hs_hash(io->hs, ch->hash);
    if (rc == SIMSYNC_OK)
        rc = noise_hs_split(io->hs, &ch->tx, &ch->rx);

done:
    crypt_wipe(xsk, sizeof(xsk));
    if (io != NULL) {
        if (ch != NULL) {
            ch->stats.handshake_sent = io->sent;
            ch->stats.handshake_recv = io->received;
        }
        noise_hs_free(io->hs);
        crypt_wipe(io, sizeof(*io));
        free(io);
    }
    if (rc != SIMSYNC_OK) {
        chan_free(ch);
        return rc;
    }
    *out = ch;
    return SIMSYNC_OK;
}

/* ---- transport --------------------------------------------------------- */

int
chan_send(struct chan *ch, const void *msg, size_t len)
{
    size_t clen;
    int rc;

    if (ch == NULL || msg == NULL || len == 0)
        return SIMSYNC_EINVAL;
    if (ch->broken)
        return SIMSYNC_ECLOSED;
    if (len > FRAME_MAX_PLAINTEXT)
        return SIMSYNC_ETOOBIG;
    rc = reserve(&ch->sbuf, &ch->scap,
                 FRAME_HEADER_BYTES + len + CHAN_TAG_BYTES);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = noise_cipher_encrypt(ch->tx, NULL, 0, msg, len,
                              ch->sbuf + FRAME_HEADER_BYTES,
                              ch->scap - FRAME_HEADER_BYTES, &clen);
    if (rc == SIMSYNC_OK)
        rc = frame_header_encode(ch->sbuf, clen);
    if (rc == SIMSYNC_OK)
        rc = conn_send_all(ch->conn, ch->sbuf, FRAME_HEADER_BYTES + clen);
    if (rc != SIMSYNC_OK) {
        /* The nonce has moved on (or the frame is half out): stop. */
        ch->broken = 1;
        return rc;
    }
    ch->stats.plain_sent += len;
    ch->stats.wire_sent += FRAME_HEADER_BYTES + clen;
    ch->stats.frames_sent++;
    return SIMSYNC_OK;
}

int
chan_recv(struct chan *ch, const uint8_t **msg, size_t *len)
{
    uint8_t hdr[FRAME_HEADER_BYTES];
    size_t n = 0, plen = 0;
    int rc;

    if (msg != NULL)
        *msg = NULL;
    if (len != NULL)
        *len = 0;
    if (ch == NULL || msg == NULL || len == NULL)
        return SIMSYNC_EINVAL;
    if (ch->broken)
        return SIMSYNC_ECLOSED;

    rc = conn_recv_all(ch->conn, hdr, sizeof(hdr));
    if (rc == SIMSYNC_OK) {
        ch->stats.wire_recv += sizeof(hdr);
        /* Checked before anything is allocated. */
        rc = frame_header_check(hdr, CHAN_MAX_FRAME, &n);
    }
    /* Shorter than a tag plus one byte cannot be a message. */
    if (rc == SIMSYNC_OK && n <= CHAN_TAG_BYTES)
        rc = SIMSYNC_EPROTO;
    if (rc == SIMSYNC_OK)
        rc = reserve(&ch->rbuf, &ch->rcap, n);
    if (rc == SIMSYNC_OK)
        rc = conn_recv_all(ch->conn, ch->rbuf, n);
    if (rc == SIMSYNC_OK) {
        ch->stats.wire_recv += n;
        rc = noise_cipher_decrypt(ch->rx, NULL, 0, ch->rbuf, n, ch->rbuf,
                                  ch->rcap, &plen);
    }
    if (rc != SIMSYNC_OK) {
        ch->broken = 1;
        return rc;
    }
    ch->stats.plain_recv += plen;
    ch->stats.frames_recv++;
    *msg = ch->rbuf;
    *len = plen;
    return SIMSYNC_OK;
}

int
chan_peer_key(const struct chan *ch, uint8_t pk[32])
{
    if (ch == NULL || pk == NULL)
        return SIMSYNC_EINVAL;
    memcpy(pk, ch->peer_pk, NODE_PK_BYTES);
    return SIMSYNC_OK;
}

int
chan_handshake_hash(const struct chan *ch, uint8_t h[64])
{
    if (ch == NULL || h == NULL)
        return SIMSYNC_EINVAL;
    memcpy(h, ch->hash, NOISE_HASHLEN);
    return SIMSYNC_OK;
}

void
chan_stats(const struct chan *ch, struct chan_stats *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    if (ch == NULL)
        return;
    *out = ch->stats;
    out->buffer_bytes = ch->rcap + ch->scap;
}

void
chan_free(struct chan *ch)
{
    if (ch == NULL)
        return;
    noise_cipher_free(ch->tx);
    noise_cipher_free(ch->rx);
    release(&ch->rbuf, &ch->rcap);
    release(&ch->sbuf, &ch->scap);
    crypt_wipe(ch, sizeof(*ch));
    free(ch);
}
