/* raft_store: what a quorum voter keeps on disk besides the metadata log.
 *
 * The metadata log (mlog) holds only committed records, so it never has to
 * take anything back. Raft's other durable state lives here, in the data
 * directory next to the log:
 *   quorum-state  term, vote and the term starts — (term, first offset) for
 *                 every term that has entries, so the term of any entry is
 *                 known without changing mlog's record format (Kafka's
 *                 leader-epoch checkpoint). Offsets before the first start
 *                 are term 0: the log written by a single coordinator, or the
 *                 Bootstrap record every voter formats identically.
 *                 Replaced atomically (fsutil_write_atomic) when it changes.
 *   quorum-tail   entries not yet durably in the metadata log: uncommitted
 *                 ones, and committed ones on their way there. Records
 *                 u32 length | u32 CRC-32C (offset, payload) | i64 offset |
 *                 payload, dense, big-endian; cut from the first conflicting
 *                 entry on, emptied once the metadata log has all of them.
 *
 * One write at a time runs on the worker pool given to craft_store_submit:
 * the state file first, then the tail (truncate, write, fdatasync). The
 * caller sends nothing that depends on it (a vote, an acknowledgement) before
 * its callback (raft.h's ready contract). A failed write fails the store:
 * every later submit gets -EIO.
 *
 * Threading: loop thread only, except the job itself. Errors are negative
 * errno; the library does not log. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coordinator/raft.h"

struct wpool;
struct craft_store;

#define CRAFT_STORE_STATE_FILE "quorum-state"
#define CRAFT_STORE_TAIL_FILE  "quorum-tail"

struct craft_store_recovered {
    int64_t term;
    int32_t vote;
    struct craft_entry *tail; /* entries [log_next, log_next + n_tail), terms filled in */
    size_t n_tail;
    int64_t tail_dropped_bytes; /* a torn or corrupt end cut off */
};

/* Open the store in @dir (files created if missing) for a metadata log whose
 * next offset is @log_next: tail entries below it are already in the log.
 * The tail is cut at its first torn or corrupt record (an interrupted write:
 * nothing after it was acknowledged). -EBADMSG with a sentence in @err when
 * the state file is corrupt or the tail starts after @log_next (entries lost
 * in between: this voter must be rebuilt from the leader). */
int craft_store_open(const char *dir, int64_t log_next, struct craft_store **ret,
                     struct craft_store_recovered *ret_rec, char *err, size_t errlen);
void craft_store_recovered_free(struct craft_store_recovered *rec);
/* Waits for a running write. NULL-safe. */
void craft_store_free(struct craft_store *s);

/* Term of the entry at @offset by the term starts (entries written through
 * this store, and the recovered ones); 0 before the first start. */
int64_t craft_store_term_of(const struct craft_store *s, int64_t offset);

/* The metadata log has every entry below @offset durably: tail entries below
 * it may go (the tail is emptied at the next write that finds all of them
 * covered). */
void craft_store_log_durable(struct craft_store *s, int64_t offset);

typedef void (*craft_store_done_fn)(struct craft_store *s, int status, void *ud);

/* Persist @hard (term and vote) when @hard_dirty, and entries [@from, @from + n)
 * (copied) replacing everything from @from on. @from must be within the tail
 * (or its end). -EBUSY while a write runs, -EIO when failed, -EINVAL. */
int craft_store_submit(struct craft_store *s, struct wpool *pool, bool hard_dirty, int64_t term,
                       int32_t vote, int64_t from, const struct craft_entry *entries, size_t n,
                       craft_store_done_fn cb, void *ud);
/* The same, on the calling thread (tests, start-up). */
int craft_store_write_sync(struct craft_store *s, bool hard_dirty, int64_t term, int32_t vote,
                           int64_t from, const struct craft_entry *entries, size_t n);
bool craft_store_busy(const struct craft_store *s);

/* Snapshot install (a voter behind the leader's snapshot): the metadata log is
 * replaced by a snapshot at @offset whose last entry has @term. Around
 * mlog_install_snapshot():
 *   craft_store_install_begin   unless the tail already holds entry @offset - 1
 *                               with @term (then its entries from @offset on stay),
 *                               record the install with the current term starts
 *                               in the state file (version 2);
 *   craft_store_install_end     after the switch (@switched) empty the tail at
 *                               @offset and make the term starts end with @term at
 *                               @offset - 1; either way clear the record.
 * A voter that stops in between finishes or forgets the install in
 * craft_store_open(): the log was switched when it starts at or after @offset.
 * Synchronous (the state file is replaced atomically, the tail fsynced); -EBUSY
 * while a write runs, -EINVAL, -EIO; a write error fails the store. */
int craft_store_install_begin(struct craft_store *s, int64_t offset, int64_t term);
int craft_store_install_end(struct craft_store *s, int64_t offset, int64_t term, bool switched);
int64_t craft_store_tail_end(const struct craft_store *s); /* offset after the last entry */
