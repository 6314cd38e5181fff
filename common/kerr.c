/* kerr: the Kafka error table (common/kerr_list.h) and its lookups. */
#include "common/kerr.h"

#include <stdio.h>

static const struct kerr_info table[] = {
#define KERR(code, name, retriable, message) {(code), #name, (retriable), (message)},
#include "common/kerr_list.h"
#undef KERR
};

#define TABLE_LEN (sizeof(table) / sizeof(table[0]))

/* The list is dense from -1 (UNKNOWN_SERVER_ERROR) up: the entry for code c
 * sits at c + 1 (checked by test_kerr for every entry). */
const struct kerr_info *kerr_lookup(int16_t code)
{
    long i = (long)code + 1;
    if (i < 0 || (size_t)i >= TABLE_LEN || table[i].code != code)
        return NULL;
    return &table[i];
}

const char *kerr_name(int16_t code)
{
    const struct kerr_info *e = kerr_lookup(code);
    return e ? e->name : "UNKNOWN_ERROR_CODE";
}

const char *kerr_message(int16_t code)
{
    const struct kerr_info *e = kerr_lookup(code);
    return e ? e->message : "An error code this broker does not know.";
}

bool kerr_retriable(int16_t code)
{
    const struct kerr_info *e = kerr_lookup(code);
    return e && e->retriable;
}

const char *kerr_describe(int16_t code, char *buf, size_t len)
{
    if (len > 0)
        snprintf(buf, len, "%s (%d)", kerr_name(code), (int)code);
    return buf;
}
