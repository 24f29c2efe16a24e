/* test_cloudevent.c -- the one CloudEvents envelope writer (lib/cloudevent.c):
 * the agent's events and the commands of the gateway and the CLI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "cloudevent.h"

static json_t *finish(sbuf *b, const char *data) {
    sbuf_puts(b, data);
    ce_end(b);
    json_error_t e;
    json_t *v = json_loadb(b->data, b->len, JSON_REJECT_DUPLICATES, &e);
    if (!v) fail_msg("not JSON (%s): %s", e.text, b->data);
    sbuf_free(b);
    return v;
}

static const char *str(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static void test_event(void **state) {
    (void)state;
    ce_source src;
    ce_source_init(&src, "riga", "agent", "agent1", 1795670000);
    sbuf b;
    sbuf_init(&b);
    ce_begin(&b, &src, "calls", 7, "callbus.call.started", "1795670259.0", 1795670259.396093);
    json_t *v = finish(&b, "{\"call_id\":\"1795670259.0\"}");
    assert_string_equal(str(v, "specversion"), "1.0");
    assert_string_equal(str(v, "id"), "riga:agent1:calls:1795670000:7");
    assert_string_equal(str(v, "source"), "callbus://riga/agent/agent1");
    assert_string_equal(str(v, "type"), "callbus.call.started");
    assert_string_equal(str(v, "time"), "2026-11-26T05:17:39.396093Z");
    assert_string_equal(str(v, "subject"), "1795670259.0");
    assert_string_equal(str(v, "datacontenttype"), "application/json");
    assert_int_equal(json_integer_value(json_object_get(v, "epoch")), 1795670000);
    assert_int_equal(json_integer_value(json_object_get(v, "seq")), 7);
    assert_string_equal(str(json_object_get(v, "data"), "call_id"), "1795670259.0");
    json_decref(v);
    /* No subject: no attribute. */
    sbuf_init(&b);
    ce_begin(&b, &src, "ami", 1, "callbus.ami.event", NULL, 0);
    v = finish(&b, "{}");
    assert_null(json_object_get(v, "subject"));
    json_decref(v);
}

static void test_command_escapes_what_its_sender_wrote(void **state) {
    (void)state;
    sbuf b;
    sbuf_init(&b);
    /* The CLI takes the id, the type and the subject from its user. */
    ce_begin_command(&b, "riga:cli\"1\n", "callbus://cli/callbus", "callbus.command.x\\", "call\"1",
                     1795670259.5, 1795670289.5, "cli:ops");
    json_t *v = finish(&b, "{\"call_id\":\"call\\\"1\"}");
    assert_string_equal(str(v, "id"), "riga:cli\"1\n");
    assert_string_equal(str(v, "type"), "callbus.command.x\\");
    assert_string_equal(str(v, "subject"), "call\"1");
    assert_string_equal(str(v, "source"), "callbus://cli/callbus");
    assert_string_equal(str(v, "time"), "2026-11-26T05:17:39.500000Z");
    assert_string_equal(str(v, "expires"), "2026-11-26T05:18:09.500000Z");
    assert_string_equal(str(v, "sender"), "cli:ops");
    assert_string_equal(str(v, "datacontenttype"), "application/json");
    assert_null(json_object_get(v, "epoch"));
    json_decref(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event),
        cmocka_unit_test(test_command_escapes_what_its_sender_wrote),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
