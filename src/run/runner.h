/* src/run/runner.h - running a sweep: run directories, locks, the
 * completion marker, a fork-based pool, signals and the summary.
 *
 * On disk, per experiment (EXP = RESULTS_DIR/NAME, [experiment] name and
 * results_dir, the latter relative to the working directory):
 *
 *   EXP/RUN_ID/config.ini   the resolved config (reads back to RUN_ID)
 *   EXP/RUN_ID/meta.txt     key = value: seeds, versions, host, times, status
 *   EXP/RUN_ID/metrics.csv  one row per evaluation (deterministic)
 *   EXP/RUN_ID/timing.csv   step and wall seconds of each evaluation
 *   EXP/RUN_ID/probes.csv   probe rows, slice.csv slices (when probes are on)
 *   EXP/RUN_ID/weights.nbw  with [train] save_weights: the parameters and
 *                           running statistics at the end of a training
 *                           that finished (model/checkpoint.h), written
 *                           atomically before DONE
 *   EXP/RUN_ID/error.txt    why a run failed (no DONE then)
 *   EXP/RUN_ID/DONE         written last, atomically (write, fsync, rename,
 *                           fsync of the directory): status done or diverged
 *   EXP/.locks/RUN_ID/      the claim of a run in flight (mkdir is atomic,
 *                           also on NFS); its file `owner` names host, pids
 *                           and start, and its mtime is the heartbeat
 *   EXP/events.log          one line per start / end of a run (host, pid)
 *   EXP/summary.csv         one row per run of the sweep
 *
 * A run is done when its DONE parses and names its run_id with status done
 * or diverged; done runs are skipped.
 *
 * A run with [model] init_from starts from the weights.nbw of a run of
 * another experiment under the same results directory (the override, or
 * the run's [experiment] results_dir): nb_init_resolve finds it among
 * that experiment's run directories (the runs that are done, by their
 * DONE, with a weights.nbw, whose config.ini fits the selector,
 * config/selector.h), the worker reads it before the data and training
 * loads it into the freshly initialised model; meta.txt records
 * init_from_experiment, init_from_run_id and init_from_checksum.  A
 * source that cannot be found or read fails that run alone (error.txt),
 * like any other failed run.  nb_runner_run refuses a sweep, before
 * anything runs, whose init_from names an experiment that has no results
 * directory at all (nb_runner_check_sources).  A claim is stale, and is taken
 * over, when every process it names on this host is gone, or when its
 * heartbeat is older than stale_after seconds (other hosts).  A failed run
 * (error while preparing data, building the model or writing files; a
 * worker killed by a signal) leaves error.txt and no DONE, so the next
 * `run` tries it again.
 *
 * The pool forks one worker process per run (at most `jobs` at a time),
 * after the parent has decoded the data sets once (workers share those
 * pages).  A worker sets its BLAS threads ([train] threads), trains,
 * writes the files, and ends with _exit; a worker that crashes only fails
 * its run.  SIGINT / SIGTERM / SIGHUP stop the pool: workers get SIGTERM,
 * their claims are released, and the runs in flight are lost (nothing
 * else).  On Linux a worker dies with its parent (PR_SET_PDEATHSIG), so a
 * SIGKILLed pool leaves stale claims that the next `run` takes over.  A
 * worker killed after its DONE and before its end event and the release
 * leaves a done run with a stale claim: the next `run` takes that over
 * too and logs the missing end, marked "recovered". */
#ifndef NB_HARNESS_RUNNER_H
#define NB_HARNESS_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/env.h"
#include "core/error.h"
#include "run/progress.h"
#include "config/selector.h"
#include "config/sweep.h"

struct nb_runner_opts {
    int jobs;                 /* worker processes (>= 1) */
    const char *results_dir;  /* NULL: the config's [experiment] results_dir */
    const size_t *indices;    /* run only these (sweep indices); NULL: all */
    size_t n_indices;
    enum nb_progress_mode progress;
    double stale_after;       /* seconds without heartbeat (default 300) */
    double rank_timeout;      /* MPI runs: seconds a rank waits for the others
                                 in one exchange before it aborts the job
                                 (default 1800; 0 = no limit) */
    bool summary;             /* rewrite EXP/summary.csv at the end */
    FILE *out;                /* the closing table (stdout); NULL: none */
    const struct nb_env *env; /* TERM, OPENBLAS_CORETYPE (NULL: unset) */
};

/* jobs 1, results_dir NULL, all runs, progress auto, stale_after 300,
 * rank_timeout 1800, summary on, out NULL. */
void nb_runner_opts_default(struct nb_runner_opts *o);

struct nb_runner_report {
    size_t total;     /* runs selected */
    size_t skipped;   /* already done (or diverged) before this call */
    size_t done, diverged, failed; /* outcomes of all selected runs */
    size_t by_others; /* of those, finished by another process meanwhile */
    int signal;       /* the signal that stopped the pool, 0 if none */
    char summary_path[1100];
};

