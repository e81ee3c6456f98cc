/* Session: handshake, frame dispatch, stream table, output queue. */
#define _GNU_SOURCE
#include "agent.h"
#include "proto.h"
#include "util.h"
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

struct agent A;

/* ---- output ---- */

int outq_full(void) { return buf_avail(&A.outq) >= OUTQ_HIGH; }

int outq_due(void) { return buf_avail(&A.outq) && (!A.hold_until || now_ms() >= A.hold_until); }

static void header_at(uint8_t *h, uint8_t type, uint8_t flags, uint32_t stream, size_t n) {
  h[0] = (uint8_t)SM_MAGIC;
  h[1] = (uint8_t)(SM_MAGIC >> 8);
  h[2] = type;
  h[3] = flags;
  for (int i = 0; i < 4; i++) h[4 + i] = (uint8_t)(stream >> (8 * i));
  for (int i = 0; i < 4; i++) h[8 + i] = (uint8_t)((uint32_t)n >> (8 * i));
}

static void put_header(struct buf *q, uint8_t type, uint8_t flags, uint32_t stream, size_t n) {
  header_at(buf_tail(q, SM_HDR), type, flags, stream, n);
  q->len += SM_HDR;
}

void send_frame(uint8_t type, uint8_t flags, uint32_t stream, const void *p, size_t n) {
  if (!A.connected) return;
  put_header(&A.outq, type, flags, stream, n);
  buf_put(&A.outq, p, n);
  A.hold_until = 0; /* anything but a small read: everything queued goes now */
  chan_update();
}

/* Reads up to `cap` bytes (at most READ_BUDGET) from `fd` straight into the
 * output queue as `type` frames of at most peer_max bytes each: one readv
 * into the payload slots between reserved headers, no bounce buffer (each
 * copy of the data costs the guest dearly under TCG). Only the frames the
 * read filled are queued. Returns what readv returns.
 *
 * A small read of an exec's stdout/stderr into an empty queue is held for
 * HOLD_MS: a process printing line by line through a pipeline wakes the
 * agent per line, and each line sent at once costs a virtio kick, a host
 * wake-up and an interrupt back. Any other frame (EXIT, a file, TCP data,
 * HOLD_MAX_BYTES queued) sends everything at once, so the hold adds at most
 * HOLD_MS to output that is still being written, never to an exec's end. */
ssize_t send_frames_from_fd(uint8_t type, uint32_t stream, int fd, size_t cap) {
  enum { MAX_FRAMES = READ_BUDGET / SM_MIN_MAX_PAYLOAD };
  if (!A.connected) {
    errno = EAGAIN;
    return -1;
  }
  size_t fmax = A.peer_max;
  if (cap > READ_BUDGET) cap = READ_BUDGET;
  size_t nf = (cap + fmax - 1) / fmax;
  if (nf > MAX_FRAMES) nf = MAX_FRAMES;
  if (nf == 0) return 0;
  size_t before = buf_avail(&A.outq);
  uint8_t *base = buf_tail(&A.outq, cap + nf * SM_HDR);
  struct iovec iov[MAX_FRAMES];
  size_t left = cap;
  for (size_t i = 0; i < nf; i++) {
    size_t k = left < fmax ? left : fmax;
    iov[i].iov_base = base + i * (SM_HDR + fmax) + SM_HDR;
    iov[i].iov_len = k;
    left -= k;
  }
  ssize_t n = readv(fd, iov, (int)nf);
  if (n <= 0) return n;
  uint8_t *p = base;
  for (size_t rest = (size_t)n; rest;) {
    size_t k = rest < fmax ? rest : fmax;
    header_at(p, type, 0, stream, k);
    p += SM_HDR + k;
    rest -= k;
  }
  A.outq.len = (size_t)(p - A.outq.d);
  int small_output = (type == T_STDOUT || type == T_STDERR) && buf_avail(&A.outq) < HOLD_MAX_BYTES;
  if (!small_output) A.hold_until = 0;
  else if (before == 0) A.hold_until = now_ms() + HOLD_MS;
  chan_update();
  return n;
}

