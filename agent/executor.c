/* executor.c -- execute commands from Kafka as AMI actions (see executor.h).
 *
 * At most once: the decision to execute is appended to the journal and
 * fsynced before the action is sent, and a command id found in the journal
 * is never executed again. The consumer's offset is stored only after that
 * decision (or a final refusal), so a crash redelivers, and the journal turns
 * the redelivery into a `duplicate`. An action whose outcome is unknown (AMI
 * link lost, no answer, agent crash) is reported as failed, never retried.
 *
 * Never late: expiry is checked when the command is taken, again after any
 * wait for AMI, and an expiry further ahead than commands.max_ttl is refused
 * so that journal entries can be forgotten once their command has expired.
 *
 * While AMI is down, partitions are paused and the held message is sought
 * back to, so commands wait in Kafka, not in memory. */
#include "executor.h"

#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <uthash.h>

#include "alloc.h"
#include "clock.h"
#include "command_decode.h"
#include "journal.h"
#include "kafka_conf.h"
#include "log.h"
#include "unanswered.h"

typedef struct inflight {
    char action_id[AMI_ACTION_ID_MAX];
    command cmd;
    char call_id[160];      /* originate: the Linkedid we asked for */
    int await_originate;    /* Success response seen, OriginateResponse pending */
    double deadline;        /* monotonic */
    UT_hash_handle hh;
} inflight;

struct executor {
    executor_env env;
    const callbus_config *cfg;
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;
    int wake[2];            /* librdkafka writes here when commands arrive */
    char topic[256];
    char id_prefix[AMI_ACTION_ID_MAX];  /* "callbus/<nonce>/cmd/": our actions' ActionIDs */
    journal *journal;
    regex_t *numbers, *transfers;
    inflight *inflight;
    int ami_up;
    int held;               /* partitions paused while AMI is down */
    unsigned long originate_seq;
    double now;             /* wall clock: expiry and result times */
    double mono, next_prune; /* monotonic: timeouts */
    executor_stats st;
};

/* ---- Results ------------------------------------------------------------- */

static void result(executor *c, const command *cmd, const char *status, const char *reason,
                   const char *call_id) {
    json_t *d = json_pack("{s:s, s:s, s:s}", "command_id", cmd->id, "command_type",
                          *cmd->type ? cmd->type : "unknown", "status", status);
    if (*cmd->sender) json_object_set_new(d, "sender", json_string(cmd->sender));
    if (reason) json_object_set_new(d, "reason", json_string(reason));
    if (call_id) json_object_set_new(d, "call_id", json_string(call_id));
    /* The reason may quote a client's text or an AMI peer's: escaped. */
    log_info("command %s %s: %s%s%s", cmd->id, cmd->type, status, reason ? ": " : "", reason ? log_str(reason) : "");
    c->env.publish_result(c->env.ctx, cmd->id, c->now, d);
}

/* A final result also closes the journal entry. */
static void final(executor *c, const command *cmd, const char *status, const char *reason,
                  const char *call_id) {
    if (!strcmp(status, "succeeded")) c->st.succeeded++;
    else c->st.failed++;
    result(c, cmd, status, reason, call_id);
    if (journal_set(c->journal, cmd->id, cmd->expires, JOURNAL_DONE) < 0)
        log_error("command journal: cannot record the result of %s", cmd->id);
}

/* ---- Policy and action building ----------------------------------------- */

static int matches_any(const regex_t *res, size_t n, const char *s) {
    for (size_t i = 0; i < n; i++)
        if (regexec(&res[i], s, 0, NULL, 0) == 0) return 1;
    return 0;
}

static int context_allowed(const executor *c, const char *ctx) {
    for (size_t i = 0; i < c->cfg->commands.allowed_context_count; i++)
        if (!strcmp(c->cfg->commands.allowed_contexts[i], ctx)) return 1;
    return 0;
}

/* Only listed variables: a name Asterisk knows (CDR fields, CHANNEL(...),
 * hangup handlers, GOSUB arguments) must not be set by whoever can write a
 * command. The decoder has already refused values that could smuggle in a
 * second assignment. */
