/* session.h -- Login, Logoff, Ping and Events (see session.c). */
#ifndef AMISIM_SESSION_H
#define AMISIM_SESSION_H

void session_register(void);

#endif
