/* cli.h -- what the `callbus` ops subcommands share: config, Kafka clients. */
#ifndef CALLBUS_CLI_H
#define CALLBUS_CLI_H

#include <librdkafka/rdkafka.h>

#include "config.h"

typedef struct cli_ctx {
    callbus_config cfg;
} cli_ctx;

/* "calls" -> "<prefix>.<site>.calls"; anything with a dot is taken as is. */
void cli_topic(const cli_ctx *cx, const char *name, char *out, size_t outlen);
/* A consumer for assign() (its group id is never joined), config
 * properties applied. */
rd_kafka_t *cli_consumer(cli_ctx *cx);

int cmd_tail(cli_ctx *cx, int argc, char **argv);
int cmd_send(cli_ctx *cx, int argc, char **argv);

#endif
