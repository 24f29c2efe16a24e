/* identity.h -- who is the operator behind an interface or a channel.
 *
 * Operators are identified by an id. By default the id is the resource of
 * the queue member's interface ("PJSIP/op101" -> "op101",
 * "Local/op101@phones" -> "op101"); agent.conf may map interfaces to ids
 * explicitly, and the explicit map wins. Channels are mapped back to the
 * interface they were made from by dropping Asterisk's per-channel suffix. */
#ifndef CALLBUS_IDENTITY_H
#define CALLBUS_IDENTITY_H

typedef struct identity_map identity_map;

identity_map *identity_map_new(void);
/* Map interface to operator_id (name may be NULL). Returns 0, or -1 on a
 * missing argument or out of memory. A later add for the same interface
 * replaces the earlier one. */
int identity_map_add(identity_map *map, const char *interface, const char *operator_id, const char *name);
void identity_map_free(identity_map *map);
/* 1 when interface is in the explicit map. */
int identity_map_has(const identity_map *map, const char *interface);
/* Display name given in the map for interface, or NULL. */
const char *identity_map_name(const identity_map *map, const char *interface);
/* Operator id of an interface: the explicit map (map may be NULL), else the
 * default rule. malloc'd, or NULL when interface is NULL or empty. */
char *identity_operator_of_interface(const identity_map *map, const char *interface);
/* Interface a channel was made from: "Local/op101@phones-00000001;1" ->
 * "Local/op101@phones", "PJSIP/1001-0000002a" -> "PJSIP/1001". malloc'd,
 * or NULL when channel is NULL or empty. */
char *identity_interface_of_channel(const char *channel);

#endif
