/* Small helpers: allocation, logging, time, fds, paths. */
#define _GNU_SOURCE
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int g_log_fd = 2;

static void oom(void) {
  static const char m[] = "sm-init: out of memory\n";
  if (write(g_log_fd, m, sizeof m - 1) < 0) {}
  _exit(111);
}
void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom();
  return p;
}
void *xcalloc(size_t n, size_t m) {
  void *p = calloc(n ? n : 1, m ? m : 1);
  if (!p) oom();
  return p;
}
void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p) oom();
  return p;
}
char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  return memcpy(xmalloc(n), s, n);
}

void logmsg(const char *fmt, ...) {
  char b[512];
  int n = snprintf(b, sizeof b, "sm-init: ");
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(b + n, sizeof b - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (m < 0) m = 0;
  n += m;
  if (n > (int)sizeof b - 2) n = (int)sizeof b - 2;
  b[n++] = '\n';
  if (write(g_log_fd, b, (size_t)n) < 0) {}
}

int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}
int set_cloexec(int fd) {
  int fl = fcntl(fd, F_GETFD);
  return fl < 0 ? -1 : fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

int mkdir_p(const char *path, unsigned mode) {
  char p[4096];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof p) return errno = ENAMETOOLONG, -1;
  memcpy(p, path, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (p[i] == '/' || p[i] == 0) {
      char c = p[i];
      p[i] = 0;
      if (mkdir(p, mode) < 0 && errno != EEXIST) return -1;
      p[i] = c;
    }
  }
  return 0;
}

int mkdir_parents(const char *path) {
  char p[4096];
  size_t n = strlen(path);
  if (n >= sizeof p) return errno = ENAMETOOLONG, -1;
  memcpy(p, path, n + 1);
  char *s = strrchr(p, '/');
  if (!s || s == p) return 0;
  *s = 0;
  return mkdir_p(p, 0755);
}

int write_file(const char *path, const char *data, unsigned mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return -1;
  size_t n = strlen(data), off = 0;
  while (off < n) {
    ssize_t w = write(fd, data + off, n - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      close(fd);
      return -1;
    }
    off += (size_t)w;
  }
  return close(fd);
}

long read_small(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t off = 0;
  while (off + 1 < cap) {
    ssize_t r = read(fd, buf + off, cap - 1 - off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    off += (size_t)r;
  }
  close(fd);
  buf[off] = 0;
  return (long)off;
}
