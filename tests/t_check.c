/* tests/t_check.c - the check language: parse errors with file, line and
 * did-you-mean hints; every operator, function and filter form evaluated
 * over the hand-made runs of tests/sumfix.c; outcomes across seeds and
 * the verdict. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "harness/check.h"
#include "harness/summarize.h"
#include "harness/sweep.h"
#include "sumfix.h"
#include "tap.h"

static struct nb_summary S;

/* Expects text to fail to parse with message msg (after "exp.ini:7: check
 * c: ") and, when hint is non-NULL, that hint. */
#define BAD(text, msg, hint) bad(__LINE__, text, msg, hint)
static void bad(int tl, const char *text, const char *msg, const char *hint)
{
    struct nb_check c;
    struct nb_error e;
    nb_error_clear(&e);
    int rc = nb_check_parse("c", text, "exp.ini", 7, &c, &e);
    tap_is_int_at(__FILE__, tl, rc, NB_EINVAL, "rejects: %s", text);
    char got[2048], want[2048];
    nb_error_format(&e, got, sizeof got);
    snprintf(want, sizeof want, "exp.ini:7: check c: %s", msg);
    tap_is_str_at(__FILE__, tl, got, want, "  message");
    if (hint)
        tap_is_str_at(__FILE__, tl, e.hint, hint, "  hint");
}

/* Parses text and evaluates it on the means; returns lhs (NaN and a
 * diagnostic when it cannot be evaluated); *holds gets the comparison. */
static double eval(const char *text, bool *holds)
{
    struct nb_check c;
    struct nb_error e;
    nb_error_clear(&e);
    *holds = false;
    if (nb_check_parse("c", text, "exp.ini", 1, &c, &e)) {
        tap_diag("parse error: %s", e.msg);
        return NAN;
    }
    double l, r;
    nb_error_clear(&e);
    if (nb_check_eval_mode(&c, &S, NB_SEL_MEAN, &l, &r, holds, &e)) {
        tap_diag("%s: %s", text, e.msg);
        l = NAN;
    }
    nb_check_free(&c);
    return l;
}

#define HOLDS(text) holds_(__LINE__, text, true)
#define FAILS(text) holds_(__LINE__, text, false)
static void holds_(int tl, const char *text, bool want)
{
    bool h;
    double v = eval(text, &h);
    tap_ok_at(__FILE__, tl, !isnan(v) && h == want, "%s %s", text, want ? "holds" : "fails");
}

#define VALUE(text, want) value_(__LINE__, text, want)
static void value_(int tl, const char *text, double want)
{
    bool h;
    tap_is_close_at(__FILE__, tl, eval(text, &h), want, 1e-9, 1e-12, "%s", text);
}

static double err_of(int n, int bs, int seed)
{
    return 100 * (1 - sumfix_acc(n, bs, seed));
}

static double gmean(int n, int bs)
{
    return (err_of(n, bs, 0) + err_of(n, bs, 1) + err_of(n, bs, 2)) / 3;
}

