/* causes.h -- Asterisk's hangup cause texts, as ast_cause2str() gives them
 * in Hangup's Cause-txt. The agent names the cause of an ended call with
 * them and amisim writes them into its Hangup events: one table for both. */
#ifndef CALLBUS_CAUSES_H
#define CALLBUS_CAUSES_H

/* The text of a Q.850 cause; "Unknown" for 0 and any cause not listed. */
const char *cause_text(int cause);

#endif
