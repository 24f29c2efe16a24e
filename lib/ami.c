/* ami.c -- AMI messages and the incremental AMI parser.
 *
 * The parser turns whatever bytes TCP delivered into complete messages. It
 * scans each chunk once for line ends and colons and copies a message's bytes
 * twice, each in one piece: into raw as they arrive, and when the message
 * ends into the strings block, where the keys and values are cut out in
 * place (a NUL over each colon and line end). The hot path has no per-line
 * copies and no per-header mallocs; every buffer is reused from message to
 * message.
 *
 * Framing decisions (all visible in the stats and in raw):
 *  - The greeting line is not part of any message. Blank lines before it
 *    are stray; if the first non-blank line does not look like a greeting
 *    it is the first header of the first message. A client's actions
 *    (ami_parser_read_actions) have no greeting and no Follows output.
 *  - raw runs from a message's first byte to the end of its terminating
 *    blank line. Blank lines between messages belong to no message and are
 *    counted in bytes_stray, so greeting + raws + stray (+ refused) bytes
 *    give back the stream exactly. This matches the offsets recorded in the
 *    capture fixtures.
 *  - A line without a colon is kept as a header with an empty key and the
 *    whole line as value: nothing is lost, the message is still delivered
 *    (marked noncanonical) and on_error(AMI_ERR_NO_COLON) lets the caller
 *    count it.
 *  - "Response: Follows" (Asterisk < 14 Command): once a line without a
 *    colon (or a blank line) follows the headers, every line up to the one
 *    ending in "--END COMMAND--" is CLI output, kept as an "Output" header
 *    like Asterisk 14+ sends it. The end marker itself is framing (it stays
 *    in raw); the message ends at the blank line after it.
 *  - A line longer than max_line or a header past max_headers refuses the
 *    whole message: on_error gets what was read of it (the long line cut at
 *    max_line + 2 bytes) and the rest is skipped up to the next blank line.
 *    Memory therefore stays within one message plus one line. */
#include "ami.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "alloc.h"

#define END_COMMAND "--END COMMAND--"
#define END_COMMAND_LEN (sizeof(END_COMMAND) - 1)
#define BANNER_PREFIX "Asterisk Call Manager"
#define BANNER_PREFIX_LEN (sizeof(BANNER_PREFIX) - 1)

/* What a complete line does to the message being assembled. */
enum line_result {
    LINE_PART,     /* belongs to the message */
    LINE_END,      /* terminating blank line: the message is complete */
    LINE_DROP,     /* greeting or stray blank line: belongs to no message */
    LINE_REFUSED   /* limit hit: the message is refused (p->refuse_err) */
};

/* Where the skipped line stands while a refused message is skipped: a blank
 * line ends the skip, and the line may be split across chunks. */
enum skip_line { SKIP_EMPTY, SKIP_CR, SKIP_TEXT };

/* Offsets of a key and its value in the message's raw bytes (raw moves when
 * it grows, so pointers are only made when the message is delivered), or
 * for the keys no line spells out, one of the names the strings block
 * carries after its copy of raw. */
typedef struct pair {
    size_t key, val;
    size_t klen, vlen;
} pair;

#define KEY_EMPTY SIZE_MAX          /* a line without a colon */
#define KEY_OUTPUT (SIZE_MAX - 1)   /* a line of CLI output */
/* What the strings block holds after raw's copy: "" and "Output". */
static const char strings_tail[] = "\0Output";

struct ami_parser {
    ami_parser_callbacks cb;
    void *ctx;
    size_t max_line, max_headers;
    ami_parser_stats stats;

    /* msg.raw accumulates the message across chunks; msg.strings its keys
     * and values. Both are reused after delivery unless the consumer kept
     * the message. */
    ami_msg msg;
    size_t len, raw_cap;      /* bytes of msg.raw in use / allocated */
    size_t line_start;        /* start of the partial line in msg.raw */
    size_t scap;              /* bytes of msg.strings allocated */
    pair *pairs;
    size_t npairs, pairs_cap;

    int actions;              /* a client's actions: no greeting, no Follows */
    int want_banner;
    int in_msg;               /* the message has at least one line */
    int noncanonical;
    int follows;              /* first header was "Response: Follows" */
    int output_started;       /* Follows: CLI output has begun */
    int end_seen;             /* Follows: last line ended in --END COMMAND-- */

