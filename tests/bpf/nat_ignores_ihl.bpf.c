// SPDX-License-Identifier: GPL-2.0
#define BUG_IGNORES_IHL
#include "nat_bugs.h"
