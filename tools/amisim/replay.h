/* replay.h -- streams a recorded AMI capture to clients (--replay, --raw-replay). */
#ifndef AMISIM_REPLAY_H
#define AMISIM_REPLAY_H

/* Loads the capture and registers the replayer with the loop: a stream per
 * client whose events are on, or the raw bytes at connect. */
int replay_load(const char *path);
void replay_free(void);

#endif