static void test_parse_errors(void)
{
    BAD("mean(final_test_error)", "expected a comparison (<, <=, >, >=, ==, !=) at the end", NULL);
    BAD("mean(final_test_eror) < 1",
        "unknown metric 'final_test_eror' (a run scalar such as final_test_error, a "
        "metrics.csv column such as train_loss, or PROBE.STAT)",
        "did you mean 'final_test_error'?");
    BAD("rnage(final_test_error) < 1",
        "unknown function 'rnage' (at mean median min max sum std range count first last "
        "rankcorr abs) at column 1, near 'rnage(final_test_error) < 1'",
        "did you mean 'range'?");
    BAD("mean(final_test_error, norm.typ=group) < 1", "unknown key 'norm.typ'",
        "did you mean 'norm.type'?");
    BAD("mean(final_test_error, momentum=0.9) < 1",
        "ambiguous key 'momentum' (norm.momentum or optim.momentum)", NULL);
    BAD("mean(final_test_error, layer=conv1) < 1",
        "filter 'layer=conv1' does not apply to final_test_error (a per-run scalar)", NULL);
    BAD("mean(test_acc, param=eta) < 1",
        "filter 'param=eta' does not apply to test_acc (a per-step metrics column)", NULL);
    BAD("mean(final_test_error, epoch<1) < 1",
        "filter 'epoch<1' does not apply to final_test_error (a per-run scalar)", NULL);
    BAD("mean(final_test_error, norm.type<group) < 1",
        "'norm.type<group' compares with <, which needs a number on a numeric key", NULL);
    BAD("mean(final_test_error, batch=32..2) < 1",
        "bad range in filter 'batch=32..2' (KEY=LO..HI with numbers LO <= HI, on a numeric "
        "key)",
        NULL);
    BAD("mean(final_test_error, batch<2|4) < 1",
        "alternatives (a|b) need = or != in filter 'batch<2|4'", NULL);
    BAD("mean(final_test_error, batch) < 1",
        "filter 'batch' needs an operator (=, !=, <, <=, >, >=) after 'batch'", NULL);
    BAD("mean(final_test_error, batch=) < 1", "filter 'batch=' has no value", NULL);
    BAD("mean(final_test_error, ) < 1", "empty filter at column 23, near ' ) < 1'", NULL);
    BAD("mean() < 1", "mean( needs a metric as its first argument at column 6, near ') < 1'",
        NULL);
    BAD("mean(final_test_error < 1",
        "expected ',' or ')' after the metric at column 23, near '< 1'", NULL);
    BAD("mean(final_test_error, batch=8 < 1",
        "filter 'batch=8 < 1': malformed integer '8 < 1' for [train] batch", NULL);
    BAD("1 < 2", "the statement measures nothing (no function over a metric) at the end", NULL);
    BAD("mean(final_test_error) = 3", "use '==' to compare for equality at column 24, near '= 3'",
        NULL);
    BAD("mean(final_test_error) < 1 < 2", "only one comparison per check at column 28, near '< 2'",
        NULL);
    BAD("mean(final_test_error) < 1)", "unexpected text after the statement at column 27, near ')'",
        NULL);
    BAD("mean(final_test_error) < ", "expected a number or a function call at the end", NULL);
    BAD("mean(final_test_error) < x", "expected a number or a function call such as "
        "mean(METRIC, KEY=VALUE), not a bare name at column 26, near 'x'", NULL);
    BAD("(mean(final_test_error) < 1", "expected ')' at column 25, near '< 1'", NULL);
    BAD("", "empty statement", NULL);
    BAD("at(landscape.loss_rnge) < 1", "probe landscape has no stat 'loss_rnge'",
        "did you mean 'landscape.loss_range'?");
    BAD("at(landscap.loss_range) < 1", "unknown probe 'landscap' in metric 'landscap.loss_range'",
        "did you mean 'landscape'?");
    BAD("rankcorr(final_test_error) < 0",
        "rankcorr(METRIC, KEY, ...) needs a key after the metric at column 26, near ') < 0'",
        NULL);
    BAD("rankcorr(final_test_error, step) < 0",
        "rankcorr over step needs a per-step metric at column 33, near ' < 0'", NULL);
    BAD("rankcorr(test_error, batch=2) < 0",
        "rankcorr's second argument must be a key (train.batch, step, ...) at column 29, near "
        "') < 0'",
        NULL);
    BAD("mean(final_test_error, norm.type=gruop) < 1",
        "filter 'norm.type=gruop': bad value 'gruop' for [norm] type", NULL);
    BAD("mean(final_test_error) < 1 $", "unexpected text after the statement at column 28, near '$'",
        NULL);

    /* filters alone (figure and table `where`) */
    struct nb_sum_filter *f;
    int n;
    struct nb_error e;
    nb_error_clear(&e);
    is_int(nb_filters_parse("norm.type=batch|group, bs=2..32, step>=10, layer!=conv1", "figure x",
                            "e.ini", 3, &f, &n, &e),
           0, "a filter list parses");
    is_int(n, 4, "  four filters");
    ok(n == 4 && f[0].n_vals == 2 && f[1].range && f[1].lo == 2 && f[1].hi == 32 &&
           f[2].key == NB_FK_STEP && f[2].op == NB_CMP_GE && f[3].op == NB_CMP_NE &&
           f[3].key == NB_FK_LAYER,
       "  with their keys, operators and values");
    nb_filters_free(f, n);
    is_int(nb_filters_parse("  ", "figure x", "e.ini", 3, &f, &n, &e), 0, "an empty list");
    is_int(n, 0, "  has no filters");
    nb_error_clear(&e);
    is_int(nb_filters_parse("lr=0.1, bogus=1", "figure x", "e.ini", 3, &f, &n, &e), NB_EINVAL,
           "a bad filter in a list");
    is_str(e.msg, "figure x: unknown key 'bogus'", "  names the owner");
    is_int(e.line, 3, "  and the line");
}

