// SPDX-License-Identifier: GPL-2.0
#define BUG_UDP0_STALE_CSUM
#include "tc_nat_bugs.h"
