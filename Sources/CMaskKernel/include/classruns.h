#ifndef SLUICE_CLASSRUNS_H
#define SLUICE_CLASSRUNS_H

// A streaming finder of class runs, the generic sibling of runs.c. A run is a maximal sequence of
// bytes of the run class (any of them may start it). When a run ends at `end` (one past its last
// byte) the window (window_start, end, accept_from) is reported if it qualifies:
//     end - window_start >= min_length  AND  count >= min_count,
// where `count` is the number of bytes of the counted class among the window's bytes
// [window_start, end). A run is cut at the first run byte `p` with `p - window_start >= max_run`:
// the window (window_start, p, accept_from) is reported if it qualifies (the count covers
// [window_start, p), not p), and the next window starts at `p - overlap`, accepts from `p + 1` and
// counts as qualified from then on (whatever its length and count) until the run ends -- the
// equivalent of runs.c setting its digit count to min_digits after a cut. The windows depend on
// the bytes alone, not on how the stream is cut into calls.
//
// Classification: the two classes are split at init into "nibble rectangles" (sets {hi nibbles}
// x {lo nibbles}); when they need at most 8 rectangles together (true for the IPv6 and IBAN
// configurations and for any class that is a union of a few ranges), 64-byte blocks are
// classified with two pshufb lookups (AVX-512BW, AVX2 or SSSE3, chosen once at run time);
// otherwise, and on non-x86, a 256-entry table is used byte by byte. The run walk uses
// tzcnt/popcount over 64-byte blocks. No allocation, no I/O, no global mutable state besides
// the one-time dispatch choice.

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Receives one window: absolute offsets, `start <= accept_from`, `end` one past the last byte.
typedef void (*classruns_window_fn)(void *ctx, uint64_t start, uint64_t end, uint64_t accept_from);

/// Parameters (classruns_init) and the open run (classruns_reset zeroes the run fields).
typedef struct {
    // Parameters.
    uint64_t min_length;   ///< a window must span at least this many bytes
    uint64_t min_count;    ///< ... and hold at least this many bytes of the counted class
    uint64_t max_run;      ///< >= 1
    uint64_t overlap;      ///< < max_run
    uint8_t table[256];    ///< bit 0: run class; bit 1: counted class (only set on run bytes)
    uint8_t lo_table[16];  ///< nibble tables: byte b is in the run class iff
    uint8_t hi_table[16];  ///<   lo_table[b & 15] & hi_table[b >> 4] & run_bits (same for count_bits)
    uint8_t run_bits, count_bits;
    uint8_t nibble_ok;     ///< 1 when the nibble tables represent both classes exactly
    uint8_t pad_[5];
    // The open run (all zero when no run is open).
    uint64_t in_run;        ///< 1 when a run is open
    uint64_t window_start;  ///< start of the open run or of its current window
    uint64_t accept_from;   ///< first match end the open window is responsible for
    uint64_t count;         ///< counted-class bytes in the open window (before any cut)
    uint64_t qualified;     ///< 1 after a cut: the open window qualifies whatever its length/count
} classruns_state;

/// Sets the parameters and clears the run. `run_class[b]` / `counted_class[b]` non-zero: byte b
/// is a run byte / a counted byte (a counted byte that is not a run byte is never counted).
/// Returns 0 (and leaves `s` zeroed) when `max_run == 0` or `overlap >= max_run`.
int classruns_init(classruns_state *s, const uint8_t run_class[256], const uint8_t counted_class[256],
                   uint64_t min_length, uint64_t min_count, uint64_t max_run, uint64_t overlap);

/// IPv6: run class [0-9A-Fa-f:.], counted ':', min_count 2, min_length 3.
int classruns_init_ipv6(classruns_state *s, uint64_t max_run, uint64_t overlap);

/// IBAN: run class [A-Z0-9 ], counted [0-9], min_count 2, min_length 15.
int classruns_init_iban(classruns_state *s, uint64_t max_run, uint64_t overlap);

/// Clears the open run (not the parameters): start of a new stream.
void classruns_reset(classruns_state *s);

/// Scans `length` bytes that start at absolute offset `offset`, reporting finished windows in order.
void classruns_scan(classruns_state *s, const uint8_t *data, size_t length, uint64_t offset,
                    classruns_window_fn fn, void *ctx);

/// Ends the open run at `position`: reports it if it qualifies, then clears it. Returns 1 when a
/// window was reported.
int classruns_finish(classruns_state *s, uint64_t position, classruns_window_fn fn, void *ctx);

/// Reports the open run up to `position` without ending it. Returns 1 when a window was reported.
int classruns_peek(const classruns_state *s, uint64_t position, classruns_window_fn fn, void *ctx);

/// "avx512bw", "avx2", "ssse3" or "portable": the kernel classruns_scan uses for states whose
/// classes factor by nibbles (`nibble_ok`); other states always use the portable table path.
const char *classruns_kernel_name(void);

/// Forces a kernel (tests, benchmarks); returns 0 when this CPU cannot run it.
/// Not thread-safe: call before any scan.
int classruns_force_kernel(const char *name);

#ifdef __cplusplus
}
#endif

#endif
