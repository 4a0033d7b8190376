/* tests/fuzz/fuzz_ini.c - libFuzzer target: the strict INI reader
 * (nb_ini_parse), the config reader against the key table and the sweep
 * expansion (nb_sweep_load), and the resolved runs' canonical text.
 *
 * Input: an INI file.  A line "#--" splits it: the text before goes to
 * main.ini, the text after to sub.ini in the same directory, so
 * `include = sub.ini` (and include cycles through main.ini) are reachable.
 * Both files live in a private scratch directory. */
#define _GNU_SOURCE /* memmem */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "config/keys.h"
#include "config/sweep.h"
#include "fuzz_util.h"

static FILE *devnull;

/* Touches every field the reader hands out. */
static int handler(void *user, const struct nb_ini_item *it,
                   struct nb_error *err)
{
    (void)err;
    size_t *sum = user;
    *sum += strlen(it->file) + strlen(it->section) + (size_t)it->line +
            (size_t)it->section_line;
    if (it->key) {
        size_t vl = strlen(it->value);
        *sum += strlen(it->key) + vl;
        for (int j = 0; j < it->n_segs; j++)
            *sum += it->seg_off[j] + (size_t)it->seg_line[j];
        *sum += (size_t)nb_ini_item_line(it, 0) +
                (size_t)nb_ini_item_line(it, vl / 2) +
                (size_t)nb_ini_item_line(it, vl + 7);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char sep[] = "\n#--\n";
    char main_path[512], sub_path[512];
    size_t main_len = size, sub_off = size;
    const uint8_t *p = size >= sizeof sep - 1
                           ? memmem(data, size, sep, sizeof sep - 1)
                           : NULL;
    if (p) {
        main_len = (size_t)(p - data) + 1; /* keep its '\n' */
        sub_off = main_len + sizeof sep - 2;
    }
    fz_write("main.ini", data, main_len, main_path, sizeof main_path);
    fz_write("sub.ini", data + sub_off, size - sub_off, sub_path,
             sizeof sub_path);
    if (!devnull && !(devnull = fopen("/dev/null", "w")))
        abort();

    struct nb_error err;
    size_t sum = 0;
    nb_error_clear(&err);
    (void)nb_ini_parse(main_path, handler, &sum, &err);

    struct nb_sweep sw;
    nb_error_clear(&err);
    if (nb_sweep_load(main_path, &sw, &err) == 0) {
        nb_sweep_print_list(devnull, &sw);
        for (size_t i = 0; i < sw.n_runs; i += sw.n_runs > 4 ? sw.n_runs / 4 : 1) {
            char *canon = nb_run_canonical(&sw.runs[i]);
            if (!canon)
                abort();
            if (nb_sweep_find(&sw, sw.runs[i].run_id) < 0)
                abort();
            free(canon);
            if (nb_run_write_ini(devnull, &sw.runs[i]) != 0)
                abort();
        }
        nb_sweep_free(&sw);
    } else {
        char buf[2048];
        nb_error_format(&err, buf, sizeof buf);
        if (err.status >= 0 || !buf[0])
            abort(); /* an error must say what went wrong */
    }
    return 0;
}