void send_buf(uint8_t type, uint8_t flags, uint32_t stream, struct buf *b) {
  send_frame(type, flags, stream, b->d + b->head, buf_avail(b));
  buf_free(b);
}

void send_error(uint32_t stream, uint32_t code, int err, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if (n >= (int)sizeof msg) n = sizeof msg - 1;
  struct buf b = {0};
  buf_u32(&b, code);
  buf_u32(&b, (uint32_t)err);
  buf_str(&b, msg, (size_t)n);
  send_buf(T_ERROR, 0, stream, &b);
}

void send_ok(uint32_t stream, uint64_t value) {
  struct buf b = {0};
  buf_u64(&b, value);
  send_buf(T_OK, 0, stream, &b);
}

void send_event(uint8_t kind, uint32_t value, const char *detail) {
  struct buf b = {0};
  buf_u8(&b, kind);
  buf_u32(&b, value);
  buf_str(&b, detail, strlen(detail));
  if (A.handshaken && A.connected) {
    send_buf(T_EVENT, 0, 0, &b);
    return;
  }
  if (A.nevents < 256) { /* queued until the next HELLO_OK */
    put_header(&A.events, T_EVENT, 0, 0, buf_avail(&b));
    buf_put(&A.events, b.d, buf_avail(&b));
    A.nevents++;
  }
  buf_free(&b);
}

/* ---- stream table ---- */

struct stream *stream_find(uint32_t id) {
  for (struct stream *s = A.hash[id & 2047]; s; s = s->hnext)
    if (s->id == id) return s;
  return NULL;
}

struct stream *stream_new(uint32_t id, int kind) {
  struct stream *s = xcalloc(1, sizeof *s);
  s->id = id;
  s->kind = kind;
  s->send_win = A.peer_window;
  s->recv_avail = MY_WINDOW;
  s->fd = -1;
  s->pid = s->pgid = -1;
  for (int i = 0; i < 3; i++) {
    s->sl[i].fd = -1;
    s->child_fd[i] = -1;
  }
  s->cg = NULL;
  s->hnext = A.hash[id & 2047];
  A.hash[id & 2047] = s;
  s->next = A.all;
  if (A.all) A.all->prev = s;
  A.all = s;
  A.nstreams++;
  return s;
}

void slot_init(struct slot *sl, struct stream *s, int fd, uint8_t rd_type, int wr) {
  sl->wtype = W_SLOT;
  sl->fd = fd;
  sl->rd_type = rd_type;
  sl->rd_eof = 0;
  sl->wr = (uint8_t)wr;
  sl->ev = 0;
  sl->drain_left = 0;
  sl->s = s;
}

void slot_close(struct slot *sl) {
  if (sl->fd < 0) return;
  if (sl->ev) epoll_ctl(A.ep, EPOLL_CTL_DEL, sl->fd, NULL);
  sl->ev = 0;
  /* slots may share an fd (pty master, tcp socket): close it once */
  struct stream *s = sl->s;
  int fd = sl->fd, shared = 0;
  sl->fd = -1;
  for (int i = 0; s && i < s->nsl; i++)
    if (s->sl[i].fd == fd) shared = 1;
  if (!shared) close(fd);
}

void stream_free(struct stream *s) {
  if (s->dead) return;
  s->dead = 1;
  for (int i = 0; i < s->nsl; i++) slot_close(&s->sl[i]);
  for (int i = 0; i < 3; i++)
    if (s->child_fd[i] >= 0) close(s->child_fd[i]), s->child_fd[i] = -1;
  if (s->fd >= 0) close(s->fd), s->fd = -1;
  if (s->kind == SK_EXEC) exec_cgroup_release(s);
  struct stream **pp = &A.hash[s->id & 2047];
  while (*pp && *pp != s) pp = &(*pp)->hnext;
  if (*pp) *pp = s->hnext;
  if (s->prev) s->prev->next = s->next;
  else A.all = s->next;
  if (s->next) s->next->prev = s->prev;
  A.nstreams--;
  buf_free(&s->inq);
  s->next = A.deadlist;
  A.deadlist = s;
}

