/* test_ami_parser.c -- unit tests of the AMI parser (lib/ami.c).
 *
 * Every framing rule is checked with concrete messages, fed whole, a byte at
 * a time and in random chunks, and against the real Asterisk 22 captures in
 * tests/fixtures/ami-samples (their .events.jsonl record what each message
 * must parse to and where it sits in the stream). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <glob.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ami.h"

#ifndef FIXTURES
#define FIXTURES "tests/fixtures"
#endif
#define SAMPLES FIXTURES "/ami-samples"

/* ------------------------------------------------------------------------ */
/* Collecting what the parser delivers                                      */

typedef struct err_rec {
    ami_error err;
    char *raw;
    size_t len;
} err_rec;

typedef struct collector {
    ami_msg *msgs;
    size_t n, cap;
    char *banners[8];
    size_t nbanners;
    err_rec errs[64];
    size_t nerrs;
} collector;

static void on_banner(void *ctx, const char *b) {
    collector *c = ctx;
    assert_true(c->nbanners < 8);
    c->banners[c->nbanners++] = strdup(b);
}

/* Keep odd messages by moving the struct out (the documented way) and even
 * ones by copying, so both the parser's reuse and hand-over paths run. */
static void on_message(void *ctx, ami_msg *m) {
    collector *c = ctx;
    /* The lengths the agent writes the headers with, NULs included. */
    for (size_t i = 0; i < m->count; i++) {
        assert_int_equal(m->headers[i].key_len, strlen(m->headers[i].key));
        assert_int_equal(m->headers[i].value_len, strlen(m->headers[i].value));
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->msgs = realloc(c->msgs, c->cap * sizeof(*c->msgs));
    }
    ami_msg *dst = &c->msgs[c->n];
    if (c->n % 2) {
        *dst = *m;
        ami_msg_init(m);
    } else {
        ami_msg_init(dst);
        for (size_t i = 0; i < m->count; i++)
            assert_int_equal(ami_msg_add(dst, m->headers[i].key, strlen(m->headers[i].key),
                                         m->headers[i].value, strlen(m->headers[i].value)),
                             0);
        dst->raw = malloc(m->raw_len + 1);
        memcpy(dst->raw, m->raw, m->raw_len + 1);
        dst->raw_len = m->raw_len;
        dst->noncanonical = m->noncanonical;
        for (size_t i = 0; i < m->count; i++)
            assert_int_equal(dst->headers[i].value_len, strlen(dst->headers[i].value));
        /* A consumer may add to the parser's message; the parser frees it. */
        ami_msg_add(m, "X-Added", 7, "1", 1);
    }
    assert_int_equal(m->raw ? m->raw[m->raw_len] : 0, 0);
    c->n++;
}

static void on_error(void *ctx, ami_error err, const char *raw, size_t len) {
    collector *c = ctx;
    /* Junk yields many errors: count them all, keep the first 64. */
    if (c->nerrs >= 64) {
        c->nerrs++;
        return;
    }
    c->errs[c->nerrs].err = err;
    c->errs[c->nerrs].raw = malloc(len + 1);
    memcpy(c->errs[c->nerrs].raw, raw, len);
    c->errs[c->nerrs].raw[len] = '\0';
    c->errs[c->nerrs].len = len;
    c->nerrs++;
}

static const ami_parser_callbacks callbacks = {on_banner, on_message, on_error};

static void collector_free(collector *c) {
    for (size_t i = 0; i < c->n; i++) ami_msg_free(&c->msgs[i]);
    free(c->msgs);
    for (size_t i = 0; i < c->nbanners; i++) free(c->banners[i]);
    for (size_t i = 0; i < c->nerrs && i < 64; i++) free(c->errs[i].raw);
    memset(c, 0, sizeof(*c));
}

/* Deterministic xorshift so a failure reproduces. */
static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

enum chunking { WHOLE, BYTES, RANDOM };

static void feed(ami_parser *p, const char *data, size_t len, enum chunking how) {
    size_t off = 0;
    while (off < len) {
        size_t n = len - off;
        if (how == BYTES) n = 1;
        else if (how == RANDOM) {
            size_t want = rnd() % 4 == 0 ? 1 + rnd() % 8 : 1 + rnd() % 3000;
            if (want < n) n = want;
        }
        ami_parser_feed(p, data + off, n);
        off += n;
    }
}

/* Parse data into c with the given limits (0 = defaults); returns stats. */
static ami_parser_stats parse(collector *c, const char *data, size_t len, enum chunking how,
                              size_t max_line, size_t max_headers) {
    memset(c, 0, sizeof(*c));
    ami_parser *p = ami_parser_new(&callbacks, c);
    assert_non_null(p);
    ami_parser_set_limits(p, max_line, max_headers);
    feed(p, data, len, how);
    ami_parser_stats st = *ami_parser_get_stats(p);
    ami_parser_free(p);
    return st;
}

static ami_parser_stats parse_str(collector *c, const char *s, enum chunking how) {
    return parse(c, s, strlen(s), how, 0, 0);
}

static void assert_header(const ami_msg *m, size_t i, const char *k, const char *v) {
    assert_true(i < m->count);
    assert_string_equal(m->headers[i].key, k);
    assert_string_equal(m->headers[i].value, v);
}

static void assert_raw(const ami_msg *m, const char *raw) {
    assert_int_equal(m->raw_len, strlen(raw));
    assert_memory_equal(m->raw, raw, m->raw_len);
}

