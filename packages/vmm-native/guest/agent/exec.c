/* EXEC: processes in their own session and cgroup, pipes or a pty, chains,
 * timeouts (which kill every process the exec started). */
#define _GNU_SOURCE
#include "agent.h"
#include "proto.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sched.h>
#include <stdint.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static size_t key_len(const char *kv) {
  const char *e = strchr(kv, '=');
  return e ? (size_t)(e - kv) : strlen(kv);
}

/* Base environment (what a container runtime adds) overlaid by the workload's
 * env, then by overlay. */
char **make_env(char **overlay, const char *home, int tty) {
  char host[80] = "", hb[96], hm[300];
  gethostname(host, sizeof host - 1);
  snprintf(hb, sizeof hb, "HOSTNAME=%s", host);
  snprintf(hm, sizeof hm, "HOME=%s", home ? home : "/root");
  const char *base[] = {"PATH=" DEFAULT_PATH, hb, hm, tty ? "TERM=xterm" : NULL};
  size_t nbase = tty ? 4 : 3;
  char **wl = wl_env();
  size_t n = nbase;
  for (char **p = wl; p && *p; p++) n++;
  for (char **p = overlay; p && *p; p++) n++;
  const char **v = xcalloc(n + 1, sizeof *v);
  size_t k = 0;
  for (int pass = 0; pass < 3; pass++) {
    const char *const *src = pass == 0 ? base : pass == 1 ? (const char *const *)wl
                                                         : (const char *const *)overlay;
    size_t cnt = pass == 0 ? nbase : (size_t)-1;
    for (size_t i = 0; src && i < cnt && src[i]; i++) {
      const char *kv = src[i];
      if (!strchr(kv, '=')) continue;
      size_t kl = key_len(kv), j;
      for (j = 0; j < k; j++)
        if (key_len(v[j]) == kl && !memcmp(v[j], kv, kl)) break;
      v[j] = kv;
      if (j == k) k++;
    }
  }
  size_t total = (k + 1) * sizeof(char *);
  for (size_t i = 0; i < k; i++) total += strlen(v[i]) + 1;
  char **out = xmalloc(total);
  char *w = (char *)(out + k + 1);
  for (size_t i = 0; i < k; i++) {
    size_t l = strlen(v[i]) + 1;
    out[i] = memcpy(w, v[i], l);
    w += l;
  }
  out[k] = NULL;
  free(v);
  return out;
}

/* Signals ignored in the agent (inherited, or SIGPIPE it ignores itself):
 * an exec keeps ignored dispositions, so children set these back to the
 * default. Caught ones need nothing (the agent catches none, and exec resets
 * caught signals anyway). Bit i-1 for signal i. */
static uint64_t g_ignored;

void child_signals_init(void) {
  for (int i = 1; i < 65; i++) {
    struct sigaction old;
    if (sigaction(i, NULL, &old) == 0 && old.sa_handler == SIG_IGN) g_ignored |= 1ull << (i - 1);
  }
  g_ignored |= 1ull << (SIGPIPE - 1);
}

/* Raw system calls only: also safe in a child that shares the agent's memory
 * (CLONE_VM), where a libc wrapper could touch the agent's state. */
void child_reset_inherited(void) {
  struct {
    void *handler;
    unsigned long flags;
    void *restorer;
    uint64_t mask;
  } dfl = {0};
  uint64_t empty = 0;
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &empty, NULL, sizeof empty);
  for (int i = 1; i < 65; i++)
    if (g_ignored & (1ull << (i - 1))) syscall(SYS_rt_sigaction, i, &dfl, NULL, sizeof dfl.mask);
  /* the agent runs SCHED_BATCH (main.c), which children inherit: back to normal */
  int prio = 0;
  syscall(SYS_sched_setscheduler, 0, SCHED_OTHER, &prio);
}

static void child_msg(const char *a, const char *b) {
  char m[600];
  int n = snprintf(m, sizeof m, "%s: %s\n", a, b);
  if (n > 0 && write(2, m, (size_t)n < sizeof m ? (size_t)n : sizeof m - 1) < 0) {}
}

