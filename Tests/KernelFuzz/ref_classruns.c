// Byte-by-byte reference for classruns.c: the semantics, written as plainly as possible.
#include "ref_classruns.h"

#include <string.h>

void ref_classruns_init(ref_classruns *s, const uint8_t run[256], const uint8_t counted[256], uint64_t min_length,
                        uint64_t min_count, uint64_t max_run, uint64_t overlap) {
    memset(s, 0, sizeof *s);
    for (int b = 0; b < 256; b++) {
        s->run[b] = run[b] != 0;
        s->counted[b] = counted[b] != 0;
    }
    s->min_length = min_length;
    s->min_count = min_count;
    s->max_run = max_run;
    s->overlap = overlap;
}

static int qualifies(const ref_classruns *s, uint64_t end) {
    return s->qualified || (end - s->window_start >= s->min_length && s->count >= s->min_count);
}

void ref_classruns_scan(ref_classruns *s, const uint8_t *bytes, size_t n, uint64_t offset, classruns_window_fn fn, void *ctx) {
    for (size_t i = 0; i < n; i++) {
        uint64_t pos = offset + i;
        uint8_t b = bytes[i];
        if (!s->run[b]) {
            if (s->open) ref_classruns_finish(s, pos, fn, ctx);
            continue;
        }
        if (!s->open) {
            s->open = 1;
            s->window_start = pos;
            s->accept_from = pos;
            s->count = s->counted[b];
            s->qualified = 0;
        } else if (pos - s->window_start >= s->max_run) {  // cut at pos
            if (qualifies(s, pos)) fn(ctx, s->window_start, pos, s->accept_from);
            s->window_start = pos - s->overlap;
            s->accept_from = pos + 1;
            s->qualified = 1;
        } else {
            s->count += s->counted[b];
        }
    }
}

void ref_classruns_finish(ref_classruns *s, uint64_t position, classruns_window_fn fn, void *ctx) {
    if (s->open && qualifies(s, position)) fn(ctx, s->window_start, position, s->accept_from);
    s->open = 0;
    s->window_start = s->accept_from = s->count = 0;
    s->qualified = 0;
}

void ref_classruns_peek(const ref_classruns *s, uint64_t position, classruns_window_fn fn, void *ctx) {
    if (s->open && qualifies(s, position)) fn(ctx, s->window_start, position, s->accept_from);
}
