/* log.h -- one line per event on stderr, with a level and a component.
 *
 * Operators read these at 3 a.m.: every line starts with an ISO time and the
 * level so grep and sort work, and nothing secret is ever passed here. */
#ifndef CALLBUS_LOG_H
#define CALLBUS_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
/* "debug", "info", "warn", "error"; returns -1 for anything else. */
int log_level_parse(const char *name);
void log_set_name(const char *program);
void logmsg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) logmsg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) logmsg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) logmsg(LOG_WARN, __VA_ARGS__)
#define log_error(...) logmsg(LOG_ERROR, __VA_ARGS__)

#endif
