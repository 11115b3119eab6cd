// SPDX-License-Identifier: GPL-2.0
#define BUG_FORGETS_PSEUDO_HEADER
#include "pong6_bugs.h"
