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
#include <sys/time.h>

#include "actions.h"
#include "amisim.h"
#include "callcenter.h"
#include "commands.h"
#include "events.h"
#include "log.h"
#include "replay.h"
#include "server.h"
#include "stats.h"

amisim_config cfg;
double boot_time;

double now_real(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
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
        "                         clients, by_action_id, originates) on SIGUSR1\n"
        "                         and at exit\n"
        "  --stats-interval S     also write the stats file every S seconds (e.g. 0.5)\n"
        "  --shutdown-after S     after S seconds send 'Event: Shutdown' (Cleanly,\n"
        "                         Restart: True) to every client, close and exit\n"
        "  --log-level LEVEL      debug, info, warn, error (info)\n"
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
        "  --abandon PCT          share of callers who hang up while queued (10)\n"
        "  --calls N              stop after N calls (0 = unlimited); amisim then exits\n"
        "                         --linger S seconds after the last call ends (30;\n"
        "                         negative: never), or at once with --exit-after\n"
        "  --seed S               random seed (1)\n"
        "  --speed N              simulated time runs N times faster (Timestamps too)\n"
        "  --max                  no timers: generate as fast as clients read (starts\n"
        "                         when the first client logs in)\n"
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
    OPT_HELP
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

static int parse_talk(const char *s) {
    char *end;
    cfg.talk_min = strtod(s, &end);
    cfg.talk_max = *end == '-' ? strtod(end + 1, &end) : cfg.talk_min;
    return *end || cfg.talk_min < 0 || cfg.talk_max < cfg.talk_min ? -1 : 0;
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
    case OPT_TALK: return parse_talk(arg);
    case OPT_ABANDON: cfg.abandon_pct = atof(arg); return 0;
    case OPT_CALLS: cfg.calls = atol(arg); return 0;
    case OPT_LINGER: cfg.linger = atof(arg); return 0;
    case OPT_SEED: cfg.seed = (unsigned)strtoul(arg, NULL, 10); return 0;
    case OPT_WRITETIMEOUT: cfg.writetimeout_ms = atoi(arg); return 0;
    case OPT_AUTHDELAY: cfg.auth_fail_delay_ms = atoi(arg); return 0;
    case OPT_SHUTDOWN: cfg.shutdown_after = atof(arg); return 0;
    case OPT_STATS: cfg.stats_file = arg; return 0;
    case OPT_STATS_INTERVAL: cfg.stats_interval = atof(arg); return cfg.stats_interval >= 0 ? 0 : -1;
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
    if (!cfg.nusers) cfg.users[cfg.nusers++] = (amisim_user){"callbus", "callbus"};
    return 0;
}

int main(int argc, char **argv) {
    log_set_name("amisim");
    set_defaults();
    if (parse_args(argc, argv) < 0) return 2;
    boot_time = now_real();
    actions_init();
    if (cfg.replay_file && replay_load(cfg.replay_file) < 0) return 1;
    if (callcenter_init() < 0) return 2;
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
