// Class-run finder (see classruns.h), over 64-byte blocks.
//
// Every block becomes two bitmasks (bit i = byte i): R (run byte) and C (counted byte, a subset of
// R). The walk jumps with tzcnt from run start to run end, counting the counted bytes of each
// stretch with popcount; a cut of a long run is found arithmetically (the first run byte at or
// past window_start + max_run) instead of byte by byte. Same structure as runs.c.

#include "classruns.h"

#include <string.h>

#include "kernel_select.h"

#if defined(__x86_64__) || defined(_M_X64)
#define CR_X86 1
#include <immintrin.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CR_INLINE static inline __attribute__((always_inline))
#define CR_NOINLINE static __attribute__((noinline))
#else
#define CR_INLINE static inline
#define CR_NOINLINE static
#endif

// MARK: - Parameters and state

/// Splits the byte set `set` (bit `flag` of `table`) into nibble rectangles: for every high nibble
/// h, L_h = the low nibbles l with (h << 4 | l) in the set; every distinct non-empty L_h gets one
/// bit, set in hi_table for the high nibbles that share it and in lo_table for the low nibbles of
/// L_h. Returns the bits used, or -1 when the two classes together would need more than 8 bits.
static int factor(classruns_state *s, uint8_t flag, unsigned *next) {
    uint16_t L[16];
    for (int h = 0; h < 16; h++) {
        L[h] = 0;
        for (int l = 0; l < 16; l++)
            if (s->table[h << 4 | l] & flag) L[h] |= (uint16_t)(1u << l);
    }
    int bits = 0;
    uint8_t assigned[16] = {0};
    for (int h = 0; h < 16; h++) {
        if (!L[h] || assigned[h]) continue;
        if (*next >= 8) return -1;
        uint8_t bit = (uint8_t)(1u << (*next)++);
        bits |= bit;
        for (int g = h; g < 16; g++)
            if (L[g] == L[h]) {
                assigned[g] = 1;
                s->hi_table[g] |= bit;
            }
        for (int l = 0; l < 16; l++)
            if (L[h] >> l & 1) s->lo_table[l] |= bit;
    }
    return bits;
}

int classruns_init(classruns_state *s, const uint8_t run_class[256], const uint8_t counted_class[256],
                   uint64_t min_length, uint64_t min_count, uint64_t max_run, uint64_t overlap) {
    memset(s, 0, sizeof(*s));
    if (max_run == 0 || overlap >= max_run) return 0;
    s->min_length = min_length;
    s->min_count = min_count;
    s->max_run = max_run;
    s->overlap = overlap;
    for (int b = 0; b < 256; b++) {
        uint8_t r = run_class[b] != 0;
        s->table[b] = (uint8_t)(r | ((r && counted_class[b]) ? 2 : 0));
    }
    unsigned next = 0;
    int rb = factor(s, 1, &next);
    int cb = rb < 0 ? -1 : factor(s, 2, &next);
    s->nibble_ok = 0;
    if (rb >= 0 && cb >= 0) {
        s->run_bits = (uint8_t)rb;
        s->count_bits = (uint8_t)cb;
        s->nibble_ok = 1;
        for (int b = 0; b < 256; b++) {  // belt and braces: the nibble tables must equal the table
            uint8_t c = s->lo_table[b & 15] & s->hi_table[b >> 4];
            uint8_t t = (uint8_t)(((c & s->run_bits) != 0) | (((c & s->count_bits) != 0) << 1));
            if (t != s->table[b]) s->nibble_ok = 0;
        }
    }
    if (!s->nibble_ok) {
        memset(s->lo_table, 0, sizeof s->lo_table);
        memset(s->hi_table, 0, sizeof s->hi_table);
        s->run_bits = s->count_bits = 0;
    }
    return 1;
}

int classruns_init_ipv6(classruns_state *s, uint64_t max_run, uint64_t overlap) {
    uint8_t run[256] = {0}, counted[256] = {0};
    for (const char *p = "0123456789abcdefABCDEF:."; *p; p++) run[(uint8_t)*p] = 1;
    counted[':'] = 1;
    return classruns_init(s, run, counted, 3, 2, max_run, overlap);
}

