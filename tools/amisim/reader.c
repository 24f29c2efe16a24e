/* reader.c -- incremental reader of client actions (see reader.h).
 *
 * Lines end with LF, an optional CR before it is dropped; an empty line ends
 * the action. Like Asterisk, an over-long line is thrown away whole and
 * headers past the 128th are ignored, so a misbehaving client cannot make
 * amisim grow without bound. */
#include "reader.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void reader_init(reader *r) {
    memset(r, 0, sizeof(*r));
}

static void action_clear(action *a) {
    for (int i = 0; i < a->count; i++) {
        free(a->h[i].key);
        free(a->h[i].value);
    }
    a->count = 0;
}

void reader_free(reader *r) {
    action_clear(&r->cur);
}

const char *action_get(const action *a, const char *key) {
    for (int i = 0; i < a->count; i++)
        if (strcasecmp(a->h[i].key, key) == 0) return a->h[i].value;
    return "";
}

/* "Key: Value" -> header; Asterisk skips blanks after the colon. A line
 * without a colon is kept with an empty value so it is at least counted. */
static void add_header(action *a, char *line) {
    if (a->count >= ACTION_MAX_HEADERS) return;
    char *colon = strchr(line, ':');
    char *value = (char *)"";
    if (colon) {
        *colon = '\0';
        value = colon + 1;
        while (*value == ' ' || *value == '\t') value++;
    }
    a->h[a->count].key = strdup(line);
    a->h[a->count].value = strdup(value);
    a->count++;
}

static void end_line(reader *r, action_cb cb, void *ctx) {
    if (r->len && r->line[r->len - 1] == '\r') r->len--;
    r->line[r->len] = '\0';
    if (r->len == 0) {
        /* Blank lines between actions are harmless: skip them. */
        if (r->cur.count) {
            cb(ctx, &r->cur);
            action_clear(&r->cur);
        }
    } else {
        add_header(&r->cur, r->line);
    }
    r->len = 0;
}

void reader_feed(reader *r, const char *p, size_t n, action_cb cb, void *ctx, const int *stop) {
    for (size_t i = 0; i < n && !*stop; i++) {
        char ch = p[i];
        if (r->dumping) {
            if (ch == '\n') r->dumping = 0;
            continue;
        }
        if (ch == '\n') {
            end_line(r, cb, ctx);
            continue;
        }
        if (r->len >= ACTION_MAX_LINE) {
            r->len = 0;
            r->dumping = 1;
            continue;
        }
        r->line[r->len++] = ch;
    }
}
