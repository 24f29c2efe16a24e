/* check.c -- `callbus check`: validate messages of a topic or of a file of
 * JSON lines against the JSON Schemas, one report line per violation.
 *
 * The schemas come from --schemas, else $CALLBUS_SCHEMAS, else the installed
 * copy, else the source tree next to the binary (build/callbus ->
 * schemas/), so a developer's build needs no flag. */
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "jschema.h"
#include "timearg.h"

#ifndef CALLBUS_SCHEMAS_DIR
#define CALLBUS_SCHEMAS_DIR "/usr/local/share/callbus/schemas"
#endif

typedef struct check_state {
    jschema_set *schemas;
    int json;
    char where[512];  /* "file:12" or "topic [p] @offset" */
    const char *id;
    long messages, invalid, violations, tombstones;
    /* for --json reports */
    const char *file;
    long line;
    const char *topic;
    int partition;
    int64_t offset;
} check_state;

static int is_dir(const char *p) {
    struct stat st;
    return p && *p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static const char *schemas_dir(const char *given, char *buf, size_t len) {
    if (given) return given;
    if (is_dir(getenv("CALLBUS_SCHEMAS"))) return getenv("CALLBUS_SCHEMAS");
    if (is_dir(CALLBUS_SCHEMAS_DIR)) return CALLBUS_SCHEMAS_DIR;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        snprintf(buf, len, "%s/../schemas", dirname(exe));
        if (is_dir(buf)) return buf;
    }
    return CALLBUS_SCHEMAS_DIR;  /* missing: the load error names it */
}

static void report(void *ud, const char *pointer, const char *reason) {
    check_state *st = ud;
    st->violations++;
    if (!st->json) {
        printf("%s [%s] %s: %s\n", st->where, st->id ? st->id : "?", *pointer ? pointer : "/", reason);
        return;
    }
    json_t *o = json_pack("{s:s?, s:s, s:s}", "id", st->id, "pointer", pointer, "reason", reason);
    if (st->file) {
        json_object_set_new(o, "file", json_string(st->file));
        json_object_set_new(o, "line", json_integer(st->line));
    }
    if (st->topic) {
        json_object_set_new(o, "topic", json_string(st->topic));
        json_object_set_new(o, "partition", json_integer(st->partition));
        json_object_set_new(o, "offset", json_integer(st->offset));
    }
    char *s = json_dumps(o, JSON_COMPACT);
    printf("%s\n", s);
    free(s);
    json_decref(o);
}

static void check_value(check_state *st, const char *p, size_t n) {
    json_error_t jerr;
    st->messages++;
    json_t *msg = json_loadb(p, n, JSON_DECODE_ANY, &jerr);
    long before = st->violations;
    st->id = NULL;
    if (!msg) {
        char why[300];
        snprintf(why, sizeof(why), "not JSON: %s (column %d)", jerr.text, jerr.column);
        report(st, "", why);
    } else {
        st->id = json_string_value(json_object_get(msg, "id"));
        jschema_validate_message(st->schemas, msg, report, st);
    }
    if (st->violations > before) st->invalid++;
    st->id = NULL;
    json_decref(msg);
}

/* A line is a message, or a record as `callbus replay` prints it (then its
 * value is checked and the report names topic, partition and offset). */
static void check_line(check_state *st, const char *line, size_t n) {
    json_t *rec = json_loadb(line, n, 0, NULL);
    json_t *value = json_object_get(rec, "value");
    if (value && json_is_integer(json_object_get(rec, "offset")) && json_object_get(rec, "partition") &&
        json_object_get(rec, "headers")) {
        st->topic = json_string_value(json_object_get(rec, "topic"));
        st->partition = (int)json_integer_value(json_object_get(rec, "partition"));
        st->offset = json_integer_value(json_object_get(rec, "offset"));
        snprintf(st->where, sizeof(st->where), "%s:%ld %s [%d] @%lld", st->file, st->line,
                 st->topic ? st->topic : "?", st->partition, (long long)st->offset);
        char *v = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
        check_value(st, v, strlen(v));
        free(v);
        st->topic = NULL;
    } else {
        check_value(st, line, n);
    }
    json_decref(rec);
}

static int check_file(check_state *st, const char *path) {
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) {
        fprintf(stderr, "callbus check: %s: %m\n", path);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    st->file = strcmp(path, "-") ? path : "stdin";
    for (st->line = 1; (n = getline(&line, &cap, f)) >= 0; st->line++) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        if (strspn(line, " \t") == (size_t)n) continue;
        snprintf(st->where, sizeof(st->where), "%s:%ld", st->file, st->line);
        check_line(st, line, (size_t)n);
    }
    free(line);
    if (f != stdin) fclose(f);
    return 0;
}

