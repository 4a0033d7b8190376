/* src/run/worker.c - the worker: one run in its own process, from the
 * resolved config to metrics.csv, probes, meta.txt and DONE (see runner.h). */
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
#include "core/comm.h"
#include "core/rng.h"
#include "core/text.h"
#include "model/checkpoint.h"
#include "run/csvio.h"
#include "config/runcfg.h"

#include "run/runner_impl.h"

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
    bool save_weights;        /* [train] save_weights */
    bool weights_written;     /* weights.nbw, with weights_checksum */
    uint64_t weights_checksum;
    struct nb_ckpt init;      /* [model] init_from's checkpoint, when set */
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

/* Writes m's parameters and state to the run's weights.nbw (atomically:
 * temporary file, fsync, rename); returns a status. */
static int weights_write(struct wrun *w, const struct nb_model *m, struct nb_error *err)
{
    char path[PATH_SZ + 16];
    unsigned char *buf;
    size_t len;
    int r = nb_ckpt_encode(m, &buf, &len, &w->weights_checksum, err);
    if (r)
        return r;
    r = rn_write_atomic_n(rn_pathf(path, sizeof path, "%s/%s", w->dir, NB_CKPT_FILE), buf, len,
                          true, err);
    free(buf);
    w->weights_written = r == 0;
    return r;
}

