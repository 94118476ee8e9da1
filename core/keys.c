/* keys.c -- subkeys of the subscriber data key. See keys.h. */
#include <string.h>

#include "crypt.h"
#include "keys.h"

int
keys_derive(const uint8_t datakey[32], struct datakeys *out)
{
    static const char ctx[8] = {'s', 'i', 'm', 's', 'y', 'n', 'c', '1'};
    int rc = crypt_kdf(out->item_id, 32, 1, ctx, datakey);

    if (rc == SIMSYNC_OK)
        rc = crypt_kdf(out->chunk_id, 32, 2, ctx, datakey);
    if (rc == SIMSYNC_OK)
        rc = crypt_kdf(out->content, 32, 3, ctx, datakey);
    if (rc == SIMSYNC_OK)
        rc = crypt_kdf(out->seal, 32, 4, ctx, datakey);
    if (rc == SIMSYNC_OK)
        rc = crypt_kdf(out->check, 32, 5, ctx, datakey);
    if (rc == SIMSYNC_OK)
        rc = crypt_kdf(out->verifier, 32, 6, ctx, datakey);
    return rc;
}

void
keys_wipe(struct datakeys *k)
{
    crypt_wipe(k, sizeof(*k));
}

void
keys_item_id(const struct datakeys *k, int cls, const char *name,
             uint8_t id[16])
{
    struct crypt_hash_state st;
    uint8_t c = (uint8_t)cls;

    crypt_hash_init(&st, 16, k->item_id, 32);
    crypt_hash_update(&st, &c, 1);
    crypt_hash_update(&st, name, strlen(name));
    crypt_hash_final(&st, id, 16);
}

void
keys_chunk_id(const struct datakeys *k, const void *data, size_t len,
              uint8_t id[32])
{
    crypt_hash(id, 32, data, len, k->chunk_id, 32);
}
