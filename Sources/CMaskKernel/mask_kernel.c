// The classification pass of the masking engine (see include/mask_kernel.h).
//
// Every implementation of mk_classify must give the same masks as classify_portable; the
// finder works on those masks only, so its output is the same whichever kernel runs.

#include "mask_kernel.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#define MK_X86 1
#include <immintrin.h>
#endif

// MARK: - Byte classes

enum {
    C_DIGIT = 1 << 0,
    C_SEP = 1 << 1,
    C_AT = 1 << 2,
    C_COLON = 1 << 3,
    C_UPPER = 1 << 4,
    C_HEX = 1 << 5,
    C_WORD = 1 << 6,
};

static uint8_t class_table[256];
/// Filled once, by whichever thread classifies first; the others wait (`pthread_once`).
static pthread_once_t class_table_once = PTHREAD_ONCE_INIT;

static void fill_class_table(void) {
    for (int b = 0; b < 256; b++) {
        uint8_t c = 0;
        if (b >= '0' && b <= '9') c |= C_DIGIT | C_HEX | C_WORD;
        if (b >= 'A' && b <= 'Z') c |= C_UPPER | C_WORD;
        if (b >= 'a' && b <= 'z') c |= C_WORD;
        if ((b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F')) c |= C_HEX;
        if (b == '_') c |= C_WORD;
        if (b == ' ' || b == '-' || b == '.' || b == '(' || b == ')' || b == '/' || b == '+') c |= C_SEP;
        if (b == '@') c |= C_AT;
        if (b == ':') c |= C_COLON;
        class_table[b] = c;
    }
}

static void build_class_table(void) {
    pthread_once(&class_table_once, fill_class_table);
}

/// Masks of `count` (at most 64) bytes; bits at and past `count` are zero.
static void classify_bytes(const uint8_t *p, size_t count, mk_block_masks *m) {
    uint64_t digit = 0, sep = 0, at = 0, colon = 0, upper = 0, hex = 0, word = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t c = class_table[p[i]];
        uint64_t bit = (uint64_t)1 << i;
        if (c & C_DIGIT) digit |= bit;
        if (c & C_SEP) sep |= bit;
        if (c & C_AT) at |= bit;
        if (c & C_COLON) colon |= bit;
        if (c & C_UPPER) upper |= bit;
        if (c & C_HEX) hex |= bit;
        if (c & C_WORD) word |= bit;
    }
    m->digit = digit;
    m->separator = sep;
    m->at = at;
    m->colon = colon;
    m->upper = upper;
    m->hex = hex;
    m->word = word;
}

static void classify_portable(const uint8_t *data, size_t blocks, mk_block_masks *out) {
    for (size_t b = 0; b < blocks; b++) classify_bytes(data + 64 * b, 64, &out[b]);
}

#ifdef MK_X86

// MARK: - SSE4.2 (16 bytes at a time)

__attribute__((target("sse4.2")))
static inline uint64_t sse_in_range(__m128i x, char low, char span) {
    // (x - low) <= span, unsigned: min(d, span) == d
    __m128i d = _mm_sub_epi8(x, _mm_set1_epi8(low));
    return (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(span)), d));
}

__attribute__((target("sse4.2")))
static inline uint64_t sse_eq(__m128i x, char c) {
    return (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8(c)));
}

__attribute__((target("sse4.2")))
static void classify_sse42(const uint8_t *data, size_t blocks, mk_block_masks *out) {
    for (size_t b = 0; b < blocks; b++) {
        mk_block_masks m = {0, 0, 0, 0, 0, 0, 0};
        for (int q = 0; q < 4; q++) {
            __m128i x = _mm_loadu_si128((const __m128i *)(data + 64 * b + 16 * q));
            int shift = 16 * q;
            uint64_t digit = sse_in_range(x, '0', 9);
            uint64_t upper = sse_in_range(x, 'A', 25);
            uint64_t lower = sse_in_range(x, 'a', 25);
            __m128i folded = _mm_or_si128(x, _mm_set1_epi8(0x20));
            uint64_t hexalpha = sse_in_range(folded, 'a', 5);
            uint64_t sep = sse_eq(x, ' ') | sse_eq(x, '-') | sse_eq(x, '.') | sse_eq(x, '(') | sse_eq(x, ')') |
                           sse_eq(x, '/') | sse_eq(x, '+');
            m.digit |= digit << shift;
            m.separator |= sep << shift;
            m.at |= sse_eq(x, '@') << shift;
            m.colon |= sse_eq(x, ':') << shift;
            m.upper |= upper << shift;
            m.hex |= (digit | hexalpha) << shift;
            m.word |= (digit | upper | lower | sse_eq(x, '_')) << shift;
        }
        out[b] = m;
    }
}