int classruns_init_iban(classruns_state *s, uint64_t max_run, uint64_t overlap) {
    uint8_t run[256] = {0}, counted[256] = {0};
    for (int b = 'A'; b <= 'Z'; b++) run[b] = 1;
    for (int b = '0'; b <= '9'; b++) run[b] = counted[b] = 1;
    run[' '] = 1;
    return classruns_init(s, run, counted, 15, 2, max_run, overlap);
}

void classruns_reset(classruns_state *s) {
    s->in_run = 0;
    s->window_start = 0;
    s->accept_from = 0;
    s->count = 0;
    s->qualified = 0;
}

CR_INLINE int state_qualifies(const classruns_state *s, uint64_t end) {
    return s->qualified || (end - s->window_start >= s->min_length && s->count >= s->min_count);
}

int classruns_finish(classruns_state *s, uint64_t position, classruns_window_fn fn, void *ctx) {
    int reported = 0;
    if (s->in_run && state_qualifies(s, position)) {
        fn(ctx, s->window_start, position, s->accept_from);
        reported = 1;
    }
    classruns_reset(s);
    return reported;
}

int classruns_peek(const classruns_state *s, uint64_t position, classruns_window_fn fn, void *ctx) {
    if (s->in_run && state_qualifies(s, position)) {
        fn(ctx, s->window_start, position, s->accept_from);
        return 1;
    }
    return 0;
}

// MARK: - The walk over one block

/// The open run, in registers for the length of one call.
typedef struct {
    uint64_t in_run, ws, af, count, qualified;
    uint64_t min_length, min_count, max_run, overlap;
    unsigned n_shifts;    // Y &= Y >> shifts[j] turns "in a run" into "starts min_len run bytes"
    unsigned shifts[7];
} walk_t;

/// The fewest bytes a qualifying run holds (counted bytes are run bytes), capped to 64 (no run
/// that starts and ends in one block is that long).
static void set_min_len(walk_t *w) {
    uint64_t len = w->min_length;
    if (w->min_count > len) len = w->min_count;
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

CR_INLINE int walk_qualifies(const walk_t *w, uint64_t end) {
    return w->qualified || (end - w->ws >= w->min_length && w->count >= w->min_count);
}

#define POPCNT(x) ((uint64_t)__builtin_popcountll(x))
#define CTZ(x) ((unsigned)__builtin_ctzll(x))

/// Goes on with the open run from `p` (< n) in a block of `n` (1...64) bytes at absolute offset
/// `base`: `C` counted bytes, `NR` non-run bytes (only among the `n` valid ones); bits at and past
/// `n` are zero in C and NR. Reports the cuts and the end of the run; returns the position after
/// the byte that ended it, or `n` when the run goes on into the next block.
CR_INLINE unsigned continue_run(walk_t *w, uint64_t C, uint64_t NR, unsigned n, uint64_t base, unsigned p,
                                classruns_window_fn fn, void *ctx) {
    for (;;) {
        uint64_t from = ~(uint64_t)0 << p;
        uint64_t brk = NR & from;
        unsigned e = brk ? CTZ(brk) : n;    // run bytes are [p, e)
        uint64_t cut = w->ws + w->max_run;  // the first run byte at or past it is cut
        if (cut < w->ws) cut = ~(uint64_t)0;  // saturate (huge max_run)
        if (cut < base + p) cut = base + p;   // only when offsets jump between calls
        if (cut < base + e) {
            unsigned c = (unsigned)(cut - base);  // c < e <= 64
            uint64_t seg = from & (((uint64_t)1 << c) - 1);  // [p, c): the cut byte is not counted
            w->count += POPCNT(C & seg);
            if (walk_qualifies(w, cut)) fn(ctx, w->ws, cut, w->af);
            w->ws = cut - w->overlap;
            w->af = cut + 1;
            w->qualified = 1;
            p = c + 1;
            if (p >= n) return n;
            continue;
        }
        uint64_t seg = from & (e >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << e) - 1));  // [p, e)
        w->count += POPCNT(C & seg);
        if (e >= n) return n;  // the run goes on into the next block
        if (walk_qualifies(w, base + e)) fn(ctx, w->ws, base + e, w->af);
        w->in_run = 0;
        w->count = 0;
        w->qualified = 0;
        return e + 1;
    }
}

