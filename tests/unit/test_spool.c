/* test_spool.c -- the disk spool keeps order, survives a restart and a crash,
 * and is bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "spool.h"

static char dir[256];

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/callbus-spool-test-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd);
}

static void put(spool *s, int i) {
    char key[32], payload[64];
    snprintf(key, sizeof(key), "call-%d", i % 7);
    snprintf(payload, sizeof(payload), "{\"n\":%d}", i);
    spool_record r = {.topic = (uint8_t)(i % 4), .key = key, .keylen = strlen(key),
                      .payload = payload, .len = strlen(payload)};
    assert_int_equal(spool_append(s, &r), 0);
}

/* Reads up to max records and checks they are numbered from first on; each
 * is released at once, as if the broker took it, unless keep is set. */
static int take_some(spool *s, int first, int max, int keep) {
    spool_record r;
    int n = 0;
    while (n < max && spool_peek(s, &r) == 1) {
        char want[64];
        snprintf(want, sizeof(want), "{\"n\":%d}", first + n);
        assert_int_equal(r.len, strlen(want));
        assert_memory_equal(r.payload, want, r.len);
        assert_int_equal(r.topic, (first + n) % 4);
        spool_consume(s);
        if (!keep) spool_release(s, r.hold);
        n++;
    }
    return n;
}

static int take(spool *s, int first, int max) { return take_some(s, first, max, 0); }

/* Segment files on disk once the deletions asked of s (if any) are done. */
static int segment_files(spool *s) {
    if (s) spool_settle(s);
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, "seg-", 4) == 0) n++;
    closedir(d);
    return n;
}

static void put_front(spool *s, int i) {
    char payload[64];
    snprintf(payload, sizeof(payload), "{\"n\":%d}", i);
    spool_record r = {.topic = (uint8_t)(i % 4), .key = "k", .keylen = 1, .payload = payload,
                      .len = strlen(payload)};
    assert_int_equal(spool_append_front(s, &r), 0);
}

static void test_fifo_interleaved(void **state) {
    (void)state;
    char err[256];
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    assert_non_null(s);
    assert_true(spool_empty(s));
    for (int i = 0; i < 100; i++) put(s, i);
    assert_int_equal(take(s, 0, 40), 40);
    for (int i = 100; i < 150; i++) put(s, i);
    assert_int_equal(take(s, 40, 1000), 110);
    assert_true(spool_empty(s));
    assert_int_equal(spool_size(s), 0);
    spool_close(s);
}

static void test_survives_restart_without_duplicates(void **state) {
    (void)state;
    char err[256];
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    for (int i = 0; i < 50; i++) put(s, i);
    assert_int_equal(take(s, 0, 20), 20);
    spool_close(s);
    s = spool_open(dir, 1 << 20, err, sizeof(err));
    assert_false(spool_empty(s));
    assert_int_equal(take(s, 20, 1000), 30);
    assert_true(spool_empty(s));
    spool_close(s);
}

static void test_front_segment_read_first(void **state) {
    (void)state;
    char err[256];
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    for (int i = 10; i < 20; i++) put(s, i);
    /* Messages older than the whole spool (purged from librdkafka). */
    assert_int_equal(spool_begin_front(s), 0);
    for (int i = 0; i < 10; i++) put_front(s, i);
    spool_close(s);
    s = spool_open(dir, 1 << 20, err, sizeof(err));
    assert_int_equal(take(s, 0, 1000), 20);
    spool_close(s);
}

/* 20 records spooled, 0-4 delivered, 5-9 handed to librdkafka when a
 * clean stop (broker away) purges them to the front. */
static void stop_half_way(void) {
    char err[256];
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    for (int i = 0; i < 20; i++) put(s, i);
    spool_record r;
    assert_int_equal(take(s, 0, 5), 5);              /* delivered */
    assert_int_equal(take_some(s, 5, 5, 1), 5);      /* handed to librdkafka */
    assert_int_equal(spool_peek(s, &r), 1);
    spool_hold *h = r.hold;
    assert_int_equal(spool_begin_front(s), 0);       /* shutdown purges them */
    for (int i = 5; i < 10; i++) {
        put_front(s, i);
        spool_release(s, h);
    }
    spool_close(s);
}

