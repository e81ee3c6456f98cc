/* Fidelity probe: prints what a process sees of its environment, one
 * "key<TAB>value" line each, so the same static binary can be run under a
 * container runtime and inside a supermachine VM and the outputs compared.
 * Sections: env, id, cwd, umask, rlimit, status, mount, dev, host, cgroup,
 * sysctl, feature, fs. Built static with musl (see fidelity.ts). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/bpf.h>
#include <linux/fanotify.h>
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/inotify.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

extern char **environ;

static void out(const char *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(const char *k, const char *fmt, ...) {
  char v[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(v, sizeof v, fmt, ap);
  va_end(ap);
  for (char *p = v; *p; p++)
    if (*p == '\n' || *p == '\t') *p = ' ';
  printf("%s\t%s\n", k, v);
}

static long slurp(const char *path, char *b, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t n = 0;
  ssize_t r;
  while (n + 1 < cap && (r = read(fd, b + n, cap - 1 - n)) > 0) n += (size_t)r;
  close(fd);
  b[n] = 0;
  return (long)n;
}

static const char *ename(int e) {
  switch (e) {
  case EPERM: return "EPERM";
  case ENOENT: return "ENOENT";
  case EACCES: return "EACCES";
  case EINVAL: return "EINVAL";
  case ENOSYS: return "ENOSYS";
  case EOPNOTSUPP: return "EOPNOTSUPP";
  case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
  case EAFNOSUPPORT: return "EAFNOSUPPORT";
  case ENODEV: return "ENODEV";
  case EXDEV: return "EXDEV";
  case EROFS: return "EROFS";
  case EBUSY: return "EBUSY";
  case ENOTDIR: return "ENOTDIR";
  case EEXIST: return "EEXIST";
  case ENXIO: return "ENXIO";
  default: {
    static char b[16];
    snprintf(b, sizeof b, "E%d", e);
    return b;
  }
  }
}

/* ok | blocked:ERR (the kernel has it, this process may not use it) | absent:ERR */
static void feature(const char *name, int rc, int err) {
  char k[96];
  snprintf(k, sizeof k, "feature.%s", name);
  if (rc >= 0) out(k, "ok");
  else if (err == EPERM || err == EACCES) out(k, "blocked:%s", ename(err));
  else out(k, "absent:%s", ename(err));
}