/// Any block (a partial one, or any when max_run < 64): run by run.
CR_INLINE void walk_block(walk_t *w, uint64_t R, uint64_t C, unsigned n, uint64_t base, classruns_window_fn fn,
                          void *ctx) {
    uint64_t NR = ~R & (n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1));
    unsigned p = 0;
    while (p < n) {
        if (!w->in_run) {
            uint64_t next = R & (~(uint64_t)0 << p);
            if (!next) return;
            p = CTZ(next);
            w->in_run = 1;
            w->ws = base + p;
            w->af = base + p;
            w->count = (C >> p) & 1;
            w->qualified = 0;
            p++;  // the first byte is never a cut (max_run >= 1)
            continue;
        }
        p = continue_run(w, C, NR, n, base, p, fn, ctx);
    }
}

/// A whole block when max_run >= 64 (so a run that starts in the block is never cut in it): the
/// open run first, then all runs that start here at once. Runs of fewer than min_len bytes are
/// dropped in bulk (Y); the ends come from one carry-propagating add.
CR_INLINE void walk_block_bulk(walk_t *w, uint64_t R, uint64_t C, uint64_t base, classruns_window_fn fn, void *ctx) {
    unsigned p = 0;
    if (w->in_run) {
        p = continue_run(w, C, ~R, 64, base, 0, fn, ctx);
        if (p >= 64) return;
    }
    uint64_t M = R & (~(uint64_t)0 << p);  // run bytes of runs that start at or after p
    if (!M) return;
    uint64_t starts = M & ~(M << 1);
    if (M >> 63) {  // the last run goes on into the next block
        unsigned s = 63u - (unsigned)__builtin_clzll(starts);
        w->in_run = 1;
        w->ws = base + s;
        w->af = base + s;
        w->count = POPCNT(C >> s);
        w->qualified = 0;
        if (s == 0) return;
        M &= ((uint64_t)1 << s) - 1;
        starts &= ((uint64_t)1 << s) - 1;
        if (!starts) return;
    }
    uint64_t Y = M;  // Y bit i: bytes i ... i + min_len - 1 are all run bytes
    for (unsigned j = 0; j < w->n_shifts; j++) Y &= Y >> w->shifts[j];
    uint64_t ls = starts & Y;  // starts of runs long enough
    if (!ls) return;
    if (POPCNT(C & M) < w->min_count) return;  // all complete runs together hold too few counted bytes
    uint64_t le = (M + ls) & ~M;  // their ends
    uint8_t s_buf[32], e_buf[32];
    unsigned k = 0;
    uint64_t ml = w->min_length, mc = w->min_count;
    do {
        unsigned s = CTZ(ls), e = CTZ(le);
        ls &= ls - 1;
        le &= le - 1;
        uint64_t seg = ((uint64_t)1 << e) - ((uint64_t)1 << s);
        s_buf[k] = (uint8_t)s;
        e_buf[k] = (uint8_t)e;
        k += ((uint64_t)(e - s) >= ml) & (POPCNT(C & seg) >= mc);
    } while (le);
    for (unsigned i = 0; i < k; i++) fn(ctx, base + s_buf[i], base + e_buf[i], base + s_buf[i]);
}

/// Blocks classified per batch: the classifier fills the masks of a batch (vector code only),
/// then the walk reads them (scalar code only, with the callbacks).
#define BATCH 64

