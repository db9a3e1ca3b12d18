/*
 * timeunit: the tree's one clock unit is the nanosecond (uint64_t, from
 * CLOCK_MONOTONIC, read once per loop turn). These are the other units in
 * nanoseconds; unsigned, so cast them for signed arithmetic.
 */
#ifndef WTRELAY_TIMEUNIT_H
#define WTRELAY_TIMEUNIT_H

#define NS_PER_US 1000ull
#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

#endif
