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

/* Frame types after the handshake (the byte before the ciphertext). */
#define CHAN_T_URGENT 1    /* a whole control message, no credit used */
#define CHAN_T_BULK_END 2  /* the last (or only) piece of a bulk message */
#define CHAN_T_BULK_MORE 3 /* a piece of a bulk message, more follows */
#define CHAN_T_CREDIT 4    /* 4-byte big-endian credit for bulk bytes */
#define CHAN_T_ASK 5       /* 4-byte big-endian: out of credit, please */
/* Pieces of a bulk message that are already ciphertext under the
 * subscriber's data key (a sealed chunk): sent in clear, authenticated as
 * associated data with the type byte, followed by the 16-byte tag of an
 * empty plaintext. */
#define CHAN_T_SEALED_END 6  /* like CHAN_T_BULK_END */
#define CHAN_T_SEALED_MORE 7 /* like CHAN_T_BULK_MORE */

/* Messages kept while waiting for credit before the peer is a flood. */
#define CHAN_MAX_STASHED 64
/* Credit one side may hold: far above any window we grant. */
#define CHAN_CREDIT_MAX (1ull << 32)

struct chan_msg;

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
    int broken;                     /* a recv failed: stream out of step */
    int tx_broken;                  /* a send failed: no more sending */
    struct chan_stats stats;
    /* Link behaviour (see chan.h "Lanes and credit"). */
    size_t frag;          /* largest bulk piece we send */
    uint64_t credit;      /* bulk bytes the peer lets us send now */
    uint64_t window;      /* bulk bytes we let the peer have outstanding */
    uint64_t allowed;     /* bulk bytes the peer may still send us */
    uint64_t in_bulk;     /* bulk bytes among the stashed messages */
    int peer_asked;       /* the peer waits for credit we could not give */
    int asked;            /* we asked for credit and wait for it */
    struct chan_msg *urg_head, *urg_tail;   /* urgent, to send first */
    struct chan_msg *bulk_head, *bulk_tail; /* bulk, in order */
    struct chan_msg *in_head, *in_tail;     /* arrived while sending */
    size_t in_count;
    struct chan_msg *in_cur; /* returned by the last chan_recv */
    uint8_t *rs;             /* bulk message being put together */
    size_t rslen, rscap;
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
    if (rc == SIMSYNC_OK) {
        /* Both sides start from the same credit; the receiver widens it
         * to its window with its first grant. */
        ch->credit = CHAN_INITIAL_CREDIT;
        ch->allowed = CHAN_INITIAL_CREDIT;
        chan_set_link(ch, c->link_frag);
        ch->window = c->link_window ? c->link_window : CHAN_DEFAULT_WINDOW;
        if (ch->window < CHAN_INITIAL_CREDIT)
            ch->window = CHAN_INITIAL_CREDIT;
    }

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

/* ---- frames after the handshake ----------------------------------------
 *
 * [4-byte length] [type] [AEAD ciphertext + tag], the type byte in clear and
 * bound as associated data (so bodies are encrypted in place, no copy). */

/* Encrypt and send one frame of `type` carrying len bytes of `data`. */
static int
send_frame(struct chan *ch, uint8_t type, const uint8_t *data, size_t len)
{
    size_t clen;
    int rc;

    rc = reserve(&ch->sbuf, &ch->scap,
                 FRAME_HEADER_BYTES + 1 + len + CHAN_TAG_BYTES);
    if (rc != SIMSYNC_OK)
        return rc;
    ch->sbuf[FRAME_HEADER_BYTES] = type;
    rc = noise_cipher_encrypt(ch->tx, &type, 1, data, len,
                              ch->sbuf + FRAME_HEADER_BYTES + 1,
                              ch->scap - FRAME_HEADER_BYTES - 1, &clen);
    if (rc == SIMSYNC_OK)
        rc = frame_header_encode(ch->sbuf, clen + 1);
    if (rc == SIMSYNC_OK)
        rc = conn_send_all(ch->conn, ch->sbuf, FRAME_HEADER_BYTES + 1 + clen);
    if (rc != SIMSYNC_OK) {
        /* The nonce has moved on (or the frame is half out): stop
         * sending. What the peer sent before may still be read. */
        ch->tx_broken = 1;
        return rc;
    }
    ch->stats.wire_sent += FRAME_HEADER_BYTES + 1 + clen;
    ch->stats.frames_sent++;
    return SIMSYNC_OK;
}

