/* jschema.c -- JSON Schema 2020-12 validation of callbus messages.
 *
 * Only the keywords the project's schemas use are implemented; loading a
 * schema with any other one fails (see lint_schema), so a message can never
 * pass because a rule was not understood. Error locations follow Python's
 * jsonschema (required / additionalProperties / anyOf are reported at the
 * object or value they concern), so the two can be compared line by line. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "jschema.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

typedef struct js_doc {
    char *file;  /* "defs.schema.json" */
    char *id;    /* $id, or NULL */
    json_t *root;
} js_doc;

typedef struct js_regex {
    char *src;
    pcre2_code *re;
} js_regex;

struct jschema_set {
    js_doc *docs;
    size_t ndocs;
    js_regex *res;
    size_t nres;
};

typedef struct vctx {
    const jschema_set *set;
    jschema_report_fn report;
    void *ud;
    int quiet;        /* inside anyOf/oneOf/not/if: count, do not report */
    char first[512];  /* first reason met while quiet, for the explanation */
    char path[4096];
    size_t plen;
    int depth;
} vctx;

/* ------------------------------------------------------------ small helpers */

static const char *annotations[] = {"$schema", "$id", "$comment", "title", "description", "examples",
                                    "default", "deprecated", "readOnly", "writeOnly", "contentEncoding",
                                    "contentMediaType", "then", "else", NULL};

static int in_list(const char *k, const char **list) {
    for (; *list; list++)
        if (!strcmp(k, *list)) return 1;
    return 0;
}

static char *render(json_t *v) {
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s && strlen(s) > 80) strcpy(s + 77, "...");
    return s ? s : strdup("?");
}

static size_t utf8_len(const char *s, size_t n) {
    size_t cps = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) cps++;
    return cps;
}

static const js_regex *regex_find(const jschema_set *s, const char *src) {
    for (size_t i = 0; i < s->nres; i++)
        if (!strcmp(s->res[i].src, src)) return &s->res[i];
    return NULL;
}

/* Compiles with ECMA-262 semantics as far as PCRE2 has them: \uXXXX
 * escapes (ALT_BSUX) and $ only at the very end (Python's re would let
 * "abc\n" through a ^[^\n]*$ pattern). */
static int regex_add(jschema_set *s, const char *src, char *err, size_t errlen) {
    if (regex_find(s, src)) return 0;
    int ec;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_ALT_BSUX, &ec, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        snprintf(err, errlen, "pattern %s: %s at offset %zu", src, (char *)msg, (size_t)off);
        return -1;
    }
    s->res = realloc(s->res, (s->nres + 1) * sizeof(*s->res));
    s->res[s->nres].src = strdup(src);
    s->res[s->nres++].re = re;
    return 0;
}

static int regex_match(const js_regex *r, const char *str, size_t n) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(r->re, NULL);
    int rc = pcre2_match(r->re, (PCRE2_SPTR)str, n, 0, 0, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

/* JSON equality as JSON Schema defines it: 1 == 1.0, true != 1. */
static int json_eq(json_t *a, json_t *b) {
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b)) return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b)) return 0;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b)) return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!json_eq(json_array_get(a, i), json_array_get(b, i))) return 0;
        return 1;
    }
    if (json_is_object(a)) {
        const char *k;
        json_t *v;
        if (json_object_size(a) != json_object_size(b)) return 0;
        json_object_foreach(a, k, v) {
            json_t *w = json_object_get(b, k);
            if (!w || !json_eq(v, w)) return 0;
        }
        return 1;
    }
    return json_equal(a, b);
}

static int type_ok(const char *t, json_t *v) {
    if (!strcmp(t, "object")) return json_is_object(v);
    if (!strcmp(t, "array")) return json_is_array(v);
    if (!strcmp(t, "string")) return json_is_string(v);
    if (!strcmp(t, "boolean")) return json_is_boolean(v);
    if (!strcmp(t, "null")) return json_is_null(v);
    if (!strcmp(t, "number")) return json_is_number(v);
    if (!strcmp(t, "integer")) {
        if (json_is_integer(v)) return 1;
        double d = json_is_real(v) ? json_real_value(v) : NAN;
        return isfinite(d) && d == floor(d);
    }
    return 0;
}

