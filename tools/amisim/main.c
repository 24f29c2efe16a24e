/* main.c -- amisim: an Asterisk Manager Interface server simulator.
 *
 * Speaks AMI like Asterisk 22.10.1 (AMI 11.0.0) so the agent can be tested
 * and benchmarked without a PBX: it replays recorded captures byte for byte
 * or simulates a call centre. This file reads the command line and starts
 * the loop; see server.c, actions.c, replay.c and callcenter.c. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actions.h"
#include "amisim.h"
#include "callcenter.h"
#include "clock.h"
#include "commands.h"
#include "events.h"
#include "lists.h"
#include "log.h"
#include "replay.h"
#include "server.h"
#include "session.h"
#include "simclock.h"
#include "stats.h"
#include "tls.h"

amisim_config cfg;
double boot_time;

/* The wall time amisim started at, advanced by the monotonic clock
 * (clock.h): its timers neither fire early nor freeze when the machine's
 * clock is stepped, and the times it writes still read as wall time. */
double now_real(void) {
    static double wall_at_start = -1, mono_at_start;
    if (wall_at_start < 0) {
        wall_at_start = wall_now();
        mono_at_start = mono_now();
    }
    return wall_at_start + (mono_now() - mono_at_start);
}

static void usage(FILE *out) {
    fputs(
        "usage: amisim [options]\n"
        "\n"
        "An AMI server that looks like Asterisk 22.10.1 (Asterisk Call Manager/11.0.0).\n"
        "Without --replay or --simulate it only answers actions.\n"
        "\n"
        "  --listen HOST:PORT     listen address (127.0.0.1:5038); port 0 picks a free\n"
        "                         port, printed as 'amisim: listening on HOST:PORT'\n"
        "  --user NAME            add an AMI user (repeatable; give --secret after it);\n"
        "  --secret SECRET        without any --user, callbus/callbus is accepted\n"
        "  --auth-fail-delay MS   wait before refusing a Login, then close (1000, as Asterisk)\n"
        "  --writetimeout MS      drop a client whose output has not drained for MS\n"
        "                         (Asterisk's writetimeout; default off: never drop)\n"
        "  --stats-file PATH      write JSON counters (actions by name, events_sent,\n"
        "                         clients, by_action_id, originates, sessions: events\n"
        "                         and bytes written per client id, busiest_second,\n"
        "                         sim_lag_max_s, sim_lag_p50_s, sim_lag_p99_s: how late\n"
        "                         steps ran after their Timestamp) and the simulation's ground truth\n"
        "                         (\"truth\", see below) on SIGUSR1 and at exit\n"
        "  --stats-interval S     also write the stats file every S seconds (e.g. 0.5)\n"
        "  --dialplan-data TEXT   the [phones] dialplan runs UserEvent(CrmNote,Note: TEXT)\n"
        "                         after its NoOp, TEXT standing for data from outside\n"
        "                         Asterisk (a CRM lookup): written unescaped, as Asterisk\n"
        "                         does, into the Newexten's AppData and the UserEvent's\n"
        "                         body; \\r, \\n and \\\\ in TEXT are CR, LF and a\n"
        "                         backslash, so CR/LF can inject whole fake messages\n"
        "  --drop-after-login N   cut the first N sessions right after their login reply\n"
        "                         and FullyBooted (a reset: the client's next write\n"
        "                         fails), as a network cut would; with --exit-after\n"
        "                         amisim exits after the Nth (an Asterisk that stopped)\n"
        "  --shutdown-after S     after S seconds send 'Event: Shutdown' (Cleanly,\n"
        "                         Restart: True) to every client, close and exit\n"
        "  --log-level LEVEL      debug, info, warn, error (info)\n"
        "  --tls-cert FILE        serve AMI over TLS, as Asterisk's manager.conf tlsenable\n"
        "                         (tlscertfile): PEM certificate chain\n"
        "  --tls-key FILE         its private key (tlsprivatekey; default: in --tls-cert)\n"
        "\n"
        "Replay:\n"
        "  --replay FILE.ami      each client that logs in with events on gets the\n"
        "                         capture's events (after its login response and\n"
        "                         FullyBooted, before its Logoff reply), byte for byte\n"
        "  --raw-replay FILE      send FILE exactly as it is right after connect (banner\n"
        "                         included, junk too); input is ignored\n"
        "  --speed N              N times faster than recorded (Timestamp gaps / N)\n"
        "  --max                  as fast as the client reads\n"
        "  --loop K               play the capture K times (0 = forever); the bytes are\n"
        "                         identical every round: Uniqueids and channels repeat\n"
        "  --exit-after           exit once the stream (or --calls) is done and sent\n"
        "\n"
        "Call centre:\n"
        "  --simulate             inbound calls through queues to operators, events as\n"
        "                         in the captures; CoreShowChannels, QueueStatus and\n"
        "                         QueueSummary return the live state\n"
        "  --operators N          operators op101.. (10), members of every queue\n"
        "  --queues A,B           queue names (support); DIDs 800, 802, ...; NAME:dynamic\n"
        "                         starts without members (QueueAdd fills it)\n"
        "  --rate R               inbound calls per simulated second (0.5)\n"
        "  --talk MIN-MAX         talk time in seconds (20-60)\n"
        "  --abandon PCT          share of impatient callers, who hang up after 5-30 s\n"
        "                         in the queue and are never offered (10)\n"
        "  --patience MIN-MAX     every other caller hangs up after MIN-MAX s of waiting\n"
        "                         unanswered, also while a phone rings (default: waits\n"
        "                         for the queue timeout)\n"
        "  --queue-timeout S      Queue()'s maximum wait; then QueueCallerAbandon and\n"
        "                         QUEUESTATUS=TIMEOUT, also while a phone rings (120)\n"
        "  --rna PCT              share of offers nobody picks up: the phone rings\n"
        "                         --ring-timeout S (15), AgentRingNoAnswer, then after\n"
        "                         --retry S (5) the next operator is rung (0)\n"
        "  --no-answer OP,OP      operators away from their desk: their phone rings on\n"
        "                         (queue calls ring out; an Originate of it fails with\n"
        "                         Reason 3 after its Timeout, the phone's legs cause 19)\n"
        "  --burst T[:N]          N callers (220) arrive together (within 0.25 s), T\n"
        "                         simulated seconds after the start: over 6,500 AMI\n"
        "                         events in the busiest second\n"
        "  --sl-threshold S       service level of the ground truth: answered within\n"
        "                         S s of queue wait, HoldTime <= S (20)\n"
        "  --calls N              stop after N calls (0 = unlimited); amisim then exits\n"
        "                         --linger S seconds after the last call ends (30;\n"
        "                         negative: never), or at once with --exit-after\n"
        "  --seed S               random seed (1)\n"
        "  --speed N              simulated time runs N times faster (Timestamps too)\n"
        "  --max                  no timers: generate as fast as clients read (starts\n"
        "                         when the first client logs in)\n"
        "  --start-at [DATE ]TIME the simulated clock starts at this local time, e.g.\n"
        "                         08:00 or \"2026-11-26 23:50:00\" (default: now)\n"
        "  --tz ZONE              the site's time zone, e.g. Europe/Tallinn (default: TZ):\n"
        "                         for --start-at and the ground truth's local dates\n"
        "\n"
        "A working day (--simulate --day HOURS):\n"
        "  --day HOURS            the day lasts HOURS simulated hours and starts when the\n"
        "                         first client logs in. Callers arrive at --rate times\n"
        "                         the --profile multiplier of the moment, until the day\n"
        "                         ends. Operators work shifts (a third all day, a third\n"
        "                         the first 5/8, a third the last 5/8): QueueAdd into\n"
        "                         every queue at the start, QueueRemove at the end;\n"
        "                         QueuePause for a Break every quarter of the day, a\n"
        "                         Lunch, and Not ready after 5% of calls. Breaks and\n"
        "                         logouts wait for the current call to end. The day is\n"
        "                         over when the last shift and the last call have ended\n"
        "                         (then --linger, --exit-after as for --calls)\n"
        "  --profile M,M,...      rate multipliers over equal parts of the day\n"
        "                         (0.5,1.0,1.4,1.2,0.8,1.3,1.1,0.7: mean 1)\n"
        "\n"
        "Ground truth (\"truth\" in --stats-file): arrived; per queue offered (joined),\n"
        "answered, answered_within_sl, abandoned, timed_out, timed_out_while_ringing,\n"
        "redirected, wait_answered_s_sum, wait_abandoned_s_sum, wait_timed_out_s_sum,\n"
        "max_wait_s, completed, talk_s_sum; per operator rung, ring_no_answer,\n"
        "answered, completed, talk_s_sum, logins, logouts, pauses by reason,\n"
        "paused_s_sum; click_to_call outcomes; the same per local date under \"days\";\n"
        "live calls by phase; \"over\" once nothing more will happen.\n"
        "\n"
        "Actions that drive calls (with --simulate, or with neither mode: then no\n"
        "inbound calls arrive but actions still run calls):\n"
        "  Originate Local/opNNN@phones + Context/Exten: click-to-call (5552xxx answers\n"
        "    and hangs up after 8 s, 5553xxx busy, 5556xxx stays up, 5554xxx no answer,\n"
        "    others invalid); + Application ChanSpy, Data PREFIX[,OPTS]: supervisor spy;\n"
        "    Local/<DID>@from-trunk + Application Wait, Data S: inbound caller, patience S\n"
        "  Redirect CHANNEL to transfer/1NN or answer/opNNN: that operator takes the call\n"
        "  Hangup CHANNEL or /REGEX/ [Cause]; QueueAdd/Remove/Pause/Penalty; Status,\n"
        "  Getvar, Setvar, CoreSettings, CoreStatus, Command\n",
        out);
}