// MARK: - AVX2 (32 bytes at a time)

__attribute__((target("avx2")))
static inline uint64_t avx2_in_range(__m256i x, char low, char span) {
    __m256i d = _mm256_sub_epi8(x, _mm256_set1_epi8(low));
    return (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_min_epu8(d, _mm256_set1_epi8(span)), d));
}

__attribute__((target("avx2")))
static inline uint64_t avx2_eq(__m256i x, char c) {
    return (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, _mm256_set1_epi8(c)));
}

__attribute__((target("avx2")))
static void classify_avx2(const uint8_t *data, size_t blocks, mk_block_masks *out) {
    for (size_t b = 0; b < blocks; b++) {
        mk_block_masks m = {0, 0, 0, 0, 0, 0, 0};
        for (int h = 0; h < 2; h++) {
            __m256i x = _mm256_loadu_si256((const __m256i *)(data + 64 * b + 32 * h));
            int shift = 32 * h;
            uint64_t digit = avx2_in_range(x, '0', 9);
            uint64_t upper = avx2_in_range(x, 'A', 25);
            uint64_t lower = avx2_in_range(x, 'a', 25);
            __m256i folded = _mm256_or_si256(x, _mm256_set1_epi8(0x20));
            uint64_t hexalpha = avx2_in_range(folded, 'a', 5);
            uint64_t sep = avx2_eq(x, ' ') | avx2_eq(x, '-') | avx2_eq(x, '.') | avx2_eq(x, '(') | avx2_eq(x, ')') |
                           avx2_eq(x, '/') | avx2_eq(x, '+');
            m.digit |= digit << shift;
            m.separator |= sep << shift;
            m.at |= avx2_eq(x, '@') << shift;
            m.colon |= avx2_eq(x, ':') << shift;
            m.upper |= upper << shift;
            m.hex |= (digit | hexalpha) << shift;
            m.word |= (digit | upper | lower | avx2_eq(x, '_')) << shift;
        }
        out[b] = m;
    }
}

// MARK: - AVX-512BW (64 bytes at a time, masks straight from the compares)

__attribute__((target("avx512f,avx512bw")))
static inline uint64_t avx512_in_range(__m512i x, char low, char span) {
    __m512i d = _mm512_sub_epi8(x, _mm512_set1_epi8(low));
    return (uint64_t)_mm512_cmple_epu8_mask(d, _mm512_set1_epi8(span));
}

__attribute__((target("avx512f,avx512bw")))
static inline uint64_t avx512_eq(__m512i x, char c) {
    return (uint64_t)_mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8(c));
}

__attribute__((target("avx512f,avx512bw")))
static void classify_avx512(const uint8_t *data, size_t blocks, mk_block_masks *out) {
    for (size_t b = 0; b < blocks; b++) {
        __m512i x = _mm512_loadu_si512((const void *)(data + 64 * b));
        uint64_t digit = avx512_in_range(x, '0', 9);
        uint64_t upper = avx512_in_range(x, 'A', 25);
        uint64_t lower = avx512_in_range(x, 'a', 25);
        __m512i folded = _mm512_or_si512(x, _mm512_set1_epi8(0x20));
        uint64_t hexalpha = avx512_in_range(folded, 'a', 5);
        mk_block_masks m;
        m.digit = digit;
        m.separator = avx512_eq(x, ' ') | avx512_eq(x, '-') | avx512_eq(x, '.') | avx512_eq(x, '(') |
                      avx512_eq(x, ')') | avx512_eq(x, '/') | avx512_eq(x, '+');
        m.at = avx512_eq(x, '@');
        m.colon = avx512_eq(x, ':');
        m.upper = upper;
        m.hex = digit | hexalpha;
        m.word = digit | upper | lower | avx512_eq(x, '_');
        out[b] = m;
    }
}

