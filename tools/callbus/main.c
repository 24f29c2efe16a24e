/* main.c -- `callbus`, the ops command line: global options, then a subcommand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "cli.h"
#include "kafka_conf.h"
#include "version.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: callbus [-c agent.conf] [-X [CLUSTER:]name=value]... COMMAND [args]\n"
            "\n"
            "  tail TOPIC      follow a topic (ami, calls, operators, status, ...)\n"
            "  send TYPE k=v   send a command and print its results (callbus send for help)\n"
            "  lag             replication (site <-> centre) and consumer group lag\n"
            "  replay TOPIC    a time window of a topic: to stdout, another topic or cluster,\n"
            "                  or a consumer group reset (dry run unless --execute)\n"
            "  check TOPIC     validate messages (or --file F) against the JSON Schemas\n"
            "\n"
            "  -c FILE         the same configuration file as the agent (site, topic prefix, kafka)\n"
            "  -X name=value   librdkafka property, passed through untouched, for every cluster\n"
            "  -X CLUSTER:name=value  the same for one cluster of a command that talks to\n"
            "                  several: lag (central, or a site's name), replay (source, target)\n"
            "  -h, --help      this text;  -V, --version  version\n");
}

void cli_topic(const cli_ctx *cx, const char *name, char *out, size_t outlen) {
    if (strchr(name, '.')) snprintf(out, outlen, "%s", name);
    else config_topic(&cx->cfg, name, out, outlen);
}

rd_kafka_t *cli_consumer(cli_ctx *cx) {
    static const kafka_prop defaults[] = {
        {"group.id", "callbus-cli"}, {"enable.auto.commit", "false"}, {"enable.partition.eof", "false"}};
    char err[768];
    rd_kafka_conf_t *conf = kafka_conf_new(defaults, 3, &cx->cfg, err, sizeof(err));
    rd_kafka_t *rk = conf ? kafka_client_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)) : NULL;
    if (!rk) fprintf(stderr, "callbus: %s\n", err);
    return rk;
}

/* The dispatch; -X CLUSTER: properties only mean something to lag and replay. */
static int run(cli_ctx *cx, const char *cmd, int argc, char **argv) {
    static const char *const commands[] = {"tail", "send", "check", NULL};
    for (int c = 0; commands[c]; c++)
        if (!strcmp(cmd, commands[c]) && cli_check_clusters(cx, cmd, NULL, 0) < 0) return 2;
    if (!strcmp(cmd, "tail")) return cmd_tail(cx, argc, argv);
    if (!strcmp(cmd, "send")) return cmd_send(cx, argc, argv);
    if (!strcmp(cmd, "lag")) return cmd_lag(cx, argc, argv);
    if (!strcmp(cmd, "replay")) return cmd_replay(cx, argc, argv);
    if (!strcmp(cmd, "check")) return cmd_check(cx, argc, argv);
    fprintf(stderr, "callbus: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}

int main(int argc, char **argv) {
    alloc_init();
    cli_ctx cx;
    char err[1024];
    const char *path = NULL;
    int i = 1, nprops = 0, rc = 0;
    /* -X name=value in the first half, -X CLUSTER:name=value in the second. */
    char **props = xcalloc(2 * (size_t)argc, sizeof(char *));
    cx.scoped = (const char **)props + argc;
    cx.nscoped = 0;
    for (; rc == 0 && i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) usage(stdout), rc = -1;
        else if (!strcmp(argv[i], "-V") || !strcmp(argv[i], "--version")) printf("callbus %s\n", CALLBUS_VERSION), rc = -1;
        else if (!strcmp(argv[i], "-c") && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "-X") && i + 1 < argc && cli_is_scoped(argv[i + 1])) cx.scoped[cx.nscoped++] = argv[++i];
        else if (!strcmp(argv[i], "-X") && i + 1 < argc) props[nprops++] = argv[++i];
        else usage(stderr), rc = 2;
    }
    if (rc) {
        free(props);
        return rc < 0 ? 0 : rc;
    }
    if (i >= argc) { usage(stderr); free(props); return 2; }
    rc = config_load(&cx.cfg, path, err, sizeof(err));
    for (int p = 0; rc == 0 && p < nprops; p++) rc = config_set_kafka(&cx.cfg, props[p], err, sizeof(err));
    if (rc < 0) fprintf(stderr, "callbus: %s\n", err), rc = 2;
    else rc = run(&cx, argv[i], argc - i, argv + i);
    config_free(&cx.cfg);
    free(props);
    return rc;
}