/* Runs fn in a child (for calls that change the caller); its exit code is an errno or 0. */
static int in_child(int (*fn)(void)) {
  pid_t p = fork();
  if (p == 0) _exit(fn());
  int st;
  if (p < 0 || waitpid(p, &st, 0) < 0) return errno;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

static void child_feature(const char *name, int (*fn)(void)) {
  int e = in_child(fn);
  feature(name, e ? -1 : 0, e);
}

/* ---- env, ids, limits, status ---- */

static int cmpstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void env_section(void) {
  int n = 0;
  for (char **e = environ; *e; e++) n++;
  char **v = calloc((size_t)n + 1, sizeof *v);
  for (int i = 0; i < n; i++) v[i] = environ[i];
  qsort(v, (size_t)n, sizeof *v, cmpstr);
  for (int i = 0; i < n; i++) {
    char k[300];
    const char *eq = strchr(v[i], '=');
    if (!eq) continue;
    snprintf(k, sizeof k, "env.%.*s", (int)(eq - v[i]), v[i]);
    out(k, "%s", eq + 1);
  }
  free(v);
}

static int cmpgid(const void *a, const void *b) {
  gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;
  return x < y ? -1 : x > y;
}

static void id_section(void) {
  out("id.uid", "%u", getuid());
  out("id.euid", "%u", geteuid());
  out("id.gid", "%u", getgid());
  out("id.egid", "%u", getegid());
  gid_t g[256];
  int n = getgroups(256, g);
  if (n < 0) n = 0;
  qsort(g, (size_t)n, sizeof g[0], cmpgid);
  char b[2048] = "";
  size_t o = 0;
  for (int i = 0; i < n && o < sizeof b - 16; i++) o += (size_t)snprintf(b + o, sizeof b - o, "%s%u", i ? "," : "", g[i]);
  out("id.groups", "%s", b);
  char cwd[4096];
  out("cwd", "%s", getcwd(cwd, sizeof cwd) ? cwd : "?");
  mode_t m = umask(0);
  umask(m);
  out("umask", "%04o", m);
}

static void lim(const char *name, int res) {
  struct rlimit r;
  char k[64], a[32], b[32];
  snprintf(k, sizeof k, "rlimit.%s", name);
  if (getrlimit(res, &r) < 0) return out(k, "error");
  if (r.rlim_cur == RLIM_INFINITY) snprintf(a, sizeof a, "inf");
  else snprintf(a, sizeof a, "%llu", (unsigned long long)r.rlim_cur);
  if (r.rlim_max == RLIM_INFINITY) snprintf(b, sizeof b, "inf");
  else snprintf(b, sizeof b, "%llu", (unsigned long long)r.rlim_max);
  out(k, "%s:%s", a, b);
}

static void rlimit_section(void) {
  lim("as", RLIMIT_AS);
  lim("core", RLIMIT_CORE);
  lim("cpu", RLIMIT_CPU);
  lim("data", RLIMIT_DATA);
  lim("fsize", RLIMIT_FSIZE);
  lim("locks", RLIMIT_LOCKS);
  lim("memlock", RLIMIT_MEMLOCK);
  lim("msgqueue", RLIMIT_MSGQUEUE);
  lim("nice", RLIMIT_NICE);
  lim("nofile", RLIMIT_NOFILE);
  lim("nproc", RLIMIT_NPROC);
  lim("rss", RLIMIT_RSS);
  lim("rtprio", RLIMIT_RTPRIO);
  lim("rttime", RLIMIT_RTTIME);
  lim("sigpending", RLIMIT_SIGPENDING);
  lim("stack", RLIMIT_STACK);
}

static void status_section(void) {
  static char b[16384];
  if (slurp("/proc/self/status", b, sizeof b) < 0) return;
  const char *want[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"};
  char *save = NULL;
  for (char *line = strtok_r(b, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
      size_t l = strlen(want[i]);
      if (!strncmp(line, want[i], l) && line[l] == ':') {
        char k[64];
        snprintf(k, sizeof k, "status.%s", want[i]);
        const char *v = line + l + 1;
        while (*v == ' ' || *v == '\t') v++;
        out(k, "%s", v);
      }
    }
  }
}

/* ---- mounts ---- */

/* Keeps the per-mount flags that change behaviour, in a fixed order. */
static void mount_flags(const char *opts, char *o, size_t cap) {
  const char *keep[] = {"ro", "rw", "nosuid", "nodev", "noexec"};
  o[0] = 0;
  for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
    char pat[16];
    size_t l = strlen(keep[i]);
    const char *p = opts;
    while ((p = strstr(p, keep[i]))) {
      if ((p == opts || p[-1] == ',') && (p[l] == ',' || p[l] == 0)) {
        snprintf(pat, sizeof pat, "%s%s", o[0] ? "," : "", keep[i]);
        strncat(o, pat, cap - strlen(o) - 1);
        break;
      }
      p += l;
    }
  }
}

/* Super-block options that define what a mount gives (modes, pty options). */
static void super_opts(const char *type, const char *opts, char *o, size_t cap) {
  const char *keep[] = {"mode=", "ptmxmode=", "gid=", "newinstance", "nsdelegate"};
  o[0] = 0;
  if (!strcmp(type, "proc") || !strcmp(type, "sysfs") || !strcmp(type, "overlay")) return;
  char buf[1024], *save = NULL;
  snprintf(buf, sizeof buf, "%s", opts);
  for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
      if (!strncmp(t, keep[i], strlen(keep[i]))) {
        if (o[0]) strncat(o, ",", cap - strlen(o) - 1);
        strncat(o, t, cap - strlen(o) - 1);
      }
    }
  }
}

