/* src/analyze/check.h - the check language: statements over an
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
 *            | (largest | smallest) ( KEY , SCALAR CMP NUMBER { , FILTER } )
 *            | above ( METRIC , KEY , A , B { , FILTER } )
 *   FILTER  := KEY OP VALUE               OP: = == != < <= > >=
 *            | KEY = V vs V               (a contrast; at most one per call)
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
 * largest(KEY, SCALAR CMP NUMBER, ...) is the largest value of KEY (a
 * numeric config key) over the groups the filters keep in which EVERY run
 * meets the condition on its own value of the per-run scalar: "the
 * largest learning rate that trains" is
 *   largest(lr, final_test_error <= 20, norm.type=none)
 * A run without a finite value never meets it (a diverged run has NaN for
 * every scalar but diverged, steps and wall_time), so divergence counts as
 * not training without being dropped as a missing value.  The runs taken
 * into account are the group's finished ones (done or diverged); under
 * the bootstrap those the resample draws, in the per-seed column seed k's
 * alone, so its interval comes from the same resamples as every other
 * statement's.  smallest is the same with the smallest value.  An error
 * (n/a) when no group qualifies.
 * above(METRIC, KEY, A, B, ...) compares two groups point by point: the
 * share (0..1) of the points they have in common (the same step, layer,
 * param and param value) at which the group with KEY = A (and the
 * filters) has a higher value than the group with KEY = B; each side must
 * be one group, ties are not higher.  "BN's test accuracy is higher at
 * most checkpoints" is above(test_acc, norm.type, batch, none) > 0.5.
 *
 * Contrast.  With a filter KEY = A vs B (KEY a config key, one value on
 * each side) the call's values are differences taken point by point:
 * each point the filters keep with KEY = A, minus the value at the same
 * step, layer, param and param value of the group that has KEY = B, the
 * same value in every other varying key and passes the other filters.
 * Points without a partner value are left out; a group without a
 * partner group is an error.  So
 *   median(ics.cos, norm.type=batch vs none, layer=conv3) <= 0
 * says that at at least half of the logged steps BN's cosine is at most
 * no-norm's at the same step (a median of differences, not a difference
 * of medians), and count() counts the pairs.
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
 * Effect.  A check measures one effect: the left side when the right
 * side is a constant (a gap, a ratio, a correlation: `A - B >= 1`,
 * `A / B < 1`, `rankcorr(...) <= -0.9`), compared with that constant as
 * the threshold; otherwise the left side minus the right side, compared
 * with 0 (`at(A) < at(B)`: the effect is A - B).
 *
 * Evaluation and outcome.  The statement is evaluated on the means over
 * seeds (each group's replicates averaged at each point: the estimate),
 * once per replicate k (every group's k-th seed alone: the per-seed
 * column of the report, kept for reading; n = the seeds on which it can
 * be evaluated), and on NB_CHECK_N_BOOT bootstrap resamples of the seeds.
 * A resample draws n seeds with replacement; when every group has the
 * same seed at each replicate position (a sweep whose seeds axis is the
 * same for all groups) the draw is shared by all groups (paired), else
 * each group is resampled on its own.  The whole statement (medians over
 * steps, ranges, rank correlations, ratios) is evaluated on each
 * resample's weighted means, so one method covers every statement; the
 * GSL Mersenne twister is seeded from the check's name, so reports are
 * deterministic.  The 95 % interval is Hesterberg's expanded percentile
 * interval (2015): the percentile interval at the tail probability
 * Phi(-sqrt(n/(n-1)) t_{n-1,0.975}) instead of 0.025, which widens the
 * plain percentile interval (too narrow with few seeds) to about a
 * t-interval's width.  Outcome:
 *   pass          the interval lies on the claim's side of the threshold
 *                 (and the estimate too)
 *   fail          the interval lies on the other side
 *   inconclusive  otherwise; seeds_needed estimates how many seeds would
 *                 make the interval's half width equal the distance of
 *                 the effect from the threshold (it narrows as 1/sqrt n)
 *   n/a           the means cannot be evaluated (no point selected, `at`
 *                 matching several groups, a division by zero), n < 2,
 *                 or == / != (state an equivalence as abs(A - B) <= M)
 * An equivalence abs(A - B) <= M has the effect |A - B| and passes when the
 * upper end of |A - B|'s interval is at most M (both tails of A - B
 * together within the interval's tail probability: a little stricter than
 * A - B's interval inside [-M, M]), fails when its lower end exceeds M.
 *
 * Verdict (nb_verdict_of), over the checks that are not post hoc (a
 * check whose text differs from the pre-registered one, prereg.h, is
 * reported but does not count):
 *   inconclusive       runs are missing (failed or not run), no check
 *                      counts, or none of the rules below applies
 *   no verdict         fewer than NB_VERDICT_MIN_SEEDS seeds (a smoke
 *                      test, such as --quick)
 *   reproduced         every check passes
 *   not reproduced     the central check fails (`central = true` in the
 *                      experiment; the first check when none is), or
 *                      every check fails
 *   partly reproduced  some checks pass and some fail
 * With reruns (rerun.h: the same runs made again with other BLAS kernels
 * or elsewhere), a check counts with its outcome only when every rerun's
 * is the same (nb_outcome_agree), inconclusive where they differ, and a
 * rerun that lacks runs counts as runs missing.
 *
 * Label short names are accepted as keys: bs (train.batch), G
 * (norm.groups). */
