/* replay.c -- `callbus replay`: a time window of a topic, to stdout as JSON
 * lines, copied into another topic or cluster, or as a consumer group's new
 * starting point.
 *
 * The window is an offset range per partition found with offsets-for-times:
 * from the first record stamped at or after --from to before the first
 * stamped at or after --to (the end of the partition without --to, as it
 * was when the command started). Anything that changes state is a dry run
 * that prints exactly what it would do until --execute is given. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "cli.h"
#include "clock.h"
#include "timearg.h"

typedef struct replay_opts {
    const char *topic, *bootstrap, *to_topic, *to_bootstrap, *group;
    int64_t from, to;
    int execute;
} replay_opts;

typedef struct copy_state {
    rd_kafka_t *producer;
    const char *topic;
    long queued;
    cli_delivery dlv;
    char error[256];
} copy_state;

static int printed_record(void *ud, const rd_kafka_message_t *m) {
    long *n = ud;
    char *s = cli_record_json(m);
    fputs(s, stdout);
    fputc('\n', stdout);
    free(s);
    (*n)++;
    return 0;
}

/* Same partition, key, headers and timestamp, as MirrorMaker 2 copies. */
static int copied_record(void *ud, const rd_kafka_message_t *m) {
    copy_state *cs = ud;
    rd_kafka_headers_t *h = NULL;
    rd_kafka_message_headers(m, &h);
    /* Owned by librdkafka once produced, ours while the queue is full. */
    rd_kafka_headers_t *copy = h ? rd_kafka_headers_copy(h) : rd_kafka_headers_new(0);
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            cs->producer, RD_KAFKA_V_TOPIC(cs->topic), RD_KAFKA_V_PARTITION(m->partition),
            RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_VALUE(m->payload, m->len),
            RD_KAFKA_V_TIMESTAMP(rd_kafka_message_timestamp(m, NULL)), RD_KAFKA_V_HEADERS(copy),
            RD_KAFKA_V_OPAQUE(&cs->dlv), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(cs->producer, 100);
            continue;
        }
        if (e) {
            rd_kafka_headers_destroy(copy);
            snprintf(cs->error, sizeof(cs->error), "produce: %s", rd_kafka_err2str(e));
            return -1;
        }
        cs->queued++;
        rd_kafka_poll(cs->producer, 0);
        return 0;
    }
}

static void print_window(const replay_opts *o) {
    char a[40], b[40] = "the end of each partition";
    timearg_format(o->from, a, sizeof(a));
    if (o->to != CLI_NO_TIME) timearg_format(o->to, b, sizeof(b));
    printf("window of %s: records stamped from %s to before %s\n", o->topic, a, b);
}

/* Offsets of the window in every partition; returns the partition count. */
static int plan(rd_kafka_t *rk, const replay_opts *o, cli_range **ranges, char *err, size_t errlen) {
    int n = cli_partition_count(rk, o->topic, err, errlen);
    if (n == 0) snprintf(err, errlen, "topic %s does not exist", o->topic);
    if (n <= 0) return -1;
    *ranges = xcalloc((size_t)n, sizeof(cli_range));
    for (int p = 0; p < n; p++)
        if (cli_window(rk, o->topic, p, o->from, o->to, &(*ranges)[p], err, errlen) < 0) return -1;
    return n;
}

static long print_ranges(const cli_range *r, int n) {
    long total = 0;
    printf("  %-9s  %12s  %12s  %10s\n", "partition", "from offset", "to offset", "messages");
    for (int p = 0; p < n; p++) {
        printf("  %-9d  %12" PRId64 "  %12" PRId64 "  %10" PRId64 "\n", p, r[p].start, r[p].end, r[p].end - r[p].start);
        total += r[p].end - r[p].start;
    }
    printf("  total: %ld messages in %d partitions\n", total, n);
    return total;
}

static int to_stdout(rd_kafka_t *rk, const replay_opts *o, const cli_range *r, int n, char *err, size_t errlen) {
    long printed = 0;
    for (int p = 0; p < n; p++)
        if (cli_read_range(rk, o->topic, p, r[p].start, r[p].end, printed_record, &printed, err, errlen) < 0) return 3;
    fflush(stdout);
    fprintf(stderr, "callbus replay: %ld records of %s\n", printed, o->topic);
    return 0;
}

