/* checkpoint: strict reader and atomic writer of Kafka's offset checkpoint files
 * (recovery points and log start offsets per topic-partition). */
#include "broker/storage/checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"

/* The shortest possible entry line: "a 0 0\n". */
#define CHECKPOINT_MIN_LINE 6
/* Longest entry line: topic, two spaces, int32 and int64 digits, newline. */
#define CHECKPOINT_MAX_LINE (CHECKPOINT_TOPIC_MAX + 2 + 10 + 19 + 1)

bool checkpoint_topic_valid(const char *name, size_t len)
{
    if (len == 0 || len > CHECKPOINT_TOPIC_MAX)
        return false;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* Leading zeros only for the value 0 itself, as Kafka never writes them and a
 * canonical form keeps "one value, one spelling". */
int checkpoint_read_number(struct checkpoint_cursor *c, char term, int64_t max, int64_t *ret)
{
    const char *p = c->p;
    int64_t v = 0;
    size_t digits = 0;
    while (p < c->end && *p >= '0' && *p <= '9') {
        int d = *p - '0';
        if (v > (max - d) / 10)
            return -EBADMSG;
        v = v * 10 + d;
        digits++;
        p++;
    }
    if (digits == 0 || (digits > 1 && c->p[0] == '0'))
        return -EBADMSG;
    if (p >= c->end || *p != term)
        return -EBADMSG;
    c->p = p + 1;
    *ret = v;
    return 0;
}

void checkpoint_entries_free(struct checkpoint_entry *entries, size_t count)
{
    if (!entries)
        return;
    for (size_t i = 0; i < count; i++)
        free(entries[i].topic);
    free(entries);
}

int checkpoint_parse(const char *text, size_t len, struct checkpoint_entry **ret_entries,
                     size_t *ret_count)
{
    struct checkpoint_cursor c = {text, text + len};
    int64_t version, count;
    int r;

    r = checkpoint_read_number(&c, '\n', INT32_MAX, &version);
    if (r < 0)
        return r;
    if (version != CHECKPOINT_VERSION)
        return -EBADMSG;
    r = checkpoint_read_number(&c, '\n', CHECKPOINT_MAX_ENTRIES, &count);
    if (r < 0)
        return r;
    /* Every entry takes at least CHECKPOINT_MIN_LINE bytes: a count the rest of
     * the file cannot hold is refused before the array is allocated. */
    if ((size_t)count > (size_t)(c.end - c.p) / CHECKPOINT_MIN_LINE)
        return -EBADMSG;

    struct checkpoint_entry *entries = NULL;
    if (count > 0) {
        entries = calloc((size_t)count, sizeof(*entries));
        if (!entries)
            return -ENOMEM;
    }
    size_t n = 0;
    for (; n < (size_t)count; n++) {
        const char *sp = memchr(c.p, ' ', (size_t)(c.end - c.p));
        if (!sp || !checkpoint_topic_valid(c.p, (size_t)(sp - c.p))) {
            r = -EBADMSG;
            goto fail;
        }
        size_t tlen = (size_t)(sp - c.p);
        char *topic = malloc(tlen + 1);
        if (!topic) {
            r = -ENOMEM;
            goto fail;
        }
        memcpy(topic, c.p, tlen);
        topic[tlen] = '\0';
        entries[n].topic = topic;
        c.p = sp + 1;

        int64_t partition, offset;
        r = checkpoint_read_number(&c, ' ', INT32_MAX, &partition);
        if (r < 0)
            goto fail_cur;
        r = checkpoint_read_number(&c, '\n', INT64_MAX, &offset);
        if (r < 0)
            goto fail_cur;
        entries[n].partition = (int32_t)partition;
        entries[n].offset = offset;
    }
    if (c.p != c.end) {
        r = -EBADMSG;
        goto fail;
    }
    *ret_entries = entries;
    *ret_count = n;
    return 0;

fail_cur:
    n++; /* the current entry's topic is allocated too */
fail:
    checkpoint_entries_free(entries, n);
    return r;
}

int checkpoint_read(const char *path, struct checkpoint_entry **ret_entries, size_t *ret_count)
{
    uint8_t *data;
    size_t len;
    int r = fsutil_read_file(path, CHECKPOINT_MAX_FILE_BYTES, &data, &len);
    if (r < 0)
        return r;
    r = checkpoint_parse((const char *)data, len, ret_entries, ret_count);
    free(data);
    return r;
}

int checkpoint_format(const struct checkpoint_entry *entries, size_t count, char **ret_data,
                      size_t *ret_len)
{
    if (count > CHECKPOINT_MAX_ENTRIES)
        return -EINVAL;
    size_t cap = 32;
    for (size_t i = 0; i < count; i++) {
        const struct checkpoint_entry *e = &entries[i];
        if (!e->topic || !checkpoint_topic_valid(e->topic, strlen(e->topic)) || e->partition < 0 ||
            e->offset < 0)
            return -EINVAL;
        cap += strlen(e->topic) + 2 + 10 + 19 + 1;
    }
    _Static_assert(CHECKPOINT_MAX_LINE * (size_t)CHECKPOINT_MAX_ENTRIES < SIZE_MAX / 2,
                   "cap cannot overflow");
    char *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    size_t len = (size_t)snprintf(buf, cap, "%d\n%zu\n", CHECKPOINT_VERSION, count);
    for (size_t i = 0; i < count; i++) {
        const struct checkpoint_entry *e = &entries[i];
        len += (size_t)snprintf(buf + len, cap - len, "%s %" PRId32 " %" PRId64 "\n", e->topic,
                                e->partition, e->offset);
    }
    /* cap counted the maximum width of every field, so nothing was cut. */
    *ret_data = buf;
    *ret_len = len;
    return 0;
}

int checkpoint_write(const char *path, const struct checkpoint_entry *entries, size_t count)
{
    char *data;
    size_t len;
    int r = checkpoint_format(entries, count, &data, &len);
    if (r < 0)
        return r;
    r = fsutil_write_atomic(path, data, len);
    free(data);
    return r;
}
