// Throughput: ref.c (byte loop, the Swift finder's algorithm in C) against runs.c, on the
// concatenation of the given files, in 16 KiB calls, median of several runs.
//
//   python3 /work/main/scripts/gen-corpus.py --out /tmp/runsbench --bytes 4194304 --seed 3 --density 300 --no-labels
//   cc -O2 -o bench bench.c runs.c ref.c && ./bench /tmp/runsbench/*.txt

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ref.h"
#include "runs.h"

#define CHUNK 16384
#define REPS 15

typedef struct {
    uint64_t count, hash;
} sink;

static void on_window(void *ctx, uint64_t start, uint64_t end, uint64_t accept_from) {
    sink *s = ctx;
    s->count++;
    s->hash = (s->hash ^ start) * 0x100000001B3ull;
    s->hash = (s->hash ^ end) * 0x100000001B3ull;
    s->hash = (s->hash ^ accept_from) * 0x100000001B3ull;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint64_t P_MIN = 7, P_MAX = 256, P_OVERLAP = 22, P_DOTTED = 4;

static sink run_ref(const uint8_t *data, size_t len) {
    sink s = {0, 1469598103934665603ull};
    ref_state r;
    ref_init(&r, (int64_t)P_MIN, (int64_t)P_MAX, (int64_t)P_OVERLAP, (int64_t)P_DOTTED);
    for (size_t at = 0; at < len; at += CHUNK) {
        size_t n = len - at < CHUNK ? len - at : CHUNK;
        ref_scan(&r, data + at, n, (int64_t)at, on_window, &s);
    }
    ref_finish(&r, (int64_t)len, on_window, &s);
    return s;
}

static sink run_fast(const uint8_t *data, size_t len) {
    sink s = {0, 1469598103934665603ull};
    runs_state f;
    runs_init(&f, P_MIN, P_MAX, P_OVERLAP, P_DOTTED);
    for (size_t at = 0; at < len; at += CHUNK) {
        size_t n = len - at < CHUNK ? len - at : CHUNK;
        runs_scan(&f, data + at, n, at, on_window, &s);
    }
    runs_finish(&f, len, on_window, &s);
    return s;
}

/// Median MB/s (1 MB = 1e6 bytes) of REPS runs.
static double measure(sink (*fn)(const uint8_t *, size_t), const uint8_t *data, size_t len, sink *out) {
    double mbps[REPS];
    for (int i = 0; i < REPS; i++) {
        double t0 = now();
        *out = fn(data, len);
        double t1 = now();
        mbps[i] = len / (t1 - t0) / 1e6;
    }
    qsort(mbps, REPS, sizeof(double), cmp_double);
    return mbps[REPS / 2];
}

static void report(const char *label, const uint8_t *data, size_t len) {
    sink sr, sf;
    double ref = measure(run_ref, data, len, &sr);
    printf("%-28s %9.1f MB/s  ref (byte loop)        %" PRIu64 " windows\n", label, ref, sr.count);
    static const char *kernels[] = {"portable", "ssse3", "avx2", "avx512bw"};
    for (int k = 0; k < 4; k++) {
        if (!runs_force_kernel(kernels[k])) continue;
        double fast = measure(run_fast, data, len, &sf);
        printf("%-28s %9.1f MB/s  fast %-9s x%-6.1f %" PRIu64 " windows %s\n", label, fast, kernels[k], fast / ref,
               sf.count, (sf.count == sr.count && sf.hash == sr.hash) ? "(same as ref)" : "(DIFFERENT FROM REF!)");
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench FILE... (e.g. /tmp/runsbench/*.txt)\n");
        return 2;
    }
    size_t cap = 1 << 20, len = 0;
    uint8_t *data = malloc(cap);
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) { perror(argv[i]); return 1; }
        for (;;) {
            if (len + 65536 > cap) { cap *= 2; data = realloc(data, cap); }
            size_t n = fread(data + len, 1, 65536, f);
            if (n == 0) break;
            len += n;
        }
        fclose(f);
    }
    printf("corpus: %d files, %zu bytes; min_digits %" PRIu64 ", max_run %" PRIu64 ", overlap %" PRIu64
           ", dotted %" PRIu64 "; %d KiB calls, median of %d\n",
           argc - 1, len, P_MIN, P_MAX, P_OVERLAP, P_DOTTED, CHUNK / 1024, REPS);
    report("corpus", data, len);

    // Adversarial: digit- and separator-dense text (short runs everywhere, long runs cut).
    uint8_t *dense = malloc(len);
    uint64_t x = 88172645463325252ull;
    const char *alpha = "0123456789 .-/()+0123456789abc\n";
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        dense[i] = (uint8_t)alpha[x % 31];
    }
    report("dense digits/separators", dense, len);
    return 0;
}
