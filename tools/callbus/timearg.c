/* timearg.c -- parsing and printing command-line times (see timearg.h). */
#include "timearg.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"

static int relative(const char *s, int64_t now_ms, int64_t *out, char *err, size_t errlen) {
    char *end;
    double n = strtod(s + 1, &end);
    if (end == s + 1 || n < 0) goto bad;
    double unit;
    if (!strcmp(end, "ms")) unit = 1;
    else if (!strcmp(end, "s")) unit = 1000;
    else if (!strcmp(end, "m")) unit = 60e3;
    else if (!strcmp(end, "h")) unit = 3600e3;
    else if (!strcmp(end, "d")) unit = 86400e3;
    else goto bad;
    *out = now_ms - (int64_t)(n * unit);
    return 0;
bad:
    snprintf(err, errlen, "bad relative time \"%s\": use -<number><unit>, unit ms, s, m, h or d (e.g. -2h)", s);
    return -1;
}

static int digits(const char *p, int n, int *v) {
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)p[i])) return -1;
        *v = *v * 10 + (p[i] - '0');
    }
    return 0;
}

/* The zone part: Z, +HH:MM, -HH:MM or +HHMM; offset in seconds east. */
static int zone(const char *p, int *off) {
    int h, m;
    if ((p[0] == 'Z' || p[0] == 'z') && !p[1]) return *off = 0, 0;
    if (p[0] != '+' && p[0] != '-') return -1;
    if (digits(p + 1, 2, &h) < 0) return -1;
    const char *q = p + 3;
    if (*q == ':') q++;
    if (digits(q, 2, &m) < 0 || q[2] || h > 23 || m > 59) return -1;
    *off = (p[0] == '-' ? -1 : 1) * (h * 3600 + m * 60);
    return 0;
}

static int absolute(const char *s, int64_t *out, char *err, size_t errlen) {
    struct tm tm = {0};
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, off = 0;
    const char *p = s;
    if (digits(p, 4, &y) || p[4] != '-' || digits(p + 5, 2, &mo) || p[7] != '-' || digits(p + 8, 2, &d))
        goto bad;
    p += 10;
    if (*p) {
        if (*p != 'T' && *p != 't' && *p != ' ') goto bad;
        if (digits(p + 1, 2, &h) || p[3] != ':' || digits(p + 4, 2, &mi)) goto bad;
        p += 6;
        if (*p == ':') {
            if (digits(p + 1, 2, &sec)) goto bad;
            p += 3;
            if (*p == '.') {
                int scale = 100;
                for (p++; isdigit((unsigned char)*p); p++, scale /= 10) ms += (*p - '0') * scale;
            }
        }
        if (!*p) {
            snprintf(err, errlen, "time \"%s\" has no zone: add Z for UTC (or an offset like +03:00)", s);
            return -1;
        }
        if (zone(p, &off) < 0) goto bad;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) goto bad;
    tm.tm_year = y - 1900, tm.tm_mon = mo - 1, tm.tm_mday = d;
    tm.tm_hour = h, tm.tm_min = mi, tm.tm_sec = sec;
    time_t t = timegm(&tm);
    struct tm back;
    gmtime_r(&t, &back);
    if (back.tm_mday != d && sec != 60) goto bad;  /* 2026-02-30 normalises to March: refuse it */
    *out = ((int64_t)t - off) * 1000 + ms;
    return 0;
bad:
    snprintf(err, errlen,
             "bad time \"%s\": use ISO-8601 with a zone (2026-11-26T05:00:00Z, 2026-11-26T08:00+03:00, "
             "2026-11-26) or a relative time (now, -30m, -2h, -1d)", s);
    return -1;
}

int timearg_parse(const char *s, int64_t now_ms, int64_t *out_ms, char *err, size_t errlen) {
    if (!s || !*s) {
        snprintf(err, errlen, "empty time");
        return -1;
    }
    if (!strcmp(s, "now")) return *out_ms = now_ms, 0;
    if (s[0] == '-') return relative(s, now_ms, out_ms, err, errlen);
    return absolute(s, out_ms, err, errlen);
}

void timearg_format(int64_t ms, char *out, size_t outlen) {
    rfc3339((double)ms / 1000.0, 3, out, outlen);
}
