/* log.h -- one line per event on stderr, with a level and a component.
 *
 * Operators read these at 3 a.m.: every line starts with an ISO time and the
 * level so grep and sort work, and nothing secret is ever passed here. */
#ifndef CALLBUS_LOG_H
#define CALLBUS_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
/* "debug", "info", "warn", "error"; returns -1 for anything else. */
int log_level_parse(const char *name);
void log_set_name(const char *program);
void logmsg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Text from outside (a client's, a peer's) made safe to log or to put in a
 * message: one line of valid UTF-8, at most outsz - 1 bytes. '\\' and
 * control characters become \\ \n \r \t \xNN (C1 controls, line
 * separators and bidi overrides \uNNNN), bytes that are not UTF-8 \xNN, and
 * a cut falls between characters, marked "...". Raw, a newline in a client's
 * string forges a log line, and a cut inside a character makes the text
 * invalid UTF-8, which jansson refuses: the reply that carried it is lost.
 * Returns out (s: n bytes; NULL is "(none)"). */
const char *log_safe(char *out, size_t outsz, const char *s, size_t n);
/* log_safe() of a NUL-terminated string into a LOG_SAFE_LEN buffer that
 * lives as long as the enclosing block: log_info("... %s", log_str(name)). */
#define LOG_SAFE_LEN 128
const char *log_safe_str(char *out, size_t outsz, const char *s);
#define log_str(s) log_safe_str((char[LOG_SAFE_LEN]){0}, LOG_SAFE_LEN, (s))

#define log_debug(...) logmsg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) logmsg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) logmsg(LOG_WARN, __VA_ARGS__)
#define log_error(...) logmsg(LOG_ERROR, __VA_ARGS__)

#endif
