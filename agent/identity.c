/* identity.c -- interface/channel -> operator id (see identity.h).
 *
 * Kept apart from the call model because the gateway and the command
 * executor need the same rule: an operator must be the same id whether we
 * learnt it from a queue event, a channel name or agent.conf. */
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <uthash.h>
#include "alloc.h"
#include "identity.h"

typedef struct id_entry {
    char *interface;
    char *operator_id;
    char *name;
    UT_hash_handle hh;
} id_entry;

struct identity_map {
    id_entry *entries;
};

identity_map *identity_map_new(void) {
    return xcalloc(1, sizeof(identity_map));
}

static void entry_free(id_entry *e) {
    free(e->interface);
    free(e->operator_id);
    free(e->name);
    free(e);
}

int identity_map_add(identity_map *map, const char *interface, const char *operator_id, const char *name) {
    if (!map || !interface || !*interface || !operator_id || !*operator_id) return -1;
    id_entry *e = xcalloc(1, sizeof(*e));
    e->interface = xstrdup(interface);
    e->operator_id = xstrdup(operator_id);
    e->name = name ? xstrdup(name) : NULL;
    id_entry *old = NULL;
    HASH_FIND_STR(map->entries, interface, old);
    if (old) {
        HASH_DEL(map->entries, old);
        entry_free(old);
    }
    HASH_ADD_KEYPTR(hh, map->entries, e->interface, strlen(e->interface), e);
    return 0;
}

void identity_map_free(identity_map *map) {
    if (!map) return;
    id_entry *e, *tmp;
    HASH_ITER(hh, map->entries, e, tmp) {
        HASH_DEL(map->entries, e);
        entry_free(e);
    }
    free(map);
}

static const id_entry *map_find(const identity_map *map, const char *interface) {
    if (!map || !interface) return NULL;
    id_entry *e = NULL;
    HASH_FIND_STR(map->entries, interface, e);
    return e;
}

int identity_map_has(const identity_map *map, const char *interface) {
    return map_find(map, interface) != NULL;
}

const char *identity_map_name(const identity_map *map, const char *interface) {
    const id_entry *e = map_find(map, interface);
    return e ? e->name : NULL;
}

/* The default rule: resource part of the interface, after the technology's
 * '/' and before any '@' (Local channels carry a context after '@'). */
char *identity_operator_of_interface(const identity_map *map, const char *interface) {
    if (!interface || !*interface) return NULL;
    const id_entry *e = map_find(map, interface);
    if (e) return xstrdup(e->operator_id);
    const char *start = strchr(interface, '/');
    start = start ? start + 1 : interface;
    size_t len = strcspn(start, "@/");
    if (len == 0) return xstrdup(interface);
    return xstrndup(start, len);
}

/* Asterisk names channels "<interface>-<8 hex digits>" and Local channels
 * add ";1"/";2" for their two halves: strip both. */
char *identity_interface_of_channel(const char *channel) {
    if (!channel || !*channel) return NULL;
    size_t len = strlen(channel);
    const char *semi = strrchr(channel, ';');
    if (semi && semi[1] && strspn(semi + 1, "0123456789") == strlen(semi + 1))
        len = (size_t)(semi - channel);
    const char *dash = NULL;
    for (const char *p = channel; p < channel + len; p++)
        if (*p == '-') dash = p;
    if (dash && dash + 1 < channel + len) {
        const char *p = dash + 1;
        while (p < channel + len && isxdigit((unsigned char)*p)) p++;
        if (p == channel + len) len = (size_t)(dash - channel);
    }
    return xstrndup(channel, len);
}