#endif  // MK_X86

// MARK: - Dispatch

typedef void (*classify_fn)(const uint8_t *, size_t, mk_block_masks *);

static classify_fn chosen = 0;
static const char *chosen_name = "portable";

static int cpu_supports(const char *name) {
#ifdef MK_X86
    __builtin_cpu_init();
    if (strcmp(name, "avx512bw") == 0) return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512f");
    if (strcmp(name, "avx2") == 0) return __builtin_cpu_supports("avx2");
    if (strcmp(name, "sse4.2") == 0) return __builtin_cpu_supports("sse4.2");
#endif
    return strcmp(name, "portable") == 0;
}

static void choose(void) {
    if (chosen) return;
    build_class_table();
#ifdef MK_X86
    if (cpu_supports("avx512bw")) { chosen = classify_avx512; chosen_name = "avx512bw"; return; }
    if (cpu_supports("avx2")) { chosen = classify_avx2; chosen_name = "avx2"; return; }
    if (cpu_supports("sse4.2")) { chosen = classify_sse42; chosen_name = "sse4.2"; return; }
#endif
    chosen = classify_portable;
    chosen_name = "portable";
}

int mk_force_kernel(const char *name) {
    build_class_table();
    if (!cpu_supports(name)) return 0;
    if (strcmp(name, "portable") == 0) { chosen = classify_portable; chosen_name = "portable"; return 1; }
#ifdef MK_X86
    if (strcmp(name, "sse4.2") == 0) { chosen = classify_sse42; chosen_name = "sse4.2"; return 1; }
    if (strcmp(name, "avx2") == 0) { chosen = classify_avx2; chosen_name = "avx2"; return 1; }
    if (strcmp(name, "avx512bw") == 0) { chosen = classify_avx512; chosen_name = "avx512bw"; return 1; }
#endif
    return 0;
}

const char *mk_kernel_name(void) {
    choose();
    return chosen_name;
}

void mk_classify(const uint8_t *data, size_t blocks, mk_block_masks *out) {
    choose();
    chosen(data, blocks, out);
}

// MARK: - Finder

void mk_finder_reset(mk_finder_state *state) {
    memset(state, 0, sizeof(*state));
}

static inline uint64_t range_mask(unsigned from, unsigned to) {
    // bits [from, to), 0 <= from <= to <= 64
    uint64_t high = to >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << to) - 1);
    uint64_t low = from >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << from) - 1);
    return high & ~low;
}

static inline int emit_run(mk_anchors *a, uint64_t start, uint64_t end, uint32_t digits) {
    if (a->runs_count >= a->runs_capacity) return 0;
    mk_run *run = &a->runs[a->runs_count++];
    run->start = start;
    run->end = end;
    run->digits = digits;
    run->reserved = 0;
    return 1;
}

