/* route.c -- who gets a stream's message: the authenticated sessions of
 * callbus-gateway indexed by operator id (one operator may have several
 * tabs), and the list of supervisors, who read the site stream.
 *
 * With thousands of connections, delivering an event must cost the number
 * of its recipients, not the number of connections: gw_deliver looks the
 * operator up here instead of walking every session. */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

static gw_session **head_of(gw *g, gw_session *s) {
    return s->route ? &s->route->head : &g->supervisors;
}

void gw_route_add(gw *g, gw_session *s) {
    if (s->routed) gw_route_del(g, s);
    s->route = NULL;
    if (s->id.role != ROLE_SUPERVISOR) {
        gw_route *r;
        HASH_FIND_STR(g->routes, s->id.operator_id, r);
        if (!r) {
            r = xcalloc(1, sizeof(*r));
            snprintf(r->id, sizeof(r->id), "%s", s->id.operator_id);
            HASH_ADD_STR(g->routes, id, r);
        }
        s->route = r;
    }
    gw_session **head = head_of(g, s);
    s->rprev = NULL;
    s->rnext = *head;
    if (*head) (*head)->rprev = s;
    *head = s;
    s->routed = 1;
}

void gw_route_del(gw *g, gw_session *s) {
    if (!s->routed) return;
    gw_session **head = head_of(g, s);
    if (s->rprev) s->rprev->rnext = s->rnext;
    else *head = s->rnext;
    if (s->rnext) s->rnext->rprev = s->rprev;
    /* An operator with no session left takes no memory. */
    if (s->route && !s->route->head) {
        HASH_DEL(g->routes, s->route);
        free(s->route);
    }
    s->rprev = s->rnext = NULL;
    s->route = NULL;
    s->routed = 0;
}

gw_session *gw_route_first(gw *g, const char *operator_id) {
    if (!operator_id) return g->supervisors;
    gw_route *r;
    HASH_FIND_STR(g->routes, operator_id, r);
    return r ? r->head : NULL;
}

void gw_routes_free(gw *g) {
    gw_route *r, *tmp;
    HASH_ITER(hh, g->routes, r, tmp) {
        HASH_DEL(g->routes, r);
        free(r);
    }
    g->supervisors = NULL;
}
