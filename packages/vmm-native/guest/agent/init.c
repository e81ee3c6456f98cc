/* PID 1 setup: mounts, overlay root, /dev, network, hostname, agent port. */
#define _GNU_SOURCE
#include "agent.h"
#include "util.h"
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static void try_mount(const char *src, const char *dst, const char *type, unsigned long fl,
                      const char *data) {
  mkdir(dst, 0755);
  if (mount(src, dst, type, fl, data) < 0 && errno != EBUSY)
    logmsg("mount %s on %s: %s", type ? type : src, dst, strerror(errno));
}

static void sock_addr(struct sockaddr *sa, const char *ip) {
  struct sockaddr_in *a = (struct sockaddr_in *)sa;
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  inet_pton(AF_INET, ip, &a->sin_addr);
}

static int net_up(int sk, const char *ifname, const char *ip, const char *mask) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
  sock_addr(&ifr.ifr_addr, ip);
  if (ioctl(sk, SIOCSIFADDR, &ifr) < 0) return -1;
  sock_addr(&ifr.ifr_netmask, mask);
  if (ioctl(sk, SIOCSIFNETMASK, &ifr) < 0) return -1;
  if (ioctl(sk, SIOCGIFFLAGS, &ifr) < 0) return -1;
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  return ioctl(sk, SIOCSIFFLAGS, &ifr);
}

static void network_setup(void) {
  int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sk < 0) return logmsg("socket: %s", strerror(errno));
  if (net_up(sk, "lo", "127.0.0.1", "255.0.0.0") < 0) logmsg("lo: %s", strerror(errno));
  if (if_nametoindex("eth0")) {
    if (net_up(sk, "eth0", "10.0.2.15", "255.255.255.0") < 0) {
      logmsg("eth0: %s", strerror(errno));
    } else {
      struct rtentry rt;
      memset(&rt, 0, sizeof rt);
      sock_addr(&rt.rt_dst, "0.0.0.0");
      sock_addr(&rt.rt_genmask, "0.0.0.0");
      sock_addr(&rt.rt_gateway, "10.0.2.2");
      rt.rt_flags = RTF_UP | RTF_GATEWAY;
      rt.rt_dev = "eth0";
      if (ioctl(sk, SIOCADDRT, &rt) < 0 && errno != EEXIST)
        logmsg("default route: %s", strerror(errno));
    }
  }
  close(sk);
}

static char *cmdline_get(const char *cmd, const char *key, char *out, size_t cap) {
  size_t kl = strlen(key);
  for (const char *p = cmd; *p;) {
    while (*p == ' ' || *p == '\n') p++;
    const char *e = p;
    while (*e && *e != ' ' && *e != '\n') e++;
    if ((size_t)(e - p) > kl && !strncmp(p, key, kl) && p[kl] == '=') {
      size_t n = (size_t)(e - p) - kl - 1;
      if (n >= cap) n = cap - 1;
      memcpy(out, p + kl + 1, n);
      out[n] = 0;
      return out;
    }
    p = e;
  }
  return NULL;
}

/* The root fs type by its magic: squashfs ("hsqs" at 0), erofs (at 1024),
 * else ext4. The host builds squashfs unless the image needs ext4. */