static int variables_allowed(const executor *c, const command *cmd, char *reason, size_t rlen) {
    for (size_t i = 0; i < cmd->nvars; i++) {
        size_t k = 0;
        while (k < c->cfg->commands.originate_variable_count &&
               strcmp(c->cfg->commands.originate_variables[k], cmd->var_names[i]))
            k++;
        if (k == c->cfg->commands.originate_variable_count) {
            snprintf(reason, rlen, "variable %s may not be set by a command (not in commands.originate_variables)",
                     cmd->var_names[i]);
            return 0;
        }
    }
    return 1;
}

/* An operator's phone/queue interface: the explicit map wins, else the
 * configured template. */
static void operator_interface(const executor *c, const char *op, char *out, size_t n) {
    for (size_t i = 0; i < c->cfg->operator_count; i++) {
        if (!strcmp(c->cfg->operators[i].id, op)) {
            snprintf(out, n, "%s", c->cfg->operators[i].interface);
            return;
        }
    }
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(out, n, c->cfg->commands.operator_phone, op); /* checked: exactly one %s */
#pragma GCC diagnostic pop
}

typedef struct action {
    const char *name;
    const char *h[2 * (CMD_MAX_VARS + 12) + 1];
    int n;
    char buf[CMD_MAX_VARS + 8][320];  /* storage for composed values */
    int nbuf;
} action;

static void add(action *a, const char *k, const char *v) {
    a->h[a->n++] = k;
    a->h[a->n++] = v;
    a->h[a->n] = NULL;
}

static const char *compose(action *a, const char *fmt, const char *x, const char *y) {
    char *b = a->buf[a->nbuf++];
    snprintf(b, sizeof(a->buf[0]), fmt, x, y);
    return b;
}

static int build_originate(executor *c, const command *cmd, action *a, inflight *f,
                           char *reason, size_t rlen) {
    const char *ctx = *cmd->context ? cmd->context : c->cfg->commands.originate_context;
    if (!context_allowed(c, ctx)) {
        snprintf(reason, rlen, "context \"%s\" is not allowed for originate", ctx);
        return -1;
    }
    if (!matches_any(c->numbers, c->cfg->commands.number_pattern_count, cmd->number)) {
        snprintf(reason, rlen, "number \"%s\" does not match the allowed number patterns", cmd->number);
        return -1;
    }
    if (!variables_allowed(c, cmd, reason, rlen)) return -1;
    char iface[256], timeout[16];
    operator_interface(c, cmd->operator_id, iface, sizeof(iface));
    snprintf(f->call_id, sizeof(f->call_id), "cb-%s-%lld-%lu", c->cfg->agent.id,
             (long long)c->now, ++c->originate_seq);
    snprintf(timeout, sizeof(timeout), "%d", c->cfg->commands.originate_timeout_ms);
    a->name = "Originate";
    add(a, "Channel", compose(a, "%s%s", iface, ""));
    add(a, "Context", ctx);
    add(a, "Exten", cmd->number);
    add(a, "Priority", "1");
    add(a, "CallerID", compose(a, "\"%s\" <%s>", cmd->number, cmd->number));
    add(a, "Timeout", compose(a, "%s%s", timeout, ""));
    add(a, "Async", "true");
    add(a, "ChannelId", f->call_id);
    add(a, "OtherChannelId", compose(a, "%s-%s", f->call_id, "op"));
    add(a, "Variable", compose(a, "CALLBUS_COMMAND_ID=%s%s", cmd->id, ""));
    for (size_t i = 0; i < cmd->nvars; i++)
        add(a, "Variable", compose(a, "%s=%s", cmd->var_names[i], cmd->var_values[i]));
    f->await_originate = 1;
    return 0;
}

