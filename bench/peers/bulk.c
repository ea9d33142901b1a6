/*
 * Bulk transfer peer with 1 MiB buffers (loopback only).
 *
 *   bulk sink           listen on 127.0.0.1, print "listening PORT"; accept
 *                       one connection, read to end of stream, close; print
 *                       "bytes N seconds S" (accept to end of stream).
 *   bulk source BYTES   the same, but write BYTES then close.
 *   bulk echo           the same, but write back what it reads.
 *   bulk send PORT BYTES / bulk recv PORT
 *                       the client side, for the C-to-C kernel figure.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF (1 << 20)
static char buf[BUF];

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static uint64_t drain(int fd, int echo) {
  uint64_t total = 0;
  ssize_t n;
  while ((n = read(fd, buf, BUF)) > 0) {
    total += (uint64_t)n;
    if (echo && write_all(fd, buf, (size_t)n) < 0) break;
  }
  return total;
}

static uint64_t fill(int fd, uint64_t bytes) {
  uint64_t left = bytes;
  while (left > 0) {
    size_t n = left < BUF ? (size_t)left : BUF;
    if (write_all(fd, buf, n) < 0) break;
    left -= n;
  }
  return bytes - left;
}

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sa;
}

static int serve_one(const char *mode, uint64_t bytes) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = loopback(0);
  socklen_t salen = sizeof sa;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 8) < 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &salen) < 0) {
    perror("bulk");
    return 1;
  }
  printf("listening %d\n", ntohs(sa.sin_port));
  fflush(stdout);
  int c = accept(fd, NULL, NULL);
  double t0 = now();
  uint64_t total;
  if (strcmp(mode, "source") == 0) {
    total = fill(c, bytes);
  } else {
    total = drain(c, strcmp(mode, "echo") == 0);
  }
  close(c);
  printf("bytes %llu seconds %.6f\n", (unsigned long long)total, now() - t0);
  return 0;
}

static int client(const char *mode, int port, uint64_t bytes) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = loopback(port);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    perror("bulk");
    return 1;
  }
  double t0 = now();
  uint64_t total;
  if (strcmp(mode, "send") == 0) {
    total = fill(fd, bytes);
    shutdown(fd, SHUT_WR);
    drain(fd, 0);
  } else {
    total = drain(fd, 0);
  }
  close(fd);
  printf("bytes %llu seconds %.6f\n", (unsigned long long)total, now() - t0);
  return 0;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (!strcmp(mode, "sink") || !strcmp(mode, "echo")) return serve_one(mode, 0);
  if (!strcmp(mode, "source") && argc == 3)
    return serve_one(mode, strtoull(argv[2], NULL, 10));
  if (!strcmp(mode, "send") && argc == 4)
    return client(mode, atoi(argv[2]), strtoull(argv[3], NULL, 10));
  if (!strcmp(mode, "recv") && argc == 3) return client(mode, atoi(argv[2]), 0);
  fprintf(stderr, "usage: bulk sink|echo|source BYTES|send PORT BYTES|recv PORT\n");
  return 2;
}