#ifndef NB_HARNESS_CHECK_H
#define NB_HARNESS_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "analyze/summarize.h"

struct nb_check_node;

struct nb_check {
    char *name;
    char *about;       /* optional one-line explanation (may be NULL) */
    char *text;        /* the statement as written */
    char *file;
    int line;
    enum nb_cmp op;
    bool central;      /* the claim's central check (see the verdict) */
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

/* The bootstrap's resample count and the intervals' confidence level. */
#define NB_CHECK_N_BOOT 4000
#define NB_CHECK_CI_LEVEL 0.95

enum nb_outcome { NB_OUT_PASS = 0, NB_OUT_FAIL, NB_OUT_INCONCLUSIVE, NB_OUT_NA,
                  NB_OUT_COUNT };
/* "pass", "fail", "inconclusive", "n/a" */
const char *nb_outcome_name(int o);

/* Is the effect of c a difference (left - right, threshold 0) rather
 * than the left side against a constant? */
bool nb_check_effect_is_diff(const struct nb_check *c);

struct nb_check_result {
    int outcome;
    double lhs, rhs;        /* on the means (NaN when N/A) */
    double effect;          /* on the means (see Effect above) */
    double threshold;
    double lo, hi;          /* the 95 % interval of the effect (NaN: none) */
    int n;                  /* seeds on which the statement evaluates */
    bool paired;            /* resampled with a shared draw over groups */
    int n_boot;             /* resamples that could be evaluated */
    int seeds_needed;       /* inconclusive: about how many seeds would
                               decide it (-1: more than 10000) */
    bool post_hoc;          /* set by the caller (prereg.h) */
    char why[600];          /* why it is N/A */
    int n_reps;
    double *rep_lhs, *rep_rhs;
    int *rep_holds;         /* 1, 0, or -1 when replicate k is N/A */
    int n_hold, n_fail, n_na; /* over replicates */
};

/* Evaluates c on the means, on every replicate and on the bootstrap
 * resamples of s (above).  Returns 0 (the outcome says whether it could
 * be decided) or NB_ENOMEM. */
int nb_check_eval(const struct nb_check *c, const struct nb_summary *s,
                  struct nb_check_result *r, struct nb_error *err);
void nb_check_result_free(struct nb_check_result *r);

enum nb_verdict { NB_VERDICT_REPRODUCED = 0, NB_VERDICT_PARTLY,
                  NB_VERDICT_NOT_REPRODUCED, NB_VERDICT_INCONCLUSIVE,
                  NB_VERDICT_NONE, NB_VERDICT_COUNT };
/* "reproduced", "partly reproduced", "not reproduced", "inconclusive",
 * "no verdict" */
const char *nb_verdict_name(int v);

/* Seeds a check needs for the experiment to have a verdict. */
#define NB_VERDICT_MIN_SEEDS 5

/* The index of the central check of c[0..n) (-1 when n = 0). */
int nb_check_central(const struct nb_check *c, int n);

/* The outcome a check counts with when the same runs, made twice, gave
 * outcomes a and b: a when they agree, else inconclusive. */
int nb_outcome_agree(int a, int b);

/* The verdict of the n checks c and their results r; complete = no run
 * is missing. */
int nb_verdict_of(const struct nb_check *c, const struct nb_check_result *r, int n,
                  bool complete);

#endif
