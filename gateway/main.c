/* main.c -- callbus-gateway command line: options, config, signals. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "gateway.h"
#include "log.h"
#include "version.h"

static gw *running;

static void on_signal(int sig) {
    (void)sig;
    if (running) gw_stop(running);
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: callbus-gateway [-c callbus.conf] [-X name=value]... [options]\n"
            "\n"
            "Serves operators' browsers: a WebSocket API (subprotocol " GW_PROTOCOL ") with each\n"
            "operator's live view of their calls, their commands to Kafka, and the\n"
            "operator page. See gateway/gateway.conf.example and docs/gateway-protocol.md.\n"
            "\n"
            "  -c, --config FILE     configuration file (see gateway/gateway.conf.example)\n"
            "  -X name=value         librdkafka property, passed through untouched;\n"
            "                        overrides the config file's kafka list\n"
            "  -v, --verbose         debug logging\n"
            "      --check-config    validate the configuration and exit (0 = valid)\n"
            "  -h, --help            this text\n"
            "  -V, --version         version\n");
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"verbose", no_argument, 0, 'v'},
        {"check-config", no_argument, 0, 'C'}, {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'}, {0, 0, 0, 0}};
    const char *path = NULL;
    int check_only = 0, verbose = 0, opt;
    char err[1024];
    char **props = calloc((size_t)argc, sizeof(char *));
    int nprops = 0;
    log_set_name("callbus-gateway");
    while ((opt = getopt_long(argc, argv, "c:X:vhV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 'X': props[nprops++] = optarg; break;
        case 'v': verbose = 1; break;
        case 'C': check_only = 1; break;
        case 'h': usage(stdout); free(props); return 0;
        case 'V': printf("callbus-gateway %s\n", CALLBUS_VERSION); free(props); return 0;
        default: usage(stderr); free(props); return 2;
        }
    }
    callbus_config cfg;
    if (config_load(&cfg, path, err, sizeof(err)) < 0) goto bad_config;
    for (int i = 0; i < nprops; i++)
        if (config_set_kafka(&cfg, props[i], err, sizeof(err)) < 0) goto bad_config;
    free(props);
    props = NULL;
    int level = log_level_parse(cfg.log_level);
    if (level < 0) {
        snprintf(err, sizeof(err), "log_level \"%s\" must be debug, info, warn or error", cfg.log_level);
        goto bad_config;
    }
    log_set_level(verbose ? LOG_DEBUG : (enum log_level)level);
    if (!*cfg.gateway.jwt_secret && !*cfg.gateway.jwt_key_file) {
        snprintf(err, sizeof(err), "gateway.jwt_secret or gateway.jwt_key_file is required");
        goto bad_config;
    }
    if (check_only) {
        printf("%s: configuration is valid (site %s, gateway %s, listen %s, %s)\n", path ? path : "(defaults)",
               cfg.site, cfg.gateway.id, cfg.gateway.listen, cfg.gateway.jwt_alg);
        config_free(&cfg);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    running = gw_new(&cfg, err, sizeof(err));
    if (!running) {
        log_error("%s", err);
        config_free(&cfg);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc = gw_run(running);
    gw_free(running);
    config_free(&cfg);
    return rc;
bad_config:
    free(props);
    fprintf(stderr, "callbus-gateway: %s\n", err);
    config_free(&cfg);
    return 2;
}
