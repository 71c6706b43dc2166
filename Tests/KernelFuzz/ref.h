#ifndef SLUICE_RUNS_REF_H
#define SLUICE_RUNS_REF_H
// Straightforward byte-by-byte C port of DigitRunFinder.swift (the reference for fuzz.c/bench.c).
#include <stddef.h>
#include <stdint.h>
#include "runs.h"

typedef struct {
    int64_t min_digits, max_run, overlap;
    int64_t dotted_min_digits;  // < 0: nil
    int64_t window_start;       // -1: no open run
    int64_t accept_from;
    int64_t digits, dots;
} ref_state;

void ref_init(ref_state *s, int64_t min_digits, int64_t max_run, int64_t overlap, int64_t dotted_min_digits /* 0 = nil */);
void ref_reset(ref_state *s);
void ref_scan(ref_state *s, const uint8_t *bytes, size_t count, int64_t offset, runs_window_fn fn, void *ctx);
void ref_finish(ref_state *s, int64_t position, runs_window_fn fn, void *ctx);
void ref_peek(const ref_state *s, int64_t position, runs_window_fn fn, void *ctx);
#endif