/* Send one frame of `type` (CHAN_T_SEALED_*) carrying len bytes of `data`
 * in clear, authenticated: [length] [type] [data] [tag over type+data]. */
static int
send_frame_sealed(struct chan *ch, uint8_t type, const uint8_t *data,
                  size_t len)
{
    size_t body = 1 + len, tlen;
    int rc;

    rc = reserve(&ch->sbuf, &ch->scap,
                 FRAME_HEADER_BYTES + body + CHAN_TAG_BYTES);
    if (rc != SIMSYNC_OK)
        return rc;
    ch->sbuf[FRAME_HEADER_BYTES] = type;
    memcpy(ch->sbuf + FRAME_HEADER_BYTES + 1, data, len);
    rc = noise_cipher_encrypt(ch->tx, ch->sbuf + FRAME_HEADER_BYTES, body, NULL,
                              0, ch->sbuf + FRAME_HEADER_BYTES + body,
                              CHAN_TAG_BYTES, &tlen);
    if (rc == SIMSYNC_OK)
        rc = frame_header_encode(ch->sbuf, body + tlen);
    if (rc == SIMSYNC_OK)
        rc =
            conn_send_all(ch->conn, ch->sbuf, FRAME_HEADER_BYTES + body + tlen);
    if (rc != SIMSYNC_OK) {
        ch->tx_broken = 1;
        return rc;
    }
    ch->stats.wire_sent += FRAME_HEADER_BYTES + body + tlen;
    ch->stats.frames_sent++;
    return SIMSYNC_OK;
}

/* Receive and decrypt one frame: *type, and *data and *len pointing into rbuf
 * (valid until the next frame is read). A sealed piece is checked, and
 * reported as the bulk piece it stands for. */
static int
recv_frame(struct chan *ch, uint8_t *type, uint8_t **data, size_t *len)
{
    uint8_t hdr[FRAME_HEADER_BYTES];
    size_t n = 0, plen = 0;
    int rc;

    rc = conn_recv_all(ch->conn, hdr, sizeof(hdr));
    if (rc == SIMSYNC_OK) {
        ch->stats.wire_recv += sizeof(hdr);
        /* Checked before anything is allocated. */
        rc = frame_header_check(hdr, CHAN_MAX_FRAME, &n);
    }
    /* A type, a tag and at least one byte, or it is no frame of ours. */
    if (rc == SIMSYNC_OK && n <= 1 + CHAN_TAG_BYTES)
        rc = SIMSYNC_EPROTO;
    if (rc == SIMSYNC_OK)
        rc = reserve(&ch->rbuf, &ch->rcap, n);
    if (rc == SIMSYNC_OK)
        rc = conn_recv_all(ch->conn, ch->rbuf, n);
    if (rc == SIMSYNC_OK) {
        ch->stats.wire_recv += n;
        /* The clear type byte only picks how the frame is checked: both
         * ways bind it, so a changed type fails authentication. */
        if (ch->rbuf[0] == CHAN_T_SEALED_END ||
            ch->rbuf[0] == CHAN_T_SEALED_MORE) {
            uint8_t none[1];
            size_t zero;

            plen = n - 1 - CHAN_TAG_BYTES;
            rc = noise_cipher_decrypt(ch->rx, ch->rbuf, n - CHAN_TAG_BYTES,
                                      ch->rbuf + n - CHAN_TAG_BYTES,
                                      CHAN_TAG_BYTES, none, 0, &zero);
            ch->rbuf[0] = ch->rbuf[0] == CHAN_T_SEALED_END ? CHAN_T_BULK_END
                                                           : CHAN_T_BULK_MORE;
        } else {
            rc = noise_cipher_decrypt(ch->rx, ch->rbuf, 1, ch->rbuf + 1, n - 1,
                                      ch->rbuf + 1, ch->rcap - 1, &plen);
        }
    }
    /* Only after authentication is the type believed. */
    if (rc == SIMSYNC_OK && (ch->rbuf[0] < CHAN_T_URGENT ||
                             ch->rbuf[0] > CHAN_T_ASK))
        rc = SIMSYNC_EPROTO;
    if (rc == SIMSYNC_OK &&
        (ch->rbuf[0] == CHAN_T_CREDIT || ch->rbuf[0] == CHAN_T_ASK) &&
        plen != 4)
        rc = SIMSYNC_EPROTO;
    if (rc != SIMSYNC_OK) {
        ch->broken = 1;
        return rc;
    }
    ch->stats.frames_recv++;
    *type = ch->rbuf[0];
    *data = ch->rbuf + 1;
    *len = plen;
    return SIMSYNC_OK;
}

