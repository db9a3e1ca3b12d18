/*
 * filewatch: see include/wtrelay/filewatch.h.
 */
#include "wtrelay/filewatch.h"

bool filewatch_changed(const char *path, struct stat *seen)
{
  struct stat st;
  if (stat(path, &st) < 0)
    return false;
  bool changed = st.st_mtim.tv_sec != seen->st_mtim.tv_sec ||
                 st.st_mtim.tv_nsec != seen->st_mtim.tv_nsec || st.st_size != seen->st_size ||
                 st.st_ino != seen->st_ino;
  *seen = st;
  return changed;
}
