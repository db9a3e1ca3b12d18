/*
 * token: the `wtrelay token` subcommand (src/app, private to the programs).
 */
#ifndef WTRELAY_TOKEN_H
#define WTRELAY_TOKEN_H

/* `wtrelay token --key FILE --room PATH [--ttl DUR] [--mac M] [--sub S]
 * [--max-sessions N]`: prints a token. argv[0] is "token". Returns the exit
 * status (0, 1 on a key or signing failure, 2 on a usage error). */
int token_main(int argc, char **argv);

#endif