static void assert_same_msgs(const collector *a, const collector *b) {
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->nbanners, b->nbanners);
    for (size_t i = 0; i < a->nbanners; i++) assert_string_equal(a->banners[i], b->banners[i]);
    for (size_t i = 0; i < a->n; i++) {
        const ami_msg *x = &a->msgs[i], *y = &b->msgs[i];
        assert_int_equal(x->count, y->count);
        for (size_t j = 0; j < x->count; j++)
            assert_header(y, j, x->headers[j].key, x->headers[j].value);
        assert_int_equal(x->raw_len, y->raw_len);
        assert_memory_equal(x->raw, y->raw, x->raw_len);
        assert_int_equal(x->noncanonical, y->noncanonical);
    }
    assert_int_equal(a->nerrs, b->nerrs);
    for (size_t i = 0; i < a->nerrs && i < 64; i++) assert_int_equal(a->errs[i].err, b->errs[i].err);
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    assert_int_equal(got, (size_t)n);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

#define BANNER "Asterisk Call Manager/11.0.0\r\n"

static const char sample[] =
    BANNER
    "Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n"
    "Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 4\r\nStatus: Fully Booted\r\n\r\n"
    "Event: Newchannel\r\nPrivilege: call,all\r\nChannel: Local/800@from-trunk-00000000;1\r\n"
    "CallerIDName: \r\nChanVariable: CC_CAMPAIGN=\r\nChanVariable: CC_TICKET=42\r\n\r\n"
    "Event: OriginateResponse\r\nResponse: Success\r\n"
    "ChanVariable(Local/800@from-trunk-00000000;1): CC_TICKET=a:b\r\n\r\n";

/* ------------------------------------------------------------------------ */
/* Framing                                                                  */

static void test_basic_messages(void **state) {
    (void)state;
    collector c;
    ami_parser_stats st = parse_str(&c, sample, WHOLE);
    assert_int_equal(c.nbanners, 1);
    assert_string_equal(c.banners[0], "Asterisk Call Manager/11.0.0");
    assert_int_equal(c.n, 4);
    assert_int_equal(st.messages, 4);
    assert_int_equal(st.bytes, strlen(sample));
    assert_int_equal(c.nerrs, 0);

    assert_int_equal(c.msgs[0].count, 3);
    assert_header(&c.msgs[0], 2, "Message", "Authentication accepted");
    assert_raw(&c.msgs[0], "Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n");
    assert_int_equal(ami_msg_kind(&c.msgs[0]), AMI_RESPONSE);
    assert_int_equal(ami_msg_kind(&c.msgs[1]), AMI_EVENT);

    const ami_msg *nc = &c.msgs[2];
    assert_int_equal(nc->count, 6);
    assert_header(nc, 3, "CallerIDName", "");
    assert_header(nc, 4, "ChanVariable", "CC_CAMPAIGN=");
    assert_header(nc, 5, "ChanVariable", "CC_TICKET=42");
    assert_string_equal(ami_get(nc, "chanvariable"), "CC_CAMPAIGN=");
    assert_string_equal(ami_get(nc, "CHANNEL"), "Local/800@from-trunk-00000000;1");
    assert_null(ami_get(nc, "Nope"));
    assert_string_equal(ami_get_or(nc, "Nope", "dflt"), "dflt");

    /* Event is checked before Response; only the first colon splits. */
    const ami_msg *orr = &c.msgs[3];
    assert_int_equal(ami_msg_kind(orr), AMI_EVENT);
    assert_header(orr, 2, "ChanVariable(Local/800@from-trunk-00000000;1)", "CC_TICKET=a:b");
    for (size_t i = 0; i < c.n; i++) assert_int_equal(c.msgs[i].noncanonical, 0);
    collector_free(&c);
}

/* Lookups go through the index built once per message: case-insensitive,
 * the first of repeated keys, headers past the indexed ones still found,
 * and nothing of an earlier message seen through the reused buffers. */
static void test_lookup_index(void **state) {
    (void)state;
    char *in = malloc(16384);
    size_t n = (size_t)sprintf(in, BANNER "Event: Many\r\n");
    for (int i = 0; i < 100; i++) n += (size_t)sprintf(in + n, "Key%d: v%d\r\n", i, i);
    n += (size_t)sprintf(in + n, "key7: second\r\nKEY90: second\r\n\r\n"
                                 "Event: First\r\nOnly1: x\r\n\r\nEvent: Second\r\nOther: y\r\n\r\n");
    collector c;
    parse_str(&c, in, WHOLE);
    assert_int_equal(c.n, 3);
    char key[16], want[16];
    for (int i = 0; i < 100; i++) {
        sprintf(key, "kEy%d", i);
        sprintf(want, "v%d", i);
        assert_string_equal(ami_get(&c.msgs[0], key), want);
    }
    assert_string_equal(ami_get(&c.msgs[0], "KEY7"), "v7");
    assert_string_equal(ami_get(&c.msgs[0], "key90"), "v90");
    assert_null(ami_get(&c.msgs[0], "Key100"));
    assert_string_equal(ami_get(&c.msgs[2], "other"), "y");
    assert_null(ami_get(&c.msgs[2], "Only1"));
    assert_string_equal(ami_get(&c.msgs[1], "ONLY1"), "x");
    assert_null(ami_get(&c.msgs[1], "Other"));

    ami_msg built;
    ami_msg_init(&built);
    assert_null(ami_get(&built, "Event"));
    ami_msg_add(&built, "Action", 6, "Ping", 4);
    ami_msg_add(&built, "action", 6, "Later", 5);
    assert_string_equal(ami_get(&built, "ACTION"), "Ping");
    ami_msg_free(&built);
    collector_free(&c);
    free(in);
}

