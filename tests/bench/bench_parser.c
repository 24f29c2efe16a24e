/* bench_parser.c -- the AMI parser alone: events/s and MB/s over the captures.
 *
 * From memory: feeds the event sessions of every capture in 64 KiB chunks,
 * many times over; prints one line per run.
 *
 * Over TCP (issue 14 goal 5): a replayer child process writes the same
 * streams in a loop to a loopback TCP socket as fast as it can; this process
 * reads them as the agent does (recv() into a 256 KiB buffer, a 4 MiB
 * receive buffer: agent/ami_client.c) and either (a) only scans for the
 * "\r\n\r\n" message ends, the floor any AMI reader pays, or (b) feeds
 * lib/ami.c's parser. Each run does (a) then (b); the median of the runs and
 * the ratio (b)/(a) are printed last.
 *
 * Usage: bench_parser [DIR [ROUNDS [memory|tcp|both]]]   (default: both) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ami.h"

#define RUNS 5
#define TCP_READ_CHUNK (256 * 1024)

static const char *captures[] = {
    "01-inbound-queue-answered", "02-inbound-queue-paused-abandon", "03a-c2c-answered",
    "03b-c2c-busy", "04-queue-member-management", "05a-redirect", "06-hangup-and-info-actions",
    "10a-cdr-cel-inbound-answered"};

static const char greeting[] = "Asterisk Call Manager/11.0.0\r\n";

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

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void from_memory(const char *data, size_t len, int rounds) {
    ami_parser_callbacks cb = {.on_message = on_message};
    for (int run = 0; run < RUNS; run++) {
        ami_parser *p = ami_parser_new(&cb, NULL);
        ami_parser_feed(p, greeting, sizeof(greeting) - 1);
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
}

/* ---- Over TCP ------------------------------------------------------------ */

static void write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n <= 0) _exit(1);
        buf += n;
        len -= (size_t)n;
    }
}

/* The replayer: the greeting, then the streams rounds times, then EOF. */
static void replay(int port, const char *data, size_t len, int rounds) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) _exit(1);
    write_all(fd, greeting, sizeof(greeting) - 1);
    for (int r = 0; r < rounds; r++) write_all(fd, data, len);
    close(fd);
    _exit(0);
}

/* A listening socket and a replayer child connected to it; returns the
 * accepted connection. */
static int start_replayer(const char *data, size_t len, int rounds, pid_t *child) {
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t salen = sizeof(sa);
    if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 1) < 0 ||
        getsockname(ls, (struct sockaddr *)&sa, &salen) < 0) {
        perror("listen");
        exit(1);
    }
    /* As the agent's AMI socket (agent/ami_client.c): set before connecting. */
    int rcvbuf = 4 << 20;
    setsockopt(ls, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    fflush(stdout);
    *child = fork();
    if (*child < 0) { perror("fork"); exit(1); }
    if (*child == 0) {
        close(ls);
        replay(ntohs(sa.sin_port), data, len, rounds);
    }
    int fd = accept(ls, NULL, NULL);
    close(ls);
    if (fd < 0) { perror("accept"); exit(1); }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* The baseline: count message ends ("\r\n\r\n") with memchr for '\n', as
 * the parser finds its lines; tail keeps the last bytes across reads. */
static unsigned long long scan_frames(const char *buf, size_t n, unsigned *tail) {
    unsigned long long frames = 0;
    const char *s = buf, *end = buf + n, *nl;
    while ((nl = memchr(s, '\n', (size_t)(end - s))) != NULL) {
        /* The three bytes before this '\n', partly from earlier reads. */
        unsigned prev = *tail;
        for (const char *q = nl - 3 > s ? nl - 3 : s; q < nl; q++) prev = (prev << 8) | (unsigned char)*q;
        if ((prev & 0xffffff) == (('\r' << 16) | ('\n' << 8) | '\r')) frames++;
        *tail = (prev << 8) | '\n';
        s = nl + 1;
    }
    for (const char *q = end - 3 > s ? end - 3 : s; q < end; q++) *tail = (*tail << 8) | (unsigned char)*q;
    return frames;
}

/* One run over TCP: returns messages/s; parse = 0 only scans. */
static double tcp_run(const char *data, size_t len, int rounds, int parse, unsigned long long *count,
                      double *mb_s) {
    pid_t child;
    int fd = start_replayer(data, len, rounds, &child);
    char *buf = malloc(TCP_READ_CHUNK);
    ami_parser_callbacks cb = {.on_message = on_message};
    ami_parser *p = parse ? ami_parser_new(&cb, NULL) : NULL;
    unsigned long long frames = 0, bytes = 0;
    unsigned tail = 0;
    messages = 0;
    double t0 = 0;
    ssize_t n;
    while ((n = read(fd, buf, TCP_READ_CHUNK)) > 0) {
        if (!bytes) t0 = now(); /* from the first byte: connect and fork are not counted */
        bytes += (unsigned long long)n;
        if (p) ami_parser_feed(p, buf, (size_t)n);
        else frames += scan_frames(buf, (size_t)n, &tail);
    }
    double dt = now() - t0;
    if (n < 0) { perror("read"); exit(1); }
    close(fd);
    int status;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || bytes != (sizeof(greeting) - 1) + (unsigned long long)len * rounds) {
        fprintf(stderr, "replayer failed (%llu bytes read)\n", bytes);
        exit(1);
    }
    ami_parser_free(p);
    free(buf);
    *count = parse ? messages : frames;
    *mb_s = bytes / dt / 1e6;
    return *count / dt;
}

static void over_tcp(const char *data, size_t len, int rounds) {
    double scan[RUNS], parse[RUNS], ratio[RUNS];
    signal(SIGPIPE, SIG_IGN);
    for (int run = 0; run < RUNS; run++) {
        unsigned long long n;
        double mb;
        scan[run] = tcp_run(data, len, rounds, 0, &n, &mb);
        printf("tcp baseline run %d: read + frame scan: %llu messages: %.0f messages/s, %.0f MB/s\n",
               run + 1, n, scan[run], mb);
        parse[run] = tcp_run(data, len, rounds, 1, &n, &mb);
        printf("tcp parser run %d: read + ami_parser_feed: %llu messages: %.0f messages/s, %.0f MB/s\n",
               run + 1, n, parse[run], mb);
        ratio[run] = parse[run] / scan[run];
        fflush(stdout);
    }
    /* The ratio is taken run by run (each parser run against the baseline
     * run next to it), then the median. */
    double s = median(scan, RUNS), p = median(parse, RUNS), r = median(ratio, RUNS);
    printf("tcp median of %d: baseline %.0f messages/s, parser %.0f messages/s, parser/baseline %.2f\n",
           RUNS, s, p, r);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tests/fixtures/ami-samples";
    int rounds = argc > 2 ? atoi(argv[2]) : 300;
    const char *mode = argc > 3 ? argv[3] : "both";
    size_t len;
    char *data = load(dir, &len);
    if (strcmp(mode, "tcp")) from_memory(data, len, rounds);
    if (strcmp(mode, "memory")) over_tcp(data, len, rounds);
    free(data);
    return 0;
}
