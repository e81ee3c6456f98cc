/* Frame codec: buffers, payload reader, schema-driven decoder, parser. */
#include "codec.h"
#include "proto.h"
#include "util.h"
#include <stdlib.h>
#include <string.h>

static void buf_reserve(struct buf *b, size_t n) {
  if (b->head && b->head == b->len) b->head = b->len = 0;
  if (b->len + n <= b->cap) return;
  if (b->head > 0 && b->head >= b->cap / 2) { /* compact */
    memmove(b->d, b->d + b->head, b->len - b->head);
    b->len -= b->head;
    b->head = 0;
    if (b->len + n <= b->cap) return;
  }
  size_t c = b->cap ? b->cap : 256;
  while (c < b->len + n) c *= 2;
  b->d = xrealloc(b->d, c);
  b->cap = c;
}
void buf_put(struct buf *b, const void *p, size_t n) {
  if (!n) return;
  buf_reserve(b, n);
  memcpy(b->d + b->len, p, n);
  b->len += n;
}
uint8_t *buf_tail(struct buf *b, size_t n) {
  buf_reserve(b, n);
  return b->d + b->len;
}
void buf_u8(struct buf *b, uint8_t v) { buf_put(b, &v, 1); }
void buf_u16(struct buf *b, uint16_t v) {
  uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
  buf_put(b, x, 2);
}
void buf_u32(struct buf *b, uint32_t v) {
  uint8_t x[4];
  for (int i = 0; i < 4; i++) x[i] = (uint8_t)(v >> (8 * i));
  buf_put(b, x, 4);
}
void buf_u64(struct buf *b, uint64_t v) {
  uint8_t x[8];
  for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
  buf_put(b, x, 8);
}
void buf_str(struct buf *b, const char *s, size_t n) {
  buf_u32(b, (uint32_t)n);
  buf_put(b, s, n);
}
void buf_consume(struct buf *b, size_t n) {
  b->head += n;
  if (b->head >= b->len) b->head = b->len = 0;
}
void buf_clear(struct buf *b) { b->head = b->len = 0; }
void buf_free(struct buf *b) {
  free(b->d);
  memset(b, 0, sizeof *b);
}

static int rd_need(struct rd *r, size_t k) {
  if (r->bad || r->n - r->off < k) {
    r->bad = 1;
    return 0;
  }
  return 1;
}
uint8_t rd_u8(struct rd *r) { return rd_need(r, 1) ? r->p[r->off++] : 0; }
uint16_t rd_u16(struct rd *r) {
  if (!rd_need(r, 2)) return 0;
  uint16_t v = (uint16_t)(r->p[r->off] | (r->p[r->off + 1] << 8));
  r->off += 2;
  return v;
}
uint32_t rd_u32(struct rd *r) {
  if (!rd_need(r, 4)) return 0;
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = (v << 8) | r->p[r->off + i];
  r->off += 4;
  return v;
}
uint64_t rd_u64(struct rd *r) {
  if (!rd_need(r, 8)) return 0;
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | r->p[r->off + i];
  r->off += 8;
  return v;
}
const uint8_t *rd_str(struct rd *r, uint32_t *len) {
  uint32_t n = rd_u32(r);
  if (!rd_need(r, n)) return *len = 0, NULL;
  const uint8_t *s = r->p + r->off;
  r->off += n;
  *len = n;
  return s;
}

static const struct msgdef defs[] = {
    {T_HELLO, "HELLO", "h:min_version h:max_version w:max_payload w:initial_window q:nonce"},
    {T_HELLO_OK, "HELLO_OK",
     "h:version w:max_payload w:initial_window q:nonce w:features s:agent_version"},
    {T_PING, "PING", "q:token"},
    {T_PONG, "PONG", "q:token"},
    {T_EVENT, "EVENT", "b:kind w:value s:detail"},
    {T_EXEC, "EXEC",
     "w:flags w:timeout_ms h:cols h:rows l:argv l:env s:cwd l:chain"},
    {T_STARTED, "STARTED", "w:pid"},
    {T_STDIN, "STDIN", "x:data"},
    {T_STDOUT, "STDOUT", "x:data"},
    {T_STDERR, "STDERR", "x:data"},
    {T_RESIZE, "RESIZE", "h:cols h:rows"},
    {T_SIGNAL, "SIGNAL", "w:signum"},
    {T_EXIT, "EXIT", "i:exit_code i:term_signal b:timed_out q:peak_rss_kib"},
    {T_WRITE_FILE, "WRITE_FILE", "s:path w:mode w:flags"},
    {T_FILE_DATA, "FILE_DATA", "x:data"},
    {T_READ_FILE, "READ_FILE", "s:path"},
    {T_FILE_INFO, "FILE_INFO", "q:size w:mode"},
    {T_TCP_CONNECT, "TCP_CONNECT", "h:port s:host"},
    {T_CONNECTED, "CONNECTED", ""},
    {T_TCP_DATA, "TCP_DATA", "x:data"},
    {T_WINDOW, "WINDOW", "w:increment"},
    {T_RESET, "RESET", ""},
    {T_OK, "OK", "q:value"},
    {T_ERROR, "ERROR", "w:code i:errno s:message"},
    {T_WORKLOAD_CONFIG, "WORKLOAD_CONFIG",
     "w:flags h:watch_port l:argv l:env s:cwd s:user s:hostname"},
    {T_WORKLOAD_START, "WORKLOAD_START", ""},
    {T_WORKLOAD_SIGNAL, "WORKLOAD_SIGNAL", "w:signum"},
    {T_WORKLOAD_LOGS, "WORKLOAD_LOGS", "w:max_bytes"},
};

const struct msgdef *msg_def(uint8_t type) {
  for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
    if (defs[i].type == type) return &defs[i];
  return NULL;
}

