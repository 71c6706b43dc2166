// Differential fuzzer: ref.c (a byte-by-byte port of DigitRunFinder.swift) against runs.c, on
// random inputs, parameters, chunkings, peeks and idle flushes, for every classifier this CPU runs.
//
//   cc -O2 -o fuzz fuzz.c runs.c ref.c && ./fuzz [inputs-per-kernel] [seed]

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref.h"
#include "runs.h"

static uint64_t rng_state;
static uint64_t rnd(void) {  // splitmix64
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static uint64_t below(uint64_t n) { return n ? rnd() % n : 0; }
static int chance(unsigned percent) { return below(100) < percent; }

// MARK: - Events

typedef struct {
    uint64_t start, end, accept_from;
    uint32_t tag;  // 0 scan, 1 peek, 2 finish
    uint32_t call;
} event;

typedef struct {
    event *items;
    size_t count, capacity;
    uint32_t tag, call;
} events;

static void record(void *ctx, uint64_t start, uint64_t end, uint64_t accept_from) {
    events *e = ctx;
    if (e->count == e->capacity) {
        e->capacity = e->capacity ? 2 * e->capacity : 1024;
        e->items = realloc(e->items, e->capacity * sizeof(event));
        if (!e->items) abort();
    }
    e->items[e->count++] = (event){start, end, accept_from, e->tag, e->call};
}

// MARK: - Inputs

#define MAX_INPUT 6000

static const char *alphabets[] = {
    "0123456789",
    "0123456789 ",
    "0123456789 .-/()+",
    "0123456789.",
    "0123456789..........",
    "0123456789 .-/()+abcXYZ\n",
    "0123456789 .-/()+ \n\t,:;*#_",
    "01 .",
    "9-",
    "0123456789abcdefghijklmnopqrstuvwxyz     \n",
    " .-/()+",
    "0 ",
};
#define N_ALPHABETS (sizeof(alphabets) / sizeof(alphabets[0]))

static size_t put(uint8_t *buf, size_t len, size_t cap, const char *s) {
    while (*s && len < cap) buf[len++] = (uint8_t)*s++;
    return len;
}

/// Fills `buf` with a random input; returns its length.
static size_t gen_input(uint8_t *buf) {
    size_t cap = MAX_INPUT;
    size_t target;
    switch (below(4)) {
        case 0: target = below(70); break;
        case 1: target = below(400); break;
        case 2: target = below(1500); break;
        default: target = below(MAX_INPUT + 1); break;
    }
    size_t len = 0;
    unsigned mode = (unsigned)below(5);
    if (mode == 0) {  // one alphabet
        const char *a = alphabets[below(N_ALPHABETS)];
        size_t n = strlen(a);
        while (len < target) buf[len++] = (uint8_t)a[below(n)];
    } else if (mode == 1) {  // any byte
        while (len < target) buf[len++] = (uint8_t)rnd();
    } else {  // tokens
        const char *a = alphabets[below(N_ALPHABETS)];
        size_t an = strlen(a);
        char tmp[64];
        while (len < target) {
            switch (below(14)) {
                case 0: {  // digit run, any length (including > 256 and > 512)
                    size_t n = chance(20) ? below(1300) : below(20) + 1;
                    for (size_t i = 0; i < n && len < cap; i++) buf[len++] = (uint8_t)('0' + below(10));
                    break;
                }
                case 1: {  // run of digits and separators
                    size_t n = chance(25) ? below(1300) : below(40) + 1;
                    const char *rs = "0123456789 .-/()+";
                    for (size_t i = 0; i < n && len < cap; i++) buf[len++] = (uint8_t)rs[below(17)];
                    break;
                }
                case 2:  // IPv4-ish / dotted
                    snprintf(tmp, sizeof tmp, "%u.%u.%u.%u", (unsigned)below(300), (unsigned)below(300),
                             (unsigned)below(300), (unsigned)below(300));
                    len = put(buf, len, cap, tmp);
                    break;
                case 3:
                    snprintf(tmp, sizeof tmp, "%u.%u.%u", (unsigned)below(20), (unsigned)below(20), (unsigned)below(20));
                    len = put(buf, len, cap, tmp);
                    break;
                case 4: {  // dotted, many groups
                    size_t g = below(8) + 1;
                    for (size_t i = 0; i < g; i++) {
                        snprintf(tmp, sizeof tmp, "%s%u", i ? "." : "", (unsigned)below(1000));
                        len = put(buf, len, cap, tmp);
                    }
                    break;
                }
                case 5:  // phone-like
                    snprintf(tmp, sizeof tmp, "+%u (%03u) %03u-%04u", (unsigned)below(99), (unsigned)below(1000),
                             (unsigned)below(1000), (unsigned)below(10000));
                    len = put(buf, len, cap, tmp);
                    break;
                case 6:  // card-like
                    snprintf(tmp, sizeof tmp, "%04u %04u %04u %04u", (unsigned)below(10000), (unsigned)below(10000),
                             (unsigned)below(10000), (unsigned)below(10000));
                    len = put(buf, len, cap, tmp);
                    break;
                case 7:  // SSN-like
                    snprintf(tmp, sizeof tmp, "%03u-%02u-%04u", (unsigned)below(1000), (unsigned)below(100),
                             (unsigned)below(10000));
                    len = put(buf, len, cap, tmp);
                    break;
                case 8: {  // words
                    size_t n = below(12) + 1;
                    for (size_t i = 0; i < n && len < cap; i++) buf[len++] = (uint8_t)('a' + below(26));
                    break;
                }
                case 9: {  // separators only
                    size_t n = chance(10) ? below(600) : below(5) + 1;
                    const char *ss = " .-/()+";
                    for (size_t i = 0; i < n && len < cap; i++) buf[len++] = (uint8_t)ss[below(7)];
                    break;
                }
                case 10:
                    len = put(buf, len, cap, chance(50) ? "\n" : (chance(50) ? " " : "\r\n"));
                    break;
                case 11: {  // from the input's alphabet
                    size_t n = below(30) + 1;
                    for (size_t i = 0; i < n && len < cap; i++) buf[len++] = (uint8_t)a[below(an)];
                    break;
                }
                case 12: {  // raw bytes
                    size_t n = below(4) + 1;
                    for (size_t i = 0; i < n && len < cap; i++) buf[len++] = (uint8_t)rnd();
                    break;
                }
                default: {  // long mixed run of dots and digits (IPv4 candidates across cuts)
                    size_t n = chance(20) ? below(900) : below(30);
                    for (size_t i = 0; i < n && len < cap; i++) buf[len++] = (uint8_t)(chance(30) ? '.' : '0' + below(10));
                    break;
                }
            }
        }
        if (len > target && chance(50)) len = target;
    }
    return len;
}

// MARK: - One comparison

typedef struct {
    uint64_t min_digits, max_run, overlap, dotted;
} params;

static params gen_params(void) {
    static const uint64_t runs[] = {1, 2, 3, 4, 5, 8, 16, 31, 63, 64, 65, 100, 127, 128, 129, 200, 255, 256, 256, 256, 256, 257, 300, 512, 1000};
    params p;
    p.min_digits = chance(50) ? 7 : below(13);
    p.max_run = runs[below(sizeof runs / sizeof runs[0])];
    switch (below(6)) {
        case 0: p.overlap = 0; break;
        case 1: p.overlap = p.max_run - 1; break;
        case 2: p.overlap = p.max_run > 22 ? 22 : below(p.max_run); break;   // digitRunWidth + 3, widths ~19
        case 3: p.overlap = p.max_run > 27 ? 27 : below(p.max_run); break;
        default: p.overlap = below(p.max_run); break;
    }
    p.dotted = chance(50) ? 0 : (chance(60) ? 4 : below(7) + 1);
    return p;
}

static size_t next_chunk(unsigned chunking, size_t left) {
    static const size_t edges[] = {1, 2, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257};
    size_t n;
    switch (chunking) {
        case 0: n = left; break;                       // one big write
        case 1: n = 1; break;                          // 1-byte writes
        case 2: n = below(8) + 1; break;               // tiny
        case 3: n = below(200) + 1; break;             // random
        case 4: n = below(3000) + 1; break;            // random, large
        default: n = edges[below(sizeof edges / sizeof edges[0])]; break;  // around block edges
    }
    if (chance(3)) n = 0;  // empty writes are legal
    return n > left ? left : n;
}

static events ev_ref, ev_fast;

static void dump(const events *e, const char *name) {
    fprintf(stderr, "%s (%zu):\n", name, e->count);
    for (size_t i = 0; i < e->count && i < 40; i++)
        fprintf(stderr, "  call %u tag %u: (%" PRIu64 ", %" PRIu64 ", %" PRIu64 ")\n", e->items[i].call, e->items[i].tag,
                e->items[i].start, e->items[i].end, e->items[i].accept_from);
}

/// Runs both finders over `data` with one chunking; returns 0 on a mismatch.
static int compare(const uint8_t *data, size_t len, params p, unsigned chunking, uint64_t base, unsigned peek_pct,
                   unsigned flush_pct, unsigned gap_pct, uint64_t *windows) {
    ref_state r;
    runs_state f;
    ref_init(&r, (int64_t)p.min_digits, (int64_t)p.max_run, (int64_t)p.overlap, (int64_t)p.dotted);
    if (!runs_init(&f, p.min_digits, p.max_run, p.overlap, p.dotted)) abort();
    ev_ref.count = ev_fast.count = 0;
    size_t at = 0;
    uint32_t call = 0;
    uint64_t skew = 0;  // offsets that jump between calls (not the engine's use; the Swift loop allows it)
    while (at < len || call == 0) {
        size_t n = next_chunk(chunking, len - at);
        if (chance(gap_pct)) skew += below(chance(50) ? 8 : 600);
        uint64_t off = base + at + skew;
        ev_ref.tag = ev_fast.tag = 0;
        ev_ref.call = ev_fast.call = call;
        ref_scan(&r, data + at, n, (int64_t)off, record, &ev_ref);
        runs_scan(&f, data + at, n, off, record, &ev_fast);
        at += n;
        if (chance(peek_pct)) {
            ev_ref.tag = ev_fast.tag = 1;
            ref_peek(&r, (int64_t)(base + at + skew), record, &ev_ref);
            runs_peek(&f, base + at + skew, record, &ev_fast);
        }
        if (chance(flush_pct)) {
            ev_ref.tag = ev_fast.tag = 2;
            ref_finish(&r, (int64_t)(base + at + skew), record, &ev_ref);
            runs_finish(&f, base + at + skew, record, &ev_fast);
        }
        call++;
        if (len == 0) break;
    }
    ev_ref.tag = ev_fast.tag = 2;
    ref_finish(&r, (int64_t)(base + len + skew), record, &ev_ref);
    runs_finish(&f, base + len + skew, record, &ev_fast);
    *windows += ev_ref.count;
    if (ev_ref.count != ev_fast.count || (ev_ref.count && memcmp(ev_ref.items, ev_fast.items, ev_ref.count * sizeof(event)) != 0)) {
        fprintf(stderr, "MISMATCH kernel=%s len=%zu min=%" PRIu64 " max_run=%" PRIu64 " overlap=%" PRIu64 " dotted=%" PRIu64
                        " chunking=%u base=%" PRIu64 "\n",
                runs_kernel_name(), len, p.min_digits, p.max_run, p.overlap, p.dotted, chunking, base);
        dump(&ev_ref, "ref");
        dump(&ev_fast, "fast");
        FILE *out = fopen("/tmp/runs_fuzz_fail.bin", "wb");
        if (out) { fwrite(data, 1, len, out); fclose(out); }
        return 0;
    }
    return 1;
}

/// Every byte value, inside and around runs, at every alignment: checks the classifiers byte by byte.
static int every_byte(uint64_t *checks) {
    static const params ps[] = {{1, 1000, 0, 0}, {100, 1000, 0, 1}, {1, 64, 10, 0}, {7, 256, 22, 4}};
    uint8_t buf[200];
    uint64_t windows = 0;
    for (unsigned v = 0; v < 256; v++) {
        for (unsigned align = 0; align < 64; align++) {
            size_t len = 0;
            memset(buf, 'x', sizeof buf);
            len = align;
            buf[len++] = '5';
            for (int i = 0; i < 70; i++) buf[len++] = (uint8_t)v;
            buf[len++] = '5';
            buf[len++] = '.';
            buf[len++] = (uint8_t)v;
            buf[len++] = '1';
            for (unsigned pi = 0; pi < sizeof ps / sizeof ps[0]; pi++) {
                for (unsigned chunking = 0; chunking < 6; chunking++) {
                    if (!compare(buf, len, ps[pi], chunking, 0, 0, 0, 0, &windows)) {
                        fprintf(stderr, "byte value %u, alignment %u\n", v, align);
                        return 0;
                    }
                    (*checks)++;
                }
            }
        }
    }
    return 1;
}

int main(int argc, char **argv) {
    uint64_t inputs = argc > 1 ? strtoull(argv[1], 0, 10) : 200000;
    uint64_t seed = argc > 2 ? strtoull(argv[2], 0, 10) : 1;
    static const char *kernels[] = {"portable", "ssse3", "avx2", "avx512bw"};
    static uint8_t data[MAX_INPUT + 64];
    setvbuf(stdout, NULL, _IOLBF, 0);
    uint64_t total_inputs = 0, total_runs = 0, total_windows = 0, total_bytes = 0;
    for (unsigned k = 0; k < 4; k++) {
        if (!runs_force_kernel(kernels[k])) {
            printf("kernel %-8s: not supported here, skipped\n", kernels[k]);
            continue;
        }
        uint64_t checks = 0;
        if (!every_byte(&checks)) return 1;
        printf("kernel %-8s: every byte value at every alignment: %" PRIu64 " checks equal\n", kernels[k], checks);
        rng_state = seed * 0x1000 + k;
        uint64_t runs = 0, windows = 0, bytes = 0;
        for (uint64_t i = 0; i < inputs; i++) {
            size_t len = gen_input(data);
            params p = gen_params();
            uint64_t base = chance(80) ? 0 : (chance(50) ? below(1 << 20) : (1ull << 40) + below(1000));
            unsigned peek_pct = chance(50) ? 0 : (unsigned)below(60) + 1;
            unsigned flush_pct = chance(70) ? 0 : (unsigned)below(10) + 1;
            unsigned gap_pct = chance(95) ? 0 : (unsigned)below(50) + 1;
            // Every input: one big write, plus one or two other random chunkings.
            unsigned chunkings[3] = {0, (unsigned)below(6), (unsigned)below(6)};
            unsigned nchunk = len > 3000 ? 2 : 3;
            for (unsigned c = 0; c < nchunk; c++) {
                if (!compare(data, len, p, chunkings[c], base, c == 0 ? 0 : peek_pct, c == 0 ? 0 : flush_pct, c == 0 ? 0 : gap_pct, &windows))
                    return 1;
                runs++;
                bytes += len;
            }
        }
        printf("kernel %-8s: %" PRIu64 " inputs, %" PRIu64 " chunked runs, %" PRIu64 " bytes, %" PRIu64
               " windows compared: all equal\n",
               kernels[k], inputs, runs, bytes, windows);
        total_inputs += inputs;
        total_runs += runs;
        total_windows += windows;
        total_bytes += bytes;
    }
    printf("TOTAL: %" PRIu64 " inputs, %" PRIu64 " chunked runs, %" PRIu64 " bytes, %" PRIu64 " windows: no mismatch\n",
           total_inputs, total_runs, total_bytes, total_windows);
    return 0;
}