static uint32_t
get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/* Answer the peer's request for credit: give it what our window has room
 * for now (bulk we have handed on; stashed bulk still counts as held). If
 * there is no room yet, the request stays open (peer_asked) and is answered
 * when the caller takes a stashed message. Credit is only ever sent to a
 * peer that asked, so a peer that closes after its last message never has
 * unread credit frames in its socket (which would turn its close into a
 * reset and could cost us the message it sent last). */
static void
grant(struct chan *ch)
{
    uint8_t b[4];
    uint64_t held = ch->allowed + ch->in_bulk, g;

    if (!ch->peer_asked || held >= ch->window || ch->tx_broken)
        return;
    g = ch->window - held;
    if (g > UINT32_MAX)
        g = UINT32_MAX;
    b[0] = (uint8_t)(g >> 24);
    b[1] = (uint8_t)(g >> 16);
    b[2] = (uint8_t)(g >> 8);
    b[3] = (uint8_t)g;
    ch->allowed += g;
    ch->peer_asked = 0;
    ch->stats.credit_frames_sent++;
    /* A failure is kept (tx_broken) for the next send; receiving goes on. */
    (void)send_frame(ch, CHAN_T_CREDIT, b, 4);
}

static int
take_credit(struct chan *ch, const uint8_t *data)
{
    uint64_t add = get_be32(data);

    /* More than ever could be outstanding is a peer out of its mind. */
    if (add == 0 || ch->credit + add > CHAN_CREDIT_MAX) {
        ch->broken = 1;
        return SIMSYNC_EPROTO;
    }
    ch->credit += add;
    return SIMSYNC_OK;
}

/* ---- queues ------------------------------------------------------------ */

struct chan_msg {
    struct chan_msg *next;
    uint8_t *buf; /* owned */
    size_t len;
    size_t off; /* bytes of it already sent (bulk) */
};

static void
msg_free(struct chan_msg *m)
{
    if (m == NULL)
        return;
    crypt_wipe(m->buf, m->len);
    free(m->buf);
    free(m);
}

static void
q_push(struct chan_msg **head, struct chan_msg **tail, struct chan_msg *m)
{
    m->next = NULL;
    if (*tail != NULL)
        (*tail)->next = m;
    else
        *head = m;
    *tail = m;
}

static struct chan_msg *
q_pop(struct chan_msg **head, struct chan_msg **tail)
{
    struct chan_msg *m = *head;

    if (m != NULL) {
        *head = m->next;
        if (*head == NULL)
            *tail = NULL;
        m->next = NULL;
    }
    return m;
}

static void
q_clear(struct chan_msg **head, struct chan_msg **tail)
{
    struct chan_msg *m;

    while ((m = q_pop(head, tail)) != NULL)
        msg_free(m);
}

static struct chan_msg *
msg_new(uint8_t *buf, size_t len)
{
    struct chan_msg *m = calloc(1, sizeof(*m));

    if (m != NULL) {
        m->buf = buf;
        m->len = len;
    }
    return m;
}

static struct chan_msg *
msg_copy(const void *data, size_t len)
{
    uint8_t *b = malloc(len);
    struct chan_msg *m;

    if (b == NULL)
        return NULL;
    memcpy(b, data, len);
    m = msg_new(b, len);
    if (m == NULL)
        free(b);
    return m;
}

/* ---- receiving --------------------------------------------------------- */

/* Keep a message that arrived while we were waiting for credit, for the
 * next chan_recv. Bounded: a peer cannot make us hold more than its bulk
 * window plus a few urgent messages. */
