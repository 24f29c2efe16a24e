/* main.c -- callbus-gateway command line: options, config, signals. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "gateway.h"
#include "log.h"
#include "program.h"

static void stop(void *g) { gw_stop(g); }

static const program_info info = {
    "callbus-gateway",
    "Serves operators' browsers: a WebSocket API (subprotocol " GW_PROTOCOL ") with each\n"
    "operator's live view of their calls, their commands to Kafka, and the\n"
    "operator page. See docs/gateway-protocol.md.\n",
    "gateway/gateway.conf.example"};

int main(int argc, char **argv) {
    callbus_config cfg;
    const char *path;
    int check_only;
    char err[1024];
    int rc = program_start(&info, argc, argv, &cfg, &path, &check_only);
    if (rc >= 0) return rc;
    if (!*cfg.gateway.jwt_secret && !*cfg.gateway.jwt_key_file)
        return program_bad_config(&info, &cfg, "gateway.jwt_secret or gateway.jwt_key_file is required");
    if (check_only) {
        printf("%s: configuration is valid (site %s, gateway %s, listen %s, %s)\n", path ? path : "(defaults)",
               cfg.site, cfg.gateway.id, cfg.gateway.listen, cfg.gateway.jwt_alg);
        config_free(&cfg);
        return 0;
    }
    gw *running = gw_new(&cfg, err, sizeof(err));
    if (!running) {
        log_error("%s", err);
        config_free(&cfg);
        return 1;
    }
    program_stop_on_signals(stop, running);
    rc = gw_run(running);
    gw_free(running);
    config_free(&cfg);
    return rc;
}