static int to_topic(cli_ctx *cx, rd_kafka_t *rk, const replay_opts *o, const cli_range *r, int n, char *err,
                    size_t errlen) {
    const char *where = o->to_bootstrap ? o->to_bootstrap : "the same cluster";
    if (!strcmp(o->to_topic, o->topic) && (!o->to_bootstrap || (o->bootstrap && !strcmp(o->bootstrap, o->to_bootstrap)))) {
        fprintf(stderr, "callbus replay: refusing to copy %s into itself on the same cluster\n", o->topic);
        return 2;
    }
    copy_state cs = {.topic = o->to_topic};
    rd_kafka_t *pk = cli_client(cx, RD_KAFKA_PRODUCER, o->to_bootstrap ? o->to_bootstrap : o->bootstrap, NULL, "replay",
                                o->to_bootstrap ? "target" : "source");
    err[0] = '\0';   /* cli_client has said why; nothing more to print */
    if (!pk) return 3;
    int tn = cli_partition_count(pk, o->to_topic, err, errlen), rc = 0;
    if (tn == 0) snprintf(err, errlen, "target topic %s does not exist on %s: create it first (%d partitions)", o->to_topic, where, n);
    else if (tn > 0 && tn < n) snprintf(err, errlen, "target topic %s has %d partitions, fewer than the %d of %s", o->to_topic, tn, n, o->topic);
    if (tn < n) {
        fprintf(stderr, "callbus replay: %s\n", err);
        err[0] = '\0';
        rd_kafka_destroy(pk);
        return 3;
    }
    printf("into %s on %s: same partitions, keys, headers and timestamps\n", o->to_topic, where);
    long total = print_ranges(r, n);
    if (!o->execute) {
        printf("DRY RUN: nothing written. Add --execute to copy these %ld messages.\n", total);
        rd_kafka_destroy(pk);
        return 0;
    }
    cs.producer = pk;
    for (int p = 0; rc == 0 && p < n; p++)
        if (cli_read_range(rk, o->topic, p, r[p].start, r[p].end, copied_record, &cs, err, errlen) < 0) rc = 3;
    rd_kafka_flush(pk, cli_timeout_ms * 4);
    if (rc == 0 && (cs.dlv.failed || cs.dlv.delivered != cs.queued)) rc = 1;
    if (rc == 0) printf("copied %ld messages into %s (all delivered)\n", cs.dlv.delivered, o->to_topic);
    else fprintf(stderr, "callbus replay: copy into %s incomplete: %ld of %ld delivered, %ld failed %s%s%s\n",
                 o->to_topic, cs.dlv.delivered, cs.queued, cs.dlv.failed, cs.dlv.first_error, cs.error,
                 rc == 3 ? err : "");
    rd_kafka_destroy(pk);
    return rc;
}

static int64_t committed_of(const rd_kafka_topic_partition_list_t *c, const char *topic, int p) {
    for (int i = 0; c && i < c->cnt; i++)
        if (c->elems[i].partition == p && !strcmp(c->elems[i].topic, topic)) return c->elems[i].offset;
    return RD_KAFKA_OFFSET_INVALID;
}

static int reset_group(rd_kafka_t *rk, const replay_opts *o, const cli_range *r, int n, char *err, size_t errlen) {
    cli_group_info gi;
    if (cli_group_state(rk, o->group, &gi, err, errlen) < 0) return 3;
    rd_kafka_topic_partition_list_t *c = cli_group_committed(rk, o->group, err, errlen);
    if (!c) return 3;
    printf("consumer group %s (%s, %d members): reprocess %s from the window start\n", o->group, gi.state, gi.members, o->topic);
    printf("  %-9s  %12s  %12s  %12s  %12s\n", "partition", "committed", "new offset", "end", "to reprocess");
    rd_kafka_topic_partition_list_t *to = rd_kafka_topic_partition_list_new(n);
    long total = 0;
    for (int p = 0; p < n; p++) {
        int64_t cur = committed_of(c, o->topic, p);
        char cs[24] = "none";
        if (cur >= 0) snprintf(cs, sizeof(cs), "%" PRId64, cur);
        printf("  %-9d  %12s  %12" PRId64 "  %12" PRId64 "  %12" PRId64 "\n", p, cs, r[p].start, r[p].hi, r[p].hi - r[p].start);
        total += r[p].hi - r[p].start;
        rd_kafka_topic_partition_list_add(to, o->topic, p)->offset = r[p].start;
    }
    rd_kafka_topic_partition_list_destroy(c);
    int rc = 0;
    if (gi.active) {
        fprintf(stderr, "callbus replay: REFUSED: consumer group %s is active (%s, %d members): stop its consumers, then run this again\n",
                o->group, gi.state, gi.members);
        rc = 1;
    } else if (!o->execute) {
        printf("DRY RUN: offsets unchanged. Add --execute to set them; the group then reprocesses %ld messages.\n", total);
    } else if (cli_group_alter(rk, o->group, to, err, errlen) < 0) {
        rc = 3;
    } else {
        printf("consumer group %s now starts %s at the offsets above (%ld messages to reprocess)\n", o->group, o->topic, total);
    }
    rd_kafka_topic_partition_list_destroy(to);
    return rc;
}

