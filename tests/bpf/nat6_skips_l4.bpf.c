// SPDX-License-Identifier: GPL-2.0
#define BUG_SKIPS_L4
#include "nat6_bugs.h"