    int skipping;             /* dropping a refused message's remainder */
    enum skip_line skip_line;
    ami_error refuse_err;
};

static size_t grow_cap(size_t cap, size_t need) {
    if (cap < 64) cap = 64;
    while (cap < need) cap *= 2;
    return cap;
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */

void ami_msg_init(ami_msg *m) {
    memset(m, 0, sizeof(*m));
}

static int in_strings(const ami_msg *m, const char *s) {
    uintptr_t a = (uintptr_t)m->strings, x = (uintptr_t)s;
    return m->strings && x >= a && x < a + m->strings_len;
}

/* Free the headers that ami_msg_add allocated (one block each, key first). */
static void free_added_headers(ami_msg *m) {
    for (size_t i = 0; i < m->count; i++)
        if (!in_strings(m, m->headers[i].key)) free(m->headers[i].key);
}

void ami_msg_free(ami_msg *m) {
    if (!m) return;
    free_added_headers(m);
    free(m->headers);
    free(m->raw);
    free(m->strings);
    ami_msg_init(m);
}

static void reserve_headers(ami_msg *m, size_t need) {
    if (need <= m->cap) return;
    m->cap = grow_cap(m->cap, need);
    m->headers = xrealloc(m->headers, m->cap * sizeof(*m->headers));
}

static size_t bucket_of(const char *key, size_t len) {
    return ((size_t)((unsigned char)key[0] | 0x20) * 7 + len) & (AMI_INDEX_BUCKETS - 1);
}

/* Chain header i (its key_len set) into its bucket. */
static inline void index_header(ami_msg *m, size_t i) {
    ami_header *h = &m->headers[i];
    size_t b = bucket_of(h->key, h->key_len);
    h->next = m->bucket[b];
    m->bucket[b] = (uint32_t)(i + 1);
}

/* Index the headers not indexed yet. */
static void index_headers(ami_msg *m) {
    for (; m->indexed < m->count; m->indexed++) index_header(m, m->indexed);
}

static void index_clear(ami_msg *m) {
    memset(m->bucket, 0, sizeof(m->bucket));
    m->indexed = 0;
}

/* Key and value share one allocation so a header costs a single malloc. */
int ami_msg_add(ami_msg *m, const char *key, size_t klen, const char *val, size_t vlen) {
    char *block = xmalloc(klen + vlen + 2);
    memcpy(block, key, klen);
    block[klen] = '\0';
    memcpy(block + klen + 1, val, vlen);
    block[klen + 1 + vlen] = '\0';
    reserve_headers(m, m->count + 1);
    m->headers[m->count].key = block;
    m->headers[m->count].value = block + klen + 1;
    m->headers[m->count].key_len = (uint32_t)strlen(block);
    m->headers[m->count].value_len = (uint32_t)strlen(block + klen + 1);
    m->count++;
    index_headers(m);
    return 0;
}

/* A chain runs from the latest header back: the last match is the first. */
const char *ami_get(const ami_msg *m, const char *key) {
    size_t len = strlen(key);
    const char *found = NULL;
    for (uint32_t i = m->bucket[bucket_of(key, len)]; i; i = m->headers[i - 1].next)
        /* Asterisk writes keys as the agent asks for them: the exact
         * compare (inlined for a known length) mostly spares strcasecmp. */
        if (m->headers[i - 1].key_len == len &&
            (memcmp(m->headers[i - 1].key, key, len) == 0 || strcasecmp(m->headers[i - 1].key, key) == 0))
            found = m->headers[i - 1].value;
    return found;
}

const char *ami_get_or(const ami_msg *m, const char *key, const char *def) {
    const char *v = ami_get(m, key);
    return v ? v : def;
}

ami_kind ami_msg_kind(const ami_msg *m) {
    if (ami_get(m, "Event")) return AMI_EVENT;
    if (ami_get(m, "Response")) return AMI_RESPONSE;
    return AMI_OTHER;
}

char *ami_msg_serialize(const ami_msg *m, size_t *len) {
    size_t total = 3;
    for (size_t i = 0; i < m->count; i++)
        total += strlen(m->headers[i].key) + strlen(m->headers[i].value) + 4;
    char *out = xrealloc(NULL, total);
    char *o = out;
    for (size_t i = 0; i < m->count; i++) {
        size_t kl = strlen(m->headers[i].key), vl = strlen(m->headers[i].value);
        memcpy(o, m->headers[i].key, kl);
        o += kl;
        *o++ = ':';
        *o++ = ' ';
        memcpy(o, m->headers[i].value, vl);
        o += vl;
        *o++ = '\r';
        *o++ = '\n';
    }
    *o++ = '\r';
    *o++ = '\n';
    *o = '\0';
    if (len) *len = (size_t)(o - out);
    return out;
}

int ami_value_is_safe(const char *value) {
    if (!value) return 0;
    for (const unsigned char *s = (const unsigned char *)value; *s; s++)
        if (*s < 0x20 || *s == 0x7f) return 0;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Parser buffers                                                           */

static void raw_append(ami_parser *p, const char *data, size_t n) {
    if (p->len + n + 1 > p->raw_cap) {
        p->raw_cap = grow_cap(p->raw_cap, p->len + n + 1);
        p->msg.raw = xrealloc(p->msg.raw, p->raw_cap);
    }
    memcpy(p->msg.raw + p->len, data, n);
    p->len += n;
}

static void strings_reserve(ami_parser *p, size_t n) {
    if (n <= p->scap) return;
    p->scap = grow_cap(p->scap, n);
    p->msg.strings = xrealloc(p->msg.strings, p->scap);
}

/* Makes room for one more header; refuses the message past max_headers. */
static int grow_pairs(ami_parser *p) {
    if (p->npairs >= p->max_headers) {
        p->refuse_err = AMI_ERR_TOO_MANY_HEADERS;
        return LINE_REFUSED;
    }
    if (p->npairs == p->pairs_cap) {
        p->pairs_cap = grow_cap(p->pairs_cap, p->npairs + 1);
        p->pairs = xrealloc(p->pairs, p->pairs_cap * sizeof(*p->pairs));
    }
    return LINE_PART;
}

/* The common case inline: room already there. */
static inline int reserve_pair(ami_parser *p) {
    if (p->npairs < p->pairs_cap && p->npairs < p->max_headers) return LINE_PART;
    return grow_pairs(p);
}

/* Record a header: key and value at these offsets in raw (or key one of
 * the KEY_ names). Only offsets: deliver() copies the message in one piece
 * and ends each key and value with a NUL where its line has a colon or a
 * line end, so a header costs no copy of its own. */
static inline int add_pair(ami_parser *p, size_t key, size_t klen, size_t val, size_t vlen) {
    if (reserve_pair(p) == LINE_REFUSED) return LINE_REFUSED;
    pair *pr = &p->pairs[p->npairs++];
    pr->key = key;
    pr->val = val;
    pr->klen = klen;
    pr->vlen = vlen;
    return LINE_PART;
}

static void msg_clear(ami_parser *p) {
    p->len = p->line_start = 0;
    p->npairs = 0;
    p->in_msg = p->noncanonical = 0;
    p->follows = p->output_started = p->end_seen = 0;
}

/* Hand the assembled message (all of it in msg.raw) to the consumer, then
 * take the buffers back unless the consumer kept the message. */
static void deliver(ami_parser *p) {
    ami_msg *m = &p->msg;
    /* A NUL inside a key or value would end it early as a C string. */
    int has_nul = memchr(m->raw, '\0', p->len) != NULL;
    size_t slen = p->len + sizeof(strings_tail);
    strings_reserve(p, slen);
    char *s = m->strings;
    memcpy(s, m->raw, p->len);
    memcpy(s + p->len, strings_tail, sizeof(strings_tail));
    reserve_headers(m, p->npairs);
    for (size_t i = 0; i < p->npairs; i++) {
        const pair *pr = &p->pairs[i];
        ami_header *h = &m->headers[i];
        size_t key = pr->key == KEY_EMPTY ? p->len : pr->key == KEY_OUTPUT ? p->len + 1 : pr->key;
        h->key = s + key;
        h->value = s + pr->val;
        h->key[pr->klen] = '\0';
        h->value[pr->vlen] = '\0';
        h->key_len = has_nul ? (uint32_t)strlen(h->key) : (uint32_t)pr->klen;
        h->value_len = has_nul ? (uint32_t)strlen(h->value) : (uint32_t)pr->vlen;
        index_header(m, i);   /* in the same pass */
    }
    m->count = m->indexed = p->npairs;
    m->raw[p->len] = '\0';
    m->raw_len = p->len;
    m->strings_len = slen;
    m->noncanonical = p->noncanonical || has_nul;
    p->stats.messages++;
    if (p->cb.on_message) p->cb.on_message(p->ctx, m);
    if (!m->raw) p->raw_cap = 0;
    if (!m->strings) p->scap = 0;
    /* Only ami_msg_add adds headers outside the strings block. */
    if (m->count != p->npairs) free_added_headers(m);
    m->count = 0;
    index_clear(m);
    m->raw_len = m->strings_len = 0;
    msg_clear(p);
}

/* Report what was read of a refused message (already in msg.raw, bounded)
 * and skip the rest of it. */
static void refuse(ami_parser *p, size_t consumed, enum skip_line where) {
    if (p->refuse_err == AMI_ERR_LINE_TOO_LONG) p->stats.errors_line_too_long++;
    else p->stats.errors_too_many_headers++;
    p->stats.bytes_refused += consumed;
    if (p->cb.on_error) p->cb.on_error(p->ctx, p->refuse_err, p->msg.raw, p->len);
    msg_clear(p);
    p->skipping = 1;
    p->skip_line = where;
}

/* ------------------------------------------------------------------------ */
/* Lines                                                                    */

static int looks_like_banner(const char *line, size_t len) {
    return len >= BANNER_PREFIX_LEN && memcmp(line, BANNER_PREFIX, BANNER_PREFIX_LEN) == 0 &&
           !memchr(line, ':', len);
}

static void banner(ami_parser *p, const char *line, size_t len) {
    /* The strings block is unused between messages: borrow it to hand out
     * a NUL-terminated copy without a malloc. */
    strings_reserve(p, len + 1);
    memcpy(p->msg.strings, line, len);
    p->msg.strings[len] = '\0';
    if (p->cb.on_banner) p->cb.on_banner(p->ctx, p->msg.strings);
}

static int is_follows(const char *k, size_t klen, const char *v, size_t vlen) {
    return klen == 8 && strncasecmp(k, "Response", 8) == 0 && vlen == 7 &&
           strncasecmp(v, "Follows", 7) == 0;
}

/* Each line comes with its offset in the message's raw bytes (at). */
static int no_colon_line(ami_parser *p, const char *line, size_t len, size_t at) {
    p->noncanonical = 1;
    p->stats.lines_without_colon++;
    if (p->cb.on_error) p->cb.on_error(p->ctx, AMI_ERR_NO_COLON, line, len);
    return add_pair(p, KEY_EMPTY, 0, at, len);
}

/* colon: the line's first ':', or NULL (the line scan found it). */
static inline int header_line(ami_parser *p, const char *line, size_t len, size_t at, const char *colon) {
    if (!colon) return no_colon_line(p, line, len, at);
    const char *v = colon + 1, *end = line + len;
    if (v < end && *v == ' ') v++;
    else p->noncanonical = 1;
    /* A NUL would cut the C strings short of raw: deliver() looks for one
     * in the whole message at once. */
    size_t klen = (size_t)(colon - line), vlen = (size_t)(end - v);
    if (p->npairs == 0 && !p->actions && is_follows(line, klen, v, vlen)) p->follows = 1;
    return add_pair(p, at, klen, at + (size_t)(v - line), vlen);
}

static int output_line(ami_parser *p, size_t len, size_t at) {
    p->noncanonical = 1;
    p->output_started = 1;
    return add_pair(p, KEY_OUTPUT, 6, at, len);
}

/* A non-blank line of a "Response: Follows" message. */
static int follows_line(ami_parser *p, const char *line, size_t len, size_t at, const char *colon) {
    if (len >= END_COMMAND_LEN &&
        memcmp(line + len - END_COMMAND_LEN, END_COMMAND, END_COMMAND_LEN) == 0) {
        p->end_seen = 1;
        p->noncanonical = 1;
        /* Output without a final newline runs into the marker. */
        if (len > END_COMMAND_LEN) return output_line(p, len - END_COMMAND_LEN, at);
        return LINE_PART;
    }
    p->end_seen = 0;
    if (!p->output_started && colon) return header_line(p, line, len, at, colon);
    return output_line(p, len, at);
}

static int blank_line(ami_parser *p, size_t n, int crlf, size_t at) {
    if (!p->in_msg) {
        p->stats.bytes_stray += n;
        return LINE_DROP;
    }
    /* CLI output may contain blank lines; only the marker ends it. */
    if (p->follows && !p->end_seen) return output_line(p, 0, at);
    if (!crlf) p->noncanonical = 1;
    return LINE_END;
}

/* One complete line of n bytes, '\n' included, at offset at of raw; colon
 * is its first ':' or NULL. */
static inline int take_line(ami_parser *p, const char *line, size_t n, size_t at, const char *colon) {
    size_t len = n - 1;
    int crlf = len > 0 && line[len - 1] == '\r';
    if (crlf) len--;
    if (len > p->max_line) {
        p->refuse_err = AMI_ERR_LINE_TOO_LONG;
        return LINE_REFUSED;
    }
    if (len == 0) return blank_line(p, n, crlf, at);
    if (p->want_banner && !p->in_msg) {
        p->want_banner = 0;
        if (looks_like_banner(line, len)) {
            banner(p, line, len);
            return LINE_DROP;
        }
    }
    p->want_banner = 0;
    p->in_msg = 1;
    if (!crlf) p->noncanonical = 1;
    if (p->follows) return follows_line(p, line, len, at, colon);
    return header_line(p, line, len, at, colon);
}

/* ------------------------------------------------------------------------ */
/* Feeding                                                                  */

/* Drop a refused message's remaining bytes up to its blank line. */
static const char *skip(ami_parser *p, const char *s, const char *end) {
    const char *start = s;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *stop = nl ? nl : end;
        if (stop > s) {
            int cr_only = stop - s == 1 && *s == '\r';
            p->skip_line = (p->skip_line == SKIP_EMPTY && cr_only) ? SKIP_CR : SKIP_TEXT;
        }
        if (!nl) {
            s = end;
            break;
        }
        s = nl + 1;
        int blank = p->skip_line != SKIP_TEXT;
        p->skip_line = SKIP_EMPTY;
        if (blank) {
            p->skipping = 0;
            break;
        }
    }
    p->stats.bytes_refused += (uint64_t)(s - start);
    return s;
}

/* The longest prefix of an over-long line worth reporting. */
static size_t line_cut(const ami_parser *p) {
    return p->max_line + 2;
}

/* Complete the partial line kept in msg.raw from a previous chunk. */
static const char *finish_line(ami_parser *p, const char *s, const char *end) {
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    const char *stop = nl ? nl + 1 : end;
    size_t have = p->len - p->line_start, add = (size_t)(stop - s);
    size_t before = p->len;
    /* With its '\n' a line may take max_line + 2 bytes; without, one less. */
    size_t limit = nl ? line_cut(p) : line_cut(p) - 1;
    if (have + add > limit) {
        /* Too long whatever comes next: report a bounded prefix. */
        size_t keep = line_cut(p) > have ? line_cut(p) - have : 0;
        raw_append(p, s, keep < add ? keep : add);
        p->refuse_err = AMI_ERR_LINE_TOO_LONG;
        refuse(p, before + add, nl ? SKIP_EMPTY : SKIP_TEXT);
        return stop;
    }
    raw_append(p, s, add);
    if (!nl) return end;
    const char *line = p->msg.raw + p->line_start;
    size_t n = p->len - p->line_start;
    int r = take_line(p, line, n, p->line_start, memchr(line, ':', n));
    if (r == LINE_PART) p->line_start = p->len;
    else if (r == LINE_END) deliver(p);
    else if (r == LINE_DROP) msg_clear(p);
    else refuse(p, p->len, SKIP_EMPTY);
    return stop;
}

/* The first '\n' in [s, end) and, in *colon, the first ':' before it (or
 * NULL): one pass finds both, where two memchr calls a line were the
 * parser's largest cost (lines average 26 bytes, too short for memchr's
 * wide loops to pay for its call). */
#ifdef __SSE2__
static const char *line_end(const char *s, const char *end, const char **colon) {
    const __m128i nl = _mm_set1_epi8('\n'), co = _mm_set1_epi8(':');
    *colon = NULL;
    for (; end - s >= 16; s += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)s);
        unsigned nls = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, nl));
        if (!*colon) {
            unsigned cos = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, co));
            /* Only colons before the block's first '\n' count. */
            if (nls) cos &= (nls & -nls) - 1;
            if (cos) *colon = s + __builtin_ctz(cos);
        }
        if (nls) return s + __builtin_ctz(nls);
    }
    for (; s < end; s++) {
        if (*s == '\n') return s;
        if (*s == ':' && !*colon) *colon = s;
    }
    return NULL;
}
#else
static const char *line_end(const char *s, const char *end, const char **colon) {
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    *colon = nl ? memchr(s, ':', (size_t)(nl - s)) : NULL;
    return nl;
}
#endif

