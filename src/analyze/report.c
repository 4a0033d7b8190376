/* src/analyze/report.c - report.md, verdict.txt and the index of the
 * reproductions; see report.h (experiment files: experiment.c). */
#include "analyze/report.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "config/keys.h"

/* ======================================================================
 * Markdown helpers
 * ====================================================================== */

/* Decimals for a number in a report cell: 1 from 100 up, 2 from 0.1 up,
 * -1 (3 significant digits) below or for huge values. */
static int decimals(double v)
{
    double a = fabs(v);
    if (v == 0)
        return 2;
    if (a >= 1e5 || a < 0.1)
        return -1;
    return a >= 100 ? 1 : 2;
}

/* A number for a report cell: a whole number from 1e5 up (a count, such
 * as the parameters) with every digit. */
static const char *fnum(double v, char *buf, size_t n)
{
    if (isnan(v))
        snprintf(buf, n, "n/a");
    else if (isinf(v))
        snprintf(buf, n, "%sinf", v < 0 ? "-" : "");
    else if (fabs(v) >= 1e5 && fabs(v) < 1e15 && v == floor(v))
        snprintf(buf, n, "%.0f", v);
    else if (decimals(v) < 0)
        snprintf(buf, n, "%.3g", v);
    else
        snprintf(buf, n, "%.*f", decimals(v), v);
    return buf;
}

/* "mean ± std" with the std at the mean's decimals. */
static const char *fpair(double m, double sd, char *buf, size_t n)
{
    char a[64], b[64];
    int d = decimals(m);
    fnum(m, a, sizeof a);
    if (d >= 0 && isfinite(sd))
        snprintf(b, sizeof b, "%.*f", d, sd);
    else
        fnum(sd, b, sizeof b);
    snprintf(buf, n, "%s ± %s", a, b);
    return buf;
}

/* Writes s with '|' escaped (markdown table cells). */
static void cell_str(FILE *fp, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|')
            fputs("\\|", fp);
        else if (*s == '\n')
            fputc(' ', fp);
        else
            fputc(*s, fp);
    }
}

/* Compares two values, numerically when both parse fully as numbers, else
 * as strings. */
static int cmp_val_str(const char *a, const char *b)
{
    char *ea, *eb;
    double x = strtod(a, &ea), y = strtod(b, &eb);
    if (ea != a && !*ea && eb != b && !*eb)
        return x < y ? -1 : x > y;
    return strcmp(a, b);
}

/* Distinct values of key k over groups that pass the filters, in group
 * order (sorted when sort). */
static int distinct_vals(const struct nb_summary *s, int k, const struct nb_sum_filter *f,
                         int nf, bool sort, const char ***out)
{
    const char **v = malloc(((size_t)s->n_groups + 1) * sizeof *v);
    int n = 0;
    if (!v)
        return -1;
    for (int g = 0; g < s->n_groups; g++) {
        if (!nb_summary_group_matches(s, g, f, nf))
            continue;
        const char *x = nb_summary_group_val(s, g, k);
        bool dup = false;
        for (int i = 0; i < n && !dup; i++)
            dup = !strcmp(v[i], x);
        if (!dup)
            v[n++] = x;
    }
    if (sort)
        for (int i = 1; i < n; i++)
            for (int j = i; j > 0 && cmp_val_str(v[j - 1], v[j]) > 0; j--) {
                const char *t = v[j];
                v[j] = v[j - 1];
                v[j - 1] = t;
            }
    *out = v;
    return n;
}

/* Does group g pass t's filters and have the row (and, when col is a
 * key's value, the col) value? */
static bool cell_group(const struct nb_summary *s, const struct nb_exp_table *t, int g,
                       const char *row, const char *col)
{
    return nb_summary_group_matches(s, g, t->where, t->n_where) &&
           !strcmp(nb_summary_group_val(s, g, t->rows), row) &&
           !(col && t->cols >= 0 && strcmp(nb_summary_group_val(s, g, t->cols), col));
}

/* Stats of t's metric over the finished runs of the groups matching the
 * filters and row (and col) values: the scalar, or the probe's value at
 * each run's last probed step; *ngroups gets the groups pooled. */
static int cell_stats(const struct nb_summary *s, const struct nb_exp_table *t,
                      const char *row, const char *col, double *mean, double *sd,
                      int *ngroups)
{
    double *v = malloc((s->n_runs + 1) * sizeof *v);
    if (!v)
        return -1;
    size_t nv = 0;
    *ngroups = 0;
    for (int g = 0; g < s->n_groups; g++) {
        if (!cell_group(s, t, g, row, col))
            continue;
        (*ngroups)++;
        const struct nb_sum_group *G = &s->groups[g];
        for (int i = 0; i < G->n_runs && t->scalar >= 0; i++) {
            const struct nb_sum_run *r = &s->runs[G->runs[i]];
            if (r->status == NB_SUM_DONE || r->status == NB_SUM_DIVERGED)
                v[nv++] = r->sc[t->scalar];
        }
    }
    const char *param = t->cols == NB_TABLE_COLS_PARAM ? col : NULL;
    for (int g = 0; g < s->n_groups && t->scalar < 0; g++)
        for (int k = 0; cell_group(s, t, g, row, col) && k < s->groups[g].n_runs; k++) {
            double x = nb_summary_last_value(s, &t->probe, t->where, t->n_where, g, k, param);
            if (isfinite(x))
                v[nv++] = x;
        }
    int n = nb_stats(v, nv, mean, sd, NULL, NULL, NULL);
    free(v);
    return n;
}

/* The paper's number for cell (row, col) of table t (col NULL: a table
 * without columns), or NULL. */
static const struct nb_exp_paper *paper_at(const struct nb_exp_table *t, const char *row,
                                           const char *col)
{
    for (int i = 0; i < t->n_paper; i++) {
        const struct nb_exp_paper *p = &t->paper[i];
        if (cmp_val_str(p->row, row))
            continue;
        if ((col == NULL) != (p->col == NULL))
            continue;
        if (col && cmp_val_str(p->col, col))
            continue;
        return p;
    }
    return NULL;
}