/* A clean stop while the broker is away, half way through the spool: the
 * records librdkafka still held go to the front, the rest of the spool
 * follows from where reading stopped, nothing twice. */
static void test_stop_mid_spool_no_duplicates(void **state) {
    (void)state;
    char err[256];
    stop_half_way();
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    assert_int_equal(take(s, 5, 1000), 15);
    assert_true(spool_empty(s));
    spool_close(s);
}

/* The same stop, then the next run crashes before it has read past where
 * the stop left off: the run after it must still start there, not send the
 * front copies and the segment's start both. */
static void test_stop_then_crash_no_duplicates(void **state) {
    (void)state;
    char err[256];
    stop_half_way();
    spool *crashed = spool_open(dir, 1 << 20, err, sizeof(err));
    assert_int_equal(take_some(crashed, 5, 3, 1), 3);  /* then killed: never closed */
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    assert_int_equal(take(s, 5, 1000), 15);          /* 5..19 once each */
    assert_true(spool_empty(s));
    spool_close(s);
    spool_close(crashed);
}

/* As above, but the crashed run had read everything, past where the stop
 * left off, and the broker took none of it. */
static void test_stop_then_crash_after_reading_all(void **state) {
    (void)state;
    char err[256];
    stop_half_way();
    spool *crashed = spool_open(dir, 1 << 20, err, sizeof(err));
    assert_int_equal(take_some(crashed, 5, 1000, 1), 15);
    assert_true(spool_empty(crashed));
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    assert_int_equal(take(s, 5, 1000), 15);
    assert_true(spool_empty(s));
    spool_close(s);
    spool_close(crashed);
}

