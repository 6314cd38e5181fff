/* metrics_process: what every Weir process exports about itself — build
 * info, uptime, memory, file descriptors, CPU, event-loop lag and the cost of
 * the scrapes themselves. */
#include "common/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/looplag.h"

struct proc_ctx {
    struct metrics *m;
    const char *role;
    const char *version;
    const char *revision;
    struct looplag *lag;
    int64_t start_mono_us;
    int64_t start_wall_ms;
};

static int64_t resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return -1;
    long long size = 0, resident = -1;
    if (fscanf(f, "%lld %lld", &size, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * (int64_t)sysconf(_SC_PAGESIZE);
}

/* Open descriptors. Linux 6.2+ reports the count as the size of
 * /proc/self/fd, one stat() however many files a broker with 10,000
 * partitions holds; older kernels need a directory walk. */
static int64_t open_fds(void)
{
    struct stat st;
    if (stat("/proc/self/fd", &st) == 0 && st.st_size > 0)
        return (int64_t)st.st_size;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int64_t n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the directory's own descriptor */
}

static int proc_collect(struct mw *w, void *ctx, uint64_t *cursor)
{
    struct proc_ctx *p = ctx;
    (void)cursor;

    mw_family(w, "weir_build_info", MW_GAUGE,
              "Always 1; the labels say which build and role this process is.");
    mw_sample(w, 1, "version", p->version, "revision", p->revision, "role", p->role, NULL);
    mw_family(w, "weir_uptime_seconds", MW_GAUGE, "Seconds since the process started.");
    mw_sample(w, (double)(clock_mono_us() - p->start_mono_us) / 1e6, NULL);
    mw_family(w, "process_start_time_seconds", MW_GAUGE,
              "Start time of the process since the Unix epoch, in seconds.");
    mw_sample(w, (double)p->start_wall_ms / 1e3, NULL);

    int64_t rss = resident_bytes();
    if (rss >= 0) {
        mw_family(w, "process_resident_memory_bytes", MW_GAUGE, "Resident memory size in bytes.");
        mw_sample(w, (double)rss, NULL);
    }
    int64_t fds = open_fds();
    if (fds >= 0) {
        mw_family(w, "process_open_fds", MW_GAUGE, "Open file descriptors.");
        mw_sample(w, (double)fds, NULL);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        mw_family(w, "process_max_fds", MW_GAUGE, "The limit on open file descriptors.");
        mw_sample(w, (double)rl.rlim_cur, NULL);
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        mw_family(w, "process_cpu_seconds_total", MW_COUNTER,
                  "User and system CPU time spent, in seconds.");
        mw_sample(w, cpu, NULL);
    }

    if (p->lag) {
        struct looplag_stats ls;
        looplag_get_stats(p->lag, &ls);
        /* Bucket i holds whole-millisecond lags below 2^i ms. */
        double bounds[LOOPLAG_BUCKETS - 1];
        for (int i = 0; i < LOOPLAG_BUCKETS - 1; i++)
            bounds[i] = (double)(1LL << i) / 1e3;
        mw_family(w, "weir_event_loop_lag_seconds", MW_HISTOGRAM,
                  "How late the event loop ran a periodic timer: the stall a callback or loop "
                  "turn imposed on every request on the loop (millisecond resolution).");
        mw_hist_raw(w, bounds, ls.buckets, LOOPLAG_BUCKETS - 1, (double)ls.sum_ms / 1e3, NULL, 0);
        mw_family(w, "weir_event_loop_lag_max_seconds", MW_GAUGE,
                  "The longest event-loop stall since the process started.");
        mw_sample(w, (double)ls.max_ms / 1e3, NULL);
    }

    struct metrics_stats ms;
    metrics_get_stats(p->m, &ms);
    mw_family(w, "weir_metrics_scrapes_total", MW_COUNTER, "Completed /metrics scrapes.");
    mw_sample(w, (double)ms.scrapes, NULL);
    mw_family(w, "weir_metrics_scrape_slices_total", MW_COUNTER,
              "Event-loop turns spent building /metrics responses.");
    mw_sample(w, (double)ms.slices, NULL);
    mw_family(w, "weir_metrics_scrape_duration_seconds", MW_GAUGE,
              "Start to finish of the previous scrape, other work on the loop included.");
    mw_sample(w, (double)ms.last_duration_us / 1e6, NULL);
    mw_family(w, "weir_metrics_scrape_bytes", MW_GAUGE, "Size of the previous /metrics body.");
    mw_sample(w, (double)ms.last_bytes, NULL);
    mw_family(w, "weir_metrics_scrape_slice_max_seconds", MW_GAUGE,
              "The longest single event-loop turn any scrape took: what a scrape can stall "
              "the loop by.");
    mw_sample(w, (double)ms.max_slice_us / 1e6, "clock", "wall", NULL);
    mw_sample(w, (double)ms.max_slice_cpu_us / 1e6, "clock", "cpu", NULL);
    return 0;
}

int metrics_register_process(struct metrics *m, const char *role, const char *version,
                             const char *revision, struct looplag *lag)
{
    struct proc_ctx *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    *p = (struct proc_ctx){
        .m = m,
        .role = role,
        .version = version,
        .revision = revision,
        .lag = lag,
        .start_mono_us = clock_mono_us(),
        .start_wall_ms = clock_wall_ms(),
    };
    int r = metrics_register_owned(m, proc_collect, p);
    if (r < 0)
        free(p);
    return r;
}