static const char *rootfs_type(const char *dev) {
  unsigned char b[4];
  const char *type = "ext4";
  int fd = open(dev, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return type;
  if (pread(fd, b, 4, 0) == 4 && !memcmp(b, "hsqs", 4))
    type = "squashfs";
  else if (pread(fd, b, 4, 1024) == 4 && b[0] == 0xe2 && b[1] == 0xe1 && b[2] == 0xf5 && b[3] == 0xe0)
    type = "erofs";
  close(fd);
  return type;
}

static int switch_to_overlay(const char *dev, const char *fstype) {
  struct stat st;
  for (int i = 0; i < 500 && stat(dev, &st) < 0; i++) usleep(10000);
  if (!fstype[0]) fstype = rootfs_type(dev);
  mkdir("/lower", 0755);
  mkdir("/rw", 0755);
  mkdir("/newroot", 0755);
  if (mount(dev, "/lower", fstype, MS_RDONLY, NULL) < 0)
    return logmsg("FATAL: mount %s (%s) on /lower: %s", dev, fstype, strerror(errno)), -1;
  if (mount("tmpfs", "/rw", "tmpfs", 0, "mode=0755") < 0)
    return logmsg("FATAL: mount tmpfs on /rw: %s", strerror(errno)), -1;
  mkdir("/rw/upper", 0755);
  mkdir("/rw/work", 0755);
  /* xino=on: the lower fs and the tmpfs upper share one inode space, so
   * readdir's d_ino equals stat's st_ino and every file has the overlay's
   * st_dev, as on a container's root where all layers are on one fs. */
  static const char opts[] = "lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work";
  if (mount("overlay", "/newroot", "overlay", 0, "lowerdir=/lower,upperdir=/rw/upper,"
                                                 "workdir=/rw/work,xino=on") < 0) {
    logmsg("overlay xino=on: %s; mounting without it", strerror(errno));
    if (mount("overlay", "/newroot", "overlay", 0, opts) < 0)
      return logmsg("FATAL: mount overlay on /newroot: %s", strerror(errno)), -1;
  }
  const char *mv[] = {"/dev", "/proc", "/sys"};
  for (int i = 0; i < 3; i++) {
    char d[32];
    snprintf(d, sizeof d, "/newroot%s", mv[i]);
    mkdir(d, 0755);
    if (mount(mv[i], d, NULL, MS_MOVE, NULL) < 0) logmsg("move %s: %s", mv[i], strerror(errno));
  }
  if (chdir("/newroot") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 ||
      chdir("/") < 0)
    return logmsg("FATAL: switch root: %s", strerror(errno)), -1;
  return 0;
}

int init_setup(void) {
  umask(022);
  try_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  try_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  try_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  int con = open("/dev/console", O_RDWR | O_NOCTTY);
  if (con >= 0) {
    dup2(con, 0);
    dup2(con, 1);
    dup2(con, 2);
    if (con > 2) close(con);
  }
  g_log_fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
  if (g_log_fd < 0) g_log_fd = 2;
  static char cmd[4096];
  if (read_small("/proc/cmdline", cmd, sizeof cmd) < 0) cmd[0] = 0;
  char root[256], fstype[64], host[65];
  if (!cmdline_get(cmd, "sm.rootfstype", fstype, sizeof fstype)) fstype[0] = 0; /* by magic */
  if (!cmdline_get(cmd, "sm.hostname", host, sizeof host)) strcpy(host, "supermachine");
  if (cmdline_get(cmd, "sm.root", root, sizeof root)) switch_to_overlay(root, fstype);
  mkdir("/dev/pts", 0755);
  if (mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620,gid=5") < 0)
    logmsg("mount devpts: %s", strerror(errno));
  unlink("/dev/ptmx");
  if (symlink("pts/ptmx", "/dev/ptmx") < 0) logmsg("/dev/ptmx: %s", strerror(errno));
  /* the mounts a container runtime makes under /dev, with its flags */
  try_mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777");
  try_mount("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  /* cgroup2 at its usual place: every exec gets a cgroup under EXEC_CGROUP_BASE */
  /* favordynmods: moving a process into a cgroup then takes no RCU grace
   * period. Without it, the first exec after any pause waited for one
   * (30 ms under TCG with HZ=100: 12 ms back to back, 40-45 ms after 50 ms
   * idle); forks and exits cost a little more instead. Kernels before 6.0
   * do not know the option: mount without it. */
  mkdir("/sys/fs/cgroup", 0755);
  if (mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, "favordynmods") < 0 &&
      errno != EBUSY)
    try_mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  /* what udev's default rules give on a Docker host: anyone may open these
   * (fusermount, fuse-overlayfs, slirp4netns run unprivileged) */
  if (chmod("/dev/fuse", 0666) < 0) logmsg("/dev/fuse: %s", strerror(errno));
  if (chmod("/dev/net/tun", 0666) < 0) logmsg("/dev/net/tun: %s", strerror(errno));
  if (symlink("/proc/self/fd", "/dev/fd") < 0 && errno != EEXIST) {}
  if (symlink("/proc/self/fd/0", "/dev/stdin") < 0 && errno != EEXIST) {}
  if (symlink("/proc/self/fd/1", "/dev/stdout") < 0 && errno != EEXIST) {}
  if (symlink("/proc/self/fd/2", "/dev/stderr") < 0 && errno != EEXIST) {}
  if (sethostname(host, strlen(host)) < 0) logmsg("sethostname: %s", strerror(errno));
  network_setup();
  guest_etc_files(host); /* after the network: /etc/hosts names eth0's address */
  guest_sysctls();
  return 0;
}

/* Opens /dev/vportNpM of the virtio-serial port named sm.agent. */
int open_agent_port(void) {
  for (int attempt = 0; attempt < 500; attempt++) {
    DIR *d = opendir("/sys/class/virtio-ports");
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      char p[300], name[64];
      snprintf(p, sizeof p, "/sys/class/virtio-ports/%s/name", e->d_name);
      if (read_small(p, name, sizeof name) <= 0) continue;
      name[strcspn(name, "\n")] = 0;
      if (strcmp(name, "sm.agent")) continue;
      snprintf(p, sizeof p, "/dev/%s", e->d_name);
      closedir(d);
      int fd = open(p, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
      if (fd < 0) logmsg("open %s: %s", p, strerror(errno));
      return fd;
    }
    if (d) closedir(d);
    usleep(10000);
  }
  logmsg("FATAL: no virtio-serial port named sm.agent");
  return -1;
}
