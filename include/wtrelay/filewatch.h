/*
 * filewatch: is a file the operator may replace (certificate, key, token
 * key) different from when we last looked? Polled by the relay's timer and
 * on SIGHUP; shared by the certificate store (server.c) and the token key
 * (auth.c). No I/O beyond one stat().
 */
#ifndef WTRELAY_FILEWATCH_H
#define WTRELAY_FILEWATCH_H

#include <stdbool.h>
#include <sys/stat.h>

/* True when path's mtime, size or inode differ from *seen (a file replaced
 * by rename counts); *seen takes the new stat. False when stat fails (a
 * file being replaced is picked up on the next look). */
bool filewatch_changed(const char *path, struct stat *seen);

#endif
