/* lag.c -- `callbus lag`: how far the centre is behind each site.
 *
 * Replication lag, per topic and partition: the site's ami, calls,
 * operators, results and status topics are copied to the central cluster,
 * and the centre's commands topic to the site (MirrorMaker 2, topic names
 * and partitions kept, offsets not). The lag is the number of records of the
 * source partition after the last one the target holds, and the age of the
 * oldest of them.
 *
 * Finding "the last one the target holds" in source offsets: take the last
 * record of the target partition, look its timestamp up in the source with
 * offsets-for-times, and scan forward to the record with the same CloudEvent
 * id (MM2 keeps timestamps; ids are unique per site). This was chosen over
 * reading MM2's offset-syncs topic because that topic is MM2's internal,
 * binary format, is written only every offset.lag.max (100) records (so it
 * is approximate by design), and lives wherever MM2 was configured to put
 * it; the id search is exact, needs nothing but read access to both
 * clusters, and also works when MM2 itself is the thing that is down. When
 * the last target record carries no id (not a callbus message) the count
 * falls back to timestamps and is marked approximate.
 *
 * Duplicates: a producer retry at the site can write the same event twice
 * with the same timestamp, so "the record with that id" is ambiguous. Copies
 * are matched by count instead: if the target holds c records with the id
 * from the timestamp on, its last record is the c-th copy in the source
 * (MM2 copies in order). In the normal case c is 1 and this is the first
 * match, as before; were MM2 itself to duplicate (c larger than the copies
 * at the source), the last copy is taken.
 *
 * Consumer group lag (--group, on the central cluster): committed offset vs
 * end offset, and the age of the first record not yet consumed. */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "clock.h"
#include "timearg.h"

#define MAX_SITES 32
#define MAX_GROUPS 8
#define TAIL_WINDOW 64  /* last records of a target partition read to find its last message */

static const char *up_kinds[] = {"ami", "calls", "operators", "results", "status", NULL};

typedef struct lag_site {
    char name[64];
    const char *bootstrap;
    char own[512];  /* bootstrap read from --sites */
    rd_kafka_t *rk;
} lag_site;

typedef struct lag_opts {
    const char *central;
    lag_site sites[MAX_SITES];
    int nsites;
    const char *groups[MAX_GROUPS];
    int ngroups;
    char kinds[16][32];
    int nkinds;
    int json;
    int64_t max_lag;
    double max_seconds;
    long scan_limit;
} lag_opts;

/* One "now" for the whole measurement, so every age is as of the moment
 * the command started, not of when its partition happened to be read. */
static int64_t started_ms;

static int64_t now_ms(void) {
    if (!started_ms) started_ms = (int64_t)(wall_now() * 1000);
    return started_ms;
}

/* ------------------------------------------------------------ reading */

typedef struct last_rec {
    int64_t offset, ts;
    char id[256];
    int found;
} last_rec;

static void rec_id(const rd_kafka_message_t *m, char *out, size_t len) {
    json_t *v = m->payload ? json_loadb(m->payload, m->len, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(v, "id"));
    snprintf(out, len, "%s", id ? id : "");
    json_decref(v);
}

static int keep_last(void *ud, const rd_kafka_message_t *m) {
    last_rec *l = ud;
    l->offset = m->offset;
    l->ts = rd_kafka_message_timestamp(m, NULL);
    l->found = 1;
    rec_id(m, l->id, sizeof(l->id));
    return 0;
}

static int keep_first(void *ud, const rd_kafka_message_t *m) {
    keep_last(ud, m);
    return 1;
}

typedef struct id_search {
    const char *id;
    int64_t at;   /* offset of the last copy matched, -1: none */
    long want;    /* copies still to match; 0: read on (just count) */
    long copies;  /* copies seen */
    long left;    /* records still to read (--scan-limit) */
} id_search;

