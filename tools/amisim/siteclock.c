/* siteclock.c -- the site's local time in the simulation (see siteclock.h).
 *
 * The C library does the time-zone work: --tz becomes TZ, so mktime() and
 * localtime_r() follow the zone's rules, summer time included. glibc takes
 * an unknown zone name for UTC without a word, so a name is only accepted
 * when tzdata has it (or it is a POSIX TZ rule such as "EET-2EEST,M3.5.0/3,M10.5.0/4"). */
#include "siteclock.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "amisim.h"
#include "log.h"

static int has_start;
static struct tm start_tm;      /* --start-at; tm_year < 0 when no date was given */

static int zoneinfo_has(const char *zone) {
    const char *dir = getenv("TZDIR");
    char path[512];
    if (zone[0] == '/' || strstr(zone, "..")) return 0;
    snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", zone);
    return access(path, R_OK) == 0;
}

/* std offset [dst [offset] [,rule]]: letters (or <...>), then a digit or sign. */
static int posix_rule(const char *tz) {
    const char *p = tz;
    if (*p == '<') {
        p = strchr(p, '>');
        if (!p) return 0;
        p++;
    } else {
        while (isalpha((unsigned char)*p)) p++;
        if (p - tz < 3) return 0;
    }
    return *p == '+' || *p == '-' || isdigit((unsigned char)*p);
}

static int set_zone(const char *tz) {
    if (strcmp(tz, "UTC") != 0 && !zoneinfo_has(tz) && !posix_rule(tz)) {
        log_error("--tz %s: no such time zone (a tzdata name such as Europe/Tallinn, or a POSIX TZ rule)", tz);
        return -1;
    }
    setenv("TZ", tz, 1);
    tzset();
    return 0;
}

/* "[YYYY-MM-DD[T| ]]HH:MM[:SS]" */
static int parse_start(const char *s) {
    memset(&start_tm, 0, sizeof(start_tm));
    start_tm.tm_year = -1;
    const char *rest = strptime(s, "%Y-%m-%d", &start_tm);
    if (rest && (*rest == 'T' || *rest == ' ')) s = rest + 1;
    else start_tm.tm_year = -1;
    struct tm t = start_tm;
    const char *end = strptime(s, "%H:%M:%S", &t);
    if (!end || *end) {
        t = start_tm;
        end = strptime(s, "%H:%M", &t);
    }
    if (!end || *end) return -1;
    start_tm = t;
    return 0;
}

int siteclock_init(void) {
    if (cfg.tz && set_zone(cfg.tz) < 0) return -1;
    if (!cfg.start_at) return 0;
    if (parse_start(cfg.start_at) < 0) {
        log_error("--start-at %s: give HH:MM[:SS] or YYYY-MM-DD HH:MM[:SS]", cfg.start_at);
        return -1;
    }
    has_start = 1;
    return 0;
}

double siteclock_origin(double now) {
    if (!has_start) return now;
    struct tm t = start_tm;
    if (t.tm_year < 0) {            /* today, in the site's zone */
        struct tm today;
        time_t secs = (time_t)now;
        localtime_r(&secs, &today);
        t.tm_year = today.tm_year;
        t.tm_mon = today.tm_mon;
        t.tm_mday = today.tm_mday;
    }
    t.tm_isdst = -1;
    return (double)mktime(&t);
}

void siteclock_date(double t, char *out, size_t n) {
    struct tm tm;
    time_t secs = (time_t)t;
    localtime_r(&secs, &tm);
    strftime(out, n, "%Y-%m-%d", &tm);
}

void siteclock_iso(double t, char *out, size_t n) {
    struct tm tm;
    time_t secs = (time_t)t;
    char zone[8];
    localtime_r(&secs, &tm);
    strftime(zone, sizeof(zone), "%z", &tm);    /* +0200 -> +02:00 */
    size_t len = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + len, n - len, "%.3s:%s", zone, zone + 3);
}

const char *siteclock_zone(void) {
    if (cfg.tz) return cfg.tz;
    const char *tz = getenv("TZ");
    return tz && *tz ? tz : "localtime";
}