static void fail_exit(int status_fd, int e, int code) {
  if (status_fd >= 0 && write(status_fd, &e, sizeof e) < 0) {}
  _exit(code);
}

void child_exec_path(char **argv, char **envp, int status_fd) {
  const char *name = argv[0];
  if (!name || !*name) {
    child_msg("sm-init", "empty command");
    fail_exit(status_fd, ENOENT, 127);
  }
  if (strchr(name, '/')) {
    execve(name, argv, envp);
    int e = errno;
    child_msg(name, strerror(e));
    fail_exit(status_fd, e, e == ENOENT ? 127 : 126);
  }
  const char *path = DEFAULT_PATH;
  for (char **p = envp; *p; p++)
    if (!strncmp(*p, "PATH=", 5)) path = *p + 5;
  int eacces = 0;
  char buf[4096];
  while (*path) {
    const char *c = strchr(path, ':');
    size_t dl = c ? (size_t)(c - path) : strlen(path);
    if (dl + strlen(name) + 2 < sizeof buf) {
      memcpy(buf, path, dl);
      size_t o = dl;
      if (o == 0) buf[o++] = '.';
      buf[o++] = '/';
      strcpy(buf + o, name);
      /* A failed execve costs a new address space and a copy of argv and
       * envp before the lookup fails: look first (same result). */
      if (access(buf, F_OK) == 0 || (errno != ENOENT && errno != ENOTDIR)) {
        execve(buf, argv, envp);
        if (errno == EACCES) eacces = 1;
      }
    }
    path += dl;
    if (*path == ':') path++;
  }
  child_msg(name, eacces ? "permission denied" : "command not found");
  fail_exit(status_fd, eacces ? EACCES : ENOENT, eacces ? 126 : 127);
}

/* The child of spawn() runs on this stack, in the agent's memory, while the
 * agent waits (CLONE_VFORK) until it has exec'd or exited: so one stack is
 * enough, and the child must only make system calls and touch its own stack
 * (no malloc, no stdio on shared streams). */
static char g_child_stack[64 * 1024] __attribute__((aligned(16), unused));
struct spawn_args {
  struct stream *s;
  char **argv;
  int join; /* not born in its cgroup: join it */
};
static int spawn_child(void *arg);

/* Starts argv for s. CLONE_VM|CLONE_VFORK (what posix_spawn does): no copy of
 * the agent's page tables and no copy-on-write faults afterwards in either
 * process, which under TCG is a large part of an exec's cost. The agent waits
 * until the child has exec'd, so an exec of a file whose open blocks blocks
 * the agent with it. */
