/* check.c -- `callbus check`: validate messages of a topic or of a file of
 * JSON lines against the JSON Schemas, one report line per violation.
 *
 * The validating is done by python-jsonschema, in msgcheck.py (the one
 * validator of the tree, which the tests use too): this file parses the
 * command line, finds the schemas and msgcheck.py, and for a topic reads the
 * records from Kafka (with the configuration every subcommand uses) and
 * hands their values to msgcheck.py through a pipe, framed as
 * "TOPIC PARTITION OFFSET LENGTH\n" and LENGTH bytes (LENGTH -1: tombstone).
 *
 * The schemas come from --schemas, else $CALLBUS_SCHEMAS, else the copy
 * installed with the binary, else the source tree next to it (build/callbus
 * -> schemas/), so a developer's build needs no flag (lib/datadir.c);
 * msgcheck.py from <prefix>/share/callbus/python or tools/callbus. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "clock.h"
#include "datadir.h"
#include "timearg.h"

typedef struct check_opts {
    char schemas[4096];
    char script[4096];
    int json;
} check_opts;

static int is_dir(const char *p) {
    struct stat st;
    return p && *p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void schemas_dir(const char *given, char *buf, size_t len) {
    if (given) snprintf(buf, len, "%s", given);
    else if (is_dir(getenv("CALLBUS_SCHEMAS"))) snprintf(buf, len, "%s", getenv("CALLBUS_SCHEMAS"));
    else datadir_find("schemas", "schemas", buf, len);  /* missing: msgcheck.py names it */
}

static void script_path(char *buf, size_t len) {
    char dir[4000];
    datadir_find("python", "tools/callbus", dir, sizeof(dir));
    snprintf(buf, len, "%s/msgcheck.py", dir);
}

/* Replaces this process with msgcheck.py (args: the input options). */
static int exec_checker(const check_opts *o, const char *input, const char *file) {
    const char *argv[] = {"python3", o->script, "--schemas", o->schemas, input, file, NULL, NULL};
    if (o->json) argv[file ? 6 : 5] = "--json";
    fflush(NULL);
    execvp(argv[0], (char **)argv);
    fprintf(stderr, "callbus check: cannot run python3 %s: %s\n", o->script, strerror(errno));
    return 2;
}

/* msgcheck.py reading framed records from the pipe *to. */
static pid_t spawn_checker(const check_opts *o, FILE **to) {
    int fd[2];
    if (pipe(fd) < 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[0], 0);
        close(fd[0]), close(fd[1]);
        _exit(exec_checker(o, "--records", NULL));
    }
    close(fd[0]);
    if (pid < 0) close(fd[1]);
    else *to = fdopen(fd[1], "w");
    return pid;
}

static int wait_checker(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return 2;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 2;
}

typedef struct topic_feed {
    FILE *to;
    const char *topic;
} topic_feed;

/* One record into the pipe; stops the read when msgcheck.py is gone (it
 * refused the schemas: its exit code says so). */
static int on_record(void *ud, const rd_kafka_message_t *m) {
    topic_feed *tf = ud;
    fprintf(tf->to, "%s %d %lld %lld\n", tf->topic, m->partition, (long long)m->offset,
            m->payload ? (long long)m->len : -1LL);
    if (m->payload) fwrite(m->payload, 1, m->len, tf->to);
    return ferror(tf->to) ? 1 : 0;
}

static int feed_topic(rd_kafka_t *rk, topic_feed *tf, int64_t from, int64_t to, char *err, size_t errlen) {
    int parts = cli_partition_count(rk, tf->topic, err, errlen), rc = 0;
    if (parts == 0) snprintf(err, errlen, "topic %s does not exist", tf->topic);
    if (parts <= 0) rc = -1;
    for (int p = 0; rc == 0 && p < parts && !ferror(tf->to); p++) {
        cli_range r;
        rc = cli_window(rk, tf->topic, p, from, to, &r, err, errlen);
        if (rc == 0) rc = cli_read_range(rk, tf->topic, p, r.start, r.end, on_record, tf, err, errlen);
    }
    return rc < 0 ? -1 : 0;
}

static int check_topic(cli_ctx *cx, const check_opts *o, const char *topic, const char *bootstrap, int64_t from,
                       int64_t to) {
    char err[512] = "";
    rd_kafka_t *rk = cli_client(cx, RD_KAFKA_CONSUMER, bootstrap, NULL, "check", NULL);
    if (!rk) return 3;
    topic_feed tf = {NULL, topic};
    signal(SIGPIPE, SIG_IGN);  /* a checker gone early is seen by ferror */
    pid_t pid = spawn_checker(o, &tf.to);
    if (pid < 0 || !tf.to) {
        fprintf(stderr, "callbus check: cannot start the checker: %s\n", strerror(errno));
        rd_kafka_destroy(rk);
        return 2;
    }
    int krc = feed_topic(rk, &tf, from, to, err, sizeof(err));
    fclose(tf.to);
    int rc = wait_checker(pid);
    rd_kafka_destroy(rk);
    if (krc < 0) fprintf(stderr, "callbus check: %s\n", err);
    return rc == 0 || rc == 1 ? (krc < 0 ? 3 : rc) : rc;
}

static const char usage_text[] =
            "usage: callbus check [--schemas DIR] [--json] [--bootstrap B] [--from T] [--to T] TOPIC\n"
            "       callbus check [--schemas DIR] [--json] --file FILE   (JSON lines; - = stdin)\n"
            "  TOPIC: ami, calls, ... or a full topic name; T: 2026-11-26T05:00:00Z, -2h, now\n"
            "  A line may be a message or a record printed by `callbus replay`.\n"
            "  schemas: --schemas, $CALLBUS_SCHEMAS, <binary>/../share/callbus/schemas, <binary>/../schemas\n"
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
    int64_t from = CLI_NO_TIME, to = CLI_NO_TIME, now = (int64_t)wall_now() * 1000;
    check_opts o = {0};
    char err[512];
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "s:jf:F:T:b:t:h", opts, NULL)) != -1) {
        switch (opt) {
        case 's': given = optarg; break;
        case 'j': o.json = 1; break;
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
    schemas_dir(given, o.schemas, sizeof(o.schemas));
    script_path(o.script, sizeof(o.script));
    if (file) return exec_checker(&o, "--file", file);
    char topic[256];
    cli_topic(cx, argv[optind], topic, sizeof(topic));
    return check_topic(cx, &o, topic, bootstrap, from, to);
}
