/* dnotify-watch DIR: waits (up to 30 s) for an entry to be created in DIR
 * through directory notification (fcntl F_NOTIFY, "dnotify"), then prints
 * "dnotify: DIR changed". Prints "ready" once the watch is set. Exit 1 on
 * timeout, 2 when dnotify is unavailable. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 2) return fprintf(stderr, "usage: dnotify-watch DIR\n"), 2;
  int d = open(argv[1], O_RDONLY | O_DIRECTORY);
  if (d < 0) return fprintf(stderr, "open %s: %s\n", argv[1], strerror(errno)), 2;
  sigset_t m;
  sigemptyset(&m);
  sigaddset(&m, SIGRTMIN + 1);
  sigprocmask(SIG_BLOCK, &m, NULL);
  if (fcntl(d, F_SETSIG, SIGRTMIN + 1) < 0 || fcntl(d, F_NOTIFY, DN_CREATE | DN_MULTISHOT) < 0)
    return fprintf(stderr, "F_NOTIFY: %s\n", strerror(errno)), 2;
  printf("ready\n");
  fflush(stdout);
  struct timespec ts = {30, 0};
  siginfo_t si;
  if (sigtimedwait(&m, &si, &ts) != SIGRTMIN + 1) return fprintf(stderr, "no event\n"), 1;
  printf("dnotify: %s changed (fd %d)\n", argv[1], si.si_fd);
  return si.si_fd == d ? 0 : 1;
}
