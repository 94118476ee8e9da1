/* utf8.h -- UTF-8 checks for text that leaves the program as text (JSON
 * output). Names are bytes, as Linux file names are: the engine takes any
 * byte string that replica_name_ok accepts, and only printers look at the
 * encoding. Pure: no allocation, no state. */
#ifndef SIMSYNC_UTF8_H
#define SIMSYNC_UTF8_H

#include <stddef.h>

/* The length (1..4) of the well-formed UTF-8 sequence at the start of
 * s[0..len), or 0 when it is not one: a stray continuation byte, a byte
 * never used in UTF-8 (C0, C1, F5..FF), an overlong form, a UTF-16
 * surrogate (U+D800..U+DFFF), a code point over U+10FFFF, or a sequence cut
 * by the end of s. len 0 gives 0. */
size_t utf8_seq_len(const char *s, size_t len);

/* 1 when all of s[0..len) is well-formed UTF-8, else 0. */
int utf8_valid(const char *s, size_t len);

/* Copy the string src (NULL: "") into dst[0..cap) as printable ASCII, each
 * other byte as '?', cut to cap - 1 bytes; dst always ends with a NUL (cap
 * >= 1). For text from a peer that goes to a person's terminal. */
void text_printable(char *dst, size_t cap, const char *src);

#endif /* SIMSYNC_UTF8_H */
