// Which SIMD kernel the run finders (runs.c, classruns.c) use: the kernels, which of them this
// CPU runs, and their names. Each finder keeps its own table of scan functions indexed by
// `mk_kernel` and its own atomically published choice. Private to CMaskKernel.
#ifndef SLUICE_KERNEL_SELECT_H
#define SLUICE_KERNEL_SELECT_H

#include <string.h>

typedef enum { MK_KERNEL_PORTABLE, MK_KERNEL_SSSE3, MK_KERNEL_AVX2, MK_KERNEL_AVX512BW, MK_KERNEL_COUNT } mk_kernel;

static const char *const mk_kernel_names[MK_KERNEL_COUNT] = {"portable", "ssse3", "avx2", "avx512bw"};

/// The kernel named `name`, or -1.
static inline int mk_kernel_named(const char *name) {
    for (int k = 0; k < MK_KERNEL_COUNT; k++)
        if (strcmp(name, mk_kernel_names[k]) == 0) return k;
    return -1;
}

/// Whether this CPU runs `kernel` (the SIMD ones need BMI1/2 and POPCNT besides their vectors).
static inline int mk_kernel_supported(int kernel) {
    if (kernel == MK_KERNEL_PORTABLE) return 1;
#if defined(__x86_64__) || defined(_M_X64)
    __builtin_cpu_init();
    switch (kernel) {
    case MK_KERNEL_AVX512BW:
        return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("bmi")
            && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt");
    case MK_KERNEL_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2")
            && __builtin_cpu_supports("popcnt");
    case MK_KERNEL_SSSE3:
        return __builtin_cpu_supports("ssse3") && __builtin_cpu_supports("popcnt");
    default:
        return 0;
    }
#else
    return 0;
#endif
}

/// The widest kernel this CPU runs.
static inline int mk_kernel_best(void) {
    for (int k = MK_KERNEL_COUNT - 1; k > MK_KERNEL_PORTABLE; k--)
        if (mk_kernel_supported(k)) return k;
    return MK_KERNEL_PORTABLE;
}

#endif
