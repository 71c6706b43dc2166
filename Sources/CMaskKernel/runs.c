// Digit-run finder (see runs.h): exactly DigitRunFinder.swift, over 64-byte blocks.
//
// Every block becomes three bitmasks (bit i = byte i): D (digit), R (run byte: digit or one of
// ` .-/()+`) and T (dot). The walk then jumps with tzcnt from run start to run end, counting the
// digits and dots of each stretch with popcount; a cut of a long run is found arithmetically
// (the first run byte at or past window_start + max_run) instead of byte by byte.

#include "runs.h"

#include <string.h>

#include "kernel_select.h"

#if defined(__x86_64__) || defined(_M_X64)
#define RUNS_X86 1
#include <immintrin.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define RUNS_INLINE static inline __attribute__((always_inline))
#define RUNS_NOINLINE static __attribute__((noinline))
#else
#define RUNS_INLINE static inline
#define RUNS_NOINLINE static
#endif

// MARK: - Parameters and state

int runs_init(runs_state *s, uint64_t min_digits, uint64_t max_run, uint64_t overlap, uint64_t dotted_min_digits) {
    memset(s, 0, sizeof(*s));
    if (max_run == 0 || overlap >= max_run) return 0;
    s->min_digits = min_digits;
    s->max_run = max_run;
    s->overlap = overlap;
    s->dotted_min_digits = dotted_min_digits;
    return 1;
}

void runs_reset(runs_state *s) {
    s->in_run = 0;
    s->window_start = 0;
    s->accept_from = 0;
    s->digits = 0;
    s->dots = 0;
}

RUNS_INLINE int qualifies(const runs_state *s, uint64_t digits, uint64_t dots) {
    return digits >= s->min_digits || (s->dotted_min_digits != 0 && digits >= s->dotted_min_digits && dots >= 3);
}

int runs_finish(runs_state *s, uint64_t position, runs_window_fn fn, void *ctx) {
    int reported = 0;
    if (s->in_run && qualifies(s, s->digits, s->dots)) {
        fn(ctx, s->window_start, position, s->accept_from);
        reported = 1;
    }
    runs_reset(s);
    return reported;
}

int runs_peek(const runs_state *s, uint64_t position, runs_window_fn fn, void *ctx) {
    if (s->in_run && qualifies(s, s->digits, s->dots)) {
        fn(ctx, s->window_start, position, s->accept_from);
        return 1;
    }
    return 0;
}

// MARK: - The walk over one block

/// The open run, in registers for the length of one call.
typedef struct {
    uint64_t in_run, ws, af, digits, dots;
    uint64_t min_digits, max_run, overlap, dotted;  // dotted: UINT64_MAX when off
    unsigned n_shifts;    // Y &= Y >> shifts[j] turns "in a run" into "starts min_len run bytes"
    unsigned shifts[7];
} walk_t;

/// The fewest bytes a qualifying run holds: min_digits digits, or dotted_min_digits digits and
/// three dots. Capped to 64 (no run that starts and ends in one block is that long).
static void set_min_len(walk_t *w) {
    uint64_t len = w->min_digits;
    if (w->dotted != ~(uint64_t)0 && w->dotted + 3 < len) len = w->dotted + 3;
    if (len < 1) len = 1;
    if (len > 64) len = 64;
    unsigned have = 1;  // Y bit i: bytes i ... i + have - 1 are in runs
    w->n_shifts = 0;
    while (have < len) {
        unsigned sh = have < len - have ? have : (unsigned)(len - have);
        w->shifts[w->n_shifts++] = sh;
        have += sh;
    }
}

RUNS_INLINE int walk_qualifies(const walk_t *w) {
    return w->digits >= w->min_digits || (w->digits >= w->dotted && w->dots >= 3);
}

#define POPCNT(x) ((uint64_t)__builtin_popcountll(x))
#define CTZ(x) ((unsigned)__builtin_ctzll(x))

