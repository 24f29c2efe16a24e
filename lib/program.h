/* program.h -- the command line every callbus daemon shares.
 *
 * callbus-agent and callbus-gateway take the same options (-c, -X,
 * -v, --check-config, --help, --version) and read the same config file;
 * parsing them lives here once. */
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

#endif
