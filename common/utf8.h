/* utf8: the one check of well-formed UTF-8 that the log lines and the CLI's
 * JSON share. */
#pragma once

#include <stddef.h>

/* Length (1-4) of the well-formed UTF-8 sequence at @s, which has @n > 0 bytes
 * left; 0 when it is not one: a stray continuation byte, a truncated sequence,
 * an overlong form, a surrogate or a code point past U+10FFFF. */
size_t utf8_seq_len(const unsigned char *s, size_t n);