/* A key's column title: section.key. */
static const char *key_title(int k)
{
    return nb_key_at(k)->full;
}

/* Under a table of test errors: the binomial standard error of one
 * run's test error at the table's mean error, next to the seed spread. */
static void write_test_noise(FILE *fp, const struct nb_summary *s, const struct nb_exp_table *t,
                             long n_test)
{
    if (t->scalar != NB_SC_FINAL_TEST_ERROR && t->scalar != NB_SC_BEST_TEST_ERROR &&
        t->scalar != NB_SC_FINAL5_TEST_ERROR)
        return;
    int ke = nb_key_lookup("train", "eval_samples");
    long n = n_test;
    double sum = 0;
    size_t cnt = 0;
    for (int g = 0; g < s->n_groups; g++) {
        if (!nb_summary_group_matches(s, g, t->where, t->n_where))
            continue;
        long es = ke >= 0 ? strtol(nb_summary_group_val(s, g, ke), NULL, 10) : 0;
        if (es > 0 && (n <= 0 || es < n))
            n = es;
        for (int i = 0; i < s->groups[g].n_runs; i++) {
            double v = s->runs[s->groups[g].runs[i]].sc[t->scalar];
            if (isfinite(v))
                sum += v, cnt++;
        }
    }
    if (n <= 0 || cnt == 0)
        return;
    double p = sum / (double)cnt / 100;
    char b1[64], b2[64];
    fprintf(fp, "Test-set noise: at the mean error of this table, %s %%, one run's test error "
                "on N = %ld test images has a binomial standard error of %s points; the ± in "
                "the cells is the standard deviation over seeds.\n\n",
            fnum(100 * p, b1, sizeof b1), n, fnum(100 * sqrt(p * (1 - p) / (double)n), b2, sizeof b2));
}

/* Writes table t as Markdown: mean +- sd over seeds per cell (n when runs
 * are missing), the paper's numbers beside them, the caption, and the
 * test-set noise line under a test-error table. */
static void write_table(FILE *fp, const struct nb_summary *s, const struct nb_exp_table *t)
{
    const char **rows = NULL, **cols = NULL;
    int nr = distinct_vals(s, t->rows, t->where, t->n_where, false, &rows);
    int nc = t->cols >= 0                      ? distinct_vals(s, t->cols, t->where, t->n_where, true, &cols)
             : t->cols == NB_TABLE_COLS_PARAM ? nb_summary_params(s, &t->probe, t->where, t->n_where, &cols)
                                              : 1;
    bool has_cols = t->cols != -1;
    char b1[64], b3[160];
    bool paper = t->n_paper > 0;
    fprintf(fp, "**%s** - %s", t->name,
            t->scalar >= 0 ? nb_sum_scalar_name(t->scalar) : t->probe.text);
    if (t->scalar < 0)
        fputs(" (each run's value at its last probed step)", fp);
    if (t->caption)
        fprintf(fp, ": %s", t->caption);
    fputs("\n\n", fp);
    if (nr <= 0 || nc <= 0) {
        fputs("*(no finished run matches this table)*\n\n", fp);
        free(rows), free(cols);
        return;
    }
    fprintf(fp, "| %s |", key_title(t->rows));
    if (has_cols)
        for (int j = 0; j < nc; j++)
            fprintf(fp, " %s = %s |", t->cols >= 0 ? nb_sum_key_short(t->cols) : "param",
                    cols[j]);
    else
        fputs(paper ? " measured (mean ± std) | paper |" : " measured (mean ± std) |", fp);
    fputs("\n|---|", fp);
    for (int j = 0; j < (has_cols ? nc : paper ? 2 : 1); j++)
        fputs("---:|", fp);
    fputc('\n', fp);
    bool pooled = false;
    for (int i = 0; i < nr; i++) {
        fprintf(fp, "| %s |", rows[i]);
        for (int j = 0; j < nc; j++) {
            double m, sd;
            int ng = 0;
            int n = cell_stats(s, t, rows[i], has_cols ? cols[j] : NULL, &m, &sd, &ng);
            if (n <= 0)
                fputs(" - |", fp);
            else
                fprintf(fp, " %s (n=%d)%s |", fpair(m, sd, b3, sizeof b3), n,
                        ng > 1 ? " *" : "");
            pooled |= ng > 1;
        }
        if (!has_cols && paper) {
            const struct nb_exp_paper *p = paper_at(t, rows[i], NULL);
            fprintf(fp, " %s |", p ? fnum(p->value, b1, sizeof b1) : "-");
        }
        fputc('\n', fp);
        if (has_cols) {
            bool any = false;
            for (int j = 0; j < nc; j++)
                any |= paper_at(t, rows[i], cols[j]) != NULL;
            if (any) {
                fprintf(fp, "| %s (paper) |", rows[i]);
                for (int j = 0; j < nc; j++) {
                    const struct nb_exp_paper *p = paper_at(t, rows[i], cols[j]);
                    fprintf(fp, " %s |", p ? fnum(p->value, b1, sizeof b1) : "-");
                }
                fputc('\n', fp);
            }
        }
    }
    fputc('\n', fp);
    if (pooled)
        fputs("\\* pooled over several groups that differ in other keys.\n\n", fp);
    free(rows), free(cols);
}

/* A check outcome in bold for the report. */
static const char *outcome_mark(enum nb_outcome o)
{
    switch (o) {
    case NB_OUT_PASS: return "**pass**";
    case NB_OUT_FAIL: return "**fail**";
    case NB_OUT_INCONCLUSIVE: return "**inconclusive**";
    case NB_OUT_NA:
    case NB_OUT_COUNT: break;
    }
    return "**n/a**";
}

/* Seed of replicate k (the first group that has one). */
static long long rep_seed(const struct nb_summary *s, int k)
{
    for (int g = 0; g < s->n_groups; g++)
        if (k < s->groups[g].n_runs)
            return (long long)s->runs[s->groups[g].runs[k]].seed;
    return -1;
}

