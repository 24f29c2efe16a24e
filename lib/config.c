/* config.c -- load and validate callbus configuration (see config.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_defaults(callbus_config *c) {
    memset(c, 0, sizeof(*c));
    snprintf(c->site, sizeof(c->site), "site1");
    snprintf(c->topic_prefix, sizeof(c->topic_prefix), "callbus");
    snprintf(c->log_level, sizeof(c->log_level), "info");
    snprintf(c->state_dir, sizeof(c->state_dir), "/var/lib/callbus");
    snprintf(c->agent.id, sizeof(c->agent.id), "agent1");
    snprintf(c->agent.ami_host, sizeof(c->agent.ami_host), "127.0.0.1");
    c->agent.ami_port = 5038;
    snprintf(c->agent.ami_username, sizeof(c->agent.ami_username), "callbus");
    c->agent.ping_interval_s = 10;
    c->agent.ping_timeout_s = 5;
    c->agent.reconnect_min_ms = 500;
    c->agent.reconnect_max_ms = 30000;
    c->agent.spool_max_bytes = 1024LL * 1024 * 1024;
    c->agent.spool_write_ahead = 1;
    c->agent.max_line = 65536;
    c->agent.max_headers = 1024;
    c->agent.status_interval_s = 30;
    c->commands.enabled = 1;
    c->commands.max_ttl_s = 300;
    c->commands.result_timeout_s = 30;
    snprintf(c->commands.operator_phone, sizeof(c->commands.operator_phone), "PJSIP/%%s");
    snprintf(c->commands.originate_context, sizeof(c->commands.originate_context), "c2c-outbound");
    snprintf(c->commands.answer_context, sizeof(c->commands.answer_context), "answer");
    snprintf(c->commands.transfer_context, sizeof(c->commands.transfer_context), "transfer");
    c->commands.originate_timeout_ms = 30000;
    snprintf(c->gateway.id, sizeof(c->gateway.id), "gw1");
    snprintf(c->gateway.listen, sizeof(c->gateway.listen), "127.0.0.1:8080");
    snprintf(c->gateway.www_dir, sizeof(c->gateway.www_dir), "gateway/www");
    snprintf(c->gateway.jwt_alg, sizeof(c->gateway.jwt_alg), "HS256");
    c->gateway.jwt_leeway_s = 30;
    c->gateway.max_frame = 65536;
    c->gateway.max_msgs_per_s = 20;
    c->gateway.max_connections = 20000;
    c->gateway.idle_timeout_s = 120;
    c->gateway.command_ttl_s = 30;
    c->gateway.history = 500;
    c->gateway.max_queue_kb = 1024;
}



/* Ids end up in topic names, CloudEvents ids and JSON written without
 * escaping, so they are restricted to a safe alphabet. */
static int valid_id(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_') return 0;
    return 1;
}

static int copy_string(config_t *cf, const char *path, char *out, size_t outlen,
                       char *err, size_t errlen) {
    const char *v;
    if (!config_lookup_string(cf, path, &v)) {
        if (config_lookup(cf, path)) {
            snprintf(err, errlen, "setting %s must be a string", path);
            return -1;
        }
        return 0;
    }
    if (strlen(v) >= outlen) {
        snprintf(err, errlen, "setting %s is too long (max %zu)", path, outlen - 1);
        return -1;
    }
    snprintf(out, outlen, "%s", v);
    return 0;
}

static int copy_int(config_t *cf, const char *path, int *out, int min, int max,
                    char *err, size_t errlen) {
    int v;
    if (!config_lookup_int(cf, path, &v)) {
        if (config_lookup(cf, path)) {
            snprintf(err, errlen, "setting %s must be an integer", path);
            return -1;
        }
        return 0;
    }
    if (v < min || v > max) {
        snprintf(err, errlen, "setting %s = %d is out of range [%d, %d]", path, v, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

/* libconfig's own lookup leaves a wrong type unsaid; "enabled = 0;" must
 * not leave commands on. */
static int copy_bool(config_t *cf, const char *path, int *out, char *err, size_t errlen) {
    config_setting_t *st = config_lookup(cf, path);
    if (!st) return 0;
    if (config_setting_type(st) != CONFIG_TYPE_BOOL) {
        snprintf(err, errlen, "setting %s must be true or false", path);
        return -1;
    }
    *out = config_setting_get_bool(st);
    return 0;
}

static int read_secret_file(const char *path, char *out, size_t outlen, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "agent.ami.secret_file %s: %s", path, strerror(errno));
        return -1;
    }
    size_t n = fread(out, 1, outlen - 1, f);
    fclose(f);
    out[n] = '\0';
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r')) out[--n] = '\0';
    return 0;
}

static int load_kafka(callbus_config *c, config_t *cf, char *err, size_t errlen) {
    config_setting_t *list = config_lookup(cf, "kafka");
    if (!list) return 0;
    if (!config_setting_is_aggregate(list)) {
        snprintf(err, errlen, "setting kafka must be a list of \"name=value\" strings");
        return -1;
    }
    for (int i = 0; i < config_setting_length(list); i++) {
        const char *s = config_setting_get_string_elem(list, i);
        if (!s) {
            snprintf(err, errlen, "kafka[%d] must be a \"name=value\" string", i);
            return -1;
        }
        if (config_set_kafka(c, s, err, errlen) < 0) return -1;
    }
    return 0;
}

/* An interface goes into AMI actions (QueuePause, ChanSpy): a channel
 * technology, a slash, and no byte that could end an AMI header. */
static int interface_ok(const char *s) {
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || !slash[1]) return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == 0x7f) return 0;
    return 1;
}

