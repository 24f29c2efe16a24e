/* command_decode.c -- decode and check commands (see command_decode.h). */
#include "command_decode.h"
#include "clock.h"
#include "log.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *kind_names[CMD_KINDS] = {
    "originate", "answer", "hangup", "transfer", "pause", "unpause",
    "queue_login", "queue_logout", "listen", "whisper"};

const char *command_kind_name(command_kind k) { return kind_names[k]; }

/* What may reach AMI as a value: printable, no control characters. */
static int safe_text(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return 0;
    return 1;
}

/* Ids, names, queues: a conservative alphabet. */
static int safe_token(const char *s, const char *extra) {
    if (!*s) return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(extra, *p)) return 0;
    return 1;
}

typedef struct field {
    const char *name;
    size_t offset, size;
    const char *alphabet;   /* NULL: any printable text */
} field;

#define F(name, member, alpha) {name, offsetof(command, member), sizeof(((command *)0)->member), alpha}
static const char ID_CHARS[] = "-_.:@";
static const field known_fields[] = {
    F("operator_id", operator_id, "-_."),
    F("supervisor_id", supervisor_id, "-_."),
    F("call_id", call_id, "-_.:@"),
    F("number", number, "+*#"),
    F("context", context, "-_"),
    F("queue", queue, "-_."),
    F("reason", reason, NULL),
    F("to", to, "+*#"),
    F("kind", transfer_kind, "_"),
};

static int copy_field(json_t *data, const field *f, command *cmd, char *reason, size_t rlen) {
    json_t *v = json_object_get(data, f->name);
    if (!v) return 0;
    const char *s = json_string_value(v);
    if (!s) {
        snprintf(reason, rlen, "data.%s must be a string", f->name);
        return -1;
    }
    if (strlen(s) >= f->size) {
        snprintf(reason, rlen, "data.%s is too long (max %zu characters)", f->name, f->size - 1);
        return -1;
    }
    if (!safe_text(s) || (f->alphabet && *s && !safe_token(s, f->alphabet))) {
        snprintf(reason, rlen, "data.%s contains characters that are not allowed", f->name);
        return -1;
    }
    snprintf((char *)cmd + f->offset, f->size, "%s", s);
    return 0;
}

static int known_field(const char *name) {
    if (!strcmp(name, "penalty") || !strcmp(name, "variables")) return 1;
    for (size_t i = 0; i < sizeof(known_fields) / sizeof(*known_fields); i++)
        if (!strcmp(known_fields[i].name, name)) return 1;
    return 0;
}

/* Asterisk reads an Originate `Variable:` header as a comma-separated list of
 * assignments, unquotes and unescapes its parts, and treats a name ending in
 * ')' as a dialplan function: `X=1,CALLERID(num)=112` sets the caller ID.
 * So a value may hold none of the characters that delimit, quote, escape or
 * call (`|` is the old argument separator), nor control characters. Returns
 * the first such character, or 0 when the value is safe. */
static int unsafe_variable_char(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f || strchr(",\"\\()|", *p)) return *p;
    return 0;
}

