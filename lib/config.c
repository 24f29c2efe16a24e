/* config.c -- the settings table, and loading and checking a file by it
 * (see config.h).
 *
 * Every setting is one row of config_settings below: name, type, default,
 * range, check and doc. Loading, --check-config, docs/configuration.md and
 * the example files all come from that row (the last two through
 * tools/configdoc, checked by tests/integration/test_docs.py).
 *
 * A new setting: its field in callbus_config (config.h), its row below among
 * its section's rows (a new section also gets its config_sections doc), and
 * `make config-docs`. A check that compares settings hangs on one of them. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* ---------------------------------------------------------------- checks */

static const char *text_at(const callbus_config *c, const callbus_setting *s) {
    return (const char *)c + s->offset;
}

/* Ids end up in topic names, CloudEvents ids and JSON written without
 * escaping, so they are restricted to a safe alphabet. */
static int valid_id(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_') return 0;
    return 1;
}

static int check_id(const callbus_config *c, const callbus_setting *s, char *err, size_t errlen) {
    if (valid_id(text_at(c, s))) return 0;
    snprintf(err, errlen, "%s \"%s\" may hold only letters, digits, - and _", s->name, text_at(c, s));
    return -1;
}

static int check_log_level(const callbus_config *c, const callbus_setting *s, char *err, size_t errlen) {
    if (log_level_parse(text_at(c, s)) >= 0) return 0;
    snprintf(err, errlen, "%s \"%s\" must be debug, info, warn or error", s->name, text_at(c, s));
    return -1;
}

/* An IANA zone name as glibc finds it: a file under $TZDIR (or the system's
 * zoneinfo). glibc takes an unknown name silently as UTC, so a typo would
 * move every wallboard's midnight without a word. */
static int check_timezone(const callbus_config *c, const callbus_setting *s, char *err, size_t errlen) {
    const char *tz = text_at(c, s);
    int safe = *tz && *tz != '/' && !strstr(tz, "..");
    for (const char *p = tz; safe && *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("/_+-", *p)) safe = 0;
    if (safe && strcmp(tz, "UTC") == 0) return 0;
    const char *dir = getenv("TZDIR");
    if (!dir || !*dir) dir = "/usr/share/zoneinfo";
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, tz);
    FILE *f = safe ? fopen(path, "rb") : NULL;
    char magic[4] = "";
    int ok = f && fread(magic, 1, 4, f) == 4 && memcmp(magic, "TZif", 4) == 0;
    if (f) fclose(f);
    if (ok) return 0;
    snprintf(err, errlen, "%s \"%s\" is not a time zone this machine knows (an IANA name such as "
             "\"Europe/Tallinn\", under %s; install tzdata)", s->name, tz, dir);
    return -1;
}

static int check_reconnect(const callbus_config *c, const callbus_setting *s, char *err, size_t errlen) {
    (void)s;
    if (c->agent.reconnect_max_ms >= c->agent.reconnect_min_ms) return 0;
    snprintf(err, errlen, "agent.ami.reconnect_max_ms must be >= reconnect_min_ms");
    return -1;
}

/* Patterns are compiled again by the executor; checking here lets
 * --check-config catch a typo before the agent runs. */
static int check_regexes(const callbus_config *c, const callbus_setting *s, char *err, size_t errlen) {
    char *const *patterns = *(char *const *const *)text_at(c, s);
    size_t n = *(const size_t *)((const char *)c + s->count_offset);
    for (size_t i = 0; i < n; i++) {
        regex_t re;
        int rc = regcomp(&re, patterns[i], REG_EXTENDED | REG_NOSUB);
        if (rc) {
            char e[128];
            regerror(rc, &re, e, sizeof(e));
            snprintf(err, errlen, "%s[%zu] \"%s\" is not a valid extended regex: %s", s->name, i, patterns[i], e);
            return -1;
        }
        regfree(&re);
    }
    return 0;
}

/* Channel variable names as the command decoder accepts them, so that a
 * listed name can match at all (an optional `_`/`__` inheritance prefix is
 * part of the name). */
static int check_variable_names(const callbus_config *c, const callbus_setting *s, char *err, size_t errlen) {
    char *const *names = *(char *const *const *)text_at(c, s);
    size_t n = *(const size_t *)((const char *)c + s->count_offset);
    for (size_t i = 0; i < n; i++) {
        const char *p = names[i];
        size_t len = strlen(p);
        int ok = len > 0 && len < 64 && !isdigit((unsigned char)*p);
        for (; ok && *p; p++) ok = isalnum((unsigned char)*p) || *p == '_';
        if (!ok) {
            snprintf(err, errlen, "%s[%zu] \"%s\" is not a variable name (letters, digits and _, not "
                     "starting with a digit, at most 63)", s->name, i, names[i]);
            return -1;
        }
    }
    return 0;
}

static int check_operator_phone(const callbus_config *c, const callbus_setting *s, char *err, size_t errlen) {
    const char *phone = text_at(c, s), *pct = strstr(phone, "%s");
    if (pct && !strchr(pct + 2, '%') && strchr(phone, '%') == pct) return 0;
    snprintf(err, errlen, "%s must contain %%s exactly once (the operator id)", s->name);
    return -1;
}