static int match_id(void *ud, const rd_kafka_message_t *m) {
    id_search *s = ud;
    char id[256];
    rec_id(m, id, sizeof(id));
    if (!strcmp(id, s->id)) {
        s->at = m->offset;
        s->copies++;
        if (s->want && --s->want == 0) return 1;
    }
    return --s->left > 0 ? 0 : 1;
}

/* Records with the target's last id from its timestamp on, at the target:
 * how many copies of that event the target holds (normally 1). */
static int target_copies(rd_kafka_t *dst, const char *topic, int p, const last_rec *last, int64_t dhi,
                         const lag_opts *o, long *copies, char *err, size_t errlen) {
    id_search s = {.id = last->id, .at = -1, .left = o->scan_limit};
    int64_t from;
    if (cli_offset_for_time(dst, topic, p, last->ts, dhi, &from, err, errlen) < 0) return -1;
    if (cli_read_range(dst, topic, p, from, dhi, match_id, &s, err, errlen) < 0) return -1;
    *copies = s.copies > 0 ? s.copies : 1;
    return 0;
}

/* Timestamp of the record at offset `from` (or the next one there is). */
static int first_ts(rd_kafka_t *rk, const char *topic, int p, int64_t from, int64_t end, int64_t *ts, char *err,
                    size_t errlen) {
    last_rec r = {0};
    if (cli_read_range(rk, topic, p, from, end, keep_first, &r, err, errlen) < 0) return -1;
    *ts = r.found ? r.ts : -1;
    return 0;
}

/* ------------------------------------------------------------ replication */

/* Lag of one partition, src -> dst, into a JSON object. */
static int partition_lag(rd_kafka_t *src, rd_kafka_t *dst, int dst_parts, const char *topic, int p,
                         const lag_opts *o, json_t *out, char *err, size_t errlen) {
    int64_t slo, shi, dlo = 0, dhi = 0, next;  /* next: first source offset the target lacks */
    const char *method = "id";
    if (cli_watermarks(src, topic, p, &slo, &shi, err, errlen) < 0) return -1;
    if (p < dst_parts && cli_watermarks(dst, topic, p, &dlo, &dhi, err, errlen) < 0) return -1;
    last_rec last = {0};
    if (dhi > dlo) {
        int64_t from = dhi - TAIL_WINDOW > dlo ? dhi - TAIL_WINDOW : dlo;
        if (cli_read_range(dst, topic, p, from, dhi, keep_last, &last, err, errlen) < 0) return -1;
    }
    if (!last.found) {
        next = slo;  /* nothing replicated (or all of it expired at the centre) */
        method = dhi > 0 ? "target empty" : "nothing replicated";
    } else {
        id_search s = {.id = last.id, .at = -1, .want = 1, .left = o->scan_limit};
        int64_t at_ts;
        if (*last.id && target_copies(dst, topic, p, &last, dhi, o, &s.want, err, errlen) < 0) return -1;
        if (cli_offset_for_time(src, topic, p, last.ts, shi, &at_ts, err, errlen) < 0) return -1;
        if (*last.id && cli_read_range(src, topic, p, at_ts, shi, match_id, &s, err, errlen) < 0) return -1;
        if (s.at >= 0) {
            next = s.at + 1;
            /* --scan-limit ran out between copies: a later copy may be the one. */
            if (s.want && !s.left) method = "id, duplicates past --scan-limit (approximate)";
        } else {
            /* No id, or not found within --scan-limit records: count what is
             * stamped after the target's last record. */
            method = "timestamp (approximate)";
            if (cli_offset_for_time(src, topic, p, last.ts + 1, shi, &next, err, errlen) < 0) return -1;
        }
    }
    if (next < slo) next = slo;
    int64_t ts = -1;
    if (next < shi && first_ts(src, topic, p, next, shi, &ts, err, errlen) < 0) return -1;
    double secs = ts >= 0 ? (double)(now_ms() - ts) / 1000.0 : 0;
    json_object_set_new(out, "partition", json_integer(p));
    json_object_set_new(out, "source_end", json_integer(shi));
    json_object_set_new(out, "target_end", json_integer(dhi));
    json_object_set_new(out, "next_source_offset", json_integer(next));
    json_object_set_new(out, "messages", json_integer(shi - next));
    json_object_set_new(out, "seconds", json_real(secs < 0 ? 0 : secs));
    json_object_set_new(out, "method", json_string(method));
    return 0;
}