static int load_operators(callbus_config *c, config_t *cf, char *err, size_t errlen) {
    config_setting_t *list = config_lookup(cf, "operators");
    if (!list) return 0;
    int n = config_setting_length(list);
    c->operators = calloc((size_t)n, sizeof(*c->operators));
    for (int i = 0; i < n; i++) {
        config_setting_t *op = config_setting_get_elem(list, i);
        const char *id = NULL, *iface = NULL, *name = NULL;
        if (!op || !config_setting_lookup_string(op, "id", &id) ||
            !config_setting_lookup_string(op, "interface", &iface)) {
            snprintf(err, errlen, "operators[%d] needs id and interface strings", i);
            return -1;
        }
        if (!valid_id(id)) {
            snprintf(err, errlen, "operators[%d].id \"%s\" may hold only letters, digits, - and _", i, id);
            return -1;
        }
        if (!interface_ok(iface)) {
            snprintf(err, errlen, "operators[%d].interface \"%s\" must be TECH/resource (e.g. PJSIP/op101), "
                     "without spaces or control characters", i, iface);
            return -1;
        }
        if (config_setting_get_member(op, "name") && !config_setting_lookup_string(op, "name", &name)) {
            snprintf(err, errlen, "operators[%d].name must be a string", i);
            return -1;
        }
        config_operator *o = &c->operators[c->operator_count++];
        o->id = strdup(id);
        o->interface = strdup(iface);
        o->name = name ? strdup(name) : NULL;
    }
    return 0;
}

static int load_agent(callbus_config *c, config_t *cf, char *err, size_t errlen) {
    int spool_mb = (int)(c->agent.spool_max_bytes >> 20);
    int max_line = (int)c->agent.max_line, max_headers = (int)c->agent.max_headers;
    char secret_file[PATH_MAX] = "";
    if (copy_string(cf, "agent.id", c->agent.id, sizeof(c->agent.id), err, errlen) ||
        copy_string(cf, "agent.ami.host", c->agent.ami_host, sizeof(c->agent.ami_host), err, errlen) ||
        copy_int(cf, "agent.ami.port", &c->agent.ami_port, 1, 65535, err, errlen) ||
        copy_string(cf, "agent.ami.username", c->agent.ami_username, sizeof(c->agent.ami_username), err, errlen) ||
        copy_string(cf, "agent.ami.secret", c->agent.ami_secret, sizeof(c->agent.ami_secret), err, errlen) ||
        copy_string(cf, "agent.ami.secret_file", secret_file, sizeof(secret_file), err, errlen) ||
        copy_int(cf, "agent.ami.ping_interval", &c->agent.ping_interval_s, 1, 3600, err, errlen) ||
        copy_int(cf, "agent.ami.ping_timeout", &c->agent.ping_timeout_s, 1, 3600, err, errlen) ||
        copy_int(cf, "agent.ami.reconnect_min_ms", &c->agent.reconnect_min_ms, 10, 600000, err, errlen) ||
        copy_int(cf, "agent.ami.reconnect_max_ms", &c->agent.reconnect_max_ms, 10, 3600000, err, errlen) ||
        copy_int(cf, "agent.ami.max_line", &max_line, 1024, 16 << 20, err, errlen) ||
        copy_int(cf, "agent.ami.max_headers", &max_headers, 128, 1 << 20, err, errlen) ||
        copy_string(cf, "agent.spool.dir", c->agent.spool_dir, sizeof(c->agent.spool_dir), err, errlen) ||
        copy_int(cf, "agent.spool.max_mb", &spool_mb, 1, 1 << 20, err, errlen) ||
        copy_bool(cf, "agent.spool.write_ahead", &c->agent.spool_write_ahead, err, errlen) ||
        copy_string(cf, "agent.http.listen", c->agent.http_listen, sizeof(c->agent.http_listen), err, errlen) ||
        copy_int(cf, "agent.status_interval", &c->agent.status_interval_s, 1, 86400, err, errlen))
        return -1;
    c->agent.spool_max_bytes = (long long)spool_mb << 20;
    c->agent.max_line = max_line;
    c->agent.max_headers = max_headers;
    if (secret_file[0] &&
        read_secret_file(secret_file, c->agent.ami_secret, sizeof(c->agent.ami_secret), err, errlen))
        return -1;
    if (!valid_id(c->agent.id)) {
        snprintf(err, errlen, "agent.id \"%s\" may hold only letters, digits, - and _", c->agent.id);
        return -1;
    }
    if (c->agent.reconnect_max_ms < c->agent.reconnect_min_ms) {
        snprintf(err, errlen, "agent.ami.reconnect_max_ms must be >= reconnect_min_ms");
        return -1;
    }
    return 0;
}

