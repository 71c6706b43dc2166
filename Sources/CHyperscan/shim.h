#ifndef SLUICE_CHYPERSCAN_SHIM_H
#define SLUICE_CHYPERSCAN_SHIM_H

// Hyperscan 5.4 API (Vectorscan is API-compatible). Debian installs the headers under <hs/>.
#include <hs/hs.h>

#endif
