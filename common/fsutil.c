/* fsutil: blocking file-system helpers with explicit durability: atomic replace
 * (temp file, fsync, rename, fsync dir), bounded whole-file reads, mkdir -p,
 * rm -rf without following symlinks, and full positional reads and writes.
 */
#include "common/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* errno as a negative return, never 0 even if a libc call forgot to set it. */
static int neg_errno(void)
{
    return errno > 0 ? -errno : -EIO;
}

int fsutil_pwrite_all(int fd, const void *data, size_t len, int64_t off)
{
    const uint8_t *p = data;
    if (off < 0)
        return -EINVAL;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return neg_errno();
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

int fsutil_pread_all(int fd, void *data, size_t len, int64_t off)
{
    uint8_t *p = data;
    if (off < 0)
        return -EINVAL;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return neg_errno();
        }
        if (n == 0)
            return -ENODATA;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

int fsutil_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return neg_errno();
    int rc = 0;
    while (fsync(fd) < 0) {
        if (errno != EINTR) {
            rc = neg_errno();
            break;
        }
    }
    close(fd);
    return rc;
}

/* Parent directory of @path into a malloc'd string ("a/b//c/" -> "a/b",
 * "c" -> ".", "/c" -> "/"). */
static int parent_of(const char *path, char **ret)
{
    size_t n = strlen(path);
    if (n == 0)
        return -EINVAL;
    while (n > 1 && path[n - 1] == '/') /* ignore trailing slashes */
        n--;
    while (n > 0 && path[n - 1] != '/') /* drop the last component */
        n--;
    while (n > 1 && path[n - 1] == '/') /* and the slashes before it */
        n--;
    const char *src = path;
    if (n == 0) {
        src = ".";
        n = 1;
    }
    char *s = malloc(n + 1);
    if (!s)
        return -ENOMEM;
    memcpy(s, src, n);
    s[n] = '\0';
    *ret = s;
    return 0;
}

int fsutil_fsync_parent(const char *path)
{
    char *dir;
    int rc = parent_of(path, &dir);
    if (rc < 0)
        return rc;
    rc = fsutil_fsync_dir(dir);
    free(dir);
    return rc;
}

int fsutil_write_atomic(const char *path, const void *data, size_t len)
{
    /* The sequence number keeps concurrent writers in one process (worker
     * threads) from sharing a temp file; the pid does the same across processes. */
    static atomic_uint seq;
    unsigned n = atomic_fetch_add(&seq, 1);
    size_t tlen = strlen(path) + 48;
    char *tmp = malloc(tlen);
    if (!tmp)
        return -ENOMEM;
    snprintf(tmp, tlen, "%s.tmp.%ld.%u", path, (long)getpid(), n);

    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = neg_errno();
        free(tmp);
        return rc;
    }
    rc = fsutil_pwrite_all(fd, data, len, 0);
    if (rc == 0) {
        while (fsync(fd) < 0) {
            if (errno != EINTR) {
                rc = neg_errno();
                break;
            }
        }
    }
    /* close() can report a deferred write error on some file systems. */
    if (close(fd) < 0 && rc == 0 && errno != EINTR)
        rc = neg_errno();
    if (rc == 0 && rename(tmp, path) < 0)
        rc = neg_errno();
    if (rc < 0) {
        unlink(tmp);
        free(tmp);
        return rc;
    }
    free(tmp);
    /* The rename is only durable once the directory entry is on disk. */
    return fsutil_fsync_parent(path);
}

/* "<anything>.tmp.<digits>.<digits>": the pid (first digits) in *ret_pid. */
static bool stale_temp_name(const char *name, long *ret_pid)
{
    const char *t = NULL;
    for (const char *p = strstr(name, ".tmp."); p; p = strstr(p + 1, ".tmp."))
        t = p; /* the last one: the target's own name may contain ".tmp." */
    if (!t || t == name)
        return false;
    const char *p = t + 5;
    long pid = 0;
    size_t digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 10; p++, digits++)
        pid = pid * 10 + (*p - '0');
    if (digits == 0 || *p != '.')
        return false;
    p++;
    digits = 0;
    for (; *p >= '0' && *p <= '9'; p++)
        digits++;
    if (digits == 0 || digits > 10 || *p != '\0')
        return false;
    *ret_pid = pid;
    return true;
}

