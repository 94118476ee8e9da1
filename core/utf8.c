/* utf8.c -- well-formedness of UTF-8, after RFC 3629 section 4 (the table
 * of valid byte ranges per lead byte). */
#include "simsync.h"
#include "utf8.h"

static int
in(unsigned char b, unsigned char lo, unsigned char hi)
{
    return b >= lo && b <= hi;
}

size_t
utf8_seq_len(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n;

    if (s == NULL || len == 0)
        return 0;
    if (p[0] < 0x80)
        return 1;
    if (in(p[0], 0xc2, 0xdf))
        n = 2;
    else if (in(p[0], 0xe0, 0xef))
        n = 3;
    else if (in(p[0], 0xf0, 0xf4))
        n = 4;
    else
        return 0; /* continuation byte, C0/C1 (overlong), F5..FF */
    /* The second byte's range rules out overlongs, surrogates and code
     * points over U+10FFFF. */
    if (p[0] == 0xe0)
        lo = 0xa0;
    else if (p[0] == 0xed)
        hi = 0x9f;
    else if (p[0] == 0xf0)
        lo = 0x90;
    else if (p[0] == 0xf4)
        hi = 0x8f;
    if (len < n || !in(p[1], lo, hi))
        return 0;
    for (size_t i = 2; i < n; i++)
        if (!in(p[i], 0x80, 0xbf))
            return 0;
    return n;
}

int
utf8_valid(const char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        size_t n = utf8_seq_len(s + i, len - i);

        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

size_t
simsync_utf8_seq_len(const char *s, size_t len)
{
    return utf8_seq_len(s, len);
}

void
text_printable(char *dst, size_t cap, const char *src)
{
    size_t o = 0;

    for (; src != NULL && *src != '\0' && o + 1 < cap; src++)
        dst[o++] = (*src >= 0x20 && *src < 0x7f) ? *src : '?';
    dst[o] = '\0';
}
