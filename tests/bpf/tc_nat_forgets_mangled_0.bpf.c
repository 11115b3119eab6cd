// SPDX-License-Identifier: GPL-2.0
#define BUG_FORGETS_MANGLED_0
#include "tc_nat_bugs.h"