void reap_deadlist(void) {
  while (A.deadlist) {
    struct stream *s = A.deadlist;
    A.deadlist = s->next;
    free(s->argv);
    free(s->env);
    free(s->chain);
    free(s->cwd);
    free(s);
  }
}

/* Registers with epoll what each slot of s can do now. */
void stream_update(struct stream *s) {
  if (s->dead) return;
  if (s->kind == SK_RFILE) {
    rfile_pump(s);
    return;
  }
  if (s->kind == SK_LOGS) {
    logs_pump(s);
    return;
  }
  for (int i = 0; i < s->nsl; i++) {
    struct slot *sl = &s->sl[i];
    if (sl->fd < 0) continue;
    uint32_t want = 0;
    /* all slots sharing this fd contribute */
    for (int j = 0; j < s->nsl; j++) {
      struct slot *o = &s->sl[j];
      if (o->fd != sl->fd) continue;
      if (o->rd_type && !o->rd_eof && s->send_win > 0 && !outq_full() && A.connected &&
          !(s->kind == SK_TCP && s->connecting))
        want |= EPOLLIN;
      if (o->wr && (buf_avail(&s->inq) > 0 || (s->kind == SK_TCP && s->connecting)))
        want |= EPOLLOUT;
    }
    /* register once per fd: only on the first slot holding it */
    int first = 1;
    for (int j = 0; j < i; j++)
      if (s->sl[j].fd == sl->fd) first = 0;
    if (first) ep_set(sl->fd, sl, &sl->ev, want);
  }
}

void streams_update_all(void) {
  struct stream *next;
  for (struct stream *s = A.all; s; s = next) {
    next = s->next;
    stream_update(s);
  }
}

/* Returns n bytes of window to the host once half a window is consumed. */
void stream_grant(struct stream *s, uint32_t n) {
  s->recv_consumed += n;
  if (s->recv_consumed >= MY_WINDOW / 2 && !s->dead) {
    struct buf b = {0};
    buf_u32(&b, s->recv_consumed);
    send_buf(T_WINDOW, 0, s->id, &b);
    s->recv_avail += s->recv_consumed;
    s->recv_consumed = 0;
  }
}

int64_t streams_next_deadline(void) {
  int64_t t = INT64_MAX;
  for (struct stream *s = A.all; s; s = s->next) {
    if (s->kind != SK_EXEC) continue;
    if (s->deadline && s->deadline < t) t = s->deadline;
    if (s->drain_at && s->drain_at < t) t = s->drain_at;
  }
  return t;
}

void streams_timers(int64_t now) {
  struct stream *next;
  for (struct stream *s = A.all; s; s = next) {
    next = s->next;
    if (s->kind == SK_EXEC) exec_timer(s, now);
  }
}

/* Ends a stream without a terminal frame (session reset). */
static void stream_abort(struct stream *s) {
  if (s->kind == SK_EXEC) exec_kill(s);
  stream_free(s);
}

void session_reset_all(void) {
  while (A.all) stream_abort(A.all);
}

/* The host side of the channel went away (or the guest only thinks so: right
 * after a snapshot restore the port may report HUP while the new host already
 * writes). A partial frame is dropped; queued output is kept and written
 * when the port opens again: a new host discards everything before its
 * HELLO_OK anyway, and the HELLO_OK of a session started in that window must
 * not be lost. Nothing new is queued while disconnected (streams stop reading
 * their sources) except events, which wait in A.events. */
void session_host_gone(void) { parser_reset(&A.ps); }

/* The port is open again: deliver events raised while it was closed. */
void session_host_back(void) {
  if (!A.handshaken || !buf_avail(&A.events)) return;
  buf_put(&A.outq, A.events.d + A.events.head, buf_avail(&A.events));
  buf_free(&A.events);
  A.nevents = 0;
}

/* ---- slot i/o ---- */

