/* The workload: configured once, held until START, watched for a listener.
 * Its stdout and stderr go through one pipe into a fixed-size ring here (the
 * newest WL_LOG_BYTES), which the host reads with WORKLOAD_LOGS: a workload
 * that floods its output costs guest CPU, never host disk or memory. */
#define _GNU_SOURCE
#include "agent.h"
#include "proto.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static struct {
  int configured, started, hold, watch, listening_sent, exec_as;
  uint16_t port;
  char **argv, **env;
  char *cwd;
  struct wl_user u;
  char *home;
  pid_t pid;
  int64_t watch_next;
} W;

/* The workload's output: read end of its stdout/stderr pipe and the ring. */
static struct {
  int wtype; /* W_WLOG; must be first (epoll dispatch) */
  int fd;    /* -1 when not open */
  uint32_t ev;
  uint8_t ring[WL_LOG_BYTES];
  size_t start, used;
  uint64_t total;
} L = {.wtype = W_WLOG, .fd = -1};

char **wl_env(void) { return W.env; }

const struct wl_user *wl_exec_user(void) { return W.configured && W.exec_as ? &W.u : NULL; }

const char *wl_exec_cwd(void) { return W.configured && W.exec_as && *W.cwd ? W.cwd : "/"; }

static void ring_put(const uint8_t *p, size_t n) {
  L.total += n;
  if (n >= WL_LOG_BYTES) {
    memcpy(L.ring, p + n - WL_LOG_BYTES, WL_LOG_BYTES);
    L.start = 0;
    L.used = WL_LOG_BYTES;
    return;
  }
  size_t end = (L.start + L.used) % WL_LOG_BYTES;
  size_t first = n < WL_LOG_BYTES - end ? n : WL_LOG_BYTES - end;
  memcpy(L.ring + end, p, first);
  memcpy(L.ring, p + first, n - first);
  if (L.used + n > WL_LOG_BYTES) {
    L.start = (L.start + L.used + n - WL_LOG_BYTES) % WL_LOG_BYTES;
    L.used = WL_LOG_BYTES;
  } else {
    L.used += n;
  }
}

static void log_close(void) {
  if (L.fd < 0) return;
  ep_set(L.fd, &L, &L.ev, 0);
  close(L.fd);
  L.fd = -1;
}

/* Reads what the pipe holds (at most 1 MiB per call, so a flood cannot
 * starve the loop; epoll is level-triggered and calls again). */