static int copy_variables(json_t *vars, command *cmd, char *reason, size_t rlen) {
    if (!vars) return 0;
    if (!json_is_object(vars) || json_object_size(vars) > CMD_MAX_VARS) {
        snprintf(reason, rlen, "data.variables must be an object of at most %d strings", CMD_MAX_VARS);
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(vars, k, v) {
        const char *s = json_string_value(v);
        if (strlen(k) >= 64 || !safe_token(k, "_") || isdigit((unsigned char)k[0])) {
            char safe[48];
            snprintf(reason, rlen, "data.variables: \"%s\" is not a valid variable name",
                     log_safe_str(safe, sizeof(safe), k));
            return -1;
        }
        if (!s || strlen(s) >= 256 || !safe_text(s)) {
            snprintf(reason, rlen, "data.variables.%s must be printable text under 256 characters", k);
            return -1;
        }
        int bad = unsafe_variable_char(s);
        if (bad) {
            snprintf(reason, rlen, "data.variables.%s contains '%c': Asterisk would read it as more than "
                     "a value; variable values may not contain , \" \\ ( ) |", k, bad);
            return -1;
        }
        snprintf(cmd->var_names[cmd->nvars], 64, "%s", k);
        snprintf(cmd->var_values[cmd->nvars], 256, "%s", s);
        cmd->nvars++;
    }
    return 0;
}

static int require(const command *cmd, const char *value, const char *name, char *reason, size_t rlen) {
    if (*value) return 0;
    snprintf(reason, rlen, "%s needs data.%s", cmd->type, name);
    return -1;
}

/* Fields each kind needs. */
static int check_required(const command *cmd, char *reason, size_t rlen) {
    switch (cmd->kind) {
    case CMD_ORIGINATE:
        return require(cmd, cmd->operator_id, "operator_id", reason, rlen) ||
               require(cmd, cmd->number, "number", reason, rlen);
    case CMD_ANSWER:
        return require(cmd, cmd->operator_id, "operator_id", reason, rlen) ||
               require(cmd, cmd->call_id, "call_id", reason, rlen);
    case CMD_HANGUP: return require(cmd, cmd->call_id, "call_id", reason, rlen);
    case CMD_TRANSFER:
        if (require(cmd, cmd->call_id, "call_id", reason, rlen) || require(cmd, cmd->to, "to", reason, rlen))
            return -1;
        if (*cmd->transfer_kind && strcmp(cmd->transfer_kind, "blind")) {
            snprintf(reason, rlen, "transfer kind \"%s\" is not supported (blind only)", cmd->transfer_kind);
            return -1;
        }
        return 0;
    case CMD_PAUSE:
    case CMD_UNPAUSE: return require(cmd, cmd->operator_id, "operator_id", reason, rlen);
    case CMD_QUEUE_LOGIN:
    case CMD_QUEUE_LOGOUT:
        return require(cmd, cmd->operator_id, "operator_id", reason, rlen) ||
               require(cmd, cmd->queue, "queue", reason, rlen);
    case CMD_LISTEN:
    case CMD_WHISPER:
        return require(cmd, cmd->supervisor_id, "supervisor_id", reason, rlen) ||
               require(cmd, cmd->operator_id, "operator_id", reason, rlen);
    default: return -1;
    }
}

static int decode_envelope(json_t *ev, command *cmd, char *reason, size_t rlen) {
    const char *id = json_string_value(json_object_get(ev, "id"));
    const char *type = json_string_value(json_object_get(ev, "type"));
    const char *sender = json_string_value(json_object_get(ev, "sender"));
    if (id && strlen(id) < sizeof(cmd->id) && safe_token(id, ID_CHARS)) snprintf(cmd->id, sizeof(cmd->id), "%s", id);
    if (type && strlen(type) < sizeof(cmd->type) && safe_token(type, "._")) snprintf(cmd->type, sizeof(cmd->type), "%s", type);
    if (sender && strlen(sender) < sizeof(cmd->sender) && safe_text(sender)) snprintf(cmd->sender, sizeof(cmd->sender), "%s", sender);
    if (!*cmd->id) {
        snprintf(reason, rlen, "id is missing or not made of letters, digits and -_.:@ (max %zu)", sizeof(cmd->id) - 1);
        return -1;
    }
    const char *spec = json_string_value(json_object_get(ev, "specversion"));
    if (!spec || strcmp(spec, "1.0")) {
        snprintf(reason, rlen, "specversion must be \"1.0\"");
        return -1;
    }
    if (!*cmd->type || strncmp(cmd->type, "callbus.command.", 16)) {
        snprintf(reason, rlen, "type must be callbus.command.<name>");
        return -1;
    }
    int k;
    for (k = 0; k < CMD_KINDS; k++)
        if (!strcmp(cmd->type + 16, kind_names[k])) break;
    if (k == CMD_KINDS) {
        snprintf(reason, rlen, "unknown command type %s", cmd->type);
        return -1;
    }
    cmd->kind = (command_kind)k;
    if (!*cmd->sender) {
        snprintf(reason, rlen, "sender is missing (who asked for this command?)");
        return -1;
    }
    cmd->expires = rfc3339_parse(json_string_value(json_object_get(ev, "expires")));
    if (cmd->expires < 0) {
        snprintf(reason, rlen, "expires is missing or not an RFC 3339 time");
        return -1;
    }
    cmd->time = rfc3339_parse(json_string_value(json_object_get(ev, "time")));
    return 0;
}

static int decode_data(json_t *data, command *cmd, char *reason, size_t rlen) {
    if (!json_is_object(data)) {
        snprintf(reason, rlen, "data must be an object");
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(data, k, v) {
        if (!known_field(k)) {
            char safe[48];
            snprintf(reason, rlen, "data.%s is not a field of %s", log_safe_str(safe, sizeof(safe), k), cmd->type);
            return -1;
        }
    }
    for (size_t i = 0; i < sizeof(known_fields) / sizeof(*known_fields); i++)
        if (copy_field(data, &known_fields[i], cmd, reason, rlen) < 0) return -1;
    json_t *pen = json_object_get(data, "penalty");
    if (pen) {
        if (!json_is_integer(pen) || json_integer_value(pen) < 0 || json_integer_value(pen) > 1000) {
            snprintf(reason, rlen, "data.penalty must be an integer 0..1000");
            return -1;
        }
        cmd->penalty = (int)json_integer_value(pen);
        cmd->has_penalty = 1;
    }
    if (copy_variables(json_object_get(data, "variables"), cmd, reason, rlen) < 0) return -1;
    return check_required(cmd, reason, rlen) ? -1 : 0;
}

int command_decode(const char *json, size_t len, command *cmd, char *reason, size_t rlen) {
    memset(cmd, 0, sizeof(*cmd));
    json_error_t jerr;
    json_t *ev = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!ev || !json_is_object(ev)) {
        snprintf(reason, rlen, "not a JSON object: %s", ev ? "wrong type" : jerr.text);
        json_decref(ev);
        return -1;
    }
    int rc = decode_envelope(ev, cmd, reason, rlen);
    if (rc == 0) rc = decode_data(json_object_get(ev, "data"), cmd, reason, rlen);
    json_decref(ev);
    return rc;
}
