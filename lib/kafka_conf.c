/* kafka_conf.c -- librdkafka configurations, errors never ignored (see
 * kafka_conf.h). */
#include "kafka_conf.h"

#include <stdio.h>

int kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err, size_t errlen) {
    char why[512];
    if (rd_kafka_conf_set(conf, name, value, why, sizeof(why)) == RD_KAFKA_CONF_OK) return 0;
    snprintf(err, errlen, "kafka property %s: %s", name, why);
    return -1;
}

rd_kafka_conf_t *kafka_conf_new(const kafka_prop *defaults, size_t n, const callbus_config *cfg, char *err,
                                size_t errlen) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (size_t i = 0; i < n; i++)
        if (kafka_conf_set(conf, defaults[i].name, defaults[i].value, err, errlen) < 0) goto fail;
    for (size_t i = 0; cfg && i < cfg->kafka_count; i++)
        if (kafka_conf_set(conf, cfg->kafka[i].key, cfg->kafka[i].value, err, errlen) < 0) goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

rd_kafka_t *kafka_client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *err, size_t errlen) {
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, why, sizeof(why));
    if (rk) return rk;
    snprintf(err, errlen, "kafka %s: %s", type == RD_KAFKA_PRODUCER ? "producer" : "consumer", why);
    rd_kafka_conf_destroy(conf);
    return NULL;
}
