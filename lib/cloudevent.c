/* cloudevent.c -- CloudEvents envelope writer (see cloudevent.h). */
#include "cloudevent.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

void ce_source_init(ce_source *src, const char *site, const char *role,
                    const char *producer, int64_t epoch) {
    snprintf(src->site, sizeof(src->site), "%s", site);
    snprintf(src->producer, sizeof(src->producer), "%s", producer);
    snprintf(src->uri, sizeof(src->uri), "callbus://%s/%s/%s", site, role, producer);
    src->epoch = epoch;
}

void ce_begin(sbuf *b, const ce_source *src, const char *stream, uint64_t seq,
              const char *type, const char *subject, double time) {
    sbuf_printf(b,
                "{\"specversion\":\"1.0\",\"id\":\"%s:%s:%s:%lld:%llu\",\"source\":\"%s\","
                "\"type\":\"%s\",\"time\":",
                src->site, src->producer, stream, (long long)src->epoch, (unsigned long long)seq,
                src->uri, type);
    sbuf_json_time(b, time);
    if (subject) {
        sbuf_puts(b, ",\"subject\":");
        sbuf_json_str(b, subject, strlen(subject));
    }
    sbuf_printf(b, ",\"datacontenttype\":\"application/json\",\"epoch\":%lld,\"seq\":%llu,\"data\":",
                (long long)src->epoch, (unsigned long long)seq);
}

void ce_end(sbuf *b) { sbuf_putc(b, '}'); }

double ce_now(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}
