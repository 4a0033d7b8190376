/* src/run/progress.c - see progress.h. */
#include "run/progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "core/arena.h"

static const char *const mode_names[] = {"auto", "bar", "lines", "none"};
_Static_assert(sizeof mode_names / sizeof mode_names[0] == NB_PROGRESS_MODE_COUNT,
               "progress mode names");

const char *nb_progress_mode_name(enum nb_progress_mode m)
{
    return (int)m >= 0 && m < NB_PROGRESS_MODE_COUNT ? mode_names[m] : NULL;
}

int nb_progress_mode_parse(const char *s, enum nb_progress_mode *m)
{
    for (int i = 0; i < NB_PROGRESS_MODE_COUNT; i++)
        if (!strcmp(s, mode_names[i])) {
            *m = (enum nb_progress_mode)i;
            return 0;
        }
    return -1;
}

int nb_progress_init(struct nb_progress *p, enum nb_progress_mode mode,
                     FILE *fp, const char *term, size_t total, int n_slots)
{
    memset(p, 0, sizeof *p);
    if (mode == NB_PROGRESS_AUTO) {
        bool tty = isatty(fileno(fp)) && !(term && !strcmp(term, "dumb"));
        mode = tty ? NB_PROGRESS_BAR : NB_PROGRESS_LINES;
    }
    p->mode = mode;
    p->fp = fp;
    p->total = total;
    p->n_slots = n_slots > 0 ? n_slots : 1;
    p->slots = calloc((size_t)p->n_slots, sizeof *p->slots);
    if (!p->slots)
        return -1;
    p->t0 = nb_now();
    p->last_line = p->t0;
    p->line_interval = 10.0;
    return 0;
}

static void clear_bar(struct nb_progress *p)
{
    if (p->drawn) {
        fputs("\r\033[K", p->fp);
        p->drawn = false;
    }
}

void nb_progress_free(struct nb_progress *p)
{
    if (!p)
        return;
    if (p->fp)
        clear_bar(p);
    free(p->slots);
    memset(p, 0, sizeof *p);
}

void nb_progress_skip(struct nb_progress *p, size_t n) { p->skipped += n; }

static struct nb_progress_slot *slot_of(struct nb_progress *p, int slot)
{
    return slot >= 0 && slot < p->n_slots ? &p->slots[slot] : NULL;
}

void nb_progress_start(struct nb_progress *p, int slot, size_t index)
{
    struct nb_progress_slot *s = slot_of(p, slot);
    if (s)
        *s = (struct nb_progress_slot){.active = true, .index = index};
}

void nb_progress_update(struct nb_progress *p, int slot, long step,
                        long steps, double epoch, double epochs)
{
    struct nb_progress_slot *s = slot_of(p, slot);
    if (!s)
        return;
    s->step = step;
    s->steps = steps;
    s->epoch = epoch;
    s->epochs = epochs;
}

static void fmt_time(double t, char *buf, size_t size)
{
    long s = t > 0 && t < 1e9 ? (long)(t + 0.5) : 0;
    if (s >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, size, "%ld:%02ld", s / 60, s % 60);
}

/* Runs finished in this invocation, plus the fractions of those running. */
static double units(const struct nb_progress *p, int *running)
{
    double u = (double)(p->done + p->diverged + p->failed);
    *running = 0;
    for (int i = 0; i < p->n_slots; i++)
        if (p->slots[i].active) {
            (*running)++;
            if (p->slots[i].steps > 0)
                u += (double)p->slots[i].step / (double)p->slots[i].steps;
        }
    return u;
}