static void test_byte_by_byte_and_random(void **state) {
    (void)state;
    collector whole, other;
    parse_str(&whole, sample, WHOLE);
    parse_str(&other, sample, BYTES);
    assert_same_msgs(&whole, &other);
    collector_free(&other);
    for (int i = 0; i < 50; i++) {
        parse_str(&other, sample, RANDOM);
        assert_same_msgs(&whole, &other);
        collector_free(&other);
    }
    collector_free(&whole);
}

/* Two chunks, split at every byte position. */
static void test_split_everywhere(void **state) {
    (void)state;
    collector whole, split;
    size_t len = strlen(sample);
    parse_str(&whole, sample, WHOLE);
    for (size_t cut = 0; cut <= len; cut++) {
        memset(&split, 0, sizeof(split));
        ami_parser *p = ami_parser_new(&callbacks, &split);
        ami_parser_feed(p, sample, cut);
        ami_parser_feed(p, sample + cut, len - cut);
        ami_parser_free(p);
        assert_same_msgs(&whole, &split);
        collector_free(&split);
    }
    collector_free(&whole);
}

static void test_bare_lf(void **state) {
    (void)state;
    enum chunking hows[] = {WHOLE, BYTES};
    for (int h = 0; h < 2; h++) {
        collector c;
        parse_str(&c, "Asterisk Call Manager/2.10.4\nEvent: A\nKey: v\n\nEvent: B\r\n\r\n", hows[h]);
        assert_int_equal(c.nbanners, 1);
        assert_string_equal(c.banners[0], "Asterisk Call Manager/2.10.4");
        assert_int_equal(c.n, 2);
        assert_int_equal(c.msgs[0].count, 2);
        assert_header(&c.msgs[0], 1, "Key", "v");
        assert_raw(&c.msgs[0], "Event: A\nKey: v\n\n");
        assert_int_equal(c.msgs[0].noncanonical, 1);
        assert_int_equal(c.msgs[1].noncanonical, 0);
        collector_free(&c);
    }
}

static void test_crlf_lf(void **state) {
    (void)state;
    collector c;
    parse_str(&c, BANNER "Event: A\r\nKey: v\r\n\nEvent: B\r\n\r\n", BYTES);
    assert_int_equal(c.n, 2);
    assert_header(&c.msgs[0], 1, "Key", "v");
    assert_raw(&c.msgs[0], "Event: A\r\nKey: v\r\n\n");
    assert_int_equal(c.msgs[0].noncanonical, 1);
    assert_header(&c.msgs[1], 0, "Event", "B");
    collector_free(&c);
}

static void test_stray_blank_lines(void **state) {
    (void)state;
    const char *in = "\r\n" BANNER "\r\n\nEvent: A\r\n\r\n\r\n\n\r\nEvent: B\r\n\r\n\r\n";
    enum chunking hows[] = {WHOLE, BYTES, RANDOM};
    for (int h = 0; h < 3; h++) {
        collector c;
        ami_parser_stats st = parse_str(&c, in, hows[h]);
        assert_int_equal(c.nbanners, 1);
        assert_int_equal(c.n, 2);
        assert_raw(&c.msgs[0], "Event: A\r\n\r\n");
        assert_raw(&c.msgs[1], "Event: B\r\n\r\n");
        assert_int_equal(c.msgs[0].noncanonical, 0);
        assert_int_equal(st.bytes_stray, 2 + 3 + 5 + 2);
        assert_int_equal(st.bytes, strlen(BANNER) + 24 + st.bytes_stray);
        collector_free(&c);
    }
}

static void test_missing_space_and_empty_values(void **state) {
    (void)state;
    collector c;
    parse_str(&c, BANNER "Event:A\r\nEmpty:\r\nTrailing: \r\nTwo:  x \r\n\r\n"
                         "Event: B\r\nEmpty: \r\n\r\n", WHOLE);
    assert_int_equal(c.n, 2);
    assert_header(&c.msgs[0], 0, "Event", "A");
    assert_header(&c.msgs[0], 1, "Empty", "");
    assert_header(&c.msgs[0], 2, "Trailing", "");
    assert_header(&c.msgs[0], 3, "Two", " x ");
    assert_int_equal(c.msgs[0].noncanonical, 1);
    assert_header(&c.msgs[1], 1, "Empty", "");
    assert_int_equal(c.msgs[1].noncanonical, 0);
    collector_free(&c);
}

static void test_repeated_keys_and_colons(void **state) {
    (void)state;
    collector c;
    parse_str(&c, BANNER "Event: VarSet\r\nVariable: A=1\r\nvariable: B=2\r\nVariable: C=3\r\n"
                         "Value: http://x:8080/a;b\r\nKey with space: v\r\n: nokey\r\n\r\n", BYTES);
    const ami_msg *m = &c.msgs[0];
    assert_int_equal(m->count, 7);
    assert_header(m, 1, "Variable", "A=1");
    assert_header(m, 2, "variable", "B=2");
    assert_header(m, 3, "Variable", "C=3");
    assert_header(m, 4, "Value", "http://x:8080/a;b");
    assert_header(m, 5, "Key with space", "v");
    assert_header(m, 6, "", "nokey");
    assert_string_equal(ami_get(m, "VARIABLE"), "A=1");
    assert_int_equal(m->noncanonical, 0);
    collector_free(&c);
}

