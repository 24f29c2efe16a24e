/* datadir.h -- where a program finds the files it ships with (the operator
 * page, the message schemas), installed or in the source tree.
 *
 * Both are found from the program's own location, so no path is compiled
 * in and an installation can be moved: `make install` puts a program in
 * <prefix>/bin and its files in <prefix>/share/callbus/<name>; a build in
 * the source tree is build/<program> next to the sources. */
#ifndef CALLBUS_DATADIR_H
#define CALLBUS_DATADIR_H

#include <stddef.h>

/* The directory <program dir>/../share/callbus/<name> if it exists, else
 * <program dir>/../<source>. Returns 0 with the path in buf, or -1 with the
 * installed location in buf (for the error message). */
int datadir_find(const char *name, const char *source, char *buf, size_t len);

#endif