static void test_eval(void)
{
    /* comparison operators, on exact counts */
    HOLDS("count(final_test_error, norm.type=none) == 2");
    FAILS("count(final_test_error, norm.type=none) == 3");
    HOLDS("count(final_test_error, norm.type=none) != 3");
    HOLDS("count(final_test_error, norm.type=none) < 3");
    FAILS("count(final_test_error, norm.type=none) < 2");
    HOLDS("count(final_test_error, norm.type=none) <= 2");
    HOLDS("count(final_test_error, norm.type=none) > 1");
    FAILS("count(final_test_error, norm.type=none) > 2");
    HOLDS("count(final_test_error, norm.type=none) >= 2");
    /* arithmetic */
    VALUE("2 * count(final_test_error, norm.type=none) - 1 == 0", 3);
    VALUE("-count(final_test_error) < 0", -6);
    VALUE("abs(1 - count(final_test_error)) > 0", 5);
    VALUE("count(final_test_error) / 4 + 1.5 * 2 > 0", 4.5);
    VALUE("(1 + count(final_test_error)) * 2 > 0", 14);
    VALUE("count(final_test_error) - 2 - 1 > 0", 3);
    VALUE("count(final_test_error) / 2 / 3 > 0", 1);
    VALUE("count(final_test_error, norm.type=layer|none) > 0", 2);
    /* aggregates over group means */
    VALUE("at(final_test_error, norm.type=none, bs=8) > 0", gmean(0, 8));
    VALUE("mean(final_test_error, norm.type=none) > 0", (gmean(0, 8) + gmean(0, 32)) / 2);
    VALUE("median(final_test_error, batch=32) > 0", gmean(1, 32));
    VALUE("min(final_test_error, batch=32) > 0", err_of(2, 32, 0));
    VALUE("max(final_test_error) > 0",
          (err_of(1, 8, 0) + err_of(1, 8, 1)) / 2); /* batch bs=8, diverged seed left out */
    VALUE("sum(final_test_error, norm.type=none) > 0", gmean(0, 8) + gmean(0, 32));
    VALUE("range(final_test_error, norm.type=none|group) > 0", gmean(0, 8) - gmean(2, 8));
    VALUE("std(final_test_error, norm.type=none) >= 0", 0);
    VALUE("first(final_test_error, bs=32) > 0", gmean(0, 32));
    VALUE("last(final_test_error, bs=32) > 0", err_of(2, 32, 0));
    VALUE("mean(diverged, norm.type=batch, bs=8) > 0", 1.0 / 3);
    /* filter forms */
    VALUE("count(final_test_error, norm.type!=none) > 0", 4);
    VALUE("count(final_test_error, norm.type!=none|batch) > 0", 2);
    VALUE("count(final_test_error, bs=2..16) > 0", 3);
    VALUE("count(final_test_error, bs!=2..16) > 0", 3);
    VALUE("count(final_test_error, bs<32) > 0", 3);
    VALUE("count(final_test_error, bs<=32) > 0", 6);
    VALUE("count(final_test_error, bs>8) > 0", 3);
    VALUE("count(final_test_error, bs>=8, lr=0.1) > 0", 3);
    VALUE("count(final_test_error, optim.lr=0.40) > 0", 3); /* canonical: 0.4 */
    VALUE("count(final_test_error, norm.type=layer) >= 0", 0);
    /* per-step metrics and probes */
    VALUE("count(test_acc, norm.type=none, bs=32) > 0", 5);
    VALUE("count(test_acc, norm.type=none, bs=32, step>=50) > 0", 4);
    VALUE("count(test_acc, norm.type=none, bs=32, epoch<=1) > 0", 3);
    VALUE("first(test_error, norm.type=none, bs=32) > 0", 50);
    VALUE("rankcorr(test_error, step, norm.type=none, bs=8) < 0", -1);
    VALUE("rankcorr(train_loss, epoch, norm.type=group, bs=8) < 0", -1);
    VALUE("rankcorr(final_test_error, norm.type, bs=8) < 0 ", NAN); /* text key: N/A */
    {
        double lb = 0, ln = 0;
        for (int s = 0; s < 3; s++)
            for (int st = 0; st <= 20; st += 10) {
                lb += (sumfix_lmax(1, st, s) - sumfix_lmin(1, st, s)) / 9;
                ln += (sumfix_lmax(0, st, s) - sumfix_lmin(0, st, s)) / 9;
            }
        VALUE("mean(landscape.loss_range, norm.type=batch) / mean(landscape.loss_range, "
              "norm.type=none) <= 0.1",
              lb / ln);
        HOLDS("median(landscape.loss_range, norm.type=batch, epoch<=0.1) / "
              "median(landscape.loss_range, norm.type=none, epoch<=0.1) <= 0.1");
    }
    VALUE("count(landscape.loss, norm.type=none, param_value>=0.4) > 0", 6);
    VALUE("count(landscape.loss, norm.type=none, param=eta) > 0", 9);
    VALUE("at(ics.cos, norm.type=batch, layer=linear2, step=10) > 0", 0.8);
    VALUE("count(ics.cos, layer=linear1|linear2, step=0) > 0", 4);
    VALUE("at(hessian.lambda_max, norm.type=none) / at(hessian.lambda_max, norm.type=batch) > 1",
          51.0 / 6.0);
}