/* Sums the partitions of one topic into a row; errors go into the row. */
static json_t *topic_lag(rd_kafka_t *src, rd_kafka_t *dst, const char *site, const char *topic, const char *dir,
                         const lag_opts *o) {
    char err[512];
    json_t *row = json_pack("{s:s, s:s, s:s}", "site", site, "topic", topic, "direction", dir);
    json_t *parts = json_array();
    int sn = cli_partition_count(src, topic, err, sizeof(err)), dn = 0;
    if (sn > 0) dn = cli_partition_count(dst, topic, err, sizeof(err));
    if (sn < 0 || dn < 0) {
        json_object_set_new(row, "error", json_string(err));
        json_decref(parts);
        return row;
    }
    if (sn == 0) {
        json_object_set_new(row, "note", json_string("no such topic at the source"));
        json_decref(parts);
        return row;
    }
    int64_t total = 0;
    double worst = 0;
    int exact = 1;
    for (int p = 0; p < sn; p++) {
        json_t *pj = json_object();
        if (partition_lag(src, dst, dn, topic, p, o, pj, err, sizeof(err)) < 0) {
            json_object_set_new(row, "error", json_string(err));
            json_decref(pj);
            break;
        }
        total += json_integer_value(json_object_get(pj, "messages"));
        double s = json_real_value(json_object_get(pj, "seconds"));
        if (s > worst) worst = s;
        if (strstr(json_string_value(json_object_get(pj, "method")), "approximate")) exact = 0;
        json_array_append_new(parts, pj);
    }
    json_object_set_new(row, "messages", json_integer(total));
    json_object_set_new(row, "seconds", json_real(worst));
    json_object_set_new(row, "exact", json_boolean(exact));
    if (dn == 0) json_object_set_new(row, "note", json_string("no such topic at the target yet"));
    json_object_set_new(row, "partitions", parts);
    return row;
}

/* ------------------------------------------------------------ consumer groups */

static json_t *group_partition(rd_kafka_t *rk, const rd_kafka_topic_partition_t *c, char *err, size_t errlen) {
    int64_t lo, hi, ts = -1;
    if (cli_watermarks(rk, c->topic, c->partition, &lo, &hi, err, errlen) < 0) return NULL;
    int64_t at = c->offset >= lo ? c->offset : lo;  /* none committed, or expired: from the start */
    if (at < hi && first_ts(rk, c->topic, c->partition, at, hi, &ts, err, errlen) < 0) return NULL;
    double secs = ts >= 0 ? (double)(now_ms() - ts) / 1000.0 : 0;
    return json_pack("{s:i, s:I, s:I, s:I, s:f}", "partition", c->partition, "committed", (json_int_t)c->offset,
                     "end", (json_int_t)hi, "messages", (json_int_t)(hi > at ? hi - at : 0), "seconds",
                     secs < 0 ? 0 : secs);
}

