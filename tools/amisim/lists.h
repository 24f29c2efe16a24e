/* lists.h -- the list actions that read the call centre's live state:
 * CoreShowChannels, QueueStatus and QueueSummary (see lists.c). */
#ifndef AMISIM_LISTS_H
#define AMISIM_LISTS_H

void lists_register(void);

#endif
