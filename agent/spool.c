/* spool.c -- segmented on-disk FIFO for undeliverable messages (see spool.h).
 *
 * Record layout: u32 total length, u8 topic, u8 flags, 2 bytes zero, u32
 * key length, key, payload; host byte order, since a spool never leaves its
 * machine. A record cut short by a crash is detected by its length and
 * ignored; one whose lengths contradict each other (damage) is skipped.
 * Flag 1 marks a tombstone: a null value, which compaction treats unlike an
 * empty one.
 *
 * A segment the reader has passed is deleted only when the broker has taken
 * every record read from it (spool_release): until then those records live
 * only in librdkafka's memory, and a crash would lose them. After a crash the
 * next start reads every remaining segment from its beginning, so records
 * may be sent twice (same ids), never lost. */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "reaper.h"
#include "sbuf.h"

#define SEGMENT_MAX (64LL << 20)
/* Write-ahead segments are short, so delivered records are deleted soon and
 * a crash sends little again. */
#define WRITE_AHEAD_SEGMENT (1LL << 20)
#define HEADER_LEN 12
#define FLAG_NULL_VALUE 1

/* A record in the tail buffer, and what a failed write costs: a spooled
 * record (or a written-ahead one given back) is lost; a written-ahead one
 * is still in librdkafka, only not crash-safe. */
typedef struct {
    uint8_t topic;
    uint8_t spooled;
    uint32_t len;
} tail_record;
#define TAIL_BUFFER (256 << 10)   /* write-ahead: one write per loop turn, not per record */
/* The reader reads this much at a time: with a small in-memory bound every
 * message passes through the spool at full load, and two preads per record
 * cost more than the write did. */
#define READ_BUFFER (256 << 10)

/* Where the unsent part of a segment that a clean stop left part read
 * starts. */
typedef struct {
    int64_t seg;
    long long off;
} resume_point;
#define MAX_RESUMES 8

struct spool {
    char dir[4096];
    long long max_bytes;
    uint64_t size;           /* bytes not yet consumed */
    int64_t read_seg, write_seg;
    int64_t front_seg;       /* segment being filled by spool_append_front, or -1 */
    reaper *reaper;          /* deletes segments off the event loop */
    int wfd;                 /* tail writer, or -1 */
    sbuf wbuf;               /* tail records not yet written, from flushed_off on */
    tail_record *tail;       /* what wbuf holds, record by record */
    size_t ntail, captail;
    long long flushed_off;
    int write_failed;        /* the last tail write failed: write ahead into a new segment */
    spool_lost_fn lost;      /* told of each spooled record a failed write lost */
    void *lost_ctx;
    FILE *ff;                /* front writer (shutdown only) */
    long long write_off;
    int rfd;                 /* reader on read_seg */
    long long read_off;
    char *rbuf;              /* read-ahead of the reader's segment, from rbuf_off on */
    long long rbuf_off;
    size_t rbuf_len;
    size_t pending_len;      /* length of the record last peeked */
    const char *pending;     /* and where it is: in rbuf, or in rec when larger */
    sbuf rec;
    int empty;
    spool_hold *holds;       /* segments with records read and not yet released */
    resume_point resumes[MAX_RESUMES];   /* read.offset, see save_resumes */
    int nresumes;
    size_t ahead_len;        /* length of the record last written ahead */
};

/* Records read from one segment and not yet released; the segment is
 * deleted when the reader has left it and the count is back to zero. */
struct spool_hold {
    int64_t seg;
    uint64_t outstanding;
    int left;
    spool_hold *next;
};


static void seg_path(const spool *s, int64_t seg, char *out, size_t n) {
    snprintf(out, n, "%s/seg-%020lld.spool", s->dir, (long long)seg + (1LL << 40));
}

static void drop_resume(spool *s, int64_t seg);

/* The read-ahead belongs to the open reader's segment. */
static void close_reader(spool *s) {
    if (s->rfd >= 0) close(s->rfd);
    s->rfd = -1;
    s->rbuf_len = 0;
}

