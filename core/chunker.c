/* chunker.c -- FastCDC content-defined chunking: the cut-point search
 * (chunker_cut) and a helper that walks a file descriptor chunk by chunk
 * (chunker_fd_each). See chunker.h for the algorithm and the contract. */
#include "chunker.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypt.h"

/* The gear table: one pseudo-random 64-bit value per byte value. It is
 * data, fixed forever (it decides every chunk boundary), and was produced
 * by splitmix64 from the seed 0x73696d73796e6331 ("simsync1"):
 *     state += 0x9e3779b97f4a7c15;
 *     z = state;
 *     z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
 *     z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
 *     gear[i] = z ^ (z >> 31);
 * for i = 0..255 in order. */
static const uint64_t gear[256] = {
    0x440b1bd6b567e5f0ULL, 0xddf1fda82060a63dULL, 0x5b99aebb6a21dce0ULL,
    0x554219ee8f031d31ULL, 0x21317a6b71986790ULL, 0xdb62b33fc220839eULL,
    0x26e5fedb1e61056bULL, 0xc6e1ff1a4dc400a7ULL, 0x781efc2d51708000ULL,
    0xccb6379d248e3aa6ULL, 0xda63bca6e0a117d5ULL, 0xc7129fded1eb6afaULL,
    0x15f074e2d01db837ULL, 0x225d0a3370038e84ULL, 0x4b42c4550f05de3dULL,
    0x89bd4711c8cf4b08ULL, 0xd0e00dcb6e24089eULL, 0xa1b6d8346f88dea2ULL,
    0xefa4ea4b457e12dbULL, 0xcd6547ac01d2eb74ULL, 0x3731bb112bbc6fb2ULL,
    0x0d6a39dd4d870230ULL, 0x87a43eb12ee2ebecULL, 0x1087ee4fe46075f8ULL,
    0x4f0984fcd6246e35ULL, 0xca4cc9fa26ba4221ULL, 0x434042dd6722e347ULL,
    0x6ddda6f531fd60d6ULL, 0xddf7f2e31a3b1825ULL, 0x1641a4676c9235caULL,
    0xcc710ba49083ac6fULL, 0xfd4cc34381e74319ULL, 0x2f0196ae8032aa76ULL,
    0xb01d66896e39784aULL, 0xefdf6cb8717d9f12ULL, 0x291a6dca7fc9d026ULL,
    0x870306510f17a86fULL, 0xfe0743a87a81510eULL, 0x0fe5db1eb7d0e043ULL,
    0xf1e2062c0cf015faULL, 0x036c4120fa07b970ULL, 0xe4b6385821ada432ULL,
    0xd07bdc23841a8c2dULL, 0x289981d5fc578b1eULL, 0x78c3cc26039dae40ULL,
    0x3c03eda7c45ca39dULL, 0x2113327411fdbbefULL, 0x100c250324b1ff3aULL,
    0x2be0506768368297ULL, 0xb7fdc9ef464ab8f0ULL, 0xf4fbf809d49ec7acULL,
    0xd9935bca901491e2ULL, 0x1cb4c5bab171ab93ULL, 0x5fd33ce4b9eff3c0ULL,
    0x8151d2af939879b5ULL, 0x5cba0b6af5cc7f51ULL, 0x80153f9cd7233b3bULL,
    0xaf67f004953549eeULL, 0xd81939c6540dfc9eULL, 0xfbbcd9f0f269b74cULL,
    0xcc70703b218c9f76ULL, 0x64e4f4e60d7a7093ULL, 0xc2846e5ef468c42bULL,
    0xd6f33562030608ccULL, 0x4ffc60e33752610fULL, 0x57f703cf949a5320ULL,
    0xfe239ef4c678b05bULL, 0x0aff8b25217fb603ULL, 0x1dedf461300cdcb0ULL,
    0x0b415f9c68c46998ULL, 0x96b9acc01a21e5e1ULL, 0x6ae05aba178371afULL,
    0xee4044d91c897d86ULL, 0xd2cd638e74748faeULL, 0x8518358472ca5bc3ULL,
    0x8edaeaa836f90e17ULL, 0xf9c315e8ae4c6b77ULL, 0x78847f8a1c30096eULL,
    0xc989c4ae2cf0edc8ULL, 0x11f9080bbed3ee5eULL, 0xedbce04e8e13fe21ULL,
    0x3097c5302310016aULL, 0x5a5fd6fdd96edd9aULL, 0x6572db445c79eba5ULL,
    0x62f8ae6aeafabc06ULL, 0xfe93b1149910c2e4ULL, 0xe48cd8ea4bf0508dULL,
    0x7c739e7ac80d1b5cULL, 0x8e8757422722d61dULL, 0x507ef161d15e5ffcULL,
    0x3921e926d0ccccd6ULL, 0xa0dcccad35ec60ffULL, 0x9ae94f5f6cc1c047ULL,
    0x6173f091511bf2a2ULL, 0xbe28a7c14b34261eULL, 0x28f6a69ea6baa6b6ULL,
    0x0d8f069c06d89111ULL, 0xafccb34e329c917aULL, 0xf4ae98582aaf8eeaULL,
    0x4fdda3ed22db55e2ULL, 0x4d8036d4847d0336ULL, 0x61c974b229977d95ULL,
    0xd4684265c83ddfaaULL, 0x3cccd31ae546ec69ULL, 0x38a78ad4de9e04abULL,
    0xc6ce73021df072aaULL, 0x75be93947a14f623ULL, 0xa48372de7647d0ffULL,
    0x07d0b31c8111f45bULL, 0x1970f9f6197c1ea7ULL, 0xcc2343b9b52e87e4ULL,
    0xab26fc9719e901fbULL, 0x831cfe7987e2bdbcULL, 0x3e6fd620240cbe86ULL,
    0x54c4ec7bbb20f09aULL, 0x37cfc5a779d54d3dULL, 0xae83ff26d826ce24ULL,
    0x391927255465dbfcULL, 0xeff1ac6a312bd3ecULL, 0x80396f225a5d6e10ULL,
    0x73cc81b72c6fbdf4ULL, 0xbb6e7636a3baafd9ULL, 0x5d2070d3051e807bULL,
    0x4b2d777fb8e520baULL, 0x6c7a491c9ef6caddULL, 0x4a9544628a47301cULL,
    0xd8f11db88915fd9dULL, 0x07fea0deb08c2285ULL, 0x04ef171a9a9a7b66ULL,
    0x37cd9a7196a4503cULL, 0x90018463b8494979ULL, 0xce58855611ba35e2ULL,
    0x01b0974a35e600d2ULL, 0xa49c04cd59a1fbaaULL, 0x15f62b53958699fbULL,
    0xd9258428c4b00431ULL, 0xf05863e2f7d117dfULL, 0xc038059c8126d3ebULL,
    0x2f7ccb74dd990bb9ULL, 0xab38d9a1f2ce58a6ULL, 0x76f3e7eb8c2c6008ULL,
    0x7351cb628bde638aULL, 0x63f6d053b4c5051fULL, 0x5fe943b3af7fec33ULL,
    0xdd900342465ec22aULL, 0x2dec43d4fbe665f9ULL, 0x5337a8fbd503f5fbULL,
    0xb0edfde77d2d8b2cULL, 0xd962f7eecaaf4c8eULL, 0xb710660a3078f0bdULL,
    0xfa1fb8738e77774aULL, 0xa6e4347dd9d01ca5ULL, 0xd6a1d79f9d0ebb63ULL,
    0xe1ce34b792e998e7ULL, 0xbb857b5b7c3b50f3ULL, 0x75775d14a4e3126fULL,
    0x9f3752438b24bda2ULL, 0x5a571ba30ac23532ULL, 0x7b08361723b1494dULL,
    0xffa3a77307321e26ULL, 0x4e7b1226422285a8ULL, 0xab4d9565971782a4ULL,
    0xf07092db23fac24aULL, 0x7b738dae9d137ff8ULL, 0x4ca0e5a1b5d880aeULL,
    0x95eedeaa1d4aebc2ULL, 0x8f0cb4b075ce6e8eULL, 0x49af16c7f9c360e0ULL,
    0x2e27fdbed6cb1cc0ULL, 0xd3887287df2ee5a6ULL, 0x03d30913f6c1f0feULL,
    0x7d6826c5f3fc49ddULL, 0x17349ef052c15ac4ULL, 0x880f8516fbee07d1ULL,
    0x239138a762d4c105ULL, 0xa8974731a942d432ULL, 0x56acfdf7540dd521ULL,
    0x0ab400ea66e39ffaULL, 0x6c0dc84794608b1eULL, 0xdd93821a033d9c31ULL,
    0x1d9cd612d2bc4725ULL, 0x46d1e1e4a22dd997ULL, 0x8cd722bc79f3a488ULL,
    0x3cf76e18e1b62146ULL, 0xdc857c24f5fc2cabULL, 0x619505c3e3959edeULL,
    0x324e9ab20096ccdbULL, 0xcdea1d44c9907625ULL, 0x8b1644a360091267ULL,
    0x83ea124f153ff55eULL, 0x92a27af63ecb38d2ULL, 0x5381213778a2fe10ULL,
    0xa3981f242c153270ULL, 0xac35cbf17f35f8c3ULL, 0x5b2eb4a3a99c7ba3ULL,
    0x9b1614639e3e3159ULL, 0x20b93317f349e069ULL, 0x326c9913258c6e94ULL,
    0x1bd6125eb6891d01ULL, 0x4e620e4009af6ec2ULL, 0x5017d0685e94306eULL,
    0x26269c22a05920e3ULL, 0xc5b4ad03e5485eeeULL, 0x18edc9ac9737b0b5ULL,
    0xfe9d34ed48b7e74dULL, 0x0b8faf0c95001b64ULL, 0x50f604d96764996eULL,
    0xd50fa5143f5f7bd9ULL, 0x31b635beb83d1875ULL, 0x3220732316c9f768ULL,
    0xbac3e84f63073c09ULL, 0xea7ef6c435d625ceULL, 0x12d066ff1719d9cdULL,
    0x3ed63c28f2a72f9eULL, 0x37e26ffc94a8be85ULL, 0x06bb1b444b197a9bULL,
    0x0d68c7fbf4a13c80ULL, 0x3a16dc3eddbca9cbULL, 0xe824b868ea6133beULL,
    0xae4dcfb90bc4b3e3ULL, 0xa7e1abb3b9605311ULL, 0x70d88f9508af9fc2ULL,
    0x26ad9650cbf9d9e7ULL, 0xd2fb7fb1c40c35efULL, 0x89788b2198619e44ULL,
    0x1ccbab7d1632d949ULL, 0xefe7a744309f675bULL, 0x6adb79a0fa95208bULL,
    0x5875fa6cc3f919caULL, 0xaa80a8e65fde5e71ULL, 0x1842adb98dc7e8ceULL,
    0x3bf39e3b61bd8276ULL, 0x060529c09cad2132ULL, 0x075188acc074eca2ULL,
    0xf4f259d2a3928bf6ULL, 0x9194a5902b30be6eULL, 0x1403f47bcbb14916ULL,
    0x6f5309895afc76e5ULL, 0x20a85ffa8678449cULL, 0xae713e89185a7034ULL,
    0x0773c1998c815574ULL, 0xcfaca8afc8bd8366ULL, 0x914e65bd7526173aULL,
    0xc45308f71cf430baULL, 0xb444cf273e917325ULL, 0xd56ec62b29829700ULL,
    0xdedefcbfc4cc7babULL, 0x9be39bc8c9e7644fULL, 0x54588afda0acb7a8ULL,
    0x73679ee27f84a7fdULL, 0xf2f0e18df07887b1ULL, 0x2b441d344c62a2a4ULL,
    0x1a88957d6cf68388ULL, 0xef7411600ddf1a68ULL, 0x6f5ad683a081d744ULL,
    0x57b398eb67d5460cULL,
};