size_t nb_progress_status(const struct nb_progress *p, char *buf, size_t size, bool details)
{
    int running;
    double now = nb_now(), el = now - p->t0;
    double u = units(p, &running);
    size_t todo = p->total - p->skipped;
    size_t fin = p->skipped + p->done + p->diverged + p->failed;
    char elapsed[32], eta[32] = "?";
    fmt_time(el, elapsed, sizeof elapsed);
    if (u > 0.02 && el > 0.5)
        fmt_time(((double)todo - u) * el / u, eta, sizeof eta);
    if (fin >= p->total)
        snprintf(eta, sizeof eta, "0:00");
    size_t k = (size_t)snprintf(buf, size, "%zu/%zu runs", fin, p->total);
    if (p->diverged && k < size)
        k += (size_t)snprintf(buf + k, size - k, ", %zu diverged", p->diverged);
    if (p->failed && k < size)
        k += (size_t)snprintf(buf + k, size - k, ", %zu failed", p->failed);
    if (k < size)
        k += (size_t)snprintf(buf + k, size - k, " | %s ETA %s", elapsed, eta);
    if (running && k < size) {
        k += (size_t)snprintf(buf + k, size - k, " | %d running", running);
        if (details)
            for (int i = 0; i < p->n_slots && k < size; i++) {
                const struct nb_progress_slot *s = &p->slots[i];
                if (!s->active)
                    continue;
                if (s->epochs > 0) /* whole epochs, or a max_steps fraction */
                    k += (size_t)snprintf(buf + k, size - k,
                                          s->epochs == floor(s->epochs) ? " #%zu:ep %.1f/%.0f"
                                                                         : " #%zu:ep %.1f/%.1f",
                                          s->index, s->epoch, s->epochs);
                else
                    k += (size_t)snprintf(buf + k, size - k, " #%zu", s->index);
            }
    }
    if (p->waiting && k < size)
        k += (size_t)snprintf(buf + k, size - k, " | %zu held by other processes",
                              p->waiting);
    return k < size ? k : size - 1;
}

static int term_width(const struct nb_progress *p)
{
    struct winsize ws;
    if (ioctl(fileno(p->fp), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10)
        return ws.ws_col;
    return 80;
}

static void draw_bar(struct nb_progress *p)
{
    char text[1024], line[1200];
    int running;
    nb_progress_status(p, text, sizeof text, true);
    double frac = p->total ? ((double)p->skipped + units(p, &running)) /
                                 (double)p->total
                           : 1.0;
    if (frac > 1)
        frac = 1;
    int w = term_width(p) - 1;
    int barw = 20;
    char bar[32];
    int fill = (int)(frac * barw + 0.5);
    for (int i = 0; i < barw; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[barw] = '\0';
    snprintf(line, sizeof line, "[%s] %s", bar, text);
    if ((int)strlen(line) > w && w > 0)
        line[w] = '\0';
    fprintf(p->fp, "\r%s\033[K", line);
    fflush(p->fp);
    p->drawn = true;
}

static void plain_line(struct nb_progress *p)
{
    char text[1024];
    nb_progress_status(p, text, sizeof text, false);
    fprintf(p->fp, "normbench: %s\n", text);
    fflush(p->fp);
    p->last_line = nb_now();
}

void nb_progress_tick(struct nb_progress *p, bool force)
{
    if (!p->slots || p->mode == NB_PROGRESS_NONE)
        return;
    double now = nb_now();
    if (p->mode == NB_PROGRESS_BAR) {
        if (force || now - p->last_draw >= 0.1) {
            draw_bar(p);
            p->last_draw = now;
        }
    } else if (force || now - p->last_line >= p->line_interval) {
        plain_line(p);
    }
}

void nb_progress_end(struct nb_progress *p, int slot, enum nb_progress_end how)
{
    struct nb_progress_slot *s = slot_of(p, slot);
    if (s)
        s->active = false;
    if (how == NB_PROG_DONE)
        p->done++;
    else if (how == NB_PROG_DIVERGED)
        p->diverged++;
    else
        p->failed++;
    nb_progress_tick(p, false);
}

void nb_progress_log(struct nb_progress *p, const char *fmt, ...)
{
    if (!p->slots || p->mode == NB_PROGRESS_NONE)
        return;
    clear_bar(p);
    va_list ap;
    va_start(ap, fmt);
    fputs("normbench: ", p->fp);
    vfprintf(p->fp, fmt, ap);
    va_end(ap);
    fputc('\n', p->fp);
    fflush(p->fp);
    if (p->mode == NB_PROGRESS_BAR)
        nb_progress_tick(p, true);
}

void nb_progress_finish(struct nb_progress *p)
{
    if (!p->slots || p->mode == NB_PROGRESS_NONE)
        return;
    clear_bar(p);
    plain_line(p);
}
