/* coordaddr: the coordinators a broker may talk to (coordinator.connect).
 *
 * coordinator.connect is a comma-separated list of host:port, at most
 * COORDADDR_MAX entries (like zookeeper.connect; one entry is the single
 * coordinator of before). The broker talks to one of them at a time, the
 * current one. A coordinator that is not the quorum leader answers
 * NOT_CONTROLLER with a hint naming the leader: the broker adopts the hinted
 * address at once, also when it is not in the configured list (a voter added
 * by a membership change) — the hinted address is held as one extra entry
 * until the next advance. Without a hint, or when the connection fails, the
 * broker advances to the next configured entry, round robin.
 *
 * Pure data; no I/O (tests/unit/test_coordaddr.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define COORDADDR_MAX      7
#define COORDADDR_HOST_MAX 256

struct coordaddr_entry {
    char host[COORDADDR_HOST_MAX];
    int port;
};

struct coordaddr {
    struct coordaddr_entry v[COORDADDR_MAX]; /* configured, in the given order */
    size_t n;                                /* >= 1 once parsed */
    size_t cur;                              /* index into v, unless adopted */
    bool adopted;                            /* current is @extra, a hinted address */
    struct coordaddr_entry extra;
};

/* Parse "host:port[,host:port...]" (spaces around entries allowed). -EINVAL
 * with one line in @err (naming the entry) for an empty list, an entry that is
 * not host:port, a repeated entry or more than COORDADDR_MAX entries. */
int coordaddr_parse(const char *s, struct coordaddr *ret, char *err, size_t errlen);

/* The address to talk to now. */
const struct coordaddr_entry *coordaddr_current(const struct coordaddr *a);

/* The current one failed (connection, or NOT_CONTROLLER without a hint): move
 * to the next configured entry. From an adopted address, the next is the
 * configured one after the entry we adopted from. */
void coordaddr_advance(struct coordaddr *a);

/* A hint named @host:@port as the leader: make it current. A configured entry
 * is selected by index; any other address is adopted as the extra entry.
 * Returns true when the current address changed; false when it was already
 * current or the hint is unusable (empty host, bad port, too long). */
bool coordaddr_adopt(struct coordaddr *a, const char *host, int port);

/* "host:port,host:port" of the configured list, for logs. */
void coordaddr_format(const struct coordaddr *a, char *buf, size_t len);