/* "effect [lo, hi]" of a result, or "-" */
static const char *effect_str(const struct nb_check_result *r, char *buf, size_t n)
{
    char b1[64], b2[64], b3[64];
    if (isnan(r->effect))
        snprintf(buf, n, "-");
    else if (isnan(r->lo))
        snprintf(buf, n, "%s", fnum(r->effect, b1, sizeof b1));
    else
        snprintf(buf, n, "%s [%s, %s]", fnum(r->effect, b1, sizeof b1),
                 fnum(r->lo, b2, sizeof b2), fnum(r->hi, b3, sizeof b3));
    return buf;
}

/* The claim as a condition on the effect: "effect < 0", "> 1.00" */
static const char *claim_str(const struct nb_check *c, const struct nb_check_result *r,
                             char *buf, size_t n)
{
    char b1[64];
    if (isnan(r->threshold))
        snprintf(buf, n, "%s", nb_cmp_str(c->op));
    else
        snprintf(buf, n, "%s %s", nb_cmp_str(c->op), fnum(r->threshold, b1, sizeof b1));
    return buf;
}

/* Check i's pre-registration status (NB_REG_NONE when the report has none). */
static int reg_of(const struct nb_report_in *in, int i)
{
    return in->reg ? in->reg[i] : NB_REG_NONE;
}

/* Whether a rerun gives check i another outcome than these runs. */
static bool rerun_differs(const struct nb_report_in *in, int i)
{
    for (int k = 0; in->own && k < in->n_reruns; k++)
        if (in->reruns[k].results[i].outcome != in->own[i])
            return true;
    return false;
}

/* Writes the Checks section: how to read it, then one row per check with
 * its statement, effect, 95 % interval, n, outcome and registration, and
 * the per-seed column. */
static void write_checks(FILE *fp, const struct nb_report_in *in)
{
    const struct nb_experiment *e = in->e;
    char b1[64], b2[64], b3[200];
    if (e->n_checks == 0) {
        fputs("No checks are defined: the verdict is inconclusive by construction.\n\n", fp);
        return;
    }
    fprintf(fp,
            "Each check measures one effect: the left side minus the right side, or the "
            "left side against a constant threshold. The estimate is the statement on the "
            "means over seeds; the 95 %% interval comes from %d bootstrap resamples of the "
            "seeds (one draw shared by all groups when they share their seeds: paired), "
            "Hesterberg's expanded percentile interval, which widens the percentile "
            "interval for few seeds to about a t-interval's width; the resampling is "
            "seeded, so the report is deterministic. **pass**: the interval lies on the "
            "claim's side of the threshold; **fail**: on the other side; "
            "**inconclusive**: it straddles the threshold (with about how many seeds would "
            "decide it, assuming the interval narrows as 1/sqrt(n)). The per-seed column "
            "evaluates the statement on each seed alone, for reading; it does not decide. "
            "A check whose statement differs from its pre-registration is post hoc and "
            "does not count toward the verdict. The central check decides \"not "
            "reproduced\".\n\n",
            NB_CHECK_N_BOOT);
    fputs("| check | what it tests | statement | effect [95 % CI] | claim | n | per seed "
          "| registration | outcome |\n"
          "|---|---|---|---|---|---:|---|---|---|\n",
          fp);
    int central = nb_check_central(e->checks, e->n_checks);
    for (int i = 0; i < e->n_checks; i++) {
        const struct nb_check *c = &e->checks[i];
        const struct nb_check_result *r = &in->results[i];
        fprintf(fp, "| %s%s | ", c->name, i == central ? " (central)" : "");
        cell_str(fp, c->about ? c->about : "");
        fputs(" | `", fp);
        cell_str(fp, c->text);
        fputs("` | ", fp);
        if (r->outcome == NB_OUT_NA && isnan(r->lhs)) {
            fputs("n/a: ", fp);
            cell_str(fp, r->why);
        } else {
            fputs(effect_str(r, b3, sizeof b3), fp);
            if (nb_check_effect_is_diff(c))
                fprintf(fp, " (%s - %s)", fnum(r->lhs, b1, sizeof b1),
                        fnum(r->rhs, b2, sizeof b2));
            if (r->outcome == NB_OUT_NA) {
                fputs("; n/a: ", fp);
                cell_str(fp, r->why);
            }
        }
        fprintf(fp, " | %s | %d%s | ", claim_str(c, r, b3, sizeof b3), r->n,
                r->paired ? "" : " (unpaired)");
        for (int k = 0; k < r->n_reps; k++) {
            long long sd = rep_seed(in->s, k);
            if (r->rep_holds[k] < 0)
                fprintf(fp, "%s%lld: n/a", k ? "; " : "", sd);
            else
                fprintf(fp, "%s%lld: %s %s", k ? "; " : "", sd,
                        fnum(nb_check_effect_is_diff(c) ? r->rep_lhs[k] - r->rep_rhs[k]
                                                        : r->rep_lhs[k],
                             b1, sizeof b1),
                        r->rep_holds[k] ? "✓" : "✗");
        }
        int rg = reg_of(in, i);
        fprintf(fp, " | %s | %s", rg == NB_REG_OK ? "pre-registered" : nb_reg_name(rg),
                outcome_mark(r->outcome));
        if (rerun_differs(in, i))
            fprintf(fp, " (%s on these runs, another outcome in a rerun: see Reruns)",
                    nb_outcome_name(in->own[i]));
        else if (r->outcome == NB_OUT_INCONCLUSIVE) {
            if (r->seeds_needed > 0)
                fprintf(fp, " (~%d seeds would decide it)", r->seeds_needed);
            else
                fputs(" (the effect sits on the threshold)", fp);
        }
        if (r->post_hoc)
            fputs(" (post hoc: not counted)", fp);
        fputs(" |\n", fp);
    }
    fputc('\n', fp);
}