int msg_parse(uint8_t type, const uint8_t *p, size_t n, struct field *f) {
  const struct msgdef *d = msg_def(type);
  if (!d) return -2;
  struct rd r = {p, n, 0, 0};
  int k = 0;
  for (const char *s = d->fields; *s && k < SM_MAX_FIELDS;) {
    char kind = *s;
    struct field *x = &f[k++];
    memset(x, 0, sizeof *x);
    x->kind = kind;
    switch (kind) {
    case 'b': x->u = rd_u8(&r); break;
    case 'h': x->u = rd_u16(&r); break;
    case 'w': x->u = rd_u32(&r); break;
    case 'q': x->u = rd_u64(&r); break;
    case 'i': x->u = (uint64_t)(int64_t)(int32_t)rd_u32(&r); break;
    case 's': x->ptr = rd_str(&r, &x->len); break;
    case 'l': {
      x->count = rd_u32(&r);
      x->ptr = p + r.off;
      size_t start = r.off;
      for (uint32_t i = 0; i < x->count && !r.bad; i++) {
        uint32_t l;
        rd_str(&r, &l);
      }
      x->len = (uint32_t)(r.off - start);
      break;
    }
    case 'x':
      x->ptr = p + r.off;
      x->len = (uint32_t)(n - r.off);
      r.off = n;
      break;
    }
    if (r.bad) return -1;
    while (*s && *s != ' ') s++;
    while (*s == ' ') s++;
  }
  return k;
}

int strlist_next(const struct field *f, uint32_t *pos, const uint8_t **s, uint32_t *len) {
  if (*pos >= f->len) return 0;
  struct rd r = {f->ptr, f->len, *pos, 0};
  *s = rd_str(&r, len);
  if (r.bad) return 0;
  *pos = (uint32_t)r.off;
  return 1;
}

char **strlist_dup(const struct field *f) {
  size_t total = (size_t)(f->count + 1) * sizeof(char *) + f->len + f->count + 1;
  char **v = xmalloc(total);
  char *w = (char *)(v + f->count + 1);
  uint32_t pos = 0, i = 0, len;
  const uint8_t *s;
  while (i < f->count && strlist_next(f, &pos, &s, &len)) {
    v[i++] = w;
    memcpy(w, s, len);
    w[len] = 0;
    w += len + 1;
  }
  v[i] = NULL;
  return v;
}

char *str_dup(const struct field *f) {
  char *s = xmalloc((size_t)f->len + 1);
  if (f->len) memcpy(s, f->ptr, f->len);
  s[f->len] = 0;
  return s;
}

void parser_init(struct parser *ps, uint32_t max) {
  memset(ps, 0, sizeof *ps);
  ps->max = max;
}

void parser_free(struct parser *ps) {
  free(ps->pay);
  ps->pay = NULL;
  ps->cap = 0;
}

void parser_reset(struct parser *ps) {
  ps->hlen = ps->got = ps->discard = 0;
  ps->scanning = ps->prev53 = 0;
}

int parser_feed(struct parser *ps, const uint8_t *buf, size_t n, size_t *used, struct frame *out) {
  size_t i = 0;
  while (i < n) {
    if (ps->scanning) {
      uint8_t b = buf[i++];
      if (ps->prev53 && b == 0x4D) {
        ps->scanning = ps->prev53 = 0;
        ps->hdr[0] = 0x53;
        ps->hdr[1] = 0x4D;
        ps->hlen = 2;
      } else {
        ps->prev53 = b == 0x53;
      }
      continue;
    }
    if (ps->discard) {
      size_t k = n - i < ps->discard ? n - i : ps->discard;
      i += k;
      ps->discard -= (uint32_t)k;
      continue;
    }
    if (ps->hlen < SM_HDR) {
      uint8_t b = buf[i++];
      if ((ps->hlen == 0 && b != 0x53) || (ps->hlen == 1 && b != 0x4D)) {
        ps->scanning = 1;
        ps->prev53 = ps->hlen == 1 && b == 0x53;
        ps->hlen = 0;
        *used = i;
        return P_BAD_MAGIC;
      }
      ps->hdr[ps->hlen++] = b;
      if (ps->hlen < SM_HDR) continue;
      struct rd r = {ps->hdr, SM_HDR, 2, 0};
      out->type = rd_u8(&r);
      out->flags = rd_u8(&r);
      out->stream = rd_u32(&r);
      out->len = rd_u32(&r);
      out->payload = NULL;
      ps->got = 0;
      if (out->len > ps->max) {
        ps->discard = out->len;
        ps->hlen = 0;
        *used = i;
        return P_TOO_LARGE;
      }
      if (out->len > ps->cap) {
        free(ps->pay);
        ps->pay = xmalloc(out->len);
        ps->cap = out->len;
      }
      if (out->len == 0) {
        static const uint8_t empty[1];
        ps->hlen = 0;
        out->payload = empty;
        *used = i;
        return P_FRAME;
      }
      continue;
    }
    /* payload */
    struct rd r = {ps->hdr, SM_HDR, 8, 0};
    uint32_t len = rd_u32(&r);
    size_t k = len - ps->got;
    if (k > n - i) k = n - i;
    memcpy(ps->pay + ps->got, buf + i, k);
    ps->got += (uint32_t)k;
    i += k;
    if (ps->got == len) {
      r.off = 2;
      out->type = rd_u8(&r);
      out->flags = rd_u8(&r);
      out->stream = rd_u32(&r);
      out->len = len;
      out->payload = ps->pay;
      ps->hlen = 0;
      ps->got = 0;
      *used = i;
      return P_FRAME;
    }
  }
  *used = i;
  return P_NEED;
}