static void free_strings(char **list, size_t n) {
    for (size_t i = 0; i < n; i++) free(list[i]);
    free(list);
}

/* A list of strings; with none given, the defaults. */
static int load_strings(config_t *cf, const char *path, char ***out, size_t *count,
                        const char *const *defaults, char *err, size_t errlen) {
    config_setting_t *list = config_lookup(cf, path);
    size_t n = 0;
    if (list && !config_setting_is_aggregate(list)) {
        snprintf(err, errlen, "setting %s must be a list of strings", path);
        return -1;
    }
    if (list) n = (size_t)config_setting_length(list);
    else while (defaults[n]) n++;
    free_strings(*out, *count);
    *out = calloc(n + 1, sizeof(char *));
    *count = n;
    for (size_t i = 0; i < n; i++) {
        const char *s = list ? config_setting_get_string_elem(list, (int)i) : defaults[i];
        if (!s) {
            snprintf(err, errlen, "%s[%zu] must be a string", path, i);
            return -1;
        }
        (*out)[i] = strdup(s);
    }
    return 0;
}

/* Patterns are compiled again by the executor; checking here lets
 * --check-config catch a typo before the agent runs. */
static int check_regexes(const char *what, char **patterns, size_t n, char *err, size_t errlen) {
    for (size_t i = 0; i < n; i++) {
        regex_t re;
        int rc = regcomp(&re, patterns[i], REG_EXTENDED | REG_NOSUB);
        if (rc) {
            char e[128];
            regerror(rc, &re, e, sizeof(e));
            snprintf(err, errlen, "%s[%zu] \"%s\" is not a valid extended regex: %s", what, i, patterns[i], e);
            return -1;
        }
        regfree(&re);
    }
    return 0;
}

static const char *const default_contexts[] = {"c2c-outbound", NULL};
static const char *const default_numbers[] = {"^\\+?[0-9]{3,15}$", NULL};
static const char *const default_transfers[] = {"^[0-9]{2,6}$", NULL};

static int load_commands(callbus_config *c, config_t *cf, char *err, size_t errlen) {
    if (copy_bool(cf, "commands.enabled", &c->commands.enabled, err, errlen) ||
        copy_string(cf, "commands.journal", c->commands.journal, sizeof(c->commands.journal), err, errlen) ||
        copy_int(cf, "commands.max_ttl", &c->commands.max_ttl_s, 1, 86400, err, errlen) ||
        copy_int(cf, "commands.result_timeout", &c->commands.result_timeout_s, 1, 3600, err, errlen) ||
        copy_string(cf, "commands.operator_phone", c->commands.operator_phone, sizeof(c->commands.operator_phone), err, errlen) ||
        copy_string(cf, "commands.originate_context", c->commands.originate_context, sizeof(c->commands.originate_context), err, errlen) ||
        copy_string(cf, "commands.answer_context", c->commands.answer_context, sizeof(c->commands.answer_context), err, errlen) ||
        copy_string(cf, "commands.transfer_context", c->commands.transfer_context, sizeof(c->commands.transfer_context), err, errlen) ||
        copy_int(cf, "commands.originate_timeout_ms", &c->commands.originate_timeout_ms, 1000, 600000, err, errlen) ||
        load_strings(cf, "commands.allowed_contexts", &c->commands.allowed_contexts, &c->commands.allowed_context_count, default_contexts, err, errlen) ||
        load_strings(cf, "commands.number_patterns", &c->commands.number_patterns, &c->commands.number_pattern_count, default_numbers, err, errlen) ||
        load_strings(cf, "commands.transfer_patterns", &c->commands.transfer_patterns, &c->commands.transfer_pattern_count, default_transfers, err, errlen))
        return -1;
    if (check_regexes("commands.number_patterns", c->commands.number_patterns,
                      c->commands.number_pattern_count, err, errlen) ||
        check_regexes("commands.transfer_patterns", c->commands.transfer_patterns,
                      c->commands.transfer_pattern_count, err, errlen))
        return -1;
    const char *pct = strstr(c->commands.operator_phone, "%s");
    if (!pct || strchr(pct + 2, '%') || strchr(c->commands.operator_phone, '%') != pct) {
        snprintf(err, errlen, "commands.operator_phone must contain %%s exactly once (the operator id)");
        return -1;
    }
    return 0;
}

