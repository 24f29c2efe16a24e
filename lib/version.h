/* version.h -- the callbus release, shown by every program's --version. */
#ifndef CALLBUS_VERSION_H
#define CALLBUS_VERSION_H
#define CALLBUS_VERSION "0.1.0"
#endif
