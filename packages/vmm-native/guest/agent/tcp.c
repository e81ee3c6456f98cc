/* TCP_CONNECT: a connection to a port inside the guest, both directions. */
#define _GNU_SOURCE
#include "agent.h"
#include "proto.h"
#include "util.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <unistd.h>

static int tcp_connect_to(struct stream *s, int v6, const void *addr) {
  struct sockaddr_storage ss;
  socklen_t sl;
  memset(&ss, 0, sizeof ss);
  if (v6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(s->port);
    memcpy(&a->sin6_addr, addr, 16);
    sl = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons(s->port);
    memcpy(&a->sin_addr, addr, 4);
    sl = sizeof *a;
  }
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  slot_init(&s->sl[0], s, fd, T_TCP_DATA, 1);
  s->nsl = 1;
  if (connect(fd, (struct sockaddr *)&ss, sl) == 0) {
    s->connecting = 0;
    return 1;
  }
  if (errno == EINPROGRESS) {
    s->connecting = 1;
    return 0;
  }
  int e = errno;
  slot_close(&s->sl[0]);
  return -e;
}

static void connected(struct stream *s) {
  s->connecting = 0;
  send_frame(T_CONNECTED, 0, s->id, NULL, 0);
  slot_writable(s, &s->sl[0]);
  if (!s->dead) stream_update(s);
}

static void failed(struct stream *s, int e) {
  if (s->default_host && !s->tried_v6) {
    s->tried_v6 = 1;
    slot_close(&s->sl[0]);
    int r = tcp_connect_to(s, 1, &in6addr_loopback);
    if (r == 1) connected(s);
    else if (r == 0) stream_update(s);
    else failed(s, -r);
    return;
  }
  send_error(s->id, E_IO, e, "connect to port %u: %s", s->port, strerror(e));
  stream_free(s);
}

void tcp_open(uint32_t id, const struct field *f) {
  char *host = str_dup(&f[1]);
  uint8_t addr[16];
  int v6 = 0, dflt = 0;
  if (!*host) dflt = 1;
  else if (!strcmp(host, "localhost")) dflt = 1;
  else if (inet_pton(AF_INET, host, addr) == 1) v6 = 0;
  else if (inet_pton(AF_INET6, host, addr) == 1) v6 = 1;
  else {
    send_error(id, E_NOT_FOUND, EINVAL, "cannot resolve %s (numeric hosts only)", host);
    free(host);
    return;
  }
  free(host);
  if (dflt) inet_pton(AF_INET, "127.0.0.1", addr);
  struct stream *s = stream_new(id, SK_TCP);
  s->port = (uint16_t)f[0].u;
  s->default_host = dflt;
  int r = tcp_connect_to(s, v6, addr);
  if (r == 1) connected(s);
  else if (r == 0) stream_update(s);
  else failed(s, -r);
}

void tcp_writable(struct stream *s) {
  int e = 0;
  socklen_t l = sizeof e;
  if (getsockopt(s->sl[0].fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0) e = errno;
  if (e == 0) connected(s);
  else failed(s, e);
}

void tcp_input_end(struct stream *s) {
  s->in_done = 1;
  shutdown(s->sl[0].fd, SHUT_WR);
  tcp_check_done(s);
}

void tcp_check_done(struct stream *s) {
  if (s->dead || !s->in_done || !s->sl[0].rd_eof) return;
  send_ok(s->id, 0);
  stream_free(s);
}
