/*
 * The two-thread frame ring test as a plain program, for sanitizers whose
 * runtime Criterion does not start under (ThreadSanitizer):
 *   gcc -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=thread -Iinclude \
 *       tests/unit/fring_stress_main.c src/core/fring.c -o fring_tsan && ./fring_tsan
 * Exit 0 when every frame arrived in order and byte-exact and
 * pushed + dropped = attempts, popped = pushed.
 */
#include <stdio.h>

#include "fring_stress.h"

int main(void)
{
  static struct stress st;
  if (stress_run(&st, 256) < 0) {
    perror("fring_stress");
    return 2;
  }
  uint64_t pushed = atomic_load(&st.r.ctr.pushed), dropped = atomic_load(&st.r.ctr.dropped_full),
           popped = atomic_load(&st.r.ctr.popped);
  printf("attempts=%llu pushed=%llu dropped=%llu popped=%llu got=%llu bad=%llu "
         "out_of_order=%llu wakeups=%llu rings=%llu\n",
         (unsigned long long)st.attempts, (unsigned long long)pushed, (unsigned long long)dropped,
         (unsigned long long)popped, (unsigned long long)st.got, (unsigned long long)st.bad,
         (unsigned long long)st.out_of_order, (unsigned long long)st.wakeups,
         (unsigned long long)atomic_load(&st.r.ctr.rings));
  bool ok = st.attempts == STRESS_FRAMES && !st.bad && !st.out_of_order && st.got == popped &&
            pushed == popped && dropped == st.refused && pushed + dropped == STRESS_FRAMES;
  fring_fini(&st.r);
  puts(ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