/// Goes on with the open run from `p` (< n) in a block of `n` (1...64) bytes at absolute offset
/// `base`: `D` digits, `NR` non-run bytes (only among the `n` valid ones), `T` dots; bits at and
/// past `n` are zero in D, NR and T. Reports the cuts and the end of the run; returns the position
/// after the byte that ended it, or `n` when the run goes on into the next block.
RUNS_INLINE unsigned continue_run(walk_t *w, uint64_t D, uint64_t NR, uint64_t T, unsigned n, uint64_t base,
                                  unsigned p, runs_window_fn fn, void *ctx) {
    for (;;) {
        uint64_t from = ~(uint64_t)0 << p;
        uint64_t brk = NR & from;
        unsigned e = brk ? CTZ(brk) : n;    // run bytes are [p, e)
        uint64_t cut = w->ws + w->max_run;  // the first run byte at or past it is cut
        if (cut < base + p) cut = base + p;  // only when offsets jump between calls
        if (cut < base + e) {
            unsigned c = (unsigned)(cut - base);
            uint64_t seg = from & (c >= 63 ? ~(uint64_t)0 : (((uint64_t)2 << c) - 1));  // [p, c]
            w->digits += POPCNT(D & seg);
            w->dots += POPCNT(T & seg);
            if (walk_qualifies(w)) fn(ctx, w->ws, cut, w->af);
            w->ws = cut - w->overlap;
            w->af = cut + 1;
            w->digits = w->min_digits;
            p = c + 1;
            if (p >= n) return n;
            continue;
        }
        uint64_t seg = from & (e >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << e) - 1));  // [p, e)
        w->digits += POPCNT(D & seg);
        w->dots += POPCNT(T & seg);
        if (e >= n) return n;  // the run goes on into the next block
        if (walk_qualifies(w)) fn(ctx, w->ws, base + e, w->af);
        w->in_run = 0;
        w->digits = 0;
        w->dots = 0;
        return e + 1;
    }
}

/// Any block (a partial one, or any when max_run < 64): run by run.
RUNS_INLINE void walk_block(walk_t *w, uint64_t D, uint64_t NR, uint64_t T, unsigned n, uint64_t base,
                            runs_window_fn fn, void *ctx) {
    unsigned p = 0;
    while (p < n) {
        if (!w->in_run) {
            uint64_t next = D & (~(uint64_t)0 << p);
            if (!next) return;
            p = CTZ(next);
            w->in_run = 1;
            w->ws = base + p;
            w->af = base + p;
            w->digits = 1;
            w->dots = 0;
            p++;  // the first digit is never a cut
            continue;
        }
        p = continue_run(w, D, NR, T, n, base, p, fn, ctx);
    }
}

/// A whole block when max_run >= 64 (so a run that starts in the block is never cut in it): the
/// open run first, then all runs that start here at once. A run is the stretch of run bytes from
/// a digit to the next non-run byte; with S the digits, the run bytes reached from a digit are
/// R & ~(R + S) | S (the carry of adding a run's first digit runs through the run). Only runs of
/// at least `w->min_len` bytes can qualify; the others are dropped in bulk.
RUNS_INLINE void walk_block_bulk(walk_t *w, uint64_t D, uint64_t R, uint64_t T, uint64_t base,
                                 runs_window_fn fn, void *ctx) {
    unsigned p = 0;
    if (w->in_run) {
        p = continue_run(w, D, ~R, T, 64, base, 0, fn, ctx);
        if (p >= 64) return;
    }
    uint64_t from = ~(uint64_t)0 << p;
    uint64_t S = D & from;
    if (!S) return;
    uint64_t Rp = R & from;
    uint64_t M = (Rp & ~(Rp + S)) | S;  // bytes in runs that start at or after p
    uint64_t starts = M & ~(M << 1);
    if (M >> 63) {  // the last run goes on into the next block
        unsigned s = 63u - (unsigned)__builtin_clzll(starts);
        w->in_run = 1;
        w->ws = base + s;
        w->af = base + s;
        w->digits = POPCNT(D >> s);
        w->dots = POPCNT(T >> s);
        M &= ((uint64_t)1 << s) - 1;  // s > 0 here unless the run fills the block
        starts &= ((uint64_t)1 << s) - 1;
        if (!starts) return;
    }
    // Y bit i: bytes i ... i + min_len - 1 are all in runs; a run starting at i is long enough.
    uint64_t Y = M;
    for (unsigned j = 0; j < w->n_shifts; j++) Y &= Y >> w->shifts[j];
    uint64_t ls = starts & Y;          // starts of runs long enough
    if (!ls) return;
    uint64_t le = (M + ls) & ~M;        // their ends (the carry leaves each run at its end byte)
    uint8_t s_buf[32], e_buf[32];       // the runs that qualify
    unsigned k = 0;
    uint64_t md = w->min_digits, dm = w->dotted;
    do {
        unsigned s = CTZ(ls), e = CTZ(le);
        ls &= ls - 1;
        le &= le - 1;
        uint64_t seg = ((uint64_t)1 << e) - ((uint64_t)1 << s);
        uint64_t digits = POPCNT(D & seg), dots = POPCNT(T & seg);
        s_buf[k] = (uint8_t)s;
        e_buf[k] = (uint8_t)e;
        k += (digits >= md) | ((digits >= dm) & (dots >= 3));
    } while (le);
    for (unsigned i = 0; i < k; i++) fn(ctx, base + s_buf[i], base + e_buf[i], base + s_buf[i]);
}

