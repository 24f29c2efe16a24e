/* main.c -- callbus-gateway command line: options, config, signals. */
#include "config.h"
#include "gateway.h"
#include "program.h"

static void *make(callbus_config *c, char *err, size_t n) { return gw_new(c, err, n); }
static int run(void *g) { return gw_run(g); }
static void stop(void *g) { gw_stop(g); }
static void release(void *g) { gw_free(g); }

static const program_daemon gateway_daemon = {make, run, stop, release};

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
    int rc = program_start(&info, argc, argv, &cfg, &path, &check_only);
    if (rc >= 0) return rc;
    if (!*cfg.gateway.jwt_secret && !*cfg.gateway.jwt_key_file)
        return program_bad_config(&info, &cfg, "gateway.jwt_secret or gateway.jwt_key_file is required");
    if (check_only)
        return program_config_valid(path, &cfg, "site %s, gateway %s, listen %s, %s", cfg.site, cfg.gateway.id,
                                    cfg.gateway.listen, cfg.gateway.jwt_alg);
    return program_serve(&gateway_daemon, &cfg);
}