static int check_jwt_alg(const callbus_config *c, const callbus_setting *s, char *err, size_t errlen) {
    if (!strcmp(text_at(c, s), "HS256") || !strcmp(text_at(c, s), "RS256")) return 0;
    snprintf(err, errlen, "%s must be \"HS256\" or \"RS256\"", s->name);
    return -1;
}

static int check_tls_pair(const callbus_config *c, const callbus_setting *s, char *err, size_t errlen) {
    (void)s;
    if (!*c->gateway.tls_cert == !*c->gateway.tls_key) return 0;
    snprintf(err, errlen, "gateway.tls_cert and gateway.tls_key go together");
    return -1;
}

/* A file read later, at start: --check-config says now that it cannot be. */
static int check_readable(const callbus_config *c, const callbus_setting *s, char *err, size_t errlen) {
    const char *path = text_at(c, s);
    FILE *f = *path ? fopen(path, "r") : NULL;
    if (!*path || f) {
        if (f) fclose(f);
        return 0;
    }
    snprintf(err, errlen, "%s %s: cannot read: %s", s->name, path, strerror(errno));
    return -1;
}

static int check_host_port(const callbus_config *c, const callbus_setting *s, char *err, size_t errlen) {
    if (strrchr(text_at(c, s), ':')) return 0;
    snprintf(err, errlen, "%s must be \"host:port\"", s->name);
    return -1;
}

/* ---------------------------------------------------------------- lists with their own loader */

