#ifndef SLUICE_COUNTING_MALLOC_H
#define SLUICE_COUNTING_MALLOC_H
#include <stdint.h>

/// Number of malloc, calloc, realloc and posix_memalign calls since the process started.
uint64_t sluice_allocation_count(void);

#endif
