/* clone3 with CLONE_VM | CLONE_VFORK | CLONE_INTO_CGROUP: a child that shares
 * the agent's memory (no page-table copy, no copy-on-write faults), runs on
 * its own stack, and is born in its exec's cgroup (no write to cgroup.procs,
 * no migration). libc has no wrapper that runs a function on a new stack for
 * clone3, so the system call is made here, for x86_64 and aarch64. */
#define _GNU_SOURCE
#include "agent.h"
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#define CLONE3_NR 435
#define SM_CLONE_VM 0x00000100ull
#define SM_CLONE_VFORK 0x00004000ull
#define SM_CLONE_INTO_CGROUP 0x200000000ull

/* The kernel's struct clone_args (version 2, with cgroup). */
struct sm_clone_args {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
      set_tid_size, cgroup;
};

#if defined(__x86_64__)
static long clone3_call(struct sm_clone_args *ca, int (*fn)(void *), void *arg) {
  long ret;
  register void *r12 __asm__("r12") = (void *)fn;
  register void *r13 __asm__("r13") = arg;
  /* The child returns from the system call on the new stack: it calls fn
   * there and exits with its result, never returning into this frame. */
  __asm__ volatile("syscall\n\t"
                   "test %%rax, %%rax\n\t"
                   "jnz 1f\n\t"
                   "xor %%ebp, %%ebp\n\t"
                   "mov %%r13, %%rdi\n\t"
                   "call *%%r12\n\t"
                   "mov %%eax, %%edi\n\t"
                   "mov $60, %%eax\n\t"
                   "syscall\n\t"
                   "hlt\n"
                   "1:"
                   : "=a"(ret)
                   : "a"((long)CLONE3_NR), "D"(ca), "S"(sizeof *ca), "r"(r12), "r"(r13)
                   : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
static long clone3_call(struct sm_clone_args *ca, int (*fn)(void *), void *arg) {
  register long x0 __asm__("x0") = (long)ca;
  register long x1 __asm__("x1") = (long)sizeof *ca;
  register long x8 __asm__("x8") = CLONE3_NR;
  register long x9 __asm__("x9") = (long)fn;
  register long x10 __asm__("x10") = (long)arg;
  __asm__ volatile("svc #0\n\t"
                   "cbnz x0, 1f\n\t"
                   "mov x29, xzr\n\t"
                   "mov x0, x10\n\t"
                   "blr x9\n\t"
                   "mov x8, #93\n\t"
                   "svc #0\n"
                   "1:"
                   : "+r"(x0)
                   : "r"(x1), "r"(x8), "r"(x9), "r"(x10)
                   : "x30", "memory");
  return x0;
}
#endif

pid_t clone_vfork_into(int (*fn)(void *), void *arg, void *stack, size_t size, int cg_dir) {
#if defined(__x86_64__) || defined(__aarch64__)
  struct sm_clone_args ca;
  memset(&ca, 0, sizeof ca);
  ca.flags = SM_CLONE_VM | SM_CLONE_VFORK | (cg_dir >= 0 ? SM_CLONE_INTO_CGROUP : 0);
  ca.exit_signal = SIGCHLD;
  ca.stack = (uint64_t)(uintptr_t)stack;
  ca.stack_size = size;
  ca.cgroup = cg_dir >= 0 ? (uint64_t)cg_dir : 0;
  long r = clone3_call(&ca, fn, arg);
  if (r < 0) {
    errno = (int)-r;
    return -1;
  }
  return (pid_t)r;
#else
  (void)fn, (void)arg, (void)stack, (void)size, (void)cg_dir;
  errno = ENOSYS;
  return -1;
#endif
}
