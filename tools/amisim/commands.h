/* commands.h -- the actions a call-centre client sends to change calls and
 * queues (Originate, Hangup, Redirect, QueueAdd/Remove/Pause/Penalty) and to
 * read state (Status, Getvar/Setvar, CoreSettings, CoreStatus, Command). */
#ifndef AMISIM_COMMANDS_H
#define AMISIM_COMMANDS_H

void commands_register(void);
void commands_free(void);

#endif