enum {
    OPT_LISTEN = 256, OPT_USER, OPT_SECRET, OPT_REPLAY, OPT_RAW, OPT_SPEED, OPT_MAX, OPT_LOOP,
    OPT_EXIT_AFTER, OPT_SIMULATE, OPT_OPERATORS, OPT_QUEUES, OPT_RATE, OPT_TALK, OPT_ABANDON,
    OPT_CALLS, OPT_LINGER, OPT_SEED, OPT_WRITETIMEOUT, OPT_AUTHDELAY, OPT_SHUTDOWN, OPT_STATS, OPT_STATS_INTERVAL, OPT_LOGLEVEL,
    OPT_PATIENCE, OPT_QUEUE_TIMEOUT, OPT_RNA, OPT_RING_TIMEOUT, OPT_RETRY, OPT_NO_ANSWER, OPT_BURST,
    OPT_SL, OPT_DAY, OPT_PROFILE, OPT_START_AT, OPT_TZ, OPT_TLS_CERT, OPT_TLS_KEY, OPT_DIALPLAN_DATA,
    OPT_DROP_AFTER_LOGIN, OPT_HELP
};

static const struct option long_options[] = {
    {"listen", required_argument, 0, OPT_LISTEN},
    {"user", required_argument, 0, OPT_USER},
    {"secret", required_argument, 0, OPT_SECRET},
    {"replay", required_argument, 0, OPT_REPLAY},
    {"raw-replay", required_argument, 0, OPT_RAW},
    {"speed", required_argument, 0, OPT_SPEED},
    {"max", no_argument, 0, OPT_MAX},
    {"loop", required_argument, 0, OPT_LOOP},
    {"exit-after", no_argument, 0, OPT_EXIT_AFTER},
    {"simulate", no_argument, 0, OPT_SIMULATE},
    {"operators", required_argument, 0, OPT_OPERATORS},
    {"queues", required_argument, 0, OPT_QUEUES},
    {"rate", required_argument, 0, OPT_RATE},
    {"talk", required_argument, 0, OPT_TALK},
    {"abandon", required_argument, 0, OPT_ABANDON},
    {"calls", required_argument, 0, OPT_CALLS},
    {"linger", required_argument, 0, OPT_LINGER},
    {"seed", required_argument, 0, OPT_SEED},
    {"writetimeout", required_argument, 0, OPT_WRITETIMEOUT},
    {"auth-fail-delay", required_argument, 0, OPT_AUTHDELAY},
    {"shutdown-after", required_argument, 0, OPT_SHUTDOWN},
    {"stats-file", required_argument, 0, OPT_STATS},
    {"stats-interval", required_argument, 0, OPT_STATS_INTERVAL},
    {"log-level", required_argument, 0, OPT_LOGLEVEL},
    {"patience", required_argument, 0, OPT_PATIENCE},
    {"queue-timeout", required_argument, 0, OPT_QUEUE_TIMEOUT},
    {"rna", required_argument, 0, OPT_RNA},
    {"ring-timeout", required_argument, 0, OPT_RING_TIMEOUT},
    {"retry", required_argument, 0, OPT_RETRY},
    {"no-answer", required_argument, 0, OPT_NO_ANSWER},
    {"burst", required_argument, 0, OPT_BURST},
    {"sl-threshold", required_argument, 0, OPT_SL},
    {"day", required_argument, 0, OPT_DAY},
    {"profile", required_argument, 0, OPT_PROFILE},
    {"start-at", required_argument, 0, OPT_START_AT},
    {"tz", required_argument, 0, OPT_TZ},
    {"tls-cert", required_argument, 0, OPT_TLS_CERT},
    {"tls-key", required_argument, 0, OPT_TLS_KEY},
    {"dialplan-data", required_argument, 0, OPT_DIALPLAN_DATA},
    {"drop-after-login", required_argument, 0, OPT_DROP_AFTER_LOGIN},
    {"help", no_argument, 0, OPT_HELP},
    {0, 0, 0, 0},
};

