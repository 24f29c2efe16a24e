/* sbuf.h -- a growable byte buffer and a JSON writer on top of it.
 *
 * The agent turns every AMI event into JSON on its hot path. jansson builds a
 * tree of small allocations per message; writing straight into one reused
 * buffer is several times cheaper, so the per-event encoders use this. */
#ifndef CALLBUS_SBUF_H
#define CALLBUS_SBUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct sbuf {
    char *data;
    size_t len, cap;
} sbuf;

void sbuf_init(sbuf *b);
void sbuf_free(sbuf *b);
void sbuf_reset(sbuf *b);
void sbuf_reserve(sbuf *b, size_t extra);
/* Inline: the agent calls these a hundred times per event. */
static inline void sbuf_append(sbuf *b, const void *p, size_t n) {
    if (b->len + n + 1 > b->cap) sbuf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static inline void sbuf_putc(sbuf *b, char c) {
    if (b->len + 2 > b->cap) sbuf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

/* Inline, so that a literal's length is known when compiling. */
static inline void sbuf_puts(sbuf *b, const char *s) { sbuf_append(b, s, strlen(s)); }

/* Decimal, as printf's %llu and %lld write them, without printf's set-up. */
void sbuf_put_u64(sbuf *b, uint64_t v);
void sbuf_put_i64(sbuf *b, int64_t v);
void sbuf_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a quoted JSON string. Bytes that are not valid UTF-8 become
 * U+FFFD; returns 1 when that happened (the caller then keeps the exact
 * bytes some other way), 0 otherwise. */
int sbuf_json_str(sbuf *b, const char *s, size_t n);
/* Length of the valid UTF-8 sequence of 2 to 4 bytes starting at p (left
 * bytes there), or 0 when it is not one (ASCII included). */
size_t utf8_seq_len(const unsigned char *p, size_t left);
void sbuf_base64(sbuf *b, const unsigned char *p, size_t n);
/* RFC 3339 UTC time with microseconds (clock.h), quoted, from seconds since
 * the epoch. */
void sbuf_json_time(sbuf *b, double t);

#endif
