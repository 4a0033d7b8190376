/* src/run/runner_impl.h - what the runner's files (rundir.c, worker.c,
 * runner.c, ranks.c, initfrom.c, slurm.c, and fold.c, which reads run
 * directories and writes a checkpoint as they do) share and nothing else
 * includes. Each function's contract is at its
 * definition (or here, where it has none there). */
#ifndef NB_HARNESS_RUNNER_IMPL_H
#define NB_HARNESS_RUNNER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "core/comm.h"
#include "core/error.h"
#include "core/text.h"
#include "run/runner.h"
#include "config/sweep.h"

#define PATH_SZ 2048

/* exit codes of a worker process */
enum { W_DONE = 0, W_FAILED = 1, W_DIVERGED = 3 };

/* The context of one invocation. */
struct ctx {
    const struct nb_sweep *sw;
    const char *results_dir; /* NULL: the config's */
    double stale_after;
    const char *blas_coretype; /* $OPENBLAS_CORETYPE (NULL: unset), for meta.txt */
    int jobs;                  /* runs at once in this invocation (-j; 1 under MPI) */
    char exp[PATH_SZ];
    char locks[PATH_SZ];
    char host[256];
    pid_t parent;
    time_t started;
};

/* ---- rundir.c ---- */

__attribute__((format(printf, 3, 4))) const char *rn_pathf(char *buf, size_t size, const char *fmt,
                                                           ...);

/* mkdir -p; 0 or NB_EIO with err naming the path. */
int rn_mkdir_p(const char *path, struct nb_error *err);

/* Writes text to path through path.tmp.PID and rename; with sync, fsyncs
 * the file before the rename and the directory after it. */
int rn_write_atomic(const char *path, const char *text, bool sync, struct nb_error *err);
/* The same for n bytes of data (a weight checkpoint). */
int rn_write_atomic_n(const char *path, const void *data, size_t n, bool sync,
                      struct nb_error *err);

/* Reads a small file into buf (NUL-terminated); returns its length or -1. */
long rn_read_small(const char *path, char *buf, size_t size);

/* The value of "key = value" in text (a meta.txt / DONE / owner file). */
bool rn_kv_get(const char *text, const char *key, char *out, size_t size);

/* Appends "key = value\n" to t (line breaks in the value become spaces). */
__attribute__((format(printf, 3, 4))) void rn_kvf(struct nb_text *t, const char *key,
                                                  const char *fmt, ...);

/* The current UTC time as "YYYY-MM-DDTHH:MM:SSZ". */
void rn_utc_now(char *buf, size_t size);

/* The context of this invocation: the experiment and lock directories, the
 * host name, our pid and the start time. */
void rn_ctx_init(struct ctx *c, const struct nb_sweep *sw, const char *results_dir,
                 double stale_after);

/* EXP/RUN_ID of run r, into buf. */
const char *rn_run_dir(const struct ctx *c, const struct nb_run *r, char *buf, size_t size);

/* EXP/.locks/RUN_ID of run r, into buf. */
const char *rn_lock_dir(const struct ctx *c, const struct nb_run *r, char *buf, size_t size);

/* Appends one line to EXP/events.log (one write, O_APPEND). */
__attribute__((format(printf, 4, 5))) void rn_event(const struct ctx *c, const char *what,
                                                    const struct nb_run *r, const char *fmt, ...);

/* NB_STATE_DONE / NB_STATE_DIVERGED when the run's DONE is valid, else -1. */
int rn_done_state(const struct ctx *c, const struct nb_run *r);
/* The same for the run run_id whose directory is dir (a run of another
 * sweep: [model] init_from's sources). */
int rn_done_state_dir(const char *dir, const char *run_id);

/* Run r is done (state: rn_done_state's): takes over the claim its
 * process left behind when it was killed (SIGKILL, a crash, power loss)
 * between writing DONE and releasing the claim, and logs the end event
 * that process did not get to log. */
void rn_done_tidy(const struct ctx *c, const struct nb_run *r, int state);

/* The folder of run r's experiment folders: results_dir (an override),
 * else r's [experiment] results_dir, "." when that is empty. */
const char *rn_results_root(const char *results_dir, const struct nb_run *r);

/* Writes lockdir/owner (host, pid and start time, worker, nonce). */
int rn_owner_write(const struct ctx *c, const char *lockdir, long pid, long worker,
                   const char *nonce);

/* Releases the claim at lockdir when it still carries our nonce. */
void rn_lock_release(const char *lockdir, const char *nonce);

/* Claims run r by creating its lock directory (a stale claim is taken
 * over): CLAIM_OK with nonce set when this process now owns it,
 * CLAIM_DONE when it is done, CLAIM_BUSY when another live process holds
 * it, CLAIM_ERROR with err set. */
enum { CLAIM_OK = 0, CLAIM_DONE, CLAIM_BUSY, CLAIM_ERROR };
int rn_claim(const struct ctx *c, const struct nb_run *r, char *nonce, size_t nsize,
             struct nb_error *err);

/* ---- worker.c ---- */

/* Runs sweep run i in this process; returns W_DONE, W_DIVERGED or
 * W_FAILED (error.txt written).  fd: the progress pipe to the pool, or
 * -1.  comm (NULL: one process): as rank 0 of the run's ranks. */
int rn_run_one(const struct ctx *c, size_t i, const char *nonce, int fd,
               const struct nb_comm *comm);

/* Runs sweep run i as rank comm->rank > 0 of its ranks: the config, the
 * data and the training of its slices, writing nothing (errors go to
 * stderr); returns W_DONE, W_DIVERGED or W_FAILED, as rank 0 will. */
int rn_run_peer(const struct ctx *c, size_t i, const struct nb_comm *comm);

/* ---- runner.c ---- */

/* Records the failure of a run whose process died without doing so
 * itself: error.txt (why), meta.txt's status failed, the event. */
void rn_record_crash(const struct ctx *c, const struct nb_run *r, const char *why);

#endif
