// SPDX-License-Identifier: GPL-2.0
/* stats_loop.h with a loop of 16 iterations. */
#define LOOP_BOUND 16
#include "stats_loop.h"
