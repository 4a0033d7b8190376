/* src/run/rundir.c - run directories and their claims: small file helpers
 * (atomic writes, key = value text), the context of one invocation,
 * events.log, DONE and the lock directories that make a run start once (see
 * runner.h for the protocol). */
#include <config.h> /* autoconf's: PACKAGE_VERSION, NB_BUILD_CC, ... */

#include "run/runner.h"

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
#include "run/csvio.h"
#include "config/runcfg.h"

#include "run/runner_impl.h"

/* ======================================================================
 * Small file helpers
 * ====================================================================== */

__attribute__((format(printf, 3, 4))) const char *
rn_pathf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return buf;
}

int rn_mkdir_p(const char *path, struct nb_error *err)
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
int rn_write_atomic(const char *path, const char *text, bool sync,
                        struct nb_error *err)
{
    return rn_write_atomic_n(path, text, strlen(text), sync, err);
}

/* rn_write_atomic of n bytes of data. */
int rn_write_atomic_n(const char *path, const void *data, size_t n, bool sync,
                      struct nb_error *err)
{
    const char *text = data;
    char tmp[PATH_SZ + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0)
        return nb_error_set(err, NB_EIO, tmp, 0, "cannot create: %s",
                            strerror(errno));
    size_t off = 0;
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
long rn_read_small(const char *path, char *buf, size_t size)
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
bool rn_kv_get(const char *text, const char *key, char *out, size_t size)
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
__attribute__((format(printf, 3, 4))) void
rn_kvf(struct nb_text *t, const char *key, const char *fmt, ...)
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

void rn_utc_now(char *buf, size_t size)
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
                unlink(rn_pathf(p, sizeof p, "%s/%s", dir, e->d_name));
        closedir(d);
    }
    rmdir(dir);
}

/* ======================================================================
 * The context of one invocation
 * ====================================================================== */


/* The folder of run r's experiment folders: results_dir, else r's
 * [experiment] results_dir, "." when empty. */
const char *rn_results_root(const char *results_dir, const struct nb_run *r)
{
    const char *rd = results_dir ? results_dir
                                 : nb_run_get_str(r, "experiment", "results_dir");
    return rd[0] ? rd : ".";
}

const char *nb_runner_exp_dir(const struct nb_sweep *sw,
                              const char *results_dir, char *buf, size_t size)
{
    const struct nb_run *r = &sw->runs[0];
    return rn_pathf(buf, size, "%s/%s", rn_results_root(results_dir, r),
                    nb_run_get_str(r, "experiment", "name"));
}

void rn_ctx_init(struct ctx *c, const struct nb_sweep *sw,
                     const char *results_dir, double stale_after)
{
    memset(c, 0, sizeof *c);
    c->sw = sw;
    c->results_dir = results_dir;
    c->stale_after = stale_after > 0 ? stale_after : 300;
    nb_runner_exp_dir(sw, results_dir, c->exp, sizeof c->exp);
    rn_pathf(c->locks, sizeof c->locks, "%s/.locks", c->exp);
    if (gethostname(c->host, sizeof c->host - 1) != 0)
        snprintf(c->host, sizeof c->host, "unknown");
    for (char *p = c->host; *p; p++)
        if (*p == ' ' || *p == '\n')
            *p = '_';
    c->parent = getpid();
    c->started = time(NULL);
    c->jobs = 1;
}

const char *rn_run_dir(const struct ctx *c, const struct nb_run *r,
                           char *buf, size_t size)
{
    return rn_pathf(buf, size, "%s/%s", c->exp, r->run_id);
}

const char *rn_lock_dir(const struct ctx *c, const struct nb_run *r,
                            char *buf, size_t size)
{
    return rn_pathf(buf, size, "%s/%s", c->locks, r->run_id);
}

