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
  int init_mode;
  const char *chan_path;
  int stop; /* --stdio: host closed the channel */
};
extern struct agent A;

/* session.c */
void send_frame(uint8_t type, uint8_t flags, uint32_t stream, const void *p, size_t n);
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
char **make_env(char **overlay);
void child_reset_signals(void);
/* Never returns: execs argv[0] (PATH lookup) or exits 127/126, writing errno
 * to status_fd when it is >= 0. */
void child_exec_path(char **argv, char **envp, int status_fd);

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

/* init.c */
int init_setup(void);
int open_agent_port(void);
#endif