/* The end of a run that did not diverge: the end-of-run probes on its
 * final parameters, then its weights when asked. */
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
    if (w->save_weights && res->status == NB_TRAIN_DONE && !w->io_failed &&
        weights_write(w, m, &w->err))
        w->io_failed = true;
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
    if (rn_read_small("/proc/cpuinfo", text, sizeof text) > 0) {
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
    rn_kvf(t, "run_id", "%s", r->run_id);
    rn_kvf(t, "index", "%zu", r->index);
    rn_kvf(t, "experiment", "%s", nb_run_get_str(r, "experiment", "name"));
    rn_kvf(t, "config", "%s", c->sw->path);
    char swept[1500] = "";
    size_t k = 0;
    for (int i = 0; i < r->n_swept && k < sizeof swept; i++) {
        const struct nb_key *key = nb_key_at(r->swept[i]);
        k += (size_t)snprintf(swept + k, sizeof swept - k, "%s%s.%s=%s",
                              i ? " " : "", key->section, key->key,
                              r->vals[r->swept[i]]->text);
    }
    rn_kvf(t, "swept", "%s", swept);
    rn_kvf(t, "seed", "%" PRIu64, r->seed);
    for (int s = 0; s < NB_STREAM_COUNT; s++) {
        char key[64];
        if (s == NB_STREAM_SYNTH)
            continue; /* synthetic sets have their own fixed seed */
        snprintf(key, sizeof key, "seed_%s", nb_stream_name((enum nb_stream)s));
        rn_kvf(t, key, "%lu", nb_stream_seed(r->seed, (enum nb_stream)s));
    }
    rn_kvf(t, "rng", "mt19937 (GSL), one stream per purpose seeded by SplitMix64 of (seed, purpose)");
    rn_kvf(t, "package", "%s %s", PACKAGE_NAME, PACKAGE_VERSION);
    rn_kvf(t, "git_revision", "%s", NB_GIT_REVISION);
    rn_kvf(t, "compiler", "%s (%s)", NB_BUILD_CC, __VERSION__);
    rn_kvf(t, "cflags", "%s", NB_BUILD_CFLAGS);
    rn_kvf(t, "blas", "%s (kernels %s)", nb_blas_name(), nb_blas_core());
    {
        /* benchmarking knobs that change the arithmetic, if set */
        const char *ct = c->blas_coretype;
        rn_kvf(t, "conv_algo", "%s", nb_run_get_str(w->run, "model", "conv_algo"));
        rn_kvf(t, "openblas_coretype", "%s", ct && *ct ? ct : "(unset)");
    }
    rn_kvf(t, "gsl", "%s", GSL_VERSION);
    rn_kvf(t, "libcsv", "%d.%d.%d", CSV_MAJOR, CSV_MINOR, CSV_RELEASE);
    rn_kvf(t, "host", "%s", c->host);
    cpu_model(cpu, sizeof cpu);
    rn_kvf(t, "cpu", "%s", cpu);
    rn_kvf(t, "cpus_online", "%ld", sysconf(_SC_NPROCESSORS_ONLN));
    if (uname(&un) == 0)
        rn_kvf(t, "os", "%s %s %s", un.sysname, un.release, un.machine);
    rn_kvf(t, "pid", "%ld", (long)getpid());
    rn_kvf(t, "threads", "%lld", nb_run_get_int(r, "train", "threads"));
    rn_kvf(t, "jobs", "%d", c->jobs); /* runs at once in the invocation (-j) */
    rn_kvf(t, "start_utc", "%s", start);
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
    int rc = rn_write_atomic(rn_pathf(path, sizeof path, "%s/meta.txt", w->dir),
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
        rc = rn_write_atomic(rn_pathf(path, sizeof path, "%s/config.ini", w->dir), buf,
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
    if ((r = nb_csvw_open(&w->probes, rn_pathf(path, sizeof path, "%s/probes.csv", w->dir),
                          probe_cols, 9, err)))
        return r;
    if (rc->probe.slice) {
        w->slice = fopen(rn_pathf(path, sizeof path, "%s/slice.csv", w->dir), "w");
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
    rn_kvf(t, "probe_seconds", "%.3f", w->probe.seconds);
    rn_kvf(t, "probe_calls", "%ld", w->probe.calls);
    rn_kvf(t, "probe_share", "%.4f", run_seconds > 0 ? w->probe.seconds / run_seconds : 0);
    for (int k = 0; k < NB_PROBE_KIND_COUNT; k++) {
        if (!w->probe.cost[k].calls)
            continue;
        char key[64];
        const char *name = nb_probe_kind_name((enum nb_probe_kind)k);
        snprintf(key, sizeof key, "probe_%s_calls", name);
        rn_kvf(t, key, "%ld", w->probe.cost[k].calls);
        snprintf(key, sizeof key, "probe_%s_seconds", name);
        rn_kvf(t, key, "%.3f", w->probe.cost[k].seconds);
    }
    /* how the Hessian calls multiplied by the Hessian (probe.h) */
    long ex = w->probe.hessian_exact, fd = w->probe.hessian_fd;
    if (ex || fd)
        rn_kvf(t, "probe_hessian_hvp", "%s", !fd ? "exact" : !ex ? "fd" : "exact+fd");
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

/* [model] init_from of run (config rc): finds the source run, reads its
 * checkpoint into ck and points rc's training at it, and records the
 * source in head (when non-NULL); returns a status (nothing to do
 * without init_from). */
static int init_load(const struct ctx *c, const struct nb_run *run, struct nb_runcfg *rc,
                     struct nb_ckpt *ck, struct nb_text *head, struct nb_error *err)
{
    if (!rc->init_from[0])
        return 0;
    struct nb_init_source src;
    int r = nb_init_resolve(rc->init_from, run->seed, rn_results_root(c->results_dir, run),
                            &src, err);
    if (!r && (r = nb_ckpt_read(src.path, ck, err)) == NB_ENOENT)
        nb_error_hint(err, "run %s of %s was made without [train] save_weights = true",
                      src.run_id, src.experiment);
    if (r)
        return r;
    rc->train.init = ck;
    if (head) {
        rn_kvf(head, "init_from_experiment", "%s", src.experiment);
        rn_kvf(head, "init_from_run_id", "%s", src.run_id);
        rn_kvf(head, "init_from_checksum", "%016" PRIx64, ck->checksum);
    }
    return 0;
}

/* Resolves run w's config, its init_from checkpoint and loads its data
 * (all described in head), then opens metrics.csv, timing.csv and, when
 * the run has probes, their files; returns a status. */
static int run_open(struct wrun *w, struct nb_runcfg *rc, struct nb_data *data,
                    struct nb_text *head, struct nb_error *err)
{
    char path[PATH_SZ + 16];
    int r;
    if ((r = nb_runcfg_from_run(w->run, rc, err)) ||
        (r = init_load(w->c, w->run, rc, &w->init, head, err)))
        return r;
    w->save_weights = rc->save_weights;
    nb_blas_set_threads(rc->threads);
    rn_kvf(head, "blas_threads", "%d", nb_blas_threads());
    if ((r = nb_data_prepare(&rc->data, w->run->seed, data, err)) ||
        (r = nb_runcfg_bind_data(rc, w->run, data, err)))
        return r;
    const struct nb_norm_opts *no = &rc->train.model.norm;
    if (no->renorm) /* the ramp as trained ("auto" resolved from the run length) */
        rn_kvf(head, "renorm_schedule", "warmup %ld rmax_steps %ld dmax_steps %ld",
               no->renorm_warmup, no->renorm_rmax_steps, no->renorm_dmax_steps);
    char desc[512];
    rn_kvf(head, "data", "%s", nb_data_describe(data, desc, sizeof desc));
    if (data->notice[0])
        rn_kvf(head, "data_notice", "%s", data->notice);
    rn_kvf(head, "data_load_seconds", "%.3f", data->load_seconds);
    rn_kvf(head, "data_from_cache", "%s", data->from_cache ? "true" : "false");
    {
        size_t b = (size_t)rc->train.batch, n = data->train.n;
        w->spe = (long)(rc->train.drop_last ? n / b : (n + b - 1) / b);
        w->total = rc->train.max_steps > 0 ? rc->train.max_steps : w->spe * rc->train.epochs;
        w->epochs = w->spe > 0 ? (double)w->total / (double)w->spe : 0;
    }
    w->has_val = data->val.n > 0;
    const char *mcols[NB_METRICS_N_COLS];
    int n_mcols = 0;
    for (int i = 0; i < NB_METRICS_N_COLS; i++)
        if (w->has_val || !nb_metrics_cols[i].val_only)
            mcols[n_mcols++] = nb_metrics_cols[i].name;
    rn_kvf(head, "steps_planned", "%ld", w->total);
    rn_kvf(head, "steps_per_epoch", "%ld", w->spe);
    if ((r = nb_csvw_open(&w->metrics, rn_pathf(path, sizeof path, "%s/metrics.csv", w->dir), mcols,
                          n_mcols, err)) ||
        (r = nb_csvw_open(&w->timing, rn_pathf(path, sizeof path, "%s/timing.csv", w->dir),
                          timing_cols, 2, err)))
        return r;
    if (rc->probes && (r = probe_attach(w, rc, data, err)))
        return r;
    return 0;
}

/* Records the failure err: error.txt (message, hint, end time) and the
 * status and error of meta.txt's tail. */
static void record_failure(const struct wrun *w, const struct nb_error *err, const char *end,
                           struct nb_text *tail)
{
    char path[PATH_SZ + 16], msg[1200];
    nb_error_format(err, msg, sizeof msg);
    struct nb_text et = { 0 };
    rn_kvf(&et, "error", "%s", msg);
    if (err->hint[0])
        rn_kvf(&et, "hint", "%s", err->hint);
    rn_kvf(&et, "end_utc", "%s", end);
    if (et.s)
        rn_write_atomic(rn_pathf(path, sizeof path, "%s/error.txt", w->dir), et.s, true, NULL);
    free(et.s);
    rn_kvf(tail, "status", "failed");
    rn_kvf(tail, "error", "%s", msg);
}

/* Writes DONE, the mark of a finished run; returns false when it could
 * not (error.txt then says so). */
static bool write_done(const struct wrun *w, const char *status, const struct nb_train_result *res,
                       double wall, const char *end)
{
    char path[PATH_SZ + 16], num[40];
    struct nb_text done = { 0 };
    struct nb_error e2;
    bool ok = true;
    rn_kvf(&done, "run_id", "%s", w->run->run_id);
    rn_kvf(&done, "status", "%s", status);
    rn_kvf(&done, "steps", "%ld", res->steps);
    rn_kvf(&done, "metrics_rows", "%ld", w->rows);
    rn_kvf(&done, "final_test_acc", "%s", nb_format_double(res->last.test_acc, num, sizeof num));
    rn_kvf(&done, "best_test_acc", "%s", nb_format_double(res->best_test_acc, num, sizeof num));
    rn_kvf(&done, "wall_seconds", "%.3f", wall);
    rn_kvf(&done, "end_utc", "%s", end);
    rn_kvf(&done, "host", "%s", w->c->host);
    if (!done.s ||
        rn_write_atomic(rn_pathf(path, sizeof path, "%s/DONE", w->dir), done.s, true, &e2)) {
        ok = false;
        rn_write_atomic(rn_pathf(path, sizeof path, "%s/error.txt", w->dir),
                        "error = cannot write DONE\n", true, NULL);
    }
    free(done.s);
    return ok;
}

/* The start of run w (its config and data into rc and data, both
 * described in head): its directory with the resolved config and a
 * meta.txt saying running, the start event, the data and the outputs;
 * returns a status. */
static int run_start(struct wrun *w, const char *start, struct nb_runcfg *rc,
                     struct nb_data *data, struct nb_text *head, struct nb_error *err)
{
    char path[PATH_SZ + 16];
    int r;
    if ((r = rn_mkdir_p(w->dir, err)))
        return r;
    unlink(rn_pathf(path, sizeof path, "%s/DONE", w->dir));
    unlink(rn_pathf(path, sizeof path, "%s/error.txt", w->dir));
    unlink(rn_pathf(path, sizeof path, "%s/probes.csv", w->dir));
    unlink(rn_pathf(path, sizeof path, "%s/slice.csv", w->dir));
    unlink(rn_pathf(path, sizeof path, "%s/%s", w->dir, NB_CKPT_FILE));
    meta_head(w, start, head);
    struct nb_text tail = {0};
    rn_kvf(&tail, "status", "running");
    r = write_config(w, err);
    if (!r)
        r = meta_write(w, head, &tail, err);
    free(tail.s);
    if (r)
        return r;
    rn_event(w->c, "start", w->run, NULL);
    return run_open(w, rc, data, head, err);
}

/* Over ranks (comm active): every rank says whether it is ready, and a
 * rank 0 that is gets the first one that is not as its error; returns
 * rank 0's status r, or that error. */
static int ranks_ready(const struct nb_comm *comm, int r, struct nb_error *err)
{
    int first = nb_comm_first(comm, r != 0);
    if (r || first < 0)
        return r;
    return nb_error_set(err, NB_EIO, NULL, 0,
                        "MPI rank %d of %d could not set the run up (its error is on "
                        "the job's stderr)", first, comm->size);
}

/* Runs sweep run i in this process; returns W_DONE, W_DIVERGED or
 * W_FAILED (error.txt written).  With comm active, as rank 0 of a run
 * split over its ranks (rn_run_peer runs the others). */
int rn_run_one(const struct ctx *c, size_t i, const char *nonce, int fd,
               const struct nb_comm *comm)
{
    const struct nb_run *run = &c->sw->runs[i];
    struct wrun w;
    memset(&w, 0, sizeof w);
    w.c = c;
    w.run = run;
    w.fd = fd;
    struct nb_error err;
    nb_error_clear(&err);
    char start[32], end[32], lockdir[PATH_SZ];
    double t0 = nb_now();
    rn_utc_now(start, sizeof start);
    rn_run_dir(c, run, w.dir, sizeof w.dir);
    rn_lock_dir(c, run, lockdir, sizeof lockdir);
    rn_pathf(w.owner, sizeof w.owner, "%s/owner", lockdir);
    w.last_beat = t0;

    struct nb_text head = {0}, tail = {0};
    struct nb_runcfg rc;
    struct nb_data data;
    struct nb_train_result res;
    memset(&data, 0, sizeof data);
    memset(&res, 0, sizeof res);
    const char *status = "failed";
    int code = W_FAILED;

    int r = run_start(&w, start, &rc, &data, &head, &err);
    if (nb_comm_active(comm)) {
        rn_kvf(&head, "ranks", "%d", comm->size);
        rn_kvf(&head, "comm", "%s", comm->name ? comm->name : "unknown");
        r = ranks_ready(comm, r, &err);
    }
    if (r)
        goto out;
    w_send(&w, 0, 0);

    struct nb_train_hooks hooks = {.user = &w, .on_step = w_on_step,
                                   .on_metrics = w_on_metrics,
                                   .on_end = w_on_end};
    r = nb_train_comm(&rc.train, &data.train, &data.val, &data.test, &hooks, comm,
                      rc.target_acc, &res, &err);
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
    rn_utc_now(end, sizeof end);
    if (r) {
        close_outputs(&w, NULL);
        record_failure(&w, &err, end, &tail);
    } else {
        rn_kvf(&tail, "status", "%s", status);
    }
    rn_kvf(&tail, "end_utc", "%s", end);
    rn_kvf(&tail, "wall_seconds", "%.3f", wall);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        rn_kvf(&tail, "cpu_seconds", "%.3f",
            (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
                (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec);
    rn_kvf(&tail, "train_seconds", "%.3f", res.seconds);
    rn_kvf(&tail, "steps", "%ld", res.steps);
    if (res.params > 0)
        rn_kvf(&tail, "params", "%zu", res.params);
    rn_kvf(&tail, "metrics_rows", "%ld", w.rows);
    if (w.weights_written) {
        rn_kvf(&tail, "weights", "%s", NB_CKPT_FILE);
        rn_kvf(&tail, "weights_checksum", "%016" PRIx64, w.weights_checksum);
    }
    probe_meta(&w, wall, &tail);
    struct nb_error e2;
    if (meta_write(&w, &head, &tail, &e2) && !r) {
        err = e2;
        r = e2.status;
        code = W_FAILED;
    }
    /* DONE and its event are one step for a signal: a SIGTERM that fell
     * between them would leave a finished run that events.log never
     * calls finished, nor interrupted (the pool sees DONE) */
    sigset_t block, old_mask;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &old_mask);
    if (!r && !write_done(&w, status, &res, wall, end))
        code = W_FAILED;
    rn_event(c, code == W_FAILED ? "failed" : status, run, "%.3fs", wall);
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    nb_probe_free(&w.probe);
    nb_ckpt_free(&w.init);
    nb_data_free(&data);
    free(head.s);
    free(tail.s);
    rn_lock_release(lockdir, nonce);
    return code;
}

int rn_run_peer(const struct ctx *c, size_t i, const struct nb_comm *comm)
{
    const struct nb_run *run = &c->sw->runs[i];
    struct nb_runcfg rc;
    struct nb_data data;
    struct nb_train_result res;
    struct nb_error err;
    struct nb_ckpt init;
    memset(&data, 0, sizeof data);
    memset(&res, 0, sizeof res);
    memset(&init, 0, sizeof init);
    nb_error_clear(&err);
    int r = nb_runcfg_from_run(run, &rc, &err);
    if (!r)
        r = init_load(c, run, &rc, &init, NULL, &err);
    if (!r) {
        nb_blas_set_threads(rc.threads);
        r = nb_data_prepare(&rc.data, run->seed, &data, &err);
    }
    if (!r)
        r = nb_runcfg_bind_data(&rc, run, &data, &err);
    bool ready = nb_comm_first(comm, r != 0) < 0;
    if (ready)
        r = nb_train_comm(&rc.train, &data.train, &data.val, &data.test, NULL, comm,
                          rc.target_acc, &res, &err);
    if (r) {
        char msg[1200];
        fprintf(stderr, "normbench: MPI rank %d: run %zu (%s): %s\n", comm->rank, run->index,
                run->run_id, nb_error_format(&err, msg, sizeof msg));
    }
    nb_data_free(&data);
    nb_ckpt_free(&init);
    return r || !ready ? W_FAILED : res.status == NB_TRAIN_DIVERGED ? W_DIVERGED : W_DONE;
}
