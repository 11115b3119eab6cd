// SPDX-License-Identifier: GPL-2.0
#include "nat_bugs.h"