static int
stash(struct chan *ch, const uint8_t *data, size_t len, int urgent)
{
    struct chan_msg *m;

    if (ch->in_count >= CHAN_MAX_STASHED) {
        ch->broken = 1;
        return SIMSYNC_EPROTO;
    }
    m = msg_copy(data, len);
    if (m == NULL)
        return SIMSYNC_ENOMEM;
    m->off = urgent ? 0 : len; /* for stashed ones: bulk bytes held */
    ch->in_bulk += m->off;
    q_push(&ch->in_head, &ch->in_tail, m);
    ch->in_count++;
    return SIMSYNC_OK;
}

/* Append a bulk piece to the message being put together. */
static int
reassemble(struct chan *ch, const uint8_t *data, size_t len)
{
    if (len > FRAME_MAX_PLAINTEXT - ch->rslen) {
        ch->broken = 1;
        return SIMSYNC_ETOOBIG;
    }
    if (ch->rslen + len > ch->rscap) {
        size_t cap = ch->rscap ? ch->rscap : 65536;
        uint8_t *p;

        while (cap < ch->rslen + len)
            cap *= 2;
        if (cap > FRAME_MAX_PLAINTEXT)
            cap = FRAME_MAX_PLAINTEXT;
        p = malloc(cap);
        if (p == NULL)
            return SIMSYNC_ENOMEM;
        if (ch->rs != NULL) {
            memcpy(p, ch->rs, ch->rslen);
            crypt_wipe(ch->rs, ch->rscap);
            free(ch->rs);
        }
        ch->rs = p;
        ch->rscap = cap;
    }
    memcpy(ch->rs + ch->rslen, data, len);
    ch->rslen += len;
    return SIMSYNC_OK;
}

/* Read frames until one whole message is there: *msg and *len point at it
 * (into rbuf or the reassembly buffer, valid until the next read). Credit
 * frames are taken in on the way; with `credit_ends`, a credit frame ends
 * the call (returning GOT_CREDIT, *msg NULL). */
#define GOT_CREDIT 1
static int
read_message(struct chan *ch, const uint8_t **msg, size_t *len, int *urgent,
             int credit_ends)
{
    for (;;) {
        uint8_t type, *data;
        size_t n;
        int rc = recv_frame(ch, &type, &data, &n);

        if (rc != SIMSYNC_OK)
            return rc;
        switch (type) {
        case CHAN_T_ASK:
            ch->peer_asked = 1;
            grant(ch);
            continue;
        case CHAN_T_CREDIT:
            rc = take_credit(ch, data);
            if (rc != SIMSYNC_OK)
                return rc;
            ch->asked = 0;
            if (credit_ends) {
                *msg = NULL;
                *len = 0;
                return GOT_CREDIT;
            }
            continue;
        case CHAN_T_URGENT:
            *msg = data;
            *len = n;
            *urgent = 1;
            return SIMSYNC_OK;
        default: /* bulk: more to come, or the end of a message */
            if (n > ch->allowed) {
                /* Sent beyond the credit we gave. */
                ch->broken = 1;
                return SIMSYNC_EPROTO;
            }
            ch->allowed -= n;
            if (type == CHAN_T_BULK_MORE || ch->rslen > 0) {
                rc = reassemble(ch, data, n);
                if (rc != SIMSYNC_OK)
                    return rc;
                if (type == CHAN_T_BULK_MORE)
                    continue;
                data = ch->rs;
                n = ch->rslen;
                ch->rslen = 0;
            }
            *msg = data;
            *len = n;
            *urgent = 0;
            return SIMSYNC_OK;
        }
    }
}

int
chan_recv(struct chan *ch, const uint8_t **msg, size_t *len)
{
    int urgent = 0, rc;

    if (msg != NULL)
        *msg = NULL;
    if (len != NULL)
        *len = 0;
    if (ch == NULL || msg == NULL || len == NULL)
        return SIMSYNC_EINVAL;
    if (ch->broken)
        return SIMSYNC_ECLOSED;
    msg_free(ch->in_cur);
    ch->in_cur = NULL;
    if (ch->in_head != NULL) {
        ch->in_cur = q_pop(&ch->in_head, &ch->in_tail);
        ch->in_count--;
        ch->in_bulk -= ch->in_cur->off;
        *msg = ch->in_cur->buf;
        *len = ch->in_cur->len;
        /* Room again: a peer still waiting for credit gets it. */
        grant(ch);
    } else {
        rc = read_message(ch, msg, len, &urgent, 0);
        if (rc != SIMSYNC_OK)
            return rc;
    }
    ch->stats.plain_recv += *len;
    return SIMSYNC_OK;
}

