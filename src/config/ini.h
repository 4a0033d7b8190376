/* src/config/ini.h - a small strict INI reader with line numbers (ini.c).
 *
 * `[section]`, `key = value`, comment lines starting with ';' or '#',
 * inline comments (';' or '#' preceded by whitespace), continuation
 * lines (a line starting with whitespace right after a key line, or
 * after its continuation lines, or comment lines among them, is
 * appended to the value with one space), CRLF line ends, a UTF-8 BOM.
 * A NUL byte, a line longer than NB_INI_MAX_LINE bytes or a file
 * larger than NB_INI_MAX_FILE bytes is an error naming the line (so is
 * a directory given as a file).
 * `include = FILE` (in any section or before the first) reads FILE
 * in place, its path relative to the including file;
 * include cycles are errors.  The reader knows no keys: the handler
 * does.  A blank line ends a value.
 *
 * Functions follow core/error.h: 0 or a negative enum nb_status, with err
 * (when non-NULL) filled. */
#ifndef NB_HARNESS_INI_H
#define NB_HARNESS_INI_H

#include <stddef.h>

#include "core/error.h"

/* Limits of the reader: the longest line (its '\n' included) and the
 * largest file, in bytes. */
#define NB_INI_MAX_LINE 65536
#define NB_INI_MAX_FILE (16L << 20)

/* One `key = value` assignment as the reader delivers it.  value is the
 * trimmed value with inline comments removed and continuation lines
 * appended (joined by one space).  Segment j of the value starts at byte
 * seg_off[j] and comes from line seg_line[j] (segment 0 is the key line);
 * nb_ini_item_line maps a byte offset to its line.  Everything is valid
 * only during the handler call. */
struct nb_ini_item {
    const char *file;    /* path as opened (include paths joined) */
    int file_id;         /* distinct for every file read, also re-reads */
    int line;            /* line of the key */
    const char *section; /* "" before the first [section] */
    int section_line;
    const char *key;
    const char *value;
    int n_segs;
    const size_t *seg_off;
    const int *seg_line;
};

/* Returns the line of the value byte at offset off (clamped). */
int nb_ini_item_line(const struct nb_ini_item *it, size_t off);

/* Called for every assignment, in file order with includes expanded, and
 * with key NULL and value NULL for every `[section]` header (so a handler
 * can reject unknown sections at their line).  Returns 0 to continue or a
 * negative status, having filled err, to stop the parse. */
typedef int (*nb_ini_handler)(void *user, const struct nb_ini_item *it,
                              struct nb_error *err);

/* Reads path.  Returns 0, NB_EIO when path (or an included file) cannot be
 * read, NB_EINVAL for a syntax error, an include cycle or whatever the
 * handler returned; err names the file and line. */
int nb_ini_parse(const char *path, nb_ini_handler handler, void *user,
                 struct nb_error *err);

/* The same for a config held in memory: text is read as the file called
 * name (the name errors give; an include in text is relative to the
 * working directory unless name has a directory part). */
int nb_ini_parse_text(const char *name, const char *text, nb_ini_handler handler,
                      void *user, struct nb_error *err);

#endif
