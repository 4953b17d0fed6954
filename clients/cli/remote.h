/* SPDX-License-Identifier: MIT */
/* remote.h -- `quarry --remote`: the shell's commands against a quarryd (remote.c). */
#ifndef QUARRY_CLI_REMOTE_H
#define QUARRY_CLI_REMOTE_H

/* Runs COMMAND ARGS... (argv[0] is the command) against the server at addr.
 * api_key and tls_ca may be NULL. Returns the process exit status. */
int remote_main(const char *addr, const char *api_key, const char *tls_ca, int argc,
                char **argv);

#endif
