// SPDX-License-Identifier: GPL-2.0
#define BUG_IPV6_ADDRESS_STALE_CSUM
#include "tc_nat_bugs.h"
