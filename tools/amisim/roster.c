/* roster.c -- the call centre's queues and operators, made from --queues,
 * --operators and --no-answer, and found by name or DID. */
#include "roster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amisim.h"
#include "log.h"
#include "sim.h"

operator_ *ops;
int nops;
queue queues[MAX_QUEUES];
int nqueues;

/* "support,sales:dynamic": a queue marked dynamic starts without members
 * (QueueAdd fills it); the others have every operator as a static member. */
static int parse_queues(void) {
    const char *p = cfg.queues;
    while (*p && nqueues < MAX_QUEUES) {
        size_t len = strcspn(p, ",");
        const char *colon = memchr(p, ':', len);
        size_t nlen = colon ? (size_t)(colon - p) : len;
        if (nlen == 0 || nlen >= sizeof(queues[0].name)) return -1;
        queue *q = &queues[nqueues];
        memcpy(q->name, p, nlen);
        q->name[nlen] = '\0';
        q->dynamic_only = colon && strncmp(colon + 1, "dynamic", len - nlen - 1) == 0;
        /* DID 800 -> first queue, 802 -> second, as in the lab's dialplan. */
        snprintf(q->did, sizeof(q->did), "%d", 800 + 2 * nqueues);
        nqueues++;
        p += len;
        if (*p == ',') p++;
    }
    return nqueues ? 0 : -1;
}

static void make_operators(void) {
    ops = calloc((size_t)cfg.operators, sizeof(*ops));
    if (!ops) abort();
    nops = cfg.operators;
    for (int i = 0; i < nops; i++) {
        operator_ *op = &ops[i];
        op->num = 101 + i;
        snprintf(op->name, sizeof(op->name), "op%d", op->num);
        snprintf(op->member, sizeof(op->member), "Operator %d", op->num);
        snprintf(op->iface, sizeof(op->iface), "Local/%s@phones", op->name);
        op->login_time = (long)boot_time;
    }
}

/* --no-answer op198,op199: those operators never pick their phone up. */
static int mark_no_answer(void) {
    const char *p = cfg.no_answer;
    while (p && *p) {
        size_t len = strcspn(p, ",");
        char name[sizeof(ops[0].name)];
        if (len >= sizeof(name)) return -1;
        memcpy(name, p, len);
        name[len] = '\0';
        operator_ *op = operator_by_name(name);
        if (!op) return -1;
        op->no_answer = 1;
        p += len + (p[len] == ',');
    }
    return 0;
}

int roster_init(void) {
    if (parse_queues() < 0 || cfg.operators < 1) {
        log_error("--queues needs NAME[,NAME[:dynamic]] and --operators >= 1");
        return -1;
    }
    make_operators();
    if (mark_no_answer() < 0) {
        log_error("--no-answer needs operator names among op101..op%d", 100 + nops);
        return -1;
    }
    return 0;
}

operator_ *operator_by_name(const char *name) {
    for (int i = 0; i < nops; i++)
        if (strcmp(ops[i].name, name) == 0) return &ops[i];
    return NULL;
}

queue *queue_by_name(const char *name) {
    for (int i = 0; i < nqueues; i++)
        if (strcmp(queues[i].name, name) == 0) return &queues[i];
    return NULL;
}

queue *queue_by_did(const char *did) {
    for (int i = 0; i < nqueues; i++)
        if (strcmp(queues[i].did, did) == 0) return &queues[i];
    return NULL;
}

void roster_free(void) {
    free(ops);
    ops = NULL;
}