static void test_no_colon_line(void **state) {
    (void)state;
    collector c;
    ami_parser_stats st = parse_str(&c, BANNER "Event: A\r\njust text\r\nB: 2\r\n\r\n", WHOLE);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.msgs[0].count, 3);
    assert_header(&c.msgs[0], 1, "", "just text");
    assert_header(&c.msgs[0], 2, "B", "2");
    assert_int_equal(c.msgs[0].noncanonical, 1);
    assert_int_equal(st.lines_without_colon, 1);
    assert_int_equal(c.nerrs, 1);
    assert_int_equal(c.errs[0].err, AMI_ERR_NO_COLON);
    assert_string_equal(c.errs[0].raw, "just text");
    collector_free(&c);
}

/* The line scan looks for the line end and the first colon together, 16
 * bytes at a time: put both, and a colon-less line before a line with a
 * colon, at every offset of a block, fed whole (one scan of the chunk) and
 * byte by byte (the partial-line path). */
static void test_colon_and_line_end_everywhere(void **state) {
    (void)state;
    for (size_t pad = 0; pad < 17; pad++)
        for (size_t bare = 1; bare < 20; bare++)
            for (size_t klen = 1; klen < 20; klen++) {
                char msg[256], padv[32], barev[32], key[32];
                memset(padv, 'p', pad);
                padv[pad] = '\0';
                memset(barev, 'b', bare);
                barev[bare] = '\0';
                memset(key, 'k', klen);
                key[klen] = '\0';
                snprintf(msg, sizeof(msg), BANNER "Event: %s\r\n%s\r\n%s: v:w\r\n\r\n", padv, barev, key);
                for (enum chunking how = WHOLE; how <= BYTES; how++) {
                    collector c;
                    parse_str(&c, msg, how);
                    assert_int_equal(c.n, 1);
                    assert_int_equal(c.msgs[0].count, 3);
                    assert_header(&c.msgs[0], 0, "Event", padv);
                    assert_header(&c.msgs[0], 1, "", barev);
                    assert_header(&c.msgs[0], 2, key, "v:w");
                    collector_free(&c);
                }
            }
}

static void test_response_follows(void **state) {
    (void)state;
    const char *in = BANNER
        "Response: Follows\r\nPrivilege: Command\r\nActionID: 7\r\n"
        "\n"
        "Channel              Location\n"
        "SIP/100-0001         s@default:1\n"
        "\n"
        "1 active channel\n"
        "--END COMMAND--\r\n\r\n"
        "Response: Follows\r\nPrivilege: Command\r\n"
        "no newline at end--END COMMAND--\r\n\r\n"
        "Event: After\r\n\r\n";
    enum chunking hows[] = {WHOLE, BYTES, RANDOM};
    for (int h = 0; h < 3; h++) {
        collector c;
        ami_parser_stats st = parse_str(&c, in, hows[h]);
        assert_int_equal(c.n, 3);
        const ami_msg *m = &c.msgs[0];
        assert_int_equal(m->count, 8);
        assert_header(m, 0, "Response", "Follows");
        assert_header(m, 2, "ActionID", "7");
        assert_header(m, 3, "Output", "");
        assert_header(m, 4, "Output", "Channel              Location");
        assert_header(m, 5, "Output", "SIP/100-0001         s@default:1");
        assert_header(m, 6, "Output", "");
        assert_header(m, 7, "Output", "1 active channel");
        assert_int_equal(m->noncanonical, 1);
        assert_true(m->raw_len > 30);
        assert_memory_equal(m->raw + m->raw_len - 19, "--END COMMAND--\r\n\r\n", 19);
        assert_int_equal(c.msgs[1].count, 3);
        assert_header(&c.msgs[1], 2, "Output", "no newline at end");
        assert_header(&c.msgs[2], 0, "Event", "After");
        assert_int_equal(st.lines_without_colon, 0);
        collector_free(&c);
    }
}

static void test_output_lines(void **state) {
    (void)state;
    collector c;
    parse_str(&c, BANNER "Response: Success\r\nActionID: 8\r\nMessage: Command output follows\r\n"
                         "Output: Name: x\r\nOutput: \r\nOutput:    Members: \r\n\r\n", RANDOM);
    const ami_msg *m = &c.msgs[0];
    assert_int_equal(m->count, 6);
    assert_header(m, 3, "Output", "Name: x");
    assert_header(m, 4, "Output", "");
    assert_header(m, 5, "Output", "   Members: ");
    assert_int_equal(m->noncanonical, 0);
    collector_free(&c);
}

static void test_event_list(void **state) {
    (void)state;
    collector c;
    parse_str(&c, BANNER
              "Response: Success\r\nActionID: 9\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n"
              "Event: CoreShowChannel\r\nActionID: 9\r\nChannel: Local/a;1\r\n\r\n"
              "Event: CoreShowChannel\r\nActionID: 9\r\nChannel: Local/a;2\r\n\r\n"
              "Event: CoreShowChannelsComplete\r\nActionID: 9\r\nEventList: Complete\r\nListItems: 2\r\n\r\n",
              BYTES);
    assert_int_equal(c.n, 4);
    assert_int_equal(ami_msg_kind(&c.msgs[0]), AMI_RESPONSE);
    assert_string_equal(ami_get(&c.msgs[0], "EventList"), "start");
    assert_string_equal(ami_get(&c.msgs[2], "Channel"), "Local/a;2");
    assert_string_equal(ami_get(&c.msgs[3], "eventlist"), "Complete");
    assert_string_equal(ami_get(&c.msgs[3], "ListItems"), "2");
    for (size_t i = 1; i < 4; i++) {
        assert_int_equal(ami_msg_kind(&c.msgs[i]), AMI_EVENT);
        assert_string_equal(ami_get(&c.msgs[i], "ActionID"), "9");
    }
    collector_free(&c);
}