/// The scan loop, once per classifier: CLASSIFY(s, ptr, blocks, R, C) fills the masks of
/// `blocks` (1...BATCH) 64-byte blocks at ptr.
#define DEFINE_SCAN(NAME, ATTR, CLASSIFY)                                                             \
    ATTR static void NAME(classruns_state *s, const uint8_t *data, size_t length, uint64_t offset,    \
                          classruns_window_fn fn, void *ctx) {                                        \
        walk_t w;                                                                                     \
        w.in_run = s->in_run;                                                                         \
        w.ws = s->window_start;                                                                       \
        w.af = s->accept_from;                                                                        \
        w.count = s->count;                                                                           \
        w.qualified = s->qualified;                                                                   \
        w.min_length = s->min_length;                                                                 \
        w.min_count = s->min_count;                                                                   \
        w.max_run = s->max_run;                                                                       \
        w.overlap = s->overlap;                                                                       \
        set_min_len(&w);                                                                              \
        uint64_t Rs[BATCH], Cs[BATCH];                                                                \
        size_t i = 0;                                                                                 \
        while (length - i >= 64) {                                                                    \
            size_t blocks = (length - i) / 64;                                                        \
            if (blocks > BATCH) blocks = BATCH;                                                       \
            CLASSIFY(s, data + i, blocks, Rs, Cs);                                                    \
            if (w.max_run >= 64) {                                                                    \
                for (size_t b = 0; b < blocks; b++) {                                                 \
                    if (!w.in_run && !Rs[b]) continue;                                                \
                    walk_block_bulk(&w, Rs[b], Cs[b], offset + i + 64 * b, fn, ctx);                  \
                }                                                                                     \
            } else {                                                                                  \
                for (size_t b = 0; b < blocks; b++) {                                                 \
                    if (!w.in_run && !Rs[b]) continue;                                                \
                    walk_block(&w, Rs[b], Cs[b], 64, offset + i + 64 * b, fn, ctx);                   \
                }                                                                                     \
            }                                                                                         \
            i += 64 * blocks;                                                                         \
        }                                                                                             \
        if (i < length) {                                                                             \
            unsigned n = (unsigned)(length - i);                                                      \
            uint8_t buf[64];                                                                          \
            memset(buf, 0, sizeof buf);                                                               \
            memcpy(buf, data + i, n);                                                                 \
            CLASSIFY(s, buf, 1, Rs, Cs);                                                              \
            uint64_t valid = ((uint64_t)1 << n) - 1; /* n < 64 */                                    \
            walk_block(&w, Rs[0] & valid, Cs[0] & valid, n, offset + i, fn, ctx);                     \
        }                                                                                             \
        s->in_run = w.in_run;                                                                         \
        s->window_start = w.ws;                                                                       \
        s->accept_from = w.af;                                                                        \
        s->count = w.count;                                                                           \
        s->qualified = w.qualified;                                                                   \
        if (!w.in_run) {                                                                              \
            s->window_start = 0;                                                                      \
            s->accept_from = 0;                                                                       \
            s->count = 0;                                                                             \
            s->qualified = 0;                                                                         \
        }                                                                                             \
    }

// MARK: - Classifiers

/// Portable: the 256-entry table, byte by byte (any classes).
static void classify_table(const classruns_state *s, const uint8_t *p, size_t blocks, uint64_t *Rs, uint64_t *Cs) {
    const uint8_t *t = s->table;
    for (size_t b = 0; b < blocks; b++, p += 64) {
        uint64_t r = 0, c = 0;
        for (unsigned i = 0; i < 64; i++) {
            uint64_t v = t[p[i]];
            r |= (v & 1) << i;
            c |= (v >> 1) << i;
        }
        Rs[b] = r;
        Cs[b] = c;
    }
}

DEFINE_SCAN(scan_portable, , classify_table)

#ifdef CR_X86

#define ATTR_SSSE3 __attribute__((target("ssse3,popcnt")))
#define ATTR_AVX2 __attribute__((target("avx2,bmi,bmi2,popcnt")))
#define ATTR_AVX512 __attribute__((target("avx512f,avx512bw,bmi,bmi2,popcnt")))

// Byte x: c = lo_table[x & 15] & hi_table[x >> 4] (pshufb: bytes >= 0x80 index hi_table 8...15
// after the shift and mask, so every byte value is looked up); run = c & run_bits != 0.

ATTR_SSSE3 CR_NOINLINE void classify_ssse3(const classruns_state *s, const uint8_t *p, size_t blocks, uint64_t *Rs,
                                           uint64_t *Cs) {
    const __m128i lo_t = _mm_loadu_si128((const __m128i *)s->lo_table);
    const __m128i hi_t = _mm_loadu_si128((const __m128i *)s->hi_table);
    const __m128i nib = _mm_set1_epi8(0x0F);
    const __m128i rb = _mm_set1_epi8((char)s->run_bits), cb = _mm_set1_epi8((char)s->count_bits);
    const __m128i z = _mm_setzero_si128();
    for (size_t b = 0; b < blocks; b++, p += 64) {
        uint64_t nr = 0, nc = 0;
        for (int q = 0; q < 4; q++) {
            __m128i x = _mm_loadu_si128((const __m128i *)(p + 16 * q));
            __m128i c = _mm_and_si128(_mm_shuffle_epi8(lo_t, _mm_and_si128(x, nib)),
                                      _mm_shuffle_epi8(hi_t, _mm_and_si128(_mm_srli_epi16(x, 4), nib)));
            nr |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_and_si128(c, rb), z)) << (16 * q);
            nc |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_and_si128(c, cb), z)) << (16 * q);
        }
        Rs[b] = ~nr;
        Cs[b] = ~nc;
    }
}