/* Appends one line to EXP/events.log (one write, O_APPEND). */
__attribute__((format(printf, 4, 5))) void
rn_event(const struct ctx *c, const char *what, const struct nb_run *r,
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
    rn_utc_now(when, sizeof when);
    int n = snprintf(line, sizeof line, "%s %s %ld %s %zu %s%s%s\n", when,
                     c->host, (long)getpid(), what, r->index, r->run_id,
                     detail[0] ? " " : "", detail);
    if (n <= 0)
        return;
    if ((size_t)n >= sizeof line) {
        n = (int)sizeof line - 1;
        line[n - 1] = '\n';
    }
    int fd = open(rn_pathf(path, sizeof path, "%s/events.log", c->exp),
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
int rn_done_state(const struct ctx *c, const struct nb_run *r)
{
    char dir[PATH_SZ];
    return rn_done_state_dir(rn_run_dir(c, r, dir, sizeof dir), r->run_id);
}

/* rn_done_state of the run run_id in directory dir. */
int rn_done_state_dir(const char *dir, const char *run_id)
{
    char path[PATH_SZ + 8], text[4096], v[64];
    rn_pathf(path, sizeof path, "%s/DONE", dir);
    if (rn_read_small(path, text, sizeof text) <= 0)
        return -1;
    if (!rn_kv_get(text, "run_id", v, sizeof v) || strcmp(v, run_id))
        return -1;
    if (!rn_kv_get(text, "status", v, sizeof v))
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
    if (pid <= 0 || rn_read_small(path, text, sizeof text) <= 0)
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
    rn_pathf(path, sizeof path, "%s/owner", lockdir);
    if (rn_read_small(path, text, sizeof text) > 0 && rn_kv_get(text, "host", w->host, sizeof w->host)) {
        w->ok = true;
        if (rn_kv_get(text, "pid", v, sizeof v))
            w->pid = strtol(v, NULL, 10);
        if (rn_kv_get(text, "worker", v, sizeof v))
            w->worker = strtol(v, NULL, 10);
        rn_kv_get(text, "nonce", w->nonce, sizeof w->nonce);
        if (rn_kv_get(text, "pid_start", v, sizeof v))
            w->pid_start = strtoull(v, NULL, 10);
        if (rn_kv_get(text, "worker_start", v, sizeof v))
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
    if (rn_read_small(path, text, sizeof text) > 0) {
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

int rn_owner_write(const struct ctx *c, const char *lockdir, long pid,
                       long worker, const char *nonce)
{
    char path[PATH_SZ + 16], when[32];
    struct nb_text t = {0};
    rn_utc_now(when, sizeof when);
    rn_kvf(&t, "host", "%s", c->host);
    rn_kvf(&t, "pid", "%ld", pid);
    rn_kvf(&t, "worker", "%ld", worker);
    rn_kvf(&t, "pid_start", "%llu", proc_start(pid));
    rn_kvf(&t, "worker_start", "%llu", worker > 0 ? proc_start(worker) : 0ULL);
    rn_kvf(&t, "nonce", "%s", nonce);
    rn_kvf(&t, "claimed_utc", "%s", when);
    int rc = t.s ? rn_write_atomic(rn_pathf(path, sizeof path, "%s/owner", lockdir),
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
void rn_lock_release(const char *lockdir, const char *nonce)
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
    rn_pathf(aside, sizeof aside, "%s.stale.%ld.%s", lockdir, (long)getpid(), nonce);
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

int rn_claim(const struct ctx *c, const struct nb_run *r, char *nonce,
                 size_t nsize, struct nb_error *err)
{
    char lockdir[PATH_SZ];
    rn_lock_dir(c, r, lockdir, sizeof lockdir);
    for (int attempt = 0; attempt < 5; attempt++) {
        if (rn_done_state(c, r) >= 0)
            return CLAIM_DONE;
        if (mkdir(lockdir, 0777) == 0) {
            make_nonce(nonce, nsize);
            if (rn_owner_write(c, lockdir, (long)getpid(), 0, nonce) != 0) {
                remove_tree_shallow(lockdir);
                nb_error_set(err, NB_EIO, lockdir, 0, "cannot write the claim");
                return CLAIM_ERROR;
            }
            if (rn_done_state(c, r) >= 0) { /* finished meanwhile */
                rn_lock_release(lockdir, nonce);
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

/* Is the last event of run r in events.log its end (done, diverged)?
 * Read only when a finished run's claim was left behind, which is rare. */
static bool last_event_is_end(const struct ctx *c, const struct nb_run *r)
{
    char path[PATH_SZ + 16], line[1200], what[32], id[512];
    FILE *f = fopen(rn_pathf(path, sizeof path, "%s/events.log", c->exp), "r");
    if (!f)
        return false;
    bool end = false;
    while (fgets(line, sizeof line, f)) {
        /* WHEN HOST PID WHAT INDEX RUN_ID [DETAIL] */
        if (sscanf(line, "%*s %*s %*s %31s %*s %511s", what, id) == 2 && !strcmp(id, r->run_id))
            end = !strcmp(what, "done") || !strcmp(what, "diverged");
    }
    fclose(f);
    return end;
}

void rn_done_tidy(const struct ctx *c, const struct nb_run *r, int state)
{
    char lockdir[PATH_SZ];
    struct stat st;
    if (stat(rn_lock_dir(c, r, lockdir, sizeof lockdir), &st) != 0)
        return;
    struct owner w;
    owner_read(lockdir, &w);
    if (!owner_stale(c, &w) || !lock_recover(c, lockdir, &w))
        return;
    if (!last_event_is_end(c, r))
        rn_event(c, state == NB_STATE_DIVERGED ? "diverged" : "done", r,
                 "recovered: its process was killed after writing DONE, before logging it");
}

enum nb_run_state nb_runner_state(const struct nb_sweep *sw, size_t i,
                                  const char *results_dir, double stale_after)
{
    struct ctx c;
    rn_ctx_init(&c, sw, results_dir, stale_after);
    const struct nb_run *r = &sw->runs[i];
    int d = rn_done_state(&c, r);
    if (d >= 0)
        return (enum nb_run_state)d;
    char path[PATH_SZ + 16];
    struct stat st;
    rn_lock_dir(&c, r, path, sizeof path);
    if (stat(path, &st) == 0) {
        struct owner w;
        owner_read(path, &w);
        if (!owner_stale(&c, &w))
            return NB_STATE_RUNNING;
    }
    rn_run_dir(&c, r, path, sizeof path);
    strncat(path, "/error.txt", sizeof path - strlen(path) - 1);
    if (stat(path, &st) == 0)
        return NB_STATE_FAILED;
    return NB_STATE_PENDING;
}

