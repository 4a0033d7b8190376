/* tests/t_check.c - the check language: parse errors with file, line and
 * did-you-mean hints; every operator, function and filter form evaluated
 * over the hand-made runs of tests/sumfix.c; outcomes across seeds and
 * the verdict. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "analyze/check.h"
#include "analyze/prereg.h"
#include "analyze/summarize.h"
#include "config/sweep.h"
#include "sumfix.h"
#include "tap.h"

static struct nb_summary S;
static const char *tmpdir;

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
        "rankcorr largest smallest above abs) at column 1, near 'rnage(final_test_error) < 1'",
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
    /* largest / smallest (KEY, METRIC OP NUMBER, FILTER...) */
    BAD("largest(final_test_error <= 20) > 0",
        "largest(KEY, METRIC OP NUMBER, ...) needs a key as its first argument at column 9, "
        "near 'final_test_error <= 20) > 0'",
        NULL);
    BAD("smallest(norm.type, final_test_error <= 20) > 0",
        "smallest's key must be a numeric config key (optim.lr, train.batch, ...) at column "
        "19, near ', final_test_error <= 20) > 0'",
        NULL);
    BAD("largest(lr) > 0",
        "largest(KEY, METRIC OP NUMBER, ...) needs a condition after the key at column 11, "
        "near ') > 0'",
        NULL);
    BAD("largest(lr, final_test_error) > 0",
        "largest's condition must be METRIC OP NUMBER (final_test_error <= 20) at column 29, "
        "near ') > 0'",
        NULL);
    BAD("largest(lr, test_error <= 20) > 0",
        "largest's condition needs a per-run scalar (final_test_error, diverged, ...), not "
        "test_error at column 13, near 'test_error <= 20) > 0'",
        NULL);
    BAD("largest(lr, final_test_error <= x) > 0",
        "largest's condition needs a number after <= at column 33, near 'x) > 0'", NULL);
    BAD("largest(lr, final_test_error <= 20 20) > 0",
        "expected ',' or ')' after largest's condition at column 36, near '20) > 0'", NULL);
    BAD("largest(lr, final_tset_error <= 20) > 0",
        "unknown metric 'final_tset_error' (a run scalar such as final_test_error, a "
        "metrics.csv column such as train_loss, or PROBE.STAT)",
        "did you mean 'final_test_error'?");
    BAD("largest(lr, final_test_error <= 20, step>=10) > 0",
        "filter 'step>=10' does not apply to final_test_error (a per-run scalar)", NULL);
    BAD("largest(bogus, final_test_error <= 20) > 0", "unknown key 'bogus'", NULL);
    /* above(METRIC, KEY, A, B, FILTER...) */
    BAD("above(test_acc, norm.type, batch) > 0",
        "above(METRIC, KEY, A, B, ...) needs the second group's value here at column 33, "
        "near ') > 0'",
        NULL);
    BAD("above(test_acc, norm.type=batch, none, group) > 0",
        "above(METRIC, KEY, A, B, ...) needs a key here (a plain value) at column 16, near "
        "' norm.type=batch, none, group)'",
        NULL);
    BAD("above(test_acc, step, 1, 2) > 0",
        "above's key must be a config key (norm.type, optim.lr, ...), not 'step' at column 27, "
        "near ') > 0'",
        NULL);
    BAD("above(test_acc, norm.type, batch, nome) > 0",
        "filter 'norm.type=nome': bad value 'nome' for [norm] type", NULL);
    BAD("above(test_acc, norm.typ, batch, none) > 0", "unknown key 'norm.typ'",
        "did you mean 'norm.type'?");
    BAD("mean(final_test_error, norm.type=gruop) < 1",
        "filter 'norm.type=gruop': bad value 'gruop' for [norm] type", NULL);
    BAD("mean(final_test_error) < 1 $", "unexpected text after the statement at column 28, near '$'",
        NULL);
    /* contrasts: KEY=A vs B, one value each side, a config key, once */
    BAD("median(ics.cos, norm.type=batch|group vs none) < 0",
        "a contrast is KEY=A vs B with one value on each side, not "
        "'norm.type=batch|group vs none'", NULL);
    BAD("median(ics.cos, norm.type=batch vs none|group) < 0",
        "a contrast is KEY=A vs B with one value on each side, not "
        "'norm.type=batch vs none|group'", NULL);
    BAD("median(ics.cos, norm.type!=batch vs none) < 0",
        "a contrast is KEY=A vs B with one value on each side, not "
        "'norm.type!=batch vs none'", NULL);
    BAD("median(ics.cos, norm.type=batch vs) < 0",
        "a contrast is KEY=A vs B with one value on each side, not 'norm.type=batch vs'", NULL);
    BAD("median(ics.cos, step=10 vs 20) < 0",
        "a contrast compares groups: its key must be a config key, not 'step'", NULL);
    BAD("median(ics.cos, norm.type=batch vs none, bs=8 vs 32) < 0",
        "one contrast (KEY=A vs B) per call at column 52, near ') < 0'", NULL);
    BAD("median(ics.cos, norm.type=batch vs batch) < 0",
        "the contrast 'norm.type=batch vs batch' compares a value with itself", NULL);
    BAD("median(ics.cos, norm.type=batch vs gruop) < 0",
        "filter 'norm.type=gruop': bad value 'gruop' for [norm] type", NULL);

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
    /* contrasts: A's value minus B's at the same point of the group that
     * differs only in the contrast's key */
    VALUE("at(final_test_error, norm.type=batch vs none, bs=32) > 0",
          gmean(1, 32) - gmean(0, 32));
    VALUE("count(final_test_error, norm.type=batch vs none) > 0", 2); /* bs=8 and bs=32 */
    VALUE("max(final_test_error, norm.type=none vs batch) > 0",
          fmax(gmean(0, 8) - (err_of(1, 8, 0) + err_of(1, 8, 1)) / 2,
               gmean(0, 32) - gmean(1, 32)));
    VALUE("count(ics.l2, norm.type=batch vs none) > 0", 6); /* 3 steps x 2 layers */
    VALUE("median(ics.l2, norm.type=batch vs none, layer=linear2) > 0", 0.2);
    VALUE("median(ics.cos, norm.type=none vs batch) > 0", 0.05); /* 0 (linear1), 0.1 */
    VALUE("min(ics.cos, norm.type=batch vs none, step>=10) < 0", -0.1);
    /* metrics columns: none bs=32's extra step 25 has no partner */
    VALUE("count(test_acc, norm.type=batch vs none, bs=32) > 0", 4);
    VALUE("mean(test_acc, norm.type=batch vs none, bs=32) > 0",
          (sumfix_acc(1, 32, 0) + sumfix_acc(1, 32, 1) + sumfix_acc(1, 32, 2) -
           sumfix_acc(0, 32, 0) - sumfix_acc(0, 32, 1) - sumfix_acc(0, 32, 2)) / 3);
    VALUE("rankcorr(ics.l2, step, norm.type=batch vs none, layer=linear2) > 0", NAN);
    VALUE("median(ics.l2, norm.type=batch vs group) > 0", NAN); /* group has no probes */
    VALUE("at(final_test_error, norm.type=batch vs layer, bs=8) > 0", NAN); /* no layer group */
    /* largest / smallest: the key's extreme over the groups in which every
     * finished run meets the condition; a diverged run never does (none:
     * errors 20.0, 19.9, 19.8 at both batches; batch bs=8: 23.0, 22.9 and
     * seed 2 diverged, bs=32: 18.0, 17.9, 17.8; group bs=8: 16.0, 15.9,
     * 15.8, bs=32: seed 0 alone, 16.0) */
    /* above: the share of common points at which the first group is higher */
    VALUE("above(test_acc, norm.type, group, none, bs=8) > 0.5", 1);
    VALUE("above(test_acc, norm.type, none, group, bs=8) > 0.5", 0);
    VALUE("above(test_acc, norm.type, batch, none, bs=32) > 0.5", 1); /* none's step 25 unpaired */
    VALUE("above(test_acc, norm.type, none, none, bs=8) > 0.5", 0);   /* ties are not higher */
    VALUE("above(test_acc, bs, 32, 8, norm.type=none) > 0.5", 0);    /* equal: none's acc */
    VALUE("above(test_acc, bs, 32, 8, norm.type=batch) > 0.5", 1);
    VALUE("above(test_acc, norm.type, batch, none) > 0.5", NAN);      /* two groups a side */
    VALUE("above(test_acc, norm.type, layer, none, bs=8) > 0.5", NAN); /* no layer runs */
    VALUE("above(final_test_error, norm.type, none, group, bs=8) > 0.5", 1);
    VALUE("above(landscape.beta_eff, norm.type, none, batch) > 0.5", 1);
    VALUE("above(dist.p50, norm.type, none, batch, layer=linear1) > 0.5", 0);
    VALUE("largest(bs, final_test_error <= 25, norm.type=batch) > 0", 32);
    VALUE("smallest(bs, final_test_error <= 25, norm.type=batch) > 0", 32);
    VALUE("smallest(bs, final_test_error <= 25, norm.type=none) > 0", 8);
    VALUE("largest(lr, final_test_error < 20.5, norm.type=none) > 0", 0.4);
    VALUE("smallest(optim.lr, final_test_error < 20.5, norm.type=none) > 0", 0.1);
    VALUE("largest(lr, final_test_error < 19.95, norm.type=none) > 0", NAN); /* seed 0: 20 */
    VALUE("smallest(bs, diverged = 0, norm.type=batch) > 0", 32);
    VALUE("smallest(bs, diverged < 1) > 0", 8);
    VALUE("smallest(bs, diverged >= 1) > 0", NAN);
    VALUE("largest(bs, final_test_error < 16.05) > 0", 32); /* group's one run at 32 */
    VALUE("largest(bs, final_test_error < 16.05, norm.type=batch|none) > 0", NAN);
    VALUE("largest(bs, final_test_error < 19, norm.type!=group) - "
          "smallest(bs, final_test_error < 19, norm.type!=group) >= 0",
          0);
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

