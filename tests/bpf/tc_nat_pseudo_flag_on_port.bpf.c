// SPDX-License-Identifier: GPL-2.0
#define BUG_PSEUDO_FLAG_ON_PORT
#include "tc_nat_bugs.h"
