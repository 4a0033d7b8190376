/* src/analyze/check_impl.h - the check language's syntax tree, shared by
 * its parser (check_parse.c) and its evaluation (check.c) and included by
 * nothing else. */
#ifndef NB_ANALYZE_CHECK_IMPL_H
#define NB_ANALYZE_CHECK_IMPL_H

#include "analyze/check.h"

enum ntype { N_NUM, N_NEG, N_ADD, N_SUB, N_MUL, N_DIV, N_ABS, N_AGG };

enum agg {
    A_AT = 0, A_MEAN, A_MEDIAN, A_MIN, A_MAX, A_SUM, A_STD, A_RANGE, A_COUNT,
    A_FIRST, A_LAST, A_RANKCORR, A_LARGEST, A_SMALLEST, A_ABOVE, A_COUNT_
};
struct nb_check_node {
    enum ntype type;
    double num;
    struct nb_check_node *a, *b;
    enum agg agg;
    struct nb_metric metric;
    int xkey;                 /* rankcorr: config key, NB_FK_STEP or NB_FK_EPOCH;
                                 largest, smallest: a numeric config key */
    enum nb_cmp pop;          /* largest, smallest: the per-run condition */
    double pval;              /*   METRIC pop pval */
    struct nb_sum_filter *f;
    int nf;
    /* a contrast KEY=A vs B (vs >= 0: the index of KEY=A in f): the
     * values at KEY=A minus those at KEY=B at the same point; fb holds the
     * filters of the B side (f with KEY=B at index vs) */
    int vs;
    struct nb_sum_filter *fb;
    struct nb_sum_filter *f2;  /* above: the filters of its second group
                                  (f holds the first's: the call's filters
                                  and KEY=A; f2 the same and KEY=B) */
    int nf2;
    char *text;               /* the call as written */
    /* during the bootstrap: the points of f, fb (contrast) and f2 (above) */
    struct nb_sum_prepared *prep, *prep_b, *prep2;
};

/* Does the tree under n contain an aggregate (a call on the runs)? */
bool nb_check_node_has_agg(const struct nb_check_node *n);

/* Its aggregate's name ("mean", ...), by enum agg. */
extern const char *const nb_check_agg_names[];

#endif
