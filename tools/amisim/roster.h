/* roster.h -- the queues and operators of the simulated call centre
 * (--queues, --operators, --no-answer); the tables themselves and their
 * lookups are in sim.h, with the rest of the model. */
#ifndef AMISIM_ROSTER_H
#define AMISIM_ROSTER_H

/* Makes the queues and operators; -1, logged, when the options are wrong. */
int roster_init(void);
void roster_free(void);

#endif
