/* bench_parser.c -- the AMI parser alone: events/s and MB/s over the captures.
 *
 * Feeds the event sessions of every capture in 64 KiB chunks, as the agent's
 * read loop does, many times over; prints one line per run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ami.h"

static const char *captures[] = {
    "01-inbound-queue-answered", "02-inbound-queue-paused-abandon", "03a-c2c-answered",
    "03b-c2c-busy", "04-queue-member-management", "05a-redirect", "06-hangup-and-info-actions",
    "10a-cdr-cel-inbound-answered"};

static unsigned long long messages;
static void on_message(void *ctx, ami_msg *m) { (void)ctx; (void)m; messages++; }

static char *load(const char *dir, size_t *len) {
    size_t cap = 1 << 20;
    char *all = malloc(cap);
    *len = 0;
    for (size_t i = 0; i < sizeof(captures) / sizeof(*captures); i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s.ami", dir, captures[i]);
        FILE *f = fopen(path, "rb");
        if (!f) { perror(path); exit(1); }
        /* Skip the greeting line: the parser wants one per connection. */
        char line[256];
        if (!fgets(line, sizeof(line), f)) exit(1);
        size_t n;
        while ((n = fread(all + *len, 1, cap - *len, f)) > 0) {
            *len += n;
            if (*len == cap) all = realloc(all, cap *= 2);
        }
        fclose(f);
    }
    return all;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tests/fixtures/ami-samples";
    int rounds = argc > 2 ? atoi(argv[2]) : 300;
    size_t len;
    char *data = load(dir, &len);
    ami_parser_callbacks cb = {.on_message = on_message};
    for (int run = 0; run < 5; run++) {
        ami_parser *p = ami_parser_new(&cb, NULL);
        ami_parser_feed(p, "Asterisk Call Manager/11.0.0\r\n", 30);
        messages = 0;
        double t0 = now();
        for (int r = 0; r < rounds; r++)
            for (size_t off = 0; off < len; off += 65536)
                ami_parser_feed(p, data + off, len - off < 65536 ? len - off : 65536);
        double dt = now() - t0;
        printf("parser run %d: %llu messages in %.3f s: %.0f messages/s, %.0f MB/s\n", run + 1,
               messages, dt, messages / dt, (double)len * rounds / dt / 1e6);
        ami_parser_free(p);
    }
    free(data);
    return 0;
}