/* A statement nested deeper than the parser allows is an error, not a
 * stack overflow (fuzz_check found one with a few thousand parentheses). */
static void test_nesting(void)
{
    /* 200000 levels overflow any stack when parsed by recursion alone */
    enum { DEEP = 200000 };
    char *text = malloc(DEEP + 64);
    if (!text)
        tap_bail("out of memory");
    memset(text, '(', DEEP);
    text[DEEP] = '\0';
    struct nb_check c;
    struct nb_error e;
    nb_error_clear(&e);
    is_int(nb_check_parse("c", text, "exp.ini", 3, &c, &e), NB_EINVAL,
           "200000 nested parentheses: a parse error");
    ok(strstr(e.msg, "nested more than 100 deep") != NULL, "  that says why");
    memset(text, '-', DEEP);
    snprintf(text + DEEP, 64, "count(final_test_error) < 1");
    nb_error_clear(&e);
    is_int(nb_check_parse("c", text, "exp.ini", 3, &c, &e), NB_EINVAL,
           "200000 unary minus signs: a parse error");
    free(text);
    nb_error_clear(&e);
    ok(nb_check_parse("c", "((((((count(final_test_error))))))) < 1", "exp.ini", 3, &c, &e) == 0,
       "a few parentheses still parse");
    nb_check_free(&c);
}

