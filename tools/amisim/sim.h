/* sim.h -- the call centre's internal model, shared by its parts.
 *
 * callcenter.c drives the clock (simclock.c), roster.c holds the queues and
 * operators the options name, arrivals.c says when inbound calls come,
 * inbound.c takes them through the queues, day.c runs the operators'
 * working day (shifts, breaks), members.c the queue membership, c2c.c the
 * calls that actions start or change (Originate, Redirect, Hangup,
 * ChanSpy), chanev.c writes the channel events they all share, commands.c
 * turns AMI actions into calls of these and truth.c counts what happened.
 * One call is one small state machine with one pending timer (timers.h). */
#ifndef AMISIM_SIM_H
#define AMISIM_SIM_H

#include <stdarg.h>

#include "events.h"
#include "timers.h"

#define RING_SECONDS 2.0           /* the lab's phones answer after Wait(2) */
#define MAX_QUEUES 16
#define MAX_ORIG_VARS 16

typedef struct call call;

typedef struct operator_ {
    int num;
    char name[16];          /* op101 */
    char member[32];        /* Operator 101 */
    char iface[48];         /* Local/op101@phones */
    call *call;             /* inbound call ringing or talking here; NULL when free */
    int other_calls;        /* click-to-call, transfer, spy legs on this phone */
    int in_call;
    long calls_taken, last_call, login_time;
    double last_offer;      /* last rung by a queue: the next offer goes to others first */
    int no_answer;          /* --no-answer: away from the desk, the phone rings on */
} operator_;

/* A queue member: an operator (or any interface QueueAdd names). */
typedef struct member {
    char iface[64], name[64], state_iface[64];
    operator_ *op;          /* NULL: an interface no simulated phone answers */
    int dynamic, penalty, paused;
    char reason[64];
    long last_pause, login_time;
} member;

typedef struct queue {
    char name[32];
    char did[16];
    call *head, *tail;      /* waiting callers, first come first served */
    int waiting;
    long completed, abandoned, holdtime, talktime;
    member *m;
    int nm, cap;
    int avail;              /* last Queue:<name>_avail state sent: 1 NOT_INUSE */
    int dynamic_only;       /* "--queues sales:dynamic": no static members */
} queue;

enum kind { K_INBOUND, K_C2C, K_SPY };

enum phase {
    /* inbound (inbound.c) */
    PH_DID_ANSWER, PH_JOIN, PH_WAITING, PH_RINGING, PH_TALKING,
    PH_RETRY,               /* nobody answered: the queue waits --retry before ringing again */
    /* click-to-call, transfers, spy (c2c.c) */
    PH_OP_RING,             /* the operator's phone rings (2 s) */
    PH_PSTN_RING,           /* the customer's number rings or is busy */
    PH_PSTN_TALK,           /* bridged; a 5552 number hangs up by itself */
    PH_UP,                  /* up until somebody hangs up: no timer */
    PH_XFER_RING,           /* a redirected caller rings the new operator */
    PH_SPY_RING,            /* the supervisor's phone rings */
    PH_SPY_SCAN,            /* ChanSpy looks for its channel every second */
    PH_XFER_TALK            /* a redirected click-to-call customer talks */
};

enum pstn { PSTN_ANSWER_HANGUP, PSTN_BUSY, PSTN_ANSWER_STAY, PSTN_NOANSWER, PSTN_INVALID };

struct call {
    long id;
    int kind;
    enum phase phase;
    queue *q;
    operator_ *op;          /* the phone ringing or talking now */
    operator_ *agent;       /* the queue member who answered (AgentComplete) */
    chan c1, c2, o1, o2;    /* trunk pair (;1 customer, ;2 in queue), operator pair */
    chan p1, p2;            /* click-to-call: the customer's PSTN pair */
    int has_trunk, has_op, has_pstn;
    chan *cust;             /* the leg an operator is bridged with: &c2 or &p1 */
    int op_other;           /* op's leg counts in other_calls, not op->call */
    double resume_due;      /* a redirected call's talk goes on until then */
    int will_abandon;
    double patience_end;    /* Originate ... Application Wait: the caller hangs up then */
    double gives_up_at;     /* the caller leaves the queue by themselves then */
    double expire;          /* the queue's maximum wait runs out then */
    int ring_fails;         /* the phone ringing now will not be picked up */
    long ring_ms;           /* how long it is rung for (AgentRingNoAnswer's RingTime) */
    double t_join, t_ring, t_answer, deadline;
    int orig_position;
    char bridge[40];
    timer tm;
    call *qprev, *qnext;
    call *prev, *next;      /* live calls, newest first */

