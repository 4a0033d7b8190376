/* src/run/fold.c - `normbench fold` (run/fold.h): a finished run's batch
 * norms folded into its convs, compared and timed against the unfolded
 * network.  The run is found with the runner's readers (config.ini
 * through nb_sweep_load, a selector through nb_init_resolve_any), and
 * the folded checkpoint written as the worker writes weights.nbw. */
#include "run/fold.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/keys.h"
#include "config/runcfg.h"
#include "config/selector.h"
#include "core/arena.h"
#include "core/blas.h"
#include "model/checkpoint.h"
#include "run/train.h"

#include "run/runner_impl.h"

void nb_fold_opts_default(struct nb_fold_opts *o)
{
    *o = (struct nb_fold_opts){ .rounds = NB_FOLD_ROUNDS, .min_seconds = NB_FOLD_MIN_SECONDS };
}

/* What nb_fold_run holds, freed by fold_free. */
struct fold {
    struct nb_sweep sw;
    struct nb_runcfg cfg;
    struct nb_ckpt ck;
    struct nb_data data;
    struct nb_model m, f;
};

static void fold_free(struct fold *F)
{
    nb_model_free(&F->f);
    nb_model_free(&F->m);
    nb_data_free(&F->data);
    nb_ckpt_free(&F->ck);
    nb_sweep_free(&F->sw);
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

#define HINT_RUN                                                                                   \
    "name a run directory (RESULTS_DIR/EXPERIMENT/RUN_ID, as `normbench run` "                     \
    "prints them) or a run as [model] init_from does: EXPERIMENT, "                                \
    "EXPERIMENT/RUN_ID or EXPERIMENT/KEY=VALUE,... under --results-dir"

/* The run directory o->run names, into rep->run_dir. */
static int fold_locate(const struct nb_fold_opts *o, struct nb_fold_report *rep,
                       struct nb_error *err)
{
    if (is_dir(o->run)) {
        snprintf(rep->run_dir, sizeof rep->run_dir, "%s", o->run);
        size_t n = strlen(rep->run_dir); /* RUN_DIR/ as RUN_DIR, / as / */
        while (n > 1 && rep->run_dir[n - 1] == '/')
            rep->run_dir[--n] = '\0';
        return 0;
    }
    struct nb_selector sel;
    struct nb_error e;
    if (nb_selector_parse(o->run, NULL, 0, &sel, &e)) {
        nb_error_set(err, NB_ENOENT, NULL, 0, "%s: no such run directory, nor a selector (%s)",
                     o->run, e.msg);
        return nb_error_hint(err, HINT_RUN);
    }
    const char *root = o->results_dir ? o->results_dir
                                      : nb_key_at(nb_key_lookup("experiment", "results_dir"))->def;
    struct nb_init_source src;
    int rc = nb_init_resolve_any(o->run, root, &src, err);
    if (rc)
        return rc;
    rn_pathf(rep->run_dir, sizeof rep->run_dir, "%s/%s/%s", root, src.experiment, src.run_id);
    return 0;
}

/* The run's config (one run) into F->sw and F->cfg; refuses, at the
 * config line, what cannot be folded. */
static int fold_config(struct fold *F, struct nb_fold_report *rep, struct nb_error *err)
{
    char path[PATH_SZ + 16];
    rn_pathf(path, sizeof path, "%s/config.ini", rep->run_dir);
    if (access(path, F_OK) != 0) {
        nb_error_set(err, NB_ENOENT, NULL, 0, "%s is not a run directory: it has no config.ini",
                     rep->run_dir);
        return nb_error_hint(err, HINT_RUN);
    }
    int rc = nb_sweep_load(path, &F->sw, err);
    if (rc)
        return rc;
    if (F->sw.n_runs != 1)
        return nb_error_set(err, NB_EFORMAT, path, 0, "%zu runs: not the config of one run",
                            F->sw.n_runs);
    const struct nb_run *run = &F->sw.runs[0];
    if ((rc = nb_runcfg_from_run(run, &F->cfg, err)))
        return rc;
    snprintf(rep->run_id, sizeof rep->run_id, "%s", run->run_id);
    rep->seed = run->seed;
    const struct nb_model_desc *d = &F->cfg.train.model;
    rep->norm = d->norm.type;
    if (d->norm.type == NB_NORM_NONE) {
        nb_run_error(run, err, "norm", "type",
                     "fold: norm type = none: the network has no norm layer to fold");
        return nb_error_hint(err, "fold takes a run with batch norm (type = batch, or lp)");
    }
    if (d->norm.type != NB_NORM_BATCH && d->norm.type != NB_NORM_LP) {
        nb_run_error(run, err, "norm", "type",
                     "fold: norm type = %s normalizes each sample with its own statistics, "
                     "computed anew for every input in eval mode too: there are no constants "
                     "to fold into the weights",
                     nb_norm_type_name(d->norm.type));
        return nb_error_hint(err, "fold takes batch norm (type = batch, or lp), whose eval "
                                  "mode uses the running statistics, fixed after training");
    }
    if (d->placement != NB_PLACE_PRE) {
        nb_run_error(run, err, "model", "placement",
                     "fold: placement = %s puts a ReLU between each conv or linear layer and "
                     "its norm (Conv -> ReLU -> BN): there is nothing to fold the norm into",
                     nb_norm_placement_names[d->placement]);
        return nb_error_hint(err, "folding needs placement = pre (Conv -> BN -> ReLU), "
                                  "where the norm directly follows the layer");
    }
    return 0;
}

/* The run's checkpoint into F->ck. */
static int fold_checkpoint(struct fold *F, struct nb_fold_report *rep, struct nb_error *err)
{
    rn_pathf(rep->checkpoint, sizeof rep->checkpoint, "%s/%s", rep->run_dir, NB_CKPT_FILE);
    int rc = nb_ckpt_read(rep->checkpoint, &F->ck, err);
    if (rc == NB_ENOENT) {
        nb_error_set(err, NB_ENOENT, NULL, 0,
                     "%s has no %s: the run was made without [train] save_weights = true",
                     rep->run_dir, NB_CKPT_FILE);
        return nb_error_hint(err, "run its config again with [train] save_weights = true "
                                  "(a new run, with its own run_id) and fold that run");
    }
    rep->checksum = F->ck.checksum;
    return rc;
}

/* Whether paths a and b are the same existing file. */
static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* Refuses, before any work, an -o FILE whose directory does not exist,
 * or that is the run's own checkpoint. */
static int fold_check_out(const char *out, const char *checkpoint, struct nb_error *err)
{
    if (same_file(out, checkpoint)) {
        nb_error_set(err, NB_EINVAL, NULL, 0,
                     "-o %s is the run's own checkpoint: the folded network (no norm layers) "
                     "would replace it",
                     out);
        return nb_error_hint(err, "write the folded checkpoint to another file");
    }
    char dir[PATH_SZ];
    snprintf(dir, sizeof dir, "%s", out);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return 0;               /* the working directory */
    slash[slash == dir] = '\0'; /* "/f" -> "/" */
    if (is_dir(dir))
        return 0;
    nb_error_set(err, NB_ENOENT, NULL, 0, "-o %s: no such directory %s", out, dir);
    return nb_error_hint(err, "create it first, or write the folded checkpoint elsewhere");
}

/* The run's data, the network with its checkpoint, and the folded one. */
static int fold_build(struct fold *F, struct nb_fold_report *rep, struct nb_error *err)
{
    struct nb_runcfg *cfg = &F->cfg;
    nb_blas_set_threads(cfg->threads);
    int rc = nb_data_prepare(&cfg->data, rep->seed, &F->data, err);
    if (rc)
        return rc;
    snprintf(rep->notice, sizeof rep->notice, "%s", F->data.notice);
    nb_data_describe(&F->data, rep->data, sizeof rep->data);
    if (F->data.test.n == 0)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "the run's data have no test set to compare the networks on");
    cfg->probes = false; /* fold runs none: binding cannot fail */
    if ((rc = nb_runcfg_bind_data(cfg, NULL, &F->data, err)))
        return rc;
    const struct nb_train_spec *spec = &cfg->train;
    rc = nb_model_build(&F->m, &spec->model, nb_train_model_batch(spec->batch), spec->seed, err);
    if (rc)
        return rc;
    if ((rc = nb_ckpt_apply(&F->ck, &F->m, err)) == NB_EINVAL) {
        /* not the caller's input: the run directory is inconsistent */
        err->status = rc = NB_EFORMAT;
        nb_error_hint(err, "the checkpoint does not fit the network of its run's config.ini");
    }
    if (rc)
        return rc;
    rc = nb_model_fold(&F->m, &F->f, err);
    if (rc < 0)
        return rc;
    rep->folded = rc;
    rep->layers = F->m.n_layers;
    rep->layers_folded_net = F->f.n_layers;
    return 0;
}

