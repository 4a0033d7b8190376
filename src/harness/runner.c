/* src/harness/runner.c - see runner.h. */
#include <config.h> /* autoconf's: PACKAGE_VERSION, NB_BUILD_CC, ... */

#include "harness/runner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <csv.h>
#include <gsl/gsl_version.h>

#include "buildinfo.h"
#include "core/arena.h"
#include "core/blas.h"
#include "core/rng.h"
#include "core/text.h"
#include "harness/csvio.h"
#include "harness/runcfg.h"

#define PATH_SZ 2048

/* exit codes of a worker process */
enum { W_DONE = 0, W_FAILED = 1, W_DIVERGED = 3 };

static const char *const state_names[] = {"pending", "running", "done",
                                          "diverged", "failed"};
_Static_assert(sizeof state_names / sizeof state_names[0] == NB_STATE_COUNT,
               "run state names");

const char *nb_run_state_name(enum nb_run_state s)
{
    return (int)s >= 0 && s < NB_STATE_COUNT ? state_names[s] : NULL;
}

void nb_runner_opts_default(struct nb_runner_opts *o)
{
    memset(o, 0, sizeof *o);
    o->jobs = 1;
    o->progress = NB_PROGRESS_AUTO;
    o->stale_after = 300;
    o->summary = true;
}

/* ======================================================================
 * Small file helpers
 * ====================================================================== */

__attribute__((format(printf, 3, 4))) static const char *
pathf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return buf;
}

static int mkdir_p(const char *path, struct nb_error *err)
{
    char buf[PATH_SZ];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return nb_error_set(err, NB_EIO, buf, 0,
                                    "cannot create directory: %s",
                                    strerror(errno));
            *p = c;
            if (!c)
                break;
        }
    }
    return 0;
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static void dir_of(const char *path, char *buf, size_t size)
{
    snprintf(buf, size, "%s", path);
    char *s = strrchr(buf, '/');
    if (s && s != buf)
        *s = '\0';
    else
        snprintf(buf, size, "%s", s ? "/" : ".");
}

/* Writes text to path through path.tmp.PID and rename; with sync, fsyncs
 * the file before the rename and the directory after it. */
static int write_atomic(const char *path, const char *text, bool sync,
                        struct nb_error *err)
{
    char tmp[PATH_SZ + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0)
        return nb_error_set(err, NB_EIO, tmp, 0, "cannot create: %s",
                            strerror(errno));
    size_t n = strlen(text), off = 0;
    while (off < n) {
        ssize_t k = write(fd, text + off, n - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return nb_error_set(err, NB_EIO, tmp, 0, "write error: %s",
                                strerror(e));
        }
        off += (size_t)k;
    }
    if ((sync && fsync(fd) != 0) || close(fd) != 0) {
        unlink(tmp);
        return nb_error_set(err, NB_EIO, tmp, 0, "write error: %s",
                            strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return nb_error_set(err, NB_EIO, path, 0, "cannot rename %s: %s", tmp,
                            strerror(e));
    }
    if (sync) {
        char dir[PATH_SZ];
        dir_of(path, dir, sizeof dir);
        fsync_dir(dir);
    }
    return 0;
}

/* Reads a small file into buf (NUL-terminated); returns its length or -1. */
static long read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off + 1 < size) {
        ssize_t k = read(fd, buf + off, size - 1 - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        off += (size_t)k;
    }
    close(fd);
    buf[off] = '\0';
    return (long)off;
}

/* The value of "key = value" in text (a meta.txt / DONE / owner file). */
static bool kv_get(const char *text, const char *key, char *out, size_t size)
{
    size_t kl = strlen(key);
    for (const char *p = text; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > kl + 2 && !strncmp(p, key, kl) && !strncmp(p + kl, " = ", 3)) {
            size_t vl = len - kl - 3;
            if (vl >= size)
                vl = size - 1;
            memcpy(out, p + kl + 3, vl);
            out[vl] = '\0';
            return true;
        }
        if (len == kl + 2 && !strncmp(p, key, kl) && !strncmp(p + kl, " =", 2)) {
            out[0] = '\0';
            return true;
        }
        p = eol ? eol + 1 : NULL;
    }
    return false;
}