static json_t *group_lag(rd_kafka_t *central, const char *group, const lag_opts *o, const char *prefix) {
    char err[512];
    json_t *g = json_pack("{s:s}", "group", group);
    cli_group_info gi;
    rd_kafka_topic_partition_list_t *c = NULL;
    if (cli_group_state(central, group, &gi, err, sizeof(err)) < 0 ||
        !(c = cli_group_committed(central, group, err, sizeof(err)))) {
        json_object_set_new(g, "error", json_string(err));
        return g;
    }
    json_object_set_new(g, "state", json_string(gi.state));
    json_object_set_new(g, "members", json_integer(gi.members));
    json_t *rows = json_array();
    rd_kafka_topic_partition_list_sort(c, NULL, NULL);
    for (int s = 0; s < o->nsites; s++) {
        char pre[200];
        snprintf(pre, sizeof(pre), "%s.%s.", prefix, o->sites[s].name);
        json_t *row = NULL;
        for (int i = 0; i < c->cnt; i++) {
            if (strncmp(c->elems[i].topic, pre, strlen(pre))) continue;
            if (!row || strcmp(json_string_value(json_object_get(row, "topic")), c->elems[i].topic)) {
                row = json_pack("{s:s, s:s, s:I, s:f, s:[]}", "site", o->sites[s].name, "topic", c->elems[i].topic,
                                "messages", (json_int_t)0, "seconds", 0.0, "partitions");
                json_array_append_new(rows, row);
            }
            json_t *pj = group_partition(central, &c->elems[i], err, sizeof(err));
            if (!pj) {
                json_object_set_new(row, "error", json_string(err));
                continue;
            }
            json_object_set_new(row, "messages", json_integer(json_integer_value(json_object_get(row, "messages")) +
                                                              json_integer_value(json_object_get(pj, "messages"))));
            if (json_real_value(json_object_get(pj, "seconds")) > json_real_value(json_object_get(row, "seconds")))
                json_object_set(row, "seconds", json_object_get(pj, "seconds"));
            json_array_append_new(json_object_get(row, "partitions"), pj);
        }
    }
    rd_kafka_topic_partition_list_destroy(c);
    json_object_set_new(g, "topics", rows);
    return g;
}

/* ------------------------------------------------------------ output */

/* Marks rows over a threshold; returns how many there are. */
static int judge(json_t *rows, const lag_opts *o, int *errors) {
    size_t i;
    json_t *r;
    int over = 0;
    json_array_foreach(rows, i, r) {
        if (json_object_get(r, "error")) {
            (*errors)++;
            continue;
        }
        int bad = (o->max_lag >= 0 && json_integer_value(json_object_get(r, "messages")) > o->max_lag) ||
                  (o->max_seconds >= 0 && json_real_value(json_object_get(r, "seconds")) > o->max_seconds);
        json_object_set_new(r, "over_threshold", json_boolean(bad));
        over += bad;
    }
    return over;
}

static void print_row(json_t *r, const char *dir) {
    const char *err = json_string_value(json_object_get(r, "error"));
    const char *note = json_string_value(json_object_get(r, "note"));
    printf("  %-12s %-34s %-16s ", json_string_value(json_object_get(r, "site")),
           json_string_value(json_object_get(r, "topic")), dir);
    if (err) {
        printf("%10s  %10s  ERROR: %s\n", "?", "?", err);
        return;
    }
    if (!json_object_get(r, "messages")) {
        printf("%10s  %10s  %s\n", "-", "-", note ? note : "");
        return;
    }
    int exact = !json_is_false(json_object_get(r, "exact"));
    char msgs[32];
    snprintf(msgs, sizeof(msgs), "%s%lld", exact ? "" : "~", (long long)json_integer_value(json_object_get(r, "messages")));
    printf("%10s  %9.1fs  %s%s%s\n", msgs, json_real_value(json_object_get(r, "seconds")),
           json_is_true(json_object_get(r, "over_threshold")) ? "OVER THRESHOLD " : "",
           exact ? "" : "approximate (timestamps) ", note ? note : "");
}

static void print_text(json_t *doc, const lag_opts *o) {
    size_t i, j;
    json_t *r, *g;
    printf("callbus lag at %s, central cluster %s\n\n", json_string_value(json_object_get(doc, "time")), o->central);
    printf("  %-12s %-34s %-16s %10s  %10s\n", "SITE", "REPLICATION", "DIRECTION", "BEHIND", "OLDEST");
    json_array_foreach(json_object_get(doc, "replication"), i, r)
        print_row(r, json_string_value(json_object_get(r, "direction")));
    json_array_foreach(json_object_get(doc, "groups"), i, g) {
        const char *gerr = json_string_value(json_object_get(g, "error"));
        printf("\n  consumer group %s on the central cluster", json_string_value(json_object_get(g, "group")));
        if (gerr) {
            printf(": ERROR: %s\n", gerr);
            continue;
        }
        printf(" (%s, %lld members)\n", json_string_value(json_object_get(g, "state")),
               (long long)json_integer_value(json_object_get(g, "members")));
        if (!json_array_size(json_object_get(g, "topics")))
            printf("  (no committed offsets on these sites' topics)\n");
        json_array_foreach(json_object_get(g, "topics"), j, r) print_row(r, "consumed");
    }
}

