/* replay.c -- streams a recorded AMI capture to each client (see replay.h).
 *
 * The capture is read once and indexed by message; a client's stream is just
 * a position in that index. Whatever is due is copied as one contiguous run
 * of the original bytes, so a replay is byte for byte what Asterisk sent and
 * costs a memcpy per megabyte. The capture's own banner, login response and
 * the FullyBooted right after it are skipped (amisim sends its own), as is
 * the trailing Logoff reply; everything in between goes out unchanged, also
 * on every --loop round (Uniqueids and channel names repeat). */
#include "replay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "amisim.h"
#include "events.h"
#include "log.h"
#include "server.h"
#include "stats.h"

typedef struct rmsg {
    size_t off, len;     /* len runs to the next message: stray blank lines stay */
    double ts;           /* Timestamp, or the previous message's */
    unsigned priv;       /* Privilege categories; all for messages without one */
} rmsg;

typedef struct stream {
    size_t idx;
    long loops_done;
    double start;
    int finished;
} stream;

static char *data;
static size_t data_len;
static rmsg *msgs;
static size_t nmsgs;
static double t_first, span;
static int enabled;

static int read_file(const char *path) {
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        log_error("cannot open %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    data = malloc((size_t)st.st_size + 1);
    if (!data) abort();
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd);
    data_len = got;
    data[got] = '\0';
    return 0;
}

/* End of the line starting at p (index of its '\n', or data_len). */
static size_t line_end(size_t p) {
    const char *nl = memchr(data + p, '\n', data_len - p);
    return nl ? (size_t)(nl - data) : data_len;
}

static int line_is_blank(size_t p, size_t e) {
    return e == p || (e == p + 1 && data[p] == '\r');
}

/* Value of "Key: " on the line [p, e), or NULL. */
static const char *line_value(size_t p, size_t e, const char *key, size_t *vlen) {
    size_t klen = strlen(key);
    if (e - p < klen + 1 || strncasecmp(data + p, key, klen) != 0 || data[p + klen] != ':')
        return NULL;
    size_t v = p + klen + 1;
    while (v < e && data[v] == ' ') v++;
    size_t ve = e;
    if (ve > v && data[ve - 1] == '\r') ve--;
    *vlen = ve - v;
    return data + v;
}

typedef struct msg_info {
    int is_response, is_fully_booted, is_goodbye, has_ts;
} msg_info;

/* Reads the headers of the message at p; returns the offset after it. */
static size_t scan_message(size_t p, rmsg *m, msg_info *info) {
    memset(info, 0, sizeof(*info));
    m->priv = EV_ALL;
    while (p < data_len) {
        size_t e = line_end(p);
        if (line_is_blank(p, e)) return e + 1;
        size_t vlen;
        const char *v;
        if ((v = line_value(p, e, "Timestamp", &vlen))) {
            m->ts = strtod(v, NULL);
            info->has_ts = 1;
        } else if ((v = line_value(p, e, "Privilege", &vlen))) {
            m->priv = privilege_mask(v, vlen);
        } else if ((v = line_value(p, e, "Response", &vlen))) {
            info->is_response = 1;
            info->is_goodbye = vlen == 7 && strncasecmp(v, "Goodbye", 7) == 0;
        } else if ((v = line_value(p, e, "Event", &vlen))) {
            info->is_fully_booted = vlen == 11 && strncmp(v, "FullyBooted", 11) == 0;
        }
        p = e + 1;
    }
    return data_len;
}

static size_t skip_blank_lines(size_t p) {
    while (p < data_len) {
        size_t e = line_end(p);
        if (!line_is_blank(p, e)) break;
        p = e + 1;
    }
    return p;
}

/* Drops the capture's own session framing: login response, the
 * FullyBooted that follows it, the Logoff reply at the end. */
static void trim_session(msg_info *infos) {
    size_t first = 0;
    if (nmsgs > first && infos[first].is_response) first++;
    if (nmsgs > first && infos[first].is_fully_booted && !infos[first].has_ts) first++;
    if (nmsgs > first && infos[nmsgs - 1].is_goodbye) nmsgs--;
    memmove(msgs, msgs + first, (nmsgs - first) * sizeof(*msgs));
    nmsgs -= first;
}

static void index_messages(void) {
    size_t p = 0, cap = 256;
    if (data_len > 21 && strncmp(data, "Asterisk Call Manager", 21) == 0) p = line_end(0) + 1;
    msgs = malloc(cap * sizeof(*msgs));
    msg_info *infos = malloc(cap * sizeof(*infos));
    if (!msgs || !infos) abort();
    double last_ts = -1;
    for (p = skip_blank_lines(p); p < data_len; p = skip_blank_lines(p)) {
        if (nmsgs == cap) {
            cap *= 2;
            msgs = realloc(msgs, cap * sizeof(*msgs));
            infos = realloc(infos, cap * sizeof(*infos));
            if (!msgs || !infos) abort();
        }
        rmsg *m = &msgs[nmsgs];
        m->off = p;
        m->ts = last_ts;
        p = scan_message(p, m, &infos[nmsgs]);
        last_ts = m->ts;
        if (nmsgs) msgs[nmsgs - 1].len = m->off - msgs[nmsgs - 1].off;
        m->len = p - m->off;
        nmsgs++;
    }
    trim_session(infos);
    free(infos);
}

