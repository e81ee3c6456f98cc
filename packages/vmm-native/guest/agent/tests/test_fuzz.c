/* Bounded-time, seeded fuzz of the frame parser and the session dispatcher:
 * random bytes, mutated and truncated frames. Every byte the agent emits
 * must parse as a well-formed frame, and the session must still answer
 * HELLO and PING afterwards.
 *   test_fuzz [seconds] [seed] */
#define _GNU_SOURCE
#include "../agent.h"
#include "../util.h"
#include <fcntl.h>
#include "../proto.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

static uint64_t rng;
static uint32_t rnd(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (uint32_t)(rng >> 16);
}
static uint32_t below(uint32_t n) { return n ? rnd() % n : 0; }

static int failures;
static struct parser check;
static int saw_hello_ok, saw_pong;
static uint64_t out_frames;

/* Everything the agent queued must be well-formed frames. */
static void check_output(void) {
  size_t n = buf_avail(&A.outq);
  const uint8_t *p = A.outq.d + A.outq.head;
  while (n) {
    size_t used = 0;
    struct frame fr;
    int r = parser_feed(&check, p, n, &used, &fr);
    p += used, n -= used;
    if (r == P_NEED) break;
    if (r != P_FRAME) {
      printf("FAIL agent emitted a bad frame (parser result %d)\n", r);
      failures++;
      parser_reset(&check);
      continue;
    }
    struct field f[SM_MAX_FIELDS];
    if (msg_parse(fr.type, fr.payload, fr.len, f) < 0) {
      printf("FAIL agent emitted malformed type 0x%02x\n", fr.type);
      failures++;
    }
    if (fr.type == T_HELLO_OK) saw_hello_ok = 1;
    if (fr.type == T_PONG && f[0].u == 0x5eed) saw_pong = 1;
    out_frames++;
  }
  if (check.hlen || check.got) {
    printf("FAIL agent output ends inside a frame\n");
    failures++;
    parser_reset(&check);
  }
  buf_clear(&A.outq);
}

static void feed(const uint8_t *b, size_t n) {
  while (n) { /* random chunking */
    size_t k = 1 + below((uint32_t)n);
    session_input(b, k);
    b += k, n -= k;
  }
  reap_deadlist();
}

static size_t put_frame(uint8_t *o, uint8_t type, uint8_t flags, uint32_t stream,
                        const uint8_t *p, uint32_t len) {
  struct buf b = {0};
  buf_u16(&b, SM_MAGIC), buf_u8(&b, type), buf_u8(&b, flags), buf_u32(&b, stream);
  buf_u32(&b, len), buf_put(&b, p, len);
  size_t n = buf_avail(&b);
  memcpy(o, b.d, n);
  buf_free(&b);
  return n;
}

static size_t hello(uint8_t *o, uint64_t nonce) {
  struct buf b = {0};
  buf_u16(&b, 1), buf_u16(&b, 1), buf_u32(&b, 65536), buf_u32(&b, 262144), buf_u64(&b, nonce);
  size_t n = put_frame(o, T_HELLO, 0, 0, b.d, (uint32_t)buf_avail(&b));
  buf_free(&b);
  return n;
}

/* Types whose valid payload would touch the system are only sent shorter
 * than their smallest valid payload. */
static uint32_t min_len(uint8_t t) {
  switch (t) {
  case T_EXEC: return 28;
  case T_WRITE_FILE: return 12;
  case T_TCP_CONNECT: return 6;
  case T_WORKLOAD_CONFIG: return 26;
  default: return 0;
  }
}