static const char *const no_strings[] = {NULL};

static int load_gateway(callbus_config *c, config_t *cf, char *err, size_t errlen) {
    if (copy_string(cf, "gateway.id", c->gateway.id, sizeof(c->gateway.id), err, errlen) ||
        copy_string(cf, "gateway.listen", c->gateway.listen, sizeof(c->gateway.listen), err, errlen) ||
        copy_string(cf, "gateway.www_dir", c->gateway.www_dir, sizeof(c->gateway.www_dir), err, errlen) ||
        copy_string(cf, "gateway.jwt_alg", c->gateway.jwt_alg, sizeof(c->gateway.jwt_alg), err, errlen) ||
        copy_string(cf, "gateway.jwt_secret", c->gateway.jwt_secret, sizeof(c->gateway.jwt_secret), err, errlen) ||
        copy_string(cf, "gateway.jwt_key_file", c->gateway.jwt_key_file, sizeof(c->gateway.jwt_key_file), err, errlen) ||
        copy_string(cf, "gateway.jwt_issuer", c->gateway.jwt_issuer, sizeof(c->gateway.jwt_issuer), err, errlen) ||
        copy_int(cf, "gateway.jwt_leeway", &c->gateway.jwt_leeway_s, 0, 3600, err, errlen) ||
        copy_string(cf, "gateway.tls_cert", c->gateway.tls_cert, sizeof(c->gateway.tls_cert), err, errlen) ||
        copy_string(cf, "gateway.tls_key", c->gateway.tls_key, sizeof(c->gateway.tls_key), err, errlen) ||
        copy_int(cf, "gateway.max_frame", &c->gateway.max_frame, 256, 16 << 20, err, errlen) ||
        copy_int(cf, "gateway.max_msgs_per_s", &c->gateway.max_msgs_per_s, 1, 100000, err, errlen) ||
        copy_int(cf, "gateway.max_connections", &c->gateway.max_connections, 1, 1000000, err, errlen) ||
        copy_int(cf, "gateway.idle_timeout", &c->gateway.idle_timeout_s, 1, 86400, err, errlen) ||
        copy_int(cf, "gateway.command_ttl", &c->gateway.command_ttl_s, 1, 86400, err, errlen) ||
        copy_int(cf, "gateway.history", &c->gateway.history, 0, 1000000, err, errlen) ||
        copy_int(cf, "gateway.max_queue_kb", &c->gateway.max_queue_kb, 16, 1 << 20, err, errlen) ||
        load_strings(cf, "gateway.origins", &c->gateway.origins, &c->gateway.origin_count, no_strings, err, errlen))
        return -1;
    if (!valid_id(c->gateway.id)) {
        snprintf(err, errlen, "gateway.id \"%s\" may hold only letters, digits, - and _", c->gateway.id);
        return -1;
    }
    if (strcmp(c->gateway.jwt_alg, "HS256") && strcmp(c->gateway.jwt_alg, "RS256")) {
        snprintf(err, errlen, "gateway.jwt_alg must be \"HS256\" or \"RS256\"");
        return -1;
    }
    if (!*c->gateway.tls_cert != !*c->gateway.tls_key) {
        snprintf(err, errlen, "gateway.tls_cert and gateway.tls_key go together");
        return -1;
    }
    if (!strrchr(c->gateway.listen, ':')) {
        snprintf(err, errlen, "gateway.listen must be \"host:port\"");
        return -1;
    }
    return 0;
}

