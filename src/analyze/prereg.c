/* src/analyze/prereg.c - see prereg.h. */
#include "analyze/prereg.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analyze/report.h"    /* nb_experiment_after_runs_key */
#include "analyze/summarize.h" /* nb_atomic_begin, nb_atomic_end */

unsigned long long nb_text_hash(unsigned long long h, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

/* s with runs of whitespace collapsed to one space, trimmed (malloc'd). */
static char *collapse_ws(const char *s)
{
    char *d = malloc(strlen(s) + 1);
    if (!d)
        return NULL;
    size_t n = 0;
    bool space = false;
    for (; *s; s++) {
        if (isspace((unsigned char)*s)) {
            space = n > 0;
            continue;
        }
        if (space)
            d[n++] = ' ';
        space = false;
        d[n++] = *s;
    }
    d[n] = '\0';
    return d;
}

/* Whether the line [p, end) is a `KEY = ...` line (KEY at its start);
 * KEY into key (truncated to size). */
static bool key_line(const char *p, const char *end, char *key, size_t size)
{
    const char *q = p;
    while (q < end && (isalnum((unsigned char)*q) || *q == '_' || *q == '.' || *q == '-'))
        q++;
    size_t n = (size_t)(q - p);
    while (q < end && (*q == ' ' || *q == '\t'))
        q++;
    if (n == 0 || q == end || *q != '=')
        return false;
    snprintf(key, size, "%.*s", (int)n, p);
    return true;
}

int nb_prereg_file_hashes(const char *path, char whole[17], char before_runs[17],
                          struct nb_error *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return nb_error_set(err, NB_EIO, path, 0, "cannot read: %s", strerror(errno));
    unsigned long long h = NB_TEXT_HASH_SEED, hb = NB_TEXT_HASH_SEED;
    char section[128] = "", key[128];
    bool skip = false;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, fp)) > 0) {
        const char *p = line, *next = line + n;
        h = nb_text_hash(h, p, (size_t)n);
        const char *q = p;
        while (q < next && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
            q++;
        bool blank = q == next, indented = !blank && (*p == ' ' || *p == '\t');
        if (skip && indented) /* a continuation line of the skipped value */
            continue;
        skip = false;
        if (*p == '[') {
            const char *e = memchr(p, ']', (size_t)n);
            snprintf(section, sizeof section, "%.*s", e ? (int)(e - p - 1) : 0, p + 1);
        } else if (!blank && !indented && key_line(p, next, key, sizeof key) &&
                   nb_experiment_after_runs_key(section, key)) {
            skip = true;
            continue;
        }
        hb = nb_text_hash(hb, p, (size_t)n);
    }
    bool bad = ferror(fp);
    free(line);
    fclose(fp);
    if (bad)
        return nb_error_set(err, NB_EIO, path, 0, "read error");
    snprintf(whole, 17, "%016llx", h);
    snprintf(before_runs, 17, "%016llx", hb);
    return 0;
}

int nb_prereg_file_hash(const char *path, char hex[17], struct nb_error *err)
{
    char unused[17];
    return nb_prereg_file_hashes(path, hex, unused, err);
}

enum nb_prereg_file nb_prereg_file_compare(const struct nb_prereg *p, const char *path)
{
    char hex[17], hex2[17];
    if (nb_prereg_file_hashes(path, hex, hex2, NULL))
        return NB_PREREG_UNREADABLE;
    if (!strcmp(hex, p->experiment_hash))
        return NB_PREREG_SAME;
    /* registrations older than experiment_hash_before_runs were written
     * before any experiment had those keys: their whole-file hash is it */
    const char *then =
        p->experiment_hash_before_runs[0] ? p->experiment_hash_before_runs : p->experiment_hash;
    return !strcmp(hex2, then) ? NB_PREREG_AFTER_RUNS_ONLY : NB_PREREG_EDITED;
}


void nb_prereg_free(struct nb_prereg *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_checks; i++) {
        free(p->checks[i].name);
        free(p->checks[i].expect);
    }
    free(p->checks);
    memset(p, 0, sizeof *p);
}

