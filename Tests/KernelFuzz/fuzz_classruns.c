// Differential fuzzer: ref_classruns.c (byte loop) against classruns.c, on random inputs, classes
// (IPv6, IBAN, random nibble-factoring and random non-factoring tables), parameters, chunkings
// (incl. 1-byte writes), peeks, idle finishes and offset gaps, for every kernel this CPU runs.
//
//   cc -O2 -o fuzz_classruns fuzz_classruns.c classruns.c ref_classruns.c && ./fuzz_classruns [inputs-per-kernel] [seed]

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classruns.h"
#include "ref_classruns.h"

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

static events ev_ref, ev_fast;

// MARK: - Configurations

enum { CFG_IPV6, CFG_IBAN, CFG_RANGES, CFG_RECTS, CFG_RANDOM, N_CFG };
static const char *cfg_names[] = {"ipv6", "iban", "ranges", "rects", "random"};

typedef struct {
    unsigned kind;
    uint8_t run[256], counted[256];
    uint64_t min_length, min_count, max_run, overlap;
    uint8_t members[256];  // run bytes, for input generation
    unsigned n_members;
} config;

static void add_range(uint8_t *t, unsigned lo, unsigned hi) {
    for (unsigned b = lo; b <= hi && b < 256; b++) t[b] = 1;
}

static void gen_params(config *c) {
    switch (below(6)) {
        case 0: c->max_run = below(8) + 1; break;
        case 1: c->max_run = below(70) + 1; break;
        case 2: c->max_run = 60 + below(10); break;
        case 3: c->max_run = 64 + below(200); break;
        case 4: c->max_run = 256; break;
        default: c->max_run = chance(50) ? 1000 + below(4000) : ~(uint64_t)0 >> below(3); break;
    }
    c->overlap = chance(30) ? 0 : below(c->max_run < 100 ? c->max_run : 100);
    if (c->overlap >= c->max_run) c->overlap = c->max_run - 1;
}

static void gen_config(config *c, unsigned kind) {
    memset(c, 0, sizeof *c);
    c->kind = kind;
    switch (kind) {
        case CFG_IPV6:
            for (const char *p = "0123456789abcdefABCDEF:."; *p; p++) c->run[(uint8_t)*p] = 1;
            c->counted[':'] = 1;
            c->min_length = 3;
            c->min_count = 2;
            break;
        case CFG_IBAN:
            add_range(c->run, 'A', 'Z');
            add_range(c->run, '0', '9');
            add_range(c->counted, '0', '9');
            c->run[' '] = 1;
            c->min_length = 15;
            c->min_count = 2;
            break;
        case CFG_RANGES: {  // a few byte ranges (usually factor)
            unsigned k = (unsigned)below(5) + 1;
            for (unsigned i = 0; i < k; i++) {
                unsigned lo = (unsigned)below(256), w = (unsigned)(chance(50) ? below(4) : below(40));
                add_range(c->run, lo, lo + w);
            }
            unsigned kc = (unsigned)below(3);
            for (unsigned i = 0; i < kc; i++) {
                unsigned lo = (unsigned)below(256), w = (unsigned)below(30);
                add_range(c->counted, lo, lo + w);
            }
            if (chance(30)) c->counted[(uint8_t)rnd()] = 1;
            break;
        }
        case CFG_RECTS: {  // unions of nibble rectangles (factor when <= 8 distinct lo sets)
            unsigned k = (unsigned)below(9) + 1;
            for (unsigned i = 0; i < k; i++) {
                uint16_t his = (uint16_t)rnd(), los = (uint16_t)rnd();
                if (chance(50)) his &= (uint16_t)rnd();
                uint8_t *t = i == 0 || chance(60) ? c->run : c->counted;
                for (unsigned h = 0; h < 16; h++)
                    for (unsigned l = 0; l < 16; l++)
                        if ((his >> h & 1) && (los >> l & 1)) t[h << 4 | l] = 1;
            }
            break;
        }
        default: {  // any set (almost never factors)
            unsigned density = (unsigned)below(100);
            for (unsigned b = 0; b < 256; b++) {
                c->run[b] = chance(density);
                c->counted[b] = chance(50);
            }
            break;
        }
    }
    if (kind >= CFG_RANGES) {
        c->min_length = chance(20) ? 0 : (chance(80) ? below(20) : below(200));
        c->min_count = chance(20) ? 0 : (chance(80) ? below(6) : below(100));
    }
    gen_params(c);
    c->n_members = 0;
    for (unsigned b = 0; b < 256; b++)
        if (c->run[b]) c->members[c->n_members++] = (uint8_t)b;
}

// MARK: - Inputs