/* ------------------------------------------------------------------------ */
/* Limits and junk                                                          */

static void test_long_line_refused(void **state) {
    (void)state;
    char in[1024];
    char longv[101];
    memset(longv, 'x', 100);
    longv[100] = '\0';
    snprintf(in, sizeof(in), BANNER "Event: Ok1\r\n\r\nEvent: Big\r\nData: %s\r\nMore: 1\r\n\r\n"
                                    "Event: Ok2\r\n\r\n", longv);
    enum chunking hows[] = {WHOLE, BYTES, RANDOM};
    for (int h = 0; h < 3; h++) {
        collector c;
        ami_parser_stats st = parse(&c, in, strlen(in), hows[h], 64, 0);
        assert_int_equal(c.n, 2);
        assert_string_equal(ami_get(&c.msgs[0], "Event"), "Ok1");
        assert_string_equal(ami_get(&c.msgs[1], "Event"), "Ok2");
        assert_int_equal(st.errors_line_too_long, 1);
        assert_int_equal(st.messages, 2);
        assert_int_equal(c.nerrs, 1);
        assert_int_equal(c.errs[0].err, AMI_ERR_LINE_TOO_LONG);
        /* The refused message's start, the long line cut at max_line + 2. */
        assert_int_equal(c.errs[0].len, strlen("Event: Big\r\n") + 66);
        assert_memory_equal(c.errs[0].raw, "Event: Big\r\nData: xxx", 21);
        assert_int_equal(st.bytes_refused, strlen("Event: Big\r\nData: \r\nMore: 1\r\n\r\n") + 100);
        collector_free(&c);
    }
}

/* Exactly max_line is accepted, one more is not, whatever the line end. */
static void test_line_limit_boundary(void **state) {
    (void)state;
    /* No greeting: with max_line 11 it would be refused itself. */
    const char *ins[] = {"K: 12345678\r\n\r\nK: 123456789\r\n\r\nE: ok\r\n\r\n",
                         "K: 12345678\n\nK: 123456789\n\nE: ok\n\n"};
    for (int i = 0; i < 2; i++) {
        for (int how = WHOLE; how <= BYTES; how++) {
            collector c;
            ami_parser_stats st = parse(&c, ins[i], strlen(ins[i]), how, 11, 0);
            assert_int_equal(c.n, 2);
            assert_string_equal(ami_get(&c.msgs[0], "K"), "12345678");
            assert_string_equal(ami_get(&c.msgs[1], "E"), "ok");
            assert_int_equal(st.errors_line_too_long, 1);
            collector_free(&c);
        }
    }
}

/* A megabyte without a line end: refused early, memory stays bounded. */
static void test_huge_line_bounded(void **state) {
    (void)state;
    size_t big = 1 << 20;
    char *in = malloc(big + 64);
    strcpy(in, "Event: A\r\nHuge: ");
    size_t off = strlen(in);
    memset(in + off, 'y', big);
    off += big;
    off += (size_t)sprintf(in + off, "\r\n\r\nEvent: B\r\n\r\n");
    for (int how = WHOLE; how <= RANDOM; how++) {
        collector c;
        ami_parser_stats st = parse(&c, in, off, how, 0, 0);
        assert_int_equal(c.n, 1);
        assert_string_equal(ami_get(&c.msgs[0], "Event"), "B");
        assert_int_equal(st.errors_line_too_long, 1);
        assert_int_equal(c.errs[0].len, strlen("Event: A\r\n") + AMI_DEFAULT_MAX_LINE + 2);
        assert_int_equal(st.bytes_refused + c.msgs[0].raw_len, off);
        collector_free(&c);
    }
    free(in);
}

static void test_too_many_headers(void **state) {
    (void)state;
    const char *in = BANNER "Event: A\r\nB: 1\r\nC: 2\r\n\r\n"
                            "Event: Many\r\nB: 1\r\nC: 2\r\nD: 3\r\nE: 4\r\n\r\n"
                            "Event: Z\r\n\r\n";
    for (int how = WHOLE; how <= RANDOM; how++) {
        collector c;
        ami_parser_stats st = parse(&c, in, strlen(in), how, 0, 3);
        assert_int_equal(c.n, 2);
        assert_string_equal(ami_get(&c.msgs[0], "Event"), "A");
        assert_string_equal(ami_get(&c.msgs[1], "Event"), "Z");
        assert_int_equal(st.errors_too_many_headers, 1);
        assert_int_equal(c.nerrs, 1);
        assert_int_equal(c.errs[0].err, AMI_ERR_TOO_MANY_HEADERS);
        assert_string_equal(c.errs[0].raw, "Event: Many\r\nB: 1\r\nC: 2\r\nD: 3\r\n");
        assert_int_equal(st.bytes_refused, strlen("Event: Many\r\nB: 1\r\nC: 2\r\nD: 3\r\nE: 4\r\n\r\n"));
        collector_free(&c);
    }
}