/* Only at a number never written again, or before a reaper_wait: a new
 * file at a number whose deletion is still queued would be deleted. */
static void unlink_segment(spool *s, int64_t seg) {
    char path[4200];
    seg_path(s, seg, path, sizeof(path));
    reaper_unlink(s->reaper, path);
    drop_resume(s, seg);
}

static int mkdir_p(const char *dir) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0750) < 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return (mkdir(tmp, 0750) < 0 && errno != EEXIST) ? -1 : 0;
}

/* Finds the lowest and highest segment numbers and the total size. */
static void scan_segments(spool *s) {
    DIR *d = opendir(s->dir);
    s->read_seg = INT64_MAX;
    s->write_seg = INT64_MIN;
    s->size = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        long long n;
        if (sscanf(e->d_name, "seg-%lld.spool", &n) != 1) continue;
        int64_t seg = n - (1LL << 40);
        if (seg < s->read_seg) s->read_seg = seg;
        if (seg > s->write_seg) s->write_seg = seg;
        char path[4400];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", s->dir, e->d_name);
        if (stat(path, &st) == 0) s->size += (uint64_t)st.st_size;
    }
    if (d) closedir(d);
    if (s->read_seg == INT64_MAX) s->read_seg = s->write_seg = 0;
}

/* read.offset lists, for each segment a clean stop left part read, where
 * its unsent part starts. An entry lives as long as its segment: a crash
 * after the next start must not send again the start of a segment that the
 * stop already sent or copied to the front. */
static void save_resumes(const spool *s) {
    char path[4200], tmp[4300];
    snprintf(path, sizeof(path), "%s/read.offset", s->dir);
    if (!s->nresumes) {
        unlink(path);
        return;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    for (int i = 0; i < s->nresumes; i++)
        fprintf(f, "%lld %lld\n", (long long)s->resumes[i].seg, s->resumes[i].off);
    int ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    fclose(f);
    if (!ok || rename(tmp, path) < 0) unlink(tmp);
}

static resume_point *resume_of(spool *s, int64_t seg) {
    for (int i = 0; i < s->nresumes; i++)
        if (s->resumes[i].seg == seg) return &s->resumes[i];
    return NULL;
}

static void set_resume(spool *s, int64_t seg, long long off) {
    resume_point *r = resume_of(s, seg);
    if (!r) {
        /* Full: the oldest goes, and its segment's start may be sent twice. */
        if (s->nresumes == MAX_RESUMES)
            memmove(s->resumes, s->resumes + 1, --s->nresumes * sizeof(*s->resumes));
        r = &s->resumes[s->nresumes++];
        r->seg = seg;
    }
    r->off = off;
}

static void drop_resume(spool *s, int64_t seg) {
    resume_point *r = resume_of(s, seg);
    if (!r) return;
    *r = s->resumes[--s->nresumes];
    save_resumes(s);
}

/* The file is read from disk, so hostile: entries for segments that do not
 * exist are ignored, an offset past a segment's end reads nothing of it. */
static void load_resumes(spool *s) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/read.offset", s->dir);
    FILE *f = fopen(path, "r");
    long long seg, off;
    while (f && s->nresumes < MAX_RESUMES && fscanf(f, "%lld %lld", &seg, &off) == 2) {
        if (seg < s->read_seg || seg > s->write_seg || off < 0 || resume_of(s, seg)) continue;
        set_resume(s, seg, off);
        s->size = s->size > (uint64_t)off ? s->size - (uint64_t)off : 0;
    }
    if (f) fclose(f);
}

static int open_writer(spool *s, char *err, size_t errlen) {
    char path[4200];
    s->write_failed = 0;
    seg_path(s, s->write_seg, path, sizeof(path));
    s->wfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (s->wfd < 0) {
        snprintf(err, errlen, "spool %s: %s", path, strerror(errno));
        return -1;
    }
    s->write_off = s->flushed_off = lseek(s->wfd, 0, SEEK_END);
    return 0;
}

/* The tail buffer could not be written (disk full, I/O error): the segment
 * is cut back to its last whole write, and each spooled record in the
 * buffer is counted lost, so that it is announced, never lost silently. */