static void mount_section(void) {
  static char b[65536];
  if (slurp("/proc/self/mountinfo", b, sizeof b) < 0) return out("mount.error", "%s", strerror(errno));
  char *save = NULL;
  for (char *line = strtok_r(b, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    /* id parent major:minor root mountpoint opts [optional...] - type source superopts */
    char *f[8];
    int n = 0;
    char *p = line;
    while (n < 6 && p) {
      f[n++] = p;
      p = strchr(p, ' ');
      if (p) *p++ = 0;
    }
    if (n < 6 || !p) continue;
    char *dash = strstr(p, "- ");
    if (!dash) continue;
    char *type = dash + 2, *src = strchr(type, ' ');
    if (!src) continue;
    *src++ = 0;
    char *sopts = strchr(src, ' ');
    if (!sopts) continue;
    *sopts++ = 0;
    char k[600], fl[64], so[256];
    snprintf(k, sizeof k, "mount.%s", f[4]);
    mount_flags(f[5], fl, sizeof fl);
    super_opts(type, sopts, so, sizeof so);
    out(k, "%s %s%s%s", type, fl, so[0] ? " " : "", so);
  }
}

/* ---- /dev ---- */

static void dev_entry(const char *path) {
  struct stat st;
  char k[600];
  snprintf(k, sizeof k, "dev.%s", path);
  if (lstat(path, &st) < 0) return out(k, "error %s", ename(errno));
  unsigned mode = st.st_mode & 07777;
  if (S_ISLNK(st.st_mode)) {
    char t[512];
    ssize_t n = readlink(path, t, sizeof t - 1);
    t[n > 0 ? n : 0] = 0;
    out(k, "lnk -> %s", t);
  } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
    out(k, "%s %04o %u:%u %u:%u", S_ISCHR(st.st_mode) ? "chr" : "blk", mode, major(st.st_rdev),
        minor(st.st_rdev), st.st_uid, st.st_gid);
  } else {
    out(k, "%s %04o %u:%u", S_ISDIR(st.st_mode) ? "dir" : S_ISREG(st.st_mode) ? "reg" : "other", mode,
        st.st_uid, st.st_gid);
  }
}

static void dev_section(void) {
  const char *dirs[] = {"/dev", "/dev/net"};
  for (size_t d = 0; d < 2; d++) {
    DIR *dd = opendir(dirs[d]);
    if (!dd) continue;
    struct dirent *e;
    while ((e = readdir(dd))) {
      if (e->d_name[0] == '.') continue;
      char p[600];
      snprintf(p, sizeof p, "%s/%s", dirs[d], e->d_name);
      dev_entry(p);
    }
    closedir(dd);
  }
  dev_entry("/dev/pts/ptmx");
}

/* ---- host names ---- */

static int addr_is_local(const char *addr) {
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, addr, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127) return 1;
  if (inet_pton(AF_INET6, addr, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6)) return 1;
  struct ifaddrs *ifs, *i;
  if (getifaddrs(&ifs) < 0) return 0;
  int found = 0;
  for (i = ifs; i && !found; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    char b[INET6_ADDRSTRLEN] = "";
    if (i->ifa_addr->sa_family == AF_INET)
      inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, b, sizeof b);
    else if (i->ifa_addr->sa_family == AF_INET6)
      inet_ntop(AF_INET6, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, b, sizeof b);
    found = b[0] && !strcmp(b, addr);
  }
  freeifaddrs(ifs);
  return found;
}

