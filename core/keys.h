/* keys.h -- the subscriber's data key and the subkeys derived from it.
 *
 * One random 32-byte data key per subscriber, known only to trusted nodes
 * (terminals, desktop). Everything the hub sees is derived from it with a
 * key the hub does not have: item ids (keyed hash of class and name),
 * chunk ids and content hashes (keyed hash of plaintext: no cross-user
 * dedup, the hub cannot confirm a file by its hash), and the seal key for
 * names and contents. */
#ifndef SIMSYNC_KEYS_H
#define SIMSYNC_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include "simsync.h"

struct datakeys {
    uint8_t item_id[32];  /* keyed hash of class|name -> item id */
    uint8_t chunk_id[32]; /* keyed hash of a plaintext chunk */
    uint8_t content[32];  /* keyed hash of an item's whole content */
    uint8_t seal[32];     /* XChaCha20-Poly1305 key for meta and blobs */
    uint8_t check[32];    /* key check value the hub may keep */
    uint8_t verifier[32]; /* seed of the Ed25519 key that proves, to the
                           * hub, possession of the data key */
};

int keys_derive(const uint8_t datakey[32], struct datakeys *out);
void keys_wipe(struct datakeys *k);
/* The item id of `name` (relative path) in class `cls`. */
void keys_item_id(const struct datakeys *k, int cls, const char *name,
                  uint8_t id[16]);
void keys_chunk_id(const struct datakeys *k, const void *data, size_t len,
                   uint8_t id[32]);

#endif /* SIMSYNC_KEYS_H */
