/* bench_lookups.c -- what header lookups cost on top of parsing.
 *
 * The agent asks a dozen or more headers of every AMI message, handler
 * after handler (lib/ami.h: the per-message header index exists for them).
 * This parses every capture ROUNDS times and looks up LOOKUPS common keys
 * per message (some absent, as in the agent), so that
 *   valgrind --tool=callgrind build/bench_lookups DIR ROUNDS 0
 *   valgrind --tool=callgrind build/bench_lookups DIR ROUNDS 20
 * give the instructions of parsing alone and of parsing plus lookups:
 * counts, not seconds, so they repeat on a busy machine. */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>

#include "ami.h"

static const char *keys[] = {
    "Event", "Uniqueid", "Linkedid", "Channel", "ActionID", "Privilege", "ChannelState",
    "CallerIDNum", "CallerIDName", "ConnectedLineNum", "Context", "Exten", "DestUniqueid",
    "Queue", "Interface", "Response", "Cause", "BridgeUniqueid", "Variable", "Value"};
static size_t lookups;
static unsigned long long messages, found;

static void on_message(void *ctx, ami_msg *m) {
    (void)ctx;
    messages++;
    for (size_t i = 0; i < lookups && i < sizeof(keys) / sizeof(*keys); i++)
        if (ami_get(m, keys[i])) found++;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    size_t cap = 1 << 16;
    char *buf = malloc(cap);
    *len = 0;
    size_t n;
    while ((n = fread(buf + *len, 1, cap - *len, f)) > 0)
        if ((*len += n) == cap) buf = realloc(buf, cap *= 2);
    fclose(f);
    return buf;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: bench_lookups CAPTURE_DIR ROUNDS LOOKUPS\n");
        return 2;
    }
    int rounds = atoi(argv[2]);
    lookups = (size_t)atoi(argv[3]);
    char pattern[512];
    snprintf(pattern, sizeof(pattern), "%s/*.ami", argv[1]);
    glob_t g;
    if (glob(pattern, 0, NULL, &g)) { fprintf(stderr, "no captures in %s\n", argv[1]); return 1; }
    ami_parser_callbacks cb = {.on_message = on_message};
    ami_parser *p = ami_parser_new(&cb, NULL);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        size_t len;
        char *data = slurp(g.gl_pathv[i], &len);
        for (int r = 0; r < rounds; r++) {
            ami_parser_reset(p);
            ami_parser_feed(p, data, len);
        }
        free(data);
    }
    printf("%llu messages, %zu lookups each, %llu found\n", messages, lookups, found);
    ami_parser_free(p);
    globfree(&g);
    return 0;
}