static void host_section(void) {
  struct utsname u;
  uname(&u);
  out("host.hostname", "%s", u.nodename);
  char b[8192];
  if (slurp("/etc/hostname", b, sizeof b) >= 0) out("host.etc_hostname", "%s", strtok(b, "\n") ? b : "");
  else out("host.etc_hostname", "missing");
  if (slurp("/etc/hosts", b, sizeof b) < 0) return out("host.hosts", "missing");
  /* names listed, and whether the hostname maps to an address of this machine */
  char names[2048] = "", *save = NULL;
  const char *self = "unlisted";
  for (char *line = strtok_r(b, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (line[0] == '#') continue;
    char *s2 = NULL, *addr = strtok_r(line, " \t", &s2);
    if (!addr) continue;
    for (char *nm = strtok_r(NULL, " \t", &s2); nm; nm = strtok_r(NULL, " \t", &s2)) {
      if (strlen(names) + strlen(nm) + 2 < sizeof names) {
        if (names[0]) strcat(names, " ");
        strcat(names, nm);
      }
      if (!strcmp(nm, u.nodename)) self = addr_is_local(addr) ? "local" : "foreign";
    }
  }
  out("host.hosts_names", "%s", names);
  out("host.hosts_self", "%s", self);
  if (slurp("/etc/resolv.conf", b, sizeof b) < 0) out("host.resolv", "missing");
  else out("host.resolv", "%s", strstr(b, "nameserver") ? "nameserver" : "empty");
}

/* ---- cgroup, sysctls ---- */

static void cgroup_section(void) {
  char b[4096], *save = NULL;
  if (slurp("/proc/self/cgroup", b, sizeof b) >= 0) /* the unified (v2) hierarchy's line */
    for (char *line = strtok_r(b, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
      if (!strncmp(line, "0::", 3)) out("cgroup.path", "%s", line + 3);
  struct statfs sf;
  if (statfs("/sys/fs/cgroup", &sf) == 0)
    out("cgroup.fs", "%s", sf.f_type == 0x63677270 ? "cgroup2" : sf.f_type == 0x01021994 ? "tmpfs" : "other");
  else out("cgroup.fs", "missing");
  out("cgroup.controllers_file", "%s", access("/sys/fs/cgroup/cgroup.controllers", R_OK) == 0 ? "yes" : "no");
}

static void sysctl(const char *name, const char *path) {
  char b[256], k[96];
  snprintf(k, sizeof k, "sysctl.%s", name);
  long n = slurp(path, b, sizeof b);
  if (n < 0) return out(k, "missing");
  while (n > 0 && (b[n - 1] == '\n' || b[n - 1] == ' ')) b[--n] = 0;
  out(k, "%s", b);
}

/* ---- kernel features ---- */

static int try_userns(void) { return unshare(CLONE_NEWUSER) < 0 ? errno : 0; }
static int try_netns(void) { return unshare(CLONE_NEWNET) < 0 ? errno : 0; }
static int try_mntns(void) { return unshare(CLONE_NEWNS) < 0 ? errno : 0; }
static int try_pidns(void) { return unshare(CLONE_NEWPID) < 0 ? errno : 0; }
static int try_cgroupns(void) { return unshare(CLONE_NEWCGROUP) < 0 ? errno : 0; }
static int try_userns_netns(void) {
  return unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS) < 0 ? errno : 0;
}

static int try_seccomp_filter(void) {
  struct sock_filter f[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
  struct sock_fprog p = {1, f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return errno;
  return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p) < 0 ? errno : 0;
}

static char g_tmpdir[512];

static int try_inotify(void) {
  int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (fd < 0) return errno;
  if (inotify_add_watch(fd, g_tmpdir, IN_CREATE) < 0) return errno;
  char p[600];
  snprintf(p, sizeof p, "%s/inotify-file", g_tmpdir);
  close(open(p, O_CREAT | O_WRONLY, 0644));
  char ev[4096];
  ssize_t n = read(fd, ev, sizeof ev);
  unlink(p);
  return n > 0 ? 0 : EIO;
}

static int try_dnotify(void) {
  int d = open(g_tmpdir, O_RDONLY | O_DIRECTORY);
  if (d < 0) return errno;
  sigset_t m;
  sigemptyset(&m);
  sigaddset(&m, SIGRTMIN + 1);
  sigprocmask(SIG_BLOCK, &m, NULL);
  if (fcntl(d, F_SETSIG, SIGRTMIN + 1) < 0) return errno;
  if (fcntl(d, F_NOTIFY, DN_CREATE) < 0) return errno;
  char p[600];
  snprintf(p, sizeof p, "%s/dnotify-file", g_tmpdir);
  close(open(p, O_CREAT | O_WRONLY, 0644));
  struct timespec ts = {5, 0};
  siginfo_t si;
  int s = sigtimedwait(&m, &si, &ts);
  unlink(p);
  return s == SIGRTMIN + 1 && si.si_fd == d ? 0 : EIO;
}

static int try_io_uring(void) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  int fd = (int)syscall(__NR_io_uring_setup, 4, &p);
  if (fd < 0) return errno;
  close(fd);
  return 0;
}

static int try_bpf(void) {
  struct bpf_insn insns[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0},
      {.code = BPF_JMP | BPF_EXIT},
  };
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
  a.insn_cnt = 2;
  a.insns = (uint64_t)(uintptr_t)insns;
  a.license = (uint64_t)(uintptr_t) "GPL";
  int fd = (int)syscall(__NR_bpf, BPF_PROG_LOAD, &a, sizeof a);
  if (fd < 0) return errno;
  close(fd);
  return 0;
}

/* NFT_MSG_GETGEN over nfnetlink: answered by nf_tables only. */
static int try_nftables(void) {
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (s < 0) return errno;
  struct {
    struct nlmsghdr nh;
    struct nfgenmsg nf;
  } req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = sizeof req;
  req.nh.nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.nh.nlmsg_seq = 1;
  req.nf.nfgen_family = AF_UNSPEC;
  req.nf.version = NFNETLINK_V0;
  if (send(s, &req, sizeof req, 0) < 0) return errno;
  char b[8192];
  struct timeval tv = {5, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ssize_t n = recv(s, b, sizeof b, 0);
  close(s);
  if (n < (ssize_t)sizeof(struct nlmsghdr)) return EIO;
  struct nlmsghdr *h = (struct nlmsghdr *)b;
  if (h->nlmsg_type == NLMSG_ERROR) {
    int e = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
    return e;
  }
  return h->nlmsg_type == ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN) ? 0 : EIO;
}

static void features(void) {
  const char *ns[] = {"user", "pid", "net", "ipc", "uts", "cgroup", "mnt", "time"};
  for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
    char p[64], k[64];
    snprintf(p, sizeof p, "/proc/self/ns/%s", ns[i]);
    snprintf(k, sizeof k, "ns_%s", ns[i]);
    feature(k, access(p, F_OK), errno);
  }
  child_feature("unshare_user", try_userns);
  child_feature("unshare_all_in_userns", try_userns_netns);
  child_feature("unshare_net", try_netns);
  child_feature("unshare_mnt", try_mntns);
  child_feature("unshare_pid", try_pidns);
  child_feature("unshare_cgroup", try_cgroupns);
  feature("seccomp", prctl(PR_GET_SECCOMP, 0, 0, 0, 0), errno);
  child_feature("seccomp_filter", try_seccomp_filter);
  child_feature("inotify", try_inotify);
  child_feature("dnotify", try_dnotify);
  int fa = (int)syscall(__NR_fanotify_init, FAN_CLASS_NOTIF | FAN_CLOEXEC, O_RDONLY);
  feature("fanotify", fa, errno);
  if (fa >= 0) close(fa);
  char fsl[8192] = "";
  slurp("/proc/filesystems", fsl, sizeof fsl);
  feature("fuse_fs", strstr(fsl, "\tfuse\n") ? 0 : -1, ENODEV);
  feature("overlay_fs", strstr(fsl, "\toverlay\n") ? 0 : -1, ENODEV);
  int fu = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  feature("dev_fuse", fu, errno);
  if (fu >= 0) close(fu);
  child_feature("io_uring", try_io_uring);
  child_feature("bpf", try_bpf);
  long k = syscall(__NR_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -4 /* KEY_SPEC_USER_KEYRING */, 0);
  feature("keyctl", k < 0 ? -1 : 0, errno);
  child_feature("nftables", try_nftables);
  char devs[4096] = "";
  slurp("/proc/devices", devs, sizeof devs);
  feature("loop_driver", strstr(devs, " loop\n") ? 0 : -1, ENODEV);
  int lc = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  feature("dev_loop_control", lc, errno);
  if (lc >= 0) close(lc);
  int uf = (int)syscall(__NR_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */);
  feature("userfaultfd", uf, errno);
  if (uf >= 0) close(uf);
  int mf = (int)syscall(__NR_memfd_create, "probe", 0);
  feature("memfd", mf, errno);
  if (mf >= 0) close(mf);
  int pf = (int)syscall(__NR_pidfd_open, getpid(), 0);
  feature("pidfd", pf, errno);
  if (pf >= 0) close(pf);
  int sh = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
  feature("sysv_shm", sh, errno);
  if (sh >= 0) shmctl(sh, IPC_RMID, NULL);
  int mq = (int)syscall(__NR_mq_open, "probe-mq", O_CREAT | O_RDWR, 0600, NULL);
  feature("posix_mqueue", mq, errno);
  if (mq >= 0) close(mq), syscall(__NR_mq_unlink, "probe-mq");
  int pm = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  feature("ptmx", pm, errno);
  if (pm >= 0) close(pm);
  int ic = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_ICMP);
  feature("ping_socket", ic, errno);
  if (ic >= 0) close(ic);
  int s6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  feature("ipv6", s6, errno);
  if (s6 >= 0) close(s6);
  long ll = syscall(444 /* landlock_create_ruleset */, NULL, 0, 1 /* VERSION */);
  feature("landlock", ll < 0 ? -1 : 0, errno);
}

