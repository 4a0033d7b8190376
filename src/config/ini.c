/* src/config/ini.c - see ini.h: the strict INI reader. */
#include "config/ini.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/text.h"

/* Appends p to b; 0, or NB_ENOMEM once an allocation has failed. */
static int sb_puts(struct nb_text *b, const char *p)
{
    nb_text_puts(b, p);
    return b->failed ? NB_ENOMEM : 0;
}

static int is_blank(int c) { return c == ' ' || c == '\t'; }

/* Cuts an inline comment: ';' or '#' preceded by a blank. */
static void strip_comment(char *s)
{
    if (!s[0])
        return;
    for (size_t i = 1; s[i]; i++)
        if ((s[i] == ';' || s[i] == '#') && is_blank((unsigned char)s[i - 1])) {
            s[i] = '\0';
            break;
        }
}

/* ======================================================================
 * The INI reader
 * ====================================================================== */

#define NB_INI_MAX_DEPTH 32

struct ini_ctx {
    nb_ini_handler handler;
    void *user;
    const char *text; /* nb_ini_parse_text: the top-level file's text */
    int next_id;
    const char *stack_path[NB_INI_MAX_DEPTH];
    char *stack_real[NB_INI_MAX_DEPTH];
    int depth;
};

struct pending {
    int active;
    char *key;
    int line;
    struct nb_text val;
    size_t *seg_off;
    int *seg_line;
    int n_segs, cap_segs;
};

int nb_ini_item_line(const struct nb_ini_item *it, size_t off)
{
    int line = it->line;
    for (int j = 0; j < it->n_segs; j++)
        if (it->seg_off[j] <= off)
            line = it->seg_line[j];
    return line;
}

static int pend_seg(struct pending *p, const char *text, int line)
{
    if (p->n_segs == p->cap_segs) {
        int cap = p->cap_segs ? 2 * p->cap_segs : 4;
        size_t *o = realloc(p->seg_off, (size_t)cap * sizeof *o);
        if (!o)
            return NB_ENOMEM;
        p->seg_off = o;
        int *l = realloc(p->seg_line, (size_t)cap * sizeof *l);
        if (!l)
            return NB_ENOMEM;
        p->seg_line = l;
        p->cap_segs = cap;
    }
    if (p->val.n > 0 && *text && sb_puts(&p->val, " "))
        return NB_ENOMEM;
    p->seg_off[p->n_segs] = p->val.n;
    p->seg_line[p->n_segs] = line;
    p->n_segs++;
    return sb_puts(&p->val, text);
}

static int parse_file(struct ini_ctx *ctx, const char *path,
                      const char *from_file, int from_line,
                      struct nb_error *err);

static int flush(struct ini_ctx *ctx, struct pending *p, const char *file,
                 int file_id, const char *section, int section_line,
                 struct nb_error *err)
{
    if (!p->active)
        return 0;
    p->active = 0;
    if (!strcmp(p->key, "include")) {
        const char *v = p->val.s;
        if (!*v)
            return nb_error_set(err, NB_EINVAL, file, p->line,
                                "include needs a file name");
        char *inc;
        const char *slash = strrchr(file, '/');
        if (v[0] == '/' || !slash) {
            inc = strdup(v);
        } else {
            size_t dl = (size_t)(slash - file) + 1;
            inc = malloc(dl + strlen(v) + 1);
            if (inc) {
                memcpy(inc, file, dl);
                strcpy(inc + dl, v);
            }
        }
        if (!inc)
            return nb_error_oom(err);
        int rc = parse_file(ctx, inc, file, p->line, err);
        free(inc);
        return rc;
    }
    struct nb_ini_item it = {
        .file = file, .file_id = file_id, .line = p->line,
        .section = section, .section_line = section_line, .key = p->key,
        .value = p->val.s, .n_segs = p->n_segs, .seg_off = p->seg_off,
        .seg_line = p->seg_line,
    };
    return ctx->handler(ctx->user, &it, err);
}

static int valid_key_name(const char *k)
{
    if (!*k)
        return 0;
    for (; *k; k++)
        if (!isalnum((unsigned char)*k) && *k != '_')
            return 0;
    return 1;
}

