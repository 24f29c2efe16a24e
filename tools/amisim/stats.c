/* stats.c -- action and event counters, dumped as JSON (see stats.h). */
#include "stats.h"

#include <jansson.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uthash.h>

#include "clock.h"
#include "log.h"

typedef struct action_count {
    char *name;
    char *action;           /* by ActionID: the action that carried it first */
    unsigned long count;
    double first_at;        /* when the first one arrived (for latency benchmarks) */
    UT_hash_handle hh;
} action_count;

static action_count *actions, *by_id;
static json_t *originates;
static unsigned long events_sent;
static unsigned long clients;
static double sim_lag_max;
/* How late each step ran after its due time (= its events' Timestamp), in
 * 10 us buckets up to 100 ms: a latency measured from the Timestamp
 * includes it, where Asterisk's would not. */
#define LAG_BUCKETS 10000
static uint32_t lag_hist[LAG_BUCKETS + 1];
static uint64_t lag_steps;

/* Events per whole second, and the most seen in one. */
typedef struct second_count {
    long second, count;
    long best_second, best_count;
} second_count;

static second_count by_sim = {-1, 0, -1, 0}, by_wall = {-1, 0, -1, 0};

typedef struct session_count {
    unsigned id;
    unsigned long events;
    unsigned long long bytes_written, bytes_acked;
    UT_hash_handle hh;
} session_count;
static session_count *sessions;

static action_count *count_in(action_count **table, const char *key) {
    action_count *a;
    HASH_FIND_STR(*table, key, a);
    if (!a) {
        a = calloc(1, sizeof(*a));
        if (!a) abort();
        a->name = strdup(key);
        HASH_ADD_KEYPTR(hh, *table, a->name, strlen(a->name), a);
    }
    a->count++;
    return a;
}

/* Session housekeeping is not a command: only the others are counted by id. */
static int counted_by_id(const char *name) {
    static const char *skip[] = {"Login", "Logoff", "Ping", "Events"};
    for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
        if (strcasecmp(name, skip[i]) == 0) return 0;
    return 1;
}

void stats_action(const char *name, const char *actionid) {
    count_in(&actions, name);
    if (!*actionid || !counted_by_id(name)) return;
    action_count *a = count_in(&by_id, actionid);
    if (!a->action) {
        a->action = strdup(name);
        a->first_at = wall_now();
    }
}

void stats_originate(const char *actionid, const char *channel, const char *exten,
                     const char (*vars)[2][128], int nvars) {
    if (!originates) originates = json_array();
    json_t *v = json_object();
    for (int i = 0; i < nvars; i++) json_object_set_new(v, vars[i][0], json_string(vars[i][1]));
    json_array_append_new(originates, json_pack("{s:s, s:s, s:s, s:o}", "action_id", actionid,
                                                "channel", channel, "exten", exten,
                                                "variables", v));
}

void stats_events(unsigned long n) {
    events_sent += n;
}

void stats_client(void) {
    clients++;
}

static unsigned long long bytes_acked(int fd) {
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0) return 0;
    return ti.tcpi_bytes_acked;
}

void stats_session(unsigned id, unsigned long events, unsigned long long bytes_written, int fd) {
    session_count *s;
    HASH_FIND_INT(sessions, &id, s);
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s) abort();
        s->id = id;
        HASH_ADD_INT(sessions, id, s);
    }
    s->events = events;
    s->bytes_written = bytes_written;
    unsigned long long acked = bytes_acked(fd);
    if (acked > s->bytes_acked) s->bytes_acked = acked;
}

/* {"<client id>": {"events": N, "bytes_written": B, "bytes_acked": A}}: the
 * ground truth of what each connection of the agent was sent. */
static json_t *sessions_json(void) {
    json_t *o = json_object();
    char id[16];
    for (session_count *s = sessions; s; s = s->hh.next) {
        snprintf(id, sizeof(id), "%u", s->id);
        json_object_set_new(o, id, json_pack("{s:I, s:I, s:I}", "events", (json_int_t)s->events,
                                             "bytes_written", (json_int_t)s->bytes_written,
                                             "bytes_acked", (json_int_t)s->bytes_acked));
    }
    return o;
}