int fsutil_remove_stale_temps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return neg_errno();
    long self = (long)getpid();
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        long pid;
        if (!stale_temp_name(de->d_name, &pid) || pid == self)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

int fsutil_read_file(const char *path, size_t max, uint8_t **ret_data, size_t *ret_len)
{
    if (max >= SIZE_MAX - 1)
        max = SIZE_MAX - 2;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return neg_errno();
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int rc = neg_errno();
        close(fd);
        return rc;
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return -EISDIR;
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
        close(fd);
        return -EFBIG;
    }

    /* st_size is a hint (the file may change, /proc files report 0), so read to
     * EOF and keep enforcing @max as the data arrives. */
    size_t cap = (S_ISREG(st.st_mode) && st.st_size > 0) ? (size_t)st.st_size : 4096;
    if (cap > max)
        cap = max;
    uint8_t *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    size_t len = 0;
    int rc = 0;
    for (;;) {
        if (len == cap) {
            /* Full: probe for one more byte before growing, so a file whose size
             * matched the hint costs no realloc and one past @max is caught. */
            uint8_t probe;
            ssize_t n = read(fd, &probe, 1);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                rc = neg_errno();
                break;
            }
            if (n == 0)
                break;
            if (cap == max) {
                rc = -EFBIG;
                break;
            }
            size_t ncap = cap < max / 2 ? (cap ? cap * 2 : 4096) : max;
            if (ncap > max)
                ncap = max;
            uint8_t *nb = realloc(buf, ncap + 1);
            if (!nb) {
                rc = -ENOMEM;
                break;
            }
            buf = nb;
            cap = ncap;
            buf[len++] = probe;
            continue;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = neg_errno();
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    *ret_data = buf;
    *ret_len = len;
    return 0;
}

int fsutil_mkdirs(const char *path, mode_t mode)
{
    size_t n = strlen(path);
    if (n == 0)
        return -EINVAL;
    char *s = strdup(path);
    if (!s)
        return -ENOMEM;
    int rc = 0;
    /* Create each prefix that ends before a '/', then the whole path. */
    for (size_t i = 1; i <= n; i++) {
        if (i < n && s[i] != '/')
            continue;
        if (i < n && s[i - 1] == '/') /* repeated slash */
            continue;
        char saved = s[i];
        s[i] = '\0';
        if (mkdir(s, mode) < 0 && errno != EEXIST) {
            rc = neg_errno();
            s[i] = saved;
            break;
        }
        s[i] = saved;
    }
    if (rc == 0) {
        /* EEXIST also covers a file in the way; only a directory will do. */
        struct stat st;
        if (stat(path, &st) < 0)
            rc = neg_errno();
        else if (!S_ISDIR(st.st_mode))
            rc = -ENOTDIR;
    }
    free(s);
    return rc;
}

/* Remove @name inside @parent, descending into directories through file
 * descriptors opened with O_NOFOLLOW so a symlink is removed, never followed,
 * even if the tree changes underneath. */
static int remove_at(int parent, const char *name)
{
    if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR && errno != EPERM)
        return neg_errno();

    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : neg_errno();
    DIR *d = fdopendir(fd);
    if (!d) {
        int rc = neg_errno();
        close(fd);
        return rc;
    }
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno)
                rc = neg_errno();
            break;
        }
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        int r2 = remove_at(dirfd(d), de->d_name);
        if (r2 < 0 && rc == 0)
            rc = r2;
    }
    closedir(d);
    if (rc < 0)
        return rc;
    if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return neg_errno();
    return 0;
}

int fsutil_remove_tree(const char *path)
{
    if (!*path)
        return -EINVAL;
    return remove_at(AT_FDCWD, path);
}