/* Messages before the first Timestamp go with it; span is one round's length. */
static void fill_times(void) {
    double first = -1;
    for (size_t i = 0; i < nmsgs && first < 0; i++) first = msgs[i].ts;
    if (first < 0) first = 0;
    for (size_t i = 0; i < nmsgs; i++)
        if (msgs[i].ts < 0) msgs[i].ts = first;
    t_first = first;
    span = nmsgs ? msgs[nmsgs - 1].ts - first : 0;
}

static void replay_on_connect(client *c) {
    client_append(c, data, data_len);
    if (cfg.exit_after) {
        c->exit_when_closed = 1;
        client_finish(c);
    }
}

static void replay_on_events_on(client *c) {
    if (!enabled || cfg.raw_replay || c->replay) return;
    stream *s = calloc(1, sizeof(*s));
    if (!s) abort();
    s->start = now_real();
    c->replay = s;
}

static double due_at(const stream *s, size_t i) {
    double speed = cfg.speed > 0 ? cfg.speed : 1;
    return s->start + (msgs[i].ts - t_first + (double)s->loops_done * span) / speed;
}

static void stream_finished(client *c, stream *s) {
    s->finished = 1;
    log_info("client %u replay finished after %ld round(s)", c->id, s->loops_done);
    if (cfg.exit_after) {
        c->exit_when_closed = 1;
        client_finish(c);
    }
}

/* Queues messages [from, to) that c's event mask lets through. */
static void send_run(client *c, size_t from, size_t to) {
    if (c->event_mask == EV_ALL) {
        client_append(c, data + msgs[from].off, msgs[to - 1].off + msgs[to - 1].len - msgs[from].off);
        c->events += to - from;
        stats_events(to - from);
        return;
    }
    for (size_t i = from; i < to; i++) {
        if (!(msgs[i].priv & c->event_mask)) continue;
        client_append(c, data + msgs[i].off, msgs[i].len);
        c->events++;
        stats_events(1);
    }
}

static void replay_pump(client *c, double now) {
    stream *s = c->replay;
    if (!s || s->finished || c->closing || c->dead || !c->event_mask) return;
    while (client_pending(c) < CLIENT_HIGH_WATER) {
        if (s->idx == nmsgs) {
            s->loops_done++;
            if (nmsgs == 0 || (cfg.loops > 0 && s->loops_done >= cfg.loops)) {
                stream_finished(c, s);
                return;
            }
            s->idx = 0;
        }
        size_t j = s->idx, bytes = 0, room = CLIENT_HIGH_WATER - client_pending(c);
        while (j < nmsgs && bytes < room && (cfg.max || due_at(s, j) <= now)) bytes += msgs[j++].len;
        if (j == s->idx) return;
        send_run(c, s->idx, j);
        s->idx = j;
    }
}

static double replay_next_due(client *c, double now) {
    stream *s = c->replay;
    if (!s || s->finished || c->closing || c->dead || !c->event_mask) return -1;
    if (client_pending(c) >= CLIENT_HIGH_WATER) return -1;
    if (cfg.max || s->idx == nmsgs) return now;
    return due_at(s, s->idx);
}

static void replay_client_free(client *c) {
    free(c->replay);
    c->replay = NULL;
}

/* The loop's turn: every stream's due messages. */
static void replay_run(double now) {
    for (client *c = server_clients(); c; c = c->next)
        if (!c->dead && c->replay) replay_pump(c, now);
}

static double replay_next(double now) {
    double due = -1;
    for (client *c = server_clients(); c; c = c->next) {
        if (c->dead) continue;
        double d = replay_next_due(c, now);
        if (d >= 0 && (due < 0 || d < due)) due = d;
    }
    return due;
}

/* --raw-replay: the file's bytes at connect (no banner of our own). */
static void replay_opened(client *c) {
    if (cfg.raw_replay) replay_on_connect(c);
}

int replay_load(const char *path) {
    if (read_file(path) < 0) return -1;
    enabled = 1;
    static const client_hooks hooks = {replay_opened, replay_on_events_on, replay_client_free};
    server_add_client_hooks(&hooks);
    server_add_producer(replay_run, replay_next);
    if (cfg.raw_replay) return 0;
    index_messages();
    fill_times();
    log_info("replay: %zu messages, %.3f s, from %s", nmsgs, span, path);
    return 0;
}

void replay_free(void) {
    free(data);
    free(msgs);
    data = NULL;
    msgs = NULL;
}
