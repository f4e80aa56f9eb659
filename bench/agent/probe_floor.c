// The kernel's fixed cost of the two hook kinds the sensor uses, on this machine: one uprobe hit
// (the trap into the kernel and back, what every SSL_read/SSL_write call pays once the OpenSSL
// probes are attached) and one read() syscall with the sensor's syscall tracepoints attached.
// Used by bench/agent/probe_floor.sh; it times a loop of `ops` calls.
//   probe_floor call N    calls an empty function N times (the uprobe target)
//   probe_floor read N    reads one byte from /dev/zero N times
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline)) int boing_probe_target(int x) {
  __asm__ volatile("");
  return x + 1;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc != 3 || (strcmp(argv[1], "call") != 0 && strcmp(argv[1], "read") != 0)) {
    fprintf(stderr, "usage: probe_floor call|read N\n");
    return 2;
  }
  long n = atol(argv[2]);
  int acc = 0;
  double t0 = now();
  if (strcmp(argv[1], "call") == 0) {
    for (long i = 0; i < n; i++) acc += boing_probe_target((int)i);
  } else {
    int fd = open("/dev/zero", O_RDONLY);
    if (fd < 0) {
      perror("/dev/zero");
      return 1;
    }
    char b[1];
    for (long i = 0; i < n; i++) acc += (int)read(fd, b, 1);
  }
  double t = now() - t0;
  printf("%.3f\n", t / (double)n * 1e6);  // microseconds per operation
  return acc == -1;
}