/* The folded network's checkpoint to path. */
static int fold_write(const struct fold *F, const char *path, struct nb_fold_report *rep,
                      struct nb_error *err)
{
    unsigned char *buf;
    size_t len;
    int rc = nb_ckpt_encode(&F->f, &buf, &len, &rep->out_checksum, err);
    if (rc)
        return rc;
    rc = rn_write_atomic_n(path, buf, len, true, err);
    free(buf);
    return rc;
}

/* Puts "fold: " in front of an error that is not at a config line
 * (naming its file, if any, in the message), so that it reads
 * "normbench: fold: ..." once printed. */
static void fold_context(struct nb_error *err)
{
    if (!err || err->line > 0)
        return;
    char msg[sizeof err->msg]; /* the file's path shortened to fit */
    if (err->file[0])
        snprintf(msg, sizeof msg, "fold: %.250s: %.500s", err->file, err->msg);
    else
        snprintf(msg, sizeof msg, "fold: %.760s", err->msg);
    memcpy(err->msg, msg, sizeof msg);
    err->file[0] = '\0';
}

int nb_fold_run(const struct nb_fold_opts *o, struct nb_fold_report *rep, struct nb_error *err)
{
    memset(rep, 0, sizeof *rep);
    nb_error_clear(err);
    struct fold F;
    memset(&F, 0, sizeof F);
    int rc = 0;
    if (o->rounds < 1 || o->rounds > NB_FOLD_MAX_ROUNDS || !(o->min_seconds > 0))
        rc = nb_error_set(err, NB_EINVAL, NULL, 0, "rounds %d outside 1..%d", o->rounds,
                          NB_FOLD_MAX_ROUNDS);
    if (!rc)
        rc = fold_locate(o, rep, err);
    if (!rc)
        rc = fold_config(&F, rep, err);
    if (!rc)
        rc = fold_checkpoint(&F, rep, err);
    if (!rc && o->out)
        rc = fold_check_out(o->out, rep->checkpoint, err);
    if (!rc)
        rc = fold_build(&F, rep, err);
    if (!rc)
        rc = nb_fold_compare(&F.m, &F.f, &F.data.test, F.cfg.train.eval_samples, &rep->max_abs_diff,
                             &rep->argmax_differ, &rep->samples, err);
    if (!rc)
        nb_fold_time(&F.m, &F.f, &F.data.test, F.cfg.train.eval_samples, o->rounds, o->min_seconds,
                     &rep->time);
    if (!rc && o->out)
        rc = fold_write(&F, o->out, rep, err);
    fold_free(&F);
    if (rc)
        fold_context(err);
    return rc;
}
