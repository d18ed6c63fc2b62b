/* SPDX-License-Identifier: MIT */
#pragma once

/* The agent's backend of the logging API (common/log.h): short lines on stderr (the console in init mode),
 * prefixed "tether-agent: ", one write() each. It takes no LogFields. Only top-level code (the loop, the
 * transport, main) logs; the pure modules return errors instead. */

#include "log.h"

/* LOG_ERR ... LOG_DEBUG; default LOG_INFO. */
void log_set_max_level(int level);
int log_get_max_level(void);
