/* configdoc.c -- writes the configuration reference and the example files
 * from the settings table in lib/config.c, so that they cannot drift from
 * what the programs load.
 *
 *   configdoc reference FILE    FILE with its generated part rewritten
 *   configdoc example agent     agent/agent.conf.example
 *   configdoc example gateway   gateway/gateway.conf.example
 *   configdoc names             every setting and the programs that read it
 *
 * `make config-docs` writes all three files; tests/integration/test_docs.py
 * fails when one differs from what this prints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define BEGIN_MARK "<!-- generated from lib/config.c by `make config-docs`: edit the table there -->"
#define END_MARK "<!-- end of the generated part -->"

static const char *const program_names[] = {"callbus-agent", "callbus-gateway", "callbus"};

/* "agent.ami" for "agent.ami.port", "" for "site". */
static void section_of(const char *name, char *out, size_t outlen) {
    const char *dot = strrchr(name, '.');
    snprintf(out, outlen, "%.*s", dot ? (int)(dot - name) : 0, name);
}

static const char *last_part(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot ? dot + 1 : name;
}

static void print_quoted(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

/* The default as it is written in a file. */
static void print_default(FILE *out, const callbus_setting *s) {
    switch (s->type) {
    case CONFIG_STRING: print_quoted(out, s->text_default); break;
    case CONFIG_INT: fprintf(out, "%lld", s->number_default); break;
    case CONFIG_BOOL: fputs(s->number_default ? "true" : "false", out); break;
    case CONFIG_STRINGS:
        fputs("[ ", out);
        for (size_t i = 0; s->list_default[i]; i++) {
            if (i) fputs(", ", out);
            print_quoted(out, s->list_default[i]);
        }
        fputs(s->list_default[0] ? " ]" : "]", out);
        break;
    case CONFIG_FILE: case CONFIG_CUSTOM: break;
    }
}

static void print_type(FILE *out, const callbus_setting *s) {
    switch (s->type) {
    case CONFIG_STRING: fprintf(out, "string, at most %zu bytes", s->size - 1); break;
    case CONFIG_INT: fprintf(out, "integer, %lld to %lld", s->min, s->max); break;
    case CONFIG_BOOL: fputs("`true` or `false`", out); break;
    case CONFIG_STRINGS: fputs("list of strings", out); break;
    case CONFIG_FILE: fputs("file name, read at load", out); break;
    case CONFIG_CUSTOM: fputs(s->type_doc, out); break;
    }
}

/* "callbus-agent and callbus-gateway" */
static void print_readers(FILE *out, unsigned readers) {
    const char *names[3];
    int n = 0;
    for (int i = 0; i < 3; i++)
        if (readers & (1u << i)) names[n++] = program_names[i];
    for (int i = 0; i < n; i++) fprintf(out, "%s%s", i == 0 ? "" : i == n - 1 ? " and " : ", ", names[i]);
}

static unsigned section_readers(const char *section) {
    unsigned readers = 0;
    char sec[128];
    for (const callbus_setting *s = config_settings; s->name; s++) {
        section_of(s->name, sec, sizeof(sec));
        if (!strcmp(sec, section)) readers |= s->readers;
    }
    return readers;
}

static const char *section_doc(const char *name) {
    for (const callbus_section *x = config_sections; x->name; x++)
        if (!strcmp(x->name, name)) return x->doc;
    return NULL;
}

/* Every setting's section has its doc, so no setting is left out of the
 * reference's tables. */
static void check_sections(void) {
    char sec[128];
    for (const callbus_setting *s = config_settings; s->name; s++) {
        section_of(s->name, sec, sizeof(sec));
        if (!section_doc(sec)) {
            fprintf(stderr, "configdoc: section \"%s\" of %s has no entry in config_sections (lib/config.c)\n",
                    sec, s->name);
            exit(1);
        }
    }
}

/* ---------------------------------------------------------------- the reference */

static void print_row(FILE *out, const callbus_setting *s, unsigned readers) {
    fprintf(out, "| `%s` | ", s->name);
    print_type(out, s);
    fputs(" | ", out);
    if (s->default_doc) {
        fputs(s->default_doc, out);
    } else {
        fputc('`', out);
        print_default(out, s);
        fputc('`', out);
    }
    fprintf(out, " | %s", s->doc);
    if (s->readers != readers) {
        fputs(" Read by ", out);
        print_readers(out, s->readers);
        fputc('.', out);
    }
    fputs(" |\n", out);
}

static void print_reference(FILE *out) {
    char sec[128];
    fprintf(out, "%s\n", BEGIN_MARK);
    for (const callbus_section *x = config_sections; x->name; x++) {
        unsigned readers = section_readers(x->name);
        fprintf(out, "\n### %s\n\n%s\n\n", *x->name ? x->name : "Top level", x->doc);
        fputs("| setting | type | default | meaning |\n|---|---|---|---|\n", out);
        for (const callbus_setting *s = config_settings; s->name; s++) {
            section_of(s->name, sec, sizeof(sec));
            if (!strcmp(sec, x->name)) print_row(out, s, readers);
        }
    }
    fprintf(out, "\n%s\n", END_MARK);
}

/* FILE as it is, but for the part between the marks. */
static int rewrite_reference(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return 1;
    }
    char line[4096];
    int state = 0;  /* 0 before the part, 1 in it, 2 after it */
    while (fgets(line, sizeof(line), f)) {
        if (state == 0 && !strncmp(line, BEGIN_MARK, strlen(BEGIN_MARK))) {
            print_reference(stdout);
            state = 1;
        } else if (state == 1 && !strncmp(line, END_MARK, strlen(END_MARK))) {
            state = 2;
        } else if (state != 1) {
            fputs(line, stdout);
        }
    }
    fclose(f);
    if (state != 2) {
        fprintf(stderr, "configdoc: %s lacks the lines\n%s\n%s\n", path, BEGIN_MARK, END_MARK);
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- the example files */

/* Markdown to comment lines: backticks dropped, wrapped at 78 columns. */
static void print_comment(FILE *out, int indent, const char *md) {
    char text[2048];
    size_t n = 0;
    for (; *md && n + 1 < sizeof(text); md++)
        if (*md != '`') text[n++] = *md;
    text[n] = '\0';
    int col = 0;
    for (char *word = strtok(text, " "); word; word = strtok(NULL, " ")) {
        int len = (int)strlen(word);
        if (col && col + 1 + len > 78) {
            fputc('\n', out);
            col = 0;
        }
        if (!col) col = fprintf(out, "%*s#", indent, "");
        col += fprintf(out, " %s", word);
    }
    if (col) fputc('\n', out);
}

static void print_setting_line(FILE *out, int indent, const callbus_setting *s) {
    fprintf(out, "%*s%s%s = ", indent, "", s->example_commented ? "# " : "", last_part(s->name));
    if (s->example) fputs(s->example, out);
    else print_default(out, s);
    fputs(s->example && !s->example_commented ? ";  # example\n" : ";\n", out);
}

/* Groups of a section: "agent.ami" has 2. */
static int depth(const char *section) {
    int d = *section != '\0';
    for (; *section; section++) d += *section == '.';
    return d;
}

/* The first d groups of section, as a section name. */
static void prefix(const char *section, int d, char *out, size_t outlen) {
    const char *end = section;
    for (int i = 0; i < d; i++) {
        end = strchr(end + (i > 0), '.');
        if (!end) {
            end = section + strlen(section);
            break;
        }
    }
    snprintf(out, outlen, "%.*s", d ? (int)(end - section) : 0, section);
}

/* Leaves the groups of open that want is not in and enters those it is in,
 * each with its doc. A group entered twice would be a second group of the
 * same name, which libconfig refuses: the table keeps a section's rows
 * together. Returns whether a group was entered. */
static int move_to(FILE *out, char *open, size_t openlen, const char *want, char *left, size_t leftlen) {
    int shared = 0, d_open = depth(open), d_want = depth(want);
    char a[128], b[128];
    while (shared < d_open && shared < d_want) {
        prefix(open, shared + 1, a, sizeof(a));
        prefix(want, shared + 1, b, sizeof(b));
        if (strcmp(a, b)) break;
        shared++;
    }
    for (int d = d_open; d > shared; d--) {
        prefix(open, d, a, sizeof(a));
        fprintf(out, "%*s};\n", (d - 1) * 2, "");
        size_t used = strlen(left);
        snprintf(left + used, leftlen - used, " %s ", a);
    }
    for (int d = shared + 1; d <= d_want; d++) {
        prefix(want, d, b, sizeof(b));
        char quoted[130];
        snprintf(quoted, sizeof(quoted), " %s ", b);
        if (strstr(left, quoted)) {
            fprintf(stderr, "configdoc: the rows of section %s are not together in lib/config.c\n", b);
            exit(1);
        }
        fputc('\n', out);
        if (section_doc(b)) print_comment(out, (d - 1) * 2, section_doc(b));
        fprintf(out, "%*s%s: {\n", (d - 1) * 2, "", last_part(b));
    }
    snprintf(open, openlen, "%s", want);
    return d_want > shared;
}

static const char *const example_headers[] = {
    "callbus-agent configuration, in libconfig syntax. Every setting is optional; the value shown "
    "is the default unless marked \"example\", and one commented out has no default value or one "
    "derived from another. The agent, the gateway and the callbus CLI read the same file, each the "
    "top-level settings and its own section, so one file can configure a site "
    "(gateway/gateway.conf.example shows the gateway's section). A setting no program knows is an "
    "error. Check a file with: callbus-agent --check-config -c agent.conf",
    "callbus-gateway configuration, in libconfig syntax. The top-level settings are the ones the agent "
    "reads: one file can configure a site (agent/agent.conf.example shows the agent's sections). "
    "Every setting is optional except a token key (jwt_secret or jwt_key_file); the value shown is "
    "the default unless marked \"example\", and one commented out has no default value. A setting no "
    "program knows is an error. Check a file with: callbus-gateway --check-config -c FILE",
};

static int print_example(const char *program) {
    unsigned reader = !strcmp(program, "agent") ? CONFIG_AGENT : !strcmp(program, "gateway") ? CONFIG_GATEWAY : 0;
    if (!reader) {
        fprintf(stderr, "configdoc: no example for \"%s\" (agent or gateway)\n", program);
        return 2;
    }
    print_comment(stdout, 0, example_headers[reader == CONFIG_GATEWAY]);
    print_comment(stdout, 0, "Generated from the table in lib/config.c by make config-docs (edit it "
                             "there); every setting is explained in docs/configuration.md.");
    char open[128] = "", sec[128], left[1024] = "";
    for (const callbus_setting *s = config_settings; s->name; s++) {
        if (!(s->readers & reader)) continue;
        section_of(s->name, sec, sizeof(sec));
        int entered = move_to(stdout, open, sizeof(open), sec, left, sizeof(left));
        if (!entered) fputc('\n', stdout);
        char doc[2048];
        if (s->type == CONFIG_INT) snprintf(doc, sizeof(doc), "%s Range: %lld to %lld.", s->doc, s->min, s->max);
        else snprintf(doc, sizeof(doc), "%s", s->doc);
        print_comment(stdout, depth(sec) * 2, doc);
        print_setting_line(stdout, depth(sec) * 2, s);
    }
    move_to(stdout, open, sizeof(open), "", left, sizeof(left));
    return 0;
}

static void print_names(void) {
    for (const callbus_setting *s = config_settings; s->name; s++) {
        printf("%s", s->name);
        for (int i = 0; i < 3; i++)
            if (s->readers & (1u << i)) printf(" %s", program_names[i]);
        putchar('\n');
    }
}

int main(int argc, char **argv) {
    check_sections();
    if (argc == 3 && !strcmp(argv[1], "reference")) return rewrite_reference(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "example")) return print_example(argv[2]);
    if (argc == 2 && !strcmp(argv[1], "names")) {
        print_names();
        return 0;
    }
    fprintf(stderr, "usage: configdoc reference FILE | example agent|gateway | names\n");
    return 2;
}
