/* callcenter.c -- the simulated call centre (see callcenter.h): its calls
 * and the turn it takes in the event loop to run their steps.
 *
 * The simulated clock (simclock.c) starts at --start-at in the site's time
 * zone, or at the wall clock's now. Every pending step is a timer
 * (timers.h): a call's next step (inbound.c, c2c.c), the next arrival
 * (arrivals.c), an operator's next move in the working day (day.c). */
#include "callcenter.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "amisim.h"
#include "arrivals.h"
#include "day.h"
#include "log.h"
#include "roster.h"
#include "server.h"
#include "sim.h"
#include "simclock.h"
#include "siteclock.h"
#include "stats.h"
#include "truth.h"

static int enabled;
call *live;

int callcenter_enabled(void) {
    return enabled;
}

/* ---- a call's timer ---- */

static void call_fire(timer *t, double now) {
    inbound_timer((call *)((char *)t - offsetof(call, tm)), now);
}

void timer_set(call *c, double due) {
    timer_arm(&c->tm, due);
}

void timer_cancel(call *c) {
    timer_disarm(&c->tm);
}

/* ---- channels ---- */

void call_unlink(call *k) {
    spy_detach(k);
    if (k->prev) k->prev->next = k->next; else live = k->next;
    if (k->next) k->next->prev = k->prev;
    timer_cancel(k);
    free(k);
}

static void call_link(call *k) {
    k->next = live;
    if (live) live->prev = k;
    live = k;
}

call *call_new(int kind) {
    static long next_id = 1000000;
    call *k = calloc(1, sizeof(*k));
    if (!k) abort();
    k->kind = kind;
    k->id = ++next_id;
    k->tm = TIMER_INIT(call_fire);
    call_link(k);
    return k;
}

/* ---- driving ---- */

/* The simulated clock starts on a whole second (--start-at's, or the wall
 * clock's next one): Asterisk counts waits in whole seconds of time(NULL),
 * so where a run starts within a second would change its course, and a
 * --seed would not give the same calls every run. */
static void start_clock(double now) {
    double origin_real = cfg.start_at ? now : ceil(now);
    double origin_sim = siteclock_origin(origin_real);
    simclock_start(origin_real, origin_sim);
    set_ev_ts(origin_sim);
    truth_start(origin_sim);
    arrivals_start(origin_sim);
    for (int i = 0; i < nops; i++) ops[i].login_time = (long)origin_sim;
    for (int i = 0; i < nqueues; i++)
        for (int j = 0; j < queues[i].nm; j++)
            if (!queues[i].m[j].dynamic) queues[i].m[j].login_time = (long)origin_sim;
    day_start(origin_sim);
}

/* A --calls run or a --day is over once nothing more can happen: amisim
 * ends -- at once with --exit-after, else after --linger seconds, during
 * which a client that reconnects can still resync (and see that every call
 * has ended). */
static double all_done_at = -1;

static int all_done(void) {
    if (!cfg.calls && !cfg.day_hours) return 0;
    return arrivals_done() && !live && day_done();
}

static void finish_now(void) {
    static int finishing;
    if (finishing) return;
    finishing = 1;
    log_info("simulate: all %ld calls done, exiting", inbound_arrived());
    int n = 0;
    for (client *c = server_clients(); c; c = c->next) {
        if (c->dead) continue;
        c->exit_when_closed = 1;
        client_finish(c);
        n++;
    }
    if (!n) server_request_exit();
}

static void maybe_finish(double now) {
    if (!all_done()) return;
    if (all_done_at < 0) {
        all_done_at = now;
        if (!cfg.exit_after && cfg.linger >= 0)
            log_info("simulate: all %ld calls done, exiting in %.0f s", inbound_arrived(), cfg.linger);
    }
    if (cfg.exit_after || (cfg.linger >= 0 && now >= all_done_at + cfg.linger)) finish_now();
}

/* With --max or a --day, nobody would see the first calls before a client
 * is there; the plain timed simulation runs from the start, like a PBX. */
static int waits_for_client(void) {
    return cfg.max || cfg.day_hours > 0;
}

/* The loop's turn: runs every step that is due (all of them with --max)
 * while the clients that receive events have room. */
static void callcenter_run(double now) {
    if (!simclock_started()) {
        if (waits_for_client() && !server_receivers()) return;
        start_clock(now);
    }
    double limit = sim_now();
    for (int steps = 0; steps < 2048; steps++) {
        if (!server_receivers_have_room() || (cfg.max && !server_receivers())) return;
        timer *t = timers_first();
        if (!t) {
            maybe_finish(now);
            return;
        }
        if (!cfg.max && t->due > limit) return;
        simclock_advance(t->due);
        if (!cfg.max) stats_sim_lag(now - simclock_real_time_of(t->due));
        step_at(t->due);
        timers_fire_first();
    }
}

/* Wall-clock time of the next step, -1 if none is pending. */
static double callcenter_next_due(double now) {
    if (!simclock_started()) return waits_for_client() ? -1 : now;
    if (!server_receivers_have_room()) return -1;
    timer *t = timers_first();
    if (!t) {
        if (all_done_at >= 0 && !cfg.exit_after && cfg.linger >= 0) return all_done_at + cfg.linger;
        return all_done() && all_done_at < 0 ? now : -1;
    }
    if (cfg.max) return server_receivers() ? now : -1;
    return simclock_real_time_of(t->due);
}

/* The stats file's "truth": the counts, and whether the run is over. */
static json_t *truth_section(void) {
    json_t *root = truth_json();
    int over = simclock_started() && arrivals_done() && !live && day_done();
    json_object_set_new(root, "over", json_boolean(over));
    return root;
}

/* The state exists in every mode so actions always get real answers; calls
 * run unless a capture is replayed (its bytes must stay its own), and
 * inbound calls arrive only with --simulate. */
int callcenter_init(void) {
    if (roster_init() < 0 || siteclock_init() < 0 || arrivals_init() < 0) return -1;
    /* Over a day operators come and go: every membership is a QueueAdd. */
    for (int i = 0; i < nqueues; i++)
        if (!queues[i].dynamic_only && !cfg.day_hours) members_add_static(&queues[i]);
    rnd_seed(cfg.seed);
    truth_init();
    if (cfg.replay_file) return 0;
    enabled = 1;
    server_add_producer(callcenter_run, callcenter_next_due);
    stats_add_section("truth", truth_section);
    if (!cfg.simulate) return 0;
    if (day_init() < 0) return -1;
    log_info("simulate: %d operators, queues %s, %.3f calls/s, talk %.0f-%.0f s, abandon %.0f%%",
             nops, cfg.queues, cfg.rate, cfg.talk_min, cfg.talk_max, cfg.abandon_pct);
    return 0;
}

void callcenter_free(void) {
    while (live) call_unlink(live);
    members_free();
    day_free();
    truth_free();
    timers_free();
    roster_free();
}
