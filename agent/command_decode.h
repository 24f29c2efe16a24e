/* command_decode.h -- a command from the commands topic, decoded and checked.
 *
 * Everything that comes from Kafka is untrusted: the decoder accepts only
 * the known command types and fields, with values that cannot break an AMI
 * action (no control characters, bounded lengths, restricted alphabets for
 * ids). Site policy (which contexts and numbers) is checked by the executor. */
#ifndef CALLBUS_COMMAND_DECODE_H
#define CALLBUS_COMMAND_DECODE_H

#include <stddef.h>

typedef enum command_kind {
    CMD_ORIGINATE,
    CMD_ANSWER,
    CMD_HANGUP,
    CMD_TRANSFER,
    CMD_PAUSE,
    CMD_UNPAUSE,
    CMD_QUEUE_LOGIN,
    CMD_QUEUE_LOGOUT,
    CMD_LISTEN,
    CMD_WHISPER,
    CMD_KINDS
} command_kind;

#define CMD_MAX_VARS 16

typedef struct command {
    command_kind kind;
    char id[160];
    char type[48];          /* "callbus.command.originate" */
    char sender[128];
    double time, expires;
    char operator_id[64];
    char supervisor_id[64];
    char call_id[128];
    char number[40];
    char context[80];
    char queue[80];
    char reason[128];
    char to[40];
    char transfer_kind[16];
    int penalty, has_penalty;
    size_t nvars;
    char var_names[CMD_MAX_VARS][64];
    char var_values[CMD_MAX_VARS][256];
} command;

/* Decodes one message value. Returns 0, or -1 with a reason a person can act
 * on; cmd->id, cmd->type and cmd->sender are filled as far as they could be
 * read, so even a rejection can name the command. */
int command_decode(const char *json, size_t len, command *cmd, char *reason, size_t rlen);
const char *command_kind_name(command_kind k);

#endif
