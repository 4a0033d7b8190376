/* tests/sumfix.h - hand-made run directories for the summary and check
 * tests: a sweep of 3 norms (none, batch, group) x 2 batch sizes (8, 32,
 * learning rate zipped to it) x 3 seeds whose files are written with
 * known numbers, so every aggregate can be checked by hand.
 *
 * Special runs:
 *   batch bs=8 seed 2   diverged (DONE status diverged, 2 rows, NaN loss)
 *   group bs=32 seed 1  failed (error.txt, no DONE)
 *   group bs=32 seed 2  pending (no directory)
 *   none bs=32 seed 0   an extra evaluation at step 25 (unaligned steps)
 * Probes (landscape, ics, dist, hessian) and slices (1-D at step 100, and
 * 2-D at step 200 for none; in the probe's format) are written for the
 * bs=32 runs of none and batch. */
#ifndef NB_TESTS_SUMFIX_H
#define NB_TESTS_SUMFIX_H

/* Writes DIR/fx.ini and the run directories DIR/fx/RUN_ID/; returns the
 * config path (static buffer).  Bails out (TAP) on I/O errors. */
const char *sumfix_make(const char *dir);

/* The final test accuracy written for norm n (0 none, 1 batch, 2 group),
 * batch size bs (8 or 32) and seed. */
double sumfix_acc(int n, int bs, int seed);

/* The first training loss of that run's rows (row r = 1..4 has loss
 * sumfix_loss(...) / r). */
double sumfix_loss(int n, int bs, int seed);

/* landscape loss_min / loss_max written at step (0, 10, 20) for norm n
 * (0 none or 1 batch), seed. */
double sumfix_lmin(int n, int step, int seed);
double sumfix_lmax(int n, int step, int seed);

#endif