#define MAX_INPUT 6000

static const char *hexd = "0123456789abcdefABCDEF";

static size_t put(uint8_t *buf, size_t len, size_t cap, const char *s) {
    while (*s && len < cap) buf[len++] = (uint8_t)*s++;
    return len;
}

static size_t gen_input(const config *c, uint8_t *buf) {
    size_t cap = MAX_INPUT, target;
    switch (below(4)) {
        case 0: target = below(70); break;
        case 1: target = below(400); break;
        case 2: target = below(1500); break;
        default: target = below(MAX_INPUT + 1); break;
    }
    size_t len = 0;
    unsigned mode = (unsigned)below(4);
    unsigned run_pct = (unsigned)below(101);
    if (mode == 0) {  // run bytes with a proportion of any bytes
        while (len < target)
            buf[len++] = (c->n_members && chance(run_pct)) ? c->members[below(c->n_members)] : (uint8_t)rnd();
    } else if (mode == 1) {  // any byte
        while (len < target) buf[len++] = (uint8_t)rnd();
    } else {  // tokens
        char tmp[128];
        while (len < target) {
            switch (below(10)) {
                case 0: {  // long run of run bytes (> 64, > 256, > 512)
                    size_t n = chance(20) ? below(1300) : below(40) + 1;
                    for (size_t i = 0; i < n && len < cap && c->n_members; i++) buf[len++] = c->members[below(c->n_members)];
                    break;
                }
                case 1: {  // IPv6-ish
                    unsigned g = (unsigned)below(9) + 1;
                    size_t l = 0;
                    if (chance(20)) l += (size_t)snprintf(tmp + l, sizeof tmp - l, "%s", chance(50) ? "IPv6:" : "ipV6:");
                    for (unsigned i = 0; i < g && l < 100; i++) {
                        if (i) tmp[l++] = ':';
                        if (chance(15)) tmp[l++] = ':';
                        unsigned k = (unsigned)below(5);
                        for (unsigned j = 0; j < k; j++) tmp[l++] = hexd[below(22)];
                    }
                    if (chance(10)) l += (size_t)snprintf(tmp + l, sizeof tmp - l, "%u.%u.%u.%u", (unsigned)below(256),
                                                          (unsigned)below(256), (unsigned)below(256), (unsigned)below(256));
                    tmp[l] = 0;
                    len = put(buf, len, cap, tmp);
                    break;
                }
                case 2: {  // IBAN-ish
                    size_t l = 0;
                    tmp[l++] = (char)('A' + below(26));
                    tmp[l++] = (char)('A' + below(26));
                    unsigned k = (unsigned)below(34);
                    int spaced = chance(50);
                    for (unsigned j = 0; j < k; j++) {
                        if (spaced && j % 4 == 2) tmp[l++] = ' ';
                        tmp[l++] = chance(70) ? (char)('0' + below(10)) : (char)('A' + below(26));
                    }
                    tmp[l] = 0;
                    len = put(buf, len, cap, tmp);
                    break;
                }
                case 3: len = put(buf, len, cap, chance(50) ? " " : "\n"); break;
                case 4: len = put(buf, len, cap, "the quick brown fox jumps over a lazy dog "); break;
                case 5: len = put(buf, len, cap, "DEAD BEEF CAFE 0123 4567 89AB:CD:EF "); break;
                case 6: {
                    size_t n = below(8) + 1;
                    for (size_t i = 0; i < n && len < cap; i++) buf[len++] = (uint8_t)rnd();
                    break;
                }
                case 7: {  // one class byte repeated
                    size_t n = below(100) + 1;
                    uint8_t b = c->n_members ? c->members[below(c->n_members)] : 'x';
                    for (size_t i = 0; i < n && len < cap; i++) buf[len++] = b;
                    break;
                }
                default: {
                    size_t n = below(30) + 1;
                    for (size_t i = 0; i < n && len < cap && c->n_members; i++)
                        buf[len++] = chance(90) ? c->members[below(c->n_members)] : (uint8_t)rnd();
                    break;
                }
            }
        }
    }
    return len;
}

// MARK: - Chunkings

static size_t next_chunk(unsigned chunking, size_t left) {
    size_t n;
    switch (chunking) {
        case 0: n = left; break;                       // one write
        case 1: n = 1; break;                          // 1-byte writes
        case 2: n = below(8) + 1; break;
        case 3: n = below(130) + 1; break;
        case 4: n = 64 * (below(4) + 1); break;        // whole blocks
        case 5: n = chance(30) ? 0 : below(700) + 1;   // with empty writes
            break;
        default: n = chance(50) ? 1 : below(200); break;
    }
    return n < left ? n : left;
}
#define N_CHUNKINGS 7