static void test_outcomes(void)
{
    /* none bs=8: seeds 20.0, 19.9, 19.8 (mean 19.9) */
    outcome(__LINE__, "at(final_test_error, norm.type=none, bs=8) < 20.5", NB_OUT_PASS, 3, 0, 0);
    outcome(__LINE__, "at(final_test_error, norm.type=none, bs=8) < 19.75", NB_OUT_FAIL, 0, 3, 0);
    outcome(__LINE__, "at(final_test_error, norm.type=none, bs=8) < 19.95", NB_OUT_INCONCLUSIVE,
            2, 1, 0);
    outcome(__LINE__, "at(final_test_error, norm.type=none, bs=8) > 19.95", NB_OUT_INCONCLUSIVE,
            1, 2, 0);
    outcome(__LINE__, "at(final_test_error, norm.type=none) < 50", NB_OUT_NA, 0, 0, 3);
    outcome(__LINE__, "count(final_test_error, norm.type=none) / 0 < 50", NB_OUT_NA, 0, 0, 3);
    /* group bs=32 has only seed 0: one seed gives no interval */
    outcome(__LINE__, "at(final_test_error, norm.type=group, bs=32) < 50", NB_OUT_NA, 1, 0, 2);
    /* batch bs=8's seed 2 diverged: its replicate is n/a, two seeds decide */
    outcome(__LINE__, "at(final_test_error, norm.type=batch, bs=8) > 10", NB_OUT_PASS, 2, 0, 1);
    outcome(__LINE__, "at(final_test_error, norm.type=none, bs=8) == 19.9", NB_OUT_NA, 0, 3, 0);
    /* a contrast's differences, paired point by point, on every seed */
    outcome(__LINE__, "median(ics.l2, norm.type=batch vs none) > 0", NB_OUT_PASS, 3, 0, 0);
    outcome(__LINE__, "median(ics.l2, norm.type=batch vs layer) > 0", NB_OUT_NA, 0, 0, 3);
    outcome(__LINE__, "above(test_acc, norm.type, batch, none, bs=32) > 0.5", NB_OUT_PASS, 3,
            0, 0);
    /* largest / smallest across seeds: each seed alone, and resampled */
    outcome(__LINE__, "largest(bs, final_test_error <= 25, norm.type=batch) >= 32", NB_OUT_PASS,
            3, 0, 0);
    outcome(__LINE__, "largest(bs, final_test_error <= 25, norm.type=batch) < 32", NB_OUT_FAIL,
            0, 3, 0);
    /* batch bs=8 meets it on seeds 0 and 1 alone, not with the diverged
     * seed 2: 8 on resamples without seed 2, 32 on the others */
    outcome(__LINE__, "smallest(bs, final_test_error <= 25, norm.type=batch) < 10",
            NB_OUT_INCONCLUSIVE, 2, 1, 0);
    /* no group qualifies on the means (seed 0's 20.0 at both batches) */
    outcome(__LINE__, "largest(bs, final_test_error < 19.95, norm.type=none) > 0", NB_OUT_NA, 2,
            0, 1);
}