static void slot_readable(struct stream *s, struct slot *sl) {
  size_t cap = s->send_win;
  if (s->drain_cut && cap > sl->drain_left) cap = sl->drain_left;
  int eof = 0;
  if (s->drain_cut && sl->drain_left == 0) eof = 1;
  else if (cap == 0 || outq_full() || !A.connected) return;
  else {
    ssize_t n = send_frames_from_fd(sl->rd_type, s->id, sl->fd, cap);
    if (n > 0) {
      s->send_win -= (uint32_t)n;
      if (s->drain_cut) {
        sl->drain_left -= (uint32_t)n;
        if (!sl->drain_left) eof = 1;
      }
    } else if (n == 0) {
      eof = 1;
    } else if (errno == EAGAIN || errno == EINTR) {
      return;
    } else if (s->kind == SK_TCP) {
      int e = errno;
      send_error(s->id, E_IO, e, "tcp read: %s", strerror(e));
      stream_free(s);
      return;
    } else {
      eof = 1; /* EIO from a pty master whose slave is gone */
    }
  }
  if (eof) {
    sl->rd_eof = 1;
    send_frame(sl->rd_type, SM_FLAG_END, s->id, NULL, 0);
    if (s->kind == SK_EXEC) {
      /* reap now rather than on SIGCHLD's own wake-up: EXIT then leaves with the ENDs */
      if (!s->exited) A.reap_soon = 1;
      if (sl->rd_type == T_STDOUT) s->end_sent[0] = 1;
      if (sl->rd_type == T_STDERR) s->end_sent[1] = 1;
      exec_check_done(s);
    } else if (s->kind == SK_TCP) {
      tcp_check_done(s);
    }
  }
}

