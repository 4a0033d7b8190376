/* src/harness/check.h - the check language: statements over an
 * experiment's summary that decide a paper claim.
 *
 * A check is one comparison of two arithmetic expressions:
 *
 *   range(final_test_error, norm.type=group, train.batch=2..32) <= 1.0
 *   at(final_test_error, norm.type=batch, bs=2)
 *       - at(final_test_error, norm.type=group, bs=2) >= 3
 *   median(landscape.loss_range, norm.type=batch, epoch<=1)
 *       / median(landscape.loss_range, norm.type=none, epoch<=1) <= 0.1
 *
 * Grammar (whitespace free between tokens):
 *
 *   check   := expr CMP expr              CMP: < <= > >= == !=
 *   expr    := term { (+ | -) term }
 *   term    := unary { (* | /) unary }
 *   unary   := - unary | primary
 *   primary := NUMBER | ( expr ) | abs ( expr )
 *            | AGG ( METRIC { , FILTER } )
 *            | rankcorr ( METRIC , KEY { , FILTER } )
 *   FILTER  := KEY OP VALUE               OP: = == != < <= > >=
 *   VALUE   := V { | V }  (alternatives, with = and !=)  |  LO..HI
 *
 * AGG takes the values METRIC has at every point the filters keep (a
 * group for a per-run scalar; a group and step for a metrics.csv column;
 * a group, step, layer and param for a probe stat) and reduces them:
 *   at        the one value (an error unless exactly one point is left)
 *   mean median min max sum std (sample)   over the values
 *   range     max - min
 *   count     the number of values (0 allowed)
 *   first last   the first / last value in group order, then step
 * rankcorr(METRIC, KEY, ...) is Spearman's rank correlation between KEY
 * (a config key of the group, or step / epoch) and the values (>= 3).
 *
 * METRIC names (summarize.h): a per-run scalar (final_test_error,
 * final_test_acc, final5_test_error, best_test_error, final_train_loss,
 * min_train_loss, steps_to_target, epochs_to_target, wall_time, diverged,
 * ...), a metrics.csv column (train_loss, test_loss, train_acc, test_acc,
 * train_error, test_error, grad_norm, lr), or PROBE.STAT from probes.csv
 * (landscape.loss_range, landscape.beta_eff, ics.cos, dist.p50,
 * hessian.lambda_max, ...).  Errors and accuracies from metrics are in
 * percent (error) or fractions (acc).
 * KEY: a config key (section.key, or a bare key that is unique: batch,
 * lr, groups), or step, epoch, layer, param, param_value.  Values of
 * config keys are checked against the key table.
 *
 * Evaluation and outcome.  A check is evaluated once on the means over
 * seeds (each group's replicates averaged at each point), and once per
 * replicate k (every group's k-th seed alone).  It PASSES when it holds
 * on the means and on every replicate that could be evaluated; FAILS when
 * it fails on the means and on every such replicate; otherwise the seeds
 * disagree (MIXED).  It is N/A when the means cannot be evaluated (no
 * point selected, `at` matching several groups, a division by zero).  An
 * experiment is reproduced when every check passes, not reproduced when
 * any check fails, and inconclusive otherwise (seeds disagree, N/A) and
 * whenever runs are missing (failed or not run: the verdict waits for
 * them).
 *
 * Label short names are accepted as keys: bs (train.batch), G
 * (norm.groups). */
#ifndef NB_HARNESS_CHECK_H
#define NB_HARNESS_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "harness/summarize.h"

struct nb_check_node;

struct nb_check {
    char *name;
    char *about;       /* optional one-line explanation (may be NULL) */
    char *text;        /* the statement as written */
    char *file;
    int line;
    enum nb_cmp op;
    struct nb_check_node *lhs, *rhs;
};

/* Parses text (the statement of check `name`, from file:line) into c.
 * Returns 0, or NB_EINVAL with err = "FILE:LINE: check NAME: message"
 * (and a did-you-mean hint where one is close); c is then freed. */
int nb_check_parse(const char *name, const char *text, const char *file,
                   int line, struct nb_check *c, struct nb_error *err);
void nb_check_free(struct nb_check *c);

/* One FILTER (above) into f; ctx names the owner in messages ("check x",
 * "figure y").  Returns 0 or NB_EINVAL. */
int nb_filter_parse(const char *text, const char *ctx, const char *file,
                    int line, struct nb_sum_filter *f, struct nb_error *err);
/* A comma-separated list of filters (may be empty); *f malloc'd. */
int nb_filters_parse(const char *text, const char *ctx, const char *file,
                     int line, struct nb_sum_filter **f, int *n,
                     struct nb_error *err);
void nb_filters_free(struct nb_sum_filter *f, int n);

/* Evaluates c in one mode (NB_SEL_MEAN or replicate k): both sides and
 * whether the comparison holds.  Returns 0, or a negative status with a
 * reason in err (no file) when it cannot be evaluated. */
int nb_check_eval_mode(const struct nb_check *c, const struct nb_summary *s,
                       int mode, double *lhs, double *rhs, bool *holds,
                       struct nb_error *err);

enum nb_outcome { NB_OUT_PASS = 0, NB_OUT_FAIL, NB_OUT_MIXED, NB_OUT_NA,
                  NB_OUT_COUNT };
/* "pass", "fail", "seeds disagree", "n/a" */
const char *nb_outcome_name(int o);

struct nb_check_result {
    int outcome;
    double lhs, rhs;        /* on the means (NaN when N/A) */
    char why[600];          /* why the means are N/A */
    int n_reps;
    double *rep_lhs, *rep_rhs;
    int *rep_holds;         /* 1, 0, or -1 when replicate k is N/A */
    int n_hold, n_fail, n_na; /* over replicates */
};

/* Evaluates c on the means and on every replicate of s. */
int nb_check_eval(const struct nb_check *c, const struct nb_summary *s,
                  struct nb_check_result *r, struct nb_error *err);
void nb_check_result_free(struct nb_check_result *r);

enum nb_verdict { NB_VERDICT_REPRODUCED = 0, NB_VERDICT_NOT_REPRODUCED,
                  NB_VERDICT_INCONCLUSIVE, NB_VERDICT_COUNT };
/* "reproduced", "not reproduced", "inconclusive" */
const char *nb_verdict_name(int v);

/* The verdict of n check results; complete = no run is missing. */
int nb_verdict_of(const struct nb_check_result *r, int n, bool complete);

#endif