/* ---- intervals on hand-made experiments ------------------------------------ */

/* Writes an experiment of two groups, none and batch (mlp, blobs), with
 * final test errors ne[k] and be[k] for k < n seeds.  Seeds of none are
 * 0..n-1; batch's are the same (paired) or 100..100+n-1 (unpaired: two
 * configs).  Returns a summary in *s. */
static void two_groups(const char *tag, int n, const double *ne, const double *be, bool paired,
                       struct nb_summary *s)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, tag);
    mkdir(dir, 0777);
    nb_summary_init(s);
    for (int part = 0; part < (paired ? 1 : 2); part++) {
        char cfg[4300];
        snprintf(cfg, sizeof cfg, "%s/p%d.ini", dir, part);
        FILE *fp = fopen(cfg, "w");
        if (!fp)
            tap_bail("cannot write %s", cfg);
        fprintf(fp, "[experiment]\nname = p%d\nresults_dir = %s\nseeds = %d..%d\n"
                    "[model]\narch = mlp\nwidths = 16\n[norm]\ntype = %s\n"
                    "[train]\nbatch = 8\nepochs = 1\n[data]\nsource = blobs\n",
                part, dir, part ? 100 : 0, (part ? 100 : 0) + n - 1,
                paired ? "none, batch" : part ? "batch" : "none");
        fclose(fp);
        struct nb_sweep sw;
        struct nb_error e;
        nb_error_clear(&e);
        if (nb_sweep_load(cfg, &sw, &e))
            tap_bail("%s: %s", cfg, e.msg);
        char edir[4400];
        snprintf(edir, sizeof edir, "%s/p%d", dir, part);
        mkdir(edir, 0777);
        for (size_t i = 0; i < sw.n_runs; i++) {
            const struct nb_run *run = &sw.runs[i];
            bool batch = !strcmp(nb_run_get_str(run, "norm", "type"), "batch");
            int k = (int)(run->seed % 100);
            char rdir[4500], path[4600];
            snprintf(rdir, sizeof rdir, "%s/%s", edir, run->run_id);
            mkdir(rdir, 0777);
            snprintf(path, sizeof path, "%s/config.ini", rdir);
            fp = fopen(path, "w");
            nb_run_write_ini(fp, run);
            fclose(fp);
            snprintf(path, sizeof path, "%s/metrics.csv", rdir);
            fp = fopen(path, "w");
            double err = batch ? be[k] : ne[k];
            fprintf(fp, "step,epoch,lr,train_loss,train_acc,test_loss,test_acc,grad_norm\n"
                        "10,1,0.1,0.5,0.8,0.6,%.17g,1\n",
                    1 - err / 100);
            fclose(fp);
            snprintf(path, sizeof path, "%s/DONE", rdir);
            fp = fopen(path, "w");
            fprintf(fp, "run_id = %s\nstatus = done\nsteps = 10\nwall_seconds = 1\n",
                    run->run_id);
            fclose(fp);
        }
        if (nb_summary_add_sweep(s, &sw, edir, &e))
            tap_bail("%s: %s", cfg, e.msg);
        nb_sweep_free(&sw);
    }
    struct nb_error e;
    nb_error_clear(&e);
    if (nb_summary_group(s, &e))
        tap_bail("group: %s", e.msg);
}

