/*
 * Load generator for the side-by-side benchmarks (loopback only).
 *
 *   loadgen greet HOST PORT MILLIS PROCS GREETING
 *     PROCS processes, each a closed loop: connect, read to end of stream,
 *     check the whole greeting arrived (a short or wrong read is an error).
 *     Prints one JSON line: connections, errors, seconds, p50/p99 in µs.
 *   loadgen hold HOST PORT COUNT
 *     Opens COUNT connections and keeps them open; prints "ready N" once
 *     all are connected, then waits for stdin to close.
 *   loadgen burst HOST PORT COUNT GREETING
 *     Starts COUNT connections at once (non-blocking, epoll) and times each
 *     from connect to end of stream, reading the ones answered while it is
 *     still connecting the rest; one JSON line: served (got the greeting),
 *     refused (end of stream without it), errors, p50/p99 of the refused
 *     ones in µs, and how long starting them all took, the reads in
 *     between included (connect_us).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_SAMPLES (1 << 20)

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static struct sockaddr_in target(const char *host, int port) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "loadgen: bad IPv4 address %s\n", host);
    exit(2);
  }
  return sa;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

static uint32_t percentile(uint32_t *v, size_t n, double p) {
  if (n == 0) return 0;
  size_t i = (size_t)(p * (double)(n - 1) + 0.5);
  return v[i];
}

/* Spreads clients over 127.0.0.x sources so TIME_WAIT tuples do not pile up. */
static int client_socket(int child) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  struct sockaddr_in src;
  memset(&src, 0, sizeof src);
  src.sin_family = AF_INET;
  src.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)(10 + child % 200));
  bind(fd, (struct sockaddr *)&src, sizeof src);
  return fd;
}

struct child_result {
  uint64_t conns, errors, samples;
};

static int greet(int argc, char **argv) {
  if (argc != 7) return 2;
  struct sockaddr_in sa = target(argv[2], atoi(argv[3]));
  uint64_t millis = strtoull(argv[4], NULL, 10);
  int procs = atoi(argv[5]);
  const char *greeting = argv[6];
  size_t glen = strlen(greeting);
  size_t per_child = MAX_SAMPLES / (size_t)procs;
  struct child_result *results = mmap(NULL, sizeof *results * (size_t)procs,
      PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  uint32_t *samples = mmap(NULL, sizeof(uint32_t) * MAX_SAMPLES,
      PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (results == MAP_FAILED || samples == MAP_FAILED) return 1;
  uint64_t start = now_us();
  uint64_t end = start + millis * 1000u;
  for (int c = 0; c < procs; c++) {
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid > 0) continue;
    struct child_result r = {0, 0, 0};
    uint32_t *mine = samples + (size_t)c * per_child;
    char buf[4096];
    while (now_us() < end) {
      uint64_t t0 = now_us();
      int fd = client_socket(c);
      if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        r.errors++;
        if (fd >= 0) close(fd);
        continue;
      }
      size_t got = 0;
      int bad = 0;
      for (;;) {
        ssize_t n = read(fd, buf + (got < sizeof buf ? got : 0),
                         got < sizeof buf ? sizeof buf - got : sizeof buf);
        if (n == 0) break;
        if (n < 0) {
          if (errno == EINTR) continue;
          bad = 1;
          break;
        }
        got += (size_t)n;
      }
      close(fd);
      if (bad || got != glen || memcmp(buf, greeting, glen) != 0) {
        r.errors++;
        continue;
      }
      r.conns++;
      if (r.samples < per_child) mine[r.samples++] = (uint32_t)(now_us() - t0);
    }
    results[c] = r;
    _exit(0);
  }
  for (int c = 0; c < procs; c++) wait(NULL);
  double seconds = (double)(now_us() - start) / 1e6;
  uint64_t conns = 0, errors = 0;
  size_t n = 0;
  for (int c = 0; c < procs; c++) {
    conns += results[c].conns;
    errors += results[c].errors;
    memmove(samples + n, samples + (size_t)c * per_child,
            sizeof(uint32_t) * results[c].samples);
    n += results[c].samples;
  }
  qsort(samples, n, sizeof *samples, cmp_u32);
  printf("{\"connections\":%llu,\"errors\":%llu,\"seconds\":%.4f,"
         "\"p50\":%u,\"p99\":%u}\n",
         (unsigned long long)conns, (unsigned long long)errors, seconds,
         percentile(samples, n, 0.50), percentile(samples, n, 0.99));
  return 0;
}

