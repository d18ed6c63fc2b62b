/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#pragma once

/* The CLI's backend of the logging API (common/log.h): one line on stderr, "tether: ...", at every level (the
 * CLI says only what its user needs to see); it takes no LogFields. Only top-level code (commands, main) logs. */

#include "log.h"
