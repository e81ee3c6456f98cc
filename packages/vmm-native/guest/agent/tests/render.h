/* Canonical text form of a frame (PROTOCOL.md section 7), for tests. */
#ifndef SM_RENDER_H
#define SM_RENDER_H
#include <stddef.h>
#include <stdint.h>
/* Decodes one whole frame from raw bytes and renders it as canonical text,
 * or as "!CODE" when it must be rejected. max is the receiver's max_payload. */
void render_frame(const uint8_t *raw, size_t n, uint32_t max, char *out, size_t cap);
#endif