ATTR_AVX2 CR_NOINLINE void classify_avx2(const classruns_state *s, const uint8_t *p, size_t blocks, uint64_t *Rs,
                                         uint64_t *Cs) {
    const __m256i lo_t = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)s->lo_table));
    const __m256i hi_t = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)s->hi_table));
    const __m256i nib = _mm256_set1_epi8(0x0F);
    const __m256i rb = _mm256_set1_epi8((char)s->run_bits), cb = _mm256_set1_epi8((char)s->count_bits);
    const __m256i z = _mm256_setzero_si256();
    for (size_t b = 0; b < blocks; b++, p += 64) {
        __m256i x0 = _mm256_loadu_si256((const __m256i *)p);
        __m256i x1 = _mm256_loadu_si256((const __m256i *)(p + 32));
        __m256i c0 = _mm256_and_si256(_mm256_shuffle_epi8(lo_t, _mm256_and_si256(x0, nib)),
                                      _mm256_shuffle_epi8(hi_t, _mm256_and_si256(_mm256_srli_epi16(x0, 4), nib)));
        __m256i c1 = _mm256_and_si256(_mm256_shuffle_epi8(lo_t, _mm256_and_si256(x1, nib)),
                                      _mm256_shuffle_epi8(hi_t, _mm256_and_si256(_mm256_srli_epi16(x1, 4), nib)));
        uint64_t nr = (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_and_si256(c0, rb), z)) |
                      (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_and_si256(c1, rb), z)) << 32;
        uint64_t nc = (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_and_si256(c0, cb), z)) |
                      (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_and_si256(c1, cb), z)) << 32;
        Rs[b] = ~nr;
        Cs[b] = ~nc;
    }
}

ATTR_AVX512 CR_NOINLINE void classify_avx512(const classruns_state *s, const uint8_t *p, size_t blocks, uint64_t *Rs,
                                             uint64_t *Cs) {
    const __m512i lo_t = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)s->lo_table));
    const __m512i hi_t = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)s->hi_table));
    const __m512i nib = _mm512_set1_epi8(0x0F);
    const __m512i rb = _mm512_set1_epi8((char)s->run_bits), cb = _mm512_set1_epi8((char)s->count_bits);
    for (size_t b = 0; b < blocks; b++, p += 64) {
        __m512i x = _mm512_loadu_si512((const void *)p);
        __m512i c = _mm512_and_si512(_mm512_shuffle_epi8(lo_t, _mm512_and_si512(x, nib)),
                                     _mm512_shuffle_epi8(hi_t, _mm512_and_si512(_mm512_srli_epi16(x, 4), nib)));
        Rs[b] = (uint64_t)_mm512_test_epi8_mask(c, rb);
        Cs[b] = (uint64_t)_mm512_test_epi8_mask(c, cb);
    }
}

DEFINE_SCAN(scan_ssse3, ATTR_SSSE3, classify_ssse3)
DEFINE_SCAN(scan_avx2, ATTR_AVX2, classify_avx2)
DEFINE_SCAN(scan_avx512, ATTR_AVX512, classify_avx512)

#endif  // CR_X86

// MARK: - Dispatch

typedef void (*scan_fn)(classruns_state *, const uint8_t *, size_t, uint64_t, classruns_window_fn, void *);

/// The scan function of each kernel (NULL where this build has none).
static const scan_fn kernels[MK_KERNEL_COUNT] = {
    scan_portable,
#ifdef CR_X86
    scan_ssse3, scan_avx2, scan_avx512,
#endif
};

MK_DEFINE_KERNEL_DISPATCH(classruns)

void classruns_scan(classruns_state *s, const uint8_t *data, size_t length, uint64_t offset, classruns_window_fn fn,
                    void *ctx) {
    if (length == 0) return;
    if (!s->nibble_ok) {
        scan_portable(s, data, length, offset, fn, ctx);
        return;
    }
    choose()(s, data, length, offset, fn, ctx);
}
