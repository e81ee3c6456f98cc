/* Frame codec: payload reader/writer, incremental frame parser and the
 * message schema table shared by the agent and the tests. */
#ifndef SM_CODEC_H
#define SM_CODEC_H
#include <stddef.h>
#include <stdint.h>

/* Growable byte buffer with a consumed-prefix offset (used as a queue). */
struct buf {
  uint8_t *d;
  size_t head, len, cap; /* valid bytes are d[head .. len) */
};
void buf_put(struct buf *b, const void *p, size_t n);
/* Room for `n` more bytes at the end (not yet counted in len): fill, then advance len. */
uint8_t *buf_tail(struct buf *b, size_t n);
void buf_u8(struct buf *b, uint8_t v);
void buf_u16(struct buf *b, uint16_t v);
void buf_u32(struct buf *b, uint32_t v);
void buf_u64(struct buf *b, uint64_t v);
void buf_str(struct buf *b, const char *s, size_t n);
static inline size_t buf_avail(const struct buf *b) { return b->len - b->head; }
void buf_consume(struct buf *b, size_t n);
void buf_clear(struct buf *b);
void buf_free(struct buf *b);

/* Bounds-checked little-endian reader over one payload. */
struct rd {
  const uint8_t *p;
  size_t n, off;
  int bad;
};
uint8_t rd_u8(struct rd *r);
uint16_t rd_u16(struct rd *r);
uint32_t rd_u32(struct rd *r);
uint64_t rd_u64(struct rd *r);
/* str: returns pointer into the payload and its length (not NUL-terminated). */
const uint8_t *rd_str(struct rd *r, uint32_t *len);

/* One decoded field of a message (see msg_parse). */
struct field {
  char kind;          /* b h w q i s l x */
  uint64_t u;         /* integer value; for i: sign-extended */
  const uint8_t *ptr; /* s: bytes; l: first item's length prefix; x: bytes */
  uint32_t len;       /* s/x: byte length; l: total encoded bytes of items */
  uint32_t count;     /* l: number of items */
};
#define SM_MAX_FIELDS 10

/* Schema of a message type; NULL when the type is unknown. */
struct msgdef {
  uint8_t type;
  const char *name;
  const char *fields; /* "kind:name kind:name ..." */
};
const struct msgdef *msg_def(uint8_t type);

/* Decodes payload per the schema. Returns the number of fields, or -1 for a
 * malformed payload (E_BAD_PAYLOAD), -2 for an unknown type. */
int msg_parse(uint8_t type, const uint8_t *p, size_t n, struct field *f);

/* Iterates a strlist field: returns 1 and sets *s and *len to the next item. */
int strlist_next(const struct field *f, uint32_t *pos, const uint8_t **s, uint32_t *len);
/* Copies a strlist into a NULL-terminated array of NUL-terminated strings
 * (one allocation; free() the returned pointer). */
char **strlist_dup(const struct field *f);
/* Copies a str field into a NUL-terminated heap string. */
char *str_dup(const struct field *f);

/* Incremental frame parser. */
struct frame {
  uint8_t type, flags;
  uint32_t stream, len;
  const uint8_t *payload;
};
enum parse_result {
  P_NEED = 0,  /* consumed everything, no frame yet */
  P_FRAME,     /* *out holds a frame; payload valid until the next call */
  P_BAD_MAGIC, /* first bad byte seen; now resyncing */
  P_TOO_LARGE, /* *out holds the header; the payload will be discarded */
};
struct parser {
  uint8_t hdr[12];
  uint32_t hlen;     /* header bytes collected */
  uint8_t *pay;      /* payload buffer (capacity cap) */
  uint32_t cap;
  uint32_t got;      /* payload bytes collected */
  uint32_t discard;  /* payload bytes still to skip (oversize frame) */
  int scanning;      /* resyncing after bad magic */
  int prev53;        /* last scanned byte was 0x53 */
  uint32_t max;      /* largest accepted payload */
};
void parser_init(struct parser *ps, uint32_t max);
void parser_reset(struct parser *ps);
void parser_free(struct parser *ps);
/* Consumes bytes from buf[0..n); *used is set to how many were consumed.
 * Call again with the rest until it returns P_NEED. */
int parser_feed(struct parser *ps, const uint8_t *buf, size_t n, size_t *used, struct frame *out);
#endif
