/* coordaddr: the list of coordinators from coordinator.connect and which one
 * the broker talks to (coordaddr.h). */
#include "broker/coordaddr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_entry(const char *s, size_t len, struct coordaddr_entry *e)
{
    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len == 0 || memchr(s, '/', len))
        return -EINVAL;
    /* The port follows the last ':'; a bracketed IPv6 host keeps its colons. */
    const char *colon = NULL;
    for (size_t i = 0; i < len; i++)
        if (s[i] == ':')
            colon = s + i;
    if (!colon)
        return -EINVAL;
    size_t hlen = (size_t)(colon - s);
    const char *h = s;
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    } else if (memchr(h, ':', hlen)) {
        return -EINVAL; /* an IPv6 address must be bracketed */
    }
    if (hlen == 0 || hlen >= sizeof(e->host) || memchr(h, ' ', hlen))
        return -EINVAL;
    const char *p = colon + 1;
    size_t plen = (size_t)(s + len - p); /* the digits after the colon */
    if (plen == 0 || plen > 5)
        return -EINVAL;
    int port = 0;
    for (size_t i = 0; i < plen; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -EINVAL;
        port = port * 10 + (p[i] - '0');
    }
    if (port <= 0 || port > 65535)
        return -EINVAL;
    memcpy(e->host, h, hlen);
    e->host[hlen] = '\0';
    e->port = port;
    return 0;
}

int coordaddr_parse(const char *s, struct coordaddr *ret, char *err, size_t errlen)
{
    struct coordaddr a;
    memset(&a, 0, sizeof(a));
    if (!s) {
        snprintf(err, errlen, "coordinator.connect is required");
        return -EINVAL;
    }
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (a.n == COORDADDR_MAX) {
            snprintf(err, errlen,
                     "invalid value '%s' for 'coordinator.connect': more than %d coordinators", s,
                     COORDADDR_MAX);
            return -EINVAL;
        }
        struct coordaddr_entry *e = &a.v[a.n];
        if (parse_entry(p, len, e) != 0) {
            snprintf(err, errlen,
                     "invalid value '%s' for 'coordinator.connect': entry %zu ('%.*s') is not "
                     "host:port (expected host:port[,host:port...])",
                     s, a.n + 1, (int)(len > 200 ? 200 : len), p);
            return -EINVAL;
        }
        for (size_t i = 0; i < a.n; i++) {
            if (a.v[i].port == e->port && strcmp(a.v[i].host, e->host) == 0) {
                snprintf(err, errlen,
                         "invalid value '%s' for 'coordinator.connect': %s:%d is listed twice", s,
                         e->host, e->port);
                return -EINVAL;
            }
        }
        a.n++;
        if (!comma)
            break;
        p = comma + 1;
    }
    *ret = a;
    return 0;
}

const struct coordaddr_entry *coordaddr_current(const struct coordaddr *a)
{
    return a->adopted ? &a->extra : &a->v[a->cur];
}

void coordaddr_advance(struct coordaddr *a)
{
    if (a->n == 0)
        return;
    a->adopted = false;
    a->cur = (a->cur + 1) % a->n;
}

bool coordaddr_adopt(struct coordaddr *a, const char *host, int port)
{
    if (!host || !host[0] || port <= 0 || port > 65535 ||
        strlen(host) >= sizeof(a->extra.host))
        return false;
    const struct coordaddr_entry *now = coordaddr_current(a);
    if (now->port == port && strcmp(now->host, host) == 0)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        if (a->v[i].port == port && strcmp(a->v[i].host, host) == 0) {
            a->adopted = false;
            a->cur = i;
            return true;
        }
    }
    snprintf(a->extra.host, sizeof(a->extra.host), "%s", host);
    a->extra.port = port;
    a->adopted = true;
    return true;
}

void coordaddr_format(const struct coordaddr *a, char *buf, size_t len)
{
    size_t off = 0;
    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < a->n && off < len; i++) {
        int w = snprintf(buf + off, len - off, "%s%s:%d", i ? "," : "", a->v[i].host, a->v[i].port);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}