static int names_with(FILE *fp, const struct nb_report_in *in, int o, bool post_hoc);

/* Writes the Reruns section: where and how each rerun ran, its verdict
 * on its own, and every check's effect and outcome on these runs and on
 * each rerun beside the outcome it counts with. */
static void write_reruns(FILE *fp, const struct nb_report_in *in)
{
    const struct nb_experiment *e = in->e;
    char b1[200];
    fprintf(fp, "## Reruns\n\nThe same runs (the same configs and run_ids) made again in "
                "another environment, each kept as its runs' archive in "
                "`%s/LABEL/archive/`; the checks are evaluated on each rerun's runs alone. A "
                "check counts toward the verdict with its outcome only when every rerun gives "
                "the same one; where they differ it counts as inconclusive, so a verdict "
                "cannot rest on the rounding of one BLAS kernel set.\n\n",
            NB_RERUN_DIR);
    for (int k = 0; k < in->n_reruns; k++) {
        const struct nb_rerun *r = &in->reruns[k];
        fprintf(fp, "- `%s`: %s, %s; machine: %s. On its own: **%s**, %d of %d counted "
                    "checks pass",
                r->label, r->facts.version, r->facts.when[0] ? r->facts.when : "when unknown",
                r->facts.machine, nb_verdict_name(r->verdict), r->pass,
                e->n_checks - names_with(NULL, in, -1, true));
        if (r->missing)
            fprintf(fp, "; %zu of its %zu runs are missing", r->missing, r->total);
        if (r->same_metrics)
            fputs(". Every metric value is these runs' own, to the last digit: its "
                  "environment computed the same numbers, so it does not test whether the "
                  "verdict depends on the BLAS kernels", fp);
        fputs(".\n", fp);
    }
    fputs("\n| check | these runs: effect [95 % CI] | outcome |", fp);
    for (int k = 0; k < in->n_reruns; k++)
        fprintf(fp, " %s: effect [95 %% CI] | outcome |", in->reruns[k].label);
    fputs(" counts as |\n|---|---|---|", fp);
    for (int k = 0; k < in->n_reruns; k++)
        fputs("---|---|", fp);
    fputs("---|\n", fp);
    for (int i = 0; i < e->n_checks; i++) {
        fprintf(fp, "| %s | %s | %s |", e->checks[i].name,
                effect_str(&in->results[i], b1, sizeof b1),
                nb_outcome_name(in->own ? in->own[i] : in->results[i].outcome));
        for (int k = 0; k < in->n_reruns; k++) {
            const struct nb_check_result *r = &in->reruns[k].results[i];
            fprintf(fp, " %s | %s |", effect_str(r, b1, sizeof b1), nb_outcome_name(r->outcome));
        }
        fprintf(fp, " %s%s |\n", outcome_mark(in->results[i].outcome),
                in->results[i].post_hoc ? " (post hoc: not counted)" : "");
    }
    fputc('\n', fp);
}

/* Writes the table of groups: runs, done, diverged, missing and the main
 * scalars' mean +- sd. */
static void write_groups(FILE *fp, const struct nb_summary *s)
{
    char b1[160];
    static const int cols[] = {NB_SC_FINAL_TEST_ERROR, NB_SC_BEST_TEST_ERROR,
                               NB_SC_FINAL_TRAIN_LOSS, NB_SC_WALL_TIME};
    static const char *const titles[] = {"final test error (%)", "best test error (%)",
                                         "final train loss", "wall time (s)"};
    fputs("| group | runs | done | diverged | missing |", fp);
    for (int c = 0; c < 4; c++)
        fprintf(fp, " %s |", titles[c]);
    fputs("\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n", fp);
    double *v = malloc(((size_t)s->max_reps + 1) * sizeof *v);
    if (!v)
        return;
    for (int g = 0; g < s->n_groups; g++) {
        const struct nb_sum_group *G = &s->groups[g];
        fputs("| ", fp);
        cell_str(fp, G->label);
        fprintf(fp, " | %d | %d | %d | %d |", G->n_runs, G->n_done, G->n_diverged,
                G->n_missing);
        for (int c = 0; c < 4; c++) {
            size_t nv = 0;
            for (int i = 0; i < G->n_runs; i++) {
                const struct nb_sum_run *r = &s->runs[G->runs[i]];
                if (r->status == NB_SUM_DONE || r->status == NB_SUM_DIVERGED)
                    v[nv++] = r->sc[cols[c]];
            }
            double m, sd;
            if (nb_stats(v, nv, &m, &sd, NULL, NULL, NULL) == 0)
                fputs(" - |", fp);
            else
                fprintf(fp, " %s |", fpair(m, sd, b1, sizeof b1));
        }
        fputc('\n', fp);
    }
    free(v);
    fputc('\n', fp);
}

/* The names of the checks with outcome o (counted ones only unless
 * post_hoc), as " `a`, `b`"; returns how many. */
static int names_with(FILE *fp, const struct nb_report_in *in, int o, bool post_hoc)
{
    int k = 0;
    for (int i = 0; i < in->e->n_checks; i++) {
        const struct nb_check_result *r = &in->results[i];
        if (r->post_hoc != post_hoc || (o >= 0 && r->outcome != o))
            continue;
        if (fp)
            fprintf(fp, "%s`%s`", k ? ", " : " ", in->e->checks[i].name);
        k++;
    }
    return k;
}

/* The counted checks whose outcome on these runs differs from a rerun's,
 * as " `a`, `b`"; returns how many. */
static int names_differing(FILE *fp, const struct nb_report_in *in)
{
    int k = 0;
    for (int i = 0; i < in->e->n_checks; i++)
        if (!in->results[i].post_hoc && rerun_differs(in, i)) {
            if (fp)
                fprintf(fp, "%s`%s`", k ? ", " : " ", in->e->checks[i].name);
            k++;
        }
    return k;
}

/* The verdict paragraph's sentence on the reruns: each one's verdict on
 * its own, and the checks that count as inconclusive because they
 * differ. */