/* Parse the complete lines lying in this chunk without copying them line by
 * line: bytes of the current message are copied to msg.raw once, when it
 * ends or the chunk does. */
static const char *take_lines(ami_parser *p, const char *s, const char *end) {
    const char *mstart = s; /* first byte of the message not yet in msg.raw */
    const char *nl, *colon;
    while ((nl = line_end(s, end, &colon)) != NULL) {
        size_t n = (size_t)(nl + 1 - s);
        int r = take_line(p, s, n, p->len + (size_t)(s - mstart), colon);
        if (r == LINE_REFUSED) {
            size_t before = p->len, lead = (size_t)(s - mstart);
            raw_append(p, mstart, lead + (n < line_cut(p) ? n : line_cut(p)));
            refuse(p, before + lead + n, SKIP_EMPTY);
            return nl + 1;
        }
        s = nl + 1;
        if (r == LINE_DROP) {
            mstart = s;
        } else if (r == LINE_END) {
            raw_append(p, mstart, (size_t)(s - mstart));
            deliver(p);
            mstart = s;
        }
    }
    /* A partial line remains: keep it unless it is already too long. */
    size_t partial = (size_t)(end - s), before = p->len;
    if (partial > line_cut(p) - 1) {
        raw_append(p, mstart, (size_t)(s - mstart) + line_cut(p));
        p->refuse_err = AMI_ERR_LINE_TOO_LONG;
        refuse(p, before + (size_t)(end - mstart), SKIP_TEXT);
        return end;
    }
    raw_append(p, mstart, (size_t)(end - mstart));
    p->line_start = p->len - partial;
    return end;
}