static void tail_write_failed(spool *s) {
    /* Should this fail too, a cut record at the end reads as the segment's
     * end: nothing after it was counted as kept. */
    if (ftruncate(s->wfd, s->flushed_off) < 0) log_warn("spool: cannot cut back a failed write: %s", strerror(errno));
    for (size_t i = 0; i < s->ntail; i++) {
        if (!s->tail[i].spooled) continue;
        s->size = s->size > s->tail[i].len ? s->size - s->tail[i].len : 0;
        if (s->lost) s->lost(s->lost_ctx, s->tail[i].topic);
    }
    s->write_off = s->flushed_off;
    if (s->read_seg == s->write_seg && s->read_off > s->flushed_off) s->read_off = s->flushed_off;
    s->rbuf_len = 0;   /* it may hold bytes that were cut off */
    s->write_failed = 1;
}

static int flush_tail(spool *s) {
    if (!s->wbuf.len) return 0;
    size_t done = 0;
    int rc = 0;
    while (done < s->wbuf.len) {
        ssize_t n = s->wfd >= 0 ? write(s->wfd, s->wbuf.data + done, s->wbuf.len - done) : -1;
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            rc = -1;
            break;
        }
        done += (size_t)n;
    }
    if (rc == 0) s->flushed_off += (long long)s->wbuf.len;
    else tail_write_failed(s);
    sbuf_reset(&s->wbuf);
    s->ntail = 0;
    return rc;
}

static void close_writer(spool *s) {
    flush_tail(s);
    if (s->wfd >= 0) close(s->wfd);
    s->wfd = -1;
}

spool *spool_open(const char *dir, long long max_bytes, char *err, size_t errlen) {
    if (mkdir_p(dir) < 0) {
        snprintf(err, errlen, "spool directory %s: %s", dir, strerror(errno));
        return NULL;
    }
    spool *s = xcalloc(1, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "%s", dir);
    s->max_bytes = max_bytes;
    s->rfd = -1;
    s->wfd = -1;
    s->front_seg = -1;
    s->reaper = reaper_new();
    sbuf_init(&s->rec);
    sbuf_init(&s->wbuf);
    scan_segments(s);
    load_resumes(s);
    if (s->size == 0) {
        /* Nothing left to send: start on a fresh segment, so that the reader
         * and the writer stand at the same place. */
        for (int64_t seg = s->read_seg; seg <= s->write_seg; seg++) unlink_segment(s, seg);
        s->read_seg = s->write_seg = 0;
        s->nresumes = 0;
        save_resumes(s);
        reaper_wait(s->reaper);   /* segment 0 is opened again just below */
    } else {
        /* The last segment may end in a record a crash cut short: new
         * records after it would read as its missing part. */
        s->write_seg++;
    }
    if (open_writer(s, err, errlen) < 0) {
        reaper_free(s->reaper);
        sbuf_free(&s->rec);
        sbuf_free(&s->wbuf);
        free(s);
        return NULL;
    }
    s->empty = s->size == 0;
    return s;
}

/* The record's header (layout at the top of the file); returns its total
 * length. */
static uint32_t record_header(unsigned char hdr[HEADER_LEN], const spool_record *r) {
    uint32_t total = (uint32_t)(HEADER_LEN + r->keylen + r->len);
    uint32_t keylen = (uint32_t)r->keylen;
    memset(hdr, 0, HEADER_LEN);
    memcpy(hdr, &total, 4);
    hdr[4] = r->topic;
    hdr[5] = r->payload ? 0 : FLAG_NULL_VALUE;
    memcpy(hdr + 8, &keylen, 4);
    return total;
}

static int write_record(FILE *f, const spool_record *r) {
    unsigned char hdr[HEADER_LEN];
    uint32_t total = record_header(hdr, r);
    /* Keyless messages have key NULL: fwrite must not see it even for 0 bytes. */
    if (fwrite(hdr, 1, HEADER_LEN, f) != HEADER_LEN ||
        (r->keylen && fwrite(r->key, 1, r->keylen, f) != r->keylen) ||
        (r->len && fwrite(r->payload, 1, r->len, f) != r->len))
        return -1;
    return (int)total;
}