static void set_defaults(void) {
    snprintf(cfg.listen_host, sizeof(cfg.listen_host), "127.0.0.1");
    cfg.listen_port = 5038;
    cfg.loops = 1;
    cfg.speed = 1;
    cfg.operators = 10;
    cfg.queues = "support";
    cfg.rate = 0.5;
    cfg.talk_min = 20;
    cfg.talk_max = 60;
    cfg.abandon_pct = 10;
    cfg.seed = 1;
    cfg.linger = 30;
    cfg.auth_fail_delay_ms = 1000;
    cfg.queue_timeout = 120;
    cfg.ring_timeout = 15;      /* app_queue.c DEFAULT_TIMEOUT */
    cfg.retry = 5;              /* app_queue.c DEFAULT_RETRY */
    cfg.sl_threshold = 20;
}

static int parse_listen(const char *s) {
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof(cfg.listen_host)) return -1;
    memcpy(cfg.listen_host, s, (size_t)(colon - s));
    cfg.listen_host[colon - s] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535) return -1;
    cfg.listen_port = (int)port;
    return 0;
}

/* "MIN-MAX" or "N" seconds. */
static int parse_range(const char *s, double *min, double *max) {
    char *end;
    *min = strtod(s, &end);
    *max = *end == '-' ? strtod(end + 1, &end) : *min;
    return end == s || *end || *min < 0 || *max < *min ? -1 : 0;
}

