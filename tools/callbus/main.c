/* main.c -- `callbus`, the ops command line: global options, then a subcommand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "version.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: callbus [-c agent.conf] [-X name=value]... COMMAND [args]\n"
            "\n"
            "  tail TOPIC      follow a topic (ami, calls, operators, status, ...)\n"
            "  send TYPE k=v   send a command and print its results (callbus send for help)\n"
            "  lag             replication (site <-> centre) and consumer group lag\n"
            "  replay TOPIC    a time window of a topic: to stdout, another topic or cluster,\n"
            "                  or a consumer group reset (dry run unless --execute)\n"
            "  check TOPIC     validate messages (or --file F) against the JSON Schemas\n"
            "\n"
            "  -c FILE         the same configuration file as the agent (site, topic prefix, kafka)\n"
            "  -X name=value   librdkafka property, passed through untouched\n"
            "  -h, --help      this text;  -V, --version  version\n");
}

void cli_topic(const cli_ctx *cx, const char *name, char *out, size_t outlen) {
    if (strchr(name, '.')) snprintf(out, outlen, "%s", name);
    else config_topic(&cx->cfg, name, out, outlen);
}

rd_kafka_t *cli_consumer(cli_ctx *cx) {
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "group.id", "callbus-cli", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.partition.eof", "false", err, sizeof(err));
    for (size_t i = 0; i < cx->cfg.kafka_count; i++) {
        if (rd_kafka_conf_set(conf, cx->cfg.kafka[i].key, cx->cfg.kafka[i].value, err, sizeof(err)) !=
            RD_KAFKA_CONF_OK) {
            fprintf(stderr, "callbus: kafka property %s: %s\n", cx->cfg.kafka[i].key, err);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "callbus: %s\n", err);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

int main(int argc, char **argv) {
    cli_ctx cx;
    char err[1024];
    const char *path = NULL;
    int i = 1;
    char **props = calloc((size_t)argc, sizeof(char *));
    int nprops = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); free(props); return 0; }
        if (!strcmp(argv[i], "-V") || !strcmp(argv[i], "--version")) {
            printf("callbus %s\n", CALLBUS_VERSION);
            free(props);
            return 0;
        }
        if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "-X")) && i + 1 < argc) {
            if (argv[i][1] == 'c') path = argv[++i];
            else props[nprops++] = argv[++i];
            continue;
        }
        usage(stderr);
        free(props);
        return 2;
    }
    if (i >= argc) { usage(stderr); free(props); return 2; }
    int rc = config_load(&cx.cfg, path, err, sizeof(err));
    for (int p = 0; rc == 0 && p < nprops; p++) rc = config_set_kafka(&cx.cfg, props[p], err, sizeof(err));
    free(props);
    if (rc < 0) {
        fprintf(stderr, "callbus: %s\n", err);
        config_free(&cx.cfg);
        return 2;
    }
    const char *cmd = argv[i];
    if (!strcmp(cmd, "tail")) rc = cmd_tail(&cx, argc - i, argv + i);
    else if (!strcmp(cmd, "send")) rc = cmd_send(&cx, argc - i, argv + i);
    else if (!strcmp(cmd, "lag")) rc = cmd_lag(&cx, argc - i, argv + i);
    else if (!strcmp(cmd, "replay")) rc = cmd_replay(&cx, argc - i, argv + i);
    else if (!strcmp(cmd, "check")) rc = cmd_check(&cx, argc - i, argv + i);
    else {
        fprintf(stderr, "callbus: unknown command \"%s\"\n", cmd);
        usage(stderr);
        rc = 2;
    }
    config_free(&cx.cfg);
    return rc;
}
