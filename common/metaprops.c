/* metaprops: meta.properties and partition.metadata — reading, checking and
 * writing the files that say which cluster, node and topic data belongs to. */
#include "common/metaprops.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fsutil.h"
#include "common/props.h"

#define METAPROPS_MAX_FILE 65536

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void metaprops_id_encode(const uint8_t in[METAPROPS_UUID_LEN], char out[METAPROPS_ID_BUF])
{
    size_t o = 0, i = 0;
    for (; i + 3 <= METAPROPS_UUID_LEN; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
        out[o++] = b64url[v & 63];
    }
    /* 16 = 5 * 3 + 1: one byte left, two characters. */
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = b64url[(v >> 18) & 63];
    out[o++] = b64url[(v >> 12) & 63];
    out[o] = '\0';
}

static int b64val(char c)
{
    const char *p = c ? strchr(b64url, c) : NULL;
    return p ? (int)(p - b64url) : -1;
}

int metaprops_id_decode(const char *s, uint8_t ret[METAPROPS_UUID_LEN])
{
    if (!s || strlen(s) != METAPROPS_ID_CHARS)
        return -EINVAL;
    uint8_t out[METAPROPS_UUID_LEN];
    size_t o = 0;
    for (size_t i = 0; i < 20; i += 4) {
        int a = b64val(s[i]), b = b64val(s[i + 1]), c = b64val(s[i + 2]), d = b64val(s[i + 3]);
        if (a < 0 || b < 0 || c < 0 || d < 0)
            return -EINVAL;
        uint32_t v = ((uint32_t)a << 18) | ((uint32_t)b << 12) | ((uint32_t)c << 6) | (uint32_t)d;
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
        out[o++] = (uint8_t)v;
    }
    int a = b64val(s[20]), b = b64val(s[21]);
    /* The last character carries 2 bits of data and 4 that must be zero: an id
     * with them set would not round-trip. */
    if (a < 0 || b < 0 || (b & 15) != 0)
        return -EINVAL;
    out[o] = (uint8_t)((a << 2) | (b >> 4));
    memcpy(ret, out, sizeof(out));
    return 0;
}

bool metaprops_id_valid(const char *s)
{
    uint8_t u[METAPROPS_UUID_LEN];
    return metaprops_id_decode(s, u) == 0;
}

void metaprops_random_id(char out[METAPROPS_ID_BUF])
{
    for (;;) {
        uint8_t u[METAPROPS_UUID_LEN];
        size_t got = 0;
        while (got < sizeof(u)) {
            ssize_t n = getrandom(u + got, sizeof(u) - got, 0);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                /* Not expected on Linux >= 3.17; something rather than nothing. */
                uint64_t t = (uint64_t)clock_mono_ns() ^ ((uint64_t)getpid() << 40);
                for (; got < sizeof(u); got++, t = t * 0x9E3779B97F4A7C15ull + 1)
                    u[got] = (uint8_t)(t >> 56);
                break;
            }
            got += (size_t)n;
        }
        u[6] = (uint8_t)((u[6] & 0x0f) | 0x40); /* version 4 */
        u[8] = (uint8_t)((u[8] & 0x3f) | 0x80); /* variant 1 */
        metaprops_id_encode(u, out);
        if (out[0] != '-')
            return;
    }
}

/* ---- meta.properties ------------------------------------------------------------ */

struct mp_parse {
    struct metaprops *mp;
    bool have_version, have_cluster, have_node, have_broker;
    int32_t broker_id;
    char *err;
    size_t errlen;
};

static int parse_int32(const char *v, int32_t *ret)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < 0 || x > INT32_MAX)
        return -EINVAL;
    *ret = (int32_t)x;
    return 0;
}

static int mp_entry(void *ud, const char *key, const char *value, int line)
{
    struct mp_parse *p = ud;
    if (strcmp(key, "version") == 0) {
        int32_t v;
        if (parse_int32(value, &v) < 0 || v > 1) {
            snprintf(p->err, p->errlen, "line %d: unknown version '%s'", line, value);
            return -EINVAL;
        }
        p->mp->version = v;
        p->have_version = true;
    } else if (strcmp(key, "cluster.id") == 0) {
        if (!metaprops_id_valid(value)) {
            snprintf(p->err, p->errlen, "line %d: cluster.id '%.64s' is not a cluster id", line,
                     value);
            return -EINVAL;
        }
        snprintf(p->mp->cluster_id, sizeof(p->mp->cluster_id), "%s", value);
        p->have_cluster = true;
    } else if (strcmp(key, "node.id") == 0 || strcmp(key, "broker.id") == 0) {
        int32_t v;
        if (parse_int32(value, &v) < 0) {
            snprintf(p->err, p->errlen, "line %d: %s '%.64s' is not a node id", line, key, value);
            return -EINVAL;
        }
        if (key[0] == 'n') {
            p->mp->node_id = v;
            p->have_node = true;
        } else {
            p->broker_id = v;
            p->have_broker = true;
        }
    } else if (strcmp(key, "directory.id") == 0) {
        if (!metaprops_id_valid(value)) {
            snprintf(p->err, p->errlen, "line %d: directory.id '%.64s' is not an id", line, value);
            return -EINVAL;
        }
        snprintf(p->mp->directory_id, sizeof(p->mp->directory_id), "%s", value);
    }
    /* Other keys (Kafka may add some) are kept out of our way, not refused. */
    return 0;
}