/* A growing text buffer of "key = value" lines. */
/* Appends "key = value\n" to t (line breaks in the value become spaces). */
__attribute__((format(printf, 3, 4))) static void
kvf(struct nb_text *t, const char *key, const char *fmt, ...)
{
    char val[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(val, sizeof val, fmt, ap);
    va_end(ap);
    for (char *p = val; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    nb_text_printf(t, "%s = %s\n", key, val);
}

static void utc_now(char *buf, size_t size)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void remove_tree_shallow(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[PATH_SZ + 300];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                unlink(pathf(p, sizeof p, "%s/%s", dir, e->d_name));
        closedir(d);
    }
    rmdir(dir);
}

/* ======================================================================
 * The context of one invocation
 * ====================================================================== */

struct ctx {
    const struct nb_sweep *sw;
    const char *results_dir; /* NULL: the config's */
    double stale_after;
    char exp[PATH_SZ];
    char locks[PATH_SZ];
    char host[256];
    pid_t parent;
    time_t started;
};

const char *nb_runner_exp_dir(const struct nb_sweep *sw,
                              const char *results_dir, char *buf, size_t size)
{
    const struct nb_run *r = &sw->runs[0];
    const char *rd = results_dir ? results_dir
                                 : nb_run_get_str(r, "experiment", "results_dir");
    if (!rd[0])
        rd = ".";
    return pathf(buf, size, "%s/%s", rd, nb_run_get_str(r, "experiment", "name"));
}

static void ctx_init(struct ctx *c, const struct nb_sweep *sw,
                     const char *results_dir, double stale_after)
{
    memset(c, 0, sizeof *c);
    c->sw = sw;
    c->results_dir = results_dir;
    c->stale_after = stale_after > 0 ? stale_after : 300;
    nb_runner_exp_dir(sw, results_dir, c->exp, sizeof c->exp);
    pathf(c->locks, sizeof c->locks, "%s/.locks", c->exp);
    if (gethostname(c->host, sizeof c->host - 1) != 0)
        snprintf(c->host, sizeof c->host, "unknown");
    for (char *p = c->host; *p; p++)
        if (*p == ' ' || *p == '\n')
            *p = '_';
    c->parent = getpid();
    c->started = time(NULL);
}

static const char *run_dir(const struct ctx *c, const struct nb_run *r,
                           char *buf, size_t size)
{
    return pathf(buf, size, "%s/%s", c->exp, r->run_id);
}

static const char *lock_dir(const struct ctx *c, const struct nb_run *r,
                            char *buf, size_t size)
{
    return pathf(buf, size, "%s/%s", c->locks, r->run_id);
}

/* Appends one line to EXP/events.log (one write, O_APPEND). */
__attribute__((format(printf, 4, 5))) static void
event(const struct ctx *c, const char *what, const struct nb_run *r,
      const char *fmt, ...)
{
    char path[PATH_SZ], line[1024], when[32], detail[600] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
        for (char *p = detail; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
    }
    utc_now(when, sizeof when);
    int n = snprintf(line, sizeof line, "%s %s %ld %s %zu %s%s%s\n", when,
                     c->host, (long)getpid(), what, r->index, r->run_id,
                     detail[0] ? " " : "", detail);
    if (n <= 0)
        return;
    if ((size_t)n >= sizeof line) {
        n = (int)sizeof line - 1;
        line[n - 1] = '\n';
    }
    int fd = open(pathf(path, sizeof path, "%s/events.log", c->exp),
                  O_WRONLY | O_CREAT | O_APPEND, 0666);
    if (fd >= 0) {
        ssize_t k = write(fd, line, (size_t)n);
        (void)k;
        close(fd);
    }
}

/* ======================================================================
 * DONE and claims
 * ====================================================================== */

/* NB_STATE_DONE / NB_STATE_DIVERGED when the run's DONE is valid, else -1. */
static int done_state(const struct ctx *c, const struct nb_run *r)
{
    char path[PATH_SZ], text[4096], v[64];
    run_dir(c, r, path, sizeof path);
    strncat(path, "/DONE", sizeof path - strlen(path) - 1);
    if (read_small(path, text, sizeof text) <= 0)
        return -1;
    if (!kv_get(text, "run_id", v, sizeof v) || strcmp(v, r->run_id))
        return -1;
    if (!kv_get(text, "status", v, sizeof v))
        return -1;
    if (!strcmp(v, "done"))
        return NB_STATE_DONE;
    if (!strcmp(v, "diverged"))
        return NB_STATE_DIVERGED;
    return -1;
}

struct owner {
    bool ok;          /* the owner file was read */
    char host[256];
    long pid, worker;
    unsigned long long pid_start, worker_start; /* 0: not recorded */
    char nonce[64];
    double age;       /* seconds since the heartbeat (or the claim) */
};

/* The start time of process pid (clock ticks since boot, /proc/PID/stat
 * field 22), 0 when unknown.  With the pid it names one process: a pid
 * reused after a reboot or a container restart has another start time. */
static unsigned long long proc_start(long pid)
{
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    if (pid <= 0 || read_small(path, text, sizeof text) <= 0)
        return 0;
    const char *p = strrchr(text, ')'); /* "pid (comm) state ..." */
    if (!p)
        return 0;
    p++;
    for (int field = 2; field < 22 && *p; field++) { /* to field 22 */
        while (*p == ' ')
            p++;
        while (*p && *p != ' ')
            p++;
    }
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    return end == p ? 0 : v;
}

static void owner_read(const char *lockdir, struct owner *w)
{
    char path[PATH_SZ + 16], text[2048], v[256];
    struct stat st;
    memset(w, 0, sizeof *w);
    pathf(path, sizeof path, "%s/owner", lockdir);
    if (read_small(path, text, sizeof text) > 0 && kv_get(text, "host", w->host, sizeof w->host)) {
        w->ok = true;
        if (kv_get(text, "pid", v, sizeof v))
            w->pid = strtol(v, NULL, 10);
        if (kv_get(text, "worker", v, sizeof v))
            w->worker = strtol(v, NULL, 10);
        kv_get(text, "nonce", w->nonce, sizeof w->nonce);
        if (kv_get(text, "pid_start", v, sizeof v))
            w->pid_start = strtoull(v, NULL, 10);
        if (kv_get(text, "worker_start", v, sizeof v))
            w->worker_start = strtoull(v, NULL, 10);
    }
    if (stat(path, &st) != 0 && stat(lockdir, &st) != 0) {
        w->age = 0;
        return;
    }
    w->age = difftime(time(NULL), st.st_mtime);
}

/* True when process pid exists and is not a zombie (a killed worker whose
 * parent died waits for init to reap it, and must not hold its claim). */
static bool pid_alive(long pid)
{
    if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno != EPERM))
        return false;
    char path[64], text[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    if (read_small(path, text, sizeof text) > 0) {
        const char *p = strrchr(text, ')'); /* "pid (comm) S ..." */
        if (p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'))
            return false;
    }
    return true;
}

/* Is the process that claimed as (pid, start) still running?  A recorded
 * start time that differs from the live one means the pid was reused. */
static bool claimant_alive(long pid, unsigned long long start)
{
    if (!pid_alive(pid))
        return false;
    unsigned long long now = start ? proc_start(pid) : 0;
    return !(start && now && now != start);
}

/* How many times --stale-after a same-host claim may go without a
 * heartbeat while its process seems alive (a pid reused by an unrelated
 * process when no start time was recorded, a hung worker): the wait is
 * bounded. */
#define SAME_HOST_STALE_FACTOR 4

static bool owner_stale(const struct ctx *c, const struct owner *w)
{
    if (w->ok && !strcmp(w->host, c->host))
        return (!claimant_alive(w->pid, w->pid_start) &&
                !claimant_alive(w->worker, w->worker_start)) ||
               w->age > SAME_HOST_STALE_FACTOR * c->stale_after;
    return w->age > c->stale_after;
}

static int owner_write(const struct ctx *c, const char *lockdir, long pid,
                       long worker, const char *nonce)
{
    char path[PATH_SZ + 16], when[32];
    struct nb_text t = {0};
    utc_now(when, sizeof when);
    kvf(&t, "host", "%s", c->host);
    kvf(&t, "pid", "%ld", pid);
    kvf(&t, "worker", "%ld", worker);
    kvf(&t, "pid_start", "%llu", proc_start(pid));
    kvf(&t, "worker_start", "%llu", worker > 0 ? proc_start(worker) : 0ULL);
    kvf(&t, "nonce", "%s", nonce);
    kvf(&t, "claimed_utc", "%s", when);
    int rc = t.s ? write_atomic(pathf(path, sizeof path, "%s/owner", lockdir),
                                t.s, false, NULL)
                 : NB_ENOMEM;
    free(t.s);
    return rc;
}

static void make_nonce(char *buf, size_t size)
{
    static unsigned long counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
                 ((uint64_t)getpid() << 40) ^ (uint64_t)++counter;
    x = nb_seed_mix(x, 0x6c6f636bu);
    snprintf(buf, size, "%016" PRIx64, x);
}

/* Releases the claim at lockdir when it still carries our nonce. */
static void lock_release(const char *lockdir, const char *nonce)
{
    struct owner w;
    owner_read(lockdir, &w);
    if (w.ok && strcmp(w.nonce, nonce))
        return; /* someone else's by now */
    remove_tree_shallow(lockdir);
}

/* Moves a stale claim aside and deletes it; false when another process
 * got there first. */
static bool lock_recover(const struct ctx *c, const char *lockdir,
                         const struct owner *seen)
{
    char aside[PATH_SZ + 128], nonce[32];
    make_nonce(nonce, sizeof nonce);
    pathf(aside, sizeof aside, "%s.stale.%ld.%s", lockdir, (long)getpid(), nonce);
    if (rename(lockdir, aside) != 0)
        return false;
    struct owner now;
    owner_read(aside, &now);
    if (now.ok != seen->ok || strcmp(now.nonce, seen->nonce)) {
        /* a fresh claim replaced the stale one meanwhile: put it back */
        if (rename(aside, lockdir) == 0)
            return false;
    }
    (void)c;
    remove_tree_shallow(aside);
    return true;
}

enum { CLAIM_OK = 0, CLAIM_DONE, CLAIM_BUSY, CLAIM_ERROR };

static int claim(const struct ctx *c, const struct nb_run *r, char *nonce,
                 size_t nsize, struct nb_error *err)
{
    char lockdir[PATH_SZ];
    lock_dir(c, r, lockdir, sizeof lockdir);
    for (int attempt = 0; attempt < 5; attempt++) {
        if (done_state(c, r) >= 0)
            return CLAIM_DONE;
        if (mkdir(lockdir, 0777) == 0) {
            make_nonce(nonce, nsize);
            if (owner_write(c, lockdir, (long)getpid(), 0, nonce) != 0) {
                remove_tree_shallow(lockdir);
                nb_error_set(err, NB_EIO, lockdir, 0, "cannot write the claim");
                return CLAIM_ERROR;
            }
            if (done_state(c, r) >= 0) { /* finished meanwhile */
                lock_release(lockdir, nonce);
                return CLAIM_DONE;
            }
            return CLAIM_OK;
        }
        if (errno != EEXIST) {
            nb_error_set(err, NB_EIO, lockdir, 0, "cannot create: %s",
                         strerror(errno));
            return CLAIM_ERROR;
        }
        struct owner w;
        owner_read(lockdir, &w);
        if (!owner_stale(c, &w))
            return CLAIM_BUSY;
        lock_recover(c, lockdir, &w);
    }
    return CLAIM_BUSY;
}

enum nb_run_state nb_runner_state(const struct nb_sweep *sw, size_t i,
                                  const char *results_dir, double stale_after)
{
    struct ctx c;
    ctx_init(&c, sw, results_dir, stale_after);
    const struct nb_run *r = &sw->runs[i];
    int d = done_state(&c, r);
    if (d >= 0)
        return (enum nb_run_state)d;
    char path[PATH_SZ + 16];
    struct stat st;
    lock_dir(&c, r, path, sizeof path);
    if (stat(path, &st) == 0) {
        struct owner w;
        owner_read(path, &w);
        if (!owner_stale(&c, &w))
            return NB_STATE_RUNNING;
    }
    run_dir(&c, r, path, sizeof path);
    strncat(path, "/error.txt", sizeof path - strlen(path) - 1);
    if (stat(path, &st) == 0)
        return NB_STATE_FAILED;
    return NB_STATE_PENDING;
}

/* ======================================================================
 * The worker: one run
 * ====================================================================== */

struct wrun {
    const struct ctx *c;
    const struct nb_run *run;
    char dir[PATH_SZ];
    char owner[PATH_SZ + 16];
    int fd;                   /* progress pipe to the parent, or -1 */
    struct nb_csvw metrics, timing, probes;
    bool probes_on;
    bool has_val;             /* metrics.csv has val_loss, val_acc */
    struct nb_probe probe;
    FILE *slice;
    long total, spe;
    double epochs;
    double last_msg, last_beat;
    long rows;
    bool io_failed;
    struct nb_error err;
};

static void w_send(struct wrun *w, long step, double epoch)
{
    if (w->fd < 0)
        return;
    char msg[128];
    int n = snprintf(msg, sizeof msg, "P %ld %ld %.6g %.6g\n", step, w->total,
                     epoch, w->epochs);
    ssize_t k = write(w->fd, msg, (size_t)n);
    (void)k;
}

static void w_heartbeat(struct wrun *w, double now)
{
    if (now - w->last_beat >= 10.0) {
        utimensat(AT_FDCWD, w->owner, NULL, 0);
        w->last_beat = now;
    }
}

static void w_on_step(void *user, struct nb_model *m, const float *x,
                      const int *y, const float *t, int n, long step, double lr)
{
    struct wrun *w = user;
    if (w->probes_on)
        nb_probe_step(&w->probe, m, x, y, t, n, step, lr);
    double now = nb_now();
    if (now - w->last_msg >= 0.25) {
        w_send(w, step, w->spe > 0 ? (double)step / (double)w->spe : 0);
        w->last_msg = now;
    }
    w_heartbeat(w, now);
}

static int w_probe_row(void *user, const struct nb_probe_row *r)
{
    struct wrun *w = user;
    nb_csvw_long(&w->probes, r->step);
    nb_csvw_str(&w->probes, r->probe);
    nb_csvw_str(&w->probes, r->layer);
    nb_csvw_long(&w->probes, r->layer_index);
    nb_csvw_str(&w->probes, r->param);
    if (isnan(r->param_value))
        nb_csvw_missing(&w->probes);
    else
        nb_csvw_double(&w->probes, r->param_value);
    nb_csvw_str(&w->probes, r->stat);
    nb_csvw_double(&w->probes, r->value);
    nb_csvw_str(&w->probes, r->bn_mode);
    if (nb_csvw_end_row(&w->probes, &w->err)) {
        w->io_failed = true;
        return 1;
    }
    return 0;
}

static int w_on_metrics(void *user, const struct nb_metrics *row)
{
    struct wrun *w = user;
    struct nb_csvw *mw = &w->metrics, *tw = &w->timing;
    for (int i = 0; i < NB_METRICS_N_COLS; i++) {
        const struct nb_metrics_col *c = &nb_metrics_cols[i];
        const char *f = (const char *)row + c->offset;
        if (c->val_only && !w->has_val)
            continue;
        if (c->is_long)
            nb_csvw_long(mw, *(const long *)f);
        else
            nb_csvw_double(mw, *(const double *)f);
    }
    nb_csvw_long(tw, row->step);
    nb_csvw_double(tw, row->time);
    if (nb_csvw_end_row(mw, &w->err) || nb_csvw_end_row(tw, &w->err)) {
        w->io_failed = true;
        return 1;
    }
    w->rows++;
    if (w->probes_on && w->probe.status) {
        w->err = w->probe.err;
        w->io_failed = true;
        return 1;
    }
    w_send(w, row->step, row->epoch);
    double now = nb_now();
    w->last_msg = now;
    w_heartbeat(w, now);
    return 0;
}

/* The end-of-run probes, on the final parameters of a run that did not
 * diverge. */
static void w_on_end(void *user, struct nb_model *m,
                     const struct nb_train_result *res)
{
    struct wrun *w = user;
    if (w->probes_on && res->status == NB_TRAIN_DONE && !w->io_failed) {
        nb_probe_finish(&w->probe, m, res->steps);
        if (w->probe.status) {
            w->err = w->probe.err;
            w->io_failed = true;
        }
    }
}

/* metrics.csv's columns; the last two only for a run with a validation
 * set ([data] val_split) */
static const char *const timing_cols[] = {"step", "time"};
static const char *const probe_cols[] = {"step", "probe", "layer",
                                         "layer_index", "param", "param_value",
                                         "stat", "value", "bn_mode"};

static void cpu_model(char *buf, size_t size)
{
    char text[65536], v[256];
    snprintf(buf, size, "unknown");
    if (read_small("/proc/cpuinfo", text, sizeof text) > 0) {
        /* the first "model name : X" line (x86); "unknown" elsewhere */
        char *m = strstr(text, "model name");
        if (m) {
            char *colon = strchr(m, ':'), *eol = strchr(m, '\n');
            if (colon && (!eol || colon < eol)) {
                size_t n = eol ? (size_t)(eol - colon - 1) : strlen(colon + 1);
                if (n >= sizeof v)
                    n = sizeof v - 1;
                memcpy(v, colon + 1, n);
                v[n] = '\0';
                char *s = v;
                while (*s == ' ')
                    s++;
                snprintf(buf, size, "%s", s);
            }
        }
    }
}

/* The part of meta.txt known before the run starts. */
static void meta_head(const struct wrun *w, const char *start, struct nb_text *t)
{
    const struct nb_run *r = w->run;
    const struct ctx *c = w->c;
    char cpu[256];
    struct utsname un;
    kvf(t, "run_id", "%s", r->run_id);
    kvf(t, "index", "%zu", r->index);
    kvf(t, "experiment", "%s", nb_run_get_str(r, "experiment", "name"));
    kvf(t, "config", "%s", c->sw->path);
    char swept[1500] = "";
    size_t k = 0;
    for (int i = 0; i < r->n_swept && k < sizeof swept; i++) {
        const struct nb_key *key = &nb_keys[r->swept[i]];
        k += (size_t)snprintf(swept + k, sizeof swept - k, "%s%s.%s=%s",
                              i ? " " : "", key->section, key->key,
                              r->vals[r->swept[i]]->text);
    }
    kvf(t, "swept", "%s", swept);
    kvf(t, "seed", "%" PRIu64, r->seed);
    for (int s = 0; s < NB_STREAM_COUNT; s++) {
        char key[64];
        if (s == NB_STREAM_SYNTH)
            continue; /* synthetic sets have their own fixed seed */
        snprintf(key, sizeof key, "seed_%s", nb_stream_name((enum nb_stream)s));
        kvf(t, key, "%lu", nb_stream_seed(r->seed, (enum nb_stream)s));
    }
    kvf(t, "rng", "mt19937 (GSL), one stream per purpose seeded by SplitMix64 of (seed, purpose)");
    kvf(t, "package", "%s %s", PACKAGE_NAME, PACKAGE_VERSION);
    kvf(t, "git_revision", "%s", NB_GIT_REVISION);
    kvf(t, "compiler", "%s (%s)", NB_BUILD_CC, __VERSION__);
    kvf(t, "cflags", "%s", NB_BUILD_CFLAGS);
    kvf(t, "blas", "%s (kernels %s)", nb_blas_name(), nb_blas_core());
    {
        /* benchmarking knobs that change the arithmetic, if set */
        const char *ca = getenv("NB_CONV_ALGO"), *ct = getenv("OPENBLAS_CORETYPE");
        kvf(t, "conv_algo", "%s", ca && *ca ? ca : "auto");
        kvf(t, "openblas_coretype", "%s", ct && *ct ? ct : "(unset)");
    }
    kvf(t, "gsl", "%s", GSL_VERSION);
    kvf(t, "libcsv", "%d.%d.%d", CSV_MAJOR, CSV_MINOR, CSV_RELEASE);
    kvf(t, "host", "%s", c->host);
    cpu_model(cpu, sizeof cpu);
    kvf(t, "cpu", "%s", cpu);
    kvf(t, "cpus_online", "%ld", sysconf(_SC_NPROCESSORS_ONLN));
    if (uname(&un) == 0)
        kvf(t, "os", "%s %s %s", un.sysname, un.release, un.machine);
    kvf(t, "pid", "%ld", (long)getpid());
    kvf(t, "threads", "%lld", nb_run_get_int(r, "train", "threads"));
    kvf(t, "start_utc", "%s", start);
}

/* Writes meta.txt = head + tail. */
static int meta_write(const struct wrun *w, const struct nb_text *head,
                      const struct nb_text *tail, struct nb_error *err)
{
    char path[PATH_SZ + 16];
    struct nb_text all = {0};
    if (head->s)
        nb_text_put(&all, head->s, head->n);
    if (tail && tail->s)
        nb_text_put(&all, tail->s, tail->n);
    if (!all.s || all.failed || head->failed || (tail && tail->failed)) {
        nb_text_free(&all);
        return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
    }
    int rc = write_atomic(pathf(path, sizeof path, "%s/meta.txt", w->dir),
                          all.s, false, err);
    nb_text_free(&all);
    return rc;
}

static int write_config(const struct wrun *w, struct nb_error *err)
{
    char path[PATH_SZ + 16];
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (!mem)
        return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
    int rc = nb_run_write_ini(mem, w->run);
    fclose(mem);
    if (!rc)
        rc = write_atomic(pathf(path, sizeof path, "%s/config.ini", w->dir), buf,
                          false, err);
    else
        nb_error_set(err, rc, NULL, 0, "cannot format the resolved config");
    free(buf);
    return rc;
}

/* Plug point of the probes: sets up w->probe for the run and opens
 * probes.csv and slice.csv. */
static int probe_attach(struct wrun *w, const struct nb_runcfg *rc,
                        const struct nb_data *d, struct nb_error *err)
{
    char path[PATH_SZ + 16];
    int r = nb_probe_init_desc(&w->probe, &rc->probe, &rc->train.model,
                               rc->train.batch, rc->train.seed, &d->train,
                               &d->test, err);
    if (r)
        return r;
    if ((r = nb_csvw_open(&w->probes, pathf(path, sizeof path, "%s/probes.csv", w->dir),
                          probe_cols, 9, err)))
        return r;
    if (rc->probe.slice) {
        w->slice = fopen(pathf(path, sizeof path, "%s/slice.csv", w->dir), "w");
        if (!w->slice)
            return nb_error_set(err, NB_EIO, path, 0, "cannot create: %s",
                                strerror(errno));
    }
    struct nb_probe_sink sink = {.user = w, .row = w_probe_row, .slice = w->slice};
    nb_probe_set_sink(&w->probe, &sink);
    w->probes_on = true;
    return 0;
}

static void probe_meta(const struct wrun *w, double run_seconds, struct nb_text *t)
{
    if (!w->probes_on)
        return;
    kvf(t, "probe_seconds", "%.3f", w->probe.seconds);
    kvf(t, "probe_calls", "%ld", w->probe.calls);
    kvf(t, "probe_share", "%.4f", run_seconds > 0 ? w->probe.seconds / run_seconds : 0);
    for (int k = 0; k < NB_PROBE_KIND_COUNT; k++) {
        if (!w->probe.cost[k].calls)
            continue;
        char key[64];
        const char *name = nb_probe_kind_name((enum nb_probe_kind)k);
        snprintf(key, sizeof key, "probe_%s_calls", name);
        kvf(t, key, "%ld", w->probe.cost[k].calls);
        snprintf(key, sizeof key, "probe_%s_seconds", name);
        kvf(t, key, "%.3f", w->probe.cost[k].seconds);
    }
}

static int close_outputs(struct wrun *w, struct nb_error *err)
{
    int rc = 0, r;
    if ((r = nb_csvw_close(&w->metrics, true, err)) && !rc)
        rc = r;
    if ((r = nb_csvw_close(&w->timing, true, err)) && !rc)
        rc = r;
    if ((r = nb_csvw_close(&w->probes, true, err)) && !rc)
        rc = r;
    if (w->slice) {
        if ((fflush(w->slice) || fsync(fileno(w->slice))) && !rc)
            rc = nb_error_set(err, NB_EIO, "slice.csv", 0, "write error: %s",
                              strerror(errno));
        fclose(w->slice);
        w->slice = NULL;
    }
    return rc;
}

/* Runs sweep run i in this process; returns W_DONE, W_DIVERGED or
 * W_FAILED (error.txt written). */
static int run_one(const struct ctx *c, size_t i, const char *nonce, int fd)
{
    const struct nb_run *run = &c->sw->runs[i];
    struct wrun w;
    memset(&w, 0, sizeof w);
    w.c = c;
    w.run = run;
    w.fd = fd;
    struct nb_error err;
    nb_error_clear(&err);
    char path[PATH_SZ + 16], start[32], end[32], lockdir[PATH_SZ];
    double t0 = nb_now();
    utc_now(start, sizeof start);
    run_dir(c, run, w.dir, sizeof w.dir);
    lock_dir(c, run, lockdir, sizeof lockdir);
    pathf(w.owner, sizeof w.owner, "%s/owner", lockdir);
    w.last_beat = t0;

    struct nb_text head = {0}, tail = {0};
    struct nb_runcfg rc;
    struct nb_data data;
    struct nb_train_result res;
    memset(&data, 0, sizeof data);
    memset(&res, 0, sizeof res);
    const char *status = "failed";
    int code = W_FAILED, r;

    if ((r = mkdir_p(w.dir, &err)))
        goto out;
    unlink(pathf(path, sizeof path, "%s/DONE", w.dir));
    unlink(pathf(path, sizeof path, "%s/error.txt", w.dir));
    unlink(pathf(path, sizeof path, "%s/probes.csv", w.dir));
    unlink(pathf(path, sizeof path, "%s/slice.csv", w.dir));
    meta_head(&w, start, &head);
    kvf(&tail, "status", "running");
    if ((r = write_config(&w, &err)) || (r = meta_write(&w, &head, &tail, &err)))
        goto out;
    free(tail.s);
    tail = (struct nb_text){0};
    event(c, "start", run, NULL);

    if ((r = nb_runcfg_from_run(run, &rc, &err)))
        goto out;
    nb_blas_set_threads(rc.threads);
    kvf(&head, "blas_threads", "%d", nb_blas_threads());
    if ((r = nb_data_prepare(&rc.data, run->seed, &data, &err)))
        goto out;
    nb_runcfg_bind_data(&rc, &data);
    char desc[512];
    kvf(&head, "data", "%s", nb_data_describe(&data, desc, sizeof desc));
    if (data.notice[0])
        kvf(&head, "data_notice", "%s", data.notice);
    kvf(&head, "data_load_seconds", "%.3f", data.load_seconds);
    kvf(&head, "data_from_cache", "%s", data.from_cache ? "true" : "false");
    {
        size_t b = (size_t)rc.train.batch, n = data.train.n;
        w.spe = (long)(rc.train.drop_last ? n / b : (n + b - 1) / b);
        w.total = rc.train.max_steps > 0 ? rc.train.max_steps : w.spe * rc.train.epochs;
        w.epochs = w.spe > 0 ? (double)w.total / (double)w.spe : 0;
    }
    w.has_val = data.val.n > 0;
    const char *mcols[NB_METRICS_N_COLS];
    int n_mcols = 0;
    for (int i = 0; i < NB_METRICS_N_COLS; i++)
        if (w.has_val || !nb_metrics_cols[i].val_only)
            mcols[n_mcols++] = nb_metrics_cols[i].name;
    kvf(&head, "steps_planned", "%ld", w.total);
    kvf(&head, "steps_per_epoch", "%ld", w.spe);
    if ((r = nb_csvw_open(&w.metrics, pathf(path, sizeof path, "%s/metrics.csv", w.dir),
                          mcols, n_mcols, &err)) ||
        (r = nb_csvw_open(&w.timing, pathf(path, sizeof path, "%s/timing.csv", w.dir),
                          timing_cols, 2, &err)))
        goto out;
    if (rc.probes && (r = probe_attach(&w, &rc, &data, &err)))
        goto out;
    w_send(&w, 0, 0);

    struct nb_train_hooks hooks = {.user = &w, .on_step = w_on_step,
                                   .on_metrics = w_on_metrics,
                                   .on_end = w_on_end};
    r = nb_train_val(&rc.train, &data.train, &data.val, &data.test, &hooks, rc.target_acc, &res,
                     &err);
    if (!r && w.io_failed) {
        err = w.err;
        r = err.status ? err.status : NB_EIO;
    }
    if (r)
        goto out;
    if ((r = close_outputs(&w, &err)))
        goto out;
    status = res.status == NB_TRAIN_DIVERGED ? "diverged" : "done";
    code = res.status == NB_TRAIN_DIVERGED ? W_DIVERGED : W_DONE;

out:;
    double wall = nb_now() - t0;
    utc_now(end, sizeof end);
    if (r) {
        close_outputs(&w, NULL);
        char msg[1200];
        nb_error_format(&err, msg, sizeof msg);
        struct nb_text et = {0};
        kvf(&et, "error", "%s", msg);
        if (err.hint[0])
            kvf(&et, "hint", "%s", err.hint);
        kvf(&et, "end_utc", "%s", end);
        if (et.s)
            write_atomic(pathf(path, sizeof path, "%s/error.txt", w.dir), et.s, true,
                         NULL);
        free(et.s);
        kvf(&tail, "status", "failed");
        kvf(&tail, "error", "%s", msg);
    } else {
        kvf(&tail, "status", "%s", status);
    }
    kvf(&tail, "end_utc", "%s", end);
    kvf(&tail, "wall_seconds", "%.3f", wall);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        kvf(&tail, "cpu_seconds", "%.3f",
            (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
                (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec);
    kvf(&tail, "train_seconds", "%.3f", res.seconds);
    kvf(&tail, "steps", "%ld", res.steps);
    kvf(&tail, "metrics_rows", "%ld", w.rows);
    probe_meta(&w, wall, &tail);
    struct nb_error e2;
    if (meta_write(&w, &head, &tail, &e2) && !r) {
        err = e2;
        r = e2.status;
        code = W_FAILED;
    }
    if (!r) {
        struct nb_text done = {0};
        char num[40];
        kvf(&done, "run_id", "%s", run->run_id);
        kvf(&done, "status", "%s", status);
        kvf(&done, "steps", "%ld", res.steps);
        kvf(&done, "metrics_rows", "%ld", w.rows);
        kvf(&done, "final_test_acc", "%s", nb_format_double(res.last.test_acc, num, sizeof num));
        kvf(&done, "best_test_acc", "%s", nb_format_double(res.best_test_acc, num, sizeof num));
        kvf(&done, "wall_seconds", "%.3f", wall);
        kvf(&done, "end_utc", "%s", end);
        kvf(&done, "host", "%s", c->host);
        if (!done.s || write_atomic(pathf(path, sizeof path, "%s/DONE", w.dir), done.s,
                                    true, &e2)) {
            code = W_FAILED;
            write_atomic(pathf(path, sizeof path, "%s/error.txt", w.dir),
                         "error = cannot write DONE\n", true, NULL);
        }
        free(done.s);
    }
    event(c, code == W_FAILED ? "failed" : status, run, "%.3fs", wall);
    nb_probe_free(&w.probe);
    nb_data_free(&data);
    free(head.s);
    free(tail.s);
    lock_release(lockdir, nonce);
    return code;
}

/* ======================================================================
 * The pool
 * ====================================================================== */

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

struct worker {
    pid_t pid;
    int fd;
    size_t run;        /* sweep index */
    char nonce[32];
    char buf[512];
    size_t nbuf;
};

struct outcome {
    int state;         /* enum nb_run_state */
    bool skipped;      /* done before this invocation */
    bool by_other;     /* finished by another process meanwhile */
    char note[600];
};

/* Decodes every data set the pending runs use once, in this process, so
 * that forked workers share the pages. */
static void predecode(const struct nb_sweep *sw, const size_t *todo, size_t n)
{
    char (*seen)[NB_DATA_PATH_MAX + 64] = calloc(n ? n : 1, sizeof *seen);
    size_t n_seen = 0;
    if (!seen)
        return;
    for (size_t k = 0; k < n; k++) {
        const struct nb_run *r = &sw->runs[todo[k]];
        struct nb_runcfg rc;
        struct nb_error e;
        if (nb_runcfg_from_run(r, &rc, &e))
            continue;
        char key[NB_DATA_PATH_MAX + 64];
        snprintf(key, sizeof key, "%d|%d|%s", (int)rc.data.source,
                 rc.data.synth.shape.c, rc.data.dir);
        bool dup = false;
        for (size_t j = 0; j < n_seen && !dup; j++)
            dup = !strcmp(seen[j], key);
        if (dup)
            continue;
        memcpy(seen[n_seen++], key, sizeof key);
        struct nb_data d;
        if (nb_data_prepare(&rc.data, r->seed, &d, &e) == 0) {
            if (d.notice[0])
                fprintf(stderr, "normbench: %s\n", d.notice);
            nb_data_free(&d);
        }
    }
    free(seen);
}

/* First line of error.txt's error (or a fallback). */
static void failure_note(const struct ctx *c, const struct nb_run *r, char *buf,
                         size_t size)
{
    char path[PATH_SZ + 16], text[4096];
    run_dir(c, r, path, sizeof path);
    strncat(path, "/error.txt", sizeof path - strlen(path) - 1);
    if (read_small(path, text, sizeof text) > 0 && kv_get(text, "error", buf, size))
        return;
    snprintf(buf, size, "failed (see %s)", path);
}

/* Records the failure of a worker that died without doing so itself. */
static void record_crash(const struct ctx *c, const struct nb_run *r,
                         const char *why)
{
    char path[PATH_SZ + 16], text[16384], when[32];
    struct nb_text t = {0};
    utc_now(when, sizeof when);
    kvf(&t, "error", "%s", why);
    kvf(&t, "end_utc", "%s", when);
    run_dir(c, r, path, sizeof path);
    mkdir_p(path, NULL);
    strncat(path, "/error.txt", sizeof path - strlen(path) - 1);
    if (t.s)
        write_atomic(path, t.s, true, NULL);
    free(t.s);
    /* meta.txt: status failed */
    t = (struct nb_text){0};
    run_dir(c, r, path, sizeof path);
    strncat(path, "/meta.txt", sizeof path - strlen(path) - 1);
    if (read_small(path, text, sizeof text) > 0) {
        for (char *p = text; p && *p;) {
            char *eol = strchr(p, '\n');
            if (eol)
                *eol = '\0';
            if (strncmp(p, "status = ", 9)) {
                char *eq = strstr(p, " = ");
                if (eq) {
                    *eq = '\0';
                    kvf(&t, p, "%s", eq + 3);
                }
            }
            p = eol ? eol + 1 : NULL;
        }
    }
    kvf(&t, "status", "failed");
    kvf(&t, "error", "%s", why);
    kvf(&t, "end_utc", "%s", when);
    if (t.s)
        write_atomic(path, t.s, false, NULL);
    free(t.s);
    event(c, "failed", r, "%s", why);
}

static void worker_line(struct nb_progress *pg, int slot, const char *line)
{
    long step, steps;
    double epoch, epochs;
    if (sscanf(line, "P %ld %ld %lf %lf", &step, &steps, &epoch, &epochs) == 4)
        nb_progress_update(pg, slot, step, steps, epoch, epochs);
}

/* Reads what a worker sent; returns false at end of file. */
static bool worker_read(struct worker *wk, struct nb_progress *pg, int slot)
{
    for (;;) {
        ssize_t k = read(wk->fd, wk->buf + wk->nbuf, sizeof wk->buf - 1 - wk->nbuf);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (k <= 0)
            return false;
        wk->nbuf += (size_t)k;
        wk->buf[wk->nbuf] = '\0';
        char *p = wk->buf, *nl;
        while ((nl = strchr(p, '\n'))) {
            *nl = '\0';
            worker_line(pg, slot, p);
            p = nl + 1;
        }
        wk->nbuf = strlen(p);
        memmove(wk->buf, p, wk->nbuf + 1);
        if (wk->nbuf >= sizeof wk->buf - 1)
            wk->nbuf = 0; /* garbage: drop */
    }
}

static pid_t spawn(const struct ctx *c, size_t i, const char *nonce,
                   const struct worker *wks, int jobs, int *fd_out,
                   struct nb_error *err)
{
    int pfd[2];
    if (pipe(pfd) != 0) {
        nb_error_set(err, NB_EIO, NULL, 0, "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    /* no signal between fork and the worker's own handlers: a Ctrl-C then
     * must kill the worker, not set the parent's flag in its copy */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &old);
    pid_t pid = fork();
    if (pid < 0) {
        nb_error_set(err, NB_EIO, NULL, 0, "fork: %s", strerror(errno));
        sigprocmask(SIG_SETMASK, &old, NULL);
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        /* the worker */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        sigaction(SIGPIPE, &sa, NULL);
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (getppid() != c->parent)
            _exit(W_FAILED);
        close(pfd[0]);
        for (int j = 0; j < jobs; j++)
            if (wks[j].pid > 0)
                close(wks[j].fd);
        /* the claim now names this process too */
        char lockdir[PATH_SZ];
        lock_dir(c, &c->sw->runs[i], lockdir, sizeof lockdir);
        owner_write(c, lockdir, (long)c->parent, (long)getpid(), nonce);
        _exit(run_one(c, i, nonce, pfd[1]));
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(pfd[1]);
    fcntl(pfd[0], F_SETFL, fcntl(pfd[0], F_GETFL) | O_NONBLOCK);
    *fd_out = pfd[0];
    return pid;
}

static bool error_since(const struct ctx *c, const struct nb_run *r)
{
    char path[PATH_SZ + 16];
    struct stat st;
    run_dir(c, r, path, sizeof path);
    strncat(path, "/error.txt", sizeof path - strlen(path) - 1);
    return stat(path, &st) == 0 && st.st_mtime >= c->started;
}

static void print_table(FILE *out, const struct ctx *c, const size_t *sel,
                        size_t n, const struct outcome *oc,
                        const struct nb_runner_report *rep)
{
    bool all = n <= 50;
    char path[PATH_SZ];
    fprintf(out, "%-9s %6s  %-16s  %s\n", "status", "index", "run_id", "path");
    size_t hidden = 0;
    for (size_t k = 0; k < n; k++) {
        const struct nb_run *r = &c->sw->runs[sel[k]];
        int st = oc[k].state;
        if (!all && (st == NB_STATE_DONE)) {
            hidden++;
            continue;
        }
        run_dir(c, r, path, sizeof path);
        fprintf(out, "%-9s %6zu  %s  %s", nb_run_state_name((enum nb_run_state)st),
                r->index, r->run_id, path);
        if (st == NB_STATE_FAILED)
            fprintf(out, "/error.txt  %s", oc[k].note);
        else if (oc[k].note[0])
            fprintf(out, "  (%s)", oc[k].note);
        fputc('\n', out);
    }
    if (hidden)
        fprintf(out, "(%zu done runs not listed: see the summary)\n", hidden);
    fprintf(out, "total %zu: %zu done, %zu diverged, %zu failed", rep->total,
            rep->done, rep->diverged, rep->failed);
    if (rep->total - rep->done - rep->diverged - rep->failed)
        fprintf(out, ", %zu not finished",
                rep->total - rep->done - rep->diverged - rep->failed);
    fprintf(out, " (%zu already done before)\n", rep->skipped);
    if (rep->summary_path[0])
        fprintf(out, "summary: %s\n", rep->summary_path);
    fflush(out);
}

int nb_runner_run(const struct nb_sweep *sw, const struct nb_runner_opts *o,
                  struct nb_runner_report *rep, struct nb_error *err)
{
    memset(rep, 0, sizeof *rep);
    struct ctx c;
    ctx_init(&c, sw, o->results_dir, o->stale_after);
    int jobs = o->jobs > 0 ? o->jobs : 1;
    int rc = mkdir_p(c.locks, err);
    if (rc)
        return rc;

    size_t n = o->indices ? o->n_indices : sw->n_runs;
    size_t *sel = malloc((n ? n : 1) * sizeof *sel);
    size_t *queue = malloc((n ? n : 1) * sizeof *queue); /* positions in sel */
    size_t *held = malloc((n ? n : 1) * sizeof *held);
    struct outcome *oc = calloc(n ? n : 1, sizeof *oc);
    struct worker *wks = calloc((size_t)jobs, sizeof *wks);
    struct pollfd *pfds = calloc((size_t)jobs, sizeof *pfds);
    int *pslot = calloc((size_t)jobs, sizeof *pslot);
    struct nb_progress pg;
    memset(&pg, 0, sizeof pg);
    if (!sel || !queue || !held || !oc || !wks || !pfds || !pslot) {
        rc = nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
        goto out;
    }
    for (size_t k = 0; k < n; k++) {
        sel[k] = o->indices ? o->indices[k] : k;
        NB_ASSERT(sel[k] < sw->n_runs);
    }
    rep->total = n;

    /* what is done already */
    size_t nq = 0, qpos = 0, nheld = 0;
    for (size_t k = 0; k < n; k++) {
        int d = done_state(&c, &sw->runs[sel[k]]);
        if (d >= 0) {
            oc[k].state = d;
            oc[k].skipped = true;
            rep->skipped++;
        } else {
            oc[k].state = NB_STATE_PENDING;
            queue[nq++] = k;
        }
    }
    if (nb_progress_init(&pg, o->progress, stderr, n, jobs)) {
        rc = nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
        goto out;
    }
    nb_progress_skip(&pg, rep->skipped);
    if (nq) {
        size_t *todo = malloc(nq * sizeof *todo);
        if (todo) {
            for (size_t k = 0; k < nq; k++)
                todo[k] = sel[queue[k]];
            predecode(sw, todo, nq);
            free(todo);
        }
    }

    struct sigaction sa, old_int, old_term, old_hup, old_pipe;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    stop_signal = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, &old_pipe);

    int active = 0;
    double last_held_check = nb_now();
    nb_progress_tick(&pg, true);
    while (!stop_signal) {
        /* start runs while there are free workers */
        while (active < jobs && qpos < nq && !stop_signal) {
            size_t k = queue[qpos++];
            const struct nb_run *r = &sw->runs[sel[k]];
            char nonce[32];
            struct nb_error e;
            nb_error_clear(&e);
            int cl = claim(&c, r, nonce, sizeof nonce, &e);
            if (cl == CLAIM_DONE) {
                oc[k].state = done_state(&c, r);
                if (oc[k].state < 0)
                    oc[k].state = NB_STATE_DONE;
                oc[k].by_other = true;
                rep->by_others++;
                snprintf(oc[k].note, sizeof oc[k].note, "by another process");
                nb_progress_end(&pg, -1, oc[k].state == NB_STATE_DIVERGED
                                             ? NB_PROG_DIVERGED
                                             : NB_PROG_DONE);
                continue;
            }
            if (cl == CLAIM_BUSY) {
                held[nheld++] = k;
                pg.waiting = nheld;
                continue;
            }
            if (cl == CLAIM_ERROR) {
                oc[k].state = NB_STATE_FAILED;
                nb_error_format(&e, oc[k].note, sizeof oc[k].note);
                nb_progress_end(&pg, -1, NB_PROG_FAILED);
                nb_progress_log(&pg, "run %zu: %s", r->index, oc[k].note);
                continue;
            }
            int slot = 0;
            while (wks[slot].pid > 0)
                slot++;
            int fd;
            pid_t pid = spawn(&c, sel[k], nonce, wks, jobs, &fd, &e);
            if (pid < 0) {
                char lockdir[PATH_SZ];
                lock_release(lock_dir(&c, r, lockdir, sizeof lockdir), nonce);
                oc[k].state = NB_STATE_FAILED;
                nb_error_format(&e, oc[k].note, sizeof oc[k].note);
                nb_progress_end(&pg, -1, NB_PROG_FAILED);
                nb_progress_log(&pg, "run %zu: %s", r->index, oc[k].note);
                continue;
            }
            wks[slot] = (struct worker){.pid = pid, .fd = fd, .run = k};
            snprintf(wks[slot].nonce, sizeof wks[slot].nonce, "%s", nonce);
            oc[k].state = NB_STATE_RUNNING;
            active++;
            nb_progress_start(&pg, slot, r->index);
        }
        if (active == 0 && qpos >= nq && nheld == 0)
            break;

        /* wait for output, exits, or time to look at held runs */
        int np = 0;
        for (int j = 0; j < jobs; j++)
            if (wks[j].pid > 0) {
                pfds[np] = (struct pollfd){.fd = wks[j].fd, .events = POLLIN};
                pslot[np++] = j;
            }
        int timeout = pg.mode == NB_PROGRESS_BAR ? 100 : 1000;
        int pr = poll(pfds, (nfds_t)np, timeout);
        if (pr < 0 && errno != EINTR) {
            rc = nb_error_set(err, NB_EIO, NULL, 0, "poll: %s", strerror(errno));
            stop_signal = SIGTERM;
            break;
        }
        for (int q = 0; pr > 0 && q < np; q++) {
            if (!pfds[q].revents)
                continue;
            int j = pslot[q];
            struct worker *wk = &wks[j];
            if (worker_read(wk, &pg, j))
                continue;
            /* end of file: the worker is exiting */
            int ws = 0;
            while (waitpid(wk->pid, &ws, 0) < 0 && errno == EINTR)
                ;
            close(wk->fd);
            size_t k = wk->run;
            const struct nb_run *r = &sw->runs[sel[k]];
            char lockdir[PATH_SZ];
            lock_dir(&c, r, lockdir, sizeof lockdir);
            int d = done_state(&c, r); /* the disk, not the exit code, decides */
            if (d >= 0) {
                oc[k].state = d;
            } else if (WIFSIGNALED(ws) && stop_signal) {
                oc[k].state = NB_STATE_PENDING;
                snprintf(oc[k].note, sizeof oc[k].note, "interrupted");
                event(&c, "interrupted", r, "signal %d", WTERMSIG(ws));
            } else {
                oc[k].state = NB_STATE_FAILED;
                char why[256] = "";
                if (WIFSIGNALED(ws))
                    snprintf(why, sizeof why, "the worker was killed by signal %d (%s)",
                             WTERMSIG(ws), strsignal(WTERMSIG(ws)));
                else if (!WIFEXITED(ws) || WEXITSTATUS(ws) != W_FAILED)
                    snprintf(why, sizeof why, "the worker exited with status %d and no DONE",
                             WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
                if (why[0])
                    record_crash(&c, r, why);
                failure_note(&c, r, oc[k].note, sizeof oc[k].note);
            }
            lock_release(lockdir, wk->nonce);
            wk->pid = 0;
            active--;
            if (oc[k].state == NB_STATE_PENDING) {
                pg.slots[j].active = false;
            } else {
                nb_progress_end(&pg, j, oc[k].state == NB_STATE_DONE ? NB_PROG_DONE
                                        : oc[k].state == NB_STATE_DIVERGED
                                            ? NB_PROG_DIVERGED
                                            : NB_PROG_FAILED);
            }
            if (oc[k].state == NB_STATE_FAILED)
                nb_progress_log(&pg, "run %zu failed: %s", r->index, oc[k].note);
            else if (oc[k].state == NB_STATE_DIVERGED)
                nb_progress_log(&pg, "run %zu diverged", r->index);
        }

        /* runs that other processes hold */
        double now = nb_now();
        if (nheld && now - last_held_check >= 1.0) {
            last_held_check = now;
            /* queue holds n entries: drop the started prefix before
             * re-queueing (a pending run is queued or held, never both) */
            memmove(queue, queue + qpos, (nq - qpos) * sizeof *queue);
            nq -= qpos;
            qpos = 0;
            size_t keep = 0;
            for (size_t h = 0; h < nheld; h++) {
                size_t k = held[h];
                const struct nb_run *r = &sw->runs[sel[k]];
                int d = done_state(&c, r);
                enum nb_run_state st = d >= 0 ? (enum nb_run_state)d
                                              : nb_runner_state(sw, sel[k], o->results_dir,
                                                                o->stale_after);
                if (d >= 0) {
                    oc[k].state = d;
                    oc[k].by_other = true;
                    rep->by_others++;
                    snprintf(oc[k].note, sizeof oc[k].note, "by another process");
                    nb_progress_end(&pg, -1, d == NB_STATE_DIVERGED ? NB_PROG_DIVERGED
                                                                    : NB_PROG_DONE);
                } else if (st == NB_STATE_RUNNING) {
                    held[keep++] = k;
                } else if (st == NB_STATE_FAILED && error_since(&c, r)) {
                    oc[k].state = NB_STATE_FAILED;
                    oc[k].by_other = true;
                    failure_note(&c, r, oc[k].note, sizeof oc[k].note);
                    nb_progress_end(&pg, -1, NB_PROG_FAILED);
                } else {
                    /* released or stale: ours to run */
                    queue[nq++] = k;
                }
            }
            nheld = keep;
            pg.waiting = nheld;
        }
        nb_progress_tick(&pg, false);
    }

    if (stop_signal) {
        for (int j = 0; j < jobs; j++)
            if (wks[j].pid > 0)
                kill(wks[j].pid, SIGTERM);
        for (int j = 0; j < jobs; j++) {
            if (wks[j].pid <= 0)
                continue;
            int ws;
            while (waitpid(wks[j].pid, &ws, 0) < 0 && errno == EINTR)
                ;
            close(wks[j].fd);
            size_t k = wks[j].run;
            const struct nb_run *r = &sw->runs[sel[k]];
            char lockdir[PATH_SZ];
            int d = done_state(&c, r);
            if (d >= 0) {
                oc[k].state = d;
            } else {
                oc[k].state = NB_STATE_PENDING;
                snprintf(oc[k].note, sizeof oc[k].note, "interrupted");
                event(&c, "interrupted", r, "signal %d", (int)stop_signal);
            }
            lock_release(lock_dir(&c, r, lockdir, sizeof lockdir), wks[j].nonce);
            wks[j].pid = 0;
        }
        rep->signal = stop_signal;
        nb_progress_log(&pg, "interrupted by signal %d: the runs in flight are lost; "
                             "run the same command again to finish the rest",
                        (int)stop_signal);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    nb_progress_finish(&pg);

    for (size_t k = 0; k < n; k++) {
        if (oc[k].state == NB_STATE_DONE)
            rep->done++;
        else if (oc[k].state == NB_STATE_DIVERGED)
            rep->diverged++;
        else if (oc[k].state == NB_STATE_FAILED)
            rep->failed++;
    }
    if (o->summary && !rc) {
        struct nb_error e;
        nb_error_clear(&e);
        if (nb_runner_summary(sw, o->results_dir, rep->summary_path,
                              sizeof rep->summary_path, &e)) {
            char msg[1200];
            nb_progress_log(&pg, "summary: %s", nb_error_format(&e, msg, sizeof msg));
            if (!rep->summary_path[0])
                fprintf(stderr, "normbench: summary: %s\n", msg);
        }
    }
    if (o->out && !rc)
        print_table(o->out, &c, sel, n, oc, rep);

out:
    nb_progress_free(&pg);
    free(sel);
    free(queue);
    free(held);
    free(oc);
    free(wks);
    free(pfds);
    free(pslot);
    return rc;
}

/* ======================================================================
 * summary.csv
 * ====================================================================== */

struct finals {
    bool ok;
    double steps, epoch, train_loss, train_acc, test_loss, test_acc;
    double best_acc, best_step, to_target, wall;
};

static int read_finals(const struct ctx *c, const struct nb_run *r,
                       struct finals *f, struct nb_error *err)
{
    char path[PATH_SZ + 16], text[4096], v[64];
    struct nb_csv_table t;
    memset(f, 0, sizeof *f);
    run_dir(c, r, path, sizeof path);
    strncat(path, "/metrics.csv", sizeof path - strlen(path) - 1);
    int rc = nb_csv_read(path, &t, err);
    if (rc)
        return rc;
    int cs = nb_csv_col(&t, "step"), ce = nb_csv_col(&t, "epoch"),
        cl = nb_csv_col(&t, "train_loss"), ca = nb_csv_col(&t, "train_acc"),
        tl = nb_csv_col(&t, "test_loss"), ta = nb_csv_col(&t, "test_acc");
    if (cs < 0 || ce < 0 || cl < 0 || ca < 0 || tl < 0 || ta < 0) {
        nb_csv_table_free(&t);
        return nb_error_set(err, NB_EFORMAT, path, 1,
                            "missing columns (expected step, epoch, train_loss, "
                            "train_acc, test_loss, test_acc)");
    }
    double target = nb_run_get_double(r, "experiment", "target_accuracy");
    f->best_acc = f->best_step = f->to_target = NAN;
    f->steps = f->epoch = f->train_loss = f->train_acc = f->test_loss = f->test_acc = NAN;
    for (size_t i = 0; i < t.nrows && !rc; i++) {
        double step, acc;
        if ((rc = nb_csv_double(&t, i, cs, false, path, &step, err)) ||
            (rc = nb_csv_double(&t, i, ta, true, path, &acc, err)))
            break;
        if (isfinite(acc) && (isnan(f->best_acc) || acc > f->best_acc)) {
            f->best_acc = acc;
            f->best_step = step;
        }
        if (target > 0 && isnan(f->to_target) && acc >= target)
            f->to_target = step;
        if (i + 1 == t.nrows) {
            f->steps = step;
            if ((rc = nb_csv_double(&t, i, ce, true, path, &f->epoch, err)) ||
                (rc = nb_csv_double(&t, i, cl, true, path, &f->train_loss, err)) ||
                (rc = nb_csv_double(&t, i, ca, true, path, &f->train_acc, err)) ||
                (rc = nb_csv_double(&t, i, tl, true, path, &f->test_loss, err)))
                break;
            f->test_acc = acc;
        }
    }
    nb_csv_table_free(&t);
    if (rc)
        return rc;
    f->wall = NAN;
    run_dir(c, r, path, sizeof path);
    strncat(path, "/DONE", sizeof path - strlen(path) - 1);
    if (read_small(path, text, sizeof text) > 0 && kv_get(text, "wall_seconds", v, sizeof v))
        f->wall = strtod(v, NULL);
    f->ok = true;
    return 0;
}

static void put_num(struct nb_csvw *w, double v, bool ok)
{
    if (!ok || isnan(v))
        nb_csvw_missing(w);
    else
        nb_csvw_double(w, v);
}

static const char *const summary_metric_cols[] = {
    "steps", "final_epoch", "final_train_loss", "final_train_acc",
    "final_test_loss", "final_test_acc", "final_test_err", "best_test_acc",
    "best_test_err", "best_step", "steps_to_target", "diverged",
    "wall_seconds"};

int nb_runner_summary(const struct nb_sweep *sw, const char *results_dir,
                      char *path_out, size_t size, struct nb_error *err)
{
    struct ctx c;
    ctx_init(&c, sw, results_dir, 0);
    char path[PATH_SZ + 32], tmp[PATH_SZ + 64];
    pathf(path, sizeof path, "%s/summary.csv", c.exp);
    pathf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (path_out)
        path_out[0] = '\0';
    int rc = mkdir_p(c.exp, err);
    if (rc)
        return rc;

    const int nm = (int)(sizeof summary_metric_cols / sizeof summary_metric_cols[0]);
    int ncols = 4 + nm;
    const char **cols = malloc((size_t)(4 + nb_n_keys + nm) * sizeof *cols);
    char **names = calloc((size_t)nb_n_keys, sizeof *names);
    if (!cols || !names) {
        free(cols);
        free(names);
        return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
    }
    cols[0] = "index";
    cols[1] = "run_id";
    cols[2] = "status";
    cols[3] = "run_dir";
    ncols = 4;
    for (int i = 0; i < nb_n_keys; i++) {
        if (nb_keys[i].flags & NB_KF_STRUCT)
            continue;
        size_t len = strlen(nb_keys[i].section) + strlen(nb_keys[i].key) + 2;
        names[i] = malloc(len);
        if (!names[i]) {
            rc = nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
            goto out;
        }
        snprintf(names[i], len, "%s.%s", nb_keys[i].section, nb_keys[i].key);
        cols[ncols++] = names[i];
    }
    for (int i = 0; i < nm; i++)
        cols[ncols++] = summary_metric_cols[i];

    struct nb_csvw w;
    if ((rc = nb_csvw_open(&w, tmp, cols, ncols, err)))
        goto out;
    int first_err = 0;
    for (size_t i = 0; i < sw->n_runs && !rc; i++) {
        const struct nb_run *r = &sw->runs[i];
        enum nb_run_state st = nb_runner_state(sw, i, results_dir, 0);
        struct finals f;
        memset(&f, 0, sizeof f);
        if (st == NB_STATE_DONE || st == NB_STATE_DIVERGED) {
            struct nb_error e;
            if (read_finals(&c, r, &f, &e) && !first_err) {
                first_err = e.status;
                *err = e;
            }
        }
        char dir[PATH_SZ];
        nb_csvw_long(&w, (long long)r->index);
        nb_csvw_str(&w, r->run_id);
        nb_csvw_str(&w, nb_run_state_name(st));
        nb_csvw_str(&w, run_dir(&c, r, dir, sizeof dir));
        for (int k = 0; k < nb_n_keys; k++)
            if (!(nb_keys[k].flags & NB_KF_STRUCT))
                nb_csvw_str(&w, r->vals[k]->text);
        put_num(&w, f.steps, f.ok);
        put_num(&w, f.epoch, f.ok);
        put_num(&w, f.train_loss, f.ok);
        put_num(&w, f.train_acc, f.ok);
        put_num(&w, f.test_loss, f.ok);
        put_num(&w, f.test_acc, f.ok);
        put_num(&w, 1.0 - f.test_acc, f.ok);
        put_num(&w, f.best_acc, f.ok);
        put_num(&w, 1.0 - f.best_acc, f.ok);
        put_num(&w, f.best_step, f.ok);
        put_num(&w, f.to_target, f.ok);
        if (st == NB_STATE_DONE || st == NB_STATE_DIVERGED)
            nb_csvw_long(&w, st == NB_STATE_DIVERGED);
        else
            nb_csvw_missing(&w);
        put_num(&w, f.wall, f.ok);
        rc = nb_csvw_end_row(&w, err);
    }
    int rc2 = nb_csvw_close(&w, true, rc ? NULL : err);
    if (!rc)
        rc = rc2;
    if (!rc && rename(tmp, path) != 0)
        rc = nb_error_set(err, NB_EIO, path, 0, "cannot rename %s: %s", tmp,
                          strerror(errno));
    if (rc)
        unlink(tmp);
    else if (path_out)
        snprintf(path_out, size, "%s", path);
    if (!rc)
        rc = first_err;
out:
    for (int i = 0; i < nb_n_keys; i++)
        free(names[i]);
    free(names);
    free(cols);
    return rc;
}