/// Blocks classified per batch: the classifier fills the masks of a batch (vector code only),
/// then the walk reads them (scalar code only, with the callbacks), so no vector register lives
/// across a callback.
#define BATCH 64

/// The scan loop, instantiated once per classifier: CLASSIFY_BATCH(ptr, blocks, D, R, T) fills
/// the three masks of `blocks` (1...BATCH) 64-byte blocks at ptr.
#define DEFINE_SCAN(NAME, ATTR, CLASSIFY_BATCH)                                                        \
    ATTR static void NAME(runs_state *s, const uint8_t *data, size_t length, uint64_t offset,          \
                          runs_window_fn fn, void *ctx) {                                             \
        walk_t w;                                                                                     \
        w.in_run = s->in_run;                                                                         \
        w.ws = s->window_start;                                                                       \
        w.af = s->accept_from;                                                                        \
        w.digits = s->digits;                                                                         \
        w.dots = s->dots;                                                                             \
        w.min_digits = s->min_digits;                                                                 \
        w.max_run = s->max_run;                                                                       \
        w.overlap = s->overlap;                                                                       \
        w.dotted = s->dotted_min_digits ? s->dotted_min_digits : ~(uint64_t)0;                        \
        set_min_len(&w);                                                                              \
        uint64_t Ds[BATCH], Rs[BATCH], Ts[BATCH];                                                     \
        size_t i = 0;                                                                                 \
        while (length - i >= 64) {                                                                    \
            size_t blocks = (length - i) / 64;                                                        \
            if (blocks > BATCH) blocks = BATCH;                                                       \
            CLASSIFY_BATCH(data + i, blocks, Ds, Rs, Ts);                                             \
            if (w.max_run >= 64) {                                                                    \
                for (size_t b = 0; b < blocks; b++) {                                                 \
                    if (!w.in_run && !Ds[b]) continue;                                                \
                    walk_block_bulk(&w, Ds[b], Rs[b], Ts[b], offset + i + 64 * b, fn, ctx);           \
                }                                                                                     \
            } else {                                                                                  \
                for (size_t b = 0; b < blocks; b++) {                                                 \
                    if (!w.in_run && !Ds[b]) continue;                                                \
                    walk_block(&w, Ds[b], ~Rs[b], Ts[b], 64, offset + i + 64 * b, fn, ctx);           \
                }                                                                                     \
            }                                                                                         \
            i += 64 * blocks;                                                                         \
        }                                                                                             \
        if (i < length) {                                                                             \
            unsigned n = (unsigned)(length - i);                                                      \
            uint8_t buf[64];                                                                          \
            memset(buf, 0, sizeof buf);                                                               \
            memcpy(buf, data + i, n);                                                                 \
            CLASSIFY_BATCH(buf, 1, Ds, Rs, Ts);                                                       \
            uint64_t valid = ((uint64_t)1 << n) - 1; /* n < 64 */                                    \
            walk_block(&w, Ds[0] & valid, ~Rs[0] & valid, Ts[0] & valid, n, offset + i, fn, ctx);    \
        }                                                                                             \
        s->in_run = w.in_run;                                                                         \
        s->window_start = w.ws;                                                                       \
        s->accept_from = w.af;                                                                        \
        s->digits = w.digits;                                                                         \
        s->dots = w.dots;                                                                             \
        if (!w.in_run) {                                                                              \
            s->window_start = 0;                                                                      \
            s->accept_from = 0;                                                                       \
        }                                                                                             \
    }

