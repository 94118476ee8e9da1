/* fuzz_pack.c -- the packed batch decoder (pack_decode: decompress under a
 * cap, decode, check the names, seal again) as a paired peer would meet
 * it.
 *
 * Byte 0 picks the mode; the rest is
 *  - mode even: a session direction's stream, as pieces of
 *    [declared size: BE32][length: BE16][bytes], fed in order to one
 *    decoder (a zstd frame spans them, as between real peers);
 *  - mode odd: the plaintext of one batch (an encoded PackedChanges),
 *    compressed here, which reaches the message and name checks.
 * A batch that decodes must be a ChangeBatch of 1.. changes whose item ids
 * are 16 bytes and whose meta and inline body open under the key they
 * were sealed with; a refused one returns nothing, and the stream takes
 * nothing more. Memory stays bounded by PACK_PLAIN_MAX whatever sizes the
 * input declares (libFuzzer's RSS limit catches a bomb that gets
 * through). */
#include <string.h>
#include <zstd.h>

#include "blob.h"
#include "crypt.h"
#include "fuzz.h"
#include "journal.h"
#include "pack.h"
#include "replica.h"

static const uint8_t datakey[32] = {
    0x50, 0x61, 0x63, 0x6b, 0x20, 0x66, 0x75, 0x7a, 0x7a, 0x20, 0x6b,
    0x65, 0x79, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
    0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13};

static void
check_batch(const struct datakeys *k, const Simsync__Envelope *e)
{
    FUZZ_CHECK(e->msg_case == SIMSYNC__ENVELOPE__MSG_BATCH && e->batch);
    FUZZ_CHECK(e->batch->n_changes > 0);
    for (size_t i = 0; i < e->batch->n_changes; i++) {
        const Simsync__Change *c = e->batch->changes[i];
        const Simsync__Version *v = c->version;
        uint8_t *plain = NULL;
        size_t plen = 0;
        FUZZ_CHECK(c->item_id.len == ITEM_ID_BYTES && v != NULL);
        FUZZ_CHECK(c->entry != NULL && v->n_dots > 0);
        FUZZ_CHECK(v->meta.len >= CRYPT_SEAL_OVERHEAD);
        plain = malloc(v->meta.len - CRYPT_SEAL_OVERHEAD + 1);
        FUZZ_CHECK(plain != NULL);
        FUZZ_CHECK(crypt_unseal(plain, v->meta.data, v->meta.len,
                                c->item_id.data, ITEM_ID_BYTES,
                                k->seal) == SIMSYNC_OK);
        free(plain);
        if (v->inline_body.len > 0) {
            FUZZ_CHECK(blob_decode(k->seal, c->item_id.data, ITEM_ID_BYTES,
                                   v->inline_body.data, v->inline_body.len,
                                   INLINE_MAX, &plain, &plen) == SIMSYNC_OK);
            FUZZ_CHECK(plen <= INLINE_MAX);
            free(plain);
        }
    }
}

/* One decode; 1 when the stream may go on. */
static int
feed(struct pack_stream *rx, const struct datakeys *k, const uint8_t *z,
     size_t zlen, uint64_t size)
{
    Simsync__Envelope *e = NULL;
    const char *why = NULL;
    int rc = pack_decode(rx, k, z, zlen, size, &e, &why);

    if (rc != SIMSYNC_OK) {
        FUZZ_CHECK(e == NULL && why != NULL);
        FUZZ_CHECK(rc == SIMSYNC_EPROTO || rc == SIMSYNC_ENOMEM);
        return 0;
    }
    FUZZ_CHECK(e != NULL && size <= PACK_PLAIN_MAX);
    check_batch(k, e);
    simsync__envelope__free_unpacked(e, NULL);
    return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pack_stream *rx = NULL;
    struct datakeys k;

    if (size < 1 || keys_derive(datakey, &k) != SIMSYNC_OK ||
        pack_rx_new(&rx) != SIMSYNC_OK)
        return 0;
    if ((data[0] & 1) == 0) {
        size_t off = 1;
        while (off + 6 <= size) {
            uint64_t declared = (uint64_t)data[off] << 24 |
                                (uint64_t)data[off + 1] << 16 |
                                (uint64_t)data[off + 2] << 8 | data[off + 3];
            size_t len = (size_t)data[off + 4] << 8 | data[off + 5];
            off += 6;
            if (len > size - off)
                len = size - off;
            if (!feed(rx, &k, data + off, len, declared))
                break;
            off += len;
        }
    } else {
        size_t cap = ZSTD_compressBound(size) + 64;
        uint8_t *z = malloc(cap);
        size_t zlen = z ? ZSTD_compress(z, cap, data + 1, size - 1, 1) : 0;
        if (z != NULL && !ZSTD_isError(zlen))
            (void)feed(rx, &k, z, zlen, size - 1);
        free(z);
    }
    pack_stream_free(rx);
    keys_wipe(&k);
    return 0;
}
