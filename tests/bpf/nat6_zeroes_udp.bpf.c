// SPDX-License-Identifier: GPL-2.0
#define BUG_ZEROES_UDP
#include "nat6_bugs.h"