/* Adds a record to the tail buffer; written at the next flush. */
static int tail_record_add(spool *s, const spool_record *r, int spooled) {
    unsigned char hdr[HEADER_LEN];
    uint32_t total = record_header(hdr, r);
    sbuf_append(&s->wbuf, hdr, HEADER_LEN);
    if (r->keylen) sbuf_append(&s->wbuf, r->key, r->keylen);
    if (r->len) sbuf_append(&s->wbuf, r->payload, r->len);
    if (s->ntail == s->captail) {
        s->captail = s->captail ? s->captail * 2 : 256;
        s->tail = xrealloc(s->tail, s->captail * sizeof(*s->tail));
    }
    s->tail[s->ntail++] = (tail_record){.topic = r->topic, .spooled = (uint8_t)spooled, .len = total};
    s->write_off += total;
    return (int)total;
}

int spool_append(spool *s, const spool_record *r) {
    size_t need = HEADER_LEN + r->keylen + r->len;
    if ((long long)(s->size + need) > s->max_bytes) return -1;
    if (s->wfd < 0) {
        char err[256];
        if (open_writer(s, err, sizeof(err)) < 0) return -1;   /* the disk may be back */
    }
    if (s->write_off >= SEGMENT_MAX) {
        char err[256];
        close_writer(s);
        s->write_seg++;
        if (open_writer(s, err, sizeof(err)) < 0) return -1;
    }
    int n = tail_record_add(s, r, 1);
    s->size += (uint64_t)n;
    s->empty = 0;
    if (s->wbuf.len >= TAIL_BUFFER) flush_tail(s);
    return 0;
}

int spool_begin_front(spool *s) {
    char path[4200];
    close_reader(s);
    int64_t lowest = s->read_seg;
    for (spool_hold *h = s->holds; h; h = h->next)
        if (h->seg < lowest) lowest = h->seg;
    s->front_seg = lowest - 1;
    reaper_wait(s->reaper);       /* that number may have been a segment just deleted */
    seg_path(s, s->front_seg, path, sizeof(path));
    s->ff = fopen(path, "wb");
    return s->ff ? 0 : -1;
}

int spool_append_front(spool *s, const spool_record *r) {
    if (!s->ff) return -1;
    int n = write_record(s->ff, r);
    if (n < 0) return -1;
    s->size += (uint64_t)n;
    s->empty = 0;
    return 0;
}

void spool_set_lost_handler(spool *s, spool_lost_fn fn, void *ctx) {
    s->lost = fn;
    s->lost_ctx = ctx;
}

void spool_flush(spool *s) {
    flush_tail(s);
    if (s->ff) fflush(s->ff);
}

int spool_sync(spool *s) {
    if (s->wfd < 0 || flush_tail(s) < 0) return -1;
    return fdatasync(s->wfd);
}

static spool_hold *hold_of(spool *s, int64_t seg) {
    for (spool_hold *h = s->holds; h; h = h->next)
        if (h->seg == seg) return h;
    spool_hold *h = xcalloc(1, sizeof(*h));
    h->seg = seg;
    h->next = s->holds;
    s->holds = h;
    return h;
}

static void drop_hold(spool *s, spool_hold *gone) {
    for (spool_hold **h = &s->holds; *h; h = &(*h)->next)
        if (*h == gone) {
            *h = gone->next;
            free(gone);
            return;
        }
}

/* The reader is done with its segment: delete it now, or when the last
 * record read from it is released. */
static void leave_segment(spool *s) {
    close_reader(s);
    spool_hold *h = hold_of(s, s->read_seg);
    h->left = 1;
    if (h->outstanding == 0) {
        unlink_segment(s, h->seg);
        drop_hold(s, h);
    }
}

static int open_reader(spool *s) {
    char path[4200];
    seg_path(s, s->read_seg, path, sizeof(path));
    s->rfd = open(path, O_RDONLY);
    s->rbuf_len = 0;
    resume_point *r = resume_of(s, s->read_seg);
    if (s->rfd >= 0 && r && r->off > s->read_off) s->read_off = r->off;
    return s->rfd;
}