void
chunker_params_default(struct chunker_params *p)
{
    assert(p != NULL);
    p->min = CHUNKER_MIN_DEFAULT;
    p->avg = CHUNKER_AVG_DEFAULT;
    p->max = CHUNKER_MAX_DEFAULT;
}

int
chunker_params_check(const struct chunker_params *p)
{
    if (p == NULL)
        return SIMSYNC_EINVAL;
    if (p->min < CHUNKER_MIN_LIMIT || p->max > CHUNKER_MAX_LIMIT)
        return SIMSYNC_EINVAL;
    if (!(p->min < p->avg && p->avg < p->max))
        return SIMSYNC_EINVAL;
    if ((p->avg & (p->avg - 1)) != 0)
        return SIMSYNC_EINVAL;
    return SIMSYNC_OK;
}

/* log2 of a power of two. */
static unsigned
log2_exact(size_t v)
{
    unsigned n = 0;

    while (v > 1) {
        v >>= 1;
        n++;
    }
    return n;
}

/* A mask of the `n` most significant bits, 1 <= n <= 63. The gear hash
 * shifts left, so its high bits depend on the most recent 64 bytes while
 * its low bits see only the last few: the masks test the high bits. */
static uint64_t
high_bits(unsigned n)
{
    return ~(uint64_t)0 << (64 - n);
}

