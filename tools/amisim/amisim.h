/* amisim.h -- options and clocks shared by every part of the simulator.
 *
 * amisim is one process with one event loop; the option struct is filled
 * once by main.c and then only read, so a global is the plainest way to let
 * the server, the replayer and the call centre see the same settings. */
#ifndef AMISIM_H
#define AMISIM_H

#include <stddef.h>

#define AMISIM_MAX_USERS 32

typedef struct amisim_user {
    const char *name;
    const char *secret;
} amisim_user;

typedef struct amisim_config {
    char listen_host[64];
    int listen_port;
    amisim_user users[AMISIM_MAX_USERS];
    int nusers;

    /* --replay / --raw-replay */
    const char *replay_file;
    int raw_replay;
    long loops;            /* 1 = play once, 0 = forever */
    int exit_after;

    /* pacing, shared by replay and simulate */
    double speed;          /* N times faster than real time */
    int max;               /* no pacing at all */

    /* --simulate */
    int simulate;
    int operators;
    const char *queues;
    double rate;           /* inbound calls per simulated second */
    double talk_min, talk_max;
    double abandon_pct;
    long calls;            /* 0 = unlimited */
    double linger;         /* after the last of --calls: seconds before exiting, < 0 never */
    unsigned seed;
    double queue_timeout;  /* Queue()'s maximum wait */
    double ring_timeout;   /* a member rings this long (queues.conf timeout) */
    double retry;          /* then the queue waits this long (queues.conf retry) */
    double rna_pct;        /* share of offers nobody picks up */
    const char *no_answer; /* operators whose phones are never picked up */
    double patience_min, patience_max;  /* 0: callers wait for the queue timeout */
    double burst_at;       /* simulated seconds after the start */
    long burst_calls;      /* 0 = no burst */
    double sl_threshold;   /* service level: answered within this many seconds */

    /* --day */
    double day_hours;      /* 0 = no day: flat --rate, static members */
    const char *profile;   /* arrival rate multipliers over the day */
    const char *start_at;  /* local time the simulated clock starts at */
    const char *tz;        /* the site's time zone */

    const char *tls_cert;  /* serve AMI over TLS (manager.conf tlsenable) */
    const char *tls_key;   /* NULL: the key is in tls_cert, as Asterisk's tlsprivatekey */

    /* Dialplan data from outside Asterisk that the [phones] dialplan puts,
     * unescaped as Asterisk does, into a Newexten and a UserEvent (NULL: no
     * such step); raw CR/LF in it make messages of their own. */
    const char *dialplan_data;

    int writetimeout_ms;   /* 0 = never drop a slow reader */
    long drop_after_login; /* cut this many sessions right after their login reply */
    int auth_fail_delay_ms;
    double shutdown_after; /* seconds, 0 = never */
    const char *stats_file;
    double stats_interval; /* seconds between stats writes, 0 = only SIGUSR1/exit */
} amisim_config;

extern amisim_config cfg;
/* Wall-clock time amisim started: FullyBooted's Uptime counts from here. */
extern double boot_time;

double now_real(void);

#endif
