/* Agent state: the session with the host, the stream table, the event loop. */
#ifndef SM_AGENT_H
#define SM_AGENT_H
#include "codec.h"
#include <stdint.h>
#include <sys/types.h>

#define AGENT_VERSION "sm-init 0.2.0"
#define MY_MAX_PAYLOAD 262144u
#define MY_WINDOW 262144u
#define OUTQ_HIGH (1u << 20)     /* stop reading data sources above this */
#define INQ_STOP (64u << 20)     /* stop reading the host above this */
#define DRAIN_MS 100
#define RECONNECT_MS 10
#define WATCH_MS 20
#define EXEC_PIPE_BYTES (1 << 20) /* stdout/stderr pipe size of an exec (best effort) */
#define READ_BUDGET (1u << 20)
#define HOLD_MS 2                /* small exec output waits this long for more (see send_frames_from_fd) */
#define HOLD_MAX_BYTES (64u << 10) /* ... unless this much is queued */ /* largest read from a data source, as one or more frames */
#define EXEC_CGROUP_BASE "/sys/fs/cgroup/sm-exec" /* guest: parent of the per-exec cgroups */
#define WL_LOG_BYTES (64u << 10) /* the workload's stdout+stderr kept in the guest (newest) */

enum wtype { W_CHAN = 1, W_SIG, W_SLOT, W_WLOG };
enum skind { SK_EXEC = 1, SK_WFILE, SK_RFILE, SK_TCP, SK_LOGS };
enum chan_kind { CH_STDIO = 1, CH_DEV, CH_SOCK };

struct stream;

/* One fd of a stream, registered with epoll. */
struct slot {
  int wtype; /* W_SLOT; must be first */
  int fd;
  uint8_t rd_type; /* frame type for bytes read from fd, 0 = not read */
  uint8_t rd_eof;  /* END sent for this source */
  uint8_t wr;      /* host data goes to this fd */
  uint32_t ev;     /* events registered with epoll */
  uint32_t drain_left;
  struct stream *s;
};

struct stream {
  uint32_t id;
  int kind;
  int dead;
  struct stream *hnext, *next, *prev;
  uint32_t send_win;      /* data bytes we may still send */
  uint32_t recv_avail;    /* data bytes the host may still send */
  uint32_t recv_consumed; /* consumed and not yet returned */
  struct slot sl[3];
  int nsl;
  struct buf inq; /* host data waiting for the wr slot */
  int in_end;     /* host sent END */
  int in_done;    /* write side closed */
  /* exec */
  pid_t pid, pgid;
  int tty, exited, timed_out, drain_cut;
  int status;
  uint64_t peak_rss;
  int64_t deadline, drain_at;
  char **argv, **env, **chain;
  char *cwd;
  int chain_i;
  int child_fd[3]; /* child ends kept open while a chain may still run */
  struct cg *cg;   /* the exec's own cgroup (exec-cgroup.c), or NULL */
  int end_sent[2]; /* STDOUT/STDERR END sent */
  /* files; SK_LOGS: bytes = total the workload wrote, inq = the bytes to send */
  int fd;
  uint64_t bytes;
  /* tcp */
  int connecting, tried_v6, default_host;
  uint16_t port;
};

struct agent {
  int ep;
  int chan_kind;
  int in_fd, out_fd;
  int connected;
  int64_t reconnect_at;
  int64_t hold_until; /* queued output is held until then; 0: sent as soon as the channel takes it */
  uint32_t chan_ev_in, chan_ev_out;
  struct parser ps;
  struct buf outq;
  int handshaken;
  uint32_t peer_max, peer_window;
  struct buf events; /* event frames queued before the handshake */
  int nevents;
  struct stream *hash[2048];
  struct stream *all;
  int nstreams;
  struct stream *deadlist;
  int sigfd;
  int reap_soon; /* an exec's output ended: its process has most likely exited */
  int init_mode;
  const char *chan_path;
  int stop; /* --stdio: host closed the channel */
};
extern struct agent A;