// MARK: - Classifiers
//
// Run bytes are 0x20 0x28 0x29 0x2B 0x2D 0x2E 0x2F (separators) and 0x30-0x39 (digits). Two
// nibble lookups, ANDed: bit 0 = separator (high nibble 2), bit 1 = digit (high nibble 3),
// bit 2 = dot (0x2E).
//                       lo:  0  1  2  3  4  5  6  7  8  9  A  B  C  D  E  F
#define RUNS_LO_TABLE 3, 2, 2, 2, 2, 2, 2, 2, 3, 3, 0, 1, 0, 1, 5, 1
#define RUNS_HI_TABLE 0, 0, 5, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0

/// The 0x80 bits of the eight bytes of `m` (nothing else set) as eight bits, byte i to bit i.
static inline uint64_t swar_gather(uint64_t m) {
    return ((m >> 7) * 0x0102040810204080ull) >> 56;
}

/// Portable (SWAR, eight bytes at a time); no byte sum carries into the next byte.
static void classify_portable(const uint8_t *p, size_t blocks, uint64_t *D, uint64_t *R, uint64_t *T) {
    const uint64_t H = 0x8080808080808080ull, L7 = 0x7F7F7F7F7F7F7F7Full, ONE = 0x0101010101010101ull;
    for (size_t b = 0; b < blocks; b++, p += 64) {
        uint64_t d = 0, r = 0, t = 0;
        for (unsigned k = 0; k < 8; k++) {
            uint64_t x;
            memcpy(&x, p + 8 * k, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            x = __builtin_bswap64(x);
#endif
            uint64_t a = x & L7;         // each byte's low seven bits
            uint64_t ascii = ~x & H;     // the byte is below 0x80
#define GE(c) ((a + (0x80 - (uint64_t)(c)) * ONE) & H)
#define EQ(c) (~((a ^ (uint64_t)(c) * ONE) + L7) & H)
            uint64_t digit = GE(0x30) & ~GE(0x3A) & ascii;
            uint64_t sep = ((GE(0x28) & ~GE(0x30) & ~EQ(0x2A) & ~EQ(0x2C)) | EQ(0x20)) & ascii;  // ()+-./ and space
            uint64_t dot = EQ(0x2E) & ascii;
#undef GE
#undef EQ
            d |= swar_gather(digit) << (8 * k);
            r |= swar_gather(digit | sep) << (8 * k);
            t |= swar_gather(dot) << (8 * k);
        }
        D[b] = d;
        R[b] = r;
        T[b] = t;
    }
}

DEFINE_SCAN(scan_portable, , classify_portable)

#ifdef RUNS_X86

#define ATTR_SSSE3 __attribute__((target("ssse3,popcnt")))
#define ATTR_AVX2 __attribute__((target("avx2,bmi,bmi2,popcnt")))
#define ATTR_AVX512 __attribute__((target("avx512f,avx512bw,bmi,bmi2,popcnt")))

ATTR_SSSE3 RUNS_NOINLINE void classify_ssse3(const uint8_t *p, size_t blocks, uint64_t *Ds, uint64_t *Rs, uint64_t *Ts) {
    const __m128i lo_t = _mm_setr_epi8(RUNS_LO_TABLE);
    const __m128i hi_t = _mm_setr_epi8(RUNS_HI_TABLE);
    const __m128i nib = _mm_set1_epi8(0x0F);
    for (size_t b = 0; b < blocks; b++, p += 64) {
    uint64_t d = 0, r = 0, t = 0;
    for (int q = 0; q < 4; q++) {
        __m128i x = _mm_loadu_si128((const __m128i *)(p + 16 * q));
        __m128i c = _mm_and_si128(_mm_shuffle_epi8(lo_t, _mm_and_si128(x, nib)),
                                  _mm_shuffle_epi8(hi_t, _mm_and_si128(_mm_srli_epi16(x, 4), nib)));
        uint64_t zero = (uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(c, _mm_setzero_si128()));
        d |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_slli_epi16(c, 6)) << (16 * q);
        t |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_slli_epi16(c, 5)) << (16 * q);
        r |= (~zero & 0xFFFF) << (16 * q);
    }
    Ds[b] = d;
    Rs[b] = r;
    Ts[b] = t;
    }
}