/* ---- sending ----------------------------------------------------------- */

/* Wait for credit: read one message (credit is taken in by read_message)
 * and keep any message for chan_recv. */
static int
wait_credit(struct chan *ch)
{
    const uint8_t *m;
    size_t n;
    int urgent, rc;

    if (!ch->asked) {
        uint8_t b[4] = {0, 0, 0, 1};

        /* We read until credit comes: asking is safe (see grant). */
        rc = send_frame(ch, CHAN_T_ASK, b, 4);
        if (rc != SIMSYNC_OK)
            return rc;
        ch->asked = 1;
        ch->stats.credit_waits++;
    }
    rc = read_message(ch, &m, &n, &urgent, 1);
    if (rc == GOT_CREDIT)
        return SIMSYNC_OK;
    if (rc == SIMSYNC_OK)
        rc = stash(ch, m, n, urgent);
    return rc;
}

static int send_pieces(struct chan *ch, const uint8_t *msg, size_t len,
                       size_t sealed_from, size_t *off, int one);

int
chan_flush(struct chan *ch, int (*stop)(void *arg), void *arg)
{
    int rc;

    if (ch == NULL)
        return SIMSYNC_EINVAL;
    if (ch->broken || ch->tx_broken)
        return SIMSYNC_ECLOSED;
    for (;;) {
        struct chan_msg *m;

        /* Control first, always: it never waits behind bulk. */
        if ((m = q_pop(&ch->urg_head, &ch->urg_tail)) != NULL) {
            rc = send_frame(ch, CHAN_T_URGENT, m->buf, m->len);
            if (rc == SIMSYNC_OK)
                ch->stats.plain_sent += m->len;
            msg_free(m);
            if (rc != SIMSYNC_OK)
                return rc;
            continue;
        }
        m = ch->bulk_head;
        if (m == NULL)
            return SIMSYNC_OK;
        /* One piece at a time, so urgent messages queued by `stop` go
         * out at the next piece boundary. */
        if (stop != NULL && stop(arg))
            return SIMSYNC_EAGAIN;
        rc = send_pieces(ch, m->buf, m->len, m->len, &m->off, 1);
        if (rc != SIMSYNC_OK)
            return rc;
        if (m->off == m->len)
            msg_free(q_pop(&ch->bulk_head, &ch->bulk_tail));
    }
}

static int
queue_checks(struct chan *ch, const void *msg, size_t len)
{
    if (ch == NULL || msg == NULL || len == 0)
        return SIMSYNC_EINVAL;
    if (ch->broken || ch->tx_broken)
        return SIMSYNC_ECLOSED;
    if (len > FRAME_MAX_PLAINTEXT)
        return SIMSYNC_ETOOBIG;
    return SIMSYNC_OK;
}

int
chan_queue(struct chan *ch, uint8_t *msg, size_t len)
{
    struct chan_msg *m;
    int rc = queue_checks(ch, msg, len);

    if (rc != SIMSYNC_OK)
        return rc;
    m = msg_new(msg, len);
    if (m == NULL)
        return SIMSYNC_ENOMEM;
    q_push(&ch->bulk_head, &ch->bulk_tail, m);
    return SIMSYNC_OK;
}

int
chan_queue_urgent(struct chan *ch, const void *msg, size_t len)
{
    struct chan_msg *m;
    int rc = queue_checks(ch, msg, len);

    if (rc != SIMSYNC_OK)
        return rc;
    if (len > CHAN_MAX_URGENT)
        return SIMSYNC_ETOOBIG;
    m = msg_copy(msg, len);
    if (m == NULL)
        return SIMSYNC_ENOMEM;
    q_push(&ch->urg_head, &ch->urg_tail, m);
    return SIMSYNC_OK;
}

void
chan_discard(struct chan *ch)
{
    if (ch == NULL)
        return;
    /* A half-sent message stays: the peer is putting it together. */
    if (ch->bulk_head != NULL && ch->bulk_head->off > 0) {
        struct chan_msg *keep = q_pop(&ch->bulk_head, &ch->bulk_tail);

        q_clear(&ch->bulk_head, &ch->bulk_tail);
        q_push(&ch->bulk_head, &ch->bulk_tail, keep);
        return;
    }
    q_clear(&ch->bulk_head, &ch->bulk_tail);
}

