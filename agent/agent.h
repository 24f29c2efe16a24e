/* agent.h -- callbus-agent: one Asterisk's AMI stream into the site's Kafka.
 *
 * Owns the pieces and the event loop: the AMI client, the call model, the
 * publisher and the metrics endpoint. main.c only parses the command line. */
#ifndef CALLBUS_AGENT_H
#define CALLBUS_AGENT_H

#include "config.h"

typedef struct agent agent;

agent *agent_new(callbus_config *c, char *err, size_t errlen);
/* Runs until agent_stop is called (from a signal handler too). */
int agent_run(agent *a);
void agent_stop(agent *a);
void agent_free(agent *a);

#endif