// MARK: - Compare

static void dump(const events *e, const char *name) {
    fprintf(stderr, "%s (%zu):\n", name, e->count);
    for (size_t i = 0; i < e->count && i < 40; i++)
        fprintf(stderr, "  call %u tag %u: (%" PRIu64 ", %" PRIu64 ", %" PRIu64 ")\n", e->items[i].call, e->items[i].tag,
                e->items[i].start, e->items[i].end, e->items[i].accept_from);
}

static int init_fast(classruns_state *f, const config *c) {
    if (c->kind == CFG_IPV6) return classruns_init_ipv6(f, c->max_run, c->overlap);
    if (c->kind == CFG_IBAN) return classruns_init_iban(f, c->max_run, c->overlap);
    return classruns_init(f, c->run, c->counted, c->min_length, c->min_count, c->max_run, c->overlap);
}

static int compare(const uint8_t *data, size_t len, const config *c, unsigned chunking, uint64_t base, unsigned peek_pct,
                   unsigned flush_pct, unsigned gap_pct, uint64_t *windows) {
    ref_classruns r;
    classruns_state f;
    ref_classruns_init(&r, c->run, c->counted, c->min_length, c->min_count, c->max_run, c->overlap);
    if (!init_fast(&f, c)) abort();
    if ((c->kind == CFG_IPV6 || c->kind == CFG_IBAN) && !f.nibble_ok) {
        fprintf(stderr, "%s does not factor\n", cfg_names[c->kind]);
        abort();
    }
    ev_ref.count = ev_fast.count = 0;
    size_t at = 0;
    uint32_t call = 0;
    uint64_t skew = 0;
    while (at < len || call == 0) {
        size_t n = next_chunk(chunking, len - at);
        if (chance(gap_pct)) skew += below(chance(50) ? 8 : 600);
        uint64_t off = base + at + skew;
        ev_ref.tag = ev_fast.tag = 0;
        ev_ref.call = ev_fast.call = call;
        ref_classruns_scan(&r, data + at, n, off, record, &ev_ref);
        classruns_scan(&f, data + at, n, off, record, &ev_fast);
        at += n;
        if (chance(peek_pct)) {
            ev_ref.tag = ev_fast.tag = 1;
            ref_classruns_peek(&r, base + at + skew, record, &ev_ref);
            classruns_peek(&f, base + at + skew, record, &ev_fast);
        }
        if (chance(flush_pct)) {  // finish mid-stream (often idle: no run open)
            ev_ref.tag = ev_fast.tag = 2;
            ref_classruns_finish(&r, base + at + skew, record, &ev_ref);
            classruns_finish(&f, base + at + skew, record, &ev_fast);
        }
        call++;
        if (len == 0) break;
    }
    ev_ref.tag = ev_fast.tag = 2;
    ref_classruns_finish(&r, base + len + skew, record, &ev_ref);
    classruns_finish(&f, base + len + skew, record, &ev_fast);
    ref_classruns_finish(&r, base + len + skew + 5, record, &ev_ref);  // idle finish
    classruns_finish(&f, base + len + skew + 5, record, &ev_fast);
    *windows += ev_ref.count;
    if (ev_ref.count != ev_fast.count || (ev_ref.count && memcmp(ev_ref.items, ev_fast.items, ev_ref.count * sizeof(event)) != 0)) {
        fprintf(stderr, "MISMATCH kernel=%s cfg=%s nibble_ok=%u len=%zu min_length=%" PRIu64 " min_count=%" PRIu64
                        " max_run=%" PRIu64 " overlap=%" PRIu64 " chunking=%u base=%" PRIu64 "\n",
                classruns_kernel_name(), cfg_names[c->kind], f.nibble_ok, len, c->min_length, c->min_count, c->max_run,
                c->overlap, chunking, base);
        dump(&ev_ref, "ref");
        dump(&ev_fast, "fast");
        FILE *out = fopen("/tmp/classruns_fuzz_fail.bin", "wb");
        if (out) { fwrite(data, 1, len, out); fclose(out); }
        return 0;
    }
    return 1;
}

