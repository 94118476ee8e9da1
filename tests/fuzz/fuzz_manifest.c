/* fuzz_manifest.c -- the decoder of an opened manifest (what a restore
 * reads once the blob authenticated): every item's version validates or
 * is refused cleanly, and the manifest packs back into bytes that decode. */
#include "msgcheck.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Simsync__Manifest *m = simsync__manifest__unpack(NULL, size, data);

    if (m == NULL)
        return 0;
    if (!pb_decoded_ok(&m->base)) {
        simsync__manifest__free_unpacked(m, NULL);
        return 0;
    }
    for (size_t i = 0; i < m->n_items; i++)
        check_version(m->items[i]->version);
    check_repack(&m->base, &simsync__manifest__descriptor);
    simsync__manifest__free_unpacked(m, NULL);
    return 0;
}