static pid_t spawn(struct stream *s, char **argv) {
  struct spawn_args a = {s, argv, 1};
#ifdef __SANITIZE_ADDRESS__
  /* AddressSanitizer's runtime cannot follow a child on another stack in the
   * same memory: the host test build forks (same child code). */
  pid_t pid = fork();
  if (pid == 0) spawn_child(&a);
  return pid;
#else
  a.join = 0;
  pid_t pid = clone_vfork_into(spawn_child, &a, g_child_stack, sizeof g_child_stack, exec_cgroup_dir(s));
  if (pid >= 0) return pid;
  /* no clone3 (or it refused the cgroup): clone, and the child joins */
  a.join = 1;
  return clone(spawn_child, g_child_stack + sizeof g_child_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
#endif
}

static int spawn_child(void *arg) {
  const struct spawn_args *a = arg;
  struct stream *s = a->s;
  char **argv = a->argv;
  child_reset_inherited();
  if (a->join) exec_cgroup_join(s);
  setsid();
  if (s->tty) {
    int sl = s->child_fd[0];
    ioctl(sl, TIOCSCTTY, 0);
    dup2(sl, 0);
    dup2(sl, 1);
    dup2(sl, 2);
  } else {
    dup2(s->child_fd[0], 0);
    dup2(s->child_fd[1], 1);
    dup2(s->child_fd[2], 2);
  }
  if (A.init_mode) child_limits();
  if (child_become(wl_exec_user(), s->tty ? 0 : -1) < 0) {
    child_msg("sm-init: switching to the image user", strerror(errno));
    _exit(126);
  }
  const char *cwd = s->cwd && *s->cwd ? s->cwd : wl_exec_cwd();
  if (chdir(cwd) < 0) {
    child_msg(cwd, strerror(errno));
    _exit(127);
  }
  child_exec_path(argv, s->env, -1);
  _exit(127);
}

static void send_started(struct stream *s) {
  struct buf b = {0};
  buf_u32(&b, (uint32_t)s->pid);
  send_buf(T_STARTED, 0, s->id, &b);
}

void exec_open(uint32_t id, const struct field *f) {
  if (f[4].count == 0) {
    send_error(id, E_BAD_PAYLOAD, 0, "EXEC with empty argv");
    return;
  }
  struct stream *s = stream_new(id, SK_EXEC);
  s->tty = (f[0].u & SM_EXEC_TTY) != 0;
  s->argv = strlist_dup(&f[4]);
  char **ov = strlist_dup(&f[5]);
  const struct wl_user *u = wl_exec_user();
  s->env = make_env(ov, u ? u->home : NULL, s->tty);
  free(ov);
  s->cwd = str_dup(&f[6]);
  s->chain = strlist_dup(&f[7]);
  exec_cgroup_create(s);
  if (s->tty) {
    struct winsize ws = {.ws_col = (unsigned short)f[2].u, .ws_row = (unsigned short)f[3].u};
    if (!ws.ws_col && !ws.ws_row) ws.ws_col = 80, ws.ws_row = 24;
    int m, sl;
    if (openpty(&m, &sl, NULL, NULL, &ws) < 0) {
      int e = errno;
      send_error(id, E_IO, e, "openpty: %s", strerror(e));
      stream_free(s);
      return;
    }
    set_cloexec(m);
    set_cloexec(sl);
    set_nonblock(m);
    s->child_fd[0] = sl;
    slot_init(&s->sl[0], s, m, T_STDOUT, 1);
    s->nsl = 1;
  } else {
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) < 0) goto fail;
    if (pipe2(out, O_CLOEXEC) < 0) {
      close(in[0]), close(in[1]);
      goto fail;
    }
    if (pipe2(err, O_CLOEXEC) < 0) {
      close(in[0]), close(in[1]), close(out[0]), close(out[1]);
      goto fail;
    }
    s->child_fd[0] = in[0];
    s->child_fd[1] = out[1];
    s->child_fd[2] = err[1];
    set_nonblock(in[1]);
    set_nonblock(out[0]);
    set_nonblock(err[0]);
    /* A process that writes a lot blocks less often on a larger pipe: fewer
     * switches between it and the agent (each is costly under TCG). Best
     * effort: the default 64 KiB stays if the kernel refuses. */
    fcntl(out[0], F_SETPIPE_SZ, EXEC_PIPE_BYTES);
    fcntl(err[0], F_SETPIPE_SZ, EXEC_PIPE_BYTES);
    slot_init(&s->sl[0], s, out[0], T_STDOUT, 0);
    slot_init(&s->sl[1], s, err[0], T_STDERR, 0);
    slot_init(&s->sl[2], s, in[1], 0, 1);
    s->nsl = 3;
  }
  s->pid = spawn(s, s->argv);
  if (s->pid < 0) goto fail;
  s->pgid = s->pid;
  if (!s->chain[0]) /* no chain: the agent needs no copy of the child's ends */
    for (int i = 0; i < 3; i++)
      if (s->child_fd[i] >= 0) close(s->child_fd[i]), s->child_fd[i] = -1;
  if (f[1].u) s->deadline = now_ms() + (int64_t)f[1].u;
  send_started(s);
  stream_update(s);
  return;
fail: {
  int e = errno;
  send_error(id, E_IO, e, "exec setup: %s", strerror(e));
  stream_free(s);
}
}

struct stream *exec_by_pid(pid_t pid) {
  for (struct stream *s = A.all; s; s = s->next)
    if (s->kind == SK_EXEC && s->pid == pid && !s->exited) return s;
  return NULL;
}