/* ChanSpy's first argument is a channel-name prefix: `PJSIP/alice` would
 * also attach to `PJSIP/alice2-0000001a`, another operator's call. Asterisk
 * names a channel `<interface>-<sequence>` (`Local/op1@phones-00000001;1`),
 * so the prefix `<interface>-` selects the operator's own channels and no
 * longer those of an interface that merely starts the same way. What
 * Asterisk 22's ChanSpy offers instead, and why not:
 *   u   the argument is one channel's uniqueid or full name: exact, but it
 *       needs the channel of the call in progress, and ChanSpy exits when
 *       that channel is gone (no listening across the operator's calls);
 *   e() "enforced": compares the part of each channel name before its first
 *       '-', so it adds nothing to the trailing '-' and never matches an
 *       interface that contains a '-';
 *   E   only exits when the spied-on channel hangs up.
 * Left open: an endpoint named like another plus '-' (`alice` and
 * `alice-b`); the site must not name operators so (docs/operations.md). */
static int build_spy(executor *c, const command *cmd, action *a, inflight *f) {
    char sup[256], iface[256], spied[260];
    operator_interface(c, cmd->supervisor_id, sup, sizeof(sup));
    operator_interface(c, cmd->operator_id, iface, sizeof(iface));
    snprintf(spied, sizeof(spied), "%s-", iface);
    snprintf(f->call_id, sizeof(f->call_id), "cb-%s-%lld-%lu", c->cfg->agent.id,
             (long long)c->now, ++c->originate_seq);
    a->name = "Originate";
    add(a, "Channel", compose(a, "%s%s", sup, ""));
    add(a, "Application", "ChanSpy");
    add(a, "Data", compose(a, "%s,%s", spied, cmd->kind == CMD_WHISPER ? "qw" : "q"));
    add(a, "Async", "true");
    add(a, "ChannelId", f->call_id);
    add(a, "Variable", compose(a, "CALLBUS_COMMAND_ID=%s%s", cmd->id, ""));
    f->await_originate = 1;
    return 0;
}

/* Whoever sent a hangup or transfer in an operator's name (the gateway
 * always does) acts only on that operator's call, as the call is now: the
 * gateway checked its own view when the command was made, and the command
 * may have waited in Kafka (AMI down) while the call moved to another
 * operator. An answer needs the call still waiting in its queue: once
 * anyone has taken it, it is no longer anyone's to answer. */
static int still_theirs(const command *cmd, const cm_call_view *v, char *reason, size_t rlen) {
    if (!*cmd->operator_id || (cmd->kind != CMD_HANGUP && cmd->kind != CMD_TRANSFER)) return 1;
    if (v->operator_id && !strcmp(v->operator_id, cmd->operator_id)) return 1;
    /* Who has it instead is not the sender's business. */
    snprintf(reason, rlen, "call %s is not operator %s's call (any more): not executed", cmd->call_id,
             cmd->operator_id);
    return 0;
}

/* The live customer channel of cmd->call_id, or a reason why there is none. */
static const char *customer_of(executor *c, const command *cmd, int must_wait, char *reason, size_t rlen) {
    cm_call_view v;
    if (!callmodel_call_view(c->env.cm, cmd->call_id, &v)) {
        snprintf(reason, rlen, "no call %s is in progress", cmd->call_id);
        return NULL;
    }
    if (must_wait && !v.in_queue) {
        snprintf(reason, rlen, "call %s is not waiting in a queue (answered or gone)", cmd->call_id);
        return NULL;
    }
    if (!still_theirs(cmd, &v, reason, rlen)) return NULL;
    if (!v.customer_channel) snprintf(reason, rlen, "call %s has no customer channel up", cmd->call_id);
    return v.customer_channel;
}

