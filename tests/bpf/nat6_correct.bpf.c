// SPDX-License-Identifier: GPL-2.0
#include "nat6_bugs.h"
