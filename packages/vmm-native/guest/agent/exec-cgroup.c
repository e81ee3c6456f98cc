/* Per-exec cgroups. Every process an EXEC starts joins a cgroup v2 group of
 * its own before it runs the command, and everything it starts stays there
 * whatever session, process group or parent it moves to (setsid, double
 * fork into a new session). A timeout, RESET or session reset then kills the
 * whole tree at once through cgroup.kill, which also catches processes forked
 * while the kill runs. Without a cgroup2 base (host tests without
 * SM_EXEC_CGROUP) execs fall back to killing their process group. */
#define _GNU_SOURCE
#include "agent.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CG_PATH_MAX 240

static char g_base[CG_PATH_MAX]; /* "" = no per-exec cgroups */
static unsigned g_seq;

/* Groups whose processes outlived their exec (background children): removed
 * once empty. */
struct pending_cg {
  struct pending_cg *next;
  char path[CG_PATH_MAX];
};
static struct pending_cg *g_pending;

int exec_cgroup_init(const char *base) {
  g_base[0] = 0;
  if (!base || !*base || strlen(base) + 16 >= CG_PATH_MAX) return -1;
  if (mkdir(base, 0755) < 0 && errno != EEXIST) {
    logmsg("exec cgroups off: mkdir %s: %s", base, strerror(errno));
    return -1;
  }
  char p[CG_PATH_MAX + 16];
  snprintf(p, sizeof p, "%s/cgroup.kill", base);
  if (access(p, W_OK) < 0) { /* not a cgroup2 group, or a kernel before 5.14 */
    logmsg("exec cgroups off: %s: %s", p, strerror(errno));
    return -1;
  }
  snprintf(g_base, sizeof g_base, "%s", base);
  return 0;
}

int exec_cgroup_enabled(void) { return g_base[0] != 0; }

void exec_cgroup_create(struct stream *s) {
  s->cg_fd = -1;
  s->cg_path = NULL;
  if (!g_base[0]) return;
  exec_cgroup_sweep();
  char p[CG_PATH_MAX + 32];
  snprintf(p, sizeof p, "%s/e%u", g_base, ++g_seq);
  if (mkdir(p, 0755) < 0) {
    logmsg("exec cgroup %s: %s", p, strerror(errno));
    return;
  }
  char procs[CG_PATH_MAX + 48];
  snprintf(procs, sizeof procs, "%s/cgroup.procs", p);
  s->cg_fd = open(procs, O_WRONLY | O_CLOEXEC);
  if (s->cg_fd < 0) {
    logmsg("exec cgroup %s: %s", procs, strerror(errno));
    rmdir(p);
    return;
  }
  s->cg_path = xstrdup(p);
}

void exec_cgroup_join(const struct stream *s) {
  if (s->cg_fd < 0) return;
  char b[24];
  int n = snprintf(b, sizeof b, "%d", (int)getpid());
  if (write(s->cg_fd, b, (size_t)n) != n) logmsg("joining %s: %s", s->cg_path, strerror(errno));
}

int exec_cgroup_kill(const struct stream *s) {
  if (!s->cg_path) return -1;
  char p[CG_PATH_MAX + 48];
  snprintf(p, sizeof p, "%s/cgroup.kill", s->cg_path);
  int fd = open(p, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int r = write(fd, "1", 1) == 1 ? 0 : -1;
  if (r < 0) logmsg("%s: %s", p, strerror(errno));
  close(fd);
  return r;
}

void exec_cgroup_release(struct stream *s) {
  if (s->cg_fd >= 0) close(s->cg_fd), s->cg_fd = -1;
  if (!s->cg_path) return;
  if (rmdir(s->cg_path) < 0 && errno == EBUSY) { /* processes left running: retry later */
    struct pending_cg *p = xcalloc(1, sizeof *p);
    snprintf(p->path, sizeof p->path, "%s", s->cg_path);
    p->next = g_pending;
    g_pending = p;
  }
  free(s->cg_path);
  s->cg_path = NULL;
}

void exec_cgroup_sweep(void) {
  for (struct pending_cg **pp = &g_pending; *pp;) {
    struct pending_cg *p = *pp;
    if (rmdir(p->path) == 0 || errno != EBUSY) {
      *pp = p->next;
      free(p);
    } else {
      pp = &p->next;
    }
  }
}
