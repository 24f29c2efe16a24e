/* reaper.h -- deletes files on a thread of its own.
 *
 * unlink() of a file the kernel is still writing back waits for that I/O,
 * and on a busy disk that is 100 ms or more: a stall of the agent's event
 * loop, seen as a command's latency. The spool hands its delivered
 * segments here instead. A file queued and not yet deleted when the agent
 * crashes is simply still there, as if the crash had come just before its
 * unlink. */
#ifndef CALLBUS_REAPER_H
#define CALLBUS_REAPER_H

typedef struct reaper reaper;

/* NULL when no thread can be started: reaper_unlink then deletes at once. */
reaper *reaper_new(void);
void reaper_unlink(reaper *r, const char *path);
/* Returns once every file queued so far is deleted. */
void reaper_wait(reaper *r);
/* Deletes what is queued, then stops the thread. */
void reaper_free(reaper *r);

#endif
