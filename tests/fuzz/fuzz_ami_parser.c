/* fuzz_ami_parser.c -- libFuzzer target for the AMI parser (lib/ami.c).
 *
 * The first input bytes choose the limits and how the rest is cut into
 * feed() calls, so the fuzzer explores chunk boundaries as well as content.
 * Beyond "no crash, no leak", it checks the accounting invariants: no byte
 * is delivered twice, every delivered raw is a real slice of the input,
 * serialization always works, and a clean message after a blank line is
 * always recovered. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ami.h"

typedef struct fuzz_ctx {
    const uint8_t *data;
    size_t len;
    size_t delivered;    /* raw bytes of all messages */
    size_t cursor;       /* messages come in stream order: search from here */
    size_t banner_bytes;
    const char *last_event;
    char last_event_buf[16];
} fuzz_ctx;

static void on_banner(void *ctx, const char *banner) {
    fuzz_ctx *f = ctx;
    f->banner_bytes += strlen(banner) + 1;
}

static void check_message(fuzz_ctx *f, ami_msg *m) {
    if (m->raw_len == 0 || m->count == 0) abort();
    const uint8_t *at = memmem(f->data + f->cursor, f->len - f->cursor, m->raw, m->raw_len);
    if (!at) abort();
    f->cursor = (size_t)(at - f->data) + m->raw_len;
    size_t n;
    char *s = ami_msg_serialize(m, &n);
    if (n != strlen(s)) abort();
    if (!m->noncanonical && (n != m->raw_len || memcmp(s, m->raw, n) != 0)) abort();
    free(s);
    (void)ami_msg_kind(m);
    for (size_t i = 0; i < m->count; i++) (void)ami_value_is_safe(m->headers[i].value);
}

static void on_message(void *ctx, ami_msg *m) {
    fuzz_ctx *f = ctx;
    f->delivered += m->raw_len;
    check_message(f, m);
    const char *ev = ami_get(m, "Event");
    f->last_event = NULL;
    if (ev && strlen(ev) < sizeof(f->last_event_buf)) {
        strcpy(f->last_event_buf, ev);
        f->last_event = f->last_event_buf;
    }
    /* Half the time keep the message, as a consumer may. */
    if (m->raw_len % 2) {
        ami_msg kept = *m;
        ami_msg_init(m);
        ami_msg_add(&kept, "K", 1, "v", 1);
        ami_msg_free(&kept);
    }
}

static void on_error(void *ctx, ami_error err, const char *raw, size_t len) {
    (void)ctx;
    (void)err;
    volatile char sink = 0;
    for (size_t i = 0; i < len; i++) sink ^= raw[i];
    (void)sink;
}

static void feed_chunked(ami_parser *p, const uint8_t *data, size_t len, uint8_t seed) {
    size_t off = 0;
    uint32_t x = seed * 2654435761u + 1;
    while (off < len) {
        x = x * 1103515245u + 12345u;
        size_t n = seed == 0 ? len - off : 1 + (x >> 16) % (seed % 32 + 1);
        if (n > len - off) n = len - off;
        ami_parser_feed(p, (const char *)data + off, n);
        off += n;
    }
}

/* The parser recognises "Response: Follows" in any case. */
static int contains_follows(const uint8_t *buf, size_t size) {
    for (size_t i = 0; i + 7 <= size; i++)
        if (strncasecmp((const char *)buf + i, "follows", 7) == 0) return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    uint8_t seed = data[0];
    size_t max_line = 16 + (size_t)data[1] * 4, max_headers = 1 + data[2] % 64;
    data += 3;
    size -= 3;

    /* The input followed by a blank line and a clean message. */
    static const char tail[] = "\r\n\r\nEvent: FuzzEnd\r\n\r\n";
    size_t total = size + sizeof(tail) - 1;
    uint8_t *buf = malloc(total ? total : 1);
    if (size) memcpy(buf, data, size);
    memcpy(buf + size, tail, sizeof(tail) - 1);

    fuzz_ctx f = {.data = buf, .len = total};
    ami_parser_callbacks cb = {on_banner, on_message, on_error};
    ami_parser *p = ami_parser_new(&cb, &f);
    ami_parser_set_limits(p, max_line, max_headers);
    feed_chunked(p, buf, total, seed);

    const ami_parser_stats *st = ami_parser_get_stats(p);
    if (st->bytes != total) abort();
    if (f.delivered + st->bytes_stray + st->bytes_refused > total) abort();
    /* A Follows message may legitimately swallow the tail (it waits for
     * --END COMMAND--); otherwise the tail must come out clean. */
    if (!contains_follows(buf, size)) {
        if (!f.last_event || strcmp(f.last_event, "FuzzEnd") != 0) abort();
        if (f.banner_bytes + f.delivered + st->bytes_stray + st->bytes_refused > total) abort();
    }
    /* A reconnect: the same bytes again from the start of the stream. */
    ami_parser_reset(p);
    f.cursor = 0;
    ami_parser_feed(p, (const char *)buf, size);
    ami_parser_free(p);
    free(buf);
    return 0;
}
