/* faultshim: an LD_PRELOAD library for integration tests that makes fsync and
 * fdatasync fail with EIO while the file named by $WEIR_FAULT_FSYNC_TRIGGER
 * exists, so a test can break a real process's disk at a moment of its choosing
 * (create the file) without root or a special file system. */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

int fsync(int fd);
int fdatasync(int fd);

static int faultshim_triggered(void)
{
    const char *path = getenv("WEIR_FAULT_FSYNC_TRIGGER");
    return path && *path && access(path, F_OK) == 0;
}

int fsync(int fd)
{
    if (faultshim_triggered()) {
        errno = EIO;
        return -1;
    }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real ? real(fd) : (errno = ENOSYS, -1);
}

int fdatasync(int fd)
{
    if (faultshim_triggered()) {
        errno = EIO;
        return -1;
    }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real ? real(fd) : (errno = ENOSYS, -1);
}
