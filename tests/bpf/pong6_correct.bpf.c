// SPDX-License-Identifier: GPL-2.0
#include "pong6_bugs.h"
