// SPDX-License-Identifier: GPL-2.0
#define BUG_FORGETS_PSEUDO_FLAG
#include "tc_nat_bugs.h"
