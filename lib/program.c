/* program.c -- shared command line of the callbus daemons (see program.h). */
#include "program.h"

#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "alloc.h"
#include "log.h"
#include "version.h"

static void usage(const program_info *p, FILE *out) {
    fprintf(out,
            "usage: %s [-c FILE] [-X name=value]... [options]\n"
            "\n%s\n"
            "  -c, --config FILE     configuration file (see %s)\n"
            "  -X name=value         librdkafka property, passed through untouched;\n"
            "                        overrides the config file's kafka list\n"
            "  -v, --verbose         debug logging\n"
            "      --check-config    validate the configuration and exit (0 = valid)\n"
            "  -h, --help            this text\n"
            "  -V, --version         version\n",
            p->name, p->about, p->config_example);
}

int program_bad_config(const program_info *p, callbus_config *cfg, const char *message) {
    fprintf(stderr, "%s: %s\n", p->name, message);
    config_free(cfg);
    return 2;
}

/* Config file, then -X overrides, then the log level it names. */
static int load(const program_info *p, const char *path, char **props, int nprops, int verbose,
                callbus_config *cfg) {
    char err[1024];
    if (config_load(cfg, path, err, sizeof(err)) < 0) return program_bad_config(p, cfg, err);
    for (int i = 0; i < nprops; i++)
        if (config_set_kafka(cfg, props[i], err, sizeof(err)) < 0) return program_bad_config(p, cfg, err);
    /* config_load checked the name */
    log_set_level(verbose ? LOG_DEBUG : (enum log_level)log_level_parse(cfg->log_level));
    return -1;
}

int program_start(const program_info *p, int argc, char **argv, callbus_config *cfg,
                  const char **path, int *check) {
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"verbose", no_argument, 0, 'v'},
        {"check-config", no_argument, 0, 'C'}, {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'}, {0, 0, 0, 0}};
    char **props = xcalloc((size_t)argc + 1, sizeof(char *));
    int nprops = 0, verbose = 0, opt, rc = -1;
    *path = NULL;
    *check = 0;
    alloc_init();
    log_set_name(p->name);
    while (rc < 0 && (opt = getopt_long(argc, argv, "c:X:vhV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': *path = optarg; break;
        case 'X': props[nprops++] = optarg; break;
        case 'v': verbose = 1; break;
        case 'C': *check = 1; break;
        case 'h': usage(p, stdout); rc = 0; break;
        case 'V': printf("%s %s\n", p->name, CALLBUS_VERSION); rc = 0; break;
        default: usage(p, stderr); rc = 2; break;
        }
    }
    if (rc < 0) rc = load(p, *path, props, nprops, verbose, cfg);
    free(props);
    return rc;
}

static void (*stop_fn)(void *);
static void *stop_arg;

static void on_stop_signal(int sig) {
    (void)sig;
    if (stop_fn) stop_fn(stop_arg);
}

void program_stop_on_signals(void (*stop)(void *), void *arg) {
    stop_fn = stop;
    stop_arg = arg;
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* A peer that went away is an error return, not a death. */
    signal(SIGPIPE, SIG_IGN);
}

int program_config_valid(const char *path, callbus_config *cfg, const char *fmt, ...) {
    char details[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(details, sizeof(details), fmt, ap);
    va_end(ap);
    printf("%s: configuration is valid (%s)\n", path ? path : "(defaults)", details);
    config_free(cfg);
    return 0;
}

int program_serve(const program_daemon *d, callbus_config *cfg) {
    char err[1024];
    void *running = d->make(cfg, err, sizeof(err));
    if (!running) {
        log_error("%s", err);
        config_free(cfg);
        return 1;
    }
    program_stop_on_signals(d->stop, running);
    int rc = d->run(running);
    d->free(running);
    config_free(cfg);
    return rc;
}