/* A number >= lo, nothing after it. */
static int parse_number(const char *s, double lo, double *out) {
    char *end;
    *out = strtod(s, &end);
    return end == s || *end || !(*out >= lo) ? -1 : 0;
}

/* --dialplan-data: C's \\r, \\n and \\\\ decoded in place, so a shell user
 * can write raw CR/LF. */
static int parse_dialplan_data(char *s) {
    char *o = s;
    for (const char *i = s; *i; i++) {
        if (*i != '\\' || !i[1]) {
            *o++ = *i;
            continue;
        }
        i++;
        *o++ = *i == 'r' ? '\r' : *i == 'n' ? '\n' : *i;
    }
    *o = '\0';
    cfg.dialplan_data = s;
    return strlen(s) > 4000 ? -1 : 0;
}

/* "T[:N]": N callers T seconds after the start. */
static int parse_burst(const char *s) {
    char *end;
    cfg.burst_at = strtod(s, &end);
    cfg.burst_calls = 220;
    if (*end == ':') cfg.burst_calls = strtol(end + 1, &end, 10);
    return end == s || *end || cfg.burst_at < 0 || cfg.burst_calls < 1 ? -1 : 0;
}

static int parse_option(int opt, const char *arg) {
    switch (opt) {
    case OPT_LISTEN: return parse_listen(arg);
    case OPT_USER:
        if (cfg.nusers == AMISIM_MAX_USERS) return -1;
        cfg.users[cfg.nusers++] = (amisim_user){arg, ""};
        return 0;
    case OPT_SECRET:
        if (!cfg.nusers) return -1;
        cfg.users[cfg.nusers - 1].secret = arg;
        return 0;
    case OPT_RAW: cfg.raw_replay = 1; /* fall through */
    case OPT_REPLAY: cfg.replay_file = arg; return 0;
    case OPT_SPEED: cfg.speed = atof(arg); return cfg.speed > 0 ? 0 : -1;
    case OPT_MAX: cfg.max = 1; return 0;
    case OPT_LOOP: cfg.loops = atol(arg); return cfg.loops >= 0 ? 0 : -1;
    case OPT_EXIT_AFTER: cfg.exit_after = 1; return 0;
    case OPT_SIMULATE: cfg.simulate = 1; return 0;
    case OPT_OPERATORS: cfg.operators = atoi(arg); return 0;
    case OPT_QUEUES: cfg.queues = arg; return 0;
    case OPT_RATE: cfg.rate = atof(arg); return cfg.rate >= 0 ? 0 : -1;
    case OPT_TALK: return parse_range(arg, &cfg.talk_min, &cfg.talk_max);
    case OPT_ABANDON: cfg.abandon_pct = atof(arg); return 0;
    case OPT_CALLS: cfg.calls = atol(arg); return 0;
    case OPT_LINGER: cfg.linger = atof(arg); return 0;
    case OPT_SEED: cfg.seed = (unsigned)strtoul(arg, NULL, 10); return 0;
    case OPT_WRITETIMEOUT: cfg.writetimeout_ms = atoi(arg); return 0;
    case OPT_AUTHDELAY: cfg.auth_fail_delay_ms = atoi(arg); return 0;
    case OPT_SHUTDOWN: cfg.shutdown_after = atof(arg); return 0;
    case OPT_STATS: cfg.stats_file = arg; return 0;
    case OPT_TLS_CERT: cfg.tls_cert = arg; return 0;
    case OPT_TLS_KEY: cfg.tls_key = arg; return 0;
    case OPT_DIALPLAN_DATA: return parse_dialplan_data((char *)arg);
    case OPT_DROP_AFTER_LOGIN: cfg.drop_after_login = atol(arg); return cfg.drop_after_login >= 0 ? 0 : -1;
    case OPT_STATS_INTERVAL: cfg.stats_interval = atof(arg); return cfg.stats_interval >= 0 ? 0 : -1;
    case OPT_PATIENCE:
        return parse_range(arg, &cfg.patience_min, &cfg.patience_max) < 0 || cfg.patience_max <= 0 ? -1 : 0;
    case OPT_QUEUE_TIMEOUT: return parse_number(arg, 1, &cfg.queue_timeout);
    case OPT_RNA: return parse_number(arg, 0, &cfg.rna_pct) < 0 || cfg.rna_pct > 100 ? -1 : 0;
    case OPT_RING_TIMEOUT: return parse_number(arg, 1, &cfg.ring_timeout);
    case OPT_RETRY: return parse_number(arg, 0, &cfg.retry);
    case OPT_NO_ANSWER: cfg.no_answer = arg; return 0;
    case OPT_BURST: return parse_burst(arg);
    case OPT_SL: return parse_number(arg, 0, &cfg.sl_threshold);
    case OPT_DAY: return parse_number(arg, 0.001, &cfg.day_hours);
    case OPT_PROFILE: cfg.profile = arg; return 0;
    case OPT_START_AT: cfg.start_at = arg; return 0;
    case OPT_TZ: cfg.tz = arg; return 0;
    case OPT_LOGLEVEL: {
        int level = log_level_parse(arg);
        if (level < 0) return -1;
        log_set_level((enum log_level)level);
        return 0;
    }
    }
    return -1;
}