static void outcome(int tl, const char *text, int want, int n_hold, int n_fail, int n_na)
{
    struct nb_check c;
    struct nb_check_result r;
    struct nb_error e;
    nb_error_clear(&e);
    if (nb_check_parse("c", text, "exp.ini", 1, &c, &e))
        tap_bail("parse: %s", e.msg);
    tap_is_int_at(__FILE__, tl, nb_check_eval(&c, &S, &r, &e), 0, "evaluates: %s", text);
    tap_is_str_at(__FILE__, tl, nb_outcome_name(r.outcome), nb_outcome_name(want), "  outcome");
    tap_ok_at(__FILE__, tl, r.n_hold == n_hold && r.n_fail == n_fail && r.n_na == n_na,
              "  seeds: %d hold, %d fail, %d n/a (want %d %d %d)", r.n_hold, r.n_fail, r.n_na,
              n_hold, n_fail, n_na);
    if (want == NB_OUT_NA)
        tap_ok_at(__FILE__, tl, r.why[0] != '\0', "  why: %s", r.why);
    nb_check_result_free(&r);
    nb_check_free(&c);
}

static void test_outcomes(void)
{
    /* none bs=8: seeds 20.0, 19.9, 19.8 (mean 19.9) */
    outcome(__LINE__, "at(final_test_error, norm.type=none, bs=8) < 20.5", NB_OUT_PASS, 3, 0, 0);
    outcome(__LINE__, "at(final_test_error, norm.type=none, bs=8) < 19.75", NB_OUT_FAIL, 0, 3, 0);
    outcome(__LINE__, "at(final_test_error, norm.type=none, bs=8) < 19.95", NB_OUT_MIXED, 2, 1, 0);
    outcome(__LINE__, "at(final_test_error, norm.type=none, bs=8) > 19.95", NB_OUT_MIXED, 1, 2, 0);
    outcome(__LINE__, "at(final_test_error, norm.type=none) < 50", NB_OUT_NA, 0, 0, 3);
    outcome(__LINE__, "count(final_test_error, norm.type=none) / 0 < 50", NB_OUT_NA, 0, 0, 3);
    /* group bs=32 has only seed 0: the other replicates are n/a */
    outcome(__LINE__, "at(final_test_error, norm.type=group, bs=32) < 50", NB_OUT_PASS, 1, 0, 2);
    /* batch bs=8's seed 2 diverged: its replicate is n/a for the error */
    outcome(__LINE__, "at(final_test_error, norm.type=batch, bs=8) > 10", NB_OUT_PASS, 2, 0, 1);

    struct nb_check_result r[3];
    memset(r, 0, sizeof r);
    r[0].outcome = r[1].outcome = r[2].outcome = NB_OUT_PASS;
    is_str(nb_verdict_name(nb_verdict_of(r, 3, true)), "reproduced", "all pass: reproduced");
    is_str(nb_verdict_name(nb_verdict_of(r, 3, false)), "inconclusive",
           "all pass with runs missing: inconclusive");
    r[1].outcome = NB_OUT_MIXED;
    is_str(nb_verdict_name(nb_verdict_of(r, 3, true)), "inconclusive",
           "seeds disagree: inconclusive");
    r[2].outcome = NB_OUT_FAIL;
    is_str(nb_verdict_name(nb_verdict_of(r, 3, true)), "not reproduced", "a failure wins");
    r[1].outcome = r[2].outcome = NB_OUT_NA;
    is_str(nb_verdict_name(nb_verdict_of(r, 3, true)), "inconclusive", "n/a: inconclusive");
    is_str(nb_verdict_name(nb_verdict_of(r, 0, true)), "inconclusive", "no checks: inconclusive");
}

int main(void)
{
    const char *dir = tap_tmpdir("t_check");
    const char *cfg = sumfix_make(dir);
    struct nb_sweep sw;
    struct nb_error e;
    nb_error_clear(&e);
    char edir[4200];
    snprintf(edir, sizeof edir, "%s/fx", dir);
    nb_summary_init(&S);
    if (nb_sweep_load(cfg, &sw, &e) || nb_summary_add_sweep(&S, &sw, edir, &e) ||
        nb_summary_group(&S, &e))
        tap_bail("fixture: %s", e.msg);
    test_parse_errors();
    test_eval();
    test_outcomes();
    nb_summary_free(&S);
    nb_sweep_free(&sw);
    tap_done_testing();
    return tap_exit();
}
