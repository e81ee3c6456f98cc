/* The environment a container runtime gives its processes, reproduced in the
 * guest: /etc/hosts, /etc/hostname and /etc/resolv.conf written as Docker
 * writes them, Docker's sysctl defaults, cgroup v2 controllers delegated to
 * the per-exec groups, rlimits, and the image user every exec runs as. */
#define _GNU_SOURCE
#include "agent.h"
#include "util.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* eth0's IPv4 address, or "" when there is no configured eth0. */
static void eth0_addr(char *out, size_t cap) {
  out[0] = 0;
  int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sk < 0) return;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, IFNAMSIZ, "eth0");
  if (ioctl(sk, SIOCGIFADDR, &ifr) == 0) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ifr.ifr_addr;
    inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)cap);
  }
  close(sk);
}

/* Replaces path (a symlink in some images) with a regular file. */
static void put_file(const char *path, const char *data) {
  unlink(path);
  if (write_file(path, data, 0644) < 0) logmsg("%s: %s", path, strerror(errno));
}

void guest_etc_files(const char *host) {
  char ip[INET_ADDRSTRLEN], b[768];
  eth0_addr(ip, sizeof ip);
  mkdir("/etc", 0755);
  /* Docker's layout: loopback names, the IPv6 well-known names, then the
   * hostname on the container's own address (127.0.1.1 without a network). */
  snprintf(b, sizeof b,
           "127.0.0.1\tlocalhost\n"
           "::1\tlocalhost ip6-localhost ip6-loopback\n"
           "fe00::0\tip6-localnet\n"
           "ff00::0\tip6-mcastprefix\n"
           "ff02::1\tip6-allnodes\n"
           "ff02::2\tip6-allrouters\n"
           "%s\t%s\n",
           ip[0] ? ip : "127.0.1.1", host);
  put_file("/etc/hosts", b);
  snprintf(b, sizeof b, "%s\n", host);
  put_file("/etc/hostname", b);
  put_file("/etc/resolv.conf", "nameserver 10.0.2.3\n"); /* QEMU user networking's DNS */
}

void guest_sysctls(void) {
  /* Docker sets both for every container: unprivileged ICMP echo sockets,
   * and ports below 1024 bindable without CAP_NET_BIND_SERVICE. */
  static const char *const kv[][2] = {
      {"/proc/sys/net/ipv4/ping_group_range", "0 2147483647"},
      {"/proc/sys/net/ipv4/ip_unprivileged_port_start", "0"},
  };
  for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
    int fd = open(kv[i][0], O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, kv[i][1], strlen(kv[i][1])) < 0)
      logmsg("sysctl %s: %s", kv[i][0], strerror(errno));
    if (fd >= 0) close(fd);
  }
}

/* Enables every controller dir's parent offers in dir's cgroup.subtree_control. */
static void enable_controllers(const char *dir) {
  char p[300], list[512];
  snprintf(p, sizeof p, "%s/cgroup.controllers", dir);
  if (read_small(p, list, sizeof list) < 0) return;
  snprintf(p, sizeof p, "%s/cgroup.subtree_control", dir);
  for (char *c = strtok(list, " \n"); c; c = strtok(NULL, " \n")) {
    char w[64];
    int n = snprintf(w, sizeof w, "+%s", c);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return;
    if (write(fd, w, (size_t)n) < 0) logmsg("%s %s: %s", p, w, strerror(errno));
    close(fd);
  }
}

void guest_cgroup_controllers(const char *root, const char *base) {
  /* The root may delegate while it holds processes; base never holds any,
   * so each exec's group gets memory.*, pids.*, cpu.*, io.* files as a
   * container's cgroup has. */
  enable_controllers(root);
  if (base && exec_cgroup_enabled()) enable_controllers(base);
}

void child_limits(void) {
  /* Docker on a systemd host: nofile 1024:524288 (Docker Engine 25+),
   * nproc and core unlimited (containerd's unit); the rest the kernel's. */
  /* raw prlimit64: safe in a child sharing the agent's memory (CLONE_VM) */
  struct rlimit nofile = {1024, 524288}, inf = {RLIM_INFINITY, RLIM_INFINITY};
  syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, &nofile, NULL);
  syscall(SYS_prlimit64, 0, RLIMIT_NPROC, &inf, NULL);
  syscall(SYS_prlimit64, 0, RLIMIT_CORE, &inf, NULL);
}

int child_become(const struct wl_user *u, int tty_fd) {
  if (!u || (!u->named && geteuid() != 0)) return 0; /* host tests run unprivileged */
  if (tty_fd >= 0 && fchown(tty_fd, u->uid, (gid_t)-1) < 0) {}
  /* Raw system calls: libc's set*id may coordinate with other threads
   * through the agent's memory, which a CLONE_VM child shares. The child is
   * a single-threaded process of its own, so these change all of it. */
  if (syscall(SYS_setgroups, (size_t)u->ngroups, u->groups) < 0 && u->uid != 0) return -1;
  if (syscall(SYS_setgid, u->gid) < 0 || syscall(SYS_setuid, u->uid) < 0) return -1;
  return 0;
}