static int load_file(callbus_config *c, const char *path, char *err, size_t errlen) {
    config_t cf;
    config_init(&cf);
    if (!config_read_file(&cf, path)) {
        if (config_error_type(&cf) == CONFIG_ERR_FILE_IO)
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        else
            snprintf(err, errlen, "%s:%d: %s", path, config_error_line(&cf), config_error_text(&cf));
        config_destroy(&cf);
        return -1;
    }
    char msg[512] = "";
    int rc = 0;
    if (copy_string(&cf, "site", c->site, sizeof(c->site), msg, sizeof(msg)) ||
        copy_string(&cf, "topic_prefix", c->topic_prefix, sizeof(c->topic_prefix), msg, sizeof(msg)) ||
        copy_string(&cf, "log_level", c->log_level, sizeof(c->log_level), msg, sizeof(msg)) ||
        copy_string(&cf, "state_dir", c->state_dir, sizeof(c->state_dir), msg, sizeof(msg)) ||
        load_kafka(c, &cf, msg, sizeof(msg)) || load_operators(c, &cf, msg, sizeof(msg)) ||
        load_agent(c, &cf, msg, sizeof(msg)) || load_commands(c, &cf, msg, sizeof(msg)) ||
        load_gateway(c, &cf, msg, sizeof(msg)))
        rc = -1;
    if (rc == 0 && !valid_id(c->site)) {
        snprintf(msg, sizeof(msg), "site \"%s\" may hold only letters, digits, - and _", c->site);
        rc = -1;
    }
    if (rc == 0 && !valid_id(c->topic_prefix) ) {
        snprintf(msg, sizeof(msg), "topic_prefix \"%s\" may hold only letters, digits, - and _", c->topic_prefix);
        rc = -1;
    }
    if (rc < 0) snprintf(err, errlen, "%s: %s", path, msg);
    config_destroy(&cf);
    return rc;
}

int config_load(callbus_config *c, const char *path, char *err, size_t errlen) {
    set_defaults(c);
    if (!path) {
        config_t empty;
        config_init(&empty);
        int rc = load_commands(c, &empty, err, errlen);
        config_destroy(&empty);
        return rc;
    }
    return load_file(c, path, err, errlen);
}

int config_set_kafka(callbus_config *c, const char *name_eq_value, char *err, size_t errlen) {
    const char *eq = strchr(name_eq_value, '=');
    if (!eq || eq == name_eq_value) {
        snprintf(err, errlen, "kafka property \"%s\" is not name=value", name_eq_value);
        return -1;
    }
    char *key = strndup(name_eq_value, (size_t)(eq - name_eq_value));
    for (size_t i = 0; i < c->kafka_count; i++) {
        if (strcmp(c->kafka[i].key, key) == 0) {
            free(key);
            free(c->kafka[i].value);
            c->kafka[i].value = strdup(eq + 1);
            return 0;
        }
    }
    c->kafka = realloc(c->kafka, (c->kafka_count + 1) * sizeof(*c->kafka));
    c->kafka[c->kafka_count].key = key;
    c->kafka[c->kafka_count].value = strdup(eq + 1);
    c->kafka_count++;
    return 0;
}

const char *config_get_kafka(const callbus_config *c, const char *name) {
    for (size_t i = 0; i < c->kafka_count; i++)
        if (strcmp(c->kafka[i].key, name) == 0) return c->kafka[i].value;
    return NULL;
}

void config_topic(const callbus_config *c, const char *kind, char *out, size_t outlen) {
    snprintf(out, outlen, "%s.%s.%s", c->topic_prefix, c->site, kind);
}

void config_free(callbus_config *c) {
    for (size_t i = 0; i < c->kafka_count; i++) {
        free(c->kafka[i].key);
        free(c->kafka[i].value);
    }
    free(c->kafka);
    for (size_t i = 0; i < c->operator_count; i++) {
        free(c->operators[i].id);
        free(c->operators[i].interface);
        free(c->operators[i].name);
    }
    free(c->operators);
    free_strings(c->commands.allowed_contexts, c->commands.allowed_context_count);
    free_strings(c->commands.number_patterns, c->commands.number_pattern_count);
    free_strings(c->commands.transfer_patterns, c->commands.transfer_pattern_count);
    c->commands.allowed_contexts = c->commands.number_patterns = c->commands.transfer_patterns = NULL;
    c->commands.allowed_context_count = c->commands.number_pattern_count = c->commands.transfer_pattern_count = 0;
    free_strings(c->gateway.origins, c->gateway.origin_count);
    c->gateway.origins = NULL;
    c->gateway.origin_count = 0;
    c->kafka = NULL;
    c->operators = NULL;
    c->kafka_count = c->operator_count = 0;
}
