/* WRITE_FILE and READ_FILE, streamed through the window. */
#define _GNU_SOURCE
#include "agent.h"
#include "proto.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

static uint32_t err_code(int e) { return e == ENOENT || e == ENOTDIR ? E_NOT_FOUND : E_IO; }

void wfile_open(uint32_t id, const struct field *f) {
  char *path = str_dup(&f[0]);
  mode_t mode = (mode_t)(f[1].u & 07777);
  int fd = -1, e = 0;
  if (!*path) e = ENOENT;
  else if ((f[2].u & SM_WF_MKDIRS) && mkdir_parents(path) < 0) e = errno;
  else if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, mode)) < 0)
    e = errno;
  else if (fchmod(fd, mode) < 0) e = errno;
  if (e) {
    send_error(id, err_code(e), e, "write %s: %s", path, strerror(e));
    if (fd >= 0) close(fd);
    free(path);
    return;
  }
  free(path);
  struct stream *s = stream_new(id, SK_WFILE);
  s->fd = fd;
}

void wfile_data(struct stream *s, const uint8_t *p, size_t n, int end) {
  size_t off = 0;
  while (off < n) {
    ssize_t w = write(s->fd, p + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = w < 0 ? errno : EIO;
      send_error(s->id, E_IO, e, "write: %s", strerror(e));
      stream_free(s);
      return;
    }
    off += (size_t)w;
  }
  s->bytes += n;
  if (end) {
    int fd = s->fd;
    s->fd = -1;
    if (close(fd) < 0 && errno != EINTR) {
      int e = errno;
      send_error(s->id, E_IO, e, "close: %s", strerror(e));
    } else {
      send_ok(s->id, s->bytes);
    }
    stream_free(s);
    return;
  }
  stream_grant(s, (uint32_t)n);
}

void rfile_open(uint32_t id, const struct field *f) {
  char *path = str_dup(&f[0]);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  struct stat st;
  int e = 0;
  if (fd < 0) e = errno;
  else if (fstat(fd, &st) < 0) e = errno;
  else if (S_ISDIR(st.st_mode)) e = EISDIR;
  else if (!S_ISREG(st.st_mode)) e = EINVAL;
  if (e) {
    send_error(id, err_code(e), e, "read %s: %s", path,
               e == EINVAL ? "not a regular file" : strerror(e));
    if (fd >= 0) close(fd);
    free(path);
    return;
  }
  free(path);
  struct buf b = {0};
  buf_u64(&b, (uint64_t)st.st_size);
  buf_u32(&b, (uint32_t)(st.st_mode & 07777));
  send_buf(T_FILE_INFO, 0, id, &b);
  struct stream *s = stream_new(id, SK_RFILE);
  s->fd = fd;
  rfile_pump(s);
}

void rfile_pump(struct stream *s) {
  while (!s->dead && A.connected && !outq_full()) {
    if (s->send_win == 0) return;
    ssize_t n = send_frames_from_fd(T_FILE_DATA, s->id, s->fd, s->send_win);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      send_error(s->id, E_IO, e, "read: %s", strerror(e));
      stream_free(s);
      return;
    }
    if (n == 0) {
      send_frame(T_FILE_DATA, SM_FLAG_END, s->id, NULL, 0);
      send_ok(s->id, s->bytes);
      stream_free(s);
      return;
    }
    s->send_win -= (uint32_t)n;
    s->bytes += (uint64_t)n;
  }
}