static void next_segment(spool *s) {
    leave_segment(s);
    s->read_seg++;
    s->read_off = 0;
}

/* Everything has been read: new records go to a fresh segment, so the one
 * just read can be deleted once the broker has it all. */
static void start_fresh_segment(spool *s) {
    char err[256];
    close_writer(s);
    leave_segment(s);
    s->write_seg++;
    open_writer(s, err, sizeof(err));
    s->read_seg = s->write_seg;
    s->read_off = 0;
    s->size = 0;
    s->empty = 1;
}

/* size bytes at the reader's offset, through the read-ahead: NULL past
 * the segment's end (or a record cut short by a crash). */
static const char *read_at(spool *s, long long off, size_t size) {
    if (off >= s->rbuf_off && off + (long long)size <= s->rbuf_off + (long long)s->rbuf_len)
        return s->rbuf + (off - s->rbuf_off);
    if (size > READ_BUFFER) {
        sbuf_reset(&s->rec);
        sbuf_reserve(&s->rec, size);
        if (pread(s->rfd, s->rec.data, size, off) != (ssize_t)size) return NULL;
        s->rec.len = size;
        return s->rec.data;
    }
    if (!s->rbuf) s->rbuf = xmalloc(READ_BUFFER);
    ssize_t n = pread(s->rfd, s->rbuf, READ_BUFFER, off);
    s->rbuf_off = off;
    s->rbuf_len = n > 0 ? (size_t)n : 0;
    return s->rbuf_len >= size ? s->rbuf : NULL;
}

/* The reader has caught up with the writer. A short segment goes on
 * taking records: command results pass through here one at a time, and a
 * fresh file for each cut the write-ahead segments into slivers whose
 * creates and deletes every fdatasync then had to commit. */
static void drained(spool *s) {
    if (s->write_off >= WRITE_AHEAD_SEGMENT || s->write_failed || s->read_off != s->write_off) {
        start_fresh_segment(s);
        return;
    }
    s->size = 0;
    s->empty = 1;
}

/* A length read from the file is the disk's word: a record larger than
 * the read-ahead must fit in what is left of the segment before it gets
 * a buffer of its own. */
static int fits_segment(spool *s, uint32_t total) {
    struct stat st;
    if (total <= READ_BUFFER) return 1;
    return fstat(s->rfd, &st) == 0 && s->read_off + (long long)total <= (long long)st.st_size;
}

/* The length of the record at the reader's offset, its bytes at
 * s->pending; 0 at the segment's end. */
static uint32_t next_record(spool *s) {
    const char *hdr = read_at(s, s->read_off, HEADER_LEN);
    uint32_t total = 0;
    if (hdr) memcpy(&total, hdr, 4);
    if (total < HEADER_LEN || !fits_segment(s, total)) return 0;
    s->pending = read_at(s, s->read_off, total);
    return s->pending ? total : 0;
}

/* Finds the next record and leaves it at s->pending; 0 when everything
 * has been read. */
static int find_next(spool *s) {
    spool_flush(s);
    for (;;) {
        if (s->rfd < 0 && open_reader(s) < 0) {
            if (s->read_seg >= s->write_seg) { start_fresh_segment(s); return 0; }
            s->read_seg++;
            continue;
        }
        uint32_t total = next_record(s);
        if (total) {
            s->pending_len = total;
            return 1;
        }
        /* End of this segment (or a record torn by a crash). */
        if (s->read_seg >= s->write_seg) { drained(s); return 0; }
        next_segment(s);
    }
}

/* The reader moves past the record last peeked. */
static void pass_pending(spool *s) {
    s->read_off += (long long)s->pending_len;
    s->size = s->size > s->pending_len ? s->size - s->pending_len : 0;
    s->pending_len = 0;
}