/* session.c */
void send_frame(uint8_t type, uint8_t flags, uint32_t stream, const void *p, size_t n);
ssize_t send_frames_from_fd(uint8_t type, uint32_t stream, int fd, size_t cap);
void send_buf(uint8_t type, uint8_t flags, uint32_t stream, struct buf *b);
void send_error(uint32_t stream, uint32_t code, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void send_ok(uint32_t stream, uint64_t value);
/* Applies HELLO's optional host time and entropy seed (init mode only). */
void apply_host_context(const uint8_t *payload, uint32_t len);
void send_event(uint8_t kind, uint32_t value, const char *detail);
void session_input(const uint8_t *p, size_t n);
void session_reset_all(void);
void session_host_gone(void);
void session_host_back(void);
struct stream *stream_find(uint32_t id);
struct stream *stream_new(uint32_t id, int kind);
void stream_free(struct stream *s); /* closes fds, deferred free */
void stream_update(struct stream *s);
void stream_grant(struct stream *s, uint32_t n);
int outq_full(void);
int outq_due(void); /* queued output and not held */
void slot_init(struct slot *sl, struct stream *s, int fd, uint8_t rd_type, int wr);
void slot_close(struct slot *sl);
void slot_event(struct slot *sl, uint32_t ev);
void slot_writable(struct stream *s, struct slot *sl);
void streams_update_all(void);
int64_t streams_next_deadline(void);
void streams_timers(int64_t now);
void reap_deadlist(void);

/* loop.c */
void chan_update(void);
int agent_run(void);
void ep_set(int fd, void *ptr, uint32_t *cur, uint32_t want);

/* exec.c */
void exec_open(uint32_t id, const struct field *f);
void exec_on_exit(struct stream *s, int status, uint64_t rss_kib);
void exec_signal(struct stream *s, int sig);
void exec_resize(struct stream *s, unsigned cols, unsigned rows);
void exec_input_end(struct stream *s);
void exec_kill(struct stream *s);
void exec_check_done(struct stream *s);
void exec_timer(struct stream *s, int64_t now);
struct stream *exec_by_pid(pid_t pid);
/* PATH, HOSTNAME, HOME (home, "/root" when NULL) and, for a tty, TERM=xterm;
 * overlaid by the workload's env, then by overlay. */
char **make_env(char **overlay, const char *home, int tty);
/* Records the signals the agent ignores (call once, at start). */
void child_signals_init(void);
/* In a child before exec: empty signal mask, ignored signals back to default,
 * the normal scheduling policy. */
void child_reset_inherited(void);
/* Never returns: execs argv[0] (PATH lookup) or exits 127/126, writing errno
 * to status_fd when it is >= 0. */
void child_exec_path(char **argv, char **envp, int status_fd);

/* clone-into.c: starts fn(arg) in a child that shares this memory, runs on
 * [stack, stack + size) and is born in the cgroup cg_dir (if >= 0); the
 * caller waits until it execs or exits (CLONE_VFORK). -1 with errno (ENOSYS
 * on architectures without it). */
pid_t clone_vfork_into(int (*fn)(void *), void *arg, void *stack, size_t size, int cg_dir);

/* exec-cgroup.c: every exec in a cgroup of its own, killed as a whole */
/* Uses per-exec cgroups under base (a cgroup2 directory, created if needed); -1 if unusable. */
int exec_cgroup_init(const char *base);
int exec_cgroup_enabled(void);
/* Gives s a cgroup with no process in it (s->cg stays NULL without one). */
void exec_cgroup_create(struct stream *s);
/* A directory fd of s's cgroup for clone3's CLONE_INTO_CGROUP, or -1. */
int exec_cgroup_dir(const struct stream *s);
/* In the forked child, before exec: moves the calling process into s's cgroup. */
void exec_cgroup_join(const struct stream *s);
/* Kills every process in s's cgroup; -1 when s has none. */
int exec_cgroup_kill(const struct stream *s);
/* Done with s's cgroup: kept for a later exec when empty, else removed
 * (once empty, if processes remain). */
void exec_cgroup_release(struct stream *s);
/* Removes the emptied cgroups of finished execs. */
void exec_cgroup_sweep(void);


/* files.c */
void wfile_open(uint32_t id, const struct field *f);
void wfile_data(struct stream *s, const uint8_t *p, size_t n, int end);
void rfile_open(uint32_t id, const struct field *f);
void rfile_pump(struct stream *s);

/* tcp.c */
void tcp_open(uint32_t id, const struct field *f);
void tcp_writable(struct stream *s);
void tcp_input_end(struct stream *s);
void tcp_check_done(struct stream *s);

/* workload.c */
/* The image's user, resolved from the image's /etc/passwd and /etc/group. */
struct wl_user {
  uid_t uid;
  gid_t gid;
  gid_t groups[64]; /* supplementary: the groups that list the user */
  int ngroups;
  const char *home; /* passwd home; "/" for a uid without an entry */
  int named;        /* the image named a user (else root by default) */
};
/* Who execs run as: the workload's user when WORKLOAD_CONFIG asked for it
 * (SM_WL_EXEC_AS_WORKLOAD, like `docker exec`), else NULL (the agent's root). */
const struct wl_user *wl_exec_user(void);
/* Where execs without a cwd start: the workload's cwd under the same flag, else "/". */
const char *wl_exec_cwd(void);
void wl_config(uint32_t id, const struct field *f);
void wl_start(uint32_t id);
void wl_signal(uint32_t id, const struct field *f);
int wl_on_exit(pid_t pid, int status);
char **wl_env(void);
int64_t wl_next_deadline(void);
void wl_timer(int64_t now);
/* The workload's stdout/stderr pipe is readable: move it into the log ring. */
void wl_log_readable(void);
/* WORKLOAD_LOGS: answered like READ_FILE with the ring's newest bytes. */
void wl_logs(uint32_t id, const struct field *f);
void logs_pump(struct stream *s);

/* guest-env.c: what a container runtime gives its processes */
/* /etc/hosts, /etc/hostname, /etc/resolv.conf for hostname host, as Docker writes them. */
void guest_etc_files(const char *host);
/* Docker's per-container sysctls (ping_group_range, ip_unprivileged_port_start). */
void guest_sysctls(void);
/* Delegates every available cgroup v2 controller from root down to base. */
void guest_cgroup_controllers(const char *root, const char *base);
/* In a forked child (init mode): the rlimits a container starts with. */
void child_limits(void);
/* In a forked child: becomes u (NULL: stays root), owning tty_fd if >= 0; -1 on failure. */
int child_become(const struct wl_user *u, int tty_fd);

/* init.c */
int init_setup(void);
int open_agent_port(void);
#endif