static void count_second(second_count *s, double t) {
    long sec = (long)t;
    if (sec != s->second) {
        s->second = sec;
        s->count = 0;
    }
    if (++s->count > s->best_count) {
        s->best_count = s->count;
        s->best_second = sec;
    }
}

void stats_event_at(double ts) {
    count_second(&by_sim, ts);
    count_second(&by_wall, wall_now());
}

void stats_sim_lag(double seconds) {
    if (seconds > sim_lag_max) sim_lag_max = seconds;
    long b = seconds > 0 ? (long)(seconds * 1e5) : 0;
    lag_hist[b < LAG_BUCKETS ? b : LAG_BUCKETS]++;
    lag_steps++;
}

/* The upper end of the bucket that holds the p-th fraction of the steps;
 * 0 before any step. */
static double sim_lag_pct(double p) {
    uint64_t want = (uint64_t)((double)lag_steps * p), seen = 0;
    int b = 0;
    while (b < LAG_BUCKETS && (seen += lag_hist[b]) <= want) b++;
    return lag_steps ? (b + 1) / 1e5 : 0.0;
}

static json_t *busiest_json(void) {
    return json_pack("{s:{s:I, s:I}, s:{s:I, s:I}}",
                     "sim", "events", (json_int_t)by_sim.best_count, "at", (json_int_t)by_sim.best_second,
                     "wall", "events", (json_int_t)by_wall.best_count, "at", (json_int_t)by_wall.best_second);
}

static json_t *counts_json(void) {
    json_t *acts = json_object();
    for (action_count *a = actions; a; a = a->hh.next)
        json_object_set_new(acts, a->name, json_integer((json_int_t)a->count));
    return acts;
}

static json_t *by_id_json(void) {
    json_t *ids = json_object();
    for (action_count *a = by_id; a; a = a->hh.next)
        json_object_set_new(ids, a->name, json_pack("{s:s, s:I, s:f}", "action", a->action,
                                                    "count", (json_int_t)a->count,
                                                    "first_at", a->first_at));
    return ids;
}

#define MAX_SECTIONS 4

static struct section {
    const char *name;
    json_t *(*fn)(void);
} sections[MAX_SECTIONS];
static int nsections;

void stats_add_section(const char *name, json_t *(*fn)(void)) {
    if (nsections == MAX_SECTIONS) abort();
    sections[nsections++] = (struct section){name, fn};
}

/* Written to a temporary file and renamed, so a reader never sees half. */
int stats_write(const char *path) {
    json_t *orig = originates ? json_incref(originates) : json_array();
    json_t *root = json_pack("{s:o, s:o, s:o, s:I, s:I, s:o, s:o, s:f, s:f, s:f}", "actions", counts_json(),
                             "by_action_id", by_id_json(), "originates", orig, "events_sent",
                             (json_int_t)events_sent, "clients", (json_int_t)clients,
                             "sessions", sessions_json(), "busiest_second", busiest_json(),
                             "sim_lag_max_s", sim_lag_max, "sim_lag_p50_s", sim_lag_pct(.5),
                             "sim_lag_p99_s", sim_lag_pct(.99));
    for (int i = 0; i < nsections; i++) json_object_set_new(root, sections[i].name, sections[i].fn());
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int rc = json_dump_file(root, tmp, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    if (rc == 0 && rename(tmp, path) == 0) return 0;
    log_warn("cannot write stats file %s", path);
    return -1;
}

static void free_table(action_count **table) {
    action_count *a, *tmp;
    HASH_ITER(hh, *table, a, tmp) {
        HASH_DEL(*table, a);
        free(a->name);
        free(a->action);
        free(a);
    }
}

void stats_free(void) {
    free_table(&actions);
    free_table(&by_id);
    session_count *s, *tmp;
    HASH_ITER(hh, sessions, s, tmp) {
        HASH_DEL(sessions, s);
        free(s);
    }
    json_decref(originates);
    originates = NULL;
    nsections = 0;
}