static void rerun_sentence(FILE *fp, const struct nb_report_in *in)
{
    fprintf(fp, " The same runs were made again (%s", in->n_reruns == 1 ? "a rerun" : "reruns");
    for (int k = 0; k < in->n_reruns; k++) {
        const struct nb_rerun *r = &in->reruns[k];
        fprintf(fp, "%s`%s`: %s on its own, %d of %d checks pass%s", k ? "; " : ", ", r->label,
                nb_verdict_name(r->verdict), r->pass,
                in->e->n_checks - names_with(NULL, in, -1, true),
                r->same_metrics ? ", every metric identical to these runs' (no test of the "
                                  "kernels)"
                                : "");
    }
    fputs("; see Reruns): ", fp);
    if (names_differing(NULL, in)) {
        fputs("checks whose outcome differs between them count as inconclusive:", fp);
        names_differing(fp, in);
        fputc('.', fp);
    } else {
        fputs("every counted check has the same outcome in each.", fp);
    }
}

/* Writes the verdict line and the sentence that explains it (missing runs,
 * too few seeds, central check, post hoc checks). */
static void verdict_text(FILE *fp, const struct nb_report_in *in)
{
    const struct nb_experiment *e = in->e;
    int n = e->n_checks, counted = n - names_with(NULL, in, -1, true);
    int pass = names_with(NULL, in, NB_OUT_PASS, false);
    fprintf(fp, "**Verdict: %s**%s. ", nb_verdict_name(in->verdict),
            in->quick ? " (quick run: a smoke test)" : "");
    if (!in->complete)
        fputs("Some runs are missing (failed or not run), so no verdict is drawn. ", fp);
    for (int k = 0; k < in->n_reruns; k++)
        if (in->reruns[k].missing)
            fprintf(fp, "The rerun `%s` lacks %zu of the %zu runs, so no verdict is drawn. ",
                    in->reruns[k].label, in->reruns[k].missing, in->reruns[k].total);
    if (in->verdict == NB_VERDICT_NONE) {
        int min_n = -1;
        for (int i = 0; i < n; i++)
            if (in->results[i].outcome != NB_OUT_NA && !in->results[i].post_hoc &&
                (min_n < 0 || in->results[i].n < min_n))
                min_n = in->results[i].n;
        fprintf(fp, "Smoke test: the checks rest on %d seed%s, and a verdict needs at least "
                    "%d. ",
                min_n, min_n == 1 ? "" : "s", NB_VERDICT_MIN_SEEDS);
    }
    fprintf(fp, "%d of %d counted check%s pass", pass, counted, counted == 1 ? "" : "s");
    if (names_with(NULL, in, NB_OUT_FAIL, false)) {
        fputs("; failing:", fp);
        names_with(fp, in, NB_OUT_FAIL, false);
    }
    if (names_with(NULL, in, NB_OUT_INCONCLUSIVE, false)) {
        fputs("; inconclusive:", fp);
        names_with(fp, in, NB_OUT_INCONCLUSIVE, false);
    }
    if (names_with(NULL, in, NB_OUT_NA, false)) {
        fputs("; could not be evaluated:", fp);
        names_with(fp, in, NB_OUT_NA, false);
    }
    if (n - counted > 0) {
        fputs("; post hoc (reported, not counted):", fp);
        names_with(fp, in, -1, true);
    }
    if (n == 0)
        fputs("; no checks are defined", fp);
    int c = nb_check_central(e->checks, n);
    if (c >= 0) {
        char b1[200], b2[64];
        const struct nb_check_result *r = &in->results[c];
        fprintf(fp, ". Central check `%s`: effect %s, claim %s, n = %d: %s", e->checks[c].name,
                effect_str(r, b1, sizeof b1), claim_str(&e->checks[c], r, b2, sizeof b2), r->n,
                nb_outcome_name(r->outcome));
    }
    fputs(".", fp);
    if (in->n_reruns > 0)
        rerun_sentence(fp, in);
    fputs("\n\n", fp);
}


/* The pre-registration line of the setting. */
static void write_prereg(FILE *fp, const struct nb_report_in *in)
{
    const struct nb_prereg *p = in->prereg;
    if (!p || !p->present) {
        fputs("- pre-registration: none (every check counts as post hoc)\n", fp);
        return;
    }
    fprintf(fp, "- pre-registration: checks registered %s at revision %s ([%s](%s))", p->date,
            p->revision, NB_PREREG_FILE, NB_PREREG_FILE);
    if (p->runs_before > 0)
        fprintf(fp, ", after %ld runs existed", p->runs_before);
    else
        fputs(", before the first run", fp);
    switch (nb_prereg_file_compare(p, in->e->path)) {
    case NB_PREREG_SAME: fputs("; the experiment file is unchanged since", fp); break;
    case NB_PREREG_AFTER_RUNS_ONLY:
        fputs("; the experiment file is unchanged since but for its robustness and "
              "discussion, written after the runs", fp);
        break;
    case NB_PREREG_EDITED:
        fprintf(fp, "; the experiment file is edited since (captions, notes or checks: see "
                    "each check's registration; `git diff %s -- experiments/%s.ini` shows "
                    "the edits)", p->revision, in->e->name);
        break;
    case NB_PREREG_UNREADABLE: break;
    }
    fputs("\n", fp);
}


/* The Setting section: each config's runs, the experiment's estimate,
 * notes, caveats and robustness, the pre-registration, the command, the
 * build and the machine. */
