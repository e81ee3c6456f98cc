/* Event loop: epoll over the host channel, SIGCHLD and every stream fd. */
#define _GNU_SOURCE
#include "agent.h"
#include "proto.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

static int w_chan = W_CHAN, w_chan_out = W_CHAN, w_sig = W_SIG;

/* Makes fd's epoll registration match want (0 = not registered). */
void ep_set(int fd, void *ptr, uint32_t *cur, uint32_t want) {
  if (*cur == want) return;
  struct epoll_event e = {.events = want, .data.ptr = ptr};
  if (!want) epoll_ctl(A.ep, EPOLL_CTL_DEL, fd, NULL);
  else if (!*cur) {
    if (epoll_ctl(A.ep, EPOLL_CTL_ADD, fd, &e) < 0 && errno == EPERM) {
      /* regular files cannot be polled; callers never ask for them */
      return;
    }
  } else epoll_ctl(A.ep, EPOLL_CTL_MOD, fd, &e);
  *cur = want;
}

/* Registers the channel fds for what they can do now. */
void chan_update(void) {
  if (A.in_fd < 0) return;
  uint32_t rin = A.connected && buf_avail(&A.outq) < INQ_STOP ? EPOLLIN : 0;
  uint32_t wout = outq_due() && (A.connected || A.chan_kind == CH_STDIO) ? EPOLLOUT : 0;
  if (A.in_fd == A.out_fd) {
    ep_set(A.in_fd, &w_chan, &A.chan_ev_in, rin | wout);
  } else {
    ep_set(A.in_fd, &w_chan, &A.chan_ev_in, rin);
    ep_set(A.out_fd, &w_chan_out, &A.chan_ev_out, wout);
  }
}

/* While the host is away, the port signals (SIGIO, read through the
 * signalfd) when it opens again, so the agent answers a restored VM's host at
 * once instead of at its next 10 ms probe (kept as a fallback). Off while
 * connected: the port would also signal every arriving buffer. */
static void port_open_signal(int on) {
  if (A.chan_kind != CH_DEV) return;
  int fl = fcntl(A.in_fd, F_GETFL);
  if (fl < 0) return;
  if (on) fcntl(A.in_fd, F_SETOWN, getpid());
  fcntl(A.in_fd, F_SETFL, on ? fl | O_ASYNC : fl & ~O_ASYNC);
}

static void host_gone(void) {
  if (A.chan_kind != CH_DEV) { /* a pipe or socket peer closed: we are done */
    A.stop = 1;
    return;
  }
  if (A.connected) session_host_gone();
  A.connected = 0;
  A.reconnect_at = now_ms() + RECONNECT_MS;
  port_open_signal(1);
  chan_update();
}

