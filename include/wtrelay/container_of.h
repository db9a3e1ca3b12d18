/*
 * container_of: the structure that embeds a member, from a pointer to that
 * member. Every module that hands out an embedded member (a timer, a switch
 * port, a connection's callbacks) and gets it back in a callback uses this
 * one definition.
 */
#ifndef WTRELAY_CONTAINER_OF_H
#define WTRELAY_CONTAINER_OF_H

#include <stddef.h>

#define container_of(p, T, m) ((T *)(void *)((char *)(p)-offsetof(T, m)))

#endif
