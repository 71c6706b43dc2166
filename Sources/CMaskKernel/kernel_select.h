// Which SIMD kernel the run finders (runs.c, classruns.c) use: the kernels, which of them this
// CPU runs, and their names. Each finder keeps its own table of scan functions indexed by
// `mk_kernel` and its own atomically published choice (MK_DEFINE_KERNEL_DISPATCH). Private to
// CMaskKernel.
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

/// The dispatch of one finder: given `scan_fn`, the scan function type, and `kernels`, its table
/// indexed by `mk_kernel` (NULL where the build has none), defines `choose()` (the published
/// choice, made once: concurrent first calls pick the same one) and the public
/// `PREFIX_force_kernel(name)` and `PREFIX_kernel_name()`.
#define MK_DEFINE_KERNEL_DISPATCH(PREFIX)                                                          \
    static scan_fn chosen = 0;                                                                     \
    static const char *chosen_name = "portable";                                                   \
                                                                                                   \
    static void set_chosen(int kernel) {                                                           \
        __atomic_store_n(&chosen_name, mk_kernel_names[kernel], __ATOMIC_RELAXED);                \
        __atomic_store_n(&chosen, kernels[kernel], __ATOMIC_RELEASE);                              \
    }                                                                                              \
                                                                                                   \
    static scan_fn choose(void) {                                                                  \
        scan_fn fn = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);                                   \
        if (fn) return fn;                                                                         \
        int kernel = mk_kernel_best();                                                             \
        if (!kernels[kernel]) kernel = MK_KERNEL_PORTABLE;                                         \
        set_chosen(kernel);                                                                        \
        return kernels[kernel];                                                                    \
    }                                                                                              \
                                                                                                   \
    int PREFIX##_force_kernel(const char *name) {                                                  \
        int kernel = mk_kernel_named(name);                                                        \
        if (kernel < 0 || !kernels[kernel] || !mk_kernel_supported(kernel)) return 0;              \
        set_chosen(kernel);                                                                        \
        return 1;                                                                                  \
    }                                                                                              \
                                                                                                   \
    const char *PREFIX##_kernel_name(void) {                                                       \
        choose();                                                                                  \
        return __atomic_load_n(&chosen_name, __ATOMIC_RELAXED);                                    \
    }

#endif
