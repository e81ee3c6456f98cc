/* Small helpers: allocation, logging, time, fds, paths. */
#ifndef SM_UTIL_H
#define SM_UTIL_H
#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* Log fd (console in init mode, stderr otherwise). */
extern int g_log_fd;
/* Prints "sm-init: <message>\n" to the log fd. */
void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int64_t now_ms(void);
int set_nonblock(int fd);
int set_cloexec(int fd);
/* mkdir -p for the parent directories of path (mode 0755). */
int mkdir_parents(const char *path);
/* mkdir -p path itself. */
int mkdir_p(const char *path, unsigned mode);
/* Writes a whole small file (creating/truncating it). */
int write_file(const char *path, const char *data, unsigned mode);
/* Reads a small file into buf (NUL-terminated); returns length or -1. */
long read_small(const char *path, char *buf, size_t cap);
#endif
