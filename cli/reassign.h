/* reassign: `weir reassign` and the partition moves of `weir cluster
 * rebalance|decommission` (reassign.c). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct cli;

/* `weir reassign VERB ...`; argv[0] is "reassign". */
int cli_reassign_main(struct cli *c, int argc, char **argv);

/* `weir cluster rebalance` (@verb "rebalance": a plan over every broker that
 * is not decommissioned and every topic) or `decommission` (sets
 * broker.decommissioned on @broker first, then the same plan without it),
 * executed; with
 * @throttle > 0 the replication throttle is set for the moves (refused when
 * the brokers do not support it); with @wait, waits until the moves are done
 * (at most @timeout_s seconds, 0: no bound) with progress on a terminal and
 * removes the throttle. Returns an exit status. */
int cli_cluster_move(struct cli *c, const char *verb, int32_t broker, int64_t throttle, bool wait,
                     double timeout_s);

/* `weir cluster recommission`: removes broker.decommissioned from @broker. */
int cli_cluster_recommission(struct cli *c, int32_t broker);