size_t
chunker_cut(const struct chunker_params *p, const uint8_t *data, size_t len,
            int eof)
{
    uint64_t fp = 0;
    uint64_t mask_strict, mask_loose;
    size_t i, end, normal;
    unsigned bits;

    assert(chunker_params_check(p) == SIMSYNC_OK);
    assert(data != NULL || len == 0);

    if (len == 0)
        return 0;
    if (len <= p->min)
        return eof ? len : 0;

    end = len < p->max ? len : p->max;
    normal = p->avg < end ? p->avg : end;

    /* Normalised chunking, level 2: two bits more than log2(avg) below
     * the average size, two bits fewer above it. chunker_params_check()
     * guarantees 7 <= bits <= 26, so both widths are within 1..63. */
    bits = log2_exact(p->avg);
    mask_strict = high_bits(bits + 2);
    mask_loose = high_bits(bits - 2);

    /* The first `min` bytes cannot end a chunk: skip them unhashed. */
    for (i = p->min; i < normal; i++) {
        fp = (fp << 1) + gear[data[i]];
        if ((fp & mask_strict) == 0)
            return i + 1;
    }
    for (; i < end; i++) {
        fp = (fp << 1) + gear[data[i]];
        if ((fp & mask_loose) == 0)
            return i + 1;
    }
    if (end == p->max || eof)
        return end;
    return 0; /* no boundary yet: the caller must bring more data */
}

