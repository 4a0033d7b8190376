/* src/run/runner.c - see runner.h: the pool that hands runs to worker processes, and summary.csv (run directories and claims: rundir.c; one run: worker.c). */
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

/* Records the failure of a worker that died without doing so itself. */
static void record_crash(const struct ctx *c, const struct nb_run *r,
                         const char *why)
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
        _exit(rn_run_one(c, i, nonce, pfd[1]));
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

int nb_runner_run(const struct nb_sweep *sw, const struct nb_runner_opts *o,
                  struct nb_runner_report *rep, struct nb_error *err)
{
    memset(rep, 0, sizeof *rep);
    struct ctx c;
    rn_ctx_init(&c, sw, o->results_dir, o->stale_after);
    int jobs = o->jobs > 0 ? o->jobs : 1;
    int rc = rn_mkdir_p(c.locks, err);
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
        int d = rn_done_state(&c, &sw->runs[sel[k]]);
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
            int cl = rn_claim(&c, r, nonce, sizeof nonce, &e);
            if (cl == CLAIM_DONE) {
                oc[k].state = rn_done_state(&c, r);
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
                rn_lock_release(rn_lock_dir(&c, r, lockdir, sizeof lockdir), nonce);
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
            rn_lock_dir(&c, r, lockdir, sizeof lockdir);
            int d = rn_done_state(&c, r); /* the disk, not the exit code, decides */
            if (d >= 0) {
                oc[k].state = d;
            } else if (WIFSIGNALED(ws) && stop_signal) {
                oc[k].state = NB_STATE_PENDING;
                snprintf(oc[k].note, sizeof oc[k].note, "interrupted");
                rn_event(&c, "interrupted", r, "signal %d", WTERMSIG(ws));
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
            rn_lock_release(lockdir, wk->nonce);
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
                int d = rn_done_state(&c, r);
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
            int d = rn_done_state(&c, r);
            if (d >= 0) {
                oc[k].state = d;
            } else {
                oc[k].state = NB_STATE_PENDING;
                snprintf(oc[k].note, sizeof oc[k].note, "interrupted");
                rn_event(&c, "interrupted", r, "signal %d", (int)stop_signal);
            }
            rn_lock_release(rn_lock_dir(&c, r, lockdir, sizeof lockdir), wks[j].nonce);
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
        nb_csvw_str(&w, rn_run_dir(&c, r, dir, sizeof dir));
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

