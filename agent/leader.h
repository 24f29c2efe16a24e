/* leader.h -- which of two agents for one Asterisk leads (agent.standby).
 *
 * The leader renews a lease on the leases topic inside its transactions, so
 * a lease is seen only once committed: it proves that the leader's commits
 * still go through. A standby that hears no lease from another instance for
 * agent.standby.takeover_ms takes over, and the takeover itself fences the
 * old leader (publisher_lead): the lease only decides when to try, and two
 * leaders never both publish or execute, whatever the pauses and clocks. */
#ifndef CALLBUS_LEADER_H
#define CALLBUS_LEADER_H

#include <jansson.h>
#include <stdint.h>

#include "config.h"

typedef struct leader leader;

typedef struct lease {
    char instance[128];
    int64_t epoch;
    double time;            /* wall clock, when the leader wrote it */
    int released;
} lease;

/* One record of the leases topic, whose bytes anyone who can write to the
 * topic chooses: 0 and *out filled, or -1 when it is not a lease. */
int lease_parse(const void *buf, size_t len, lease *out);

/* instance: this process, unique among every run of this agent id. */
leader *leader_new(const callbus_config *c, const char *instance, char *err, size_t errlen);
/* Standby: reads the leases; 1 when this instance should take over now. */
int leader_poll(leader *l, double mono);
/* The leader this one replaces: the wall time of its last lease (or of this
 * one's start, when none was heard), its instance, its epoch. */
double leader_last_heard(const leader *l);
const char *leader_last_instance(const leader *l);
int64_t leader_last_epoch(const leader *l);   /* 0: none heard */
/* Leader: the lease's data to publish now (a new reference), or NULL when
 * it is not due. released: the last one, at a clean stop, so the standby
 * need not wait for the lease to lapse. */
json_t *leader_lease(leader *l, double mono, int64_t epoch, int released);
/* Stops reading leases (this instance leads). */
void leader_stop_listening(leader *l);
void leader_free(leader *l);

#endif
