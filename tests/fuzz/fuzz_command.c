/* fuzz_command.c -- libFuzzer target for the command decoder and checks.
 * fuzz-needs: agent
 *
 * Invariants: never crashes; a decoded command has a known kind, a non-empty
 * id, an expiry, and no control character in any field that reaches AMI;
 * no variable value can add an assignment or call a function in Asterisk. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "command_decode.h"

static void no_controls(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    command c;
    char reason[256];
    if (command_decode((const char *)data, size, &c, reason, sizeof(reason)) < 0) {
        if (!reason[0]) abort(); /* every refusal says why */
        return 0;
    }
    if (c.kind >= CMD_KINDS || !c.id[0] || c.expires < 0) abort();
    const char *fields[] = {c.id, c.sender, c.operator_id, c.supervisor_id, c.call_id, c.number,
                            c.context, c.queue, c.reason, c.to};
    for (size_t i = 0; i < sizeof(fields) / sizeof(*fields); i++) no_controls(fields[i]);
    for (size_t i = 0; i < c.nvars; i++) {
        no_controls(c.var_names[i]);
        no_controls(c.var_values[i]);
        if (strpbrk(c.var_values[i], ",\"\\()|")) abort();
    }
    return 0;
}