/* Send bulk pieces of msg[*off..len) within the credit, waiting for credit
 * when there is none: all of them, or only one when `one`. Bytes from
 * sealed_from on go in sealed pieces (authenticated, not encrypted again);
 * no piece straddles sealed_from. The message counts as sent (plain_sent)
 * when its last piece is out. */
static int
send_pieces(struct chan *ch, const uint8_t *msg, size_t len, size_t sealed_from,
            size_t *off, int one)
{
    while (*off < len) {
        size_t piece = len - *off;
        uint8_t type;
        int rc;

        if (ch->credit == 0) {
            rc = wait_credit(ch);
            if (rc != SIMSYNC_OK)
                return rc;
            continue;
        }
        if (piece > ch->frag)
            piece = ch->frag;
        if (piece > ch->credit)
            piece = (size_t)ch->credit;
        if (*off < sealed_from && piece > sealed_from - *off)
            piece = sealed_from - *off;
        if (*off >= sealed_from) {
            type = *off + piece == len ? CHAN_T_SEALED_END : CHAN_T_SEALED_MORE;
            rc = send_frame_sealed(ch, type, msg + *off, piece);
        } else {
            type = *off + piece == len ? CHAN_T_BULK_END : CHAN_T_BULK_MORE;
            rc = send_frame(ch, type, msg + *off, piece);
        }
        if (rc != SIMSYNC_OK)
            return rc;
        ch->credit -= piece;
        *off += piece;
        ch->stats.bulk_frames_sent++;
        if (one)
            break;
    }
    if (*off == len)
        ch->stats.plain_sent += len;
    return SIMSYNC_OK;
}

int
chan_send(struct chan *ch, const void *msg, size_t len)
{
    return chan_send_sealed(ch, msg, len, 0);
}

int
chan_send_sealed(struct chan *ch, const void *msg, size_t len,
                 size_t sealed_tail)
{
    size_t off = 0;
    int rc = queue_checks(ch, msg, len);

    if (rc != SIMSYNC_OK)
        return rc;
    if (sealed_tail > len)
        return SIMSYNC_EINVAL;
    /* Whatever was queued goes first; then this message straight from
     * the caller's buffer, without a copy. */
    rc = chan_flush(ch, NULL, NULL);
    if (rc != SIMSYNC_OK)
        return rc;
    return send_pieces(ch, msg, len, len - sealed_tail, &off, 0);
}

int
chan_send_urgent(struct chan *ch, const void *msg, size_t len)
{
    int rc = chan_queue_urgent(ch, msg, len);

    if (rc != SIMSYNC_OK)
        return rc;
    /* Only the urgent queue is emptied here; queued bulk stays queued. */
    while (ch->urg_head != NULL) {
        struct chan_msg *m = q_pop(&ch->urg_head, &ch->urg_tail);

        rc = send_frame(ch, CHAN_T_URGENT, m->buf, m->len);
        if (rc == SIMSYNC_OK)
            ch->stats.plain_sent += m->len;
        msg_free(m);
        if (rc != SIMSYNC_OK)
            return rc;
    }
    return SIMSYNC_OK;
}

void
chan_set_link(struct chan *ch, size_t frag_bytes)
{
    if (ch == NULL)
        return;
    if (frag_bytes == 0 || frag_bytes > FRAME_MAX_PLAINTEXT)
        frag_bytes = FRAME_MAX_PLAINTEXT;
    ch->frag = frag_bytes;
}

size_t
chan_queued(const struct chan *ch)
{
    size_t n = 0;
    const struct chan_msg *m;

    if (ch == NULL)
        return 0;
    for (m = ch->bulk_head; m != NULL; m = m->next)
        n += m->len - m->off;
    for (m = ch->urg_head; m != NULL; m = m->next)
        n += m->len;
    return n;
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
    out->buffer_bytes = ch->rcap + ch->scap + ch->rscap;
    out->credit = ch->credit;
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
    release(&ch->rs, &ch->rscap);
    q_clear(&ch->urg_head, &ch->urg_tail);
    q_clear(&ch->bulk_head, &ch->bulk_tail);
    q_clear(&ch->in_head, &ch->in_tail);
    msg_free(ch->in_cur);
    crypt_wipe(ch, sizeof(*ch));
    free(ch);
}