static void write_setting(FILE *fp, const struct nb_report_in *in)
{
    const struct nb_experiment *e = in->e;
    fputs("## Setting\n\n", fp);
    for (int i = 0; i < e->n_configs; i++) {
        const struct nb_report_cfg *c = &in->cfgs[i];
        fprintf(fp, "- config `%s`%s%s%s: %zu runs (%zu done, %zu diverged, %zu failed, "
                    "%zu not run) in `%s`\n",
                e->configs[i], in->quick ? " (quick overlay `" : "",
                in->quick ? c->path : "", in->quick ? "`)" : "", c->total, c->done,
                c->diverged, c->failed, c->pending, c->exp_dir);
    }
    if (e->estimate)
        fprintf(fp, "- full run: %s\n", e->estimate);
    if (e->notes)
        fprintf(fp, "- notes: %s\n", e->notes);
    if (e->caveats)
        fprintf(fp, "- caveats: %s\n", e->caveats);
    if (e->robustness) {
        size_t rl = strlen(e->robustness);
        fprintf(fp, "- robustness: %s%s\n", e->robustness,
                !in->n_reruns                          ? ""
                : rl && e->robustness[rl - 1] == '.' ? " Reruns, below, has each check's numbers."
                                                       : "; Reruns, below, has each check's numbers");
    }
    else
        fprintf(fp, "- robustness: %s\n",
                in->n_reruns ? "the same runs were made again: see Reruns, below"
                             : "not checked (the verdict was not rerun with other BLAS "
                               "kernels)");
    write_prereg(fp, in);
    if (in->command)
        fprintf(fp, "- reproduce with `%s`\n", in->command);
    if (in->version)
        fprintf(fp, "- %s%s%s\n", in->version, in->when ? ", " : "", in->when ? in->when : "");
    fprintf(fp, "- machine: %s\n", in->machine ? in->machine : "unknown");
    fputc('\n', fp);
}

/* The Figures section: each figure with its caption and data table, or
 * why it was not drawn. */
static void write_figures(FILE *fp, const struct nb_report_in *in)
{
    const struct nb_experiment *e = in->e;
    if (e->n_figs == 0)
        return;
    fputs("## Figures\n\n", fp);
    for (int i = 0; i < e->n_figs; i++) {
        const struct nb_exp_figure *f = &e->figs[i];
        const struct nb_report_fig *rf = &in->figs[i];
        fprintf(fp, "### %s\n\n", f->name);
        if (rf->file)
            fprintf(fp, "![%s](%s)\n\n", f->caption ? f->caption : f->name, rf->file);
        else
            fprintf(fp, "*Not drawn: %s.*\n\n", rf->why ? rf->why : "unknown reason");
        if (f->caption)
            fprintf(fp, "%s", f->caption);
        if (rf->table)
            fprintf(fp, "%sData: [%s](%s) (plots/%s.gp).", f->caption ? " " : "", rf->table,
                    rf->table, nb_fig_kind_name(f->kind));
        fputs("\n\n", fp);
    }
}

/* The links to the summary tables under the Groups section, and which
 * probe rows they keep (probe_stats, probe_layers). */
static void write_table_links(FILE *fp, const struct nb_report_in *in)
{
    const struct nb_experiment *e = in->e;
    const struct nb_summary *s = in->s;
    if (!in->tables_dir)
        return;
    bool probes = false;
    for (size_t i = 0; i < s->n_runs; i++)
        probes |= s->runs[i].n_probes > 0;
    const char *td = in->tables_dir;
    fprintf(fp, "Tables: [%s/groups.csv](%s/groups.csv) (per group), "
                "[%s/runs.csv](%s/runs.csv) (per run), [%s/curves.csv](%s/curves.csv) "
                "(per evaluation)",
            td, td, td, td, td, td);
    if (probes)
        fprintf(fp, ", [%s/probes.csv](%s/probes.csv) (probes per step)", td, td);
    fputs(".\n", fp);
    if (probes && e->n_probe_stats) {
        fputs("The tables and the archive keep the probe stats", fp);
        for (int i = 0; i < e->n_probe_stats; i++)
            fprintf(fp, "%s `%s`", i ? "," : "", e->probe_stats[i]);
        fputs(" (the experiment's probe_stats); each run's probes.csv has every row.\n", fp);
    }
    if (probes && e->n_probe_layers) {
        fputs("The tables and the archive keep the probe rows of the layers", fp);
        for (int i = 0; i < e->n_probe_layers; i++)
            fprintf(fp, "%s `%s`", i ? "," : "", e->probe_layers[i]);
        fputs(" and of no layer (the experiment's probe_layers); each run's probes.csv has "
              "every layer.\n", fp);
    }
}

int nb_report_write(const char *path, const struct nb_report_in *in, struct nb_error *err)
{
    const struct nb_experiment *e = in->e;
    const struct nb_summary *s = in->s;
    char tmp[4200];
    FILE *fp;
    int rc = nb_atomic_begin(path, tmp, sizeof tmp, &fp, err);
    if (rc)
        return rc;
    fprintf(fp, "# %s: %s%s\n\n", e->name, nb_verdict_name(in->verdict),
            in->quick ? " (quick)" : "");
    if (in->quick)
        fputs("> **Quick run.** `--quick` shrinks the data and the training to exercise the "
              "whole path (runs, summaries, figures, checks, report) in minutes. Its numbers "
              "and its verdict say nothing about the claim; the full setting "
              "(`normbench reproduce` without `--quick`) is what the verdict is for.\n\n",
              fp);
    fprintf(fp, "**Claim.** %s\n\n", e->claim);
    fprintf(fp, "**Source.** %s\n\n", e->source);
    if (e->paper)
        fprintf(fp, "**The paper's numbers.** %s\n\n", e->paper);
    verdict_text(fp, in);
    write_setting(fp, in);
    if (e->n_tables > 0) {
        fputs("## Measured numbers and the paper's\n\n", fp);
        fputs("Cells: mean ± sample standard deviation over seeds (n = finished runs with a "
              "finite value; diverged runs are left out and counted in the groups table). "
              "The paper's setting differs from ours (see the claim's source); compare "
              "directions and sizes of effects, not digits.\n\n",
              fp);
        for (int i = 0; i < e->n_tables; i++) {
            write_table(fp, s, &e->tables[i]);
            write_test_noise(fp, s, &e->tables[i], in->n_test);
        }
    }
    fputs("## Checks\n\n", fp);
    write_checks(fp, in);
    if (in->n_reruns > 0)
        write_reruns(fp, in);
    if (e->n_discussion > 0) {
        fputs("## Discussion\n\n*Written by the experimenters after the runs "
              "(`discussion` in the experiment file); the verdict above comes from "
              "the checks alone.*\n\n",
              fp);
        for (int i = 0; i < e->n_discussion; i++)
            fprintf(fp, "%s\n\n", e->discussion[i]);
    }
    write_figures(fp, in);
    fputs("## Groups\n\n", fp);
    fputs("Runs that differ only in the seed form a group; mean ± std over its finished "
          "runs.\n\n",
          fp);
    write_groups(fp, s);
    write_table_links(fp, in);
    return nb_atomic_end(path, tmp, fp, err);
}

