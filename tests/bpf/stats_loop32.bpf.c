// SPDX-License-Identifier: GPL-2.0
/* stats_loop.h with a loop of 32 iterations. */
#define LOOP_BOUND 32
#include "stats_loop.h"
