/* program.h -- the command line every callbus daemon shares.
 *
 * callbus-agent and callbus-gateway take the same options (-c, -X,
 * -v, --check-config, --help, --version), read the same config file and
 * run the same way (made, stopped by a signal, freed); that lives here once. */
#ifndef CALLBUS_PROGRAM_H
#define CALLBUS_PROGRAM_H

#include "config.h"

typedef struct program_info {
    const char *name;          /* "callbus-agent" */
    const char *about;         /* lines printed after the usage line */
    const char *config_example;
} program_info;

/* Parses the options, loads the config (with -X overrides) and sets up
 * logging. Returns -1 when the program should go on (cfg is loaded; check
 * says whether only --check-config was asked), else the exit code to return
 * at once: 0 after --help/--version, 2 for bad usage or a bad config (the
 * message is printed). */
int program_start(const program_info *p, int argc, char **argv, callbus_config *cfg,
                  const char **path, int *check);
/* Prints "<name>: <message>" for a config problem found later; returns 2. */
int program_bad_config(const program_info *p, callbus_config *cfg, const char *message);
/* SIGINT and SIGTERM call stop(arg), which must be async-signal-safe (set
 * a flag); SIGPIPE is ignored. */
void program_stop_on_signals(void (*stop)(void *), void *arg);

/* --check-config's answer, "<path>: configuration is valid (<details>)" on
 * stdout; frees cfg and returns 0. */
int program_config_valid(const char *path, callbus_config *cfg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A daemon as program_serve runs it. make builds it from the config (NULL
 * with a message in err when it cannot); stop must be async-signal-safe. */
typedef struct program_daemon {
    void *(*make)(callbus_config *cfg, char *err, size_t errlen);
    int (*run)(void *d);
    void (*stop)(void *d);
    void (*free)(void *d);
} program_daemon;

/* Makes the daemon, stops it on SIGINT/SIGTERM, runs it, frees it and cfg.
 * Returns run's exit code, or 1 (the message logged) when make failed. */
int program_serve(const program_daemon *d, callbus_config *cfg);

#endif
