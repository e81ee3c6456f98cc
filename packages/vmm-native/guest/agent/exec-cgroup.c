/* Per-exec cgroups. Every process an EXEC starts is born in (or, where
 * clone3 cannot place it, joins) a cgroup v2 group that holds nothing else,
 * and everything it starts stays there whatever session, process group or
 * parent it moves to (setsid, double fork into a new session). A timeout,
 * RESET or session reset then kills the whole tree at once through
 * cgroup.kill, which also catches processes forked while the kill runs.
 * Without a cgroup2 base (host tests without SM_EXEC_CGROUP) execs fall back
 * to killing their process group.
 *
 * Making a group with controllers costs about half a millisecond under TCG,
 * and the first processes in a fresh group pay a little more: a group whose
 * exec ended with no process left in it is kept for a later exec (a few at
 * most). Its cumulative counters (cpu.stat, memory.peak, ...) then include
 * earlier execs of the same VM. A group whose processes outlive their exec
 * is never reused: it is removed once empty. */
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
#define CG_FREE_MAX 4

static char g_base[CG_PATH_MAX]; /* "" = no per-exec cgroups */
static unsigned g_seq;

struct cg {
  struct cg *next;
  int dir_fd;   /* the group's directory (clone3 CLONE_INTO_CGROUP) */
  int procs_fd; /* its cgroup.procs, read and write */
  char path[CG_PATH_MAX + 32];
};
static struct cg *g_free;  /* empty groups of finished execs */
static int g_nfree;
static struct cg *g_pending; /* groups whose processes outlived their exec */

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

static void cg_close(struct cg *c) {
  if (c->dir_fd >= 0) close(c->dir_fd);
  if (c->procs_fd >= 0) close(c->procs_fd);
  free(c);
}

/* True when no process is in c (cgroup.procs reads empty). */
static int cg_empty(const struct cg *c) {
  char one;
  return pread(c->procs_fd, &one, 1, 0) == 0;
}

static struct cg *cg_make(void) {
  struct cg *c = xcalloc(1, sizeof *c);
  c->dir_fd = c->procs_fd = -1;
  snprintf(c->path, sizeof c->path, "%s/e%u", g_base, ++g_seq);
  if (mkdir(c->path, 0755) < 0) {
    logmsg("exec cgroup %s: %s", c->path, strerror(errno));
    free(c);
    return NULL;
  }
  c->dir_fd = open(c->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  char procs[CG_PATH_MAX + 48];
  snprintf(procs, sizeof procs, "%s/cgroup.procs", c->path);
  c->procs_fd = open(procs, O_RDWR | O_CLOEXEC);
  if (c->dir_fd < 0 || c->procs_fd < 0) {
    logmsg("exec cgroup %s: %s", procs, strerror(errno));
    rmdir(c->path);
    cg_close(c);
    return NULL;
  }
  return c;
}

/* Removes c now, or once it is empty. */
static void cg_retire(struct cg *c) {
  if (rmdir(c->path) < 0 && errno == EBUSY) {
    c->next = g_pending;
    g_pending = c;
    return;
  }
  cg_close(c);
}

void exec_cgroup_create(struct stream *s) {
  s->cg = NULL;
  if (!g_base[0]) return;
  exec_cgroup_sweep();
  while (g_free) {
    struct cg *c = g_free;
    g_free = c->next;
    g_nfree--;
    /* guest root may have moved processes in since: an exec's group starts empty */
    if (cg_empty(c)) {
      s->cg = c;
      return;
    }
    cg_retire(c);
  }
  s->cg = cg_make();
}

int exec_cgroup_dir(const struct stream *s) { return s->cg ? s->cg->dir_fd : -1; }

void exec_cgroup_join(const struct stream *s) {
  if (!s->cg) return;
  char b[24];
  int n = snprintf(b, sizeof b, "%d", (int)getpid());
  if (write(s->cg->procs_fd, b, (size_t)n) != n) logmsg("joining %s: %s", s->cg->path, strerror(errno));
}

int exec_cgroup_kill(const struct stream *s) {
  if (!s->cg) return -1;
  char p[CG_PATH_MAX + 48];
  snprintf(p, sizeof p, "%s/cgroup.kill", s->cg->path);
  int fd = open(p, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int r = write(fd, "1", 1) == 1 ? 0 : -1;
  if (r < 0) logmsg("%s: %s", p, strerror(errno));
  close(fd);
  return r;
}

void exec_cgroup_release(struct stream *s) {
  struct cg *c = s->cg;
  s->cg = NULL;
  if (!c) return;
  if (g_nfree < CG_FREE_MAX && cg_empty(c)) {
    c->next = g_free;
    g_free = c;
    g_nfree++;
    return;
  }
  cg_retire(c);
}

void exec_cgroup_sweep(void) {
  for (struct cg **pp = &g_pending; *pp;) {
    struct cg *c = *pp;
    if (rmdir(c->path) == 0 || errno != EBUSY) {
      *pp = c->next;
      cg_close(c);
    } else {
      pp = &c->next;
    }
  }
}