/* The NUL check runs once over each delivered message, not per line: a NUL
 * in any header line (key or value, first or later, split by any chunking)
 * still marks that message, and only that one, noncanonical. */
static void test_nul_in_later_header(void **state) {
    (void)state;
    static const char in[] = BANNER "Event: A\r\nKey: v\0w\r\n\r\nEvent: B\r\nK\0ey:x\r\n\r\n"
                                    "Event: C\r\nKey: v\r\n\r\n";
    enum chunking hows[] = {WHOLE, BYTES, RANDOM};
    for (int h = 0; h < 3; h++) {
        collector c;
        parse(&c, in, sizeof(in) - 1, hows[h], 0, 0);
        assert_int_equal(c.n, 3);
        assert_header(&c.msgs[0], 1, "Key", "v");
        assert_int_equal(c.msgs[0].raw_len, 22);
        assert_int_equal(c.msgs[0].noncanonical, 1);
        assert_header(&c.msgs[1], 1, "K", "x");
        assert_int_equal(c.msgs[1].noncanonical, 1);
        assert_header(&c.msgs[2], 1, "Key", "v");
        assert_int_equal(c.msgs[2].noncanonical, 0);
        collector_free(&c);
    }
}

static void test_binary_junk(void **state) {
    (void)state;
    /* NUL and high bytes are data; NUL cuts the C string, so noncanonical. */
    static const char in[] = BANNER "Event: A\0B\r\n\xff\xfe: \x01x\r\n\r\nEvent: C\r\n\r\n";
    collector c;
    parse(&c, in, sizeof(in) - 1, BYTES, 0, 0);
    assert_int_equal(c.n, 2);
    assert_header(&c.msgs[0], 0, "Event", "A");
    assert_header(&c.msgs[0], 1, "\xff\xfe", "\x01x");
    assert_int_equal(c.msgs[0].raw_len, 22);
    assert_int_equal(c.msgs[0].noncanonical, 1);
    assert_header(&c.msgs[1], 0, "Event", "C");
    collector_free(&c);

    /* Random junk, any chunking: no crash, and a blank line resyncs. */
    for (int round = 0; round < 200; round++) {
        size_t n = 1 + rnd() % 5000, max_line = 9 + rnd() % 300;
        char *junk = malloc(n + 64);
        for (size_t i = 0; i < n; i++) {
            uint64_t r = rnd() % 16;
            junk[i] = r == 0 ? '\n' : r == 1 ? '\r' : r == 2 ? ':' : r == 3 ? '\0' : (char)rnd();
        }
        memcpy(junk + n, "\r\n\r\nEvent: Ok\r\n\r\n", 17);
        ami_parser_stats st = parse(&c, junk, n + 17, RANDOM, max_line, 1 + rnd() % 50);
        assert_true(c.n >= 1);
        assert_string_equal(ami_get(&c.msgs[c.n - 1], "Event"), "Ok");
        assert_int_equal(c.msgs[c.n - 1].count, 1);
        size_t sum = st.bytes_stray + st.bytes_refused;
        for (size_t i = 0; i < c.n; i++) sum += c.msgs[i].raw_len;
        /* Every byte is accounted for: the stream ends with a blank line. */
        assert_int_equal(c.nbanners, 0);
        assert_int_equal(sum, n + 17);
        assert_int_equal(st.bytes, n + 17);
        collector_free(&c);
        free(junk);
    }
}

/* ------------------------------------------------------------------------ */
/* Banner and reset                                                         */

static void test_no_banner(void **state) {
    (void)state;
    collector c;
    parse_str(&c, "Event: A\r\n\r\nAsterisk Call Manager/1.1\r\n\r\n", WHOLE);
    assert_int_equal(c.nbanners, 0);
    assert_int_equal(c.n, 2);
    assert_header(&c.msgs[0], 0, "Event", "A");
    /* Only the first line of a connection can be the greeting. */
    assert_header(&c.msgs[1], 0, "", "Asterisk Call Manager/1.1");
    collector_free(&c);
}

/* A client's actions (what amisim reads): the first line is a header even
 * when it reads like a greeting, and "Response: Follows" does not turn the
 * lines after it into CLI output, also after a reset. */
static void test_read_actions(void **state) {
    (void)state;
    const char *in = "Asterisk Call Manager/11.0.0\r\nAction: Ping\r\n\r\n"
                     "Response: Follows\r\nAction: Login\r\n\r\n"
                     "Action: Logoff\r\n\r\n";
    enum chunking hows[] = {WHOLE, BYTES, RANDOM};
    for (int h = 0; h < 3; h++) {
        collector c;
        memset(&c, 0, sizeof(c));
        ami_parser *p = ami_parser_new(&callbacks, &c);
        ami_parser_read_actions(p);
        for (int round = 0; round < 2; round++) {
            size_t base = c.n;
            feed(p, in, strlen(in), hows[h]);
            assert_int_equal(c.nbanners, 0);
            assert_int_equal(c.n, base + 3);
            assert_header(&c.msgs[base], 0, "", "Asterisk Call Manager/11.0.0");
            assert_header(&c.msgs[base], 1, "Action", "Ping");
            assert_int_equal(c.msgs[base + 1].count, 2);
            assert_header(&c.msgs[base + 1], 1, "Action", "Login");
            assert_header(&c.msgs[base + 2], 0, "Action", "Logoff");
            ami_parser_reset(p);
        }
        ami_parser_free(p);
        collector_free(&c);
    }
}

