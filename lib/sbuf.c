/* sbuf.c -- growable buffer and fast JSON string writer (see sbuf.h). */
#include "sbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"

void sbuf_init(sbuf *b) { b->data = NULL; b->len = b->cap = 0; }
void sbuf_free(sbuf *b) { free(b->data); sbuf_init(b); }
void sbuf_reset(sbuf *b) { b->len = 0; }

void sbuf_reserve(sbuf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void sbuf_put_u64(sbuf *b, uint64_t v) {
    char d[20], *o = d + sizeof(d);
    do {
        *--o = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sbuf_append(b, o, (size_t)(d + sizeof(d) - o));
}

void sbuf_put_i64(sbuf *b, int64_t v) {
    if (v < 0) {
        sbuf_putc(b, '-');
        sbuf_put_u64(b, -(uint64_t)v);
    } else {
        sbuf_put_u64(b, (uint64_t)v);
    }
}

/* One pass when the result fits in the room already there. */
void sbuf_printf(sbuf *b, const char *fmt, ...) {
    size_t room = b->cap - b->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->cap ? b->data + b->len : NULL, b->cap ? room : 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (!b->cap || (size_t)n >= room) {
        sbuf_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

size_t utf8_seq_len(const unsigned char *p, size_t left) {
    unsigned c = p[0];
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) { n = 2; cp = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) { n = 3; cp = c & 0x0f; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 4; cp = c & 0x07; }
    else return 0;
    if (left < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are invalid. */
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Bytes a JSON string takes as they are: printable ASCII (DEL included)
 * but the quote and the backslash. */
static const unsigned char json_plain[256] = {
    [0x20 ... '"' - 1] = 1, ['"' + 1 ... '\\' - 1] = 1, ['\\' + 1 ... 0x7f] = 1,
};

/* Nonzero when one of the 8 bytes of w is not json_plain: below 0x20, at
 * or above 0x80, '"' or '\\' (the usual has-zero-byte bit tricks). */
static inline uint64_t swar_special(uint64_t w) {
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
    uint64_t below_space = (w - ones * 0x20) & ~w;
    uint64_t quote = (q - ones) & ~q, backslash = (bs - ones) & ~bs;
    return (below_space | quote | backslash | w) & high;
}

int sbuf_json_str(sbuf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    int replaced = 0;
    /* The longest it can get: every byte six ("\u00XX" or "\ufffd"). */
    sbuf_reserve(b, 6 * n + 2);
    char *o = b->data + b->len;
    *o++ = '"';
    while (p < end) {
        /* Runs of plain bytes go out in one copy, 8 bytes checked at once. */
        const unsigned char *run = p;
        while (end - run >= 8) {
            uint64_t w;
            memcpy(&w, run, 8);
            if (swar_special(w)) break;
            run += 8;
        }
        while (run < end && json_plain[*run]) run++;
        if (run > p) {
            memcpy(o, p, (size_t)(run - p));
            o += run - p;
            p = run;
            continue;
        }
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
            p++;
        } else if (c < 0x20) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4];
            o[5] = hex[c & 15];
            o += 6;
            p++;
        } else {
            size_t len = utf8_seq_len(p, (size_t)(end - p));
            if (len) {
                memcpy(o, p, len);
                o += len;
                p += len;
            } else {
                memcpy(o, "\\ufffd", 6);
                o += 6;
                replaced = 1;
                p++;
            }
        }
    }
    *o++ = '"';
    *o = '\0';
    b->len = (size_t)(o - b->data);
    return replaced;
}

void sbuf_base64(sbuf *b, const unsigned char *p, size_t n) {
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    sbuf_reserve(b, (n + 2) / 3 * 4);
    char *o = b->data + b->len;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = tbl[v >> 18]; *o++ = tbl[(v >> 12) & 63];
        *o++ = tbl[(v >> 6) & 63]; *o++ = tbl[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = tbl[v >> 18]; *o++ = tbl[(v >> 12) & 63];
        *o++ = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
}

void sbuf_json_time(sbuf *b, double t) {
    char s[RFC3339_MAX];
    sbuf_putc(b, '"');
    sbuf_puts(b, rfc3339(t, 6, s, sizeof(s)));
    sbuf_putc(b, '"');
}