static int hold(int argc, char **argv) {
  if (argc != 5) return 2;
  struct sockaddr_in sa = target(argv[2], atoi(argv[3]));
  int count = atoi(argv[4]);
  for (int i = 0; i < count; i++) {
    int fd = client_socket(i);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
      fprintf(stderr, "loadgen hold: connection %d: %s\n", i, strerror(errno));
      return 1;
    }
  }
  printf("ready %d\n", count);
  fflush(stdout);
  char c;
  while (read(0, &c, 1) > 0) {
  }
  return 0;
}

struct burst_conn {
  int fd;
  uint64_t t0;
  size_t got;
  char buf[256];
};

/* The clients of one burst, and what each one learned. */
struct burst_state {
  struct burst_conn *conns;
  uint32_t *refused_us;
  const char *greeting;
  size_t glen;
  int ep, open, served, refused, errors;
};

/*
 * Reads what is ready, waiting at most `timeout` ms; a client is timed when
 * it is found at end of stream (or reset). Returns epoll_wait's count: 0
 * when the wait timed out, -1 on an error (an interrupted wait is retried).
 */
static int burst_poll(struct burst_state *b, int timeout) {
  struct epoll_event events[256];
  int n;
  do n = epoll_wait(b->ep, events, 256, timeout);
  while (n < 0 && errno == EINTR);
  for (int e = 0; e < n; e++) {
    struct burst_conn *c = &b->conns[events[e].data.u32];
    ssize_t r;
    while ((r = read(c->fd, c->buf + c->got, sizeof c->buf - c->got - 1)) > 0) {
      c->got += (size_t)r;
      if (c->got >= sizeof c->buf - 1) c->got = 0;
    }
    int read_errno = errno;
    if (r < 0 && read_errno == EAGAIN) continue;
    uint32_t us = (uint32_t)(now_us() - c->t0);
    if (r < 0 && read_errno != ECONNRESET) b->errors++;
    else if (r == 0 && c->got == b->glen &&
             memcmp(c->buf, b->greeting, b->glen) == 0)
      b->served++;
    else b->refused_us[b->refused++] = us;
    close(c->fd);
    b->open--;
  }
  return n;
}

static int burst(int argc, char **argv) {
  if (argc != 6) return 2;
  struct sockaddr_in sa = target(argv[2], atoi(argv[3]));
  int count = atoi(argv[4]);
  struct burst_state b = {
      .conns = calloc((size_t)count, sizeof *b.conns),
      .refused_us = calloc((size_t)count, sizeof *b.refused_us),
      .greeting = argv[5],
      .glen = strlen(argv[5]),
      .ep = epoll_create1(0),
  };
  if (!b.conns || !b.refused_us || b.ep < 0) return 1;
  uint64_t start = now_us();
  for (int i = 0; i < count; i++) {
    int fd = client_socket(i);
    if (fd < 0) return 1;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    b.conns[i].fd = fd;
    b.conns[i].t0 = now_us();
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 &&
        errno != EINPROGRESS) {
      fprintf(stderr, "loadgen burst: connect: %s\n", strerror(errno));
      return 1;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
    if (epoll_ctl(b.ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
      fprintf(stderr, "loadgen burst: epoll_ctl: %s\n", strerror(errno));
      return 1;
    }
    b.open++;
    /*
     * Starting thousands of connections takes this one thread tens of ms.
     * Clients already answered are read as it goes, without waiting, so
     * that each is timed within 16 connects of its answer, not after the
     * last connect.
     */
    if (i % 16 == 15 && burst_poll(&b, 0) < 0) break;
  }
  /* How long starting them all took, the reads in between included. */
  uint32_t connect_us = (uint32_t)(now_us() - start);
  int polled;
  while (b.open > 0 && (polled = burst_poll(&b, 30000)) != 0) {
    if (polled < 0) {
      fprintf(stderr, "loadgen burst: epoll_wait: %s\n", strerror(errno));
      break;
    }
  }
  b.errors += b.open;
  qsort(b.refused_us, (size_t)b.refused, sizeof *b.refused_us, cmp_u32);
  printf("{\"attempted\":%d,\"served\":%d,\"refused\":%d,\"errors\":%d,"
         "\"p50\":%u,\"p99\":%u,\"connect_us\":%u}\n",
         count, b.served, b.refused, b.errors,
         percentile(b.refused_us, (size_t)b.refused, 0.50),
         percentile(b.refused_us, (size_t)b.refused, 0.99), connect_us);
  return 0;
}

int main(int argc, char **argv) {
  int rc = 2;
  if (argc > 1 && strcmp(argv[1], "greet") == 0) rc = greet(argc, argv);
  else if (argc > 1 && strcmp(argv[1], "hold") == 0) rc = hold(argc, argv);
  else if (argc > 1 && strcmp(argv[1], "burst") == 0) rc = burst(argc, argv);
  if (rc == 2) fprintf(stderr, "usage: loadgen greet|hold|burst HOST PORT ...\n");
  return rc;
}