void exec_on_exit(struct stream *s, int status, uint64_t rss_kib) {
  if (rss_kib > s->peak_rss) s->peak_rss = rss_kib;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && !s->timed_out && s->chain &&
      s->chain[s->chain_i]) {
    char *argv[] = {"/bin/sh", "-c", s->chain[s->chain_i++], NULL};
    pid_t pid = spawn(s, argv);
    if (pid > 0) {
      s->pid = s->pgid = pid;
      return;
    }
  }
  s->exited = 1;
  s->status = status;
  s->deadline = 0;
  for (int i = 0; i < 3; i++)
    if (s->child_fd[i] >= 0) close(s->child_fd[i]), s->child_fd[i] = -1;
  s->drain_at = now_ms() + DRAIN_MS;
  exec_check_done(s);
}

void exec_check_done(struct stream *s) {
  if (s->dead || !s->exited) return;
  for (int i = 0; i < s->nsl; i++)
    if (s->sl[i].rd_type && !s->sl[i].rd_eof) return;
  if (!s->end_sent[0]) send_frame(T_STDOUT, SM_FLAG_END, s->id, NULL, 0);
  if (!s->end_sent[1]) send_frame(T_STDERR, SM_FLAG_END, s->id, NULL, 0);
  struct buf b = {0};
  int st = s->status;
  buf_u32(&b, WIFEXITED(st) ? (uint32_t)WEXITSTATUS(st) : (uint32_t)-1);
  buf_u32(&b, WIFSIGNALED(st) ? (uint32_t)WTERMSIG(st) : 0);
  buf_u8(&b, (uint8_t)s->timed_out);
  buf_u64(&b, s->peak_rss);
  send_buf(T_EXIT, 0, s->id, &b);
  stream_free(s);
}

void exec_timer(struct stream *s, int64_t now) {
  if (s->deadline && now >= s->deadline && !s->exited) {
    s->deadline = 0;
    s->timed_out = 1;
    exec_kill(s);
  }
  if (s->drain_at && now >= s->drain_at) {
    s->drain_at = 0;
    s->drain_cut = 1;
    for (int i = 0; i < s->nsl; i++) {
      struct slot *sl = &s->sl[i];
      if (!sl->rd_type || sl->rd_eof) continue;
      int avail = 0;
      if (ioctl(sl->fd, FIONREAD, &avail) < 0) avail = 0;
      sl->drain_left = avail > 0 ? (uint32_t)avail : 0;
      if (!sl->drain_left) {
        sl->rd_eof = 1;
        send_frame(sl->rd_type, SM_FLAG_END, s->id, NULL, 0);
        if (sl->rd_type == T_STDOUT) s->end_sent[0] = 1;
        if (sl->rd_type == T_STDERR) s->end_sent[1] = 1;
      }
    }
    exec_check_done(s);
    if (!s->dead) stream_update(s);
  }
}

/* Kills everything the exec started: its cgroup (which processes that left the
 * session or were re-parented cannot leave), else its process group. */
void exec_kill(struct stream *s) {
  exec_cgroup_kill(s);
  if (s->pgid > 0) kill(-s->pgid, SIGKILL);
  if (s->pid > 0 && !s->exited) kill(s->pid, SIGKILL);
}

void exec_signal(struct stream *s, int sig) {
  if (sig < 1 || sig > 64 || s->exited) return;
  if (kill(-s->pgid, sig) < 0) kill(s->pid, sig);
}

void exec_resize(struct stream *s, unsigned cols, unsigned rows) {
  if (!s->tty || s->sl[0].fd < 0) return;
  struct winsize ws = {.ws_col = (unsigned short)cols, .ws_row = (unsigned short)rows};
  ioctl(s->sl[0].fd, TIOCSWINSZ, &ws);
}

void exec_input_end(struct stream *s) {
  s->in_done = 1;
  if (s->tty) {
    char eof = 4;
    if (s->sl[0].fd >= 0 && write(s->sl[0].fd, &eof, 1) < 0) {}
  } else {
    slot_close(&s->sl[2]);
  }
}
