/* src/run/ranks.c - see runner.h (nb_runner_run_ranks): the selected runs
 * one after another, each split over the ranks of an MPI job.
 *
 * Rank 0 is the runner: it claims each run, writes its directory
 * (worker.c's rn_run_one with the comm) and tells the other ranks, which
 * write nothing, whether to train it (rn_run_peer) and how it ended.  A
 * rank that dies mid-run makes mpirun stop the job (it signals every
 * rank's process group); rank 0 cannot record that itself when it is the
 * one killed, so before each run it forks a watcher into a process group
 * of its own: the watcher reads a pipe only rank 0 writes, and when the
 * pipe closes without "ok" (rank 0 died, or was stopped: its signal
 * handler names the signal first) it records the run failed, as the pool
 * records a worker killed by a signal, and releases the claim.  The
 * watcher calls no MPI function and ends with _exit. */
#include "run/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/runcfg.h"
#include "run/runner_impl.h"

/* the watcher's pipe, for rank 0's signal handler (-1: none) */
static volatile int watch_fd = -1;

/* Rank 0 stopped by a signal mid-run: tells the watcher which, then dies
 * of it (only async-signal-safe calls). */
static void on_stop_signal(int sig)
{
    int fd = watch_fd;
    if (fd >= 0) {
        char msg[8] = {'S', (char)('0' + sig / 10 % 10), (char)('0' + sig % 10), '\n'};
        ssize_t k = write(fd, msg, 4);
        (void)k;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* The watcher's life: waits for the pipe to close, then records run i
 * failed unless rank 0 said "ok". */
static _Noreturn void watch(const struct ctx *c, size_t i, const char *nonce, int fd)
{
    char buf[64];
    size_t n = 0;
    for (;;) {
        ssize_t k = read(fd, buf + n, sizeof buf - 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
        if (n >= sizeof buf - 1)
            n = 0;
    }
    buf[n] = '\0';
    if (strstr(buf, "ok"))
        _exit(0);
    const struct nb_run *r = &c->sw->runs[i];
    char why[256];
    const char *s = strchr(buf, 'S');
    int sig = s ? atoi(s + 1) : 0;
    if (sig > 0)
        snprintf(why, sizeof why,
                 "MPI rank 0 was stopped by signal %d (%s) mid-run: a rank died, or the "
                 "job was interrupted (mpirun's output says which)", sig, strsignal(sig));
    else
        snprintf(why, sizeof why,
                 "MPI rank 0 ended mid-run (killed, or the job was aborted: mpirun's "
                 "output says why)");
    if (rn_done_state(c, r) < 0)
        rn_record_crash(c, r, why);
    char lockdir[PATH_SZ];
    rn_lock_release(rn_lock_dir(c, r, lockdir, sizeof lockdir), nonce);
    _exit(0);
}

/* Forks the watcher of run i; returns its pid (the write end of its pipe
 * in *wfd), or -1 when it could not (then the run goes on unwatched). */
static pid_t watch_start(const struct ctx *c, size_t i, const char *nonce, int *wfd)
{
    int pfd[2];
    *wfd = -1;
    if (pipe(pfd) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        /* out of rank 0's process group, which mpirun signals, and off
         * the job's output */
        setpgid(0, 0);
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        close(pfd[1]);
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
        }
        watch(c, i, nonce, pfd[0]);
    }
    close(pfd[0]);
    fcntl(pfd[1], F_SETFD, FD_CLOEXEC);
    *wfd = pfd[1];
    return pid;
}

/* Tells the watcher the run ended (ok: recorded by rank 0 itself) and
 * waits for it. */
static void watch_end(pid_t pid, int fd)
{
    if (fd >= 0) {
        ssize_t k = write(fd, "ok\n", 3);
        (void)k;
        close(fd);
    }
    while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* Rank 0's run i, watched and with the stop signals reported. */
static int root_run(const struct ctx *c, size_t i, const char *nonce,
                    const struct nb_comm *comm)
{
    int fd;
    pid_t w = watch_start(c, i, nonce, &fd);
    struct sigaction sa, old[3];
    static const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    watch_fd = fd;
    for (int k = 0; k < 3; k++)
        sigaction(sigs[k], &sa, &old[k]);
    int code = rn_run_one(c, i, nonce, -1, comm);
    for (int k = 0; k < 3; k++)
        sigaction(sigs[k], &old[k], NULL);
    watch_fd = -1;
    watch_end(w, fd);
    return code;
}

/* What rank 0 decided about a run, sent to every rank. */
enum { GO = 0, SKIP_DONE, SKIP_BY_OTHER, SKIP_BUSY, CLAIM_FAILED };

/* Rank 0: whether run i is to be run, its claim's nonce when so. */
static int root_decide(const struct ctx *c, size_t i, char *nonce, size_t nsize, char *note,
                       size_t notesize)
{
    const struct nb_run *r = &c->sw->runs[i];
    int d = rn_done_state(c, r);
    if (d >= 0) {
        rn_done_tidy(c, r, d);
        return SKIP_DONE;
    }
    struct nb_error e;
    nb_error_clear(&e);
    switch (rn_claim(c, r, nonce, nsize, &e)) {
    case CLAIM_OK: return GO;
    case CLAIM_DONE: return SKIP_BY_OTHER;
    case CLAIM_BUSY:
        snprintf(note, notesize, "held by another process: not run");
        return SKIP_BUSY;
    default:
        nb_error_format(&e, note, notesize);
        return CLAIM_FAILED;
    }
}

/* Every selected run passes the checks of a split run; returns a status
 * with err at the config line of the first that does not. */
static int check_runs(const struct nb_sweep *sw, const struct nb_runner_opts *o, int K,
                      struct nb_error *err)
{
    size_t n = o->indices ? o->n_indices : sw->n_runs;
    for (size_t k = 0; k < n; k++) {
        size_t i = o->indices ? o->indices[k] : k;
        int rc = nb_runcfg_check_ranks(&sw->runs[i], K, err);
        if (rc) {
            char lab[96];
            snprintf(lab, sizeof lab, " (run %zu)", i);
            strncat(err->msg, lab, sizeof err->msg - strlen(err->msg) - 1);
            return rc;
        }
    }
    return 0;
}

/* The error of run r's error.txt (rank 0). */
static void error_note(const struct ctx *c, const struct nb_run *r, char *note, size_t size)
{
    char path[PATH_SZ + 16], text[4096];
    rn_run_dir(c, r, path, sizeof path);
    strncat(path, "/error.txt", sizeof path - strlen(path) - 1);
    if (rn_read_small(path, text, sizeof text) <= 0 || !rn_kv_get(text, "error", note, size))
        snprintf(note, size, "failed");
}

/* Counts run i's outcome into rep and prints its line (rank 0). */
static void tell(const struct nb_runner_opts *o, const struct ctx *c, size_t i, int state,
                 const char *note, struct nb_runner_report *rep, const struct nb_comm *comm)
{
    if (state == NB_STATE_DONE)
        rep->done++;
    else if (state == NB_STATE_DIVERGED)
        rep->diverged++;
    else if (state == NB_STATE_FAILED)
        rep->failed++;
    if (comm->rank != 0 || !o->out)
        return;
    const struct nb_run *r = &c->sw->runs[i];
    char dir[PATH_SZ];
    fprintf(o->out, "%-9s %6zu  %s  %s%s%s\n", nb_run_state_name((enum nb_run_state)state),
            r->index, r->run_id, rn_run_dir(c, r, dir, sizeof dir),
            state == NB_STATE_FAILED ? "/error.txt  " : note[0] ? "  " : "", note);
    fflush(o->out);
}

int nb_runner_run_ranks(const struct nb_sweep *sw, const struct nb_runner_opts *o,
                        const struct nb_comm *comm, struct nb_runner_report *rep,
                        struct nb_error *err)
{
    memset(rep, 0, sizeof *rep);
    NB_ASSERT(nb_comm_active(comm));
    int rc = check_runs(sw, o, comm->size, err);
    if (rc || (rc = nb_runner_check_sources(sw, o, NULL, 0, err)))
        return rc;
    const bool root = comm->rank == 0;
    struct ctx c;
    rn_ctx_init(&c, sw, o->results_dir, o->stale_after);
    c.blas_coretype = o->env ? o->env->openblas_coretype : NULL;
    rc = root ? rn_mkdir_p(c.locks, err) : 0;
    if (nb_comm_first(comm, rc != 0) >= 0)
        return rc ? rc : nb_error_set(err, NB_EIO, NULL, 0,
                                      "MPI rank 0 could not create the results directory");
    size_t n = o->indices ? o->n_indices : sw->n_runs;
    rep->total = n;
    if (root && o->out)
        fprintf(o->out, "%-9s %6s  %-16s  %s\n", "status", "index", "run_id", "path");
    for (size_t k = 0; k < n; k++) {
        size_t i = o->indices ? o->indices[k] : k;
        char nonce[32] = "", note[600] = "";
        int what = root ? root_decide(&c, i, nonce, sizeof nonce, note, sizeof note) : GO;
        what = (int)nb_comm_root(comm, what);
        int state = NB_STATE_PENDING;
        if (what == SKIP_DONE || what == SKIP_BY_OTHER) {
            state = root ? rn_done_state(&c, &sw->runs[i]) : NB_STATE_DONE;
            state = state < 0 ? NB_STATE_DONE : state;
            rep->skipped += what == SKIP_DONE;
            rep->by_others += what == SKIP_BY_OTHER;
            snprintf(note, sizeof note, "%s",
                     what == SKIP_DONE ? "already done" : "by another process");
        } else if (what == CLAIM_FAILED) {
            state = NB_STATE_FAILED;
        } else if (what == GO) {
            if (root && o->progress != NB_PROGRESS_NONE)
                fprintf(stderr, "normbench: run %zu (%s) on %d MPI ranks\n",
                        sw->runs[i].index, sw->runs[i].run_id, comm->size);
            int code = root ? root_run(&c, i, nonce, comm) : rn_run_peer(&c, i, comm);
            code = (int)nb_comm_root(comm, code);
            state = code == W_DONE ? NB_STATE_DONE
                    : code == W_DIVERGED ? NB_STATE_DIVERGED : NB_STATE_FAILED;
            if (root && state == NB_STATE_FAILED)
                error_note(&c, &sw->runs[i], note, sizeof note);
        }
        tell(o, &c, i, state, note, rep, comm);
    }
    if (root && o->summary) {
        struct nb_error e;
        nb_error_clear(&e);
        if (nb_runner_summary(sw, o->results_dir, rep->summary_path, sizeof rep->summary_path,
                              &e)) {
            char msg[1200];
            fprintf(stderr, "normbench: summary: %s\n", nb_error_format(&e, msg, sizeof msg));
        }
    }
    if (root && o->out) {
        fprintf(o->out, "total %zu: %zu done, %zu diverged, %zu failed (%zu already done "
                "before)\n", rep->total, rep->done, rep->diverged, rep->failed, rep->skipped);
        if (rep->summary_path[0])
            fprintf(o->out, "summary: %s\n", rep->summary_path);
    }
    return 0;
}
