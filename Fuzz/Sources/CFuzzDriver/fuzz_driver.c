// Declarations only (fuzz_driver.h): libFuzzer itself comes with -sanitize=fuzzer.
#include "fuzz_driver.h"