int nb_prereg_read(const char *path, struct nb_prereg *p, struct nb_error *err)
{
    memset(p, 0, sizeof *p);
    FILE *fp = fopen(path, "r");
    if (!fp) {
        if (errno == ENOENT)
            return 0;
        return nb_error_set(err, NB_EIO, path, 0, "cannot read: %s", strerror(errno));
    }
    p->present = true;
    char line[8192];
    int ln = 0, rc = 0;
    struct nb_prereg_check *cur = NULL;
    while (!rc && fgets(line, sizeof line, fp)) {
        ln++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            rc = nb_error_set(err, NB_EFORMAT, path, ln, "line too long");
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (!len || line[0] == '#')
            continue;
        if (!strncmp(line, "[check ", 7) && line[len - 1] == ']') {
            struct nb_prereg_check *c = realloc(p->checks, (size_t)(p->n_checks + 1) * sizeof *c);
            if (!c) {
                rc = nb_error_oom(err);
                break;
            }
            p->checks = c;
            cur = &c[p->n_checks++];
            cur->expect = NULL;
            cur->name = strndup(line + 7, len - 8);
            if (!cur->name)
                rc = nb_error_oom(err);
            continue;
        }
        char *eq = strstr(line, " = ");
        if (!eq) {
            rc = nb_error_set(err, NB_EFORMAT, path, ln, "expected 'key = value' or '[check NAME]'");
            break;
        }
        *eq = '\0';
        const char *k = line, *v = eq + 3;
        if (cur) {
            if (!strcmp(k, "expect")) {
                free(cur->expect);
                if (!(cur->expect = collapse_ws(v)))
                    rc = nb_error_oom(err);
            }
            /* hash: informative (the statement itself is compared) */
            continue;
        }
        if (!strcmp(k, "experiment"))
            snprintf(p->experiment, sizeof p->experiment, "%s", v);
        else if (!strcmp(k, "experiment_hash"))
            snprintf(p->experiment_hash, sizeof p->experiment_hash, "%s", v);
        else if (!strcmp(k, "experiment_hash_before_runs"))
            snprintf(p->experiment_hash_before_runs, sizeof p->experiment_hash_before_runs, "%s",
                     v);
        else if (!strcmp(k, "date"))
            snprintf(p->date, sizeof p->date, "%s", v);
        else if (!strcmp(k, "revision"))
            snprintf(p->revision, sizeof p->revision, "%s", v);
        else if (!strcmp(k, "runs_before"))
            p->runs_before = strtol(v, NULL, 10);
    }
    fclose(fp);
    for (int i = 0; !rc && i < p->n_checks; i++)
        if (!p->checks[i].expect)
            rc = nb_error_set(err, NB_EFORMAT, path, 0, "check %s has no 'expect'",
                              p->checks[i].name);
    if (rc)
        nb_prereg_free(p);
    return rc;
}

int nb_prereg_write(const char *path, const char *exp_path, const struct nb_check *c,
                    int n, const char *date, const char *revision, long runs_before,
                    struct nb_error *err)
{
    struct stat st;
    if (stat(path, &st) == 0)
        return nb_error_set(err, NB_EINVAL, path, 0,
                            "exists: a registration is never rewritten (delete it with "
                            "the runs to start afresh)");
    char hex[17], hex2[17];
    int rc = nb_prereg_file_hashes(exp_path, hex, hex2, err);
    if (rc)
        return rc;
    char tmp[4200];
    FILE *fp;
    if ((rc = nb_atomic_begin(path, tmp, sizeof tmp, &fp, err)))
        return rc;
    fprintf(fp, "# Pre-registration, written by normbench before the first run of the "
                "experiment below.\n"
                "# A check whose statement differs from the one here is reported as post "
                "hoc and does not\n"
                "# count toward the verdict.  Never edit this file; to start afresh, "
                "delete it with the runs.\n");
    fprintf(fp, "experiment = %s\nexperiment_hash = %s\nexperiment_hash_before_runs = %s\n"
                "date = %s\nrevision = %s\nruns_before = %ld\n",
            exp_path, hex, hex2, date, revision, runs_before);
    for (int i = 0; i < n; i++) {
        char *t = collapse_ws(c[i].text);
        if (!t) {
            fclose(fp);
            remove(tmp);
            return nb_error_oom(err);
        }
        fprintf(fp, "\n[check %s]\nhash = %016llx\nexpect = %s\n", c[i].name,
                nb_text_hash(NB_TEXT_HASH_SEED, t, strlen(t)), t);
        free(t);
    }
    return nb_atomic_end(path, tmp, fp, err);
}

static const char *const reg_names[NB_REG_COUNT] = {
    "pre-registered", "post hoc: changed after the runs", "post hoc: added after the runs",
    "post hoc: registered after runs existed", "post hoc: not pre-registered"};

const char *nb_reg_name(int reg)
{
    return reg >= 0 && reg < NB_REG_COUNT ? reg_names[reg] : "?";
}

int nb_prereg_status(const struct nb_prereg *p, const struct nb_check *c)
{
    if (!p->present)
        return NB_REG_NONE;
    for (int i = 0; i < p->n_checks; i++) {
        if (strcmp(p->checks[i].name, c->name))
            continue;
        char *t = collapse_ws(c->text);
        bool same = t && !strcmp(t, p->checks[i].expect);
        free(t);
        if (!same)
            return NB_REG_CHANGED;
        return p->runs_before > 0 ? NB_REG_LATE : NB_REG_OK;
    }
    return NB_REG_ADDED;
}
