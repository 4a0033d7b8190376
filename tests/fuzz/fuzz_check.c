/* tests/fuzz/fuzz_check.c - libFuzzer target: the check language
 * (nb_check_parse, nb_filters_parse) and the evaluation of a parsed check
 * on the means and on each replicate of a small fixed summary (the
 * hand-made runs of tests/sumfix.c: 3 norms x 2 batch sizes x 3 seeds,
 * built once per process in a scratch directory).
 *
 * Input: the statement's text (up to the first NUL byte).  When the first
 * byte is '!' the whole evaluation with its 4000 bootstrap resamples
 * (nb_check_eval) runs too. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "analyze/check.h"
#include "analyze/summarize.h"
#include "config/sweep.h"
#include "../sumfix.h"
#include "fuzz_util.h"

static struct nb_summary S;
static struct nb_sweep SW;

static void fixture_free(void)
{
    nb_summary_free(&S);
    nb_sweep_free(&SW);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char edir[600];
    struct nb_error e;
    const char *cfg = sumfix_make(fz_tmpdir());
    snprintf(edir, sizeof edir, "%s/fx", fz_tmpdir());
    nb_error_clear(&e);
    nb_summary_init(&S);
    if (nb_sweep_load(cfg, &SW, &e) || nb_summary_add_sweep(&S, &SW, edir, &e) ||
        nb_summary_group(&S, &e)) {
        fprintf(stderr, "fuzz_check: fixture: %s\n", e.msg);
        abort();
    }
    atexit(fixture_free);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool full = size > 0 && data[0] == '!';
    if (full) {
        data++;
        size--;
    }
    char *text = malloc(size + 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';

    struct nb_error err;
    nb_error_clear(&err);
    struct nb_sum_filter *f = NULL;
    int nf = 0;
    if (nb_filters_parse(text, "fuzz", "fuzz.ini", 3, &f, &nf, &err) == 0)
        nb_filters_free(f, nf);

    struct nb_check c;
    nb_error_clear(&err);
    if (nb_check_parse("fz", text, "fuzz.ini", 7, &c, &err) == 0) {
        double l, r;
        bool holds;
        (void)nb_check_effect_is_diff(&c);
        for (int mode = NB_SEL_MEAN; mode < 3; mode++) {
            nb_error_clear(&err);
            (void)nb_check_eval_mode(&c, &S, mode, &l, &r, &holds, &err);
        }
        if (full) {
            struct nb_check_result res;
            nb_error_clear(&err);
            if (nb_check_eval(&c, &S, &res, &err) == 0) {
                if (res.outcome < 0 || res.outcome >= NB_OUT_COUNT)
                    abort();
                (void)nb_verdict_of(&c, &res, 1, true);
                nb_check_result_free(&res);
            }
        }
        nb_check_free(&c);
    } else if (err.status != NB_EINVAL || !err.msg[0]) {
        abort(); /* a parse error must say what went wrong */
    }
    free(text);
    return 0;
}