static int known_type(const char *t) {
    static const char *types[] = {"object", "array", "string", "boolean", "null", "number", "integer", NULL};
    return in_list(t, types);
}

static int two_digits(const char *p) { return p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9'; }
static int num2(const char *p) { return (p[0] - '0') * 10 + (p[1] - '0'); }

int jschema_is_datetime(const char *s) {
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    size_t n = strlen(s);
    if (n < 20 || !two_digits(s) || !two_digits(s + 2) || s[4] != '-' || !two_digits(s + 5) ||
        s[7] != '-' || !two_digits(s + 8) || (s[10] != 'T' && s[10] != 't') || !two_digits(s + 11) ||
        s[13] != ':' || !two_digits(s + 14) || s[16] != ':' || !two_digits(s + 17))
        return 0;
    int y = num2(s) * 100 + num2(s + 2), mo = num2(s + 5), d = num2(s + 8);
    int h = num2(s + 11), mi = num2(s + 14), sec = num2(s + 17);
    const char *p = s + 19;
    if (*p == '.') {
        const char *q = ++p;
        while (*p >= '0' && *p <= '9') p++;
        if (p == q) return 0;
    }
    if (*p == 'Z' || *p == 'z') {
        if (p[1]) return 0;
    } else if (*p == '+' || *p == '-') {
        if (!two_digits(p + 1) || p[3] != ':' || !two_digits(p + 4) || p[6]) return 0;
        if (num2(p + 1) > 23 || num2(p + 4) > 59) return 0;
    } else {
        return 0;
    }
    if (y < 1 || mo < 1 || mo > 12 || d < 1) return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap)) return 0;
    return h <= 23 && mi <= 59 && sec <= 60;  /* 60: leap second */
}

/* ------------------------------------------------------------ $ref */

static const js_doc *doc_for(const jschema_set *s, const js_doc *cur, const char *ref, size_t n) {
    if (n == 0) return cur;
    for (size_t i = 0; i < s->ndocs; i++)
        if (s->docs[i].id && strlen(s->docs[i].id) == n && !strncmp(s->docs[i].id, ref, n)) return &s->docs[i];
    /* Relative to the referring schema's $id: the schemas live side by side,
     * so the last path segment names the file. */
    const char *seg = ref;
    for (size_t i = 0; i < n; i++)
        if (ref[i] == '/') seg = ref + i + 1;
    size_t sl = n - (size_t)(seg - ref);
    for (size_t i = 0; i < s->ndocs; i++)
        if (strlen(s->docs[i].file) == sl && !strncmp(s->docs[i].file, seg, sl)) return &s->docs[i];
    return NULL;
}

/* Resolves ref against cur; returns the target schema (and its document). */
static json_t *resolve(const jschema_set *s, const js_doc *cur, const char *ref, const js_doc **out) {
    const char *hash = strchr(ref, '#');
    size_t dl = hash ? (size_t)(hash - ref) : strlen(ref);
    const js_doc *d = doc_for(s, cur, ref, dl);
    if (!d) return NULL;
    json_t *node = d->root;
    const char *frag = hash ? hash + 1 : "";
    if (*frag && *frag != '/') return NULL;  /* $anchor: not used, not implemented */
    while (*frag == '/' && node) {
        frag++;
        char tok[256];
        size_t t = 0;
        for (; *frag && *frag != '/' && t < sizeof(tok) - 1; frag++) {
            if (*frag == '~' && frag[1] == '1') tok[t++] = '/', frag++;
            else if (*frag == '~' && frag[1] == '0') tok[t++] = '~', frag++;
            else tok[t++] = *frag;
        }
        tok[t] = '\0';
        if (json_is_object(node)) node = json_object_get(node, tok);
        else if (json_is_array(node)) node = json_array_get(node, (size_t)strtoul(tok, NULL, 10));
        else node = NULL;
    }
    *out = d;
    return node;
}

