/* causes.c -- hangup cause texts (see causes.h). The captures show
 * "Normal Clearing", "User busy", "Call Rejected" and "Unknown"; the other
 * texts follow the same table in Asterisk's main/channel.c. */
#include "causes.h"

const char *cause_text(int cause) {
    switch (cause) {
    case 1: return "Unallocated (unassigned) number";
    case 16: return "Normal Clearing";
    case 17: return "User busy";
    case 18: return "No user responding";
    case 19: return "User alerting, no answer";
    case 21: return "Call Rejected";
    case 27: return "Destination out of order";
    case 28: return "Invalid number format";
    case 31: return "Normal, unspecified";
    case 34: return "Circuit/channel congestion";
    case 38: return "Network out of order";
    case 127: return "Interworking, unspecified";
    default: return "Unknown";
    }
}