/* read.offset comes from the disk: nonsense in it is ignored. */
static void test_read_offset_garbage_ignored(void **state) {
    (void)state;
    char err[256], path[4200];
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    for (int i = 0; i < 5; i++) put(s, i);
    spool_close(s);
    snprintf(path, sizeof(path), "%s/read.offset", dir);
    FILE *f = fopen(path, "w");
    fputs("-5 -7\n99999 12\n0 -3\nzz\n", f);
    fclose(f);
    s = spool_open(dir, 1 << 20, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(take(s, 0, 1000), 5);
    spool_close(s);
}

static int lost_by_topic[4];

static void count_lost(void *ctx, uint8_t topic) {
    (void)ctx;
    lost_by_topic[topic % 4]++;
}

/* The disk fills up (here: RLIMIT_FSIZE, which fails write() as a full disk
 * does) with records buffered: each one is reported lost, by topic, none is
 * counted as kept, and what is spooled once the disk has room arrives. */
static void test_write_failure_reports_each_lost_record(void **state) {
    (void)state;
    char err[256];
    struct rlimit old, small;
    memset(lost_by_topic, 0, sizeof(lost_by_topic));
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    spool_set_lost_handler(s, count_lost, NULL);
    for (int i = 0; i < 200; i++) put(s, i);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 2048;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    spool_flush(s);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(lost_by_topic[0] + lost_by_topic[1] + lost_by_topic[2] + lost_by_topic[3], 200);
    assert_int_equal(lost_by_topic[1], 50);
    assert_int_equal(spool_size(s), 0);
    for (int i = 200; i < 205; i++) put(s, i);
    assert_int_equal(take(s, 200, 1000), 5);
    assert_true(spool_empty(s));
    spool_close(s);
}

static spool_hold *ahead(spool *s, int i);

/* A full disk may be full of the write-ahead segment itself, its records
 * delivered: after a failed write, writing ahead moves to a new segment, so
 * the old one is deleted once its records are released. */
static void test_write_failure_moves_write_ahead_on(void **state) {
    (void)state;
    char err[256];
    struct rlimit old, small;
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    spool_hold *h[20];
    for (int i = 0; i < 10; i++) assert_non_null(h[i] = ahead(s, i));
    spool_flush(s);                                  /* on disk: the disk is now "full" */
    for (int i = 10; i < 20; i++) assert_non_null(h[i] = ahead(s, i));
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 64;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    spool_flush(s);                                  /* fails: 10..19 stay in librdkafka only */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    spool_hold *next = ahead(s, 20);
    assert_non_null(next);
    assert_int_equal(segment_files(s), 2);            /* the next record went to a new segment */
    for (int i = 0; i < 20; i++) spool_release(s, h[i]);
    assert_int_equal(segment_files(s), 1);            /* the full one is gone */
    spool_release(s, next);
    spool_close(s);
}

/* Records read but not yet taken by the broker live only in librdkafka's
 * memory: their segment stays until they are released, so a crash (here: a
 * second open without closing the first) finds them again. */
static void test_unreleased_records_survive_a_crash(void **state) {
    (void)state;
    char err[256];
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    for (int i = 0; i < 10; i++) put(s, i);
    assert_int_equal(take_some(s, 0, 1000, 1), 10);
    assert_true(spool_empty(s));
    spool *after_crash = spool_open(dir, 1 << 20, err, sizeof(err));
    assert_false(spool_empty(after_crash));
    assert_int_equal(take(after_crash, 0, 1000), 10);     /* sent again: same records */
    spool_close(after_crash);
    spool_close(s);
    s = spool_open(dir, 1 << 20, err, sizeof(err));
    assert_true(spool_empty(s));
    spool_close(s);
}

/* Once every record read from a segment past the write-ahead size is
 * released, the segment is gone. */
static void test_released_segment_deleted(void **state) {
    (void)state;
    char err[256];
    enum { N = 40000 };   /* ~1.5 MiB */
    spool *s = spool_open(dir, 1 << 24, err, sizeof(err));
    for (int i = 0; i < N; i++) put(s, i);
    spool_record r;
    assert_int_equal(spool_peek(s, &r), 1);
    spool_hold *h = r.hold;
    assert_int_equal(take_some(s, 0, N + 1, 1), N);
    assert_int_equal(segment_files(s), 2);                 /* the read one and a fresh one */
    for (int i = 0; i < N - 1; i++) spool_release(s, h);
    assert_int_equal(segment_files(s), 2);
    spool_release(s, h);
    assert_int_equal(segment_files(s), 1);
    for (int i = N; i < N + 5; i++) put(s, i);
    assert_int_equal(take(s, N, 1000), 5);
    assert_int_equal(segment_files(s), 1);
    spool_close(s);
}

/* Command results pass one at a time: the reader catches up with each, and
 * a short segment goes on taking them rather than a file for each. A crash
 * finds the ones not yet released. */
static void test_short_segment_goes_on_after_drain(void **state) {
    (void)state;
    char err[256];
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    for (int i = 0; i < 100; i++) {
        put(s, i);
        assert_int_equal(take(s, i, 1000), 1);
        assert_true(spool_empty(s));
    }
    assert_int_equal(segment_files(s), 1);
    char first[400];
    snprintf(first, sizeof(first), "%s/seg-%020lld.spool", dir, 1LL << 40);
    assert_int_equal(access(first, F_OK), 0);               /* still the first file */
    put(s, 100);
    assert_int_equal(take_some(s, 100, 1000, 1), 1);       /* not released: then killed */
    spool *after_crash = spool_open(dir, 1 << 20, err, sizeof(err));
    spool_record r;
    int last = -1;
    while (spool_peek(after_crash, &r) == 1) {            /* sent again, in order */
        char text[64];
        snprintf(text, sizeof(text), "%.*s", (int)r.len, r.payload);
        assert_int_equal(sscanf(text, "{\"n\":%d}", &last), 1);
        spool_consume(after_crash);
        spool_release(after_crash, r.hold);
    }
    assert_int_equal(last, 100);
    spool_close(after_crash);
    spool_close(s);
}

static spool_hold *ahead(spool *s, int i) {
    char key[32], payload[64];
    snprintf(key, sizeof(key), "call-%d", i % 7);
    snprintf(payload, sizeof(payload), "{\"n\":%d}", i);
    spool_record r = {.topic = (uint8_t)(i % 4), .key = key, .keylen = strlen(key),
                      .payload = payload, .len = strlen(payload)};
    return spool_write_ahead(s, &r);
}

/* Write-ahead records are on disk while librdkafka holds them: a crash
 * (a second open, the first never closed) finds them, in order. */
static void test_write_ahead_survives_a_crash(void **state) {
    (void)state;
    char err[256];
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    for (int i = 0; i < 5; i++) assert_non_null(ahead(s, i));
    assert_true(spool_empty(s));                      /* nothing for the reader */
    spool_flush(s);                                   /* the loop turn ends */
    spool *after_crash = spool_open(dir, 1 << 20, err, sizeof(err));
    assert_int_equal(take(after_crash, 0, 1000), 5);
    spool_close(after_crash);
    spool_close(s);
}

/* Acknowledged write-ahead records are not sent again after a clean stop. */
static void test_write_ahead_released_not_sent_again(void **state) {
    (void)state;
    char err[256];
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    for (int i = 0; i < 5; i++) spool_release(s, ahead(s, i));
    spool_close(s);
    s = spool_open(dir, 1 << 20, err, sizeof(err));
    assert_true(spool_empty(s));
    assert_int_equal(take(s, 0, 1000), 0);
    spool_close(s);
    assert_int_equal(segment_files(NULL), 0);            /* a clean, empty stop leaves no files */
}

/* librdkafka's queue was full: the record written ahead becomes an ordinary
 * spooled record, read before anything appended after it. */
static void test_write_ahead_given_back(void **state) {
    (void)state;
    char err[256];
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    spool_release(s, ahead(s, 0));
    spool_give_back(s, ahead(s, 1));
    assert_false(spool_empty(s));
    assert_null(ahead(s, 2));                         /* order: no writing ahead of it */
    put(s, 2);
    assert_int_equal(take(s, 1, 1000), 2);
    assert_true(spool_empty(s));
    spool_close(s);
}

/* Delivered write-ahead segments are deleted as they fill, not kept. */
static void test_write_ahead_segments_deleted(void **state) {
    (void)state;
    char err[256];
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    for (int i = 0; i < 100000; i++) spool_release(s, ahead(s, i));
    assert_true(segment_files(s) <= 2);
    spool_close(s);
}

/* Segments are deleted on a thread of their own; a front segment that
 * takes the number of one just delivered must not be deleted with it. */
static void test_front_at_a_number_just_deleted(void **state) {
    (void)state;
    char err[256];
    enum { N = 600000 };   /* ~20 segments, all released at once */
    spool_hold **h = malloc(N * sizeof(*h));
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    for (int i = 0; i < N; i++) assert_non_null(h[i] = ahead(s, i));
    for (int i = 0; i < N; i++) spool_release(s, h[i]);
    free(h);
    assert_int_equal(spool_begin_front(s), 0);
    for (int i = 0; i < 10; i++) put_front(s, i);
    spool_close(s);
    s = spool_open(dir, 1 << 20, err, sizeof(err));
    assert_int_equal(take(s, 0, 1000), 10);
    spool_close(s);
}

static void test_bounded(void **state) {
    (void)state;
    char err[256];
    spool *s = spool_open(dir, 1000, err, sizeof(err));
    char payload[100];
    memset(payload, 'x', sizeof(payload));
    spool_record r = {.topic = 1, .key = "k", .keylen = 1, .payload = payload, .len = sizeof(payload)};
    int ok = 0;
    for (int i = 0; i < 20; i++)
        if (spool_append(s, &r) == 0) ok++;
    assert_int_equal(ok, 1000 / (12 + 1 + 100));
    assert_true(spool_size(s) <= 1000);
    spool_close(s);
    s = spool_open(dir, 1 << 20, err, sizeof(err));
    spool_record got;
    int n = 0;
    while (spool_peek(s, &got) == 1) { spool_consume(s); n++; }
    assert_int_equal(n, ok);
    spool_close(s);
}

static void test_torn_tail_ignored(void **state) {
    (void)state;
    char err[256], path[400];
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    for (int i = 0; i < 5; i++) put(s, i);
    spool_close(s);
    /* A crash in the middle of a write leaves half a record. */
    snprintf(path, sizeof(path), "%s/seg-%020lld.spool", dir, 1LL << 40);
    FILE *f = fopen(path, "ab");
    assert_non_null(f);
    unsigned char half[6] = {200, 0, 0, 0, 1, 0};
    fwrite(half, 1, sizeof(half), f);
    fclose(f);
    s = spool_open(dir, 1 << 20, err, sizeof(err));
    /* Records written before the reader reaches the torn one must not
     * follow it in its segment: they would read as its missing part. */
    for (int i = 5; i < 10; i++) put(s, i);
    assert_int_equal(take(s, 0, 1000), 10);
    spool_record r;
    assert_int_equal(spool_peek(s, &r), 0);
    spool_close(s);
}

/* A segment comes from the disk: a record whose key runs past its end or
 * whose null value has bytes, or a length past the segment's end, is
 * damage. The first two are skipped and what
 * follows it still sent; the other ends the segment without a buffer of
 * its size. */
static void write_raw_segment(const void *bytes, size_t n) {
    char path[400];
    snprintf(path, sizeof(path), "%s/seg-%020lld.spool", dir, 1LL << 40);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

static size_t raw_record(unsigned char *out, uint32_t total, uint8_t topic, uint32_t keylen, const char *body) {
    memcpy(out, &total, 4);
    out[4] = topic;
    out[5] = out[6] = out[7] = 0;
    memcpy(out + 8, &keylen, 4);
    memcpy(out + 12, body, strlen(body));
    return 12 + strlen(body);
}

static void test_damaged_record_skipped(void **state) {
    (void)state;
    unsigned char seg[256];
    size_t n = raw_record(seg, 12 + 8, 1, 1, "k{\"n\":0}");
    n += raw_record(seg + n, 12 + 4, 2, 900, "xxxx");              /* a 900-byte key in 4 */
    size_t null_at = n;
    n += raw_record(seg + n, 12 + 8, 2, 1, "k{\"n\":9}");
    seg[null_at + 5] = 1;                                           /* a null value, with bytes */
    n += raw_record(seg + n, 12 + 8, 3, 1, "k{\"n\":1}");
    write_raw_segment(seg, n);
    char err[256];
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    spool_record r;
    assert_int_equal(spool_peek(s, &r), 1);
    assert_memory_equal(r.payload, "{\"n\":0}", 7);
    spool_consume(s);
    spool_release(s, r.hold);
    assert_int_equal(spool_peek(s, &r), 1);
    assert_int_equal(r.topic, 3);
    assert_memory_equal(r.payload, "{\"n\":1}", 7);
    spool_consume(s);
    spool_release(s, r.hold);
    assert_int_equal(spool_peek(s, &r), 0);
    spool_close(s);
}

static void test_length_past_the_end(void **state) {
    (void)state;
    unsigned char seg[64];
    size_t n = raw_record(seg, 12 + 8, 0, 1, "k{\"n\":0}");
    n += raw_record(seg + n, 0xfffffff0u, 2, 1, "k{}");            /* 4 GiB said, 15 bytes there */
    write_raw_segment(seg, n);
    char err[256];
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    assert_int_equal(take(s, 0, 1000), 1);
    put(s, 1);                                                      /* still writes, still reads */
    assert_int_equal(take(s, 1, 1000), 1);
    spool_close(s);
}

/* Keyless messages (AMI events without Linkedid) spool like any other. */
static void test_keyless_record(void **state) {
    (void)state;
    char err[256];
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    spool_record r = {.topic = 0, .key = NULL, .keylen = 0, .payload = "{}", .len = 2};
    assert_int_equal(spool_append(s, &r), 0);
    spool_record got;
    assert_int_equal(spool_peek(s, &got), 1);
    assert_int_equal(got.keylen, 0);
    assert_int_equal(got.len, 2);
    assert_memory_equal(got.payload, "{}", 2);
    spool_consume(s);
    spool_close(s);
}

/* A tombstone (null value) stays one through the spool, across a restart
 * and through the front segment: an empty value would not delete its key
 * from a compacted topic. */
static void test_tombstone_stays_null(void **state) {
    (void)state;
    char err[256];
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    spool_record tomb = {.topic = 5, .key = "1795670259.0", .keylen = 12, .payload = NULL, .len = 0};
    spool_record empty = {.topic = 5, .key = "k", .keylen = 1, .payload = "", .len = 0};
    assert_int_equal(spool_append(s, &tomb), 0);
    assert_int_equal(spool_append(s, &empty), 0);
    assert_int_equal(spool_begin_front(s), 0);
    assert_int_equal(spool_append_front(s, &tomb), 0);
    spool_close(s);
    s = spool_open(dir, 1 << 20, err, sizeof(err));
    spool_record got;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(spool_peek(s, &got), 1);
        assert_int_equal(got.topic, 5);
        assert_int_equal(got.len, 0);
        if (i == 2) {
            assert_non_null(got.payload);
            assert_memory_equal(got.key, "k", 1);
        } else {
            assert_null(got.payload);
            assert_memory_equal(got.key, "1795670259.0", 12);
        }
        spool_consume(s);
        spool_release(s, got.hold);
    }
    assert_int_equal(spool_peek(s, &got), 0);
    spool_close(s);
}

/* The reader reads ahead in large blocks: records that straddle a block,
 * records larger than a block, and records appended after the reader had
 * read to the end of the file all come back whole and in order. */
static size_t sized_len(int i) {
    static const size_t sizes[] = {40, 70000, 300000, 5, 130000, 1000};
    return sizes[i % 6];
}

static void put_sized(spool *s, int i, char *buf) {
    size_t len = sized_len(i);
    for (size_t k = 0; k < len; k++) buf[k] = (char)('a' + (i + k) % 26);
    spool_record r = {.topic = (uint8_t)(i % 4), .key = "k", .keylen = 1, .payload = buf, .len = len};
    assert_int_equal(spool_append(s, &r), 0);
}

static void take_sized(spool *s, int i, char *buf) {
    spool_record r;
    assert_int_equal(spool_peek(s, &r), 1);
    assert_int_equal(r.len, sized_len(i));
    for (size_t k = 0; k < r.len; k++) buf[k] = (char)('a' + (i + k) % 26);
    assert_memory_equal(r.payload, buf, r.len);
    assert_int_equal(r.topic, i % 4);
    spool_consume(s);
    spool_release(s, r.hold);
}

static void test_read_ahead_blocks(void **state) {
    (void)state;
    char err[256];
    char *buf = malloc(300000);
    spool *s = spool_open(dir, 1LL << 30, err, sizeof(err));
    int put_n = 0, took = 0;
    for (int round = 0; round < 20; round++) {
        for (int k = 0; k < 1 + round % 4; k++) put_sized(s, put_n++, buf);
        for (int k = 0; k < 1 + round % 3 && took < put_n; k++) take_sized(s, took++, buf);
    }
    while (took < put_n) take_sized(s, took++, buf);
    spool_record r;
    assert_int_equal(spool_peek(s, &r), 0);
    spool_close(s);
    free(buf);
}

/* The agent at full load: librdkafka's queue is mostly full, so records are
 * written ahead and given back, appended behind them, and read back as the
 * loop drains, a peeked record often left for the next turn while more are
 * appended (and the tail buffer written). Every record comes back whole, in
 * order, once; and what the reader was handed is on disk (a crash finds every
 * record not released). */
static size_t busy_len(int i) { return 20 + (size_t)(i * 7919) % 3000; }

/* Record i's payload, numbered in its first 8 bytes; returns its length. */
static size_t busy_payload(int i, char *buf) {
    size_t len = busy_len(i);
    for (size_t k = 0; k < len; k++) buf[k] = (char)('a' + (i + k) % 26);
    char number[16];
    snprintf(number, sizeof(number), "%08d", i);
    memcpy(buf, number, 8);
    return len;
}

static void test_full_load_pattern_then_crash(void **state) {
    (void)state;
    char err[256], buf[3100], want[3100];
    spool *s = spool_open(dir, 1LL << 30, err, sizeof(err));
    int next = 0, took = 0;
    static char kept[20000];   /* handed out and never released */
    memset(kept, 0, sizeof(kept));
    unsigned rnd = 12345;
    for (int turn = 0; took < 20000; turn++) {
        /* Some turns append more than the tail buffer holds: it is written
         * while a record is left peeked. */
        int batch = turn % 5 == 4 ? 400 : 40;
        for (int k = 0; k < batch && next < 20000; k++, next++) {
            spool_record r = {.topic = (uint8_t)(next % 4), .key = "k", .keylen = 1, .payload = buf,
                              .len = busy_payload(next, buf)};
            rnd = rnd * 1103515245u + 12345u;
            spool_hold *h = spool_empty(s) ? spool_write_ahead(s, &r) : NULL;
            if (!h) {
                assert_int_equal(spool_append(s, &r), 0);
            } else if ((rnd >> 16) % 3 == 0) {
                spool_release(s, h);            /* librdkafka took it */
                took++;
            } else {
                spool_give_back(s, h);          /* the queue was full */
            }
        }
        spool_flush(s);                         /* the loop turn ends */
        spool_record got;
        int rc, n;
        for (n = 0; (rc = spool_peek(s, &got)) == 1; n++) {
            assert_int_equal(got.len, busy_payload(took, want));
            assert_memory_equal(got.payload, want, got.len);
            rnd = rnd * 1103515245u + 12345u;
            if (n > 0 && (rnd >> 16) % 4 == 0) break;   /* full again: left peeked */
            spool_consume(s);
            if (took % 2 || took < 19000) spool_release(s, got.hold);
            else kept[took] = 1;
            took++;
        }
        assert_int_not_equal(rc, -1);
        assert_true(turn < 10000);
    }
    assert_true(spool_empty(s));
    /* A crash now: the records handed out and not released are all on disk. */
    spool *after_crash = spool_open(dir, 1LL << 30, err, sizeof(err));
    static char found[20000];
    memset(found, 0, sizeof(found));
    spool_record got;
    while (spool_peek(after_crash, &got) == 1) {
        assert_true(got.len >= 8);
        char number[9] = {0};
        memcpy(number, got.payload, 8);
        int i = atoi(number);
        assert_in_range(i, 0, 19999);
        assert_int_equal(got.len, busy_payload(i, want));
        assert_memory_equal(got.payload, want, got.len);
        found[i] = 1;
        spool_consume(after_crash);
        spool_release(after_crash, got.hold);
    }
    int nkept = 0;
    for (int i = 0; i < 20000; i++)
        if (kept[i]) assert_true(found[i]), nkept++;
    assert_true(nkept > 100);
    spool_close(after_crash);
    spool_close(s);
}

static void test_unwritable_dir(void **state) {
    (void)state;
    char err[256];
    spool *s = spool_open("/proc/callbus-no-such-dir", 1000, err, sizeof(err));
    assert_null(s);
    assert_non_null(strstr(err, "spool directory"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fifo_interleaved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_survives_restart_without_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_front_segment_read_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_then_crash_no_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure_reports_each_lost_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure_moves_write_ahead_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_then_crash_after_reading_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_offset_garbage_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_mid_spool_no_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreleased_records_survive_a_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_released_segment_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_segment_goes_on_after_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_ahead_survives_a_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_ahead_released_not_sent_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_ahead_given_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_ahead_segments_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_front_at_a_number_just_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_record_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_length_past_the_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyless_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombstone_stays_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_ahead_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_load_pattern_then_crash, setup, teardown),
        cmocka_unit_test(test_unwritable_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
