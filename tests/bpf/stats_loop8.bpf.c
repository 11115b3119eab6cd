// SPDX-License-Identifier: GPL-2.0
/* stats_loop.h with a loop of 8 iterations. */
#define LOOP_BOUND 8
#include "stats_loop.h"