/* ------------------------------------------------------------ command line */

static const char usage_text[] =
            "usage: callbus lag --central BOOTSTRAP [--site NAME[=BOOTSTRAP]]... [--sites FILE] [--group G]...\n"
            "                   [--topics ami,calls,...] [--max-lag N] [--max-seconds S] [--json]\n"
            "                   [--timeout S] [--scan-limit N]\n"
            "  Replication lag site -> central (ami, calls, operators, results, status) and\n"
            "  central -> site (commands), in messages and in seconds (age of the oldest record\n"
            "  the other side does not have); with --group, that consumer group's lag on the\n"
            "  central cluster. A --site without =BOOTSTRAP uses the configured cluster\n"
            "  (-c agent.conf or -X bootstrap.servers); no --site: the configured site.\n"
            "  --sites FILE: one \"NAME BOOTSTRAP\" a line (# comments).\n"
            "  -X name=value applies to every cluster; -X central:name=value to the central\n"
            "  cluster only, -X NAME:name=value to site NAME's only (e.g. security settings).\n"
            "  exit: 0 within thresholds, 1 over --max-lag / --max-seconds, 2 bad usage,\n"
            "        3 could not measure (cluster unreachable, ...)\n";

static int usage(void) {
    fputs(usage_text, stderr);
    return 2;
}

static int add_kinds(lag_opts *o, const char *list) {
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *save = NULL, *k = strtok_r(buf, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
        int known = !strcmp(k, "commands");
        for (int i = 0; up_kinds[i]; i++) known |= !strcmp(k, up_kinds[i]);
        if (!known || o->nkinds >= 16) {
            fprintf(stderr, "callbus lag: --topics: unknown topic kind \"%s\" (ami, calls, operators, results, status, commands)\n", k);
            return -1;
        }
        snprintf(o->kinds[o->nkinds++], sizeof(o->kinds[0]), "%s", k);
    }
    return 0;
}

static int add_site(lag_opts *o, char *arg) {
    char *eq = strchr(arg, '=');
    if (eq) *eq = '\0';
    if (!*arg || strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != strlen(arg) ||
        (eq && !eq[1]) || o->nsites >= MAX_SITES) {
        fprintf(stderr, "callbus lag: --site NAME[=BOOTSTRAP]: bad site \"%s\"\n", arg);
        return -1;
    }
    snprintf(o->sites[o->nsites].name, sizeof(o->sites[0].name), "%s", arg);
    o->sites[o->nsites++].bootstrap = eq ? eq + 1 : NULL;
    return 0;
}

/* --sites FILE: "NAME BOOTSTRAP" a line, # comments, so the sites of a
 * deployment are written down once. */
static int read_sites(lag_opts *o, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return fprintf(stderr, "callbus lag: --sites %s: %m\n", path), -1;
    char line[1024], name[128], bs[500], extra[2];
    int rc = 0;
    for (int n = 1; rc == 0 && fgets(line, sizeof(line), f); n++) {
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        int k = sscanf(line, "%127s %499s %1s", name, bs, extra);
        if (k <= 0) continue;
        if (k != 2) {
            fprintf(stderr, "callbus lag: %s:%d: expected \"NAME BOOTSTRAP\"\n", path, n);
            rc = -1;
            break;
        }
        char arg[1024];
        snprintf(arg, sizeof(arg), "%s=%s", name, bs);
        if (add_site(o, arg) < 0) rc = -1;
        else {
            lag_site *site = &o->sites[o->nsites - 1];
            snprintf(site->own, sizeof(site->own), "%s", bs);
            site->bootstrap = site->own;
        }
    }
    fclose(f);
    return rc;
}

