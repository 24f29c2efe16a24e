/* test_gateway_upgrade.c -- the gateway's decision on an HTTP upgrade
 * request (gw_upgrade_decision): only a WebSocket at /ws offering callbus.v1
 * is served; the rest gets 404 or 400 with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "gateway.h"

static int decide(const char *uri, const char *upgrade, const char *protocols) {
    const char *why = "unset";
    int status = gw_upgrade_decision(uri, upgrade, protocols, &why);
    if (status) assert_true(why && *why);
    else assert_null(why);
    return status;
}

static void test_upgrade_decision(void **state) {
    (void)state;
    assert_int_equal(decide("/ws", "websocket", "callbus.v1"), 0);
    assert_int_equal(decide("/ws", "WebSocket", "chat, callbus.v1"), 0);
    assert_int_equal(decide("/ws", "websocket", "chat,\tcallbus.v1 ,x"), 0);
    /* No subprotocol, another one, or one that only begins like ours. */
    assert_int_equal(decide("/ws", "websocket", NULL), 400);
    assert_int_equal(decide("/ws", "websocket", ""), 400);
    assert_int_equal(decide("/ws", "websocket", "chat"), 400);
    assert_int_equal(decide("/ws", "websocket", "callbus.v10, xcallbus.v1"), 400);
    /* A list longer than the 255 bytes lws copies: refused, not cut. */
    char longlist[400];
    memset(longlist, 'a', 300);
    strcpy(longlist + 300, ",callbus.v1");
    assert_int_equal(decide("/ws", "websocket", longlist), 400);
    /* Another protocol than websocket, or none. */
    assert_int_equal(decide("/ws", "h2c", "callbus.v1"), 400);
    assert_int_equal(decide("/ws", NULL, "callbus.v1"), 400);
    /* Another path: 404, whatever else. */
    assert_int_equal(decide("/", "websocket", "callbus.v1"), 404);
    assert_int_equal(decide("/ws/", "websocket", "callbus.v1"), 404);
    assert_int_equal(decide("/WS", "websocket", "callbus.v1"), 404);
    assert_int_equal(decide(NULL, "websocket", "callbus.v1"), 404);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_upgrade_decision)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