int main(int argc, char **argv) {
  int secs = argc > 1 ? atoi(argv[1]) : 10;
  if (secs < 1) secs = 1;
  if (secs > 20) secs = 20;
  uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 0) : 0x5eed5eedull;
  rng = seed ? seed : 1;
  g_log_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  A.ep = epoll_create1(EPOLL_CLOEXEC);
  A.in_fd = A.out_fd = -1;
  A.connected = 1;
  A.peer_max = SM_DEFAULT_MAX_PAYLOAD;
  A.peer_window = SM_DEFAULT_WINDOW;
  parser_init(&A.ps, SM_DEFAULT_MAX_PAYLOAD);
  parser_init(&check, SM_MAX_MAX_PAYLOAD);
  static const uint8_t types[] = {T_HELLO, T_PING, T_EXEC, T_STDIN, T_RESIZE, T_SIGNAL,
                                  T_WRITE_FILE, T_FILE_DATA, T_READ_FILE, T_TCP_CONNECT,
                                  T_TCP_DATA, T_WINDOW, T_RESET, T_ERROR, T_WORKLOAD_CONFIG,
                                  T_WORKLOAD_SIGNAL, T_WORKLOAD_LOGS, T_PONG, T_EXIT, 0x00,
                                  0x7f, 0xff};
  static uint8_t b[1 << 16], pay[4096];
  time_t end = time(NULL) + secs;
  uint64_t iters = 0, bytes = 0;
  size_t n = hello(b, 1);
  feed(b, n);
  while (time(NULL) < end && failures < 10) {
    for (int rep = 0; rep < 200; rep++, iters++) {
      n = 0;
      int mode = (int)below(10);
      if (mode == 0) { /* random bytes, sometimes containing the magic */
        n = below(600);
        for (size_t i = 0; i < n; i++) b[i] = (uint8_t)rnd();
        if (n > 2 && below(2)) b[below((uint32_t)n - 1)] = 0x53, b[below((uint32_t)n - 1)] = 0x4D;
      } else {
        int frames = 1 + (int)below(4);
        for (int k = 0; k < frames && n < sizeof b - 8192; k++) {
          uint8_t t = types[below(sizeof types)];
          uint32_t len = below(below(8) == 0 ? 3000 : 64);
          if (t == T_HELLO && below(4)) len = 24;
          for (uint32_t i = 0; i < len; i++) pay[i] = (uint8_t)(below(3) ? below(4) : rnd());
          if (t == T_READ_FILE && len >= 4) { /* never a real path */
            memcpy(pay, "\x04\x00\x00\x00/nx/", len < 9 ? len : 9);
          }
          uint32_t ml = min_len(t);
          if (ml && len >= ml) len = below(ml);
          if (t == T_HELLO && len >= 4) pay[0] = 1, pay[1] = 0, pay[2] = 1, pay[3] = 0;
          uint32_t stream = below(4) ? below(6) : rnd();
          size_t fl = put_frame(b + n, t, (uint8_t)(below(4) ? below(2) : rnd()), stream, pay, len);
          if (below(20) == 0) b[n + 8 + below(4)] = (uint8_t)rnd(); /* corrupt len */
          if (below(10) == 0) fl = below((uint32_t)fl);             /* truncate */
          if (below(20) == 0 && fl) b[n + below((uint32_t)fl)] ^= (uint8_t)(1u << below(8));
          /* a corrupted byte may have turned the type into a dangerous one */
          if (fl > 2 && min_len(b[n + 2]) && fl > 12) fl = 12 + below(min_len(b[n + 2]));
          if (fl > 8 && min_len(b[n + 2]) && fl >= 12) {
            uint32_t l = (uint32_t)(fl - 12);
            b[n + 8] = (uint8_t)l, b[n + 9] = (uint8_t)(l >> 8), b[n + 10] = 0, b[n + 11] = 0;
          }
          n += fl;
        }
      }
      bytes += n;
      feed(b, n);
      check_output();
    }
    /* liveness: from a clean parser state the session must still answer */
    parser_reset(&A.ps);
    saw_hello_ok = saw_pong = 0;
    n = hello(b, rnd());
    uint8_t tok[8] = {0xed, 0x5e};
    n += put_frame(b + n, T_PING, 0, 0, tok, 8);
    feed(b, n);
    check_output();
    if (!saw_hello_ok || !saw_pong) {
      printf("FAIL session did not answer HELLO/PING after fuzzing (seed %llu, iter %llu)\n",
             (unsigned long long)seed, (unsigned long long)iters);
      failures++;
    }
  }
  session_reset_all();
  reap_deadlist();
  printf("fuzz: %llu inputs, %llu bytes, %llu agent frames checked, seed %llu, %d s\n",
         (unsigned long long)iters, (unsigned long long)bytes, (unsigned long long)out_frames,
         (unsigned long long)seed, secs);
  printf("fuzz: %d passed, %d failed\n", failures ? 0 : 1, failures ? 1 : 0);
  return failures ? 1 : 0;
}