int nb_verdict_write(const char *path, const struct nb_report_in *in, struct nb_error *err)
{
    char tmp[4200];
    FILE *fp;
    int rc = nb_atomic_begin(path, tmp, sizeof tmp, &fp, err);
    if (rc)
        return rc;
    int pass = 0;
    size_t done = 0, total = 0;
    for (int i = 0; i < in->e->n_checks; i++)
        pass += in->results[i].outcome == NB_OUT_PASS && !in->results[i].post_hoc;
    for (int i = 0; i < in->e->n_configs; i++) {
        done += in->cfgs[i].done + in->cfgs[i].diverged;
        total += in->cfgs[i].total;
    }
    int counted = in->e->n_checks - names_with(NULL, in, -1, true);
    fprintf(fp, "name = %s\nverdict = %s\nquick = %s\nchecks = %d/%d\nruns = %zu/%zu\n",
            in->e->name, nb_verdict_name(in->verdict), in->quick ? "true" : "false", pass,
            counted, done, total);
    int c = nb_check_central(in->e->checks, in->e->n_checks);
    if (c >= 0) {
        char b1[200], b2[64];
        const struct nb_check_result *r = &in->results[c];
        fprintf(fp, "central = %s\neffect = %s\ncentral_claim = %s\nn = %d\n"
                    "central_outcome = %s\n",
                in->e->checks[c].name, effect_str(r, b1, sizeof b1),
                claim_str(&in->e->checks[c], r, b2, sizeof b2), r->n,
                nb_outcome_name(r->outcome));
    }
    fputs("post_hoc =", fp);
    if (!names_with(fp, in, -1, true))
        fputs(" none", fp);
    fputc('\n', fp);
    /* only with reruns: verdict.txt files of experiments without stay as
     * they were */
    for (int k = 0; k < in->n_reruns; k++) {
        const struct nb_rerun *r = &in->reruns[k];
        fprintf(fp, "%s%s: %s %d/%d%s", k ? "; " : "reruns = ", r->label,
                nb_verdict_name(r->verdict), r->pass, counted, k + 1 == in->n_reruns ? "\n" : "");
    }
    fprintf(fp, "date = %s\nclaim = %s\nsource = %s\ncaveats = %s\n",
            in->when ? in->when : "", in->e->claim, in->e->source,
            in->e->caveats ? in->e->caveats : "");
    return nb_atomic_end(path, tmp, fp, err);
}

/* ---- index ----------------------------------------------------------------- */

struct idx_row {
    char name[128];
    char claim[1024];
    char source[512];
    char caveats[1024];
    char verdict[64];
    char checks[32];
    char runs[64];
    char date[64];
    char central[128], effect[200], claimed[64], n[16], post_hoc[512];
    char reruns[512];
    bool has;
    bool legacy;  /* written before intervals and pre-registration */
};

/* Reads a verdict.txt's key = value lines into r (r->legacy stays true for
 * one written before pre-registration). */
static void kv_read(const char *path, struct idx_row *r)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return;
    char line[2048];
    r->has = true;
    r->legacy = true;
    /* the claim, source and caveats the verdict was drawn for, not the
     * experiment file's current ones */
    r->caveats[0] = '\0';
    while (fgets(line, sizeof line, fp)) {
        char *eq = strstr(line, " = ");
        if (!eq)
            continue;
        *eq = '\0';
        char *v = eq + 3;
        size_t n = strlen(v);
        while (n && (v[n - 1] == '\n' || v[n - 1] == '\r'))
            v[--n] = '\0';
        if (!strcmp(line, "verdict"))
            snprintf(r->verdict, sizeof r->verdict, "%s", v);
        else if (!strcmp(line, "checks"))
            snprintf(r->checks, sizeof r->checks, "%s", v);
        else if (!strcmp(line, "runs"))
            snprintf(r->runs, sizeof r->runs, "%s", v);
        else if (!strcmp(line, "date"))
            snprintf(r->date, sizeof r->date, "%s", v);
        else if (!strcmp(line, "claim"))
            snprintf(r->claim, sizeof r->claim, "%s", v);
        else if (!strcmp(line, "caveats"))
            snprintf(r->caveats, sizeof r->caveats, "%s", v);
        else if (!strcmp(line, "central"))
            snprintf(r->central, sizeof r->central, "%s", v);
        else if (!strcmp(line, "effect"))
            snprintf(r->effect, sizeof r->effect, "%s", v);
        else if (!strcmp(line, "central_claim"))
            snprintf(r->claimed, sizeof r->claimed, "%s", v);
        else if (!strcmp(line, "n"))
            snprintf(r->n, sizeof r->n, "%s", v);
        else if (!strcmp(line, "post_hoc")) {
            snprintf(r->post_hoc, sizeof r->post_hoc, "%s", v);
            r->legacy = false;
        }
        else if (!strcmp(line, "source"))
            snprintf(r->source, sizeof r->source, "%s", v);
        else if (!strcmp(line, "reruns"))
            snprintf(r->reruns, sizeof r->reruns, "%s", v);
    }
    fclose(fp);
}

/* qsort order of index rows: by experiment name. */
static int cmp_row(const void *a, const void *b)
{
    return strcmp(((const struct idx_row *)a)->name, ((const struct idx_row *)b)->name);
}

