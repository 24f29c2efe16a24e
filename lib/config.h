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
    char timezone[64];         /* IANA name: "today" starts at its midnight */

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
        int ami_tls;                  /* AMI over TLS (agent/ami_tls.c) */
        char ami_tls_ca_file[PATH_MAX];
        char ami_tls_server_name[256];
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
        int state_service_level_s;  /* queue service level: answered within this wait */
        int state_stats_interval_s; /* queue figures republished this often */
        int state_load_timeout_s;   /* reading the state topics back at start */
        int standby;                /* one of two agents for one Asterisk (agent/leader.c) */
        int takeover_ms;            /* no lease heard this long: the standby leads */
        int commit_interval_ms;     /* the leader's transactions close this often */
    } agent;

    /* Commands the agent executes (see agent/executor.c). */
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
        char **originate_variables;   /* variable names an originate may set; none = no variables */
        size_t originate_variable_count;
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
        char jwt_audience[256];       /* "" = aud not checked */
        int jwt_leeway_s;
        char tls_cert[PATH_MAX];      /* both set: wss/https */
        char tls_key[PATH_MAX];
        int max_frame;                /* bytes */
        int max_msgs_per_s;
        int max_connections;          /* authenticated */
        int max_unauthed;             /* not yet authenticated, all addresses */
        int max_unauthed_per_address; /* not yet authenticated, one address; 0 = no limit */
        char **origins;               /* allowed Origin values; none = any */
        size_t origin_count;
        int browser_variables;        /* a browser's originate may carry variables */
        int idle_timeout_s;
        int command_ttl_s;
        int history;                  /* resume history per stream */
        int max_queue_kb;             /* unsent output per connection before it is dropped */
    } gateway;
} callbus_config;

/* The settings, described once (as Redis's config.c does): one row per
 * setting, in the order of a config file, a section's rows together. The loader takes defaults, types,
 * ranges and checks from it and refuses a name it lacks; tools/configdoc
 * writes docs/configuration.md and the example files from it. */
enum config_type {
    CONFIG_STRING,   /* char[size] */
    CONFIG_INT,      /* int, long or long long: the file's value << shift */
    CONFIG_BOOL,     /* int: true or false */
    CONFIG_STRINGS,  /* char ** with its size_t count at count_offset */
    CONFIG_FILE,     /* a file name; the file's content goes into char[size] */
    CONFIG_CUSTOM,   /* its own loader: kafka, operators */
};

/* The programs that use a setting (any of them checks the whole file). */
enum { CONFIG_AGENT = 1, CONFIG_GATEWAY = 2, CONFIG_CLI = 4 };

struct config_setting_t;  /* libconfig's */

typedef struct callbus_setting {
    const char *name;             /* its path in the file: "agent.ami.port" */
    enum config_type type;
    unsigned readers;
    size_t offset, size;          /* the value in callbus_config */
    size_t count_offset;          /* CONFIG_STRINGS */
    const char *text_default;     /* CONFIG_STRING */
    long long number_default;     /* CONFIG_INT (as in the file), CONFIG_BOOL */
    long long min, max;           /* CONFIG_INT */
    int shift;                    /* CONFIG_INT: MiB in the file, bytes in memory */
    const char *const *list_default;  /* CONFIG_STRINGS, NULL-terminated */
    /* Run once everything is loaded, so it may compare settings. */
    int (*check)(const callbus_config *c, const struct callbus_setting *s, char *err, size_t errlen);
    int (*load)(callbus_config *c, struct config_setting_t *value, char *err, size_t errlen);
    const char *type_doc;         /* CONFIG_CUSTOM: what the value is */
    const char *default_doc;      /* a default that is no value: "`<state_dir>/spool`" */
    const char *example;          /* the example files' value instead of the default */
    int example_commented;        /* ... as a comment */
    const char *doc;              /* Markdown */
} callbus_setting;

typedef struct callbus_section {
    const char *name;             /* "" (top level), "agent", "agent.ami", ... */
    const char *doc;
} callbus_section;

extern const callbus_setting config_settings[];   /* ends with a NULL name */
extern const callbus_section config_sections[];   /* ends with a NULL name */

/* Fills defaults, then reads path (NULL: defaults only). On error returns -1
 * with a message naming the file, line and setting in err. A setting the
 * table lacks is an error: a misspelt name must not leave a default running. */
int config_load(callbus_config *c, const char *path, char *err, size_t errlen);
/* Adds or replaces a librdkafka property from "name=value" (command-line -X). */
int config_set_kafka(callbus_config *c, const char *name_eq_value, char *err, size_t errlen);
const char *config_get_kafka(const callbus_config *c, const char *name);
/* "<prefix>.<site>.<kind>" */
void config_topic(const callbus_config *c, const char *kind, char *out, size_t outlen);
void config_free(callbus_config *c);

#endif