#define GAP "at(final_test_error, norm.type=none) - at(final_test_error, norm.type=batch)"

/* Evaluates text on s; returns the result (caller frees). */
static struct nb_check_result ci_eval(const struct nb_summary *s, const char *text)
{
    struct nb_check c;
    struct nb_check_result r;
    struct nb_error e;
    nb_error_clear(&e);
    if (nb_check_parse("gap", text, "exp.ini", 1, &c, &e))
        tap_bail("parse: %s", e.msg);
    if (nb_check_eval(&c, s, &r, &e))
        tap_bail("eval: %s", e.msg);
    nb_check_free(&c);
    return r;
}

static void test_intervals(void)
{
    static const double none5[] = {15.0, 15.2, 14.8, 15.1, 14.9};
    static const double batch5[] = {12.1, 11.8, 12.2, 11.9, 12.0};
    struct nb_summary s;
    two_groups("clear", 5, none5, batch5, true, &s);
    struct nb_check_result r = ci_eval(&s, GAP " >= 1");
    is_str(nb_outcome_name(r.outcome), "pass", "a clear effect passes");
    is_close(r.effect, 3.0, 1e-9, 1e-12, "  effect = none - batch (the constant side is the threshold)");
    is_close(r.threshold, 1.0, 0, 0, "  threshold");
    ok(r.lo > 2.5 && r.lo < 3.0 && r.hi > 3.0 && r.hi < 3.5, "  95%% interval [%g, %g] around 3", r.lo,
       r.hi);
    is_int(r.n, 5, "  n = 5 seeds");
    ok(r.paired, "  paired: the groups share their seeds");
    double lo = r.lo, hi = r.hi;
    nb_check_result_free(&r);
    r = ci_eval(&s, GAP " >= 1");
    ok(r.lo == lo && r.hi == hi, "  deterministic: the same interval twice");
    nb_check_result_free(&r);
    r = ci_eval(&s, "at(final_test_error, norm.type=batch) - at(final_test_error, norm.type=none) >= 1");
    is_str(nb_outcome_name(r.outcome), "fail", "a clear reverse effect fails");
    nb_check_result_free(&r);
    r = ci_eval(&s, "at(final_test_error, norm.type=batch) < at(final_test_error, norm.type=none)");
    is_str(nb_outcome_name(r.outcome), "pass", "A < B: effect A - B against 0");
    is_close(r.effect, -3.0, 1e-9, 1e-12, "  effect");
    is_close(r.threshold, 0.0, 0, 0, "  threshold 0");
    nb_check_result_free(&r);
    r = ci_eval(&s, GAP " >= 3");
    is_str(nb_outcome_name(r.outcome), "inconclusive", "an effect on the threshold is inconclusive");
    is_int(r.seeds_needed, -1, "  no number of seeds decides it");
    nb_check_result_free(&r);
    r = ci_eval(&s, GAP " >= 2.95");
    is_str(nb_outcome_name(r.outcome), "inconclusive", "an effect inside the noise is inconclusive");
    ok(r.seeds_needed > 5, "  more seeds would decide it (~%d)", r.seeds_needed);
    nb_check_result_free(&r);
    r = ci_eval(&s, "at(final_test_error, norm.type=batch) / at(final_test_error, norm.type=none) < 0.9");
    is_str(nb_outcome_name(r.outcome), "pass", "a ratio against a constant");
    is_close(r.effect, 12.0 / 15.0, 1e-9, 1e-12, "  effect = the ratio of the means");
    nb_check_result_free(&r);
    r = ci_eval(&s, "abs(" GAP ") <= 0.5");
    is_str(nb_outcome_name(r.outcome), "fail", "an equivalence margin that the effect exceeds fails");
    nb_check_result_free(&r);
    nb_summary_free(&s);

    /* an equivalence, abs(A - B) <= M (how the language states one): the
     * effect is |A - B| on the means; it passes when the upper end of its
     * interval is within the margin, fails when the lower end is beyond it */
    static const double eq_b[] = {15.1, 15.2, 14.9, 15.0, 15.0}; /* gap -0.1..0.1 */
    two_groups("equiv", 5, none5, eq_b, true, &s);
    r = ci_eval(&s, "abs(" GAP ") <= 0.5");
    is_str(nb_outcome_name(r.outcome), "pass", "equivalence: a gap well inside the margin passes");
    is_close(r.effect, 0.04, 1e-9, 1e-12, "  effect = |mean gap|");
    is_close(r.threshold, 0.5, 0, 0, "  threshold = the margin");
    ok(r.lo >= 0 && r.hi < 0.2, "  interval of |gap| [%g, %g] inside [0, 0.5]", r.lo, r.hi);
    nb_check_result_free(&r);
    nb_summary_free(&s);
    static const double eq_w[] = {14.1, 15.5, 14.2, 15.1, 14.6}; /* gap 0.3 +- 0.5 */
    two_groups("equiv_wide", 5, none5, eq_w, true, &s);
    r = ci_eval(&s, "abs(" GAP ") <= 0.5");
    is_str(nb_outcome_name(r.outcome), "inconclusive",
           "equivalence: an interval reaching past the margin is inconclusive");
    is_close(r.effect, 0.3, 1e-9, 1e-12, "  effect = |mean gap|");
    ok(r.lo < 0.5 && r.hi > 0.5, "  interval [%g, %g] straddles 0.5", r.lo, r.hi);
    nb_check_result_free(&r);
    nb_summary_free(&s);

    /* the same gap of 1 riding on a large seed effect: paired it is exact,
     * unpaired the seed effect is noise */
    static const double ns[] = {13.0, 14.0, 15.0, 16.0, 17.0};
    static const double bs[] = {12.0, 13.0, 14.0, 15.0, 16.0};
    two_groups("paired", 5, ns, bs, true, &s);
    r = ci_eval(&s, GAP " > 0.5");
    is_str(nb_outcome_name(r.outcome), "pass", "paired: a constant per-seed gap passes");
    ok(r.paired && fabs(r.lo - 1) < 1e-9 && fabs(r.hi - 1) < 1e-9, "  interval [%g, %g]", r.lo,
       r.hi);
    nb_check_result_free(&r);
    nb_summary_free(&s);
    two_groups("unpaired", 5, ns, bs, false, &s);
    r = ci_eval(&s, GAP " > 0.5");
    ok(!r.paired, "unpaired: the groups have different seeds");
    is_str(nb_outcome_name(r.outcome), "inconclusive", "  the same gap is inside the seed noise");
    ok(r.lo < 0.5 && r.hi > 1.5, "  wide interval [%g, %g]", r.lo, r.hi);
    nb_check_result_free(&r);
    nb_summary_free(&s);

    /* one seed: no interval */
    two_groups("one", 1, none5, batch5, true, &s);
    r = ci_eval(&s, GAP " >= 1");
    is_str(nb_outcome_name(r.outcome), "n/a", "n = 1 refuses");
    ok(strstr(r.why, "at least 2 seeds") != NULL, "  why: %s", r.why);
    nb_check_result_free(&r);
    nb_summary_free(&s);
}

