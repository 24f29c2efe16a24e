/* kafka_conf.h -- the one way a callbus program configures a librdkafka
 * client.
 *
 * The client's own defaults first, then the site's properties (the config
 * file's kafka list, then -X) handed to librdkafka untouched, as kcat does,
 * so that any default can be overridden. A property librdkafka refuses (an
 * unknown name, a bad value) is an error that names it, never skipped: a
 * mistyped security setting must not leave a client running without it. */
#ifndef CALLBUS_KAFKA_CONF_H
#define CALLBUS_KAFKA_CONF_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "config.h"

typedef struct kafka_prop {
    const char *name, *value;
} kafka_prop;

/* One property; when librdkafka refuses it, err says "kafka property NAME:
 * why" and -1 is returned. */
int kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err, size_t errlen);
/* The n defaults, then every kafka property of cfg (NULL: none). NULL, with
 * err naming the property, when librdkafka refuses any of them. */
rd_kafka_conf_t *kafka_conf_new(const kafka_prop *defaults, size_t n, const callbus_config *cfg, char *err,
                                size_t errlen);
/* rd_kafka_new, which takes conf over; when it fails, conf is destroyed and
 * err says why. */
rd_kafka_t *kafka_client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *err, size_t errlen);

#endif