static int build_call_action(executor *c, const command *cmd, action *a, char *reason, size_t rlen) {
    const char *chan = customer_of(c, cmd, cmd->kind == CMD_ANSWER, reason, rlen);
    if (!chan) return -1;
    if (cmd->kind == CMD_HANGUP) {
        a->name = "Hangup";
        add(a, "Channel", compose(a, "%s%s", chan, ""));
        add(a, "Cause", "16");
        return 0;
    }
    if (cmd->kind == CMD_TRANSFER &&
        !matches_any(c->transfers, c->cfg->commands.transfer_pattern_count, cmd->to)) {
        snprintf(reason, rlen, "transfer target \"%s\" does not match the allowed patterns", cmd->to);
        return -1;
    }
    a->name = "Redirect";
    add(a, "Channel", compose(a, "%s%s", chan, ""));
    add(a, "Context", cmd->kind == CMD_ANSWER ? c->cfg->commands.answer_context
                                              : c->cfg->commands.transfer_context);
    add(a, "Exten", cmd->kind == CMD_ANSWER ? cmd->operator_id : cmd->to);
    add(a, "Priority", "1");
    return 0;
}

static void build_queue_action(executor *c, const command *cmd, action *a) {
    char iface[256];
    operator_interface(c, cmd->operator_id, iface, sizeof(iface));
    const char *ifv = compose(a, "%s%s", iface, "");
    switch (cmd->kind) {
    case CMD_PAUSE:
    case CMD_UNPAUSE:
        a->name = "QueuePause";
        add(a, "Interface", ifv);
        add(a, "Paused", cmd->kind == CMD_PAUSE ? "true" : "false");
        if (*cmd->queue) add(a, "Queue", cmd->queue);
        if (*cmd->reason) add(a, "Reason", cmd->reason);
        break;
    case CMD_QUEUE_LOGIN:
        a->name = "QueueAdd";
        add(a, "Queue", cmd->queue);
        add(a, "Interface", ifv);
        add(a, "MemberName", cmd->operator_id);
        if (cmd->has_penalty) {
            char pen[16];
            snprintf(pen, sizeof(pen), "%d", cmd->penalty);
            add(a, "Penalty", compose(a, "%s%s", pen, ""));
        }
        break;
    default:
        a->name = "QueueRemove";
        add(a, "Queue", cmd->queue);
        add(a, "Interface", ifv);
        break;
    }
}

static int build_action(executor *c, const command *cmd, action *a, inflight *f,
                        char *reason, size_t rlen) {
    switch (cmd->kind) {
    case CMD_ORIGINATE: return build_originate(c, cmd, a, f, reason, rlen);
    case CMD_LISTEN:
    case CMD_WHISPER: return build_spy(c, cmd, a, f);
    case CMD_ANSWER:
    case CMD_HANGUP:
    case CMD_TRANSFER: return build_call_action(c, cmd, a, reason, rlen);
    default: build_queue_action(c, cmd, a); return 0;
    }
}

/* ---- Taking commands --------------------------------------------------------- */

