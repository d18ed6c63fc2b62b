/* SPDX-License-Identifier: MIT */
#pragma once

/* The command-line front ends: `tether-agent notify`, `tether-agent milestone`, --help and --version.
 * Each returns the process exit code. */

int cli_notify(int argc, char *const *argv);
int cli_milestone(int argc, char *const *argv);
void cli_help(void);
void cli_version(void);