static int parse(cli_ctx *cx, int argc, char **argv, lag_opts *o) {
    static const struct option opts[] = {
        {"central", required_argument, 0, 'C'},     {"site", required_argument, 0, 's'},
        {"group", required_argument, 0, 'g'},       {"topics", required_argument, 0, 'k'},
        {"max-lag", required_argument, 0, 'm'},     {"max-seconds", required_argument, 0, 'S'},
        {"json", no_argument, 0, 'j'},              {"timeout", required_argument, 0, 't'},
        {"scan-limit", required_argument, 0, 'l'},  {"sites", required_argument, 0, 'f'},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0}};
    int opt;
    char *end;
    *o = (lag_opts){.max_lag = -1, .max_seconds = -1, .scan_limit = 100000};
    optind = 1;
    while ((opt = getopt_long(argc, argv, "C:s:g:k:m:S:jt:l:f:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'C': o->central = optarg; break;
        case 's': if (add_site(o, optarg) < 0) return -1; break;
        case 'f': if (read_sites(o, optarg) < 0) return -1; break;
        case 'g':
            if (o->ngroups >= MAX_GROUPS) return usage(), -1;
            o->groups[o->ngroups++] = optarg;
            break;
        case 'k': if (add_kinds(o, optarg) < 0) return -1; break;
        case 'm':
            o->max_lag = strtoll(optarg, &end, 10);
            if (*end || o->max_lag < 0) return fprintf(stderr, "callbus lag: --max-lag: not a count: %s\n", optarg), -1;
            break;
        case 'S':
            o->max_seconds = strtod(optarg, &end);
            if (*end || o->max_seconds < 0) return fprintf(stderr, "callbus lag: --max-seconds: not seconds: %s\n", optarg), -1;
            break;
        case 'j': o->json = 1; break;
        case 't': cli_timeout_ms = atoi(optarg) * 1000; break;
        case 'l': o->scan_limit = atol(optarg); break;
        case 'h': return fputs(usage_text, stdout), 1;
        default: return usage(), -1;
        }
    }
    if (optind < argc) return fprintf(stderr, "callbus lag: unexpected argument \"%s\"\n", argv[optind]), usage(), -1;
    if (!o->central) return fprintf(stderr, "callbus lag: --central BOOTSTRAP is required (the central cluster)\n"), usage(), -1;
    if (cli_timeout_ms <= 0 || o->scan_limit <= 0) return usage(), -1;
    if (!o->nsites) add_site(o, cx->cfg.site);
    for (int s = 0; s < o->nsites; s++)
        if (!o->sites[s].bootstrap && !config_get_kafka(&cx->cfg, "bootstrap.servers"))
            return fprintf(stderr, "callbus lag: site %s: no cluster: --site %s=BOOTSTRAP (or -c agent.conf)\n",
                           o->sites[s].name, o->sites[s].name), -1;
    if (!o->nkinds) add_kinds(o, "ami,calls,operators,results,status,commands");
    const char *clusters[MAX_SITES + 1] = {"central"};
    for (int s = 0; s < o->nsites; s++) clusters[s + 1] = o->sites[s].name;
    return cli_check_clusters(cx, "lag", clusters, o->nsites + 1);
}

/* A row for every topic of a site whose cluster (or the centre) is down:
 * one bounded wait per cluster instead of one per topic. */
static void unreachable(json_t *rows, const char *site, const char *prefix, const lag_opts *o, const char *why) {
    for (int k = 0; k < o->nkinds; k++) {
        char topic[256];
        snprintf(topic, sizeof(topic), "%s.%s.%s", prefix, site, o->kinds[k]);
        json_array_append_new(rows, json_pack("{s:s, s:s, s:s, s:s}", "site", site, "topic", topic, "direction",
                                              strcmp(o->kinds[k], "commands") ? "site -> central" : "central -> site",
                                              "error", why));
    }
}

