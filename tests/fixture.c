/* tests/fixture.c - the text fixtures of tests/data; see fixture.h. */
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

void fx_free(struct fixture *f)
{
    for (int i = 0; i < f->count; i++)
        free(f->v[i]);
    memset(f, 0, sizeof *f);
}

/* See fixture.h. */
int fx_load(struct fixture *f, const char *path)
{
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "r");
    if (!fp) {
        tap_diag("cannot open %s", path);
        return -1;
    }
    char tok[48];
    int rc = 0;
    for (;;) {
        int ch;
        while ((ch = fgetc(fp)) == ' ' || ch == '\n' || ch == '\t' || ch == '\r')
            ;
        if (ch == EOF)
            break;
        if (ch == '#') {
            while ((ch = fgetc(fp)) != EOF && ch != '\n')
                ;
            continue;
        }
        ungetc(ch, fp);
        size_t cnt;
        if (fscanf(fp, "%47s %zu", tok, &cnt) != 2 || f->count == FX_MAX) {
            tap_diag("%s: bad record header after %d records", path, f->count);
            rc = -1;
            break;
        }
        int k = f->count++;
        snprintf(f->name[k], sizeof f->name[k], "%s", tok);
        f->n[k] = cnt;
        f->v[k] = malloc((cnt ? cnt : 1) * sizeof(double));
        for (size_t i = 0; i < cnt; i++)
            if (fscanf(fp, "%lf", &f->v[k][i]) != 1) {
                tap_diag("%s: record %s: expected %zu numbers, got %zu", path,
                         tok, cnt, i);
                rc = -1;
                break;
            }
        if (rc)
            break;
    }
    fclose(fp);
    return rc;
}

const double *fx_get(const struct fixture *f, const char *name,
                            size_t want)
{
    for (int i = 0; i < f->count; i++)
        if (strcmp(f->name[i], name) == 0) {
            if (want && f->n[i] != want)
                tap_bail("fixture record %s has %zu values, expected %zu",
                         name, f->n[i], want);
            return f->v[i];
        }
    return NULL;
}

size_t fx_count(const struct fixture *f, const char *name)
{
    for (int i = 0; i < f->count; i++)
        if (strcmp(f->name[i], name) == 0)
            return f->n[i];
    return 0;
}
