/* durable.h -- making a file's creation or replacement survive a power cut.
 *
 * fsync of a file makes its bytes durable, not its name: after a rename or
 * the creation of a file the directory entry is durable only once the
 * directory itself is fsynced (fsync(2), "Notes"). The command journal
 * relies on both: a journal that vanishes, or goes back to its state before
 * a compaction, would let a command run twice. */
#ifndef CALLBUS_DURABLE_H
#define CALLBUS_DURABLE_H

/* fsync the directory holding path. 0, or -1 with errno set. */
int durable_sync_dir_of(const char *path);

/* rename(from, to), then fsync to's directory. from's own bytes must
 * already be fsynced by the caller. 0, or -1 with errno set. */
int durable_rename(const char *from, const char *to);

#endif
