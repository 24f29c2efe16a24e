/* main.c -- callbus-agent: command line, signals, run. */
#include <stdio.h>

#include "agent.h"
#include "log.h"
#include "program.h"

static void stop(void *a) { agent_stop(a); }

static const program_info info = {
    "callbus-agent",
    "Publishes every AMI event of one Asterisk to Kafka, with normalised call\n"
    "and operator events, executes commands from Kafka, and never blocks Asterisk.\n",
    "agent/agent.conf.example"};

int main(int argc, char **argv) {
    callbus_config cfg;
    const char *path;
    int check;
    int rc = program_start(&info, argc, argv, &cfg, &path, &check);
    if (rc >= 0) return rc;
    if (check) {
        printf("%s: configuration is valid (site %s, agent %s, AMI %s:%d)\n", path ? path : "(defaults)",
               cfg.site, cfg.agent.id, cfg.agent.ami_host, cfg.agent.ami_port);
        config_free(&cfg);
        return 0;
    }
    char err[1024];
    agent *running = agent_new(&cfg, err, sizeof(err));
    if (!running) {
        log_error("%s", err);
        config_free(&cfg);
        return 1;
    }
    program_stop_on_signals(stop, running);
    rc = agent_run(running);
    agent_free(running);
    config_free(&cfg);
    return rc;
}