static const char *option_name(int opt) {
    for (const struct option *o = long_options; o->name; o++)
        if (o->val == opt) return o->name;
    return "?";
}

static int parse_args(int argc, char **argv) {
    int opt;
    while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        if (opt == OPT_HELP || opt == 'h') {
            usage(stdout);
            exit(0);
        }
        if (opt == '?' || parse_option(opt, optarg) < 0) {
            if (opt != '?') fprintf(stderr, "amisim: bad value for --%s\n", option_name(opt));
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc || (cfg.simulate && cfg.replay_file)) {
        fprintf(stderr, "amisim: choose one of --replay, --raw-replay, --simulate\n");
        return -1;
    }
    if ((cfg.day_hours || cfg.burst_calls) && !cfg.simulate) {
        fprintf(stderr, "amisim: --day and --burst need --simulate\n");
        return -1;
    }
    if (!cfg.nusers) cfg.users[cfg.nusers++] = (amisim_user){"callbus", "callbus"};
    return 0;
}

/* Asterisk announces a stop to every session before closing them. */
static void announce_shutdown(double now) {
    ev_begin("Shutdown", "system,all", callcenter_enabled() ? sim_now() : now);
    ev_kv("Shutdown", "Cleanly");
    ev_kv("Restart", "True");
    ev_send();
}

int main(int argc, char **argv) {
    log_set_name("amisim");
    set_defaults();
    if (parse_args(argc, argv) < 0) return 2;
    boot_time = now_real();
    actions_init();
    session_register();
    lists_register();
    commands_register();
    server_on_shutdown(announce_shutdown);
    if (cfg.replay_file && replay_load(cfg.replay_file) < 0) return 1;
    if (callcenter_init() < 0) return 2;
    if (cfg.tls_key && !cfg.tls_cert) {
        fprintf(stderr, "amisim: --tls-key needs --tls-cert\n");
        return 2;
    }
    if (cfg.tls_cert && tls_server_init(cfg.tls_cert, cfg.tls_key) < 0) return 1;
    int rc = server_run();
    if (cfg.stats_file) stats_write(cfg.stats_file);
    callcenter_free();
    replay_free();
    actions_free();
    commands_free();
    events_free();
    stats_free();
    return rc;
}
