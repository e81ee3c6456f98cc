/* Canonical rendering of frames for the shared test vectors. */
#include "render.h"
#include "../codec.h"
#include "../proto.h"
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

struct out {
  char *p;
  size_t cap, len;
};
static void put(struct out *o, const char *s, size_t n) {
  for (size_t i = 0; i < n && o->len + 1 < o->cap; i++) o->p[o->len++] = s[i];
  o->p[o->len] = 0;
}
static void puts_(struct out *o, const char *s) { put(o, s, strlen(s)); }
static void quote(struct out *o, const uint8_t *s, uint32_t n) {
  puts_(o, "\"");
  for (uint32_t i = 0; i < n; i++) {
    char e[8];
    if (s[i] == '"' || s[i] == '\\') {
      e[0] = '\\', e[1] = (char)s[i];
      put(o, e, 2);
    } else if (s[i] < 0x20 || s[i] == 0x7f) {
      snprintf(e, sizeof e, "\\u%04x", s[i]);
      puts_(o, e);
    } else {
      put(o, (const char *)&s[i], 1);
    }
  }
  puts_(o, "\"");
}

void render_frame(const uint8_t *raw, size_t n, uint32_t max, char *buf, size_t cap) {
  struct out o = {buf, cap, 0};
  buf[0] = 0;
  struct parser ps;
  parser_init(&ps, max);
  struct frame fr;
  size_t used = 0;
  int r = parser_feed(&ps, raw, n, &used, &fr);
  static uint8_t copy[1 << 20];
  if (r == P_FRAME && fr.len) {
    memcpy(copy, fr.payload, fr.len);
    fr.payload = copy;
  }
  parser_free(&ps);
  if (r == P_BAD_MAGIC) return puts_(&o, "!BAD_FRAME");
  if (r == P_TOO_LARGE) return puts_(&o, "!FRAME_TOO_LARGE");
  if (r != P_FRAME) return puts_(&o, "!BAD_FRAME"); /* truncated frame */
  struct field f[SM_MAX_FIELDS];
  int k = msg_parse(fr.type, fr.payload, fr.len, f);
  if (k == -2) return puts_(&o, "!UNKNOWN_TYPE");
  if (k < 0) return puts_(&o, "!BAD_PAYLOAD");
  const struct msgdef *d = msg_def(fr.type);
  char t[96];
  snprintf(t, sizeof t, "%s stream=%" PRIu32 " flags=%u", d->name, fr.stream, fr.flags);
  puts_(&o, t);
  const char *spec = d->fields;
  for (int i = 0; i < k; i++) {
    while (*spec == ' ') spec++;
    const char *name = spec + 2, *e = strchr(name, ' ');
    size_t nl = e ? (size_t)(e - name) : strlen(name);
    spec = name + nl;
    puts_(&o, " ");
    put(&o, name, nl);
    puts_(&o, "=");
    switch (f[i].kind) {
    case 'i': snprintf(t, sizeof t, "%" PRId64, (int64_t)f[i].u); puts_(&o, t); break;
    case 's': quote(&o, f[i].ptr, f[i].len); break;
    case 'l': {
      puts_(&o, "[");
      uint32_t pos = 0, len;
      const uint8_t *s;
      for (int j = 0; strlist_next(&f[i], &pos, &s, &len); j++) {
        if (j) puts_(&o, ",");
        quote(&o, s, len);
      }
      puts_(&o, "]");
      break;
    }
    case 'x':
      for (uint32_t j = 0; j < f[i].len; j++) {
        snprintf(t, sizeof t, "%02x", f[i].ptr[j]);
        puts_(&o, t);
      }
      break;
    default: snprintf(t, sizeof t, "%" PRIu64, f[i].u); puts_(&o, t);
    }
  }
}
