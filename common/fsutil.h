/* fsutil: small file-system helpers with explicit durability.
 *
 * fsutil_write_atomic() is how every checkpoint and snapshot is replaced: write a
 * temporary file in the same directory, fsync it, rename it over the target, fsync
 * the directory. A crash at any point leaves either the old or the new content,
 * never a mix. All functions block: call them off the event loop. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

int fsutil_write_atomic(const char *path, const void *data, size_t len);
/* Remove the temporary files that fsutil_write_atomic() of another (crashed)
 * process left in @dir: names "<target>.tmp.<pid>.<n>" whose pid is not ours
 * (ours may be a write in progress on a worker thread). Returns how many were
 * removed, or -errno if @dir cannot be read. */
int fsutil_remove_stale_temps(const char *dir);
int fsutil_fsync_dir(const char *dir);
/* fsync the directory that contains @path. */
int fsutil_fsync_parent(const char *path);
/* Read a whole file of at most @max bytes (-EFBIG if larger) into a malloc'd
 * buffer with a NUL after the last byte (not counted in *ret_len). */
int fsutil_read_file(const char *path, size_t max, uint8_t **ret_data, size_t *ret_len);
/* mkdir -p. Existing directories are fine. */
int fsutil_mkdirs(const char *path, mode_t mode);
/* rm -rf of a directory tree (does not follow symlinks). -ENOENT is not an error. */
int fsutil_remove_tree(const char *path);
/* Write all @len bytes at @off (retries short writes and EINTR). */
int fsutil_pwrite_all(int fd, const void *data, size_t len, int64_t off);
/* Read exactly @len bytes at @off; -ENODATA if the file ends first. */
int fsutil_pread_all(int fd, void *data, size_t len, int64_t off);
