/* record.c -- one Kafka record as a JSON line, the format `callbus replay`
 * prints and `callbus check --file` reads back.
 *
 * The value is embedded as JSON when it is JSON (so jq can reach into it),
 * else as a string; key, header values and values that are not UTF-8 go to
 * *_base64 fields instead, so no byte is lost in the round trip. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "cli.h"
#include "sbuf.h"
#include "timearg.h"

static int is_utf8(const void *p, size_t n) {
    json_t *s = json_stringn(p, n);  /* NULL when not valid UTF-8 */
    json_decref(s);
    return s != NULL;
}

/* name: string, or name_base64 when the bytes are not UTF-8. */
static void set_bytes(json_t *o, const char *name, const void *p, size_t n) {
    if (is_utf8(p, n)) {
        json_object_set_new(o, name, json_stringn(p, n));
        return;
    }
    sbuf b;
    char key[64];
    sbuf_init(&b);
    sbuf_base64(&b, p, n);
    snprintf(key, sizeof(key), "%s_base64", name);
    json_object_set_new(o, key, json_stringn(b.data, b.len));
    sbuf_free(&b);
}

static json_t *headers_json(const rd_kafka_message_t *m) {
    json_t *arr = json_array();
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return arr;
    const char *name;
    const void *val;
    size_t len;
    for (size_t i = 0; !rd_kafka_header_get_all(hdrs, i, &name, &val, &len); i++) {
        json_t *h = json_object();
        json_object_set_new(h, "name", json_string(name));
        if (val) set_bytes(h, "value", val, len);
        else json_object_set_new(h, "value", json_null());
        json_array_append_new(arr, h);
    }
    return arr;
}

char *cli_record_json(const rd_kafka_message_t *m) {
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    char when[40];
    timearg_format(ts, when, sizeof(when));
    json_t *o = json_object();
    json_object_set_new(o, "topic", json_string(rd_kafka_topic_name(m->rkt)));
    json_object_set_new(o, "partition", json_integer(m->partition));
    json_object_set_new(o, "offset", json_integer(m->offset));
    json_object_set_new(o, "timestamp", json_integer(ts));
    json_object_set_new(o, "time", json_string(when));
    if (m->key) set_bytes(o, "key", m->key, m->key_len);
    else json_object_set_new(o, "key", json_null());
    json_object_set_new(o, "headers", headers_json(m));
    /* A JSON value is spliced in byte for byte (numbers keep their exact
     * text); one spanning lines is re-encoded to keep one record a line. */
    json_t *v = m->payload ? json_loadb(m->payload, m->len, JSON_DECODE_ANY, NULL) : json_null();
    int raw = v && m->payload && !memchr(m->payload, '\n', m->len) && !memchr(m->payload, '\r', m->len);
    if (v && !raw) json_object_set_new(o, "value", v);
    else if (!v) set_bytes(o, "value", m->payload, m->len);
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (raw) {
        json_decref(v);
        size_t n = strlen(s);
        char *t = xmalloc(n + m->len + 16);
        memcpy(t, s, n - 1);
        memcpy(t + n - 1, ",\"value\":", 9);
        memcpy(t + n + 8, m->payload, m->len);
        memcpy(t + n + 8 + m->len, "}", 2);
        free(s);
        s = t;
    }
    return s;
}