ATTR_AVX2 RUNS_NOINLINE void classify_avx2(const uint8_t *p, size_t blocks, uint64_t *Ds, uint64_t *Rs, uint64_t *Ts) {
    const __m256i lo_t = _mm256_setr_epi8(RUNS_LO_TABLE, RUNS_LO_TABLE);
    const __m256i hi_t = _mm256_setr_epi8(RUNS_HI_TABLE, RUNS_HI_TABLE);
    const __m256i nib = _mm256_set1_epi8(0x0F);
    for (size_t b = 0; b < blocks; b++, p += 64) {
    __m256i x0 = _mm256_loadu_si256((const __m256i *)p);
    __m256i x1 = _mm256_loadu_si256((const __m256i *)(p + 32));
    __m256i c0 = _mm256_and_si256(_mm256_shuffle_epi8(lo_t, _mm256_and_si256(x0, nib)),
                                  _mm256_shuffle_epi8(hi_t, _mm256_and_si256(_mm256_srli_epi16(x0, 4), nib)));
    __m256i c1 = _mm256_and_si256(_mm256_shuffle_epi8(lo_t, _mm256_and_si256(x1, nib)),
                                  _mm256_shuffle_epi8(hi_t, _mm256_and_si256(_mm256_srli_epi16(x1, 4), nib)));
    __m256i z = _mm256_setzero_si256();
    uint64_t zero = (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(c0, z)) |
                    (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(c1, z)) << 32;
    Ds[b] = (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_slli_epi16(c0, 6)) |
            (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_slli_epi16(c1, 6)) << 32;
    Ts[b] = (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_slli_epi16(c0, 5)) |
            (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_slli_epi16(c1, 5)) << 32;
    Rs[b] = ~zero;
    }
}

ATTR_AVX512 RUNS_NOINLINE void classify_avx512(const uint8_t *p, size_t blocks, uint64_t *Ds, uint64_t *Rs, uint64_t *Ts) {
    const __m512i lo_t = _mm512_broadcast_i32x4(_mm_setr_epi8(RUNS_LO_TABLE));
    const __m512i hi_t = _mm512_broadcast_i32x4(_mm_setr_epi8(RUNS_HI_TABLE));
    const __m512i nib = _mm512_set1_epi8(0x0F);
    for (size_t b = 0; b < blocks; b++, p += 64) {
    __m512i x = _mm512_loadu_si512((const void *)p);
    __m512i c = _mm512_and_si512(_mm512_shuffle_epi8(lo_t, _mm512_and_si512(x, nib)),
                                 _mm512_shuffle_epi8(hi_t, _mm512_and_si512(_mm512_srli_epi16(x, 4), nib)));
    Rs[b] = (uint64_t)_mm512_test_epi8_mask(c, c);
    Ds[b] = (uint64_t)_mm512_test_epi8_mask(c, _mm512_set1_epi8(2));
    Ts[b] = (uint64_t)_mm512_test_epi8_mask(c, _mm512_set1_epi8(4));
    }
}

DEFINE_SCAN(scan_ssse3, ATTR_SSSE3, classify_ssse3)
DEFINE_SCAN(scan_avx2, ATTR_AVX2, classify_avx2)
DEFINE_SCAN(scan_avx512, ATTR_AVX512, classify_avx512)

#endif  // RUNS_X86

// MARK: - Dispatch

typedef void (*scan_fn)(runs_state *, const uint8_t *, size_t, uint64_t, runs_window_fn, void *);

/// The scan function of each kernel (NULL where this build has none).
static const scan_fn kernels[MK_KERNEL_COUNT] = {
    scan_portable,
#ifdef RUNS_X86
    scan_ssse3, scan_avx2, scan_avx512,
#endif
};

MK_DEFINE_KERNEL_DISPATCH(runs)

void runs_scan(runs_state *s, const uint8_t *data, size_t length, uint64_t offset, runs_window_fn fn, void *ctx) {
    if (length == 0) return;
    choose()(s, data, length, offset, fn, ctx);
}
