/* timers.c -- the simulation's pending steps in one binary heap (see timers.h). */
#include "timers.h"

#include <stdlib.h>

static timer **heap;
static int len, cap;

static void swap(int i, int j) {
    timer *t = heap[i];
    heap[i] = heap[j];
    heap[j] = t;
    heap[i]->idx = i;
    heap[j]->idx = j;
}

static void up(int i) {
    while (i > 0 && heap[(i - 1) / 2]->due > heap[i]->due) {
        swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void down(int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < len && heap[l]->due < heap[m]->due) m = l;
        if (r < len && heap[r]->due < heap[m]->due) m = r;
        if (m == i) return;
        swap(i, m);
        i = m;
    }
}

void timer_disarm(timer *t) {
    int i = t->idx;
    if (i < 0) return;
    len--;
    if (i != len) {
        heap[i] = heap[len];
        heap[i]->idx = i;
        down(i);
        up(i);
    }
    t->idx = -1;
}

void timer_arm(timer *t, double due) {
    timer_disarm(t);
    if (len == cap) {
        cap = cap ? cap * 2 : 256;
        heap = realloc(heap, (size_t)cap * sizeof(*heap));
        if (!heap) abort();
    }
    t->due = due;
    t->idx = len;
    heap[len++] = t;
    up(t->idx);
}

int timer_armed(const timer *t) {
    return t->idx >= 0;
}

timer *timers_first(void) {
    return len ? heap[0] : NULL;
}

void timers_fire_first(void) {
    timer *t = heap[0];
    double due = t->due;
    timer_disarm(t);
    t->fire(t, due);
}

void timers_free(void) {
    free(heap);
    heap = NULL;
    len = cap = 0;
}