void slot_writable(struct stream *s, struct slot *sl) {
  while (buf_avail(&s->inq)) {
    ssize_t n = write(sl->fd, s->inq.d + s->inq.head, buf_avail(&s->inq));
    if (n > 0) {
      buf_consume(&s->inq, (size_t)n);
      stream_grant(s, (uint32_t)n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    /* the reader is gone (EPIPE): discard, keep the window flowing */
    uint32_t k = (uint32_t)buf_avail(&s->inq);
    buf_clear(&s->inq);
    stream_grant(s, k);
    s->in_done = 1;
    if (s->kind == SK_TCP && n < 0) {
      int e = errno;
      send_error(s->id, E_IO, e, "tcp write: %s", strerror(e));
      stream_free(s);
      return;
    }
    break;
  }
  if (s->in_end && !s->in_done) {
    if (s->kind == SK_EXEC) exec_input_end(s);
    else if (s->kind == SK_TCP) tcp_input_end(s);
  }
}

void slot_event(struct slot *sl, uint32_t ev) {
  struct stream *s = sl->s;
  if (s->dead || sl->fd < 0) return;
  if (s->kind == SK_TCP && s->connecting) {
    tcp_writable(s);
    if (!s->dead) stream_update(s);
    return;
  }
  int fd = sl->fd;
  for (int j = 0; j < s->nsl && !s->dead; j++) {
    struct slot *o = &s->sl[j];
    if (o->fd != fd) continue;
    if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && o->rd_type && !o->rd_eof) slot_readable(s, o);
    if (s->dead) return;
    if ((ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && o->wr && buf_avail(&s->inq)) slot_writable(s, o);
  }
  if (!s->dead) stream_update(s);
}

/* Host data frame for a stream: check the window, queue it for the fd. */
static void stream_data(struct stream *s, const struct frame *fr) {
  if (fr->len > s->recv_avail) {
    send_error(s->id, E_FLOW_CONTROL, 0, "window exceeded by %u bytes", fr->len - s->recv_avail);
    if (s->kind == SK_EXEC) exec_kill(s);
    stream_free(s);
    return;
  }
  s->recv_avail -= fr->len;
  int end = fr->flags & SM_FLAG_END;
  if (s->kind == SK_WFILE) {
    wfile_data(s, fr->payload, fr->len, end);
    return;
  }
  if (s->in_end) { /* data after END: drop */
    stream_grant(s, fr->len);
    return;
  }
  if (s->in_done) stream_grant(s, fr->len);
  else buf_put(&s->inq, fr->payload, fr->len);
  if (end) s->in_end = 1;
  int wr = -1;
  for (int i = 0; i < s->nsl; i++)
    if (s->sl[i].wr && s->sl[i].fd >= 0) wr = i;
  if (wr >= 0 && !(s->kind == SK_TCP && s->connecting)) slot_writable(s, &s->sl[wr]);
  else if (wr < 0 && buf_avail(&s->inq)) { /* nowhere to write: discard */
    uint32_t k = (uint32_t)buf_avail(&s->inq);
    buf_clear(&s->inq);
    stream_grant(s, k);
  }
  if (!s->dead) stream_update(s);
}

/* ---- dispatch ---- */

static const char *type_name(uint8_t t) {
  const struct msgdef *d = msg_def(t);
  return d ? d->name : "?";
}

static void on_hello(const struct frame *fr, struct field *f) {
  unsigned minv = (unsigned)f[0].u, maxv = (unsigned)f[1].u;
  if (minv > SM_VERSION || maxv < SM_VERSION) {
    send_error(0, E_UNSUPPORTED_VERSION, 0, "agent speaks version %d, host asked %u..%u",
               SM_VERSION, minv, maxv);
    return;
  }
  session_reset_all();
  apply_host_context(fr->payload, fr->len);
  uint32_t mp = (uint32_t)f[2].u;
  if (mp < SM_MIN_MAX_PAYLOAD) mp = SM_MIN_MAX_PAYLOAD;
  if (mp > SM_MAX_MAX_PAYLOAD) mp = SM_MAX_MAX_PAYLOAD;
  A.peer_max = mp;
  A.peer_window = f[3].u ? (uint32_t)f[3].u : SM_DEFAULT_WINDOW;
  A.ps.max = MY_MAX_PAYLOAD;
  struct buf b = {0};
  buf_u16(&b, SM_VERSION);
  buf_u32(&b, MY_MAX_PAYLOAD);
  buf_u32(&b, MY_WINDOW);
  buf_u64(&b, f[4].u);
  buf_u32(&b, SM_FEAT_PTY | SM_FEAT_TCP | SM_FEAT_LOGS);
  buf_str(&b, AGENT_VERSION, strlen(AGENT_VERSION));
  send_buf(T_HELLO_OK, 0, fr->stream, &b);
  A.handshaken = 1;
  if (buf_avail(&A.events)) {
    buf_put(&A.outq, A.events.d + A.events.head, buf_avail(&A.events));
    chan_update();
  }
  buf_free(&A.events);
  A.nevents = 0;
}

static int is_opening(uint8_t t) {
  return t == T_EXEC || t == T_WRITE_FILE || t == T_READ_FILE || t == T_TCP_CONNECT ||
         t == T_WORKLOAD_CONFIG || t == T_WORKLOAD_START || t == T_WORKLOAD_SIGNAL ||
         t == T_WORKLOAD_LOGS;
}

static void on_frame(const struct frame *fr) {
  struct field f[SM_MAX_FIELDS];
  uint8_t t = fr->type;
  const struct msgdef *d = msg_def(t);
  int host_type = t == T_HELLO || t == T_PING || is_opening(t) || t == T_STDIN ||
                  t == T_RESIZE || t == T_SIGNAL || t == T_FILE_DATA || t == T_TCP_DATA ||
                  t == T_WINDOW || t == T_RESET || t == T_ERROR;
  if (!d || !host_type) {
    send_error(0, E_UNKNOWN_TYPE, 0, "unknown message type 0x%02x%s%s", t, d ? " " : "",
               d ? d->name : "");
    return;
  }
  if (msg_parse(t, fr->payload, fr->len, f) < 0) {
    uint32_t on = is_opening(t) && fr->stream && !stream_find(fr->stream) ? fr->stream : 0;
    send_error(on, E_BAD_PAYLOAD, 0, "malformed %s payload (%u bytes)", d->name, fr->len);
    return;
  }
  if (t == T_HELLO) {
    on_hello(fr, f);
    return;
  }
  if (!A.handshaken) {
    send_error(fr->stream, E_NOT_READY, 0, "%s before HELLO", d->name);
    return;
  }
  if (t == T_PING) {
    struct buf b = {0};
    buf_u64(&b, f[0].u);
    send_buf(T_PONG, 0, 0, &b);
    return;
  }
  if (t == T_ERROR) {
    logmsg("host error on stream %u: code %u", fr->stream, (unsigned)f[0].u);
    return;
  }
  if (is_opening(t)) {
    if (fr->stream == 0) {
      send_error(0, E_BAD_PAYLOAD, 0, "%s on stream 0", d->name);
      return;
    }
    if (stream_find(fr->stream)) {
      send_error(0, E_STREAM_EXISTS, 0, "stream %u is open", fr->stream);
      return;
    }
    if (A.nstreams >= SM_MAX_STREAMS) {
      send_error(fr->stream, E_LIMIT, 0, "too many open streams");
      return;
    }
    switch (t) {
    case T_EXEC: exec_open(fr->stream, f); break;
    case T_WRITE_FILE: wfile_open(fr->stream, f); break;
    case T_READ_FILE: rfile_open(fr->stream, f); break;
    case T_TCP_CONNECT: tcp_open(fr->stream, f); break;
    case T_WORKLOAD_CONFIG: wl_config(fr->stream, f); break;
    case T_WORKLOAD_START: wl_start(fr->stream); break;
    case T_WORKLOAD_SIGNAL: wl_signal(fr->stream, f); break;
    case T_WORKLOAD_LOGS: wl_logs(fr->stream, f); break;
    }
    return;
  }
  struct stream *s = stream_find(fr->stream);
  if (!s) return; /* raced with the stream's end (or stream 0): drop */
  switch (t) {
  case T_WINDOW: {
    uint64_t w = (uint64_t)s->send_win + f[0].u;
    s->send_win = w > 0xffffffffu ? 0xffffffffu : (uint32_t)w;
    stream_update(s);
    return;
  }
  case T_RESET:
    if (s->kind == SK_EXEC) {
      exec_kill(s);
      struct buf b = {0};
      buf_u32(&b, (uint32_t)-1);
      buf_u32(&b, SIGKILL);
      buf_u8(&b, 0);
      buf_u64(&b, s->peak_rss);
      send_buf(T_EXIT, 0, s->id, &b);
    } else {
      send_error(s->id, E_CANCELLED, 0, "cancelled");
    }
    stream_free(s);
    return;
  case T_STDIN:
  case T_FILE_DATA:
  case T_TCP_DATA:
    if ((t == T_STDIN && s->kind != SK_EXEC) || (t == T_FILE_DATA && s->kind != SK_WFILE) ||
        (t == T_TCP_DATA && s->kind != SK_TCP)) {
      send_error(0, E_STATE, 0, "%s not valid on stream %u", type_name(t), s->id);
      return;
    }
    stream_data(s, fr);
    return;
  case T_RESIZE:
    if (s->kind == SK_EXEC) exec_resize(s, (unsigned)f[0].u, (unsigned)f[1].u);
    return;
  case T_SIGNAL:
    if (s->kind == SK_EXEC) exec_signal(s, (int)f[0].u);
    return;
  }
}

void session_input(const uint8_t *p, size_t n) {
  while (n) {
    size_t used = 0;
    struct frame fr;
    int r = parser_feed(&A.ps, p, n, &used, &fr);
    p += used;
    n -= used;
    switch (r) {
    case P_FRAME: on_frame(&fr); break;
    case P_BAD_MAGIC: send_error(0, E_BAD_FRAME, 0, "bad magic; resyncing"); break;
    case P_TOO_LARGE:
      send_error(0, E_FRAME_TOO_LARGE, 0, "%s frame of %u bytes exceeds %u", type_name(fr.type),
                 fr.len, A.ps.max);
      break;
    case P_NEED: return;
    }
  }
}
