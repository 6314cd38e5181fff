/* procutil: spawn, watch and reap server processes for integration tests. */
#include "tests/support/procutil.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROCUTIL_MAX_TRACKED 64
#define PROCUTIL_MAX_LINE    (64 * 1024)

static pid_t tracked[PROCUTIL_MAX_TRACKED];
static bool atexit_registered;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void procutil_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static void track(pid_t pid)
{
    for (size_t i = 0; i < PROCUTIL_MAX_TRACKED; i++) {
        if (tracked[i] == 0) {
            tracked[i] = pid;
            return;
        }
    }
}

static void untrack(pid_t pid)
{
    for (size_t i = 0; i < PROCUTIL_MAX_TRACKED; i++)
        if (tracked[i] == pid)
            tracked[i] = 0;
}

void procutil_kill_all(void)
{
    for (size_t i = 0; i < PROCUTIL_MAX_TRACKED; i++) {
        if (tracked[i] > 0) {
            kill(tracked[i], SIGKILL);
            waitpid(tracked[i], NULL, 0);
            tracked[i] = 0;
        }
    }
}

int procutil_spawn(const char *const *argv, const char *stderr_path, struct procutil_proc *ret)
{
    if (!atexit_registered) {
        atexit(procutil_kill_all);
        atexit_registered = true;
    }
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -errno;
    int errfd = -1;
    if (stderr_path) {
        errfd = open(stderr_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (errfd < 0) {
            int e = -errno;
            close(pfd[0]);
            close(pfd[1]);
            return e;
        }
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int e = -errno;
        close(pfd[0]);
        close(pfd[1]);
        if (errfd >= 0)
            close(errfd);
        return e;
    }
    if (pid == 0) {
        dup2(pfd[1], STDOUT_FILENO);
        if (errfd >= 0)
            dup2(errfd, STDERR_FILENO);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], (char *const *)argv);
        dprintf(STDERR_FILENO, "procutil: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    if (errfd >= 0)
        close(errfd);
    track(pid);
    memset(ret, 0, sizeof(*ret));
    ret->pid = pid;
    ret->out_fd = pfd[0];
    return 0;
}

/* Take the first complete line starting with @prefix out of the buffer. */
static bool take_line(struct procutil_proc *p, const char *prefix, char *buf, size_t len)
{
    for (;;) {
        char *nl = p->outlen ? memchr(p->outbuf, '\n', p->outlen) : NULL;
        if (!nl)
            return false;
        size_t n = (size_t)(nl - p->outbuf);
        bool match = strncmp(p->outbuf, prefix, strlen(prefix)) == 0 && n >= strlen(prefix);
        if (match && len > 0) {
            size_t c = n < len - 1 ? n : len - 1;
            memcpy(buf, p->outbuf, c);
            buf[c] = '\0';
        }
        memmove(p->outbuf, nl + 1, p->outlen - n - 1);
        p->outlen -= n + 1;
        if (match)
            return true;
    }
}

int procutil_wait_line(struct procutil_proc *p, const char *prefix, int timeout_ms, char *buf,
                       size_t len)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        if (take_line(p, prefix, buf, len))
            return 0;
        if (p->out_fd < 0)
            return -EPIPE;
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = p->out_fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno != EINTR)
            return -errno;
        if (r <= 0)
            continue;
        if (p->outcap - p->outlen < 4096) {
            if (p->outcap >= PROCUTIL_MAX_LINE)
                return -E2BIG;
            size_t cap = p->outcap ? p->outcap * 2 : 8192;
            char *nb = realloc(p->outbuf, cap);
            if (!nb)
                return -ENOMEM;
            p->outbuf = nb;
            p->outcap = cap;
        }
        ssize_t n = read(p->out_fd, p->outbuf + p->outlen, p->outcap - p->outlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(p->out_fd);
            p->out_fd = -1;
            continue;
        }
        p->outlen += (size_t)n;
    }
}

void procutil_signal(struct procutil_proc *p, int sig)
{
    if (p->pid > 0 && !p->exited)
        kill(p->pid, sig);
}

int procutil_wait_exit(struct procutil_proc *p, int timeout_ms, int *ret_status)
{
    if (p->exited) {
        if (ret_status)
            *ret_status = p->status;
        return 0;
    }
    if (p->pid <= 0)
        return -ECHILD;
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid) {
            untrack(p->pid);
            p->exited = true;
            p->status = status;
            if (ret_status)
                *ret_status = status;
            return 0;
        }
        if (r < 0 && errno != EINTR)
            return -errno;
        if (now_ms() >= deadline)
            return -ETIMEDOUT;
        procutil_sleep_ms(10);
    }
}

void procutil_kill(struct procutil_proc *p)
{
    if (p->pid > 0 && !p->exited) {
        kill(p->pid, SIGKILL);
        int status;
        if (waitpid(p->pid, &status, 0) == p->pid) {
            p->exited = true;
            p->status = status;
        }
        untrack(p->pid);
    }
    procutil_close(p);
}

void procutil_close(struct procutil_proc *p)
{
    if (p->out_fd >= 0)
        close(p->out_fd);
    p->out_fd = -1;
    free(p->outbuf);
    p->outbuf = NULL;
    p->outlen = p->outcap = 0;
}

int procutil_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    close(fd);
    return ntohs(a.sin_port);
}

bool procutil_file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool found = false;
    char *line = NULL;
    size_t cap = 0;
    while (!found && getline(&line, &cap, f) >= 0)
        found = strstr(line, needle) != NULL;
    free(line);
    fclose(f);
    return found;
}

long procutil_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

double procutil_cpu_seconds(pid_t pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces; fields resume after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}
