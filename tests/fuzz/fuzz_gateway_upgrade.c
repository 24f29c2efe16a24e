/* fuzz_gateway_upgrade.c -- libFuzzer target for the gateway's decision on
 * an HTTP upgrade request (gw_upgrade_decision in gateway/server.c: the
 * request's path, Upgrade header and Sec-WebSocket-Protocol list; lws hands
 * them over as strings, so the decision is fuzzed without lws).
 * fuzz-needs: gateway
 * fuzz-max-len: 1024
 *
 * Input: the three header values separated by NUL bytes (a missing one is
 * an absent header). Invariant: the request is served (0) exactly when the
 * path is "/ws", Upgrade is "websocket" in any case and the protocol list
 * names callbus.v1 as a whole token (checked here independently); otherwise
 * 404 off /ws or 400, with a reason. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway.h"

/* Whether the list (separated by commas, spaces, tabs) has the token. */
static int has_token(const char *list, const char *tok) {
    size_t n = strlen(tok);
    for (const char *p = list; *p;) {
        size_t k = strcspn(p, ", \t");
        if (k == n && !memcmp(p, tok, n)) return 1;
        p += k;
        p += strspn(p, ", \t");
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = 0;
    const char *field[3] = {NULL, NULL, NULL};
    char *p = buf, *end = buf + size;
    for (int i = 0; i < 3 && p <= end; i++) {
        field[i] = p;
        p += strlen(p) + 1;
    }
    const char *why = NULL;
    int status = gw_upgrade_decision(field[0], field[1], field[2], &why);
    /* The gateway copies the list into 256 bytes (lws_hdr_copy refuses a
     * longer one): a longer list is never served. */
    int served = field[0] && !strcmp(field[0], "/ws") && field[1] && !strcasecmp(field[1], "websocket") &&
                 field[2] && strlen(field[2]) < 256 && has_token(field[2], "callbus.v1");
    if (served != (status == 0)) abort();
    if (status && (!why || !*why || (status != 404 && status != 400))) abort();
    if (status == 404 && field[0] && !strcmp(field[0], "/ws")) abort();
    free(buf);
    return 0;
}
