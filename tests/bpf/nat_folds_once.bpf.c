// SPDX-License-Identifier: GPL-2.0
#define BUG_FOLDS_ONCE
#include "nat_bugs.h"