static void test_reset(void **state) {
    (void)state;
    collector c;
    memset(&c, 0, sizeof(c));
    ami_parser *p = ami_parser_new(&callbacks, &c);
    const char *first = BANNER "Event: A\r\n\r\nEvent: Cut\r\nHalf: of a mess";
    ami_parser_feed(p, first, strlen(first));
    ami_parser_reset(p);
    const char *second = "Asterisk Call Manager/11.0.0\r\nEvent: FullyBooted\r\nUptime: 0\r\n\r\n";
    ami_parser_feed(p, second, strlen(second));
    assert_int_equal(c.nbanners, 2);
    assert_int_equal(c.n, 2);
    assert_string_equal(ami_get(&c.msgs[1], "Event"), "FullyBooted");
    assert_raw(&c.msgs[1], "Event: FullyBooted\r\nUptime: 0\r\n\r\n");
    assert_int_equal(ami_parser_get_stats(p)->messages, 2);

    /* Reset while skipping a refused message forgets the skip too. */
    ami_parser_set_limits(p, 8, 0);
    const char *third = "Event: waytoolong\r\nX";
    ami_parser_feed(p, third, strlen(third));
    ami_parser_reset(p);
    ami_parser_feed(p, "Event: B\r\n\r\n", 12);
    assert_int_equal(c.n, 3);
    assert_string_equal(ami_get(&c.msgs[2], "Event"), "B");
    ami_parser_free(p);
    collector_free(&c);
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */

static void test_value_is_safe(void **state) {
    (void)state;
    assert_true(ami_value_is_safe(""));
    assert_true(ami_value_is_safe("Local/800@from-trunk;1 =:,()"));
    assert_true(ami_value_is_safe("caf\xc3\xa9"));
    assert_false(ami_value_is_safe("a\rb"));
    assert_false(ami_value_is_safe("a\nAction: Originate"));
    assert_false(ami_value_is_safe("tab\there"));
    assert_false(ami_value_is_safe("del\x7f"));
    assert_false(ami_value_is_safe("\x1b[0m"));
    assert_false(ami_value_is_safe(NULL));
}

static void test_serialize_and_build(void **state) {
    (void)state;
    ami_msg m;
    ami_msg_init(&m);
    assert_int_equal(ami_msg_kind(&m), AMI_OTHER);
    assert_int_equal(ami_msg_add(&m, "Action", 6, "Ping", 4), 0);
    assert_int_equal(ami_msg_add(&m, "ActionIDxx", 8, "", 0), 0);
    assert_int_equal(ami_msg_kind(&m), AMI_OTHER);
    size_t len = 0;
    char *s = ami_msg_serialize(&m, &len);
    assert_string_equal(s, "Action: Ping\r\nActionID: \r\n\r\n");
    assert_int_equal(len, strlen(s));
    free(s);
    ami_msg_add(&m, "Response", 8, "Success", 7);
    assert_int_equal(ami_msg_kind(&m), AMI_RESPONSE);
    ami_msg_free(&m);
    assert_null(m.headers);
    assert_int_equal(m.count, 0);

    /* Canonical input serializes back to raw; noncanonical does not. */
    collector c;
    parse_str(&c, sample, WHOLE);
    for (size_t i = 0; i < c.n; i++) {
        s = ami_msg_serialize(&c.msgs[i], &len);
        assert_int_equal(len, c.msgs[i].raw_len);
        assert_memory_equal(s, c.msgs[i].raw, len);
        free(s);
    }
    collector_free(&c);
    parse_str(&c, BANNER "Event:A\r\n\r\n", WHOLE);
    s = ami_msg_serialize(&c.msgs[0], &len);
    assert_string_equal(s, "Event: A\r\n\r\n");
    assert_int_equal(c.msgs[0].noncanonical, 1);
    free(s);
    collector_free(&c);
}

/* ------------------------------------------------------------------------ */
/* Real captures                                                            */

/* Greeting, raws and stray blank lines must rebuild the file in order. */
static void check_reconstruction(const collector *c, const ami_parser_stats *st, const char *data,
                                 size_t len) {
    size_t pos = 0;
    if (c->nbanners) {
        size_t bl = strlen(c->banners[0]);
        assert_memory_equal(data, c->banners[0], bl);
        pos = bl + (data[bl] == '\r' ? 2 : 1);
    }
    for (size_t i = 0; i < c->n; i++) {
        while (pos < len && (data[pos] == '\n' || (data[pos] == '\r' && data[pos + 1] == '\n')))
            pos += data[pos] == '\n' ? 1 : 2;
        assert_true(pos + c->msgs[i].raw_len <= len);
        assert_memory_equal(data + pos, c->msgs[i].raw, c->msgs[i].raw_len);
        pos += c->msgs[i].raw_len;
    }
    assert_int_equal(pos, len);
    assert_int_equal(st->bytes_refused, 0);
}

static void compare_jsonl(const collector *c, const char *data, size_t len, const char *jpath) {
    FILE *f = fopen(jpath, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0, msg = 0, banners = 0;
    int eof = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t jerr;
        json_t *row = json_loads(line, 0, &jerr);
        assert_non_null(row);
        json_int_t off = json_integer_value(json_object_get(row, "offset"));
        json_t *hdrs = json_object_get(row, "headers"), *banner = json_object_get(row, "banner");
        if (banner) {
            json_int_t blen = json_integer_value(json_object_get(row, "length"));
            assert_true(banners < c->nbanners);
            assert_string_equal(c->banners[banners], json_string_value(banner));
            assert_memory_equal(data + off, c->banners[banners], strlen(c->banners[banners]));
            assert_int_equal((size_t)blen, strlen(c->banners[banners]) + 2);
            banners++;
        } else if (hdrs) {
            assert_true(msg < c->n);
            const ami_msg *m = &c->msgs[msg++];
            assert_int_equal(m->count, json_array_size(hdrs));
            for (size_t i = 0; i < m->count; i++) {
                json_t *kv = json_array_get(hdrs, i);
                assert_string_equal(m->headers[i].key, json_string_value(json_array_get(kv, 0)));
                assert_string_equal(m->headers[i].value, json_string_value(json_array_get(kv, 1)));
            }
            json_int_t mlen = json_integer_value(json_object_get(row, "length"));
            assert_int_equal(m->raw_len, (size_t)mlen);
            assert_true((size_t)(off + mlen) <= len);
            assert_memory_equal(m->raw, data + off, m->raw_len);
        } else if (json_object_get(row, "eof")) {
            assert_int_equal((size_t)off, len);
            eof = 1;
        }
        json_decref(row);
    }
    free(line);
    fclose(f);
    assert_true(eof);
    assert_int_equal(msg, c->n);
    assert_int_equal(banners, c->nbanners);
}

static void test_fixtures(void **state) {
    (void)state;
    glob_t g;
    assert_int_equal(glob(SAMPLES "/*.ami", 0, NULL, &g), 0);
    size_t with_jsonl = 0, reconnect = 0, actions = 0, total_msgs = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *path = g.gl_pathv[i];
        size_t len;
        char *data = read_file(path, &len);
        assert_non_null(data);
        collector c;
        ami_parser_stats st = parse(&c, data, len, RANDOM, 0, 0);
        check_reconstruction(&c, &st, data, len);
        /* Real Asterisk output: canonical, no junk, no refusals. */
        assert_int_equal(c.nerrs, 0);
        assert_int_equal(st.lines_without_colon, 0);
        for (size_t m = 0; m < c.n; m++) assert_int_equal(c.msgs[m].noncanonical, 0);
        assert_true(c.n > 0);
        total_msgs += c.n;
        if (strstr(path, ".actions.")) actions++;
        if (strstr(path, ".reconnect.")) reconnect++;

        char jpath[4096];
        size_t plen = strlen(path);
        snprintf(jpath, sizeof(jpath), "%.*s.events.jsonl", (int)(plen - 4), path);
        FILE *jf = fopen(jpath, "r");
        if (jf) {
            fclose(jf);
            compare_jsonl(&c, data, len, jpath);
            with_jsonl++;
        }
        /* One byte at a time must agree with the random chunking. */
        collector bytes;
        parse(&bytes, data, len, BYTES, 0, 0);
        assert_same_msgs(&c, &bytes);
        collector_free(&bytes);
        collector_free(&c);
        free(data);
    }
    globfree(&g);
    assert_int_equal(with_jsonl, 11);
    assert_true(reconnect >= 2);
    assert_true(actions >= 10);
    assert_true(total_msgs > 1500);
}