/* Fill buf[*have..cap) from fd until full or end of file. */
static int
fill(int fd, uint8_t *buf, size_t cap, size_t *have, int *eof)
{
    ssize_t r;

    while (*have < cap && !*eof) {
        r = read(fd, buf + *have, cap - *have);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return SIMSYNC_EIO;
        }
        if (r == 0)
            *eof = 1;
        else
            *have += (size_t)r;
    }
    return SIMSYNC_OK;
}

int
chunker_fd_each(const struct chunker_params *p, int fd,
                int (*cb)(const uint8_t *chunk, size_t len, uint64_t offset,
                          void *arg),
                void *arg)
{
    uint8_t *buf; /* owned: 2 * max bytes, wiped before free */
    size_t cap, have = 0, start = 0, n;
    uint64_t offset = 0;
    int eof = 0;
    int rc = SIMSYNC_OK;

    if (chunker_params_check(p) != SIMSYNC_OK || cb == NULL || fd < 0)
        return SIMSYNC_EINVAL;
    cap = 2 * p->max;
    buf = malloc(cap);
    if (buf == NULL)
        return SIMSYNC_ENOMEM;

    for (;;) {
        /* Keep the unconsumed tail (shorter than max when chunker_cut
         * asked for more) and top the buffer up: at least max bytes are
         * then available, or the stream has ended. */
        if (start > 0) {
            memmove(buf, buf + start, have - start);
            have -= start;
            start = 0;
        }
        rc = fill(fd, buf, cap, &have, &eof);
        if (rc != SIMSYNC_OK)
            break;

        while (start < have) {
            n = chunker_cut(p, buf + start, have - start, eof);
            if (n == 0)
                break;
            rc = cb(buf + start, n, offset, arg);
            if (rc != 0)
                goto out;
            start += n;
            offset += n;
        }
        if (eof)
            break; /* with eof set, chunker_cut consumed everything */
    }
out:
    crypt_wipe(buf, cap);
    free(buf);
    return rc;
}
