/* sm-init: PID 1 of a supermachine guest, or the agent alone (--stdio,
 * --channel PATH) for host-side tests. */
#define _GNU_SOURCE
#include "agent.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static void usage(void) {
  static const char m[] = "usage: sm-init            (as PID 1)\n"
                          "       sm-init --stdio    (frames on fd 0/1)\n"
                          "       sm-init --channel PATH (char device or unix socket)\n";
  if (write(2, m, sizeof m - 1) < 0) {}
}

/* PID 1 must never exit: reap forever. */
static void reap_forever(void) {
  sigset_t m;
  sigemptyset(&m);
  sigprocmask(SIG_SETMASK, &m, NULL);
  for (;;)
    if (wait(NULL) < 0) sleep(1);
}

static int open_channel(const char *path) {
  struct stat st;
  if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) return -1;
    A.chan_kind = CH_SOCK;
    return fd;
  }
  A.chan_kind = CH_DEV;
  return open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
}

static void finish(void) { /* --stdio/--channel: flush what is queued, end children */
  int fl = fcntl(A.out_fd, F_GETFL);
  if (fl >= 0) fcntl(A.out_fd, F_SETFL, fl & ~O_NONBLOCK);
  while (buf_avail(&A.outq)) {
    ssize_t n = write(A.out_fd, A.outq.d + A.outq.head, buf_avail(&A.outq));
    if (n <= 0) break;
    buf_consume(&A.outq, (size_t)n);
  }
  A.connected = 0;
  session_reset_all();
}

/* Each open stream holds up to 4 fds: allow well over 1024 streams. */
static void raise_nofile(void) {
  struct rlimit r = {65536, 65536};
  if (setrlimit(RLIMIT_NOFILE, &r) == 0) return;
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

/* The agent runs SCHED_BATCH, whose wake-ups never preempt the running task:
 * a process writing its output in small pieces keeps the CPU until its time
 * slice ends or it blocks, and the agent then reads what piled up in one go,
 * instead of preempting it after every write() (a read, a frame and a
 * virtio kick per line). An exiting child likewise finishes its exit before
 * the agent looks at its EOFs, so END, END and EXIT leave together. When the
 * CPU is idle the agent runs at once, as before. Children go back to the
 * normal policy before they exec (child_reset_inherited). */
static void agent_yields_on_wakeup(void) {
  struct sched_param sp = {0};
  /* the system call itself: musl's sched_setscheduler() is a stub (ENOSYS) */
  if (syscall(SYS_sched_setscheduler, 0, SCHED_BATCH, &sp) < 0)
    logmsg("sched_setscheduler(SCHED_BATCH): %s", strerror(errno));
}

int main(int argc, char **argv) {
  A.in_fd = A.out_fd = -1;
  raise_nofile();
  if (getpid() == 1) {
    A.init_mode = 1;
    signal(SIGPIPE, SIG_IGN);
    init_setup();
    exec_cgroup_init(EXEC_CGROUP_BASE);
    guest_cgroup_controllers("/sys/fs/cgroup", EXEC_CGROUP_BASE);
    int fd = open_agent_port();
    if (fd < 0) {
      logmsg("FATAL: agent not started; reaping only");
      reap_forever();
    }
    A.chan_kind = CH_DEV;
    A.in_fd = A.out_fd = fd;
    agent_yields_on_wakeup();
    agent_run();
    logmsg("FATAL: agent loop ended");
    reap_forever();
  }
  if (argc == 2 && !strcmp(argv[1], "--stdio")) {
    A.chan_kind = CH_STDIO;
    A.in_fd = 0;
    A.out_fd = 1;
  } else if (argc == 3 && !strcmp(argv[1], "--channel")) {
    int fd = open_channel(argv[2]);
    if (fd < 0) {
      logmsg("cannot open channel %s: %s", argv[2], strerror(errno));
      return 1;
    }
    A.in_fd = A.out_fd = fd;
  } else {
    usage();
    return 2;
  }
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  /* Host tests: a cgroup2 directory for per-exec cgroups (see test-agent.sh). */
  const char *cg = getenv("SM_EXEC_CGROUP");
  if (cg && *cg && exec_cgroup_init(cg) < 0) {
    logmsg("SM_EXEC_CGROUP=%s is not a usable cgroup2 directory", cg);
    return 1;
  }
  int r = agent_run();
  finish();
  return r < 0 ? 1 : 0;
}