/* Decided: the consumer may move past this message. */
static void done_with(executor *c, const rd_kafka_message_t *m) {
    if (c->env.store_offset) {
        c->env.store_offset(c->env.ctx, rd_kafka_topic_name(m->rkt), m->partition, m->offset + 1);
        return;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset = m->offset + 1;
    rd_kafka_offsets_store(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/* AMI is down: stop consuming and come back to this message later. */
static void hold(executor *c, const rd_kafka_message_t *m) {
    rd_kafka_topic_partition_list_t *assigned = NULL;
    if (rd_kafka_assignment(c->rk, &assigned) == 0 && assigned) {
        rd_kafka_pause_partitions(c->rk, assigned);
        rd_kafka_topic_partition_list_destroy(assigned);
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset = m->offset;
    rd_kafka_error_t *e = rd_kafka_seek_partitions(c->rk, l, 5000);
    if (e) {
        log_warn("commands: cannot seek back to a held command: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (!c->held) log_info("commands: AMI is down: commands wait in Kafka until it is back");
    c->held = 1;
}

static void send_action(executor *c, const command *cmd, const rd_kafka_message_t *m) {
    char reason[256];
    action a = {0};
    inflight *f = xcalloc(1, sizeof(*f));
    f->cmd = *cmd;
    if (build_action(c, cmd, &a, f, reason, sizeof(reason)) < 0) {
        c->st.rejected++;
        result(c, cmd, "rejected", reason, NULL);
        done_with(c, m);
        free(f);
        return;
    }
    if (journal_set(c->journal, cmd->id, cmd->expires, JOURNAL_EXECUTING) < 0) {
        c->st.failed++;
        result(c, cmd, "failed", "cannot record the decision durably (journal write failed): not executed", NULL);
        done_with(c, m);
        free(f);
        return;
    }
    double durable = wall_now();
    done_with(c, m);
    c->st.accepted++;
    result(c, cmd, "accepted", NULL, NULL);
    if (c->env.decide && c->env.decide(c->env.ctx) < 0) {
        final(c, cmd, "failed", "the decision could not be committed to Kafka (fenced by another instance, "
                                "or the broker did not answer in time): not executed", NULL);
        free(f);
        return;
    }
    char tag[sizeof(cmd->id) + 8];
    snprintf(tag, sizeof(tag), "cmd/%s", cmd->id);
    if (ami_client_send_tagged(c->env.ami, a.name, a.h, tag, f->action_id, sizeof(f->action_id)) < 0) {
        final(c, cmd, "failed", "the action could not be sent (AMI link down or an unsafe value)", NULL);
        free(f);
        return;
    }
    /* The agent's share of a command's latency, stage by stage, against the
     * message's Kafka timestamp (tests/bench/bench.py BENCH_STAGES). */
    int64_t ts = rd_kafka_message_timestamp(m, NULL);
    log_debug("command %s: kafka timestamp %.3f, woken %.6f, decision durable %.6f, action sent %.6f",
              cmd->id, ts / 1000.0, c->now, durable, wall_now());
    f->deadline = c->mono + c->cfg->commands.result_timeout_s +
                  (f->await_originate ? c->cfg->commands.originate_timeout_ms / 1000.0 : 0);
    HASH_ADD_STR(c->inflight, action_id, f);
}

static void take(executor *c, const rd_kafka_message_t *m) {
    command cmd;
    char reason[256];
    c->st.received++;
    if (command_decode(m->payload, m->len, &cmd, reason, sizeof(reason)) < 0) {
        if (!*cmd.id)
            snprintf(cmd.id, sizeof(cmd.id), "invalid@%s:%d:%lld", rd_kafka_topic_name(m->rkt),
                     m->partition, (long long)m->offset);
        c->st.rejected++;
        result(c, &cmd, "rejected", reason, NULL);
        done_with(c, m);
        return;
    }
    if (c->now > cmd.expires) {
        c->st.expired++;
        snprintf(reason, sizeof(reason), "expired %.1f s ago; not executed", c->now - cmd.expires);
        result(c, &cmd, "expired", reason, NULL);
        done_with(c, m);
        return;
    }
    if (cmd.expires - c->now > c->cfg->commands.max_ttl_s) {
        c->st.rejected++;
        snprintf(reason, sizeof(reason), "expires too far ahead (%.0f s; at most %d s allowed)",
                 cmd.expires - c->now, c->cfg->commands.max_ttl_s);
        result(c, &cmd, "rejected", reason, NULL);
        done_with(c, m);
        return;
    }
    if (journal_get(c->journal, cmd.id) != JOURNAL_NONE) {
        c->st.duplicate++;
        result(c, &cmd, "duplicate", "this command id was already taken; not executed again", NULL);
        done_with(c, m);
        return;
    }
    /* Asking the link too: a command must never be sent into a link that is
     * already failing, only held. */
    if (!c->ami_up || !ami_client_is_up(c->env.ami)) {
        hold(c, m);
        return;
    }
    send_action(c, &cmd, m);
}

/* ---- Replies from Asterisk --------------------------------------------------- */

static const char *originate_reason_text(const char *r) {
    switch (atoi(r ? r : "0")) {
    case 1: return "hung up";
    case 3: return "no answer";
    case 4: return "answered";
    case 5: return "busy";
    case 8: return "congestion or channel unavailable";
    default: return "failed";
    }
}

int executor_on_ami_message(executor *c, const ami_msg *m) {
    const char *id = ami_get(m, "ActionID");
    inflight *f = NULL;
    if (!id || strncmp(id, c->id_prefix, strlen(c->id_prefix))) return 0;
    HASH_FIND_STR(c->inflight, id, f);
    if (!f) return 1;
    const char *event = ami_get(m, "Event");
    const char *resp = ami_get_or(m, "Response", "");
    char reason[300];
    if (event && !strcasecmp(event, "OriginateResponse")) {
        if (!strcasecmp(resp, "Success")) {
            final(c, &f->cmd, "succeeded", NULL, f->call_id);
        } else {
            const char *r = ami_get(m, "Reason");
            snprintf(reason, sizeof(reason), "originate failed: reason %s (%s)", r ? r : "?",
                     originate_reason_text(r));
            final(c, &f->cmd, "failed", reason, NULL);
        }
    } else if (event) {
        return 1; /* list items of our own actions */
    } else if (strcasecmp(resp, "Success") != 0) {
        snprintf(reason, sizeof(reason), "Asterisk: %s", ami_get_or(m, "Message", "error"));
        final(c, &f->cmd, "failed", reason, NULL);
    } else if (f->await_originate) {
        return 1; /* queued: the outcome comes with OriginateResponse */
    } else {
        final(c, &f->cmd, "succeeded", NULL, NULL);
    }
    HASH_DEL(c->inflight, f);
    free(f);
    return 1;
}

static void fail_all_inflight(executor *c, const char *reason) {
    inflight *f, *t;
    HASH_ITER(hh, c->inflight, f, t) {
        final(c, &f->cmd, "failed", reason, NULL);
        HASH_DEL(c->inflight, f);
        free(f);
    }
}

static void check_timeouts(executor *c) {
    inflight *f, *t;
    HASH_ITER(hh, c->inflight, f, t) {
        if (c->mono < f->deadline) continue;
        final(c, &f->cmd, "failed", "no answer from Asterisk in time: outcome unknown, not retried", NULL);
        HASH_DEL(c->inflight, f);
        free(f);
    }
}

/* ---- Lifecycle ------------------------------------------------------------------ */

static void report_unfinished(void *ctx, const char *id, double expires, journal_state st) {
    executor *c = ctx;
    if (st != JOURNAL_EXECUTING) return;
    command cmd = {0};
    snprintf(cmd.id, sizeof(cmd.id), "%s", id);
    cmd.expires = expires;
    final(c, &cmd, "failed",
          "the agent stopped after deciding to execute this command: outcome unknown, not retried", NULL);
}

static void report_unanswered(void *ctx, const unanswered_command *u) {
    executor *c = ctx;
    if (journal_get(c->journal, u->id) == JOURNAL_DONE) return;
    command cmd = {0};
    snprintf(cmd.id, sizeof(cmd.id), "%s", u->id);
    snprintf(cmd.type, sizeof(cmd.type), "%s", u->type);
    snprintf(cmd.sender, sizeof(cmd.sender), "%s", u->sender);
    cmd.expires = (u->accepted_at > 0 ? u->accepted_at : c->now) + c->cfg->commands.max_ttl_s;
    final(c, &cmd, "failed",
          "the agent leading before stopped after deciding to execute this command: outcome unknown, not retried",
          NULL);
}

static void forget_unfinished(void *ctx, const char *id, double expires, journal_state st) {
    executor *c = ctx;
    if (st == JOURNAL_EXECUTING) journal_set(c->journal, id, expires, JOURNAL_DONE);
}

/* Without a standby this instance's journal knows every command it left
 * unanswered. With one, a command may have been accepted by the other
 * instance, or answered by it after this one stopped: the results topic
 * knows both. Any command that could still be unanswered was accepted
 * less than commands.max_ttl ago (a later expiry is refused). */
static void answer_unfinished(executor *c) {
    if (!c->env.decide) {
        journal_each(c->journal, report_unfinished, c);
        return;
    }
    char err[256];
    int64_t since_ms = (int64_t)((c->now - c->cfg->commands.max_ttl_s - 60) * 1000);
    long n = unanswered_find(c->cfg, c->env.source, since_ms, c->cfg->agent.state_load_timeout_s,
                             report_unanswered, c, err, sizeof(err));
    if (n < 0) {
        log_warn("commands: cannot read the results back (%s): only this instance's journal is answered", err);
        journal_each(c->journal, report_unfinished, c);
        return;
    }
    if (n) log_warn("commands: %ld accepted by the instance leading before and never answered: failed", n);
    journal_each(c->journal, forget_unfinished, c);
}

static regex_t *compile_all(char **patterns, size_t n, const char *what, char *err, size_t errlen) {
    regex_t *res = xcalloc(n + 1, sizeof(regex_t));
    for (size_t i = 0; i < n; i++) {
        int rc = regcomp(&res[i], patterns[i], REG_EXTENDED | REG_NOSUB);
        if (rc) {
            char e[128];
            regerror(rc, &res[i], e, sizeof(e));
            snprintf(err, errlen, "commands.%s[%zu] \"%s\": %s", what, i, patterns[i], e);
            for (size_t k = 0; k < i; k++) regfree(&res[k]);
            free(res);
            return NULL;
        }
    }
    return res;
}

static void group_name(const callbus_config *cfg, char *out, size_t n) {
    snprintf(out, n, "callbus-agent.%s.%s", cfg->site, cfg->agent.id);
}

static rd_kafka_t *make_consumer(const callbus_config *cfg, char *err, size_t errlen) {
    char group[256];
    group_name(cfg, group, sizeof(group));
    /* Static membership: a restarted agent gets its partitions back at once
     * instead of after the session timeout, and so does a standby taking
     * over (same agent id), whose join also fences the old leader's
     * consumer. With a standby, offsets are committed in the leader's
     * transactions only. */
    const kafka_prop defaults[] = {{"group.id", group}, {"enable.auto.offset.store", "false"},
                                   {"auto.offset.reset", "earliest"}, {"client.id", "callbus-agent-commands"},
                                   {"group.instance.id", group},
                                   {"enable.auto.commit", cfg->agent.standby ? "false" : "true"}};
    rd_kafka_conf_t *conf = kafka_conf_new(defaults, sizeof(defaults) / sizeof(defaults[0]), cfg, err, errlen);
    rd_kafka_t *rk = conf ? kafka_client_new(RD_KAFKA_CONSUMER, conf, err, errlen) : NULL;
    if (rk) rd_kafka_poll_set_consumer(rk);
    return rk;
}

executor *executor_new(const executor_env *env, char *err, size_t errlen) {
    executor *c = xcalloc(1, sizeof(*c));
    c->wake[0] = c->wake[1] = -1;
    c->env = *env;
    c->cfg = env->cfg;
    snprintf(c->id_prefix, sizeof(c->id_prefix), "%scmd/", ami_client_id_prefix(env->ami));
    c->now = wall_now();
    c->mono = mono_now();
    char path[PATH_MAX + 32];
    if (c->cfg->commands.journal[0]) snprintf(path, sizeof(path), "%s", c->cfg->commands.journal);
    else snprintf(path, sizeof(path), "%s/commands.journal", c->cfg->state_dir[0] ? c->cfg->state_dir : ".");
    c->journal = journal_open(path, err, errlen);
    c->numbers = compile_all(c->cfg->commands.number_patterns, c->cfg->commands.number_pattern_count,
                             "number_patterns", err, errlen);
    c->transfers = c->numbers ? compile_all(c->cfg->commands.transfer_patterns,
                                            c->cfg->commands.transfer_pattern_count,
                                            "transfer_patterns", err, errlen) : NULL;
    if (!c->journal || !c->transfers) goto fail;
    c->rk = make_consumer(c->cfg, err, errlen);
    if (!c->rk) goto fail;
    config_topic(c->cfg, "commands", c->topic, sizeof(c->topic));
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, c->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (e) {
        snprintf(err, errlen, "commands: subscribe %s: %s", c->topic, rd_kafka_err2str(e));
        goto fail;
    }
    /* Wake the agent's poll() as soon as a command is fetched, instead of on
     * its next timer: commands should reach Asterisk in milliseconds. */
    if (pipe2(c->wake, O_NONBLOCK | O_CLOEXEC) == 0) {
        c->queue = rd_kafka_queue_get_consumer(c->rk);
        rd_kafka_queue_io_event_enable(c->queue, c->wake[1], "1", 1);
    } else {
        c->wake[0] = c->wake[1] = -1;
    }
    answer_unfinished(c);
    log_info("commands: consuming %s (journal %s, %zu recent ids)", c->topic, path, journal_size(c->journal));
    return c;
fail:
    executor_free(c);
    return NULL;
}

static void resume(executor *c) {
    rd_kafka_topic_partition_list_t *assigned = NULL;
    if (rd_kafka_assignment(c->rk, &assigned) == 0 && assigned) {
        rd_kafka_resume_partitions(c->rk, assigned);
        rd_kafka_topic_partition_list_destroy(assigned);
    }
    c->held = 0;
}

int executor_fd(const executor *c) { return c->wake[0]; }

void executor_poll(executor *c, double now, double mono) {
    char drain[64];
    c->now = now;   /* the loop's wake-up: also the command's "woken" stage */
    c->mono = mono;
    while (c->wake[0] >= 0 && read(c->wake[0], drain, sizeof(drain)) > 0) {
    }
    /* A few messages per turn keep AMI reading responsive. */
    for (int i = 0; i < 32; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 0);
        if (!m) break;
        if (!m->err) take(c, m);
        else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            log_warn("commands: %s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        if (c->held) break;
    }
    check_timeouts(c);
    if (mono >= c->next_prune) {
        journal_prune(c->journal, now - 60);
        c->next_prune = mono + 60;
    }
}

void executor_on_ami_up(executor *c) {
    c->ami_up = 1;
    if (c->held) {
        log_info("commands: AMI is back: taking held commands (expired ones get `expired`)");
        resume(c);
    }
}

void executor_on_ami_down(executor *c, const char *reason) {
    char why[256];
    c->ami_up = 0;
    snprintf(why, sizeof(why), "AMI link lost before Asterisk answered (%s): outcome unknown, not retried", reason);
    fail_all_inflight(c, why);
}

/* The group by name only, without the member's generation: the leader's
 * transactional id already fences an old leader, and librdkafka 2.0 fails
 * an assertion when a commit meets a generation that moved on. */
rd_kafka_consumer_group_metadata_t *executor_group(const executor *c) {
    char group[256];
    group_name(c->cfg, group, sizeof(group));
    return rd_kafka_consumer_group_metadata_new(group);
}

void executor_get_stats(const executor *c, executor_stats *out) {
    *out = c->st;
    out->inflight = HASH_COUNT(c->inflight);
    out->held = (uint64_t)c->held;
}

void executor_free(executor *c) {
    if (!c) return;
    if (c->queue) {
        rd_kafka_queue_io_event_enable(c->queue, -1, NULL, 0);
        rd_kafka_queue_destroy(c->queue);
    }
    if (c->rk) {
        rd_kafka_consumer_close(c->rk);
        rd_kafka_destroy(c->rk);
    }
    inflight *f, *t;
    HASH_ITER(hh, c->inflight, f, t) {
        HASH_DEL(c->inflight, f);
        free(f);
    }
    for (size_t i = 0; c->numbers && i < c->cfg->commands.number_pattern_count; i++) regfree(&c->numbers[i]);
    for (size_t i = 0; c->transfers && i < c->cfg->commands.transfer_pattern_count; i++) regfree(&c->transfers[i]);
    free(c->numbers);
    free(c->transfers);
    journal_close(c->journal);
    for (int i = 0; i < 2; i++)
        if (c->wake[i] >= 0) close(c->wake[i]);
    free(c);
}
