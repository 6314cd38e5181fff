/* effconfig: static and dynamic broker configuration, layered. */
#include "broker/effconfig.h"

#include <errno.h>
#include <stddef.h>

#include "common/config.h"
#include "common/log.h"
#include "common/meta/state.h"

const char *effconfig_at(const struct cstate *s, const struct config *c, int32_t broker_id,
                         const char *name, enum effconfig_source level, bool *ret_present)
{
    const char *v = NULL;
    bool present = false;
    switch (level) {
    case EFFCONFIG_DYNAMIC_BROKER:
        v = s ? cstate_broker_config(s, broker_id, name) : NULL;
        present = v != NULL;
        break;
    case EFFCONFIG_DYNAMIC_DEFAULT:
        v = s ? cstate_broker_config(s, CSTATE_CLUSTER_DEFAULT, name) : NULL;
        present = v != NULL;
        break;
    case EFFCONFIG_STATIC:
        present = c && config_find_def(c, name) && config_is_set(c, name);
        v = present ? config_get_raw(c, name) : NULL;
        break;
    case EFFCONFIG_DEFAULT:
        present = c && config_find_def(c, name);
        v = present ? config_find_def(c, name)->default_value : NULL;
        break;
    }
    *ret_present = present;
    return v;
}

const char *effconfig_get(const struct cstate *s, const struct config *c, int32_t broker_id,
                          const char *name, enum effconfig_source *ret_source)
{
    static const enum effconfig_source order[] = {EFFCONFIG_DYNAMIC_BROKER,
                                                  EFFCONFIG_DYNAMIC_DEFAULT, EFFCONFIG_STATIC};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        bool present;
        const char *v = effconfig_at(s, c, broker_id, name, order[i], &present);
        if (present) {
            *ret_source = order[i];
            return v;
        }
    }
    bool present;
    *ret_source = EFFCONFIG_DEFAULT;
    return effconfig_at(s, c, broker_id, name, EFFCONFIG_DEFAULT, &present);
}

bool effconfig_has_dynamic(const struct cstate *s, int32_t broker_id)
{
    for (size_t i = 0; i < s->n_broker_configs; i++) {
        int32_t id = s->broker_configs[i].broker_id;
        if (id == CSTATE_CLUSTER_DEFAULT || id == broker_id)
            return true;
    }
    return false;
}

/* Layer the entries of one scope; the per-broker scope goes last so it wins. */
static void layer(const struct cstate *s, struct config *c, int32_t scope)
{
    for (size_t i = 0; i < s->n_broker_configs; i++) {
        const struct cstate_broker_config *bc = &s->broker_configs[i];
        if (bc->broker_id != scope || !config_find_def(c, bc->name))
            continue;
        char err[256];
        if (config_set(c, bc->name, bc->value, CONFIG_SOURCE_DYNAMIC, err, sizeof(err)) < 0)
            log_debug("effconfig", "skipping dynamic %s: %s", bc->name, err);
    }
}

int effconfig_build(const struct cstate *s, const struct config *c, int32_t broker_id,
                    struct config **ret)
{
    struct config *n;
    int r = config_clone(c, &n);
    if (r < 0)
        return r;
    layer(s, n, CSTATE_CLUSTER_DEFAULT);
    layer(s, n, broker_id);
    *ret = n;
    return 0;
}
