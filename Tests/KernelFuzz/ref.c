// A line-by-line C port of DigitRunFinder.swift: the reference the fast finder (runs.c) must match.
#include "ref.h"

#include <assert.h>

static uint8_t table[256];
static int table_ready = 0;

static void build_table(void) {
    if (table_ready) return;
    for (int b = '0'; b <= '9'; b++) table[b] = 1;
    for (const char *p = " .-/()+"; *p; p++) table[(uint8_t)*p] = 2;
    table_ready = 1;
}

void ref_init(ref_state *s, int64_t min_digits, int64_t max_run, int64_t overlap, int64_t dotted_min_digits) {
    assert(overlap < max_run);  // precondition(overlap < maxRun)
    build_table();
    s->min_digits = min_digits;
    s->max_run = max_run;
    s->overlap = overlap;
    s->dotted_min_digits = dotted_min_digits > 0 ? dotted_min_digits : -1;
    ref_reset(s);
}

static int qualifies(const ref_state *s) {
    return s->digits >= s->min_digits || (s->dotted_min_digits >= 0 && s->digits >= s->dotted_min_digits && s->dots >= 3);
}

void ref_reset(ref_state *s) {
    s->window_start = -1;
    s->accept_from = -1;
    s->digits = 0;
    s->dots = 0;
}

void ref_scan(ref_state *s, const uint8_t *base, size_t count, int64_t offset, runs_window_fn fn, void *ctx) {
    if (!base) return;
    size_t index = 0;
    while (index < count) {
        uint8_t kind = table[base[index]];
        if (s->window_start < 0) {
            if (kind == 1) {
                s->window_start = offset + (int64_t)index;
                s->accept_from = s->window_start;
                s->digits = 1;
                s->dots = 0;
            }
            index += 1;
            continue;
        }
        int64_t position = offset + (int64_t)index;
        if (kind == 0) {
            ref_finish(s, position, fn, ctx);
        } else {
            if (kind == 1) s->digits += 1;
            else if (base[index] == '.') s->dots += 1;
            if (position - s->window_start >= s->max_run) {
                if (qualifies(s)) fn(ctx, (uint64_t)s->window_start, (uint64_t)position, (uint64_t)s->accept_from);
                s->window_start = position - s->overlap;
                s->accept_from = position + 1;
                s->digits = s->min_digits;
            }
        }
        index += 1;
    }
}

void ref_finish(ref_state *s, int64_t position, runs_window_fn fn, void *ctx) {
    if (s->window_start >= 0 && qualifies(s)) fn(ctx, (uint64_t)s->window_start, (uint64_t)position, (uint64_t)s->accept_from);
    s->window_start = -1;
    s->digits = 0;
    s->dots = 0;
}

void ref_peek(const ref_state *s, int64_t position, runs_window_fn fn, void *ctx) {
    if (s->window_start >= 0 && qualifies(s)) fn(ctx, (uint64_t)s->window_start, (uint64_t)position, (uint64_t)s->accept_from);
}
