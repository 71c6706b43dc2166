#ifndef SLUICE_RUNS_H
#define SLUICE_RUNS_H

// A C digit-run finder with exactly the semantics of DigitRunFinder.swift: it finds runs that
// start with a digit and go on through digits and the separators ` .-/()+`, and reports a
// window (start, end, accept_from) when a run ends, if the run holds at least `min_digits`
// digits, or (when `dotted_min_digits` is not 0) at least `dotted_min_digits` digits and at
// least three dots. A run longer than `max_run` is cut at the first run byte `p` with
// `p - window_start >= max_run`: the window (window_start, p, accept_from) is reported if it
// qualifies, and the next window starts at `p - overlap`, accepts from `p + 1` and counts as
// holding `min_digits` digits (dots are not reset). The windows depend on the bytes alone, not on
// how the stream is cut into calls.
//
// Classification is SIMD (AVX-512BW, AVX2, SSSE3 or portable, chosen once at run time), the run
// walk uses tzcnt/popcount over 64-byte blocks. No allocation, no I/O, no global mutable state
// besides the one-time dispatch choice.

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Receives one window: absolute offsets, `start <= accept_from`, `end` one past the last byte.
typedef void (*runs_window_fn)(void *ctx, uint64_t start, uint64_t end, uint64_t accept_from);

/// Parameters and the open run. Set up with runs_init; runs_reset clears the run (not the
/// parameters). The run fields are all zero when no run is open.
typedef struct {
    // Parameters (runs_init).
    uint64_t min_digits;         ///< Swift minDigits (the engine: 7)
    uint64_t max_run;            ///< Swift maxRun (>= 1; the engine: 256)
    uint64_t overlap;            ///< Swift overlap (< max_run)
    uint64_t dotted_min_digits;  ///< Swift dottedMinDigits; 0 = nil (off)
    // The open run (runs_reset zeroes these).
    uint64_t in_run;             ///< 1 when a run is open (Swift windowStart >= 0)
    uint64_t window_start;       ///< start of the open run or of its current window
    uint64_t accept_from;        ///< first match end the open window is responsible for
    uint64_t digits;             ///< digits counted for the open window
    uint64_t dots;               ///< dots counted for the open run (not reset by a cut)
} runs_state;

/// Sets the parameters and clears the run. Returns 0 (and leaves `s` zeroed) when
/// `max_run == 0` or `overlap >= max_run` (Swift: precondition(overlap < maxRun)).
int runs_init(runs_state *s, uint64_t min_digits, uint64_t max_run, uint64_t overlap, uint64_t dotted_min_digits);

/// Clears the open run (Swift reset()): start of a new stream.
void runs_reset(runs_state *s);

/// Scans `length` bytes that start at absolute offset `offset` (Swift scan(_:offset:into:)),
/// reporting finished windows in order.
void runs_scan(runs_state *s, const uint8_t *data, size_t length, uint64_t offset, runs_window_fn fn, void *ctx);

/// Ends the open run at `position` (Swift finish(at:)): reports it if it qualifies, then
/// clears it. Returns 1 when a window was reported.
int runs_finish(runs_state *s, uint64_t position, runs_window_fn fn, void *ctx);

/// Reports the open run up to `position` without ending it (Swift peek(at:)). Returns 1 when a
/// window was reported.
int runs_peek(const runs_state *s, uint64_t position, runs_window_fn fn, void *ctx);

/// "avx512bw", "avx2", "ssse3" or "portable": the classifier runs_scan uses.
const char *runs_kernel_name(void);

/// Forces a classifier (tests, benchmarks); returns 0 when this CPU cannot run it.
/// Not thread-safe: call before any scan.
int runs_force_kernel(const char *name);

#ifdef __cplusplus
}
#endif

#endif