static int on_record(void *ud, const rd_kafka_message_t *m) {
    check_state *st = ud;
    st->partition = m->partition;
    st->offset = m->offset;
    snprintf(st->where, sizeof(st->where), "%s [%d] @%lld", st->topic, m->partition, (long long)m->offset);
    if (!m->payload) st->tombstones++;
    else check_value(st, m->payload, m->len);
    return 0;
}

static int check_topic(cli_ctx *cx, check_state *st, const char *topic, const char *bootstrap, int64_t from,
                       int64_t to) {
    char err[512];
    rd_kafka_t *rk = cli_client(cx, RD_KAFKA_CONSUMER, bootstrap, NULL, "check", NULL);
    if (!rk) return -1;
    int parts = cli_partition_count(rk, topic, err, sizeof(err)), rc = 0;
    if (parts == 0) snprintf(err, sizeof(err), "topic %s does not exist", topic);
    if (parts <= 0) rc = -1;
    st->topic = topic;
    for (int p = 0; rc == 0 && p < parts; p++) {
        cli_range r;
        rc = cli_window(rk, topic, p, from, to, &r, err, sizeof(err));
        if (rc == 0) rc = cli_read_range(rk, topic, p, r.start, r.end, on_record, st, err, sizeof(err));
    }
    if (rc < 0) fprintf(stderr, "callbus check: %s\n", err);
    rd_kafka_destroy(rk);
    return rc;
}

static const char usage_text[] =
            "usage: callbus check [--schemas DIR] [--json] [--bootstrap B] [--from T] [--to T] TOPIC\n"
            "       callbus check [--schemas DIR] [--json] --file FILE   (JSON lines; - = stdin)\n"
            "  TOPIC: ami, calls, ... or a full topic name; T: 2026-11-26T05:00:00Z, -2h, now\n"
            "  A line may be a message or a record printed by `callbus replay`.\n"
            "  schemas: --schemas, $CALLBUS_SCHEMAS, " CALLBUS_SCHEMAS_DIR ", <binary>/../schemas\n"
            "  exit: 0 all valid, 1 violations, 2 bad usage or schemas, 3 Kafka or file error\n";

static int usage(void) {
    fputs(usage_text, stderr);
    return 2;
}

int cmd_check(cli_ctx *cx, int argc, char **argv) {
    static const struct option opts[] = {{"schemas", required_argument, 0, 's'}, {"json", no_argument, 0, 'j'},
                                         {"file", required_argument, 0, 'f'},    {"from", required_argument, 0, 'F'},
                                         {"to", required_argument, 0, 'T'},      {"bootstrap", required_argument, 0, 'b'},
                                         {"timeout", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *given = NULL, *file = NULL, *bootstrap = NULL;
    int64_t from = CLI_NO_TIME, to = CLI_NO_TIME, now = (int64_t)time(NULL) * 1000;
    check_state st = {0};
    char err[512], buf[4096];
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "s:jf:F:T:b:t:h", opts, NULL)) != -1) {
        switch (opt) {
        case 's': given = optarg; break;
        case 'j': st.json = 1; break;
        case 'f': file = optarg; break;
        case 'b': bootstrap = optarg; break;
        case 't': cli_timeout_ms = atoi(optarg) * 1000; break;
        case 'F':
        case 'T':
            if (timearg_parse(optarg, now, opt == 'F' ? &from : &to, err, sizeof(err)) < 0) {
                fprintf(stderr, "callbus check: --%s: %s\n", opt == 'F' ? "from" : "to", err);
                return 2;
            }
            break;
        case 'h': fputs(usage_text, stdout); return 0;
        default: return usage();
        }
    }
    if ((file != NULL) == (optind < argc) || optind + (file ? 0 : 1) < argc || cli_timeout_ms <= 0) return usage();
    const char *dir = schemas_dir(given, buf, sizeof(buf));
    if (!(st.schemas = jschema_load_dir(dir, err, sizeof(err)))) {
        fprintf(stderr, "callbus check: schemas: %s\n", err);
        return 2;
    }
    char topic[256];
    int rc;
    if (file) {
        rc = check_file(&st, file);
    } else {
        cli_topic(cx, argv[optind], topic, sizeof(topic));
        rc = check_topic(cx, &st, topic, bootstrap, from, to);
    }
    fprintf(st.json ? stderr : stdout, "check: %ld messages, %ld invalid, %ld violations%s (schemas %s, %zu types)\n",
            st.messages, st.invalid, st.violations, st.tombstones ? ", tombstones skipped" : "", dir,
            jschema_type_count(st.schemas));
    jschema_free(st.schemas);
    if (rc < 0) return 3;
    return st.invalid ? 1 : 0;
}
