/* main.c -- callbus-agent: command line, signals, run. */
#include <malloc.h>
#include <stdlib.h>

#include "agent.h"
#include "program.h"

static void *make(callbus_config *c, char *err, size_t n) { return agent_new(c, err, n); }
static int run(void *a) { return agent_run(a); }
static void stop(void *a) { agent_stop(a); }
static void release(void *a) { agent_free(a); }

static const program_daemon agent_daemon = {make, run, stop, release};

static const program_info info = {
    "callbus-agent",
    "Publishes every AMI event of one Asterisk to Kafka, with normalised call\n"
    "and operator events, executes commands from Kafka, and never blocks Asterisk.\n",
    "agent/agent.conf.example"};

int main(int argc, char **argv) {
    /* A fixed threshold: blocks from 128 KiB (librdkafka's compression and
     * request buffers, the spool's) are mmapped and go back to the kernel
     * when freed. glibc's default raises the threshold after the first such
     * free, and then they stay in the arena of librdkafka's broker thread:
     * 2-4 MB more peak RSS at full load. MALLOC_MMAP_THRESHOLD_ overrides. */
    if (!getenv("MALLOC_MMAP_THRESHOLD_")) mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    callbus_config cfg;
    const char *path;
    int check;
    int rc = program_start(&info, argc, argv, &cfg, &path, &check);
    if (rc >= 0) return rc;
    if (check)
        return program_config_valid(path, &cfg, "site %s, agent %s, AMI %s:%d", cfg.site, cfg.agent.id,
                                    cfg.agent.ami_host, cfg.agent.ami_port);
    return program_serve(&agent_daemon, &cfg);
}