/// Processes one block of `n` valid bytes (masks already computed) at absolute offset `base`.
/// Returns 0 when an anchor array filled before the block was done (nothing of the block is
/// then committed: the caller retries the block after draining).
static int process_block(mk_finder_state *s, const mk_block_masks *m, const uint8_t *bytes, unsigned n,
                         uint64_t base, uint32_t min_digits, mk_anchors *a, int more_follows) {
    uint64_t valid = range_mask(0, n);
    // Room check first, so a block is either processed whole or not at all.
    uint64_t ats = m->at & valid;
    uint64_t colons = m->colon & valid;
    size_t need_runs = (size_t)__builtin_popcountll(m->digit & valid) + 1;
    if (a->ats_count + (size_t)__builtin_popcountll(ats) > a->ats_capacity) return 0;
    if (a->colons_count + (size_t)__builtin_popcountll(colons) > a->colons_capacity) return 0;
    if (a->runs_count + (need_runs < 33 ? need_runs : 33) > a->runs_capacity) return 0;

    while (ats) {
        unsigned i = (unsigned)__builtin_ctzll(ats);
        a->ats[a->ats_count++] = base + i;
        ats &= ats - 1;
    }
    // ':' next to a hex digit or another ':' (IPv6 shapes). At the edges of a call the neighbour
    // is unknown: the colon is reported (a superset; the confirmer decides).
    while (colons) {
        unsigned i = (unsigned)__builtin_ctzll(colons);
        colons &= colons - 1;
        int left = i > 0 ? (int)((m->hex | m->colon) >> (i - 1) & 1) : 1;
        int right = i + 1 < n ? (int)((m->hex | m->colon) >> (i + 1) & 1) : 1;
        (void)bytes;
        if (left || right) a->colons[a->colons_count++] = base + i;
    }

    uint64_t digit = m->digit & valid;
    uint64_t sep = m->separator & valid;
    uint64_t ds = digit | sep;
    // Bit i: bytes i-1 and i are both separators (two in a row end a run).
    uint64_t pair = sep & (sep << 1);
    if (s->in_run && s->separators > 0) pair |= sep & 1;
    unsigned pos = 0;
    while (pos < n) {
        if (!s->in_run) {
            uint64_t next = digit & range_mask(pos, 64);
            if (!next) break;
            pos = (unsigned)__builtin_ctzll(next);
            s->in_run = 1;
            s->run_start = base + pos;
            s->run_last_digit = base + pos;
            s->run_digits = 0;
            s->separators = 0;
            pair &= ~((uint64_t)1 << pos);  // a run never breaks on its own first byte
        }
        uint64_t brk = (~ds | pair) & valid & range_mask(pos, 64);
        unsigned end = brk ? (unsigned)__builtin_ctzll(brk) : n;
        uint64_t seg = range_mask(pos, end);
        uint64_t seg_digits = digit & seg;
        if (seg_digits) {
            unsigned last = 63u - (unsigned)__builtin_clzll(seg_digits);
            s->run_digits += (uint32_t)__builtin_popcountll(seg_digits);
            s->run_last_digit = base + last + 1;
            s->separators = end - 1 - last;
        } else {
            s->separators += (uint32_t)__builtin_popcountll(seg);
        }
        if (brk) {
            if (s->run_digits >= min_digits) emit_run(a, s->run_start, s->run_last_digit, s->run_digits);
            s->in_run = 0;
            s->separators = 0;
            pos = end;
        } else {
            pos = n;
        }
    }
    (void)more_follows;
    return 1;
}

size_t mk_find(mk_finder_state *state, const uint8_t *data, size_t length, uint32_t min_digits, mk_anchors *anchors) {
    choose();
    if (min_digits == 0) min_digits = 1;
    enum { BATCH = 16 };
    mk_block_masks masks[BATCH];
    size_t done = 0;
    while (length - done >= 64) {
        size_t blocks = (length - done) / 64;
        if (blocks > BATCH) blocks = BATCH;
        chosen(data + done, blocks, masks);
        for (size_t b = 0; b < blocks; b++) {
            if (!process_block(state, &masks[b], data + done, 64, state->offset, min_digits, anchors, 1)) return done;
            state->offset += 64;
            done += 64;
        }
    }
    if (done < length) {
        mk_block_masks tail;
        unsigned n = (unsigned)(length - done);
        classify_bytes(data + done, n, &tail);
        if (!process_block(state, &tail, data + done, n, state->offset, min_digits, anchors, 0)) return done;
        state->offset += n;
        done = length;
    }
    return done;
}

int mk_finder_finish(mk_finder_state *state, uint32_t min_digits, mk_anchors *anchors) {
    if (!state->in_run) return 0;
    if (min_digits == 0) min_digits = 1;
    if (state->run_digits >= min_digits) {
        if (!emit_run(anchors, state->run_start, state->run_last_digit, state->run_digits)) return 0;
        state->in_run = 0;
        return 1;
    }
    state->in_run = 0;
    return 0;
}
