/*
 * The tutorial's server in C: accept, send the greeting, close, forever.
 * Binds 127.0.0.1 on a port from the system and prints "listening PORT".
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  const char *greeting = argc > 1 ? argv[1] : "Thank you for connecting";
  size_t len = strlen(greeting);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t salen = sizeof sa;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 511) < 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &salen) < 0) {
    perror("greet_server");
    return 1;
  }
  printf("listening %d\n", ntohs(sa.sin_port));
  fflush(stdout);
  for (;;) {
    int c = accept(fd, NULL, NULL);
    if (c < 0) continue;
    size_t sent = 0;
    while (sent < len) {
      ssize_t n = write(c, greeting + sent, len - sent);
      if (n <= 0) break;
      sent += (size_t)n;
    }
    close(c);
  }
}