    /* Originate */
    char actionid[128];
    char dialstring[96];    /* its Channel, named by an OriginateResponse Failure */
    char orig_app[32], orig_data[128];   /* Application, Data (ChanSpy and others) */
    char orig_channel_id[64];            /* ChannelId asked for */
    char number[40];        /* dialled customer number */
    enum pstn pstn;
    double ring_limit;      /* seconds a PSTN number may ring (Dial's 20, Timeout) */
    int nvars;
    char vars[MAX_ORIG_VARS][2][128];

    /* ChanSpy */
    char spy_prefix[96], spy_opts[16];
    int plain_app;          /* Originate of another application: just stays up */
    call *spyee_call;
    chan *spyee;
    int watchers;           /* spies on this call */
};

/* An Originate action, parsed (commands.c). */
typedef struct orig_req {
    const char *actionid, *channel, *context, *exten, *app, *data;
    const char *channel_id, *other_id;
    char cid_num[40], cid_name[64];
    double timeout;         /* seconds; 0 = not given */
    int nvars;
    char vars[MAX_ORIG_VARS][2][128];
} orig_req;

/* roster.c */
extern queue queues[MAX_QUEUES];
extern int nqueues;
extern operator_ *ops;
extern int nops;
operator_ *operator_by_name(const char *name);
queue *queue_by_name(const char *name);
queue *queue_by_did(const char *did);

/* callcenter.c */
extern call *live;
void timer_set(call *c, double due);
void timer_cancel(call *c);
call *call_new(int kind);
void call_unlink(call *k);

/* inbound.c */
/* A caller from the trunk arrives now (--simulate). */
void inbound_arrive(double now);
long inbound_arrived(void);
/* Starts an inbound call now (Originate Local/<DID>@from-trunk). */
call *inbound_start(queue *q, double now, const char *num, const char *name, const char *ticket);
void inbound_timer(call *k, double now);
void dispatch(double now);
void operator_free(operator_ *op, double now);
/* An answered inbound call's talk ends now (for the ground truth). */
void inbound_talk_over(call *k, double now);
void queue_vars(const chan *c, const queue *q);
void leave_queue(call *k);
void step_caller_hangup(call *k, double now);
void step_give_up(call *k, double now);
void step_agent_answer(call *k, double now);
void random_bridge_id(char out[40]);

/* chanev.c */
double stamp(void);
void step_at(double t);
void set_ev_ts(double t);
double get_ev_ts(void);
void chan_init(chan *c, const char *base, long seq, int half, const char *context,
               const char *exten, const char *linkedid, double now);
long next_local_seq(void);
void set_vars(chan *c, const char *campaign, const char *ticket);
void chan_event(const char *event, const char *priv, const chan *c, ...);
void dest_event(const char *event, const char *priv, const chan *c, const chan *d, ...);
void newchannel(const chan *c);
void newexten(chan *c, int priority, const char *app, const char *data);
/* --dialplan-data: the [phones] UserEvent step after the NoOp, and the
 * priority a later [phones] step then has. */
void phone_dialplan_data(chan *c);
int phone_pri(int priority);
void varset(const chan *c, const char *var, const char *value);
void varsetf(const chan *c, const char *var, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void newstate(chan *c, int state);
void set_callerid(chan *c, const char *num, const char *name);
void set_connected(chan *c, const char *num, const char *name);
void local_bridge(const chan *one, const chan *two, const char *context, const char *exten);
void device_state(const char *device, const char *state);
void hangup_request(const char *event, const chan *c, int cause);
void hangup_cause(const chan *c, int cause);
void bridge_event(const char *event, const char *bridge, int members, const chan *c);
/* first, then second, enter bridge; each then has the other as BRIDGEPEER. */
void bridge_pair(const char *bridge, chan *first, chan *second);

/* members.c */
member *member_find(queue *q, const char *iface);
int member_status(const operator_ *op);
void member_event(const char *event, const queue *q, const member *m);
void member_status_all_queues(const operator_ *op);
void members_add_static(queue *q);
member *member_add(queue *q, const char *iface, const char *name, const char *state_iface,
                   int penalty, int paused, const char *reason);
void member_remove(queue *q, member *m);
void member_set_paused(queue *q, member *m, int paused, const char *reason);
/* A member of q free to take a call: not paused, phone idle; least recent first. */
operator_ *member_free_operator(queue *q);
void members_free(void);

/* c2c.c */
void c2c_timer(call *k, double now);
/* Every channel of a call, in CoreShowChannels order; returns the count. */
int call_chans(call *k, chan **out);
/* Finds the call and channel named name (exact). */
call *find_channel(const char *name, chan **which);
/* Ends every channel of k: the pair that holds hit gets cause, the rest 16. */
void call_teardown(call *k, chan *hit, int cause);
void spy_detach(call *gone);
void originate_c2c(const orig_req *r, operator_ *op);
void originate_spy(const orig_req *r, operator_ *op);
void originate_failed(const orig_req *r);
/* Redirect of one channel; returns NULL on success, else the error text. */
const char *redirect_call(call *k, chan *ch, const char *context, const char *exten);

#endif