static const char usage_text[] =
            "usage: callbus replay TOPIC --from T [--to T] [--bootstrap B]                  JSON lines to stdout\n"
            "       callbus replay TOPIC --from T [--to T] --to-topic T2 [--to-bootstrap B2] [--execute]\n"
            "       callbus replay TOPIC --from T --reset-group G [--execute]\n"
            "  T: 2026-11-26T05:00:00Z, 2026-11-26T08:00+03:00, now, -30m, -2h, -1d\n"
            "  --to-topic copies keys, headers, partitions and timestamps (the topic must exist);\n"
            "  --reset-group sets G's offsets on TOPIC to the window start (G must be inactive).\n"
            "  Both are dry runs until --execute.   --timeout S  bound on every Kafka wait (15)\n"
            "  -X source:name=value / -X target:name=value: a property for the cluster read\n"
            "  from (TOPIC's) / written to (--to-bootstrap) only; plain -X applies to both.\n"
            "  exit: 0 done (or dry run), 1 refused or not all delivered, 2 bad usage, 3 Kafka error\n";

static int usage(void) {
    fputs(usage_text, stderr);
    return 2;
}

static int parse(cli_ctx *cx, int argc, char **argv, replay_opts *o) {
    static const struct option opts[] = {
        {"from", required_argument, 0, 'F'},         {"to", required_argument, 0, 'T'},
        {"bootstrap", required_argument, 0, 'b'},    {"to-topic", required_argument, 0, 'o'},
        {"to-bootstrap", required_argument, 0, 'B'}, {"reset-group", required_argument, 0, 'g'},
        {"execute", no_argument, 0, 'x'},            {"timeout", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},               {0, 0, 0, 0}};
    int64_t now = (int64_t)wall_now() * 1000;
    char err[512];
    int opt;
    static char topic[256];
    *o = (replay_opts){.from = CLI_NO_TIME, .to = CLI_NO_TIME};
    optind = 1;
    while ((opt = getopt_long(argc, argv, "F:T:b:o:B:g:xt:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'F':
        case 'T':
            if (timearg_parse(optarg, now, opt == 'F' ? &o->from : &o->to, err, sizeof(err)) < 0) {
                fprintf(stderr, "callbus replay: --%s: %s\n", opt == 'F' ? "from" : "to", err);
                return -1;
            }
            break;
        case 'b': o->bootstrap = optarg; break;
        case 'o': o->to_topic = optarg; break;
        case 'B': o->to_bootstrap = optarg; break;
        case 'g': o->group = optarg; break;
        case 'x': o->execute = 1; break;
        case 't': cli_timeout_ms = atoi(optarg) * 1000; break;
        case 'h': return fputs(usage_text, stdout), 1;
        default: return usage(), -1;
        }
    }
    const char *why = NULL;
    if (optind + 1 != argc) why = "give exactly one TOPIC";
    else if (o->from == CLI_NO_TIME) why = "--from is required";
    else if (o->to != CLI_NO_TIME && o->to <= o->from) why = "--to must be later than --from";
    else if (o->group && (o->to_topic || o->to_bootstrap)) why = "--reset-group and --to-topic are different things: one at a time";
    else if (o->group && o->to != CLI_NO_TIME) why = "--to has no meaning with --reset-group (the group carries on to the end)";
    else if (o->to_bootstrap && !o->to_topic) why = "--to-bootstrap needs --to-topic";
    else if (o->execute && !o->to_topic && !o->group) why = "--execute only applies to --to-topic or --reset-group";
    else if (cli_timeout_ms <= 0) why = "--timeout must be a positive number of seconds";
    if (why) {
        fprintf(stderr, "callbus replay: %s\n", why);
        usage();
        return -1;
    }
    static const char *const clusters[] = {"source", "target"};
    if (cli_check_clusters(cx, "replay", clusters, o->to_bootstrap ? 2 : 1) < 0) return -1;
    cli_topic(cx, argv[optind], topic, sizeof(topic));
    o->topic = topic;
    return 0;
}

int cmd_replay(cli_ctx *cx, int argc, char **argv) {
    replay_opts o;
    char err[1024] = "";
    int parsed = parse(cx, argc, argv, &o);
    if (parsed != 0) return parsed < 0 ? 2 : 0;
    rd_kafka_t *rk = cli_client(cx, RD_KAFKA_CONSUMER, o.bootstrap, NULL, "replay", "source");
    if (!rk) return 3;
    cli_range *r = NULL;
    int n = plan(rk, &o, &r, err, sizeof(err)), rc;
    if (n < 0) {
        fprintf(stderr, "callbus replay: %s\n", err);
        rc = 3;
    } else if (!o.to_topic && !o.group) {
        rc = to_stdout(rk, &o, r, n, err, sizeof(err));
    } else {
        print_window(&o);
        rc = o.group ? reset_group(rk, &o, r, n, err, sizeof(err)) : to_topic(cx, rk, &o, r, n, err, sizeof(err));
    }
    if (rc == 3 && n >= 0 && err[0]) fprintf(stderr, "callbus replay: %s\n", err);
    free(r);
    rd_kafka_destroy(rk);
    return rc;
}
