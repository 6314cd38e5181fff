/* procutil: start and stop real server processes from integration tests.
 *
 * A process is spawned with its stdout on a pipe (read by procutil_wait_line, for
 * the one "ready" line) and its stderr appended to a file the test can search for
 * log lines. Every process started here is remembered until it has been reaped,
 * so procutil_kill_all() in a teardown (also registered with atexit) leaves no
 * process behind when a test fails half-way. Every wait is bounded. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct procutil_proc {
    pid_t pid;  /* 0 once reaped */
    int out_fd; /* read end of the child's stdout; -1 when closed */
    int status; /* wait status once reaped */
    bool exited;
    char *outbuf; /* stdout read so far and not yet returned as a line */
    size_t outlen, outcap;
};

/* Start @argv[0] (a path) with @argv (NULL-terminated), stdout piped, stderr
 * appended to @stderr_path (NULL: inherited). 0 or a negative errno. */
int procutil_spawn(const char *const *argv, const char *stderr_path, struct procutil_proc *ret);

/* Read the child's stdout until a whole line starting with @prefix arrives (it is
 * copied into @buf without the newline), the child closes stdout or exits
 * (-EPIPE), or @timeout_ms passes (-ETIMEDOUT). Lines before it are skipped. */
int procutil_wait_line(struct procutil_proc *p, const char *prefix, int timeout_ms, char *buf,
                       size_t len);

/* Send @sig to the process (no-op once reaped). */
void procutil_signal(struct procutil_proc *p, int sig);

/* Wait up to @timeout_ms for the process to exit and reap it; -ETIMEDOUT if it has
 * not. *ret_status (may be NULL) gets the wait status. */
int procutil_wait_exit(struct procutil_proc *p, int timeout_ms, int *ret_status);

/* SIGKILL and reap; closes the pipe. Safe on a process already reaped. */
void procutil_kill(struct procutil_proc *p);

/* Release the pipe and buffer (after the process is reaped or killed). */
void procutil_close(struct procutil_proc *p);

/* SIGKILL and reap every process started by procutil_spawn and not reaped yet. */
void procutil_kill_all(void);

/* A TCP port on 127.0.0.1 that was free a moment ago (bind to 0, read, close).
 * Returns the port or a negative errno. */
int procutil_free_port(void);

/* True when @path contains @needle (a log line, say). */
bool procutil_file_contains(const char *path, const char *needle);

/* Resident set size of @pid in KiB (VmRSS), or -1. */
long procutil_rss_kib(pid_t pid);

/* CPU time of @pid (utime + stime) in seconds, or -1. */
double procutil_cpu_seconds(pid_t pid);

/* Sleep @ms milliseconds. */
void procutil_sleep_ms(int ms);