static int decode(const spool *s, spool_record *r) {
    const char *rec = s->pending;
    uint32_t keylen;
    memcpy(&keylen, rec + 8, 4);
    if (keylen > s->pending_len - HEADER_LEN) return 0;
    r->topic = (uint8_t)rec[4];
    r->key = rec + HEADER_LEN;
    r->keylen = keylen;
    r->len = s->pending_len - HEADER_LEN - keylen;
    r->payload = rec[5] & FLAG_NULL_VALUE ? NULL : r->key + keylen;
    return r->payload || r->len == 0;   /* a null value has no bytes */
}

int spool_peek(spool *s, spool_record *r) {
    for (;;) {
        if (s->empty) return 0;
        if (!s->pending_len && !find_next(s)) return 0;
        if (decode(s, r)) break;
        /* Damaged on disk, not written so by us: whatever follows it in
         * the segment is still sent. */
        log_warn("spool: segment %lld, offset %lld: a damaged record (%zu bytes) skipped",
                 (long long)s->read_seg, s->read_off, s->pending_len);
        pass_pending(s);
    }
    r->hold = hold_of(s, s->read_seg);
    return 1;
}

void spool_consume(spool *s) {
    hold_of(s, s->read_seg)->outstanding++;
    pass_pending(s);
}

spool_hold *spool_write_ahead(spool *s, const spool_record *r) {
    if (!s->empty) return NULL;
    /* A full disk may be full of this very segment, its records delivered:
     * a new one lets it go once they are all released. */
    if (s->write_off >= WRITE_AHEAD_SEGMENT || (s->write_failed && s->write_off > 0)) start_fresh_segment(s);
    if (s->wfd < 0) {
        char err[256];
        if (open_writer(s, err, sizeof(err)) < 0) return NULL;
    }
    int n = tail_record_add(s, r, 0);
    if (s->wbuf.len >= TAIL_BUFFER && flush_tail(s) < 0) return NULL;
    s->read_off = s->write_off;   /* the caller hands it to the broker: nothing to read */
    s->ahead_len = (size_t)n;
    spool_hold *h = hold_of(s, s->write_seg);
    h->outstanding++;
    return h;
}

void spool_give_back(spool *s, spool_hold *h) {
    if (h->outstanding > 0) h->outstanding--;
    /* Now it must reach the disk to be sent at all. */
    if (s->ntail) s->tail[s->ntail - 1].spooled = 1;
    s->read_off -= (long long)s->ahead_len;
    s->size += s->ahead_len;
    s->empty = 0;
}

void spool_release(spool *s, spool_hold *h) {
    if (h->outstanding > 0) h->outstanding--;
    if (h->outstanding == 0 && h->left) {
        unlink_segment(s, h->seg);
        drop_hold(s, h);
    }
}

void spool_settle(spool *s) { reaper_wait(s->reaper); }

int spool_empty(const spool *s) { return s->empty; }
uint64_t spool_size(const spool *s) { return s->size; }

void spool_close(spool *s) {
    if (!s) return;
    if (flush_tail(s) == 0 && s->wfd >= 0) fsync(s->wfd);
    if (s->wfd >= 0) close(s->wfd);
    if (s->ff) { fflush(s->ff); fsync(fileno(s->ff)); fclose(s->ff); }
    if (s->rfd >= 0) close(s->rfd);
    free(s->rbuf);
    /* Where the reader stopped, unless records read from that segment are
     * still unconfirmed: then it is read again from its start. A front
     * segment, numbered lower, is read first either way. */
    spool_hold *h = s->holds;
    while (h && h->seg != s->read_seg) h = h->next;
    if (!s->empty && s->read_off > 0 && !(h && h->outstanding)) set_resume(s, s->read_seg, s->read_off);
    /* Everything sent and acknowledged (write-ahead records included): the
     * next start has nothing to send again. */
    if (s->empty && !(h && h->outstanding)) unlink_segment(s, s->read_seg);
    save_resumes(s);
    reaper_free(s->reaper);
    /* Segments with unreleased records stay on disk for the next start. */
    while (s->holds) drop_hold(s, s->holds);
    sbuf_free(&s->rec);
    sbuf_free(&s->wbuf);
    free(s->tail);
    free(s);
}