static int load_kafka(callbus_config *c, config_setting_t *list, char *err, size_t errlen) {
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

static int operator_members_known(config_setting_t *op, int i, char *err, size_t errlen) {
    for (int m = 0; m < config_setting_length(op); m++) {
        const char *name = config_setting_name(config_setting_get_elem(op, m));
        if (name && strcmp(name, "id") && strcmp(name, "interface") && strcmp(name, "name")) {
            snprintf(err, errlen, "operators[%d].%s is not a setting (id, interface, name)", i, name);
            return -1;
        }
    }
    return 0;
}

static int load_operator(config_operator *o, config_setting_t *op, int i, char *err, size_t errlen) {
    const char *id = NULL, *iface = NULL, *name = NULL;
    if (!op || !config_setting_lookup_string(op, "id", &id) ||
        !config_setting_lookup_string(op, "interface", &iface)) {
        snprintf(err, errlen, "operators[%d] needs id and interface strings", i);
        return -1;
    }
    if (operator_members_known(op, i, err, errlen) < 0) return -1;
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
    o->id = strdup(id);
    o->interface = strdup(iface);
    o->name = name ? strdup(name) : NULL;
    return 0;
}

static int load_operators(callbus_config *c, config_setting_t *list, char *err, size_t errlen) {
    if (!config_setting_is_list(list)) {
        snprintf(err, errlen, "setting operators must be a list of groups: ( { id = ...; interface = ...; } )");
        return -1;
    }
    int n = config_setting_length(list);
    c->operators = calloc((size_t)n, sizeof(*c->operators));
    for (int i = 0; i < n; i++) {
        if (load_operator(&c->operators[c->operator_count], config_setting_get_elem(list, i), i, err, errlen) < 0)
            return -1;
        c->operator_count++;
    }
    return 0;
}

/* ---------------------------------------------------------------- the table */

#define ALL (CONFIG_AGENT | CONFIG_GATEWAY | CONFIG_CLI)
#define AT(f) .offset = offsetof(callbus_config, f), .size = sizeof(((callbus_config *)0)->f)
#define STRING(n, f, def) .name = n, .type = CONFIG_STRING, AT(f), .text_default = def
#define INT(n, f, def, lo, hi) .name = n, .type = CONFIG_INT, AT(f), .number_default = def, .min = lo, .max = hi
#define BOOL(n, f, def) .name = n, .type = CONFIG_BOOL, AT(f), .number_default = def
#define STRINGS(n, f, count, def) \
    .name = n, .type = CONFIG_STRINGS, AT(f), .count_offset = offsetof(callbus_config, count), .list_default = def
#define UNSET .default_doc = "unset"

static const char *const default_contexts[] = {"c2c-outbound", NULL};
static const char *const default_numbers[] = {"^\\+?[0-9]{3,15}$", NULL};
static const char *const default_transfers[] = {"^[0-9]{2,6}$", NULL};
static const char *const no_strings[] = {NULL};

const callbus_section config_sections[] = {
    {"", "Read by every program (callbus-agent, callbus-gateway and the callbus CLI) unless a row says "
         "otherwise."},
    {"agent", "callbus-agent: its id, the AMI link, the disk spool, metrics and status."},
    {"agent.ami", "The AMI session with Asterisk (a `manager.conf` user)."},
    {"agent.spool", "The disk spool: where messages wait while the broker is away, and are written ahead."},
    {"agent.http", "The agent's HTTP port: Prometheus `/metrics` and `/health`."},
    {"agent.state", "The live state the agent publishes to `<topic_prefix>.<site>.state.calls`, "
                    "`.state.operators` and `.state.queues` (docs/messages.md): the wallboard's figures and "
                    "how the agent reads them back at start."},
    {"agent.standby", "Two agents for one Asterisk, a leader and a standby that takes over (docs/operations.md, "
                      "Standby agent)."},
    {"commands", "Commands from `<topic_prefix>.<site>.commands`, executed by the agent at most once."},
    {"gateway", "callbus-gateway: the operators' WebSocket API and page, their tokens, and the limits "
                "each connection gets. It also reads `site`, `topic_prefix`, `log_level` and `kafka`."},
    {NULL, NULL},
};

const callbus_setting config_settings[] = {
    {STRING("site", site, "site1"), .readers = ALL, .check = check_id,
     .doc = "Site id. Letters, digits, `-` and `_` only. It is part of every topic name and event id; "
            "the gateway accepts only tokens whose `site` claim is this."},
    {STRING("topic_prefix", topic_prefix, "callbus"), .readers = ALL, .check = check_id,
     .doc = "Topics are named `<topic_prefix>.<site>.<kind>` (`ami`, `calls`, `operators`, `status`, "
            "`commands`, `results`, `state.calls`, `state.operators`, `state.queues`). Same alphabet as "
            "`site`."},
    {STRING("log_level", log_level, "info"), .readers = CONFIG_AGENT | CONFIG_GATEWAY, .check = check_log_level,
     .doc = "`debug`, `info`, `warn` or `error`. Logs go to stderr, one line each. `-v` forces `debug`."},
    {STRING("state_dir", state_dir, "/var/lib/callbus"), .readers = CONFIG_AGENT,
     .doc = "Holds the `epoch` file and, by default, the spool (`<state_dir>/spool`) and the command "
            "journal. Created with mode 0750."},
    {STRING("timezone", timezone, "UTC"), .readers = CONFIG_AGENT, .check = check_timezone,
     .example = "\"Europe/Tallinn\"", .example_commented = 1,
     .doc = "The site's time zone, an IANA name (`Europe/Tallinn`, `Europe/Moscow`): the queues' and "
            "operators' counters of \"today\" start at its local midnight, daylight saving time included. "
            "It must be a zone of the machine's tzdata (`/usr/share/zoneinfo`, or `$TZDIR`)."},
    {.name = "kafka", .type = CONFIG_CUSTOM, .readers = ALL, .load = load_kafka,
     .type_doc = "list of `\"name=value\"` strings", .default_doc = "empty list",
     .example = "[ \"bootstrap.servers=127.0.0.1:9092\" ]",
     .doc = "librdkafka properties, handed to librdkafka as they are (like `kcat -X`), so any librdkafka "
            "property works, including the `security.protocol`, `ssl.*` and `sasl.*` ones; you must set "
            "`bootstrap.servers`. The agent first sets its own defaults, and anything here overrides them: "
            "`enable.idempotence=true`, `acks=all`, `message.timeout.ms=0` (never give up on a message), "
            "`linger.ms=0`, `batch.num.messages=10000`, `compression.type=lz4`, "
            "`queue.buffering.max.messages=200000`, `queue.buffering.max.kbytes=3072` (the in-memory "
            "bound before messages go to the disk spool: 3 MiB with `agent.spool.write_ahead`, where every "
            "message is on disk already, 131072 without it or with `agent.standby`), "
            "`batch.size=262144` (with `agent.spool.write_ahead` only: it bounds what draining the spool "
            "after an outage holds in memory; librdkafka's default is 1000000), "
            "`client.id=callbus-agent` and "
            "`allow.auto.create.topics=false` (the agent creates its topics itself, the state topics "
            "compacted, and retries until the broker answers). Without `agent.standby` the agent runs two "
            "producers with these properties: the state topics and command results, which operators wait "
            "on, have a connection of their own, not queued behind the AMI stream's requests; that one has "
            "`queue.buffering.max.kbytes=1024` and `batch.size=65536` with `agent.spool.write_ahead`. "
            "With a standby, one transactional producer writes every topic. Anything set here applies to both. "
            "`-X name=value` "
            "on the command line overrides a property from here."},
    {.name = "operators", .type = CONFIG_CUSTOM, .readers = CONFIG_AGENT, .load = load_operators,
     .type_doc = "list of groups", .default_doc = "none",
     .example = "( { id = \"alice\"; interface = \"PJSIP/1001\"; name = \"Alice Smith\"; } )",
     .example_commented = 1,
     .doc = "An explicit list of operator identities; `id` and `interface` are required, `name` is "
            "optional, and `id` uses the alphabet of `site`. `interface` is `TECH/resource`, without "
            "spaces or control characters. Entries here win over the default rule, which takes the "
            "resource of the queue member's interface (`PJSIP/op101` -> `op101`, `Local/op101@phones` -> "
            "`op101`)."},

    {STRING("agent.id", agent.id, "agent1"), .readers = CONFIG_AGENT, .check = check_id,
     .doc = "This agent's id. It is the key of its status messages and part of event ids. Same alphabet "
            "as `site`."},
    {STRING("agent.ami.host", agent.ami_host, "127.0.0.1"), .readers = CONFIG_AGENT,
     .doc = "Asterisk's AMI host."},
    {INT("agent.ami.port", agent.ami_port, 5038, 1, 65535), .readers = CONFIG_AGENT, .doc = "AMI port."},
    {STRING("agent.ami.username", agent.ami_username, "callbus"), .readers = CONFIG_AGENT,
     .doc = "AMI user (a `manager.conf` section)."},
    {STRING("agent.ami.secret", agent.ami_secret, ""), .readers = CONFIG_AGENT,
     .example = "\"...\"", .example_commented = 1,
     .doc = "AMI password. Prefer `secret_file`."},
    {.name = "agent.ami.secret_file", .type = CONFIG_FILE, AT(agent.ami_secret), .readers = CONFIG_AGENT, UNSET,
     .example = "\"/etc/callbus/ami.secret\"", .example_commented = 1,
     .doc = "The file's content is the secret, with trailing CR/LF stripped; it is read at load, so "
            "`--check-config` fails when it cannot be read. If both are set, it wins over `secret`. Make "
            "it mode 0600, owned by the agent's user. The agent does not check the mode."},
    {BOOL("agent.ami.tls", agent.ami_tls, 0), .readers = CONFIG_AGENT,
     .doc = "AMI over TLS, as Asterisk serves it with `manager.conf`'s `tlsenable = yes` (on `tlsbindaddr`, "
            "port 5039 by default: set `port` to it). Asterisk's certificate is always verified, its chain "
            "against `tls_ca_file` and its name against `tls_server_name`; a link that fails either is "
            "refused, with the reason in the log, and retried with the usual backoff."},
    {STRING("agent.ami.tls_ca_file", agent.ami_tls_ca_file, ""), .readers = CONFIG_AGENT, .check = check_readable,
     .default_doc = "the system's CAs", .example = "\"/etc/callbus/asterisk-ca.pem\"", .example_commented = 1,
     .doc = "PEM file of the CA certificates that may have signed Asterisk's certificate (for a self-signed "
            "one, that certificate itself). `--check-config` fails when it cannot be read; the start fails "
            "(exit 1) when it holds no certificate."},
    {STRING("agent.ami.tls_server_name", agent.ami_tls_server_name, ""), .readers = CONFIG_AGENT,
     .default_doc = "`host`", .example = "\"pbx1.riga.example\"", .example_commented = 1,
     .doc = "The name Asterisk's certificate must carry (a DNS name, or an IP address matched as one), "
            "when it is not `host`; also sent as SNI."},
    {INT("agent.ami.ping_interval", agent.ping_interval_s, 10, 1, 3600), .readers = CONFIG_AGENT,
     .doc = "Seconds between keep-alive `Ping`s."},
    {INT("agent.ami.ping_timeout", agent.ping_timeout_s, 5, 1, 3600), .readers = CONFIG_AGENT,
     .doc = "Seconds without a Ping reply before the agent drops the link and reconnects. Connect plus "
            "login must finish within twice this."},
    {INT("agent.ami.reconnect_min_ms", agent.reconnect_min_ms, 500, 10, 600000), .readers = CONFIG_AGENT,
     .doc = "Reconnect backoff: starts here and doubles, with jitter, up to `reconnect_max_ms`."},
    {INT("agent.ami.reconnect_max_ms", agent.reconnect_max_ms, 30000, 10, 3600000), .readers = CONFIG_AGENT,
     .check = check_reconnect, .doc = "Backoff cap; at least `reconnect_min_ms`."},
    {INT("agent.ami.max_line", agent.max_line, 65536, 1024, 16 << 20), .readers = CONFIG_AGENT,
     .doc = "Bytes. Longer AMI lines are refused: counted, published as `kind: refused`, and announced as "
            "a `parse_error` gap."},
    {INT("agent.ami.max_headers", agent.max_headers, 1024, 128, 1 << 20), .readers = CONFIG_AGENT,
     .doc = "Messages with more headers are refused in the same way."},
    {STRING("agent.spool.dir", agent.spool_dir, ""), .readers = CONFIG_AGENT,
     .default_doc = "`<state_dir>/spool`", .example = "\"/var/lib/callbus/spool\"", .example_commented = 1,
     .doc = "The disk spool directory (created with mode 0750)."},
    {INT("agent.spool.max_mb", agent.spool_max_bytes, 1024, 1, 1 << 20), .shift = 20, .readers = CONFIG_AGENT,
     .doc = "Spool size bound in MiB. Past it, messages are dropped and a `kafka_undeliverable` gap is "
            "announced. Messages already read back and not yet acknowledged by the broker stay on disk "
            "too, outside this bound (at most the in-memory bound)."},
    {BOOL("agent.spool.write_ahead", agent.spool_write_ahead, 1), .readers = CONFIG_AGENT,
     .doc = "Every message is written to the spool directory before librdkafka gets it and kept until the "
            "broker acknowledges it, so a crash of the agent loses at most the messages of the event-loop "
            "turn in progress. `false` saves that disk write; a crash then loses what librdkafka held in "
            "memory."},
    {STRING("agent.http.listen", agent.http_listen, ""), .readers = CONFIG_AGENT,
     .default_doc = "`\"\"` (off)",
     .doc = "`\"host:port\"` for `/metrics` (Prometheus) and `/health`, for example `\"127.0.0.1:9120\"`."},
    {INT("agent.status_interval", agent.status_interval_s, 30, 1, 86400), .readers = CONFIG_AGENT,
     .doc = "Seconds between periodic `callbus.agent.status` messages."},
    {INT("agent.state.service_level", agent.state_service_level_s, 20, 0, 3600), .readers = CONFIG_AGENT,
     .doc = "The service-level threshold in seconds: a queue's `service_level` is the share of callers "
            "answered after waiting at most this long, of all who left the queue (answered, abandoned, "
            "timed out)."},
    {INT("agent.state.stats_interval", agent.state_stats_interval_s, 10, 1, 3600), .readers = CONFIG_AGENT,
     .doc = "Seconds between republished `callbus.queue.stats` records of every queue, changed or not, so "
            "that `longest_wait_s` stays fresh and a day with no calls still rolls over at midnight."},
    {INT("agent.state.load_timeout", agent.state_load_timeout_s, 15, 1, 600), .readers = CONFIG_AGENT,
     .doc = "Seconds the agent may spend at start reading its state topics back (so today's counters "
            "continue). When the broker does not answer in time it starts from empty state and publishes a "
            "`state_not_recovered` gap. With `agent.standby`, also the time a new leader may spend reading "
            "the results topic back for the commands the instance leading before never answered."},

    {BOOL("agent.standby.enabled", agent.standby, 0), .readers = CONFIG_AGENT,
     .doc = "Run as one of two agents for one Asterisk (both with the same `agent.id`, on different "
            "hosts): only the leader publishes and executes commands, the other keeps its AMI link and "
            "call model warm and takes over when the leader's lease lapses. The leader's producer is "
            "transactional (`transactional.id` `callbus-agent.<site>.<agent.id>`), so a paused old leader "
            "is fenced, and its consumers must read committed messages only. No disk spool in this mode "
            "(docs/operations.md, Standby agent)."},
    {INT("agent.standby.takeover_ms", agent.takeover_ms, 3000, 500, 60000), .readers = CONFIG_AGENT,
     .doc = "Milliseconds without a lease from the leader before the standby takes over. The leader renews "
            "its lease six times in this period."},
    {INT("agent.standby.commit_interval_ms", agent.commit_interval_ms, 100, 10, 5000),
     .readers = CONFIG_AGENT,
     .doc = "The leader commits its transaction this often: consumers see its messages up to this much "
            "later than without a standby. A command's decision is committed at once."},

    {BOOL("commands.enabled", commands.enabled, 1), .readers = CONFIG_AGENT,
     .doc = "Consume the commands topic and execute commands."},
    {STRING("commands.journal", commands.journal, ""), .readers = CONFIG_AGENT,
     .default_doc = "`<state_dir>/commands.journal`", .example = "\"/var/lib/callbus/commands.journal\"",
     .example_commented = 1,
     .doc = "An fsynced record of every command id taken; it makes execution at-most-once across "
            "restarts."},
    {INT("commands.max_ttl", commands.max_ttl_s, 300, 1, 86400), .readers = CONFIG_AGENT,
     .doc = "A command whose `expires` is further ahead than this many seconds is rejected."},
    {INT("commands.result_timeout", commands.result_timeout_s, 30, 1, 3600), .readers = CONFIG_AGENT,
     .doc = "Seconds to wait for Asterisk's answer before reporting `failed` (outcome unknown, never "
            "retried)."},
    {STRING("commands.operator_phone", commands.operator_phone, "PJSIP/%s"), .readers = CONFIG_AGENT,
     .check = check_operator_phone,
     .doc = "Dial string of an operator's phone or queue interface; `%s` is the operator id and must "
            "appear exactly once. An `operators` entry's `interface` wins."},
    {STRING("commands.originate_context", commands.originate_context, "c2c-outbound"), .readers = CONFIG_AGENT,
     .doc = "The dialplan context click-to-call dials the customer's number in, unless the command names "
            "one."},
    {STRINGS("commands.allowed_contexts", commands.allowed_contexts, commands.allowed_context_count,
             default_contexts), .readers = CONFIG_AGENT,
     .doc = "The only contexts an originate may use."},
    {STRINGS("commands.number_patterns", commands.number_patterns, commands.number_pattern_count,
             default_numbers), .readers = CONFIG_AGENT, .check = check_regexes,
     .doc = "POSIX extended regexes; an originate's number must match one."},
    {STRINGS("commands.transfer_patterns", commands.transfer_patterns, commands.transfer_pattern_count,
             default_transfers), .readers = CONFIG_AGENT, .check = check_regexes,
     .doc = "POSIX extended regexes; a transfer target must match one."},
    {STRINGS("commands.originate_variables", commands.originate_variables, commands.originate_variable_count,
             no_strings), .readers = CONFIG_AGENT, .check = check_variable_names,
     .default_doc = "`[ ]` (none)", .example = "[ \"CC_TICKET\", \"__CC_CAMPAIGN\" ]", .example_commented = 1,
     .doc = "The only channel variables an originate may set (exact names; list `__NAME` for a variable "
            "the dialled channels inherit). A command setting another is rejected. Values may not contain "
            "`,` `\"` `\\` `(` `)`, a pipe or control characters: Asterisk would read them as more "
            "assignments or dialplan functions."},
    {STRING("commands.answer_context", commands.answer_context, "answer"), .readers = CONFIG_AGENT,
     .doc = "`answer` redirects the waiting caller to `<operator id>@answer_context`."},
    {STRING("commands.transfer_context", commands.transfer_context, "transfer"), .readers = CONFIG_AGENT,
     .doc = "`transfer` redirects the customer to `<to>@transfer_context`."},
    {INT("commands.originate_timeout_ms", commands.originate_timeout_ms, 30000, 1000, 600000),
     .readers = CONFIG_AGENT, .doc = "Originate's ring timeout."},

    {STRING("gateway.id", gateway.id, "gw1"), .readers = CONFIG_GATEWAY, .check = check_id,
     .doc = "This gateway's id, part of the ids of the commands it produces (`<site>:gw-<id>:<epoch>:<seq>`). "
            "Same alphabet as `site`."},
    {STRING("gateway.listen", gateway.listen, "127.0.0.1:8080"), .readers = CONFIG_GATEWAY,
     .check = check_host_port,
     .doc = "`\"host:port\"` of the one HTTP/WebSocket port; port 0 takes a free port and logs it. "
            "`\"0.0.0.0:8080\"` serves the LAN."},
    {STRING("gateway.www_dir", gateway.www_dir, ""), .readers = CONFIG_GATEWAY,
     .default_doc = "`<prefix>/share/callbus/www`", .example = "\"/usr/local/share/callbus/www\"",
     .example_commented = 1,
     .doc = "The operator page's directory, served at `/`. Unset, the gateway takes the page installed "
            "with it (`share/callbus/www` beside the `bin` directory it runs from: "
            "`/usr/local/share/callbus/www` after `make install`), else the source tree's `gateway/www` "
            "when it runs from `build/`. A relative path is relative to the working directory."},
    {STRING("gateway.jwt_alg", gateway.jwt_alg, "HS256"), .readers = CONFIG_GATEWAY, .check = check_jwt_alg,
     .doc = "`\"HS256\"` (shared secret) or `\"RS256\"` (public key): the only algorithm tokens may use."},
    {STRING("gateway.jwt_secret", gateway.jwt_secret, ""), .readers = CONFIG_GATEWAY,
     .example = "\"change-me-to-at-least-32-bytes-of-secret\"",
     .doc = "The HS256 shared secret the CRM signs tokens with, at least 32 bytes. This or `jwt_key_file` "
            "is required."},
    {STRING("gateway.jwt_key_file", gateway.jwt_key_file, ""), .readers = CONFIG_GATEWAY, UNSET,
     .example = "\"/etc/callbus/crm-public.pem\"", .example_commented = 1,
     .doc = "A file holding the RS256 public key (PEM) or the HS256 secret, read when the gateway starts; "
            "it wins over `jwt_secret`."},
    {STRING("gateway.jwt_issuer", gateway.jwt_issuer, ""), .readers = CONFIG_GATEWAY, UNSET,
     .example = "\"https://crm.example\"", .example_commented = 1,
     .doc = "When set, tokens must carry this `iss`."},
    {STRING("gateway.jwt_audience", gateway.jwt_audience, ""), .readers = CONFIG_GATEWAY, UNSET,
     .example = "\"callbus-gateway\"", .example_commented = 1,
     .doc = "When set, tokens must carry this `aud` (the string, or an array holding it): a token the CRM "
            "made for another service is refused with 4001."},
    {INT("gateway.jwt_leeway", gateway.jwt_leeway_s, 30, 0, 3600), .readers = CONFIG_GATEWAY,
     .doc = "Seconds of clock skew allowed on `exp` and `nbf`."},
    {STRING("gateway.tls_cert", gateway.tls_cert, ""), .readers = CONFIG_GATEWAY, UNSET,
     .example = "\"/etc/callbus/gateway.crt\"", .example_commented = 1,
     .doc = "PEM certificate file; set it and `tls_key` for https/wss, neither for plain http/ws."},
    {STRING("gateway.tls_key", gateway.tls_key, ""), .readers = CONFIG_GATEWAY, UNSET, .check = check_tls_pair,
     .example = "\"/etc/callbus/gateway.key\"", .example_commented = 1,
     .doc = "PEM private key file of `tls_cert`."},
    {INT("gateway.max_frame", gateway.max_frame, 65536, 256, 16 << 20), .readers = CONFIG_GATEWAY,
     .doc = "Largest client message in bytes; larger closes with 1009."},
    {INT("gateway.max_msgs_per_s", gateway.max_msgs_per_s, 20, 1, 100000), .readers = CONFIG_GATEWAY,
     .doc = "Client messages per second per connection, in bursts of as many; excess gets error "
            "`rate_limited`, a second's worth of excess closes with 4008."},
    {INT("gateway.max_connections", gateway.max_connections, 20000, 1, 1000000), .readers = CONFIG_GATEWAY,
     .doc = "Authenticated connections at once; a connection made or authenticated while this many are "
            "is closed with 4008. Connections that have not authenticated yet count against "
            "`max_unauthed` instead and cannot take an operator's place. The gateway raises its open-files "
            "soft limit to this + `max_unauthed` + 256 (and warns if the hard limit, `LimitNOFILE=`, is "
            "lower)."},
    {INT("gateway.max_unauthed", gateway.max_unauthed, 1000, 1, 1000000), .readers = CONFIG_GATEWAY,
     .doc = "Connections not authenticated yet (they have 5 s to send `auth`), from all addresses together; "
            "more are closed with 4008 at once."},
    {INT("gateway.max_unauthed_per_address", gateway.max_unauthed_per_address, 32, 0, 1000000),
     .readers = CONFIG_GATEWAY,
     .doc = "Connections not authenticated yet from one client address; more from that address are closed "
            "with 4008 at once, so one host that keeps reconnecting cannot fill `max_unauthed`. 0: no "
            "per-address limit (behind a reverse proxy every client has the proxy's address)."},
    {STRINGS("gateway.origins", gateway.origins, gateway.origin_count, no_strings), .readers = CONFIG_GATEWAY,
     .default_doc = "`[ ]` (any)",
     .doc = "Allowed `Origin` headers of WebSocket requests, for example `[ \"https://crm.example\" ]`; "
            "others are closed with 4009. Empty: any."},
    {BOOL("gateway.browser_variables", gateway.browser_variables, 0), .readers = CONFIG_GATEWAY,
     .doc = "Whether a browser's `originate` may carry `variables` (the agent still allows only those in "
            "`commands.originate_variables`). Off, such a command gets error `forbidden`."},
    {INT("gateway.idle_timeout", gateway.idle_timeout_s, 120, 1, 86400), .readers = CONFIG_GATEWAY,
     .doc = "Seconds without a client message before closing with 1001 (deadlines are checked once a "
            "second)."},
    {INT("gateway.max_queue_kb", gateway.max_queue_kb, 1024, 16, 1 << 20), .readers = CONFIG_GATEWAY,
     .doc = "KiB of live output (updates and events) a connection may have waiting beyond the socket's "
            "kernel buffers before it is dropped as a slow reader, 4008. A snapshot or resume does not count: "
            "it is bounded by the view."},
    {INT("gateway.command_ttl", gateway.command_ttl_s, 30, 1, 86400), .readers = CONFIG_GATEWAY,
     .doc = "Seconds from a browser's command to its `expires`."},
    {INT("gateway.history", gateway.history, 500, 0, 1000000), .readers = CONFIG_GATEWAY,
     .doc = "Messages kept per operator stream (and for the supervisors' site stream) so a reconnect can "
            "resume without a snapshot."},
    {.name = NULL},
};

/* ---------------------------------------------------------------- loading by the table */

static void *value_at(callbus_config *c, const callbus_setting *s) { return (char *)c + s->offset; }

_Static_assert(sizeof(long) == sizeof(int) || sizeof(long) == sizeof(long long), "integer widths");

/* An int, long or long long field, by its size. */
static void store_number(void *to, size_t size, long long v) {
    if (size == sizeof(int)) {
        int i = (int)v;
        memcpy(to, &i, sizeof(i));
    } else {
        memcpy(to, &v, sizeof(v));
    }
}

static void free_strings(char **list, size_t n) {
    for (size_t i = 0; i < n; i++) free(list[i]);
    free(list);
}

static size_t *count_at(callbus_config *c, const callbus_setting *s) {
    return (size_t *)((char *)c + s->count_offset);
}

/* Empties a list setting and gives it room for n strings. */
static char **reset_strings(callbus_config *c, const callbus_setting *s, size_t n) {
    char ***list = value_at(c, s);
    free_strings(*list, *count_at(c, s));
    *list = calloc(n + 1, sizeof(char *));
    *count_at(c, s) = n;
    return *list;
}

static void set_defaults(callbus_config *c) {
    memset(c, 0, sizeof(*c));
    for (const callbus_setting *s = config_settings; s->name; s++) {
        switch (s->type) {
        case CONFIG_STRING: snprintf(value_at(c, s), s->size, "%s", s->text_default); break;
        case CONFIG_INT: store_number(value_at(c, s), s->size, s->number_default << s->shift); break;
        case CONFIG_BOOL: *(int *)value_at(c, s) = (int)s->number_default; break;
        case CONFIG_STRINGS: {
            size_t n = 0;
            while (s->list_default[n]) n++;
            char **list = reset_strings(c, s, n);
            for (size_t i = 0; i < n; i++) list[i] = strdup(s->list_default[i]);
            break;
        }
        case CONFIG_FILE: case CONFIG_CUSTOM: break;
        }
    }
}

static int load_string(const char *name, config_setting_t *st, char *out, size_t outlen,
                       char *err, size_t errlen) {
    const char *v = config_setting_get_string(st);
    if (!v) {
        snprintf(err, errlen, "setting %s must be a string", name);
        return -1;
    }
    if (strlen(v) >= outlen) {
        snprintf(err, errlen, "setting %s is too long (max %zu)", name, outlen - 1);
        return -1;
    }
    snprintf(out, outlen, "%s", v);
    return 0;
}

static int load_int(callbus_config *c, const callbus_setting *s, config_t *cf, char *err, size_t errlen) {
    int v;
    if (!config_lookup_int(cf, s->name, &v)) {
        snprintf(err, errlen, "setting %s must be an integer", s->name);
        return -1;
    }
    if (v < s->min || v > s->max) {
        snprintf(err, errlen, "setting %s = %d is out of range [%lld, %lld]", s->name, v, s->min, s->max);
        return -1;
    }
    store_number(value_at(c, s), s->size, (long long)v << s->shift);
    return 0;
}

/* libconfig's own lookup leaves a wrong type unsaid; "enabled = 0;" must
 * not leave commands on. */
static int load_bool(callbus_config *c, const callbus_setting *s, config_setting_t *st, char *err, size_t errlen) {
    if (config_setting_type(st) != CONFIG_TYPE_BOOL) {
        snprintf(err, errlen, "setting %s must be true or false", s->name);
        return -1;
    }
    *(int *)value_at(c, s) = config_setting_get_bool(st);
    return 0;
}

static int load_strings(callbus_config *c, const callbus_setting *s, config_setting_t *st, char *err, size_t errlen) {
    if (!config_setting_is_aggregate(st)) {
        snprintf(err, errlen, "setting %s must be a list of strings", s->name);
        return -1;
    }
    size_t n = (size_t)config_setting_length(st);
    char **list = reset_strings(c, s, n);
    for (size_t i = 0; i < n; i++) {
        const char *v = config_setting_get_string_elem(st, (int)i);
        if (!v) {
            snprintf(err, errlen, "%s[%zu] must be a string", s->name, i);
            return -1;
        }
        list[i] = strdup(v);
    }
    return 0;
}

/* The file's content is the value; a file name the loader cannot read is an
 * error now, not when the program needs the value. */
static int load_file_content(callbus_config *c, const callbus_setting *s, config_setting_t *st,
                             char *err, size_t errlen) {
    const char *path = config_setting_get_string(st);
    if (!path) {
        snprintf(err, errlen, "setting %s must be a string", s->name);
        return -1;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s %s: %s", s->name, path, strerror(errno));
        return -1;
    }
    char *out = value_at(c, s);
    size_t n = fread(out, 1, s->size - 1, f);
    fclose(f);
    out[n] = '\0';
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r')) out[--n] = '\0';
    return 0;
}

static int load_setting(callbus_config *c, const callbus_setting *s, config_t *cf, char *err, size_t errlen) {
    config_setting_t *st = config_lookup(cf, s->name);
    if (!st) return 0;
    switch (s->type) {
    case CONFIG_STRING: return load_string(s->name, st, value_at(c, s), s->size, err, errlen);
    case CONFIG_INT: return load_int(c, s, cf, err, errlen);
    case CONFIG_BOOL: return load_bool(c, s, st, err, errlen);
    case CONFIG_STRINGS: return load_strings(c, s, st, err, errlen);
    case CONFIG_FILE: return load_file_content(c, s, st, err, errlen);
    case CONFIG_CUSTOM: return s->load(c, st, err, errlen);
    }
    return 0;
}

static int check_settings(const callbus_config *c, char *err, size_t errlen) {
    for (const callbus_setting *s = config_settings; s->name; s++)
        if (s->check && s->check(c, s, err, errlen) < 0) return -1;
    return 0;
}

static int is_setting(const char *name) {
    for (const callbus_setting *s = config_settings; s->name; s++)
        if (!strcmp(s->name, name)) return 1;
    return 0;
}

/* A group some setting is in: "agent.ami" for "agent.ami.port". */
static int is_section(const char *name) {
    size_t n = strlen(name);
    for (const callbus_setting *s = config_settings; s->name; s++)
        if (!strncmp(s->name, name, n) && s->name[n] == '.') return 1;
    return 0;
}

/* Every name in the file must be in the table: a misspelt one, silently
 * ignored, would leave a default running where a change was meant. */
static int refuse_unknown(config_setting_t *group, const char *prefix, char *err, size_t errlen, int *line) {
    for (int i = 0; i < config_setting_length(group); i++) {
        config_setting_t *st = config_setting_get_elem(group, i);
        char name[256];
        snprintf(name, sizeof(name), "%s%s%s", prefix, *prefix ? "." : "", config_setting_name(st));
        if (is_setting(name)) continue;
        if (is_section(name) && config_setting_is_group(st)) {
            if (refuse_unknown(st, name, err, errlen, line) < 0) return -1;
            continue;
        }
        if (is_section(name))
            snprintf(err, errlen, "setting %s must be a group: %s: { ... };", name, config_setting_name(st));
        else
            snprintf(err, errlen, "unknown setting %s (docs/configuration.md lists them all)", name);
        *line = config_setting_source_line(st);
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
    int line = 0;
    int rc = refuse_unknown(config_root_setting(&cf), "", msg, sizeof(msg), &line);
    for (const callbus_setting *s = config_settings; rc == 0 && s->name; s++)
        rc = load_setting(c, s, &cf, msg, sizeof(msg));
    if (rc == 0) rc = check_settings(c, msg, sizeof(msg));
    if (rc < 0 && line) snprintf(err, errlen, "%s:%d: %s", path, line, msg);
    else if (rc < 0) snprintf(err, errlen, "%s: %s", path, msg);
    config_destroy(&cf);
    return rc;
}

int config_load(callbus_config *c, const char *path, char *err, size_t errlen) {
    set_defaults(c);
    if (!path) return check_settings(c, err, errlen);
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
    for (const callbus_setting *s = config_settings; s->name; s++) {
        if (s->type != CONFIG_STRINGS) continue;
        free_strings(*(char ***)value_at(c, s), *count_at(c, s));
        *(char ***)value_at(c, s) = NULL;
        *count_at(c, s) = 0;
    }
    c->kafka = NULL;
    c->operators = NULL;
    c->kafka_count = c->operator_count = 0;
}