static void test_verdicts(void)
{
    struct nb_check c[3];
    struct nb_check_result r[3];
    memset(c, 0, sizeof c);
    memset(r, 0, sizeof r);
    for (int i = 0; i < 3; i++) {
        r[i].outcome = NB_OUT_PASS;
        r[i].n = 5;
    }
#define V(want, complete, what) \
    is_str(nb_verdict_name(nb_verdict_of(c, r, 3, complete)), want, what)
    V("reproduced", true, "all pass: reproduced");
    V("inconclusive", false, "all pass with runs missing: inconclusive");
    r[1].outcome = NB_OUT_INCONCLUSIVE;
    V("inconclusive", true, "pass and inconclusive: inconclusive");
    r[2].outcome = NB_OUT_FAIL;
    V("partly reproduced", true, "pass, inconclusive and fail: partly reproduced");
    r[0].outcome = NB_OUT_FAIL;
    V("not reproduced", true, "the central check (the first by default) fails: not reproduced");
    c[0].central = false;
    c[1].central = true;
    r[1].outcome = NB_OUT_PASS;
    V("partly reproduced", true, "central passes, others fail: partly reproduced");
    is_int(nb_check_central(c, 3), 1, "central = true picks the central check");
    r[1].outcome = NB_OUT_FAIL;
    V("not reproduced", true, "all fail: not reproduced");
    r[0].outcome = r[1].outcome = r[2].outcome = NB_OUT_PASS;
    r[2].n = 3;
    V("no verdict", true, "fewer than 5 seeds: no verdict (a smoke test)");
    r[2].n = 5;
    r[2].outcome = NB_OUT_FAIL;
    r[2].post_hoc = true;
    V("reproduced", true, "a post hoc check does not count");
    r[0].post_hoc = r[1].post_hoc = true;
    V("inconclusive", true, "only post hoc checks: inconclusive");
    is_str(nb_verdict_name(nb_verdict_of(c, r, 0, true)), "inconclusive", "no checks: inconclusive");
#undef V
    /* a rerun of the same runs: an outcome counts only where both agree */
    is_int(nb_outcome_agree(NB_OUT_PASS, NB_OUT_PASS), NB_OUT_PASS, "a pass in both is a pass");
    is_int(nb_outcome_agree(NB_OUT_FAIL, NB_OUT_FAIL), NB_OUT_FAIL, "a fail in both is a fail");
    is_int(nb_outcome_agree(NB_OUT_FAIL, NB_OUT_INCONCLUSIVE), NB_OUT_INCONCLUSIVE,
           "a fail and an inconclusive count as inconclusive");
    is_int(nb_outcome_agree(NB_OUT_PASS, NB_OUT_FAIL), NB_OUT_INCONCLUSIVE,
           "a pass and a fail of the same check count as inconclusive");
    is_int(nb_outcome_agree(NB_OUT_NA, NB_OUT_NA), NB_OUT_NA, "n/a in both stays n/a");
}

