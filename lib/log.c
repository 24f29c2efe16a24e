/* log.c -- leveled, timestamped stderr logging, and the one escaper of
 * outside text that goes into a log line or a message (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "sbuf.h"

static enum log_level min_level = LOG_INFO;
static const char *program_name = "callbus";
static const char *level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level) { min_level = level; }
void log_set_name(const char *program) { program_name = program; }

int log_level_parse(const char *name) {
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0) return i;
    return -1;
}

/* Code points shown as \uNNNN although valid: C1 controls (a terminal may
 * act on them), line and paragraph separators, bidi overrides (they make a
 * line read differently from what it holds). */
static int unsafe_code_point(uint32_t cp) {
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

/* The escaped form of the character at p into piece; returns the bytes of
 * input it takes. */
static size_t escape_one(const unsigned char *p, size_t left, char piece[8], size_t *plen) {
    static const char hex[] = "0123456789abcdef";
    unsigned c = p[0];
    if (c >= 0x20 && c < 0x7f && c != '\\') {
        piece[0] = (char)c;
        *plen = 1;
        return 1;
    }
    const char *named = c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
    if (named) {
        memcpy(piece, named, 2);
        *plen = 2;
        return 1;
    }
    size_t len = c >= 0x80 ? utf8_seq_len(p, left) : 0;
    if (!len) {
        memcpy(piece, "\\x", 2);
        piece[2] = hex[c >> 4];
        piece[3] = hex[c & 15];
        *plen = 4;
        return 1;
    }
    uint32_t cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) cp = (cp << 6) | (p[i] & 0x3f);
    if (unsafe_code_point(cp)) {
        snprintf(piece, 8, "\\u%04x", (unsigned)cp);
        *plen = 6;
    } else {
        memcpy(piece, p, len);
        *plen = len;
    }
    return len;
}

const char *log_safe(char *out, size_t outsz, const char *s, size_t n) {
    if (!outsz) return out;
    if (!s) s = "(none)", n = 6;
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, cut = 0;   /* cut: the last boundary that leaves room for "..." */
    for (size_t i = 0; i < n;) {
        char piece[8];
        size_t plen, used = escape_one(p + i, n - i, piece, &plen);
        if (o + plen + 1 > outsz) {
            o = cut;
            if (outsz >= 4) {
                memcpy(out + o, "...", 3);
                o += 3;
            }
            break;
        }
        memcpy(out + o, piece, plen);
        o += plen;
        i += used;
        if (o + 4 <= outsz) cut = o;
    }
    out[o] = 0;
    return out;
}

const char *log_safe_str(char *out, size_t outsz, const char *s) {
    return log_safe(out, outsz, s, s ? strlen(s) : 0);
}

void logmsg(enum log_level level, const char *fmt, ...) {
    if (level < min_level) return;
    char line[2048], t[RFC3339_MAX];
    int n = snprintf(line, sizeof(line), "%s %s %s: ", rfc3339(wall_now(), 3, t, sizeof(t)), program_name,
                     level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    /* One write per line so lines from librdkafka's threads never interleave. */
    size_t len = strlen(line);
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}
