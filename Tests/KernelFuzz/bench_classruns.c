// Throughput: ref_classruns.c (byte loop) against classruns.c, IPv6 and IBAN configurations, on the
// concatenation of the given files, in 16 KiB calls, median of several runs.
//
//   python3 /work/main/scripts/gen-corpus.py --out /tmp/crbench --bytes 4194304 --seed 3 --density 300 --no-labels
//   cc -O2 -o bench_classruns bench_classruns.c classruns.c ref_classruns.c && ./bench_classruns /tmp/crbench/*.txt

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "classruns.h"
#include "ref_classruns.h"

#define CHUNK 16384
#define REPS 11
#define P_MAX 256
#define P_OVERLAP 48

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

static int cfg_iban = 0;  // 0: IPv6, 1: IBAN

static sink run_ref(const uint8_t *data, size_t len) {
    sink s = {0, 1469598103934665603ull};
    classruns_state f;  // only to get the tables
    if (cfg_iban) classruns_init_iban(&f, P_MAX, P_OVERLAP);
    else classruns_init_ipv6(&f, P_MAX, P_OVERLAP);
    uint8_t run[256], counted[256];
    for (int b = 0; b < 256; b++) {
        run[b] = f.table[b] & 1;
        counted[b] = f.table[b] & 2;
    }
    ref_classruns r;
    ref_classruns_init(&r, run, counted, f.min_length, f.min_count, P_MAX, P_OVERLAP);
    for (size_t at = 0; at < len; at += CHUNK) {
        size_t n = len - at < CHUNK ? len - at : CHUNK;
        ref_classruns_scan(&r, data + at, n, at, on_window, &s);
    }
    ref_classruns_finish(&r, len, on_window, &s);
    return s;
}

static sink run_fast(const uint8_t *data, size_t len) {
    sink s = {0, 1469598103934665603ull};
    classruns_state f;
    if (cfg_iban) classruns_init_iban(&f, P_MAX, P_OVERLAP);
    else classruns_init_ipv6(&f, P_MAX, P_OVERLAP);
    for (size_t at = 0; at < len; at += CHUNK) {
        size_t n = len - at < CHUNK ? len - at : CHUNK;
        classruns_scan(&f, data + at, n, at, on_window, &s);
    }
    classruns_finish(&f, len, on_window, &s);
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

static void report(const char *label, const uint8_t *data, size_t len, const char *only) {
    static const char *kernels[] = {"portable", "ssse3", "avx2", "avx512bw"};
    for (cfg_iban = 0; cfg_iban < 2; cfg_iban++) {
        const char *cfg = cfg_iban ? "iban" : "ipv6";
        sink sr, sf;
        double ref = measure(run_ref, data, len, &sr);
        printf("%-22s %-4s %9.1f MB/s  ref (byte loop)        %" PRIu64 " windows\n", label, cfg, ref, sr.count);
        for (int k = 0; k < 4; k++) {
            if (only && strcmp(only, kernels[k]) != 0) continue;
            if (!classruns_force_kernel(kernels[k])) continue;
            double fast = measure(run_fast, data, len, &sf);
            printf("%-22s %-4s %9.1f MB/s  fast %-9s x%-6.1f %" PRIu64 " windows %s\n", label, cfg, fast, kernels[k],
                   fast / ref, sf.count,
                   (sf.count == sr.count && sf.hash == sr.hash) ? "(same as ref)" : "(DIFFERENT FROM REF!)");
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_classruns FILE... (e.g. /tmp/crbench/*.txt); env CR_KERNEL=avx2 for one kernel\n");
        return 2;
    }
    const char *only = getenv("CR_KERNEL");
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
    printf("corpus: %d files, %zu bytes; max_run %d, overlap %d; %d KiB calls, median of %d\n", argc - 1, len, P_MAX,
           P_OVERLAP, CHUNK / 1024, REPS);
    report("corpus", data, len, only);

    // Adversarial: hex/upper-case/digit-dense text (run bytes almost everywhere, long runs cut).
    size_t dlen = len < (8u << 20) ? len : (8u << 20);
    uint8_t *dense = malloc(dlen);
    uint64_t x = 88172645463325252ull;
    const char *alpha = "0123456789abcdefABCDEF:. XYZ:0123\n";
    size_t an = strlen(alpha);
    for (size_t i = 0; i < dlen; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        dense[i] = (uint8_t)alpha[x % an];
    }
    report("dense hex/upper/digits", dense, dlen, only);
    return 0;
}