static void chan_flush(void) {
  int was_full = outq_full();
  A.hold_until = 0;
  while (buf_avail(&A.outq)) {
    ssize_t n = write(A.out_fd, A.outq.d + A.outq.head, buf_avail(&A.outq));
    if (n > 0) {
      buf_consume(&A.outq, (size_t)n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
    if (A.chan_kind != CH_DEV || errno != EPIPE) buf_clear(&A.outq); /* port unusable */
    host_gone();
    break;
  }
  if (was_full && !outq_full()) streams_update_all();
  chan_update();
}

static void chan_read(void) {
  static uint8_t b[65536];
  for (int i = 0; i < 16 && A.connected && buf_avail(&A.outq) < INQ_STOP; i++) {
    ssize_t n = read(A.in_fd, b, sizeof b);
    if (n > 0) {
      session_input(b, (size_t)n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    host_gone();
    return;
  }
}

/* Disconnected virtio port: probe again; data or a quiet open port means the
 * host is back. */
static void chan_probe(void) {
  struct pollfd p = {.fd = A.in_fd, .events = POLLIN};
  if (poll(&p, 1, 0) >= 0 && (p.revents & POLLHUP) && !(p.revents & POLLIN)) {
    A.reconnect_at = now_ms() + RECONNECT_MS;
    return;
  }
  static uint8_t b[65536];
  ssize_t n = read(A.in_fd, b, sizeof b);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    A.reconnect_at = now_ms() + RECONNECT_MS;
    return;
  }
  A.connected = 1;
  A.reconnect_at = 0;
  port_open_signal(0);
  session_host_back();
  streams_update_all();
  chan_update();
  if (n > 0) session_input(b, (size_t)n);
}

static void on_sigchld(void) {
  struct signalfd_siginfo si;
  while (read(A.sigfd, &si, sizeof si) == (ssize_t)sizeof si) {}
  for (;;) {
    int status;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    pid_t pid = wait4(-1, &status, WNOHANG, &ru);
    if (pid <= 0) break;
    struct stream *s = exec_by_pid(pid);
    if (s) exec_on_exit(s, status, (uint64_t)ru.ru_maxrss);
    else wl_on_exit(pid, status);
  }
  exec_cgroup_sweep();
}

int agent_run(void) {
  A.ep = epoll_create1(EPOLL_CLOEXEC);
  if (A.ep < 0) return logmsg("epoll_create1: %s", strerror(errno)), -1;
  sigset_t m;
  sigemptyset(&m);
  sigaddset(&m, SIGCHLD);
  sigaddset(&m, SIGIO); /* the port opened again (port_open_signal) */
  sigprocmask(SIG_BLOCK, &m, NULL);
  child_signals_init();
  signal(SIGPIPE, SIG_IGN);
  A.sigfd = signalfd(-1, &m, SFD_NONBLOCK | SFD_CLOEXEC);
  struct epoll_event e = {.events = EPOLLIN, .data.ptr = &w_sig};
  epoll_ctl(A.ep, EPOLL_CTL_ADD, A.sigfd, &e);
  parser_init(&A.ps, SM_DEFAULT_MAX_PAYLOAD);
  A.peer_max = SM_DEFAULT_MAX_PAYLOAD;
  A.peer_window = SM_DEFAULT_WINDOW;
  set_nonblock(A.in_fd);
  set_nonblock(A.out_fd);
  A.connected = 1;
  if (A.chan_kind == CH_DEV) {
    A.connected = 0;
    chan_probe();
    if (!A.connected) {
      A.reconnect_at = now_ms() + RECONNECT_MS;
      port_open_signal(1);
    }
  }
  chan_update();
  logmsg("ready");
  on_sigchld(); /* children that exited before the signalfd existed */
  struct epoll_event ev[64];
  while (!A.stop) {
    int64_t now = now_ms(), t = streams_next_deadline();
    int64_t w = wl_next_deadline();
    if (w < t) t = w;
    if (A.reconnect_at && A.reconnect_at < t) t = A.reconnect_at;
    if (A.hold_until && buf_avail(&A.outq) && A.hold_until < t) t = A.hold_until;
    int timeout = t == INT64_MAX ? -1 : t <= now ? 0 : (int)(t - now > 60000 ? 60000 : t - now);
    int n = epoll_wait(A.ep, ev, 64, timeout);
    if (n < 0 && errno != EINTR) {
      logmsg("epoll_wait: %s", strerror(errno));
      n = 0;
    }
    for (int i = 0; i < n; i++) {
      int *wt = ev[i].data.ptr;
      if (wt == &w_sig) {
        on_sigchld(); /* drains the signalfd: SIGCHLD and SIGIO */
        if (A.chan_kind == CH_DEV && !A.connected) chan_probe();
      }
      else if (wt == &w_chan || wt == &w_chan_out) {
        if (ev[i].events & EPOLLOUT) chan_flush();
        if (wt == &w_chan && (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
          chan_read(); /* on HUP too: read() returning 0 means gone */
        }
      } else if (*wt == W_SLOT) slot_event((struct slot *)wt, ev[i].events);
      else if (*wt == W_WLOG) wl_log_readable();
    }
    if (A.reap_soon) {
      A.reap_soon = 0;
      on_sigchld();
    }
    now = now_ms();
    if (A.reconnect_at && now >= A.reconnect_at && !A.connected) chan_probe();
    streams_timers(now);
    wl_timer(now);
    if (outq_due()) chan_flush();
    reap_deadlist();
  }
  return 0;
}
