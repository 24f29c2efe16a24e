/* reaper.c -- deletes files on a thread of its own (see reaper.h). */
#include "reaper.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"

typedef struct doomed {
    struct doomed *next;
    char path[];
} doomed;

struct reaper {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work;      /* something queued, or stop */
    pthread_cond_t idle;      /* the queue ran empty */
    doomed *head, **tail;
    int busy;                 /* the thread holds a path it took off the queue */
    int stop;
};

static void *run(void *arg) {
    reaper *r = arg;
    pthread_mutex_lock(&r->lock);
    for (;;) {
        while (!r->head && !r->stop) pthread_cond_wait(&r->work, &r->lock);
        if (!r->head) break;
        doomed *d = r->head;
        r->head = d->next;
        if (!r->head) r->tail = &r->head;
        r->busy = 1;
        pthread_mutex_unlock(&r->lock);
        unlink(d->path);
        free(d);
        pthread_mutex_lock(&r->lock);
        r->busy = 0;
        if (!r->head) pthread_cond_broadcast(&r->idle);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

reaper *reaper_new(void) {
    reaper *r = xcalloc(1, sizeof(*r));
    r->tail = &r->head;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->work, NULL);
    pthread_cond_init(&r->idle, NULL);
    if (pthread_create(&r->thread, NULL, run, r) != 0) {
        pthread_cond_destroy(&r->idle);
        pthread_cond_destroy(&r->work);
        pthread_mutex_destroy(&r->lock);
        free(r);
        return NULL;
    }
    return r;
}

void reaper_unlink(reaper *r, const char *path) {
    if (!r) {
        unlink(path);
        return;
    }
    size_t n = strlen(path) + 1;
    doomed *d = xmalloc(sizeof(*d) + n);
    memcpy(d->path, path, n);
    d->next = NULL;
    pthread_mutex_lock(&r->lock);
    *r->tail = d;
    r->tail = &d->next;
    pthread_cond_signal(&r->work);
    pthread_mutex_unlock(&r->lock);
}

void reaper_wait(reaper *r) {
    if (!r) return;
    pthread_mutex_lock(&r->lock);
    while (r->head || r->busy) pthread_cond_wait(&r->idle, &r->lock);
    pthread_mutex_unlock(&r->lock);
}

void reaper_free(reaper *r) {
    if (!r) return;
    pthread_mutex_lock(&r->lock);
    r->stop = 1;
    pthread_cond_signal(&r->work);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->idle);
    pthread_cond_destroy(&r->work);
    pthread_mutex_destroy(&r->lock);
    free(r);
}
