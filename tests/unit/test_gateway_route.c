/* test_gateway_route.c -- who gets a stream message (gateway/route.c and
 * gw_deliver): an operator's sessions (several tabs) and nobody else's,
 * supervisors for the site stream, one serialisation shared by all, and the
 * index kept exact as sessions close or change role on renewal. Sessions
 * are "socketless": their output is only queued, which is what we read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

static callbus_config cfg;

static gw *new_gw(void) {
    gw *g = calloc(1, sizeof(*g));
    cfg.gateway.max_queue_kb = 1024;
    g->cfg = &cfg;
    return g;
}

static gw_session *login(gw *g, const char *op, auth_role role) {
    gw_session *s = calloc(1, sizeof(*s));
    s->g = g;
    s->socketless = 1;
    snprintf(s->id.operator_id, sizeof(s->id.operator_id), "%s", op);
    s->id.role = role;
    s->authed = 1;
    g->nauthed++;
    gw_route_add(g, s);
    return s;
}

static void logout(gw_session *s) {
    gw_session_gone(s);
    free(s);
}

static size_t queued(const gw_session *s) {
    size_t n = 0;
    for (gw_qnode *q = s->qhead; q; q = q->next) n++;
    return n;
}

static void deliver(gw *g, const char *op, const char *text) {
    json_t *m = json_pack("{s:s, s:s}", "type", "event", "text", text);
    gw_deliver(g, op, m);
    json_decref(m);
}

static void test_operator_tabs_only(void **state) {
    (void)state;
    gw *g = new_gw();
    gw_session *a1 = login(g, "op101", ROLE_OPERATOR), *a2 = login(g, "op101", ROLE_OPERATOR);
    gw_session *b = login(g, "op102", ROLE_OPERATOR), *sup = login(g, "sup1", ROLE_SUPERVISOR);
    deliver(g, "op101", "x");
    assert_int_equal(queued(a1), 1);
    assert_int_equal(queued(a2), 1);
    assert_int_equal(queued(b), 0);
    assert_int_equal(queued(sup), 0);
    /* one serialisation, shared */
    assert_ptr_equal(a1->qhead->m, a2->qhead->m);
    assert_int_equal(a1->qhead->m->refs, 2);
    deliver(g, NULL, "site");
    assert_int_equal(queued(sup), 1);
    assert_int_equal(queued(a1), 1);
    deliver(g, "op999", "nobody");   /* nobody connected: nothing queued */
    assert_int_equal(queued(a1) + queued(a2) + queued(b) + queued(sup), 3);
    assert_int_equal(g->m.view_deliveries, 3);
    logout(a1);
    logout(a2);
    logout(b);
    logout(sup);
    assert_null(g->routes);
    assert_null(g->supervisors);
    assert_int_equal(g->nauthed, 0);
    free(g);
}

static void test_close_and_reindex(void **state) {
    (void)state;
    gw *g = new_gw();
    gw_session *a1 = login(g, "op101", ROLE_OPERATOR), *a2 = login(g, "op101", ROLE_OPERATOR);
    gw_session *a3 = login(g, "op101", ROLE_OPERATOR);
    assert_int_equal(HASH_COUNT(g->routes), 1);
    logout(a2);                         /* the middle one */
    deliver(g, "op101", "x");
    assert_int_equal(queued(a1), 1);
    assert_int_equal(queued(a3), 1);
    a1->close_code = 4008;              /* closing: gets nothing more */
    deliver(g, "op101", "y");
    assert_int_equal(queued(a1), 1);
    assert_int_equal(queued(a3), 2);
    /* A renewal that makes op101 a supervisor moves the session. */
    a3->id.role = ROLE_SUPERVISOR;
    gw_route_add(g, a3);
    deliver(g, "op101", "z");
    deliver(g, NULL, "site");
    assert_int_equal(queued(a3), 3);
    assert_ptr_equal(g->supervisors, a3);
    logout(a1);
    assert_null(g->routes);             /* no session of op101 left as operator */
    logout(a3);
    gw_route_del(g, a3 = login(g, "op102", ROLE_OPERATOR));
    gw_route_del(g, a3);                /* twice: harmless */
    logout(a3);
    assert_null(g->routes);
    free(g);
}

static void test_many_operators(void **state) {
    (void)state;
    gw *g = new_gw();
    enum { N = 2000 };
    gw_session *s[N];
    char id[32];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "op%d", i % 1000);   /* two tabs each */
        s[i] = login(g, id, ROLE_OPERATOR);
    }
    assert_int_equal(HASH_COUNT(g->routes), 1000);
    deliver(g, "op7", "x");
    for (int i = 0; i < N; i++) assert_int_equal(queued(s[i]), i % 1000 == 7);
    for (int i = 0; i < N; i++) logout(s[i]);
    assert_null(g->routes);
    free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operator_tabs_only),
        cmocka_unit_test(test_close_and_reindex),
        cmocka_unit_test(test_many_operators),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
