/* src/run/runner.c - see runner.h: the pool that hands runs to worker
 * processes, and summary.csv (run directories and claims: rundir.c; one run:
 * worker.c). */
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
    o->rank_timeout = 1800;
    o->summary = true;
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
    rn_run_dir(c, r, path, sizeof path);
    strncat(path, "/error.txt", sizeof path - strlen(path) - 1);
    if (rn_read_small(path, text, sizeof text) > 0 && rn_kv_get(text, "error", buf, size))
        return;
    snprintf(buf, size, "failed (see %s)", path);
}

void rn_record_crash(const struct ctx *c, const struct nb_run *r, const char *why)
{
    char path[PATH_SZ + 16], text[16384], when[32];
    struct nb_text t = {0};
    rn_utc_now(when, sizeof when);
    rn_kvf(&t, "error", "%s", why);
    rn_kvf(&t, "end_utc", "%s", when);
    rn_run_dir(c, r, path, sizeof path);
    rn_mkdir_p(path, NULL);
    strncat(path, "/error.txt", sizeof path - strlen(path) - 1);
    if (t.s)
        rn_write_atomic(path, t.s, true, NULL);
    free(t.s);
    /* meta.txt: status failed */
    t = (struct nb_text){0};
    rn_run_dir(c, r, path, sizeof path);
    strncat(path, "/meta.txt", sizeof path - strlen(path) - 1);
    if (rn_read_small(path, text, sizeof text) > 0) {
        for (char *p = text; p && *p;) {
            char *eol = strchr(p, '\n');
            if (eol)
                *eol = '\0';
            if (strncmp(p, "status = ", 9)) {
                char *eq = strstr(p, " = ");
                if (eq) {
                    *eq = '\0';
                    rn_kvf(&t, p, "%s", eq + 3);
                }
            }
            p = eol ? eol + 1 : NULL;
        }
    }
    rn_kvf(&t, "status", "failed");
    rn_kvf(&t, "error", "%s", why);
    rn_kvf(&t, "end_utc", "%s", when);
    if (t.s)
        rn_write_atomic(path, t.s, false, NULL);
    free(t.s);
    rn_event(c, "failed", r, "%s", why);
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
        rn_lock_dir(c, &c->sw->runs[i], lockdir, sizeof lockdir);
        rn_owner_write(c, lockdir, (long)c->parent, (long)getpid(), nonce);
        _exit(rn_run_one(c, i, nonce, pfd[1], NULL));
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
    rn_run_dir(c, r, path, sizeof path);
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
        rn_run_dir(c, r, path, sizeof path);
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

/* The state of one nb_runner_run call: the runs selected, where each one
 * stands, and the workers running them. */
struct pool {
    struct ctx c;
    const struct nb_sweep *sw;
    const struct nb_runner_opts *o;
    struct nb_runner_report *rep;
    int jobs;
    size_t n;      /* runs selected */
    size_t *sel;   /* [n]: sweep indices */
    size_t *queue; /* [n]: positions in sel to start, [qpos, nq) */
    size_t nq, qpos;
    size_t *held; /* [n]: positions in sel that others hold, [0, nheld) */
    size_t nheld;
    struct outcome *oc;  /* [n] */
    struct worker *wks;  /* [jobs] */
    struct pollfd *pfds; /* [jobs] */
    int *pslot;          /* [jobs]: the worker of each pfds entry */
    int active;          /* workers running */
    struct nb_progress pg;
};

/* Selects the runs (o->indices or all), records those done before and
 * queues the rest; returns a status. */
static int pool_select(struct pool *P, struct nb_error *err)
{
    const struct nb_runner_opts *o = P->o;
    for (size_t k = 0; k < P->n; k++) {
        P->sel[k] = o->indices ? o->indices[k] : k;
        NB_ASSERT(P->sel[k] < P->sw->n_runs);
    }
    P->rep->total = P->n;
    /* what is done already */
    for (size_t k = 0; k < P->n; k++) {
        int d = rn_done_state(&P->c, &P->sw->runs[P->sel[k]]);
        if (d >= 0) {
            rn_done_tidy(&P->c, &P->sw->runs[P->sel[k]], d);
            P->oc[k].state = d;
            P->oc[k].skipped = true;
            P->rep->skipped++;
        } else {
            P->oc[k].state = NB_STATE_PENDING;
            P->queue[P->nq++] = k;
        }
    }
    if (nb_progress_init(&P->pg, o->progress, stderr, o->env ? o->env->term : NULL, P->n,
                         P->jobs))
        return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
    nb_progress_skip(&P->pg, P->rep->skipped);
    if (P->nq) {
        size_t *todo = malloc(P->nq * sizeof *todo);
        if (todo) {
            for (size_t k = 0; k < P->nq; k++)
                todo[k] = P->sel[P->queue[k]];
            predecode(P->sw, todo, P->nq);
            free(todo);
        }
    }
    return 0;
}

/* Starts queued runs while a worker is free: claims each one (a run that
 * another process finished is recorded, one it holds is held) and forks
 * its worker. */
static void pool_start(struct pool *P)
{
    struct ctx *c = &P->c;
    while (P->active < P->jobs && P->qpos < P->nq && !stop_signal) {
        size_t k = P->queue[P->qpos++];
        struct outcome *oc = &P->oc[k];
        const struct nb_run *r = &P->sw->runs[P->sel[k]];
        char nonce[32];
        struct nb_error e;
        nb_error_clear(&e);
        int cl = rn_claim(c, r, nonce, sizeof nonce, &e);
        if (cl == CLAIM_DONE) {
            oc->state = rn_done_state(c, r);
            if (oc->state < 0)
                oc->state = NB_STATE_DONE;
            oc->by_other = true;
            P->rep->by_others++;
            snprintf(oc->note, sizeof oc->note, "by another process");
            nb_progress_end(&P->pg, -1,
                            oc->state == NB_STATE_DIVERGED ? NB_PROG_DIVERGED : NB_PROG_DONE);
            continue;
        }
        if (cl == CLAIM_BUSY) {
            P->held[P->nheld++] = k;
            P->pg.waiting = P->nheld;
            continue;
        }
        if (cl == CLAIM_ERROR) {
            oc->state = NB_STATE_FAILED;
            nb_error_format(&e, oc->note, sizeof oc->note);
            nb_progress_end(&P->pg, -1, NB_PROG_FAILED);
            nb_progress_log(&P->pg, "run %zu: %s", r->index, oc->note);
            continue;
        }
        int slot = 0;
        while (P->wks[slot].pid > 0)
            slot++;
        int fd;
        pid_t pid = spawn(c, P->sel[k], nonce, P->wks, P->jobs, &fd, &e);
        if (pid < 0) {
            char lockdir[PATH_SZ];
            rn_lock_release(rn_lock_dir(c, r, lockdir, sizeof lockdir), nonce);
            oc->state = NB_STATE_FAILED;
            nb_error_format(&e, oc->note, sizeof oc->note);
            nb_progress_end(&P->pg, -1, NB_PROG_FAILED);
            nb_progress_log(&P->pg, "run %zu: %s", r->index, oc->note);
            continue;
        }
        P->wks[slot] = (struct worker){ .pid = pid, .fd = fd, .run = k };
        snprintf(P->wks[slot].nonce, sizeof P->wks[slot].nonce, "%s", nonce);
        oc->state = NB_STATE_RUNNING;
        P->active++;
        nb_progress_start(&P->pg, slot, r->index);
    }
}

/* Worker j closed its pipe: waits for it, records its run's outcome (the
 * disk decides, not the exit code) and releases the run's claim. */
static void pool_reap(struct pool *P, int j)
{
    struct ctx *c = &P->c;
    struct worker *wk = &P->wks[j];
    int ws = 0;
    while (waitpid(wk->pid, &ws, 0) < 0 && errno == EINTR)
        ;
    close(wk->fd);
    size_t k = wk->run;
    struct outcome *oc = &P->oc[k];
    const struct nb_run *r = &P->sw->runs[P->sel[k]];
    char lockdir[PATH_SZ];
    rn_lock_dir(c, r, lockdir, sizeof lockdir);
    int d = rn_done_state(c, r); /* the disk, not the exit code, decides */
    if (d >= 0) {
        oc->state = d;
    } else if (WIFSIGNALED(ws) && stop_signal) {
        oc->state = NB_STATE_PENDING;
        snprintf(oc->note, sizeof oc->note, "interrupted");
        rn_event(c, "interrupted", r, "signal %d", WTERMSIG(ws));
    } else {
        oc->state = NB_STATE_FAILED;
        char why[256] = "";
        if (WIFSIGNALED(ws))
            snprintf(why, sizeof why, "the worker was killed by signal %d (%s)", WTERMSIG(ws),
                     strsignal(WTERMSIG(ws)));
        else if (!WIFEXITED(ws) || WEXITSTATUS(ws) != W_FAILED)
            snprintf(why, sizeof why, "the worker exited with status %d and no DONE",
                     WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
        if (why[0])
            rn_record_crash(c, r, why);
        failure_note(c, r, oc->note, sizeof oc->note);
    }
    rn_lock_release(lockdir, wk->nonce);
    wk->pid = 0;
    P->active--;
    if (oc->state == NB_STATE_PENDING) {
        P->pg.slots[j].active = false;
    } else {
        nb_progress_end(&P->pg, j,
                        oc->state == NB_STATE_DONE       ? NB_PROG_DONE
                        : oc->state == NB_STATE_DIVERGED ? NB_PROG_DIVERGED
                                                         : NB_PROG_FAILED);
    }
    if (oc->state == NB_STATE_FAILED)
        nb_progress_log(&P->pg, "run %zu failed: %s", r->index, oc->note);
    else if (oc->state == NB_STATE_DIVERGED)
        nb_progress_log(&P->pg, "run %zu diverged", r->index);
}

/* Waits (at most a progress tick) for the workers' output and reads it,
 * reaping the workers that exit; returns a status (a failed poll sets
 * stop_signal). */
static int pool_wait(struct pool *P, struct nb_error *err)
{
    int np = 0;
    for (int j = 0; j < P->jobs; j++)
        if (P->wks[j].pid > 0) {
            P->pfds[np] = (struct pollfd){ .fd = P->wks[j].fd, .events = POLLIN };
            P->pslot[np++] = j;
        }
    int timeout = P->pg.mode == NB_PROGRESS_BAR ? 100 : 1000;
    int pr = poll(P->pfds, (nfds_t)np, timeout);
    if (pr < 0 && errno != EINTR) {
        int rc = nb_error_set(err, NB_EIO, NULL, 0, "poll: %s", strerror(errno));
        stop_signal = SIGTERM;
        return rc;
    }
    for (int q = 0; pr > 0 && q < np; q++) {
        if (!P->pfds[q].revents)
            continue;
        int j = P->pslot[q];
        if (worker_read(&P->wks[j], &P->pg, j))
            continue;
        /* end of file: the worker is exiting */
        pool_reap(P, j);
    }
    return 0;
}

/* Looks again at the runs other processes hold: records those they
 * finished or failed, requeues those released or stale. */
static void pool_recheck_held(struct pool *P)
{
    struct ctx *c = &P->c;
    /* queue holds n entries: drop the started prefix before
     * re-queueing (a pending run is queued or held, never both) */
    memmove(P->queue, P->queue + P->qpos, (P->nq - P->qpos) * sizeof *P->queue);
    P->nq -= P->qpos;
    P->qpos = 0;
    size_t keep = 0;
    for (size_t h = 0; h < P->nheld; h++) {
        size_t k = P->held[h];
        struct outcome *oc = &P->oc[k];
        const struct nb_run *r = &P->sw->runs[P->sel[k]];
        int d = rn_done_state(c, r);
        enum nb_run_state st =
            d >= 0 ? (enum nb_run_state)d
                   : nb_runner_state(P->sw, P->sel[k], P->o->results_dir, P->o->stale_after);
        if (d >= 0) {
            oc->state = d;
            oc->by_other = true;
            P->rep->by_others++;
            snprintf(oc->note, sizeof oc->note, "by another process");
            nb_progress_end(&P->pg, -1, d == NB_STATE_DIVERGED ? NB_PROG_DIVERGED : NB_PROG_DONE);
        } else if (st == NB_STATE_RUNNING) {
            P->held[keep++] = k;
        } else if (st == NB_STATE_FAILED && error_since(c, r)) {
            oc->state = NB_STATE_FAILED;
            oc->by_other = true;
            failure_note(c, r, oc->note, sizeof oc->note);
            nb_progress_end(&P->pg, -1, NB_PROG_FAILED);
        } else {
            /* released or stale: ours to run */
            P->queue[P->nq++] = k;
        }
    }
    P->nheld = keep;
    P->pg.waiting = P->nheld;
}

/* After a signal: stops the workers, records their runs as interrupted
 * (unless they finished) and releases their claims. */
static void pool_stop(struct pool *P)
{
    struct ctx *c = &P->c;
    for (int j = 0; j < P->jobs; j++)
        if (P->wks[j].pid > 0)
            kill(P->wks[j].pid, SIGTERM);
    for (int j = 0; j < P->jobs; j++) {
        struct worker *wk = &P->wks[j];
        if (wk->pid <= 0)
            continue;
        int ws;
        while (waitpid(wk->pid, &ws, 0) < 0 && errno == EINTR)
            ;
        close(wk->fd);
        struct outcome *oc = &P->oc[wk->run];
        const struct nb_run *r = &P->sw->runs[P->sel[wk->run]];
        char lockdir[PATH_SZ];
        int d = rn_done_state(c, r);
        if (d >= 0) {
            oc->state = d;
        } else {
            oc->state = NB_STATE_PENDING;
            snprintf(oc->note, sizeof oc->note, "interrupted");
            rn_event(c, "interrupted", r, "signal %d", (int)stop_signal);
        }
        rn_lock_release(rn_lock_dir(c, r, lockdir, sizeof lockdir), wk->nonce);
        wk->pid = 0;
    }
    P->rep->signal = stop_signal;
    nb_progress_log(&P->pg,
                    "interrupted by signal %d: the runs in flight are lost; "
                    "run the same command again to finish the rest",
                    (int)stop_signal);
}

int nb_runner_run(const struct nb_sweep *sw, const struct nb_runner_opts *o,
                  struct nb_runner_report *rep, struct nb_error *err)
{
    memset(rep, 0, sizeof *rep);
    struct pool P = { .sw = sw, .o = o, .rep = rep };
    rn_ctx_init(&P.c, sw, o->results_dir, o->stale_after);
    P.c.blas_coretype = o->env ? o->env->openblas_coretype : NULL;
    P.jobs = o->jobs > 0 ? o->jobs : 1;
    P.c.jobs = P.jobs;
    int rc = nb_runner_check_sources(sw, o, NULL, 0, err);
    if (rc || (rc = rn_mkdir_p(P.c.locks, err)))
        return rc;

    size_t n = o->indices ? o->n_indices : sw->n_runs;
    P.n = n;
    P.sel = malloc((n ? n : 1) * sizeof *P.sel);
    P.queue = malloc((n ? n : 1) * sizeof *P.queue);
    P.held = malloc((n ? n : 1) * sizeof *P.held);
    P.oc = calloc(n ? n : 1, sizeof *P.oc);
    P.wks = calloc((size_t)P.jobs, sizeof *P.wks);
    P.pfds = calloc((size_t)P.jobs, sizeof *P.pfds);
    P.pslot = calloc((size_t)P.jobs, sizeof *P.pslot);
    if (!P.sel || !P.queue || !P.held || !P.oc || !P.wks || !P.pfds || !P.pslot) {
        rc = nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
        goto out;
    }
    if ((rc = pool_select(&P, err)))
        goto out;

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

    double last_held_check = nb_now();
    nb_progress_tick(&P.pg, true);
    while (!stop_signal) {
        pool_start(&P);
        if (P.active == 0 && P.qpos >= P.nq && P.nheld == 0)
            break;
        /* wait for output, exits, or time to look at held runs */
        if ((rc = pool_wait(&P, err)))
            break;
        /* runs that other processes hold */
        double now = nb_now();
        if (P.nheld && now - last_held_check >= 1.0) {
            last_held_check = now;
            pool_recheck_held(&P);
        }
        nb_progress_tick(&P.pg, false);
    }

    if (stop_signal)
        pool_stop(&P);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    nb_progress_finish(&P.pg);

    for (size_t k = 0; k < n; k++) {
        if (P.oc[k].state == NB_STATE_DONE)
            rep->done++;
        else if (P.oc[k].state == NB_STATE_DIVERGED)
            rep->diverged++;
        else if (P.oc[k].state == NB_STATE_FAILED)
            rep->failed++;
    }
    if (o->summary && !rc) {
        struct nb_error e;
        nb_error_clear(&e);
        if (nb_runner_summary(sw, o->results_dir, rep->summary_path, sizeof rep->summary_path,
                              &e)) {
            char msg[1200];
            nb_progress_log(&P.pg, "summary: %s", nb_error_format(&e, msg, sizeof msg));
            if (!rep->summary_path[0])
                fprintf(stderr, "normbench: summary: %s\n", msg);
        }
    }
    if (o->out && !rc)
        print_table(o->out, &P.c, P.sel, n, P.oc, rep);

out:
    nb_progress_free(&P.pg);
    free(P.sel);
    free(P.queue);
    free(P.held);
    free(P.oc);
    free(P.wks);
    free(P.pfds);
    free(P.pslot);
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
    rn_run_dir(c, r, path, sizeof path);
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
    rn_run_dir(c, r, path, sizeof path);
    strncat(path, "/DONE", sizeof path - strlen(path) - 1);
    if (rn_read_small(path, text, sizeof text) > 0 && rn_kv_get(text, "wall_seconds", v, sizeof v))
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
    rn_ctx_init(&c, sw, results_dir, 0);
    char path[PATH_SZ + 32], tmp[PATH_SZ + 64];
    rn_pathf(path, sizeof path, "%s/summary.csv", c.exp);
    rn_pathf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (path_out)
        path_out[0] = '\0';
    int rc = rn_mkdir_p(c.exp, err);
    if (rc)
        return rc;

    const int nm = (int)(sizeof summary_metric_cols / sizeof summary_metric_cols[0]);
    int ncols = 4 + nm;
    const char **cols = malloc((size_t)(4 + nb_key_count() + nm) * sizeof *cols);
    char **names = calloc((size_t)nb_key_count(), sizeof *names);
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
    for (int i = 0; i < nb_key_count(); i++) {
        if (nb_key_at(i)->flags & NB_KF_STRUCT)
            continue;
        size_t len = strlen(nb_key_at(i)->section) + strlen(nb_key_at(i)->key) + 2;
        names[i] = malloc(len);
        if (!names[i]) {
            rc = nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
            goto out;
        }
        snprintf(names[i], len, "%s.%s", nb_key_at(i)->section, nb_key_at(i)->key);
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
        nb_csvw_str(&w, rn_run_dir(&c, r, dir, sizeof dir));
        for (int k = 0; k < nb_key_count(); k++)
            if (!(nb_key_at(k)->flags & NB_KF_STRUCT))
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
    for (int i = 0; i < nb_key_count(); i++)
        free(names[i]);
    free(names);
    free(cols);
    return rc;
}

