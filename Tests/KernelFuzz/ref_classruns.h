#ifndef SLUICE_CLASSRUNS_REF_H
#define SLUICE_CLASSRUNS_REF_H
// Byte-by-byte reference for classruns.c (same semantics as classruns.h describes).
#include <stddef.h>
#include <stdint.h>
#include "classruns.h"

typedef struct {
    uint8_t run[256], counted[256];
    uint64_t min_length, min_count, max_run, overlap;
    int open;
    uint64_t window_start, accept_from, count;
    int qualified;
} ref_classruns;

void ref_classruns_init(ref_classruns *s, const uint8_t run[256], const uint8_t counted[256], uint64_t min_length,
                        uint64_t min_count, uint64_t max_run, uint64_t overlap);
void ref_classruns_scan(ref_classruns *s, const uint8_t *bytes, size_t count, uint64_t offset, classruns_window_fn fn, void *ctx);
void ref_classruns_finish(ref_classruns *s, uint64_t position, classruns_window_fn fn, void *ctx);
void ref_classruns_peek(const ref_classruns *s, uint64_t position, classruns_window_fn fn, void *ctx);
#endif
