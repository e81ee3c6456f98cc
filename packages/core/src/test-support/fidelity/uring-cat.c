/* uring-cat FILE: prints FILE's first 64 KiB, read through io_uring
 * (IORING_OP_OPENAT, IORING_OP_READ, IORING_OP_CLOSE, one submission each)
 * with raw system calls and the mmap'ed rings, no liburing. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static int ring_fd;
static unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
static struct io_uring_sqe *sqes;
static struct io_uring_cqe *cqes;

static int setup(void) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  ring_fd = (int)syscall(__NR_io_uring_setup, 4, &p);
  if (ring_fd < 0) return -1;
  size_t sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  char *sq = mmap(NULL, sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd, IORING_OFF_SQ_RING);
  char *cq = mmap(NULL, cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd, IORING_OFF_CQ_RING);
  sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_POPULATE, ring_fd, IORING_OFF_SQES);
  if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) return -1;
  sq_tail = (unsigned *)(sq + p.sq_off.tail);
  sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
  sq_array = (unsigned *)(sq + p.sq_off.array);
  cq_head = (unsigned *)(cq + p.cq_off.head);
  cq_tail = (unsigned *)(cq + p.cq_off.tail);
  cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
  cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
  return 0;
}

/* Submits one SQE, waits for its completion, returns its result. */
static int run(struct io_uring_sqe *tmpl) {
  unsigned tail = *sq_tail, idx = tail & *sq_mask;
  sqes[idx] = *tmpl;
  sq_array[idx] = idx;
  __atomic_store_n(sq_tail, tail + 1, __ATOMIC_RELEASE);
  if (syscall(__NR_io_uring_enter, ring_fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) return -errno;
  unsigned head = __atomic_load_n(cq_head, __ATOMIC_ACQUIRE);
  if (head == __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE)) return -EIO;
  int res = cqes[head & *cq_mask].res;
  __atomic_store_n(cq_head, head + 1, __ATOMIC_RELEASE);
  return res;
}

int main(int argc, char **argv) {
  if (argc != 2) return fprintf(stderr, "usage: uring-cat FILE\n"), 2;
  if (setup() < 0) return fprintf(stderr, "io_uring_setup: %s\n", strerror(errno)), 2;
  struct io_uring_sqe s;
  memset(&s, 0, sizeof s);
  s.opcode = IORING_OP_OPENAT;
  s.fd = AT_FDCWD;
  s.addr = (uint64_t)(uintptr_t)argv[1];
  s.open_flags = O_RDONLY;
  int fd = run(&s);
  if (fd < 0) return fprintf(stderr, "openat: %s\n", strerror(-fd)), 1;
  static char buf[65536];
  memset(&s, 0, sizeof s);
  s.opcode = IORING_OP_READ;
  s.fd = fd;
  s.addr = (uint64_t)(uintptr_t)buf;
  s.len = sizeof buf;
  int n = run(&s);
  if (n < 0) return fprintf(stderr, "read: %s\n", strerror(-n)), 1;
  memset(&s, 0, sizeof s);
  s.opcode = IORING_OP_CLOSE;
  s.fd = fd;
  int c = run(&s);
  if (c < 0) return fprintf(stderr, "close: %s\n", strerror(-c)), 1;
  fwrite(buf, 1, (size_t)n, stdout);
  return 0;
}