/* ---- root file system semantics ---- */

static dev_t g_rootdev;
static long g_checked, g_mismatch;
static char g_first_mismatch[600];

/* Compares readdir's d_ino with lstat's st_ino for every entry on the root fs. */
static void walk(const char *dir, int depth) {
  if (depth > 12 || g_checked > 30000) return;
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", strcmp(dir, "/") ? dir : "", e->d_name);
    struct stat st;
    if (lstat(p, &st) < 0 || st.st_dev != g_rootdev) continue;
    g_checked++;
    if (st.st_ino != e->d_ino) {
      if (!g_mismatch++) snprintf(g_first_mismatch, sizeof g_first_mismatch, "%.500s", p);
    }
    if (S_ISDIR(st.st_mode)) walk(p, depth + 1);
  }
  closedir(d);
}

static void fs_section(void) {
  struct stat root;
  stat("/", &root);
  g_rootdev = root.st_dev;
  walk("/", 0);
  out("fs.readdir_ino_matches_stat", "%s", g_checked > 0 && g_mismatch == 0 ? "yes" : "no");
  if (g_mismatch) out("fs.readdir_ino_first_mismatch", "%s (%ld of %ld)", g_first_mismatch, g_mismatch, g_checked);
  /* "." and ".." of the root and of a directory */
  struct stat a, b;
  stat("/.", &a);
  out("fs.root_dot_ino", "%s", a.st_ino == root.st_ino && a.st_dev == root.st_dev ? "same" : "different");
  /* every non-mount-point file of the root fs has the root's st_dev */
  const char *paths[] = {"/etc", "/bin", "/etc/passwd", g_tmpdir};
  int same = 1;
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
    if (stat(paths[i], &a) == 0 && a.st_dev != root.st_dev) same = 0;
  out("fs.st_dev_uniform", "%s", same ? "yes" : "no");
  /* a new file keeps its inode number when stat'ed through another name */
  char f1[600], f2[600];
  snprintf(f1, sizeof f1, "%s/file", g_tmpdir);
  snprintf(f2, sizeof f2, "%s/hardlink", g_tmpdir);
  close(open(f1, O_CREAT | O_WRONLY, 0644));
  if (link(f1, f2) < 0) out("fs.hardlink", "error %s", ename(errno));
  else {
    stat(f1, &a);
    stat(f2, &b);
    out("fs.hardlink", "%s", a.st_ino == b.st_ino && a.st_nlink == 2 ? "ok" : "broken");
  }
  /* xattrs on a file of the root fs */
  if (setxattr(f1, "user.probe", "1", 1, 0) < 0) out("fs.xattr_user", "error %s", ename(errno));
  else {
    char v[8];
    out("fs.xattr_user", "%s", getxattr(f1, "user.probe", v, sizeof v) == 1 ? "ok" : "broken");
  }
  unlink(f2);
  unlink(f1);
  /* copy-up keeps the inode number (a file of the image, touched) */
  const char *lowers[] = {"/etc/issue", "/etc/profile", "/etc/shells", "/etc/group"};
  const char *cu = NULL;
  for (size_t i = 0; i < sizeof lowers / sizeof lowers[0] && !cu; i++)
    if (access(lowers[i], W_OK) == 0) cu = lowers[i];
  if (!cu) out("fs.copy_up_keeps_ino", "n/a");
  else {
    stat(cu, &a);
    int fd = open(cu, O_WRONLY | O_APPEND);
    if (fd >= 0) close(fd);
    stat(cu, &b);
    out("fs.copy_up_keeps_ino", "%s", a.st_ino == b.st_ino && a.st_dev == b.st_dev ? "yes" : "no");
  }
  /* renaming a directory of the image */
  if (access("/srv", W_OK) == 0 && rename("/srv", "/srv.probe") == 0) {
    rename("/srv.probe", "/srv");
    out("fs.rename_image_dir", "ok");
  } else {
    out("fs.rename_image_dir", "error %s", ename(errno));
  }
  struct statvfs v;
  if (statvfs("/", &v) < 0) out("fs.statvfs", "error %s", ename(errno));
  else out("fs.statvfs", "%s", v.f_blocks > 0 && v.f_bavail > 0 && v.f_files > 0 ? "sized" : "zero");
  struct stat t;
  if (stat("/tmp", &t) == 0) out("fs.tmp", "%04o", t.st_mode & 07777);
  else out("fs.tmp", "missing");
  char shm[64];
  snprintf(shm, sizeof shm, "/dev/shm/probe-%d", getpid());
  int sfd = open(shm, O_CREAT | O_RDWR | O_EXCL, 0600);
  out("fs.dev_shm_writable", "%s", sfd >= 0 ? "yes" : ename(errno));
  if (sfd >= 0) close(sfd), unlink(shm);
}

int main(void) {
  setvbuf(stdout, NULL, _IOFBF, 1 << 16);
  /* scratch space: /tmp when writable, else HOME */
  const char *base = access("/tmp", W_OK) == 0 ? "/tmp" : getenv("HOME") ? getenv("HOME") : "/";
  snprintf(g_tmpdir, sizeof g_tmpdir, "%s/.probe-%d", base, getpid());
  mkdir(g_tmpdir, 0755);
  env_section();
  id_section();
  rlimit_section();
  status_section();
  mount_section();
  dev_section();
  host_section();
  cgroup_section();
  sysctl("ping_group_range", "/proc/sys/net/ipv4/ping_group_range");
  sysctl("ip_unprivileged_port_start", "/proc/sys/net/ipv4/ip_unprivileged_port_start");
  features();
  fs_section();
  rmdir(g_tmpdir);
  return 0;
}