/* The index's rows: every experiment of experiments_dir (its claim, source
 * and caveats) and every ROOT/NAME/verdict.txt (its verdict facts), into
 * *rows_out (malloc'd, *n_out of them, unsorted). */
static int index_rows(const char *root, const char *experiments_dir, struct idx_row **rows_out,
                      int *n_out, struct nb_error *err)
{
    struct idx_row *rows = NULL;
    int n = 0;
    DIR *d = experiments_dir ? opendir(experiments_dir) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".ini") || de->d_name[0] == '.')
            continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", experiments_dir, de->d_name);
        struct nb_experiment e;
        struct nb_error e2;
        nb_error_clear(&e2);
        if (nb_experiment_load(path, &e, &e2))
            continue;
        struct idx_row *p = realloc(rows, (size_t)(n + 1) * sizeof *p);
        if (!p) {
            nb_experiment_free(&e);
            closedir(d);
            free(rows);
            return nb_error_oom(err);
        }
        rows = p;
        memset(&rows[n], 0, sizeof rows[n]);
        snprintf(rows[n].name, sizeof rows[n].name, "%s", e.name);
        snprintf(rows[n].claim, sizeof rows[n].claim, "%s", e.claim);
        snprintf(rows[n].source, sizeof rows[n].source, "%s", e.source);
        if (e.caveats)
            snprintf(rows[n].caveats, sizeof rows[n].caveats, "%s", e.caveats);
        n++;
        nb_experiment_free(&e);
    }
    if (d)
        closedir(d);
    /* verdict files, also of experiments not in experiments_dir */
    d = opendir(root);
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s/verdict.txt", root, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        int i;
        for (i = 0; i < n; i++)
            if (!strcmp(rows[i].name, de->d_name))
                break;
        if (i == n) {
            struct idx_row *p = realloc(rows, (size_t)(n + 1) * sizeof *p);
            if (!p) {
                closedir(d);
                free(rows);
                return nb_error_oom(err);
            }
            rows = p;
            memset(&rows[n], 0, sizeof rows[n]);
            snprintf(rows[n].name, sizeof rows[n].name, "%.127s", de->d_name);
            n++;
        }
        kv_read(path, &rows[i]);
    }
    if (d)
        closedir(d);
    *rows_out = rows;
    *n_out = n;
    return 0;
}

/* index.md's text: the heading, how to read it, and one table row per
 * experiment. */
static void index_text(FILE *fp, const struct idx_row *rows, int n, bool quick)
{
    fprintf(fp, "# normbench results%s\n\n", quick ? " (quick runs)" : "");
    if (quick)
        fputs("> Quick runs (`normbench reproduce NAME --quick`) shrink data and steps to "
              "exercise the pipeline; their verdicts mean nothing about the claims.\n\n",
              fp);
    fputs("Every experiment of `experiments/` with the verdict of its last `normbench "
          "reproduce` (`not run` when there is none). A verdict comes only from the "
          "measured runs and the experiment's pre-registered checks; each check's effect "
          "has a 95 % interval from a bootstrap over seeds (see any report's Checks "
          "section). **reproduced**: every check's interval lies on the claim's side; "
          "**partly reproduced**: some checks pass and some fail; **not reproduced**: the "
          "central check fails; **inconclusive**: an interval straddles its threshold, a "
          "check cannot be evaluated, or runs are missing; **no verdict**: fewer than 5 "
          "seeds (a smoke test). Post hoc checks (changed after the runs) are listed and "
          "do not count. **Reruns**: the same runs made again with other BLAS kernels (or "
          "elsewhere), each with its verdict on its own and its checks passed; a check "
          "whose outcome differs between them counts as inconclusive.\n\n",
          fp);
    fputs("| experiment | claim | verdict | checks passed | central check: effect [95 % CI] "
          "| n seeds | reruns | post hoc | caveats | runs | date |\n"
          "|---|---|---|---:|---|---:|---|---|---|---:|---|\n",
          fp);
    for (int i = 0; i < n; i++) {
        const struct idx_row *r = &rows[i];
        if (r->has)
            fprintf(fp, "| [%s](%s/report.md) | ", r->name, r->name);
        else
            fprintf(fp, "| %s | ", r->name);
        cell_str(fp, r->claim);
        if (r->source[0]) {
            fputs(" (", fp);
            cell_str(fp, r->source);
            fputs(")", fp);
        }
        fprintf(fp, " | %s%s | %s | ", r->has ? r->verdict : "not run",
                r->legacy ? " (old rules: every seed agrees, 2-3 seeds; not pre-registered; "
                            "to be redone)"
                          : "",
                r->has ? r->checks : "-");
        if (r->has && r->central[0])
            fprintf(fp, "`%s`: %s, claim %s", r->central, r->effect, r->claimed);
        else
            fputs("-", fp);
        fprintf(fp, " | %s | %s | %s | ", r->has && r->n[0] ? r->n : "-",
                r->has && r->reruns[0] ? r->reruns : "-",
                r->has && r->post_hoc[0] ? r->post_hoc : "-");
        cell_str(fp, r->caveats[0] ? r->caveats : "-");
        fprintf(fp, " | %s | %s |\n", r->has ? r->runs : "-", r->has ? r->date : "-");
    }
}

int nb_index_write(const char *root, const char *experiments_dir, bool quick,
                   struct nb_error *err)
{
    struct idx_row *rows = NULL;
    int n = 0;
    int rc = index_rows(root, experiments_dir, &rows, &n, err);
    if (rc)
        return rc;
    if (n > 1)
        qsort(rows, (size_t)n, sizeof *rows, cmp_row);
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/index.md", root);
    FILE *fp;
    rc = nb_mkdirs(root, err);
    if (!rc)
        rc = nb_atomic_begin(path, tmp, sizeof tmp, &fp, err);
    if (rc) {
        free(rows);
        return rc;
    }
    index_text(fp, rows, n, quick);
    free(rows);
    return nb_atomic_end(path, tmp, fp, err);
}

