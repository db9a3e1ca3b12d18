/*
 * upcall: a deliberate layering break for the layering check's own test.
 * It is built into a library that links only the core layer and calls the
 * relay layer, so its layer check must fail to link (check-fails.sh).
 */
#include <stddef.h>

#include "wtrelay/relay.h"

int layercheck_upcall(void)
{
  return relay_init(NULL, NULL, NULL, NULL);
}
