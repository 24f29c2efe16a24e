/* fuzz_lease.c -- libFuzzer target for the standby's lease reader
 * (agent/leader.c lease_parse: whatever anyone wrote to the leases topic).
 * fuzz-needs: agent
 * fuzz-max-len: 1024
 *
 * Invariants: no crash, leak or UB; a lease it accepts has a non-empty
 * instance that fits, a time that is a real one, and released 0 or 1. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "leader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lease l;
    if (lease_parse(data, size, &l) < 0) return 0;
    size_t n = strnlen(l.instance, sizeof(l.instance));
    if (n == 0 || n == sizeof(l.instance) || l.time < 0 || (l.released != 0 && l.released != 1)) abort();
    return 0;
}