/* ------------------------------------------------------------ validation */

static void fail(vctx *cx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(vctx *cx, const char *fmt, ...) {
    char reason[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (cx->quiet) {
        if (!cx->first[0])
            snprintf(cx->first, sizeof(cx->first), "%.200s: %.300s", cx->plen ? cx->path : "/", reason);
        return;
    }
    if (cx->report) cx->report(cx->ud, cx->path, reason);
}

static size_t push(vctx *cx, const char *tok) {
    size_t saved = cx->plen;
    if (cx->plen + 2 < sizeof(cx->path)) cx->path[cx->plen++] = '/';
    for (; *tok && cx->plen + 3 < sizeof(cx->path); tok++) {
        if (*tok == '~' || *tok == '/') {
            cx->path[cx->plen++] = '~';
            cx->path[cx->plen++] = *tok == '~' ? '0' : '1';
        } else {
            cx->path[cx->plen++] = *tok;
        }
    }
    cx->path[cx->plen] = '\0';
    return saved;
}

static size_t push_index(vctx *cx, size_t i) {
    char b[32];
    snprintf(b, sizeof(b), "%zu", i);
    return push(cx, b);
}

static void pop(vctx *cx, size_t saved) {
    cx->plen = saved;
    cx->path[saved] = '\0';
}

static int validate(vctx *cx, const js_doc *doc, json_t *schema, json_t *inst);

/* Errors instance would have against schema, counted without reporting;
 * the first reason is left in cx->first. */
static int count_quietly(vctx *cx, const js_doc *doc, json_t *schema, json_t *inst) {
    int was = cx->quiet;
    cx->quiet = 1;
    cx->first[0] = '\0';
    int n = validate(cx, doc, schema, inst);
    cx->quiet = was;
    return n;
}

static int v_type(vctx *cx, json_t *t, json_t *inst) {
    if (json_is_string(t)) {
        if (type_ok(json_string_value(t), inst)) return 0;
    } else {
        size_t i;
        json_t *e;
        json_array_foreach(t, i, e) if (type_ok(json_string_value(e), inst)) return 0;
    }
    char *a = render(inst), *b = render(t);
    fail(cx, "%s is not of type %s", a, b);
    free(a), free(b);
    return 1;
}

static int v_anyof(vctx *cx, const js_doc *doc, json_t *alts, json_t *inst, int one) {
    size_t i, passed = 0;
    json_t *alt;
    char why[1024] = "";
    json_array_foreach(alts, i, alt) {
        if (count_quietly(cx, doc, alt, inst) == 0) passed++;
        else if (strlen(why) + strlen(cx->first) + 4 < sizeof(why))
            strcat(strcat(why, *why ? " | " : ""), cx->first);
    }
    if (one ? passed == 1 : passed > 0) return 0;
    char *a = render(inst);
    if (one && passed > 1) fail(cx, "%s is valid under %zu of the oneOf schemas, not exactly one", a, passed);
    else fail(cx, "%s is not valid under any of the %s schemas (%s)", a, one ? "oneOf" : "anyOf", why);
    free(a);
    return 1;
}

static int v_object(vctx *cx, const js_doc *doc, json_t *schema, json_t *inst) {
    int n = 0;
    const char *k;
    json_t *v, *sub;
    json_t *props = json_object_get(schema, "properties");
    if (props) json_object_foreach(props, k, sub) {
        if (!(v = json_object_get(inst, k))) continue;
        size_t saved = push(cx, k);
        n += validate(cx, doc, sub, v);
        pop(cx, saved);
    }
    if ((sub = json_object_get(schema, "required"))) {
        size_t i;
        json_t *name;
        json_array_foreach(sub, i, name) if (!json_object_get(inst, json_string_value(name))) {
            fail(cx, "\"%s\" is a required property", json_string_value(name));
            n++;
        }
    }
    if ((sub = json_object_get(schema, "additionalProperties"))) json_object_foreach(inst, k, v) {
        if (props && json_object_get(props, k)) continue;
        if (json_is_false(sub)) {
            fail(cx, "additional property \"%s\" is not allowed", k);
            n++;
            continue;
        }
        size_t saved = push(cx, k);
        n += validate(cx, doc, sub, v);
        pop(cx, saved);
    }
    if ((sub = json_object_get(schema, "propertyNames"))) json_object_foreach(inst, k, v) {
        json_t *name = json_string(k);
        if (count_quietly(cx, doc, sub, name)) {
            fail(cx, "property name \"%s\" is not valid (%s)", k, cx->first);
            n++;
        }
        json_decref(name);
    }
    size_t size = json_object_size(inst);
    if ((sub = json_object_get(schema, "minProperties")) && size < (size_t)json_integer_value(sub))
        fail(cx, "has %zu properties, fewer than %lld", size, (long long)json_integer_value(sub)), n++;
    if ((sub = json_object_get(schema, "maxProperties")) && size > (size_t)json_integer_value(sub))
        fail(cx, "has %zu properties, more than %lld", size, (long long)json_integer_value(sub)), n++;
    return n;
}

static int v_array(vctx *cx, const js_doc *doc, json_t *schema, json_t *inst) {
    int n = 0;
    size_t len = json_array_size(inst), start = 0;
    json_t *prefix = json_object_get(schema, "prefixItems"), *sub;
    if (prefix) {
        start = json_array_size(prefix);
        for (size_t i = 0; i < start && i < len; i++) {
            size_t saved = push_index(cx, i);
            n += validate(cx, doc, json_array_get(prefix, i), json_array_get(inst, i));
            pop(cx, saved);
        }
    }
    if ((sub = json_object_get(schema, "items"))) {
        if (json_is_false(sub) && len > start) {
            fail(cx, "expected at most %zu items, found %zu", start, len);
            n++;
        } else {
            for (size_t i = start; i < len; i++) {
                size_t saved = push_index(cx, i);
                n += validate(cx, doc, sub, json_array_get(inst, i));
                pop(cx, saved);
            }
        }
    }
    if ((sub = json_object_get(schema, "minItems")) && len < (size_t)json_integer_value(sub))
        fail(cx, "has %zu items, fewer than %lld", len, (long long)json_integer_value(sub)), n++;
    if ((sub = json_object_get(schema, "maxItems")) && len > (size_t)json_integer_value(sub))
        fail(cx, "has %zu items, more than %lld", len, (long long)json_integer_value(sub)), n++;
    return n;
}

static int v_string(vctx *cx, json_t *schema, json_t *inst) {
    int n = 0;
    const char *s = json_string_value(inst);
    size_t bytes = json_string_length(inst), chars = utf8_len(s, bytes);
    json_t *sub;
    char *a = render(inst);
    if ((sub = json_object_get(schema, "minLength")) && chars < (size_t)json_integer_value(sub))
        fail(cx, "%s is shorter than %lld characters", a, (long long)json_integer_value(sub)), n++;
    if ((sub = json_object_get(schema, "maxLength")) && chars > (size_t)json_integer_value(sub))
        fail(cx, "%s is longer than %lld characters", a, (long long)json_integer_value(sub)), n++;
    if ((sub = json_object_get(schema, "pattern")) &&
        !regex_match(regex_find(cx->set, json_string_value(sub)), s, bytes))
        fail(cx, "%s does not match %s", a, json_string_value(sub)), n++;
    if ((sub = json_object_get(schema, "format")) && !jschema_is_datetime(s))
        fail(cx, "%s is not a date-time (RFC 3339)", a), n++;
    free(a);
    return n;
}

static int v_number(vctx *cx, json_t *schema, json_t *inst) {
    int n = 0;
    double x = json_number_value(inst);
    json_t *sub;
    char *a = render(inst);
    if ((sub = json_object_get(schema, "minimum")) && x < json_number_value(sub))
        fail(cx, "%s is less than the minimum of %g", a, json_number_value(sub)), n++;
    if ((sub = json_object_get(schema, "maximum")) && x > json_number_value(sub))
        fail(cx, "%s is more than the maximum of %g", a, json_number_value(sub)), n++;
    if ((sub = json_object_get(schema, "exclusiveMinimum")) && x <= json_number_value(sub))
        fail(cx, "%s is not more than %g", a, json_number_value(sub)), n++;
    if ((sub = json_object_get(schema, "exclusiveMaximum")) && x >= json_number_value(sub))
        fail(cx, "%s is not less than %g", a, json_number_value(sub)), n++;
    free(a);
    return n;
}

static int v_applicators(vctx *cx, const js_doc *doc, json_t *schema, json_t *inst) {
    int n = 0;
    json_t *sub;
    size_t i;
    json_t *e;
    if ((sub = json_object_get(schema, "$ref"))) {
        const js_doc *td = NULL;
        json_t *target = resolve(cx->set, doc, json_string_value(sub), &td);
        cx->depth++;
        if (cx->depth > MAX_DEPTH) fail(cx, "$ref %s nested too deep", json_string_value(sub)), n++;
        else n += validate(cx, td, target, inst);
        cx->depth--;
    }
    if ((sub = json_object_get(schema, "allOf"))) json_array_foreach(sub, i, e) n += validate(cx, doc, e, inst);
    if ((sub = json_object_get(schema, "anyOf"))) n += v_anyof(cx, doc, sub, inst, 0);
    if ((sub = json_object_get(schema, "oneOf"))) n += v_anyof(cx, doc, sub, inst, 1);
    if ((sub = json_object_get(schema, "not")) && count_quietly(cx, doc, sub, inst) == 0) {
        char *a = render(inst);
        fail(cx, "%s must not be valid under the schema in \"not\"", a);
        free(a);
        n++;
    }
    if ((sub = json_object_get(schema, "if"))) {
        json_t *branch = json_object_get(schema, count_quietly(cx, doc, sub, inst) == 0 ? "then" : "else");
        if (branch) n += validate(cx, doc, branch, inst);
    }
    return n;
}

static int validate(vctx *cx, const js_doc *doc, json_t *schema, json_t *inst) {
    if (json_is_true(schema)) return 0;
    if (json_is_false(schema)) {
        fail(cx, "no value is allowed here");
        return 1;
    }
    int n = 0;
    json_t *sub;
    if ((sub = json_object_get(schema, "type"))) n += v_type(cx, sub, inst);
    if ((sub = json_object_get(schema, "const")) && !json_eq(sub, inst)) {
        char *a = render(inst), *b = render(sub);
        fail(cx, "%s should be %s", a, b);
        free(a), free(b);
        n++;
    }
    if ((sub = json_object_get(schema, "enum"))) {
        size_t i;
        json_t *e;
        int found = 0;
        json_array_foreach(sub, i, e) found |= json_eq(e, inst);
        if (!found) {
            char *a = render(inst), *b = render(sub);
            fail(cx, "%s is not one of %s", a, b);
            free(a), free(b);
            n++;
        }
    }
    n += v_applicators(cx, doc, schema, inst);
    if (json_is_object(inst)) n += v_object(cx, doc, schema, inst);
    else if (json_is_array(inst)) n += v_array(cx, doc, schema, inst);
    else if (json_is_string(inst)) n += v_string(cx, schema, inst);
    else if (json_is_number(inst)) n += v_number(cx, schema, inst);
    return n;
}

/* ------------------------------------------------------------ loading */

typedef struct lint_ctx {
    jschema_set *set;
    const js_doc *doc;
    char *err;
    size_t errlen;
} lint_ctx;

static int lint_schema(lint_ctx *lx, json_t *schema, const char *where);

static int lint_fail(lint_ctx *lx, const char *where, const char *fmt, const char *arg) {
    char msg[512];
    snprintf(msg, sizeof(msg), fmt, arg);
    snprintf(lx->err, lx->errlen, "%s: %s: %s", lx->doc->file, *where ? where : "/", msg);
    return -1;
}

static int lint_sub(lint_ctx *lx, json_t *schema, const char *where, const char *key) {
    char w[1024];
    snprintf(w, sizeof(w), "%s/%s", where, key);
    return lint_schema(lx, schema, w);
}

static int lint_map(lint_ctx *lx, json_t *map, const char *where, const char *key) {
    if (!json_is_object(map)) return lint_fail(lx, where, "\"%s\" must be an object of schemas", key);
    const char *k;
    json_t *v;
    char w[1024];
    json_object_foreach(map, k, v) {
        snprintf(w, sizeof(w), "%s/%s/%s", where, key, k);
        if (lint_schema(lx, v, w) < 0) return -1;
    }
    return 0;
}

static int lint_list(lint_ctx *lx, json_t *list, const char *where, const char *key) {
    if (!json_is_array(list) || !json_array_size(list))
        return lint_fail(lx, where, "\"%s\" must be a non-empty array of schemas", key);
    size_t i;
    json_t *v;
    char w[1024];
    json_array_foreach(list, i, v) {
        snprintf(w, sizeof(w), "%s/%s/%zu", where, key, i);
        if (lint_schema(lx, v, w) < 0) return -1;
    }
    return 0;
}

static int lint_keyword(lint_ctx *lx, const char *k, json_t *v, const char *where) {
    static const char *counts[] = {"minLength", "maxLength", "minItems", "maxItems", "minProperties",
                                   "maxProperties", NULL};
    static const char *bounds[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", NULL};
    static const char *single[] = {"additionalProperties", "items", "propertyNames", "not", "if", NULL};
    static const char *lists[] = {"allOf", "anyOf", "oneOf", "prefixItems", NULL};
    if (in_list(k, annotations) || !strncmp(k, "x-", 2) || !strcmp(k, "const")) return 0;
    if (!strcmp(k, "$defs") || !strcmp(k, "properties")) return lint_map(lx, v, where, k);
    if (in_list(k, single)) return lint_sub(lx, v, where, k);
    if (in_list(k, lists)) return lint_list(lx, v, where, k);
    if (in_list(k, counts))
        return json_is_integer(v) && json_integer_value(v) >= 0 ? 0 : lint_fail(lx, where, "%s: not a count", k);
    if (in_list(k, bounds)) return json_is_number(v) ? 0 : lint_fail(lx, where, "%s: not a number", k);
    if (!strcmp(k, "enum")) return json_is_array(v) ? 0 : lint_fail(lx, where, "%s: not an array", k);
    if (!strcmp(k, "required")) {
        size_t i;
        json_t *e;
        if (!json_is_array(v)) return lint_fail(lx, where, "%s: not an array", k);
        json_array_foreach(v, i, e) if (!json_is_string(e)) return lint_fail(lx, where, "%s: not strings", k);
        return 0;
    }
    if (!strcmp(k, "type")) {
        size_t i;
        json_t *e;
        if (json_is_string(v)) return known_type(json_string_value(v)) ? 0 : lint_fail(lx, where, "unknown type %s", json_string_value(v));
        if (!json_is_array(v)) return lint_fail(lx, where, "%s: not a string or array", k);
        json_array_foreach(v, i, e) if (!json_is_string(e) || !known_type(json_string_value(e)))
            return lint_fail(lx, where, "%s: unknown type in the list", k);
        return 0;
    }
    if (!strcmp(k, "pattern")) {
        if (!json_is_string(v)) return lint_fail(lx, where, "%s: not a string", k);
        char e[512];
        return regex_add(lx->set, json_string_value(v), e, sizeof(e)) < 0 ? lint_fail(lx, where, "%s", e) : 0;
    }
    if (!strcmp(k, "format")) {
        /* Only date-time is asserted; any other format would be a check we
         * silently skip, so it is refused. */
        if (json_is_string(v) && !strcmp(json_string_value(v), "date-time")) return 0;
        return lint_fail(lx, where, "format \"%s\" is not implemented", json_is_string(v) ? json_string_value(v) : "?");
    }
    if (!strcmp(k, "$ref")) {
        const js_doc *d;
        if (!json_is_string(v) || !resolve(lx->set, lx->doc, json_string_value(v), &d))
            return lint_fail(lx, where, "$ref %s does not resolve", json_is_string(v) ? json_string_value(v) : "?");
        return 0;
    }
    return lint_fail(lx, where, "keyword \"%s\" is not implemented by this validator", k);
}

static int lint_schema(lint_ctx *lx, json_t *schema, const char *where) {
    if (json_is_boolean(schema)) return 0;
    if (!json_is_object(schema)) return lint_fail(lx, where, "%s", "a schema must be an object or a boolean");
    const char *k;
    json_t *v;
    json_object_foreach(schema, k, v) if (lint_keyword(lx, k, v, where) < 0) return -1;
    /* then/else are annotations alone, but schemas under "if". */
    if (json_object_get(schema, "if")) {
        if ((v = json_object_get(schema, "then")) && lint_sub(lx, v, where, "then") < 0) return -1;
        if ((v = json_object_get(schema, "else")) && lint_sub(lx, v, where, "else") < 0) return -1;
    }
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int load_files(jschema_set *s, const char *dir, char *err, size_t errlen) {
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "schemas directory %s: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d))) {
        if (!ends_with(de->d_name, ".schema.json")) continue;
        char path[4096];
        json_error_t jerr;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        json_t *root = json_load_file(path, 0, &jerr);
        if (!root) {
            snprintf(err, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
            rc = -1;
            break;
        }
        s->docs = realloc(s->docs, (s->ndocs + 1) * sizeof(*s->docs));
        js_doc *doc = &s->docs[s->ndocs++];
        doc->file = strdup(de->d_name);
        doc->root = root;
        json_t *id = json_object_get(root, "$id");
        doc->id = json_is_string(id) ? strdup(json_string_value(id)) : NULL;
    }
    closedir(d);
    if (rc == 0 && s->ndocs == 0) {
        snprintf(err, errlen, "no *.schema.json in %s", dir);
        rc = -1;
    }
    return rc;
}

jschema_set *jschema_load_dir(const char *dir, char *err, size_t errlen) {
    jschema_set *s = calloc(1, sizeof(*s));
    if (load_files(s, dir, err, errlen) < 0) {
        jschema_free(s);
        return NULL;
    }
    for (size_t i = 0; i < s->ndocs; i++) {
        lint_ctx lx = {s, &s->docs[i], err, errlen};
        if (lint_schema(&lx, s->docs[i].root, "") < 0) {
            jschema_free(s);
            return NULL;
        }
    }
    return s;
}

void jschema_free(jschema_set *s) {
    if (!s) return;
    for (size_t i = 0; i < s->ndocs; i++) {
        free(s->docs[i].file);
        free(s->docs[i].id);
        json_decref(s->docs[i].root);
    }
    for (size_t i = 0; i < s->nres; i++) {
        free(s->res[i].src);
        pcre2_code_free(s->res[i].re);
    }
    free(s->docs);
    free(s->res);
    free(s);
}

static int is_type_doc(const js_doc *d) {
    return strcmp(d->file, "cloudevent.schema.json") != 0 && strcmp(d->file, "defs.schema.json") != 0;
}

size_t jschema_type_count(const jschema_set *s) {
    size_t n = 0;
    for (size_t i = 0; i < s->ndocs; i++) n += is_type_doc(&s->docs[i]);
    return n;
}

static const js_doc *doc_named(const jschema_set *s, const char *name) {
    char file[512];
    snprintf(file, sizeof(file), "%s.schema.json", name);
    for (size_t i = 0; i < s->ndocs; i++)
        if (!strcmp(s->docs[i].file, file)) return &s->docs[i];
    return NULL;
}

int jschema_validate(const jschema_set *s, const char *name, json_t *instance, jschema_report_fn report,
                     void *ud) {
    const js_doc *d = doc_named(s, name);
    if (!d) return -1;
    vctx cx = {.set = s, .report = report, .ud = ud};
    return validate(&cx, d, d->root, instance);
}

static int digits_differ(const char *tok, json_t *attr) {
    if (!json_is_integer(attr) || !*tok || strspn(tok, "0123456789") != strlen(tok)) return 0;
    errno = 0;
    unsigned long long v = strtoull(tok, NULL, 10);
    return errno || json_integer_value(attr) < 0 || v != (unsigned long long)json_integer_value(attr);
}

/* What a schema cannot say: the id repeats epoch, seq and the site. */
static int cross_checks(json_t *msg, jschema_report_fn report, void *ud) {
    const char *id = json_string_value(json_object_get(msg, "id"));
    if (!id) return 0;
    char buf[512], *parts[8];
    int np = 0, n = 0;
    snprintf(buf, sizeof(buf), "%s", id);
    for (char *p = buf, *c; np < 8; p = c + 1) {
        parts[np++] = p;
        if (!(c = strchr(p, ':'))) break;
        *c = '\0';
    }
    if (np != 4 && np != 5) return 0;
    char reason[1024];
    json_t *epoch = json_object_get(msg, "epoch"), *seq = json_object_get(msg, "seq");
    if (digits_differ(parts[np - 2], epoch)) {
        snprintf(reason, sizeof(reason), "epoch %s in id differs from epoch attribute %lld", parts[np - 2],
                 (long long)json_integer_value(epoch));
        if (report) report(ud, "/id", reason);
        n++;
    }
    if (digits_differ(parts[np - 1], seq)) {
        snprintf(reason, sizeof(reason), "seq %s in id differs from seq attribute %lld", parts[np - 1],
                 (long long)json_integer_value(seq));
        if (report) report(ud, "/id", reason);
        n++;
    }
    const char *src = json_string_value(json_object_get(msg, "source"));
    if (src && !strncmp(src, "callbus://", 10)) {
        src += 10;
        size_t sl = strcspn(src, "/");
        if (strlen(parts[0]) != sl || strncmp(parts[0], src, sl)) {
            snprintf(reason, sizeof(reason), "site \"%s\" in id differs from site \"%.*s\" in source", parts[0],
                     (int)sl, src);
            if (report) report(ud, "/id", reason);
            n++;
        }
    }
    return n;
}

int jschema_validate_message(const jschema_set *s, json_t *msg, jschema_report_fn report, void *ud) {
    if (!json_is_object(msg)) {
        if (report) report(ud, "", "message is not a JSON object");
        return 1;
    }
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (!type) {
        if (report) report(ud, "/type", "missing or not a string");
        return 1;
    }
    const js_doc *d = doc_named(s, type);
    if (!d || !is_type_doc(d)) {
        char reason[1024];
        snprintf(reason, sizeof(reason), "unknown message type \"%.400s\" (no schema %.400s.schema.json)", type, type);
        if (report) report(ud, "/type", reason);
        return 1;
    }
    vctx cx = {.set = s, .report = report, .ud = ud};
    return validate(&cx, d, d->root, msg) + cross_checks(msg, report, ud);
}