/// Every byte value, inside and around runs, at every alignment, for the IPv6 and IBAN classes
/// and a fixed factoring set that holds high bytes and 0x00.
static int every_byte(uint64_t *checks) {
    config cs[3];
    gen_config(&cs[0], CFG_IPV6);
    gen_config(&cs[1], CFG_IBAN);
    gen_config(&cs[2], CFG_RANGES);
    memset(cs[2].run, 0, 256);
    memset(cs[2].counted, 0, 256);
    add_range(cs[2].run, 0x00, 0x03);
    add_range(cs[2].run, 0x80, 0x8F);
    add_range(cs[2].run, 0xF0, 0xFF);
    add_range(cs[2].run, '0', '9');
    add_range(cs[2].counted, 0xF5, 0xFF);
    cs[2].counted['7'] = 1;
    cs[2].min_length = 2;
    cs[2].min_count = 1;
    uint8_t buf[256];
    uint64_t windows = 0;
    static const uint64_t max_runs[] = {1000, 64, 20};
    for (unsigned v = 0; v < 256; v++) {
        for (unsigned align = 0; align < 64; align++) {
            for (unsigned ci = 0; ci < 3; ci++) {
                config c = cs[ci];
                size_t len = 0;
                memset(buf, '~', sizeof buf);
                len = align;
                const char *pre = ci == 0 ? "::" : (ci == 1 ? "GB12" : "0");
                len = put(buf, len, sizeof buf, pre);
                for (int i = 0; i < 70 && len < sizeof buf - 16; i++) buf[len++] = (uint8_t)v;
                len = put(buf, len, sizeof buf, pre);
                if (len < sizeof buf) buf[len++] = (uint8_t)v;
                len = put(buf, len, sizeof buf, "12:34:56");
                for (unsigned m = 0; m < 3; m++) {
                    c.max_run = max_runs[m];
                    c.overlap = m == 2 ? 5 : 0;
                    for (unsigned chunking = 0; chunking < 5; chunking++) {
                        if (!compare(buf, len, &c, chunking, 0, 0, 0, 0, &windows)) {
                            fprintf(stderr, "byte value %u, alignment %u\n", v, align);
                            return 0;
                        }
                        (*checks)++;
                    }
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
        if (!classruns_force_kernel(kernels[k])) {
            printf("kernel %-8s: not supported here, skipped\n", kernels[k]);
            continue;
        }
        uint64_t checks = 0;
        if (!every_byte(&checks)) return 1;
        printf("kernel %-8s: every byte value at every alignment: %" PRIu64 " checks equal\n", kernels[k], checks);
        rng_state = seed * 0x1000 + k;
        uint64_t runs = 0, windows = 0, bytes = 0;
        uint64_t per_cfg[N_CFG] = {0}, factored[N_CFG] = {0}, win_cfg[N_CFG] = {0};
        for (uint64_t i = 0; i < inputs; i++) {
            config c;
            gen_config(&c, (unsigned)(i % N_CFG));
            classruns_state probe;
            init_fast(&probe, &c);
            per_cfg[c.kind]++;
            factored[c.kind] += probe.nibble_ok;
            size_t len = gen_input(&c, data);
            uint64_t base = chance(80) ? 0 : (chance(50) ? below(1 << 20) : (1ull << 40) + below(1000));
            unsigned peek_pct = chance(50) ? 0 : (unsigned)below(60) + 1;
            unsigned flush_pct = chance(70) ? 0 : (unsigned)below(10) + 1;
            unsigned gap_pct = chance(95) ? 0 : (unsigned)below(50) + 1;
            unsigned chunkings[3] = {0, (unsigned)below(N_CHUNKINGS), (unsigned)below(N_CHUNKINGS)};
            unsigned nchunk = len > 3000 ? 2 : 3;
            for (unsigned ch = 0; ch < nchunk; ch++) {
                uint64_t before = windows;
                if (!compare(data, len, &c, chunkings[ch], base, ch == 0 ? 0 : peek_pct, ch == 0 ? 0 : flush_pct,
                             ch == 0 ? 0 : gap_pct, &windows))
                    return 1;
                win_cfg[c.kind] += windows - before;
                runs++;
                bytes += len;
            }
        }
        printf("kernel %-8s: %" PRIu64 " inputs, %" PRIu64 " chunked runs, %" PRIu64 " bytes, %" PRIu64
               " windows compared: all equal\n",
               kernels[k], inputs, runs, bytes, windows);
        for (unsigned t = 0; t < N_CFG; t++)
            printf("    %-6s: %" PRIu64 " inputs (%" PRIu64 " nibble-factoring, %" PRIu64 " table path), %" PRIu64 " windows\n",
                   cfg_names[t], per_cfg[t], factored[t], per_cfg[t] - factored[t], win_cfg[t]);
        total_inputs += inputs;
        total_runs += runs;
        total_windows += windows;
        total_bytes += bytes;
    }
    printf("TOTAL: %" PRIu64 " inputs, %" PRIu64 " chunked runs, %" PRIu64 " bytes, %" PRIu64 " windows: no mismatch\n",
           total_inputs, total_runs, total_bytes, total_windows);
    return 0;
}
