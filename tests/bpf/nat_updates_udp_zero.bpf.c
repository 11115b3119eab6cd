// SPDX-License-Identifier: GPL-2.0
#define BUG_UPDATES_UDP_ZERO
#include "nat_bugs.h"