static int join(const char *dir, const char *name, char *buf, size_t len)
{
    if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len)
        return -ENAMETOOLONG;
    return 0;
}

int metaprops_read(const char *dir, struct metaprops *ret, char *err, size_t errlen)
{
    char path[4096], scratch[256];
    if (!err || errlen == 0) {
        err = scratch;
        errlen = sizeof(scratch);
    }
    err[0] = '\0';
    int r = join(dir, METAPROPS_FILE, path, sizeof(path));
    if (r < 0)
        return r;
    uint8_t *data = NULL;
    size_t len = 0;
    r = fsutil_read_file(path, METAPROPS_MAX_FILE, &data, &len);
    if (r < 0) {
        if (r != -ENOENT)
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(-r));
        return r;
    }
    struct metaprops mp = {.version = -1, .node_id = -1};
    struct mp_parse p = {.mp = &mp, .broker_id = -1, .err = err, .errlen = errlen};
    char perr[256] = "";
    r = props_parse((const char *)data, len, mp_entry, &p, perr, sizeof(perr));
    free(data);
    if (r < 0) {
        if (perr[0])
            snprintf(err, errlen, "%s", perr);
        return -EINVAL;
    }
    if (!p.have_version) {
        snprintf(err, errlen, "no version");
        return -EINVAL;
    }
    if (!p.have_cluster) {
        snprintf(err, errlen, "no cluster.id");
        return -EINVAL;
    }
    if (p.have_node && p.have_broker && mp.node_id != p.broker_id) {
        snprintf(err, errlen, "node.id %" PRId32 " and broker.id %" PRId32 " disagree", mp.node_id,
                 p.broker_id);
        return -EINVAL;
    }
    if (!p.have_node)
        mp.node_id = p.broker_id;
    if (mp.node_id < 0) {
        snprintf(err, errlen, "no %s", mp.version == 0 ? "broker.id" : "node.id");
        return -EINVAL;
    }
    *ret = mp;
    return 0;
}

int metaprops_write(const char *dir, const struct metaprops *mp)
{
    if (!metaprops_id_valid(mp->cluster_id) || mp->node_id < 0 ||
        (mp->directory_id[0] && !metaprops_id_valid(mp->directory_id)))
        return -EINVAL;
    char path[4096];
    int r = join(dir, METAPROPS_FILE, path, sizeof(path));
    if (r < 0)
        return r;
    char text[512];
    int n = snprintf(text, sizeof(text),
                     "#\n# Written by Weir: this directory belongs to this cluster and node.\n"
                     "# Do not edit; see docs/operations.md.\n"
                     "version=1\ncluster.id=%s\nnode.id=%" PRId32 "\n",
                     mp->cluster_id, mp->node_id);
    if (mp->directory_id[0])
        n += snprintf(text + n, sizeof(text) - (size_t)n, "directory.id=%s\n", mp->directory_id);
    return fsutil_write_atomic(path, text, (size_t)n);
}

/* ---- partition.metadata ---------------------------------------------------------- */

struct part_parse {
    bool have_version, have_id;
    uint8_t id[METAPROPS_UUID_LEN];
};

static int part_entry(void *ud, const char *key, const char *value, int line)
{
    (void)line;
    struct part_parse *p = ud;
    if (strcmp(key, "version") == 0) {
        if (strcmp(value, "0") != 0)
            return -EINVAL;
        p->have_version = true;
    } else if (strcmp(key, "topic_id") == 0) {
        if (metaprops_id_decode(value, p->id) < 0)
            return -EINVAL;
        p->have_id = true;
    }
    return 0;
}

int metaprops_part_read(const char *log_dir, uint8_t ret_topic_id[METAPROPS_UUID_LEN])
{
    char path[4096];
    int r = join(log_dir, METAPROPS_PART_FILE, path, sizeof(path));
    if (r < 0)
        return r;
    uint8_t *data = NULL;
    size_t len = 0;
    r = fsutil_read_file(path, METAPROPS_MAX_FILE, &data, &len);
    if (r < 0)
        return r;
    struct part_parse p = {0};
    r = props_parse((const char *)data, len, part_entry, &p, NULL, 0);
    free(data);
    if (r < 0 || !p.have_version || !p.have_id)
        return -EINVAL;
    memcpy(ret_topic_id, p.id, METAPROPS_UUID_LEN);
    return 0;
}

static int write_plain(const char *path, const char *text, size_t len)
{
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int r = fsutil_pwrite_all(fd, text, len, 0);
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
    return r;
}

int metaprops_part_write(const char *log_dir, const uint8_t topic_id[METAPROPS_UUID_LEN],
                         bool durable)
{
    char path[4096];
    int r = join(log_dir, METAPROPS_PART_FILE, path, sizeof(path));
    if (r < 0)
        return r;
    char id[METAPROPS_ID_BUF];
    metaprops_id_encode(topic_id, id);
    char text[64];
    int n = snprintf(text, sizeof(text), "version: 0\ntopic_id: %s\n", id);
    return durable ? fsutil_write_atomic(path, text, (size_t)n)
                   : write_plain(path, text, (size_t)n);
}