/* The one capture with a stray blank line between two responses. */
static void test_fixture_stray_line(void **state) {
    (void)state;
    size_t len;
    char *data = read_file(SAMPLES "/04-queue-member-management.actions.ami", &len);
    assert_non_null(data);
    collector c;
    ami_parser_stats st = parse(&c, data, len, RANDOM, 0, 0);
    assert_int_equal(st.bytes_stray, 2);
    size_t found = 0;
    for (size_t i = 0; i + 1 < c.n; i++) {
        const char *id = ami_get_or(&c.msgs[i], "ActionID", "");
        if (strcmp(id, "04-76") == 0 && ami_msg_kind(&c.msgs[i]) == AMI_RESPONSE) {
            assert_raw(&c.msgs[i], "Response: Success\r\nActionID: 04-76\r\n\r\n");
            assert_string_equal(ami_get(&c.msgs[i + 1], "ActionID"), "04-77");
            found++;
        }
    }
    assert_int_equal(found, 1);
    collector_free(&c);
    free(data);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_messages),
        cmocka_unit_test(test_lookup_index),
        cmocka_unit_test(test_byte_by_byte_and_random),
        cmocka_unit_test(test_split_everywhere),
        cmocka_unit_test(test_bare_lf),
        cmocka_unit_test(test_crlf_lf),
        cmocka_unit_test(test_stray_blank_lines),
        cmocka_unit_test(test_missing_space_and_empty_values),
        cmocka_unit_test(test_repeated_keys_and_colons),
        cmocka_unit_test(test_no_colon_line),
        cmocka_unit_test(test_colon_and_line_end_everywhere),
        cmocka_unit_test(test_response_follows),
        cmocka_unit_test(test_output_lines),
        cmocka_unit_test(test_event_list),
        cmocka_unit_test(test_long_line_refused),
        cmocka_unit_test(test_line_limit_boundary),
        cmocka_unit_test(test_huge_line_bounded),
        cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_nul_in_later_header),
        cmocka_unit_test(test_binary_junk),
        cmocka_unit_test(test_no_banner),
        cmocka_unit_test(test_read_actions),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_value_is_safe),
        cmocka_unit_test(test_serialize_and_build),
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_fixture_stray_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