void ami_parser_feed(ami_parser *p, const char *buf, size_t len) {
    if (!len) return;
    const char *s = buf, *end = buf + len;
    p->stats.bytes += len;
    while (s < end) {
        if (p->skipping) s = skip(p, s, end);
        else if (p->line_start < p->len) s = finish_line(p, s, end);
        else s = take_lines(p, s, end);
    }
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */

ami_parser *ami_parser_new(const ami_parser_callbacks *cb, void *ctx) {
    ami_parser *p = xcalloc(1, sizeof(*p));
    if (cb) p->cb = *cb;
    p->ctx = ctx;
    p->max_line = AMI_DEFAULT_MAX_LINE;
    p->max_headers = AMI_DEFAULT_MAX_HEADERS;
    p->want_banner = 1;
    return p;
}

void ami_parser_set_limits(ami_parser *p, size_t max_line, size_t max_headers) {
    /* Zero keeps the current limit; the cap keeps line_cut() from wrapping. */
    if (max_line) p->max_line = max_line < SIZE_MAX / 4 ? max_line : SIZE_MAX / 4;
    if (max_headers) p->max_headers = max_headers;
}

void ami_parser_read_actions(ami_parser *p) {
    p->actions = 1;
    p->want_banner = 0;
}

void ami_parser_reset(ami_parser *p) {
    msg_clear(p);
    p->skipping = 0;
    p->skip_line = SKIP_EMPTY;
    p->want_banner = !p->actions;
}

const ami_parser_stats *ami_parser_get_stats(const ami_parser *p) {
    return &p->stats;
}

void ami_parser_free(ami_parser *p) {
    if (!p) return;
    p->msg.count = 0; /* headers point into strings: nothing to free one by one */
    ami_msg_free(&p->msg);
    free(p->pairs);
    free(p);
}