/* Runs the selected runs of sw (skipping done ones, waiting for runs that
 * other processes hold, taking over stale claims), then writes the
 * summary and the closing table.  Returns 0 when the pool ran (outcomes in
 * rep; failed runs are not an error here), or a negative status with err
 * filled when it could not (results directory not writable, ...). */
int nb_runner_run(const struct nb_sweep *sw, const struct nb_runner_opts *o,
                  struct nb_runner_report *rep, struct nb_error *err);

/* The runs of nb_runner_run, one after another, each trained over the
 * ranks of comm (an MPI job: mpirun -np K normbench run CONFIG; comm
 * active), for every rank of which it is called with the same sw and o.
 * Every selected run is first checked for a split over K ranks
 * (nb_runcfg_check_ranks: NB_EINVAL at its config line, nothing run).
 * Rank 0 claims each run and writes its directory as a worker would
 * (o->jobs is not used: one run at a time, in the rank processes) and
 * prints one table line per run to o->out; the other ranks write
 * nothing.  A rank that dies fails the job (mpirun stops every rank); a
 * watcher process records the run failed and releases its claim.
 * Returns 0 when the runs were tried (outcomes in rep), or a negative
 * status with err filled. */
struct nb_comm;
int nb_runner_run_ranks(const struct nb_sweep *sw, const struct nb_runner_opts *o,
                        const struct nb_comm *comm, struct nb_runner_report *rep,
                        struct nb_error *err);

/* Where a run's [model] init_from points: the run of experiment
 * `experiment` with id run_id, and its checkpoint's path. */
struct nb_init_source {
    char experiment[NB_SEL_NAME_MAX];
    char run_id[17];
    char path[2048];
};

/* Resolves the canonical selector text (config/selector.h) of a run of
 * seed `seed` under root (the folder holding the experiments' folders)
 * into src: with a RUN_ID, that run, which must be done; without, the
 * one run of the experiment that is done (DONE with status done), has a
 * weights.nbw and fits the selector (nb_selector_match).  Returns 0, or
 * with err naming ROOT/EXPERIMENT (or the run's directory), the selector
 * and how many runs matched: NB_ENOENT when the experiment's directory
 * is missing or no run fits (the hint says what to run first), NB_EINVAL
 * when several fit (the hint names keys they differ in), NB_EIO when the
 * directory cannot be read.  The checkpoint itself is not read. */
int nb_init_resolve(const char *selector, uint64_t seed, const char *root,
                    struct nb_init_source *src, struct nb_error *err);

/* The same for a selector given outside any run (`normbench fold`):
 * without a selecting run there is no seed to match, so runs of every
 * seed fit (two seeds that both fit are two matches: the hint names
 * experiment.seeds), and the messages name the selector as given
 * ("pre/lr=0.1: 2 runs of experiment pre match ...") rather than
 * "init_from = pre/lr=0.1". */
int nb_init_resolve_any(const char *selector, const char *root, struct nb_init_source *src,
                        struct nb_error *err);

/* The up-front check of the selected runs (o->indices, or all) of sw:
 * every [model] init_from must name an experiment whose folder exists
 * under the runs' results directory (o->results_dir, else the config's),
 * or one of the n_made names in made (experiments that this invocation
 * runs before sw: reproduce's earlier configs).  Returns 0, or NB_EINVAL
 * with err at the config line of init_from and a hint; nothing is
 * written either way. */
int nb_runner_check_sources(const struct nb_sweep *sw, const struct nb_runner_opts *o,
                            const char *const *made, int n_made, struct nb_error *err);

enum nb_run_state {
    NB_STATE_PENDING = 0, /* not started, killed, or its claim is stale */
    NB_STATE_RUNNING,     /* claimed by a live process */
    NB_STATE_DONE,
    NB_STATE_DIVERGED,
    NB_STATE_FAILED,      /* error.txt and no DONE */
    NB_STATE_COUNT
};

/* "pending", "running", "done", "diverged", "failed". */
const char *nb_run_state_name(enum nb_run_state s);

/* EXP for sw (results_dir NULL: the config's) into buf; returns buf. */
const char *nb_runner_exp_dir(const struct nb_sweep *sw,
                              const char *results_dir, char *buf,
                              size_t size);

/* The state of run i of sw on disk. */
enum nb_run_state nb_runner_state(const struct nb_sweep *sw, size_t i,
                                  const char *results_dir,
                                  double stale_after);

/* Writes EXP/summary.csv (atomically) for every run of sw: index, run_id,
 * status, run_dir, every config key (section.key), and the final metrics
 * of done and diverged runs, read strictly back from their metrics.csv.
 * Returns 0, or a negative status (err filled; e.g. a corrupt
 * metrics.csv).  path_out (may be NULL) gets the file's path. */
int nb_runner_summary(const struct nb_sweep *sw, const char *results_dir,
                      char *path_out, size_t size, struct nb_error *err);

#endif
