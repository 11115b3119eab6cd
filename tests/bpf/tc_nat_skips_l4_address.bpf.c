// SPDX-License-Identifier: GPL-2.0
#define BUG_SKIPS_L4_ADDRESS
#include "tc_nat_bugs.h"
