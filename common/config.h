/* config: a typed configuration registry with Kafka's conventions.
 *
 * Each program declares its keys once, as a static array of config_def (name,
 * type, default, bounds or choices, optional validator, one-line doc). Values
 * arrive as strings from a properties file, from `--override key=value`, or from
 * code; each is parsed and validated when set. A bad value is an error whose
 * message names the key, the value and what was expected, e.g.
 *
 *   invalid value 'abc' for 'log.segment.bytes': expected an integer in [14, 2147483647]
 *
 * Unknown keys are not errors: config_load_file() warns about them (log_warn),
 * as Kafka does. Lookups by a name that was never declared are programmer errors
 * (assert). Not thread-safe; configure before starting threads. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum config_type {
    CONFIG_BOOL,   /* "true" / "false" (case-insensitive) */
    CONFIG_INT,    /* int64 in [min, max]; decimal, optional sign */
    CONFIG_DOUBLE, /* finite double in [dmin, dmax] */
    CONFIG_STRING, /* any string, or one of choices[] when choices is set */
    CONFIG_LIST,   /* comma-separated strings, items trimmed, empty list allowed */
};

/* Where the current value came from (DescribeConfigs reports this). */
enum config_source {
    CONFIG_SOURCE_DEFAULT = 0,
    CONFIG_SOURCE_FILE,
    CONFIG_SOURCE_OVERRIDE, /* --override on the command line */
    CONFIG_SOURCE_DYNAMIC,  /* set at run time by code */
};

struct config_def;

/* Extra check after type parsing. Return 0, or -EINVAL with a message saying what
 * was expected (e.g. "a host:port") in @err; the registry prefixes key and value. */
typedef int (*config_validate_fn)(const struct config_def *def, const char *value, char *err,
                                  size_t errlen);

struct config_def {
    const char *name;
    enum config_type type;
    const char *default_value;   /* as it would appear in a file; NULL = no value (null) */
    int64_t min, max;            /* CONFIG_INT; both 0 means no bounds */
    double dmin, dmax;           /* CONFIG_DOUBLE; both 0 means no bounds */
    const char *const *choices;  /* CONFIG_STRING; NULL-terminated, NULL = any */
    config_validate_fn validate; /* optional */
    const char *doc;             /* one line */
};

struct config;

/* Builds a registry over @defs (borrowed; must outlive it) with every default
 * applied. Duplicate names or a default that fails its own validation are
 * programmer errors (assert). */
int config_new(const struct config_def *defs, size_t ndefs, struct config **ret);
void config_free(struct config *c);
/* A copy of @c: the same (borrowed) defs, every value and its source. -ENOMEM. */
int config_clone(const struct config *c, struct config **ret);

/* Set one key from a string. -ENOENT for an undeclared key (the message says
 * "unknown configuration key '...'"), -EINVAL for a bad value. */
int config_set(struct config *c, const char *key, const char *value, enum config_source src,
               char *err, size_t errlen);
/* Parse and validate @value for @def exactly as config_set() would, without
 * storing it: 0, -EINVAL with the same message, -ENOMEM. */
int config_check_value(const struct config_def *def, const char *value, char *err, size_t errlen);
/* Load a properties file: every key is set with CONFIG_SOURCE_FILE; unknown keys
 * are warned about and skipped; the first bad value fails the load (-EINVAL). */
int config_load_file(struct config *c, const char *path, char *err, size_t errlen);
/* Apply "key=value" as CONFIG_SOURCE_OVERRIDE. An unknown key is an error here
 * (a typo on the command line should not be silent). */
int config_apply_override(struct config *c, const char *assignment, char *err, size_t errlen);
/* Parse a program's command line: `--config FILE` (or `-c FILE`), any number of
 * `--override key=value` (also `--override=key=value`); the file is loaded first,
 * then overrides in order. -EINVAL for anything else, with a message. */
int config_parse_args(struct config *c, int argc, char **argv, char *err, size_t errlen);

bool config_get_bool(const struct config *c, const char *key);
int64_t config_get_int(const struct config *c, const char *key);
double config_get_double(const struct config *c, const char *key);
/* NULL when the value is null. Borrowed; valid until the key is set again. */
const char *config_get_string(const struct config *c, const char *key);
/* Borrowed array of items; *ret_count set. */
const char *const *config_get_list(const struct config *c, const char *key, size_t *ret_count);
/* The value as a string, as DescribeConfigs shows it (NULL for null). */
const char *config_get_raw(const struct config *c, const char *key);
enum config_source config_get_source(const struct config *c, const char *key);
/* True when the key was set from a file, an override or code. */
bool config_is_set(const struct config *c, const char *key);
const struct config_def *config_find_def(const struct config *c, const char *key);

/* Visit every declared key in declaration order. */
typedef void (*config_visit_fn)(void *userdata, const struct config_def *def, const char *value,
                                enum config_source src);
void config_foreach(const struct config *c, config_visit_fn fn, void *userdata);
