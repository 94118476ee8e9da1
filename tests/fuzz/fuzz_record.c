/* fuzz_record.c -- the store's item record decoder (LMDB values are read
 * back through it): versions validate or are refused cleanly, and a
 * record packs back into bytes that decode. */
#include "msgcheck.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Simsync__ItemRecord *r = simsync__item_record__unpack(NULL, size, data);

    if (r == NULL)
        return 0;
    if (!pb_decoded_ok(&r->base)) {
        simsync__item_record__free_unpacked(r, NULL);
        return 0;
    }
    for (size_t i = 0; i < r->n_versions; i++)
        check_version(r->versions[i]);
    check_repack(&r->base, &simsync__item_record__descriptor);
    simsync__item_record__free_unpacked(r, NULL);
    return 0;
}