static void test_prereg(void)
{
    char exp[4200], reg[4200];
    snprintf(exp, sizeof exp, "%s/prereg.ini", tmpdir);
    snprintf(reg, sizeof reg, "%s/%s", tmpdir, NB_PREREG_FILE);
    FILE *fp = fopen(exp, "w");
    fputs("[experiment]\nclaim = x\n", fp);
    fclose(fp);
    struct nb_check c[2];
    struct nb_error e;
    nb_error_clear(&e);
    if (nb_check_parse("a", "at(final_test_error, norm.type=none) <\n  20", "exp.ini", 1, &c[0], &e) ||
        nb_check_parse("b", "count(final_test_error) > 1", "exp.ini", 2, &c[1], &e))
        tap_bail("parse: %s", e.msg);
    struct nb_prereg p;
    is_int(nb_prereg_read(reg, &p, &e), 0, "no registration: read succeeds");
    ok(!p.present, "  and says it is absent");
    is_int(nb_prereg_status(&p, &c[0]), NB_REG_NONE, "  every check: not pre-registered");
    is_int(nb_prereg_write(reg, exp, c, 1, "2026-12-06 18:00 UTC", "abc1234", 0, &e), 0,
           "registers check a");
    is_int(nb_prereg_write(reg, exp, c, 1, "2026-12-06 18:00 UTC", "abc1234", 0, &e), NB_EINVAL,
           "  never rewrites an existing registration");
    is_int(nb_prereg_read(reg, &p, &e), 0, "reads it back");
    ok(p.present && p.n_checks == 1 && !strcmp(p.revision, "abc1234") && p.runs_before == 0,
       "  revision, runs_before and one check");
    is_int(nb_prereg_status(&p, &c[0]), NB_REG_OK, "  a: pre-registered");
    is_int(nb_prereg_status(&p, &c[1]), NB_REG_ADDED, "  b: added after the runs");
    struct nb_check c2;
    if (nb_check_parse("a", "at(final_test_error,   norm.type=none) < 20", "exp.ini", 1, &c2, &e))
        tap_bail("parse: %s", e.msg);
    is_int(nb_prereg_status(&p, &c2), NB_REG_OK, "  re-wrapping whitespace changes nothing");
    nb_check_free(&c2);
    if (nb_check_parse("a", "at(final_test_error, norm.type=none) < 21", "exp.ini", 1, &c2, &e))
        tap_bail("parse: %s", e.msg);
    is_int(nb_prereg_status(&p, &c2), NB_REG_CHANGED, "  editing the statement makes it post hoc");
    nb_check_free(&c2);
    p.runs_before = 3;
    is_int(nb_prereg_status(&p, &c[0]), NB_REG_LATE, "  registered after runs existed: post hoc");
    nb_prereg_free(&p);
    char hex[17], hex2[17];
    nb_prereg_file_hash(exp, hex, &e);
    fp = fopen(exp, "a");
    fputs("notes = y\n", fp);
    fclose(fp);
    nb_prereg_file_hash(exp, hex2, &e);
    ok(strcmp(hex, hex2) != 0, "the experiment file's hash changes with its text");
    nb_check_free(&c[0]);
    nb_check_free(&c[1]);
}

int main(void)
{
    const char *dir = tmpdir = tap_tmpdir("t_check");
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
    test_nesting();
    test_outcomes();
    test_intervals();
    test_verdicts();
    test_prereg();
    nb_summary_free(&S);
    nb_sweep_free(&sw);
    tap_done_testing();
    return tap_exit();
}
