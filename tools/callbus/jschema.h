/* jschema.h -- a JSON Schema (2020-12) validator for callbus messages.
 *
 * Implements the keywords the schemas in schemas/ use, and refuses to load a
 * schema with any other keyword: a validator that silently ignored, say,
 * unevaluatedProperties would pass messages it should fail. Patterns are
 * ECMA-262 regexes run with PCRE2 ($ matches only at the very end). */
#ifndef CALLBUS_JSCHEMA_H
#define CALLBUS_JSCHEMA_H

#include <jansson.h>
#include <stddef.h>

typedef struct jschema_set jschema_set;

/* One violation: the JSON pointer of the failing place in the message and
 * a reason for people. */
typedef void (*jschema_report_fn)(void *ud, const char *pointer, const char *reason);

/* Loads every *.schema.json of dir, checks each is made only of implemented
 * keywords, that every $ref resolves and every pattern compiles. NULL with a
 * message in err otherwise. */
jschema_set *jschema_load_dir(const char *dir, char *err, size_t errlen);
void jschema_free(jschema_set *s);
size_t jschema_type_count(const jschema_set *s);

/* Validates one message: the schema is picked by its CloudEvent `type`
 * (schemas/<type>.schema.json), then the id is checked against `epoch`,
 * `seq` and the site in `source`. Returns the number of violations, each
 * also passed to report (may be NULL). */
int jschema_validate_message(const jschema_set *s, json_t *msg, jschema_report_fn report, void *ud);

/* Validates instance against the schema in file <name>.schema.json. -1 if
 * there is no such schema. */
int jschema_validate(const jschema_set *s, const char *name, json_t *instance, jschema_report_fn report,
                     void *ud);

/* RFC 3339 date-time with a real calendar date (the `format: date-time`
 * check); 1 when valid. */
int jschema_is_datetime(const char *s);

#endif
