/* Host context carried by HELLO's optional trailing fields (PROTOCOL.md 3):
 * after a snapshot restore every guest holds the clock and the kernel random
 * state of the moment the snapshot was taken. The host sends its current time
 * and fresh random bytes; in init mode the agent sets the clock, credits the
 * bytes to the entropy pool and forces the kernel CRNG to reseed, so VMs
 * restored from one snapshot neither share random streams nor a stale clock. */
#define _GNU_SOURCE
#include "agent.h"
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* From <linux/random.h>, which musl does not ship. */
#define SM_RNDADDENTROPY 0x40085203u /* _IOW('R', 0x03, int[2]) */
#define SM_RNDRESEEDCRNG 0x5207u     /* _IO('R', 0x07) */

#define HELLO_FIXED_LEN 20
#define HELLO_TIME_END (HELLO_FIXED_LEN + 8)
#define HELLO_SEED_LEN 32

static uint64_t rd_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

void apply_host_context(const uint8_t *payload, uint32_t len) {
  if (!A.init_mode) return; /* never touch the clock or pool of a host running --stdio */
  if (len >= HELLO_TIME_END) {
    uint64_t ns = rd_le64(payload + HELLO_FIXED_LEN);
    if (ns) {
      struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
      clock_settime(CLOCK_REALTIME, &ts);
    }
  }
  if (len >= HELLO_TIME_END + HELLO_SEED_LEN) {
    int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct {
      int entropy_count;
      int buf_size;
      uint8_t bytes[HELLO_SEED_LEN];
    } e;
    e.entropy_count = HELLO_SEED_LEN * 8;
    e.buf_size = HELLO_SEED_LEN;
    memcpy(e.bytes, payload + HELLO_TIME_END, HELLO_SEED_LEN);
    ioctl(fd, SM_RNDADDENTROPY, &e);
    ioctl(fd, SM_RNDRESEEDCRNG);
    memset(&e, 0, sizeof e);
    close(fd);
  }
}
