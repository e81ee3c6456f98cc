/* Decodes every frame of the shared test vectors (and our extra ones) and
 * compares its canonical rendering (PROTOCOL.md section 7). */
#include "render.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int main(int argc, char **argv) {
  int passed = 0, failed = 0;
  static char line[1 << 20], out[1 << 20];
  static unsigned char raw[1 << 19];
  for (int a = 1; a < argc; a++) {
    FILE *f = fopen(argv[a], "r");
    if (!f) {
      printf("FAIL cannot open %s\n", argv[a]);
      failed++;
      continue;
    }
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
      lineno++;
      line[strcspn(line, "\r\n")] = 0;
      if (!line[0] || line[0] == '#') continue;
      char *name = line, *hex = strchr(line, '\t'), *canon;
      if (!hex || !(canon = strchr(hex + 1, '\t'))) {
        printf("FAIL %s:%d: not name<TAB>hex<TAB>canonical\n", argv[a], lineno);
        failed++;
        continue;
      }
      *hex++ = 0;
      *canon++ = 0;
      size_t n = 0, hl = strlen(hex);
      int bad = hl % 2 != 0 || hl / 2 > sizeof raw;
      for (size_t i = 0; !bad && i < hl; i += 2) {
        int h = hexval(hex[i]), l = hexval(hex[i + 1]);
        if (h < 0 || l < 0) bad = 1;
        else raw[n++] = (unsigned char)(h << 4 | l);
      }
      if (bad) {
        printf("FAIL %s:%d %s: bad hex\n", argv[a], lineno, name);
        failed++;
        continue;
      }
      render_frame(raw, n, 65536, out, sizeof out);
      if (strcmp(out, canon)) {
        printf("FAIL %s:%d %s\n  want %s\n  got  %s\n", argv[a], lineno, name, canon, out);
        failed++;
      } else {
        passed++;
      }
    }
    fclose(f);
  }
  printf("vectors: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
