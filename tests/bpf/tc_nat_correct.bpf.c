// SPDX-License-Identifier: GPL-2.0
#include "tc_nat_bugs.h"