/* Reads one line, its '\n' included, into *buf (NUL-terminated) and sets
 * *len (0 at end of file).  *total counts the file's bytes so far.  A read
 * error, a NUL byte, a line longer than NB_INI_MAX_LINE or a file larger
 * than NB_INI_MAX_FILE is an error at path:lineno. */
static int read_line(FILE *fp, char **buf, size_t *cap, size_t *len,
                     long *total, const char *path, int lineno,
                     struct nb_error *err)
{
    size_t n = 0;
    for (;;) {
        errno = 0;
        int c = getc(fp);
        if (c == EOF) {
            if (ferror(fp))
                return nb_error_set(err, NB_EIO, path, lineno, "read error: %s",
                                    strerror(errno));
            break;
        }
        if (c == '\0')
            return nb_error_set(err, NB_EINVAL, path, lineno,
                                "NUL byte in column %zu (not a text file?)",
                                n + 1);
        if (n == NB_INI_MAX_LINE)
            return nb_error_set(err, NB_EINVAL, path, lineno,
                                "line longer than %d bytes", NB_INI_MAX_LINE);
        if (++*total > NB_INI_MAX_FILE)
            return nb_error_set(err, NB_EINVAL, path, lineno,
                                "file larger than %ld bytes", NB_INI_MAX_FILE);
        if (n + 2 > *cap) {
            size_t c2 = *cap ? 2 * *cap : 256;
            char *b = realloc(*buf, c2);
            if (!b)
                return nb_error_oom(err);
            *buf = b;
            *cap = c2;
        }
        (*buf)[n++] = (char)c;
        if (c == '\n')
            break;
    }
    if (*buf)
        (*buf)[n] = '\0';
    *len = n;
    return 0;
}

static int parse_lines(struct ini_ctx *ctx, FILE *fp, const char *path,
                       int file_id, struct nb_error *err)
{
    char *line = NULL, *section = strdup("");
    size_t cap = 0, len;
    long total = 0;
    int lineno = 0, section_line = 0, rc = 0;
    struct pending p = {0};
    if (!section)
        return nb_error_oom(err);
    for (;;) {
        if ((rc = read_line(fp, &line, &cap, &len, &total, path, lineno + 1, err)))
            break;
        if (len == 0)
            break;
        lineno++;
        char *s = line;
        if (lineno == 1 && !strncmp(s, "\xEF\xBB\xBF", 3))
            s += 3;
        nb_trim_right(s); /* drops \n and \r */
        char *t = nb_trim_left(s);
        if (*t == ';' || *t == '#')
            continue; /* comment lines never end a value */
        if (!*t) {
            if ((rc = flush(ctx, &p, path, file_id, section, section_line, err)))
                break;
            continue;
        }
        if (t != s && p.active) { /* continuation line */
            strip_comment(t);
            nb_trim_right(t);
            if (pend_seg(&p, t, lineno)) {
                rc = nb_error_oom(err);
                break;
            }
            continue;
        }
        if ((rc = flush(ctx, &p, path, file_id, section, section_line, err)))
            break;
        if (*t == '[') {
            strip_comment(t);
            nb_trim_right(t);
            char *close = strchr(t, ']');
            if (!close || close[1]) {
                rc = nb_error_set(err, NB_EINVAL, path, lineno,
                                  close ? "text after ']' in section header '%s'"
                                        : "malformed section header '%s' (missing ']')",
                                  t);
                break;
            }
            *close = '\0';
            char *name = nb_trim_left(t + 1);
            nb_trim_right(name);
            if (!*name) {
                rc = nb_error_set(err, NB_EINVAL, path, lineno,
                                  "empty section name");
                break;
            }
            free(section);
            section = strdup(name);
            if (!section) {
                rc = nb_error_oom(err);
                break;
            }
            section_line = lineno;
            struct nb_ini_item it = {.file = path, .file_id = file_id,
                                     .line = lineno, .section = section,
                                     .section_line = lineno};
            if ((rc = ctx->handler(ctx->user, &it, err)))
                break;
            continue;
        }
        char *eq = strchr(t, '=');
        if (!eq) {
            strip_comment(t);
            nb_trim_right(t);
            rc = nb_error_set(err, NB_EINVAL, path, lineno,
                              "expected 'key = value' or '[section]', got '%.80s'",
                              t);
            break;
        }
        *eq = '\0';
        nb_trim_right(t);
        if (!valid_key_name(t)) {
            rc = *t ? nb_error_set(err, NB_EINVAL, path, lineno,
                                   "bad key name '%.80s'", t)
                    : nb_error_set(err, NB_EINVAL, path, lineno,
                                   "missing key before '='");
            break;
        }
        char *v = eq + 1;
        strip_comment(v);
        v = nb_trim_left(v);
        nb_trim_right(v);
        free(p.key);
        p.key = strdup(t);
        p.val.n = 0;
        p.n_segs = 0;
        if (!p.key || sb_puts(&p.val, "") || pend_seg(&p, v, lineno)) {
            rc = nb_error_oom(err);
            break;
        }
        p.line = lineno;
        p.active = 1;
    }
    if (!rc)
        rc = flush(ctx, &p, path, file_id, section, section_line, err);
    free(p.key);
    free(p.val.s);
    free(p.seg_off);
    free(p.seg_line);
    free(line);
    free(section);
    return rc;
}

