/* src/run/progress.h - progress of a sweep on stderr.
 *
 * Modes: a live bar (one line redrawn in place with '\r' and "erase to
 * end of line", at most 10 times a second) when stderr is a terminal and
 * TERM is not "dumb"; plain complete lines otherwise (at most one every
 * `line_interval` seconds, plus one for every run that fails or diverges
 * and a final one), so Slurm output files, tee and CI logs stay readable;
 * or nothing.  The bar shows runs done/total, the runs in flight with
 * their epoch, counts of diverged and failed runs, elapsed time and an
 * ETA from the throughput so far (runs finished plus the fractions of the
 * runs in flight, over the elapsed time).  No colour is ever used.
 * Results never go through here: they go to stdout or files. */
#ifndef NB_HARNESS_PROGRESS_H
#define NB_HARNESS_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum nb_progress_mode {
    NB_PROGRESS_AUTO = 0, /* bar on a terminal, lines otherwise */
    NB_PROGRESS_BAR,
    NB_PROGRESS_LINES,
    NB_PROGRESS_NONE,
    NB_PROGRESS_MODE_COUNT
};

/* "auto", "bar", "lines", "none"; parse returns 0 or -1. */
const char *nb_progress_mode_name(enum nb_progress_mode m);
int nb_progress_mode_parse(const char *s, enum nb_progress_mode *m);

enum nb_progress_end { NB_PROG_DONE = 0, NB_PROG_DIVERGED, NB_PROG_FAILED };

struct nb_progress_slot {
    bool active;
    size_t index;
    long step, steps;     /* steps done / planned (0: not known yet) */
    double epoch, epochs;
};

struct nb_progress {
    enum nb_progress_mode mode; /* resolved: BAR, LINES or NONE */
    FILE *fp;
    size_t total;        /* runs this invocation is responsible for */
    size_t skipped;      /* of which were done before it started */
    size_t done, diverged, failed;
    size_t waiting;      /* runs held by other processes */
    int n_slots;
    struct nb_progress_slot *slots;
    double t0, last_draw, last_line;
    double line_interval; /* seconds between plain lines (default 10) */
    bool drawn;          /* a bar is on the screen */
};

/* Sets p up for `total` runs and n_slots workers, writing to fp (stderr).
 * AUTO resolves to BAR when fp is a terminal and term (the caller's $TERM,
 * may be NULL) is not "dumb", else LINES.  Returns 0 or -1 when out of
 * memory. */
int nb_progress_init(struct nb_progress *p, enum nb_progress_mode mode,
                     FILE *fp, const char *term, size_t total, int n_slots);

/* Frees p (clearing the bar); safe on a zeroed struct. */
void nb_progress_free(struct nb_progress *p);

/* Counts runs found done before this invocation. */
void nb_progress_skip(struct nb_progress *p, size_t n);

/* A worker slot starts / advances / ends a run. */
void nb_progress_start(struct nb_progress *p, int slot, size_t index);
void nb_progress_update(struct nb_progress *p, int slot, long step,
                        long steps, double epoch, double epochs);
void nb_progress_end(struct nb_progress *p, int slot,
                     enum nb_progress_end how);

/* Prints one message line (the bar is cleared first and redrawn later). */
void nb_progress_log(struct nb_progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The status text without the bar (runs, elapsed, ETA, and with details
 * each running slot's "#INDEX:ep E/EPOCHS"); returns its length. */
size_t nb_progress_status(const struct nb_progress *p, char *buf, size_t size, bool details);

/* Redraws the bar or prints a plain line when due; force: now. */
void nb_progress_tick(struct nb_progress *p, bool force);

/* The final line (lines mode) or a cleared bar followed by the same line. */
void nb_progress_finish(struct nb_progress *p);

#endif
