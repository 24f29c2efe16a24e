/* ami.h -- Asterisk Manager Interface messages and the incremental parser.
 *
 * An AMI message is an ordered multimap of headers: keys repeat
 * (ChanVariable, Variable, Output) and order matters, so headers are kept as
 * a list of pairs in wire order, never as a map. The parser is fed whatever
 * bytes TCP delivered and calls back once per complete message; it never
 * blocks and never reads from a socket itself, so the agent's read loop and
 * the simulator can both drive it. */
#ifndef CALLBUS_AMI_H
#define CALLBUS_AMI_H

#include <stddef.h>
#include <stdint.h>

typedef struct ami_header {
    char *key;
    char *value;
    /* strlen of key and value (the parser knows them; the agent writes
     * every header of every event). */
    uint32_t key_len, value_len;
    uint32_t next;      /* the index's chain: an earlier header's number + 1, 0 = none */
} ami_header;

/* Buckets of a message's header index (a power of two). */
#define AMI_INDEX_BUCKETS 32

typedef enum ami_kind {
    AMI_EVENT,     /* has Event: (checked first: OriginateResponse has Response: too) */
    AMI_RESPONSE,  /* has Response: */
    AMI_OTHER      /* neither: kept and published, never dropped */
} ami_kind;

typedef struct ami_msg {
    ami_header *headers;
    size_t count, cap;
    /* The agent looks up a dozen or more headers of every event, handler
     * after handler. The headers are indexed once per message by key length
     * and first letter (case folded): a bucket holds its latest header's
     * number + 1 and each header chains to the earlier ones, so a lookup
     * compares only keys of its length and initial, instead of walking
     * every header. Measured with callgrind over the captures: cheaper than
     * both the plain walk and a full hash of every key. */
    uint32_t bucket[AMI_INDEX_BUCKETS];
    size_t indexed;
    /* Exact bytes of the message as received, terminator included. */
    char *raw;
    size_t raw_len;
    /* Set when re-serialising the headers as "Key: Value\r\n" ... "\r\n" would
     * not give back raw byte for byte (bare LF, missing space after colon,
     * a line without a colon, junk): consumers then need raw to be lossless. */
    int noncanonical;
    /* Messages built by the parser keep every key and value in this one
     * block (headers point into it) instead of two mallocs per header; keys
     * outside it came from ami_msg_add and are freed one by one. raw is also
     * NUL-terminated, as a convenience. */
    char *strings;
    size_t strings_len;
} ami_msg;

void ami_msg_init(ami_msg *m);
void ami_msg_free(ami_msg *m);
int ami_msg_add(ami_msg *m, const char *key, size_t klen, const char *val, size_t vlen);
/* First value of key (case-insensitive, as Asterisk compares), or NULL. */
const char *ami_get(const ami_msg *m, const char *key);
/* Value of key, or def when absent. */
const char *ami_get_or(const ami_msg *m, const char *key, const char *def);
ami_kind ami_msg_kind(const ami_msg *m);
/* Canonical wire form ("Key: Value\r\n"... "\r\n"), malloc'd; *len set. */
char *ami_msg_serialize(const ami_msg *m, size_t *len);

/* Limits. Asterisk itself accepts at most 1024 bytes a line and 128 headers
 * per action it reads; what it sends us can be longer (Output lines, variable
 * dumps), so the reader's limits are configurable and generous by default. */
#define AMI_DEFAULT_MAX_LINE 65536
#define AMI_DEFAULT_MAX_HEADERS 1024

typedef enum ami_error {
    AMI_ERR_LINE_TOO_LONG = 1,
    AMI_ERR_TOO_MANY_HEADERS,
    AMI_ERR_NO_COLON,          /* a line without ':' (kept in raw, message still delivered) */
} ami_error;

typedef struct ami_parser ami_parser;

typedef struct ami_parser_callbacks {
    /* Called with the greeting line ("Asterisk Call Manager/11.0.0"), once per connection. */
    void (*on_banner)(void *ctx, const char *banner);
    /* Called per complete message; the message is owned by the parser and
     * valid only during the call. To keep it, copy the struct and
     * ami_msg_init() the original: the copy then owns everything and is
     * released with ami_msg_free(). Do not reset or free the parser from
     * inside a callback. */
    void (*on_message)(void *ctx, ami_msg *msg);
    /* Called when input is refused; raw holds the refused bytes so the
     * caller can publish them: nothing is dropped silently. */
    void (*on_error)(void *ctx, ami_error err, const char *raw, size_t raw_len);
} ami_parser_callbacks;

typedef struct ami_parser_stats {
    uint64_t messages;
    uint64_t bytes;
    uint64_t errors_line_too_long;
    uint64_t errors_too_many_headers;
    uint64_t lines_without_colon;
    /* Blank lines between messages (not part of any raw) and bytes of
     * refused messages: bytes = banner lines + every raw + these two + the
     * partial message still buffered. */
    uint64_t bytes_stray;
    uint64_t bytes_refused;
} ami_parser_stats;

ami_parser *ami_parser_new(const ami_parser_callbacks *cb, void *ctx);
void ami_parser_set_limits(ami_parser *p, size_t max_line, size_t max_headers);
/* The stream is what a client sends Asterisk (amisim reads it): actions
 * only. No greeting comes first, so the first line is always a header, and
 * "Response: Follows" is a header like any other, not the start of CLI
 * output. Call before the first feed; ami_parser_reset keeps it. */
void ami_parser_read_actions(ami_parser *p);
/* Forget partial input and expect a new greeting (after a reconnect;
 * none when reading actions).
 * Stats are kept: they count the parser's whole life. */
void ami_parser_reset(ami_parser *p);
void ami_parser_feed(ami_parser *p, const char *buf, size_t len);
const ami_parser_stats *ami_parser_get_stats(const ami_parser *p);
void ami_parser_free(ami_parser *p);

/* True when value has no byte that could end an AMI header or action
 * (CR, LF) or any other control character: what may be sent to Asterisk. */
int ami_value_is_safe(const char *value);

#endif