static int parse_file(struct ini_ctx *ctx, const char *path,
                      const char *from_file, int from_line,
                      struct nb_error *err)
{
    bool in_memory = ctx->text && ctx->depth == 0;
    FILE *fp = in_memory ? fmemopen((void *)ctx->text, strlen(ctx->text), "r")
                         : fopen(path, "r");
    if (!fp) {
        int e = errno;
        if (from_file)
            return nb_error_set(err, NB_EIO, from_file, from_line,
                                "cannot open included file '%s': %s", path,
                                strerror(e));
        return nb_error_set(err, NB_EIO, path, 0, "cannot open: %s",
                            strerror(e));
    }
    struct stat st;
    if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(fp);
        if (from_file)
            return nb_error_set(err, NB_EIO, from_file, from_line,
                                "cannot open included file '%s': %s", path,
                                strerror(EISDIR));
        return nb_error_set(err, NB_EIO, path, 0, "cannot open: %s",
                            strerror(EISDIR));
    }
    char *real = in_memory ? NULL : realpath(path, NULL);
    if (!real)
        real = strdup(path);
    if (!real) {
        fclose(fp);
        return nb_error_oom(err);
    }
    for (int i = 0; i < ctx->depth; i++)
        if (!strcmp(ctx->stack_real[i], real)) {
            char chain[600];
            size_t n = 0;
            chain[0] = '\0';
            for (int j = i; j < ctx->depth; j++)
                n += (size_t)snprintf(chain + (n < sizeof chain ? n : sizeof chain - 1),
                                      n < sizeof chain ? sizeof chain - n : 1,
                                      "%s -> ", ctx->stack_path[j]);
            snprintf(chain + (n < sizeof chain ? n : sizeof chain - 1),
                     n < sizeof chain ? sizeof chain - n : 1, "%s", path);
            free(real);
            fclose(fp);
            return nb_error_set(err, NB_EINVAL, from_file, from_line,
                                "include cycle: %s", chain);
        }
    if (ctx->depth == NB_INI_MAX_DEPTH) {
        free(real);
        fclose(fp);
        return nb_error_set(err, NB_EINVAL, from_file, from_line,
                            "includes nested more than %d deep",
                            NB_INI_MAX_DEPTH);
    }
    ctx->stack_path[ctx->depth] = path;
    ctx->stack_real[ctx->depth] = real;
    ctx->depth++;
    int rc = parse_lines(ctx, fp, path, ctx->next_id++, err);
    ctx->depth--;
    free(real);
    fclose(fp);
    return rc;
}

int nb_ini_parse(const char *path, nb_ini_handler handler, void *user,
                 struct nb_error *err)
{
    struct ini_ctx ctx = {.handler = handler, .user = user};
    return parse_file(&ctx, path, NULL, 0, err);
}

int nb_ini_parse_text(const char *name, const char *text, nb_ini_handler handler,
                      void *user, struct nb_error *err)
{
    struct ini_ctx ctx = {.handler = handler, .user = user, .text = text};
    return parse_file(&ctx, name, NULL, 0, err);
}