void wl_log_readable(void) {
  static uint8_t tmp[65536];
  for (int i = 0; i < 16 && L.fd >= 0; i++) {
    ssize_t n = read(L.fd, tmp, sizeof tmp);
    if (n > 0) {
      ring_put(tmp, (size_t)n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    log_close(); /* every writer is gone */
  }
}

/* Opens the output pipe; returns the write end for the workload, or -1. */
static int log_pipe(void) {
  int p[2];
  if (L.fd >= 0 || pipe2(p, O_CLOEXEC) < 0) return -1;
  set_nonblock(p[0]);
  L.fd = p[0];
  ep_set(L.fd, &L, &L.ev, EPOLLIN);
  return p[1];
}

void wl_logs(uint32_t id, const struct field *f) {
  if (L.fd >= 0) wl_log_readable(); /* what is already written counts */
  size_t n = L.used;
  if (f[0].u && f[0].u < n) n = (size_t)f[0].u;
  struct buf b = {0};
  buf_u64(&b, (uint64_t)n);
  buf_u32(&b, 0);
  send_buf(T_FILE_INFO, 0, id, &b);
  struct stream *s = stream_new(id, SK_LOGS);
  size_t from = (L.start + L.used - n) % WL_LOG_BYTES;
  size_t first = n < WL_LOG_BYTES - from ? n : WL_LOG_BYTES - from;
  buf_put(&s->inq, L.ring + from, first);
  buf_put(&s->inq, L.ring, n - first);
  s->bytes = L.total;
  logs_pump(s);
}

void logs_pump(struct stream *s) {
  while (!s->dead && A.connected && !outq_full()) {
    size_t n = buf_avail(&s->inq);
    if (n == 0) {
      send_frame(T_FILE_DATA, SM_FLAG_END, s->id, NULL, 0);
      send_ok(s->id, s->bytes);
      stream_free(s);
      return;
    }
    if (n > s->send_win) n = s->send_win;
    if (n > A.peer_max) n = A.peer_max;
    if (n == 0) return;
    send_frame(T_FILE_DATA, 0, s->id, s->inq.d + s->inq.head, n);
    s->send_win -= (uint32_t)n;
    buf_consume(&s->inq, n);
  }
}

static pid_t wl_spawn(char *err, size_t errlen);

static int parse_num(const char *s, unsigned long *out) {
  if (!*s) return 0;
  char *e;
  errno = 0;
  unsigned long v = strtoul(s, &e, 10);
  if (*e || errno) return 0;
  *out = v;
  return 1;
}

/* Splits a passwd/group line into up to n ':'-separated fields in place. */
static int split(char *line, char **f, int n) {
  int k = 0;
  f[k++] = line;
  for (char *p = line; *p && k < n; p++)
    if (*p == ':') *p = 0, f[k++] = p + 1;
  return k;
}

static char *slurp(const char *path) {
  static char b[262144];
  long n = read_small(path, b, sizeof b);
  return n < 0 ? NULL : b;
}

/* Resolves name, uid, name:group or uid:gid against /etc/passwd and /etc/group. */
static int resolve_user(const char *spec, char *err, size_t errlen) {
  W.u.uid = 0, W.u.gid = 0, W.u.ngroups = 0;
  free(W.home);
  W.home = NULL;
  W.u.home = NULL;
  W.u.named = *spec != 0;
  if (!*spec) spec = "0"; /* root, with root's passwd home and groups */
  char u[256], *g = NULL;
  snprintf(u, sizeof u, "%s", spec);
  char *c = strchr(u, ':');
  if (c) *c = 0, g = c + 1;
  unsigned long num;
  int unum = parse_num(u, &num), found = 0;
  char uname[256] = "";
  char *pw = slurp("/etc/passwd");
  for (char *line = pw; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = 0;
    char *f[7];
    int k = split(line, f, 7);
    if (k >= 4) {
      unsigned long fu;
      if ((unum && parse_num(f[2], &fu) && fu == num) || (!unum && !strcmp(f[0], u))) {
        unsigned long fg;
        W.u.uid = (uid_t)strtoul(f[2], NULL, 10);
        W.u.gid = parse_num(f[3], &fg) ? (gid_t)fg : 0;
        snprintf(uname, sizeof uname, "%s", f[0]);
        W.home = xstrdup(k >= 6 && *f[5] ? f[5] : "/");
        found = 1;
        break;
      }
    }
    line = nl ? nl + 1 : NULL;
  }
  if (!found) { /* a uid without a passwd entry: gid 0, HOME=/ (as runc does) */
    if (!unum) return snprintf(err, errlen, "user %s not found in /etc/passwd", u), -1;
    W.u.uid = (uid_t)num;
    W.u.gid = 0;
    W.home = xstrdup("/");
  }
  W.u.home = W.home;
  char *gr = slurp("/etc/group");
  if (g && *g) {
    unsigned long gn;
    if (parse_num(g, &gn)) W.u.gid = (gid_t)gn;
    else {
      int gf = 0;
      for (char *line = gr; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        char *f[4];
        if (split(line, f, 4) >= 3 && !strcmp(f[0], g)) {
          W.u.gid = (gid_t)strtoul(f[2], NULL, 10);
          gf = 1;
          break;
        }
        line = nl ? nl + 1 : NULL;
      }
      if (!gf) return snprintf(err, errlen, "group %s not found in /etc/group", g), -1;
      gr = slurp("/etc/group");
    }
  }
  /* Supplementary groups: those that list the user by name, as Docker
   * computes them (the primary group is not added). */
  if (*uname && gr) {
    for (char *line = gr; line && *line && W.u.ngroups < 64;) {
      char *nl = strchr(line, '\n');
      if (nl) *nl = 0;
      char *f[4];
      if (split(line, f, 4) == 4) {
        for (char *m = strtok(f[3], ","); m; m = strtok(NULL, ","))
          if (!strcmp(m, uname)) {
            W.u.groups[W.u.ngroups++] = (gid_t)strtoul(f[2], NULL, 10);
            break;
          }
      }
      line = nl ? nl + 1 : NULL;
    }
  }
  return 0;
}

void wl_config(uint32_t id, const struct field *f) {
  if (W.configured) {
    send_error(id, E_STATE, 0, "workload already configured");
    return;
  }
  char *user = str_dup(&f[5]), *host = str_dup(&f[6]), err[300];
  if (resolve_user(user, err, sizeof err) < 0) {
    send_error(id, E_NOT_FOUND, 0, "%s", err);
    free(user);
    free(host);
    return;
  }
  free(user);
  if (*host) {
    if (sethostname(host, strlen(host)) < 0) logmsg("sethostname: %s", strerror(errno));
    if (A.init_mode) guest_etc_files(host);
  }
  free(host);
  W.configured = 1;
  W.hold = (f[0].u & SM_WL_HOLD) != 0;
  W.watch = (f[0].u & SM_WL_WATCH) != 0 && f[1].u != 0;
  W.exec_as = (f[0].u & SM_WL_EXEC_AS_WORKLOAD) != 0;
  W.port = (uint16_t)f[1].u;
  W.argv = strlist_dup(&f[2]);
  W.env = strlist_dup(&f[3]);
  W.cwd = str_dup(&f[4]);
  /* a WorkingDir the image lacks is created, as Docker does */
  if (A.init_mode && *W.cwd && mkdir_p(W.cwd, 0755) < 0) logmsg("mkdir %s: %s", W.cwd, strerror(errno));
  send_ok(id, 0);
  if (W.hold) {
    send_event(EV_WORKLOAD_READY, 0, "");
    return;
  }
  W.started = 1;
  if (W.argv[0]) {
    char e[200];
    if (wl_spawn(e, sizeof e) < 0) send_event(EV_LOG, 0, e);
  }
}

static pid_t wl_spawn(char *err, size_t errlen) {
  int sp[2];
  if (pipe2(sp, O_CLOEXEC) < 0) return snprintf(err, errlen, "pipe: %s", strerror(errno)), -1;
  int out = log_pipe(); /* -1: fall back to the console */
  char **env = make_env(NULL, W.home, 0);
  pid_t pid = fork();
  if (pid == 0) {
    child_reset_inherited();
    setsid();
    int nul = open("/dev/null", O_RDWR);
    if (nul >= 0) dup2(nul, 0);
    dup2(out >= 0 ? out : g_log_fd, 1);
    dup2(out >= 0 ? out : g_log_fd, 2);
    const char *cwd = *W.cwd ? W.cwd : "/";
    int e = 0;
    if (A.init_mode) child_limits();
    /* the working directory is entered as the user, as runc and crun do */
    if (child_become(&W.u, -1) < 0 || chdir(cwd) < 0) e = errno;
    if (e) {
      if (write(sp[1], &e, sizeof e) < 0) {}
      _exit(127);
    }
    child_exec_path(W.argv, env, sp[1]);
    _exit(127);
  }
  free(env);
  close(sp[1]);
  if (out >= 0) close(out);
  if (pid < 0) {
    close(sp[0]);
    return snprintf(err, errlen, "fork: %s", strerror(errno)), -1;
  }
  int e = 0;
  ssize_t n;
  do n = read(sp[0], &e, sizeof e);
  while (n < 0 && errno == EINTR);
  close(sp[0]);
  if (n > 0) return snprintf(err, errlen, "exec %s: %s", W.argv[0], strerror(e)), -1;
  W.pid = pid;
  send_event(EV_WORKLOAD_STARTED, (uint32_t)pid, "");
  if (W.watch) W.watch_next = now_ms();
  return pid;
}

void wl_start(uint32_t id) {
  if (!W.configured || W.started) {
    send_error(id, E_STATE, 0, W.configured ? "workload already started" : "no workload configured");
    return;
  }
  W.started = 1;
  if (!W.argv[0]) {
    send_ok(id, 0);
    return;
  }
  char e[300];
  pid_t pid = wl_spawn(e, sizeof e);
  if (pid < 0) send_error(id, E_EXEC_FAILED, 0, "%s", e);
  else send_ok(id, (uint64_t)pid);
}

void wl_signal(uint32_t id, const struct field *f) {
  int sig = (int)f[0].u;
  if (W.pid <= 0) {
    send_error(id, E_STATE, 0, "no workload running");
    return;
  }
  if (sig < 0 || sig > 64 || (kill(-W.pid, sig) < 0 && kill(W.pid, sig) < 0)) {
    int e = sig < 0 || sig > 64 ? EINVAL : errno;
    send_error(id, E_IO, e, "signal %d: %s", sig, strerror(e));
    return;
  }
  send_ok(id, 0);
}

int wl_on_exit(pid_t pid, int status) {
  if (pid != W.pid || pid <= 0) return 0;
  W.pid = 0;
  W.watch = 0;
  send_event(EV_WORKLOAD_EXITED, (uint32_t)status, "");
  return 1;
}

/* Is there a LISTEN (state 0A) socket on port in a /proc/net/tcp* table? */
static int port_listening(const char *path, unsigned port) {
  char *b = slurp(path);
  if (!b) return 0;
  for (char *line = strchr(b, '\n'); line && *line;) {
    line++;
    char *nl = strchr(line, '\n');
    unsigned lport = 0, st = 0;
    char *colon = strchr(line, ':');
    if (colon) {
      char *p = strchr(colon + 1, ':'); /* after the local address */
      if (p && sscanf(p + 1, "%x %*s %x", &lport, &st) == 2 && lport == port && st == 0x0A)
        return 1;
    }
    line = nl;
  }
  return 0;
}

int64_t wl_next_deadline(void) {
  return W.watch && !W.listening_sent && W.watch_next ? W.watch_next : INT64_MAX;
}

void wl_timer(int64_t now) {
  if (!W.watch || W.listening_sent || !W.watch_next || now < W.watch_next) return;
  if (port_listening("/proc/net/tcp", W.port) || port_listening("/proc/net/tcp6", W.port)) {
    W.listening_sent = 1;
    send_event(EV_LISTENING, W.port, "");
    return;
  }
  W.watch_next = now + WATCH_MS;
}
