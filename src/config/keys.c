/* src/config/keys.c - see keys.h: the [experiment] keys, the registry
 * of the modules' key tables in canonical order, lookup, and `config
 * --help`. */
#include "config/keys.h"

#include <string.h>

#include "data/data.h"
#include "layers/norm.h"
#include "model/model.h"
#include "optim/optim.h"
#include "probe/probe.h"
#include "run/train.h"

/* ======================================================================
 * The key table
 * ====================================================================== */

#define NB_META_FIXED (NB_KF_META | NB_KF_NOSWEEP)
#define NB_STRUCT_KEY (NB_KF_REPEAT | NB_KF_STRUCT | NB_KF_NOSWEEP)

const char *const nb_sections[] = {"experiment", "model", "norm", "optim",
                                   "train", "data", "probe", NULL};

/* [experiment]: the harness's own keys, read by name (no member). */
static const struct nb_key experiment_keys[] = {
    { NB_K_STR("experiment", "name", "", NB_KF_IDENT | NB_META_FIXED,
               "experiment name, results go to RESULTS_DIR/NAME/RUN_ID/; "
               "empty = the config file's base name") },
    { NB_K_STR("experiment", "results_dir", "results", NB_META_FIXED,
               "directory holding one folder per experiment") },
    { NB_K_INT("experiment", "seeds", "0", 0, 4294967295.0, 0,
               "run seed; a list or range (0..4) is the replicate axis, always "
               "the innermost") },
    { NB_K_("experiment", "zip", NB_KEY_NAMES, "", 0, 0, NB_STRUCT_KEY,
            "sweep axes that advance together, e.g. optim.lr, train.batch "
            "(equal lengths; one group per zip line)") },
    { NB_K_("experiment", "exclude", NB_KEY_RULES, "", 0, 0, NB_STRUCT_KEY,
            "drop combinations: norm.type=none & model.placement=post; rules "
            "separated by ',' or on several exclude lines; KEY=A|B, KEY!=A") },
    { NB_K_FLT("experiment", "target_accuracy", "0", 0, 1, NB_META_FIXED,
               "test accuracy for \"steps to target\" in summaries; 0 = off") },
    { NB_K_STR("experiment", "arm", "", NB_KF_META,
               "a label for the run's arm, zipped with the keys that make the arms "
               "(a table's rows, a figure's series, a check's filter); not part of "
               "the run identity") },
};
static const int experiment_n_keys = (int)(sizeof experiment_keys / sizeof experiment_keys[0]);

/* The modules' tables in the canonical order (sections as nb_sections;
 * [norm] is the norm layer's keys, then the training loop's evaluation
 * statistics).  The order is the order of resolved configs, and so of
 * the run identity: a new key goes at the end of its section. */
static const struct {
    const struct nb_key *keys;
    const int *n;
} tables[] = {
    {experiment_keys, &experiment_n_keys},
    {nb_model_keys, &nb_model_n_keys},
    {nb_norm_keys, &nb_norm_n_keys},
    {nb_train_norm_keys, &nb_train_norm_n_keys},
    {nb_optim_keys, &nb_optim_n_keys},
    {nb_train_keys, &nb_train_n_keys},
    {nb_data_keys, &nb_data_n_keys},
    {nb_probe_keys, &nb_probe_n_keys},
};
#define N_TABLES ((int)(sizeof tables / sizeof tables[0]))

int nb_key_count(void)
{
    int n = 0;
    for (int t = 0; t < N_TABLES; t++)
        n += *tables[t].n;
    return n;
}

const struct nb_key *nb_key_at(int i)
{
    NB_ASSERT(i >= 0);
    for (int t = 0; t < N_TABLES; t++) {
        if (i < *tables[t].n)
            return &tables[t].keys[i];
        i -= *tables[t].n;
    }
    NB_ASSERT(!"key index out of range");
    return NULL;
}

int nb_key_table_index(const struct nb_key *keys, int *n)
{
    int first = 0;
    for (int t = 0; t < N_TABLES; t++) {
        if (tables[t].keys == keys) {
            *n = *tables[t].n;
            return first;
        }
        first += *tables[t].n;
    }
    *n = 0;
    return -1;
}

int nb_key_lookup(const char *section, const char *key)
{
    for (int i = 0; i < nb_key_count(); i++)
        if (!strcmp(nb_key_at(i)->section, section) && !strcmp(nb_key_at(i)->key, key))
            return i;
    return -1;
}

int nb_key_lookup_name(const char *name)
{
    const char *dot = strchr(name, '.');
    if (dot) {
        char sec[64];
        size_t n = (size_t)(dot - name);
        if (n >= sizeof sec)
            return -1;
        memcpy(sec, name, n);
        sec[n] = '\0';
        return nb_key_lookup(sec, dot + 1);
    }
    int found = -1;
    for (int i = 0; i < nb_key_count(); i++)
        if (!strcmp(nb_key_at(i)->key, name)) {
            if (found >= 0)
                return -2;
            found = i;
        }
    return found;
}

/* ======================================================================
 * Help
 * ====================================================================== */

void nb_config_help(FILE *out)
{
    fputs("; normbench configuration keys (normbench config --help).\n"
          "; This text is a valid config file that gives the defaults.\n"
          "; A comma list, lin(a, b, n), log(a, b, n) or an integer range "
          "a..b\n"
          "; makes a key a sweep axis; see [experiment] zip, exclude, "
          "seeds.\n"
          "; `include = FILE` reads FILE (relative to this file) in place; "
          "later\n"
          "; assignments override earlier and included ones.\n",
          out);
    const char *sec = NULL;
    for (int i = 0; i < nb_key_count(); i++) {
        const struct nb_key *k = nb_key_at(i);
        if (!sec || strcmp(sec, k->section)) {
            fprintf(out, "\n[%s]\n", k->section);
            sec = k->section;
        }
        char r[200] = "";
        if (k->type == NB_KEY_ENUM) {
            nb_key_enum_list(k, "|", r, sizeof r);
        } else if (k->type == NB_KEY_INT || k->type == NB_KEY_FLOAT ||
                   k->type == NB_KEY_INT_LIST || k->type == NB_KEY_FLOAT_LIST) {
            int list = k->type == NB_KEY_INT_LIST || k->type == NB_KEY_FLOAT_LIST;
            if (list)
                strcpy(r, "each ");
            nb_key_range_text(k, 0, r + (list ? 5 : 0), sizeof r - (list ? 5 : 0));
            if (list && !r[5])
                r[0] = '\0';
        } else if (k->type == NB_KEY_STRING && (k->flags & NB_KF_IDENT)) {
            snprintf(r, sizeof r, "[A-Za-z0-9_.-]");
        }
        fprintf(out, "; %s%s%s", nb_key_type_name(k), r[0] ? " " : "", r);
        if (k->word)
            fprintf(out, " or %s", k->word);
        if (k->flags & NB_KF_INF)
            fprintf(out, " or inf");
        if ((k->flags & NB_KF_NOSWEEP) && !(k->flags & NB_KF_STRUCT))
            fprintf(out, ", not sweepable");
        if (k->flags & NB_KF_REPEAT)
            fprintf(out, ", repeatable");
        if (k->flags & NB_KF_ADDED)
            fprintf(out, ", new since 0.1.0 (in run_id only when not default)");
        fprintf(out, ": %s\n", k->doc);
        fprintf(out, "%s =%s%s\n", k->key, k->def[0] ? " " : "", k->def);
    }
}

