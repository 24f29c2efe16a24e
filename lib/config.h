/* config.h -- callbus configuration, read with libconfig.
 *
 * One file format for every program: the agent, the gateway and the ops CLI
 * read the same file, each the sections it needs, so an engineer configures
 * a site once. librdkafka properties are a list of "name=value" strings
 * handed to librdkafka untouched, like kcat's -X. */
#ifndef CALLBUS_CONFIG_H
#define CALLBUS_CONFIG_H

#include <limits.h>
#include <stddef.h>

typedef struct config_kv {
    char *key;
    char *value;
} config_kv;

typedef struct config_operator {
    char *id;
    char *interface;
    char *name;
} config_operator;

typedef struct callbus_config {
    char site[64];
    char topic_prefix[64];
    char log_level[16];
    char state_dir[PATH_MAX];

    config_kv *kafka;          /* librdkafka properties, in file order */
    size_t kafka_count;

    config_operator *operators;
    size_t operator_count;

    struct {
        char id[64];
        char ami_host[256];
        int ami_port;
        char ami_username[128];
        char ami_secret[256];  /* never logged */
        int ping_interval_s;
        int ping_timeout_s;
        int reconnect_min_ms;
        int reconnect_max_ms;
        char spool_dir[PATH_MAX];
        long long spool_max_bytes;
        int spool_write_ahead;  /* every message on disk until the broker has it */
        char http_listen[128];  /* "" disables metrics/health */
        long max_line;
        long max_headers;
        int status_interval_s;
    } agent;

    /* Commands the agent executes (see agent/commands.c). */
    struct {
        int enabled;
        char journal[PATH_MAX];       /* "" = <state_dir>/commands.journal */
        int max_ttl_s;                /* expiry further ahead than this is refused */
        int result_timeout_s;         /* no answer from Asterisk within this: failed */
        char operator_phone[128];     /* dial string of an operator's phone, %s = operator id */
        char originate_context[80];
        char answer_context[80];
        char transfer_context[80];
        char **allowed_contexts;      /* originate contexts a command may name */
        size_t allowed_context_count;
        char **number_patterns;       /* POSIX extended regexes a dialled number must match */
        size_t number_pattern_count;
        char **transfer_patterns;
        size_t transfer_pattern_count;
        int originate_timeout_ms;
    } commands;

    /* callbus-gateway (see gateway/gateway.conf.example). */
    struct {
        char id[64];
        char listen[128];             /* "host:port"; port 0 = any free port */
        char www_dir[PATH_MAX];       /* static files served at / */
        char jwt_alg[16];             /* "HS256" or "RS256" */
        char jwt_secret[512];         /* HS256 shared secret; never logged */
        char jwt_key_file[PATH_MAX];  /* HS256 secret or RS256 public key PEM */
        char jwt_issuer[256];         /* "" = iss not checked */
        int jwt_leeway_s;
        char tls_cert[PATH_MAX];      /* both set: wss/https */
        char tls_key[PATH_MAX];
        int max_frame;                /* bytes */
        int max_msgs_per_s;
        int max_connections;
        char **origins;               /* allowed Origin values; none = any */
        size_t origin_count;
        int idle_timeout_s;
        int command_ttl_s;
        int history;                  /* resume history per stream */
        int max_queue_kb;             /* unsent output per connection before it is dropped */
    } gateway;
} callbus_config;

/* Fills defaults, then reads path (NULL: defaults only). On error returns -1
 * with a message naming the file, line and setting in err. */
int config_load(callbus_config *c, const char *path, char *err, size_t errlen);
/* Adds or replaces a librdkafka property from "name=value" (command-line -X). */
int config_set_kafka(callbus_config *c, const char *name_eq_value, char *err, size_t errlen);
const char *config_get_kafka(const callbus_config *c, const char *name);
/* "<prefix>.<site>.<kind>" */
void config_topic(const callbus_config *c, const char *kind, char *out, size_t outlen);
void config_free(callbus_config *c);

#endif