static json_t *measure(cli_ctx *cx, lag_opts *o, rd_kafka_t *central) {
    char when[40], err[512], why[700];
    timearg_format(now_ms(), when, sizeof(when));
    json_t *doc = json_pack("{s:s, s:s, s:[], s:[]}", "time", when, "central", o->central, "replication", "groups");
    json_t *rows = json_object_get(doc, "replication");
    int central_ok = cli_probe(central, err, sizeof(err)) == 0;
    if (!central_ok) snprintf(why, sizeof(why), "central cluster %s: %s", o->central, err);
    for (int s = 0; s < o->nsites; s++) {
        lag_site *site = &o->sites[s];
        const char *bs = site->bootstrap ? site->bootstrap : config_get_kafka(&cx->cfg, "bootstrap.servers");
        if (!(site->rk = cli_client(cx, RD_KAFKA_CONSUMER, site->bootstrap, NULL, "lag", site->name))) continue;
        if (central_ok && cli_probe(site->rk, err, sizeof(err)) < 0)
            snprintf(why, sizeof(why), "site %s cluster %s: %s", site->name, bs, err);
        else if (central_ok) {
            for (int k = 0; k < o->nkinds; k++) {
                char topic[256];
                snprintf(topic, sizeof(topic), "%s.%s.%s", cx->cfg.topic_prefix, site->name, o->kinds[k]);
                int down = !strcmp(o->kinds[k], "commands");
                json_array_append_new(rows, down ? topic_lag(central, site->rk, site->name, topic, "central -> site", o)
                                                 : topic_lag(site->rk, central, site->name, topic, "site -> central", o));
            }
            continue;
        }
        unreachable(rows, site->name, cx->cfg.topic_prefix, o, why);
    }
    for (int g = 0; central_ok && g < o->ngroups; g++)
        json_array_append_new(json_object_get(doc, "groups"), group_lag(central, o->groups[g], o, cx->cfg.topic_prefix));
    for (int g = 0; !central_ok && g < o->ngroups; g++)
        json_array_append_new(json_object_get(doc, "groups"), json_pack("{s:s, s:s}", "group", o->groups[g], "error", why));
    return doc;
}

int cmd_lag(cli_ctx *cx, int argc, char **argv) {
    lag_opts o;
    int parsed = parse(cx, argc, argv, &o);
    if (parsed != 0) return parsed < 0 ? 2 : 0;
    rd_kafka_t *central = cli_client(cx, RD_KAFKA_CONSUMER, o.central, NULL, "lag", "central");
    if (!central) return 3;
    json_t *doc = measure(cx, &o, central);
    int errors = 0, over = judge(json_object_get(doc, "replication"), &o, &errors);
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(doc, "groups"), i, g) {
        if (json_object_get(g, "error")) errors++;
        else over += judge(json_object_get(g, "topics"), &o, &errors);
    }
    for (int s = 0; s < o.nsites; s++) errors += !o.sites[s].rk;
    json_object_set_new(doc, "over_threshold", json_integer(over));
    json_object_set_new(doc, "errors", json_integer(errors));
    if (o.json) {
        char *s = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(6));
        printf("%s\n", s);
        free(s);
    } else {
        print_text(doc, &o);
        if (errors) printf("\nERROR: %d measurement(s) failed: see above\n", errors);
        else if (over) printf("\nLAG: %d row(s) over the threshold\n", over);
        else if (o.max_lag >= 0 || o.max_seconds >= 0) printf("\nOK: every row within the thresholds\n");
    }
    json_decref(doc);
    for (int s = 0; s < o.nsites; s++)
        if (o.sites[s].rk) rd_kafka_destroy(o.sites[s].rk);
    rd_kafka_destroy(central);
    return errors ? 3 : over ? 1 : 0;
}
